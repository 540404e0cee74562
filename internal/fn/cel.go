package fn

import (
	"fmt"
	"strings"

	extv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// XValidations are the CEL rules (x-kubernetes-validations) hack/xrdgen puts
// into both XRDs, keyed by the field they sit on ("spec.memory"): what the
// API server can check at kubectl apply, so that a tenant's mistake is
// refused at once with a message naming the field, instead of becoming a
// condition after the fact. They are built from the bounds and lists the
// function checks itself (validate.go, redisconf.go), which keeps checking
// everything: render, objects stored before a rule existed, and what CEL
// cannot see (the running image, platform flags). TestXValidations proves the
// API server and the function agree on every case.
func XValidations() map[string]extv1.ValidationRules {
	return map[string]extv1.ValidationRules{
		"spec.memory":                         {quantityBounds(minMemory, maxMemory)},
		"spec.cpu.request":                    {quantityBounds(minCPU, maxCPU)},
		"spec.cpu.limit":                      {quantityBounds(minCPU, maxCPU)},
		"spec.storage.size":                   {quantityBounds(minStorage, maxStorage)},
		"spec.http.resources.requests.cpu":    {quantityBounds(minCPU, maxCPU)},
		"spec.http.resources.limits.cpu":      {quantityBounds(minCPU, maxCPU)},
		"spec.http.resources.requests.memory": {quantityBounds(minGatewayMemory, maxGatewayMemory)},
		"spec.http.resources.limits.memory":   {quantityBounds(minGatewayMemory, maxGatewayMemory)},
		"spec.redisVersion": {{
			// The pattern admits digits and dots only: a major version
			// below 7 is one digit from 0 to 6.
			Rule:    `!self.matches('^[0-6]([.]|$)')`,
			Message: "must be 7.0 or later",
		}},
		"spec.config": {{
			Rule:    "self.all(k, k in [" + celStrings(AllowedDirectives()) + "])",
			Message: "only these directives may be set (the ones redishttp manages and those that reach outside the pod are refused): " + strings.Join(AllowedDirectives(), ", "),
		}},
		"spec.http.ingress": {{
			Rule:    `(!has(self.className) || self.className == '') && (!has(self.tlsSecretName) || self.tlsSecretName == '') || has(self.host) && self.host != ''`,
			Message: "className and tlsSecretName need host: without a host there is no Ingress",
		}},
		"spec.monitoring": {{
			Rule:    `!has(self.dashboard) || !self.dashboard || has(self.enabled) && self.enabled`,
			Message: msgDashboardNeedsMonitoring,
		}},
		"spec.http.ingress.annotations": {{
			Rule:    `self.all(k, !k.lowerAscii().contains('snippet'))`,
			Message: "configuration snippets run in the shared ingress controller and are not allowed",
		}},
	}
}

// quantityBounds is the CEL rule of a quantity field (int-or-string): from
// lo to hi. A string first has to be short and without a three-digit
// exponent, as the function asks (quantity.go), before quantity() parses it:
// 1e999999999 matches the schema's pattern and would cost the API server
// minutes to compare.
func quantityBounds(lo, hi resource.Quantity) extv1.ValidationRule {
	return extv1.ValidationRule{
		Rule: fmt.Sprintf(`type(self) == int ? self >= %d && self <= %d : `+
			`(size(self) <= %d && !self.matches('[eE][+-]?0*[1-9][0-9]{2}') && isQuantity(self) ? `+
			`quantity(self).compareTo(quantity('%s')) >= 0 && quantity(self).compareTo(quantity('%s')) <= 0 : false)`,
			lo.Value(), hi.Value(), maxQuantityLength, lo.String(), hi.String()),
		Message: fmt.Sprintf("must be from %s to %s", lo.String(), hi.String()),
	}
}

func celStrings(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = "'" + s + "'"
	}
	return strings.Join(q, ", ")
}
