package fn

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	extv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	crdvalidation "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"
)

// instanceCRD is the CRD the API server builds from an XRD, in the API
// server's internal form.
func instanceCRD(t *testing.T, path string) *apiextensions.CustomResourceDefinition {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, path))
	if err != nil {
		t.Fatalf("cannot read %s: %v", path, err)
	}
	xrd := struct {
		Spec struct {
			Versions []struct {
				Schema extv1.CustomResourceValidation `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}{}
	if err := yaml.Unmarshal(b, &xrd); err != nil {
		t.Fatalf("cannot parse %s: %v", path, err)
	}
	v1 := &extv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "redishttpinstances.redishttp.io"},
		Spec: extv1.CustomResourceDefinitionSpec{
			Group: "redishttp.io",
			Names: extv1.CustomResourceDefinitionNames{Kind: "RedisHttpInstance", ListKind: "RedisHttpInstanceList", Plural: "redishttpinstances", Singular: "redishttpinstance"},
			Scope: extv1.NamespaceScoped,
			Versions: []extv1.CustomResourceDefinitionVersion{{
				Name: "v1alpha1", Served: true, Storage: true, Schema: &xrd.Spec.Versions[0].Schema,
				Subresources: &extv1.CustomResourceSubresources{Status: &extv1.CustomResourceSubresourceStatus{}},
			}},
		},
		Status: extv1.CustomResourceDefinitionStatus{StoredVersions: []string{"v1alpha1"}},
	}
	crd := &apiextensions.CustomResourceDefinition{}
	if err := extv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(v1, crd, nil); err != nil {
		t.Fatalf("cannot convert the CRD of %s: %v", path, err)
	}
	return crd
}

// TestXValidations proves the CEL rules of both XRDs are ones the API server
// accepts (it refuses rules whose estimated cost is too high, e.g. over
// strings of unknown length) and that they refuse at apply what the function
// would refuse, naming the same field, and never something the function
// accepts.
func TestXValidations(t *testing.T) {
	cases := map[string]struct {
		reason string
		spec   string
		// field is the field the API server refuses, "" when it accepts.
		field string
		// fnRefuses is whether the function refuses the spec.
		fnRefuses bool
	}{
		"Valid":              {reason: "A sane spec should pass both.", spec: `{"memory": "256Mi", "redisVersion": "7.2", "config": {"hz": "20"}, "cpu": {"request": "100m", "limit": 2}}`},
		"MemoryInteger":      {reason: "Memory in bytes should pass both.", spec: `{"memory": 268435456}`},
		"MemoryDecimal":      {reason: "A decimal quantity should pass both.", spec: `{"memory": "0.5Gi"}`},
		"MemoryTooSmall":     {reason: "16Mi is below the minimum.", spec: `{"memory": "16Mi"}`, field: "spec.memory", fnRefuses: true},
		"MemoryIntTooSmall":  {reason: "16Mi in bytes is below the minimum.", spec: `{"memory": 16777216}`, field: "spec.memory", fnRefuses: true},
		"MemoryTooLarge":     {reason: "2Ti is above the maximum.", spec: `{"memory": "2Ti"}`, field: "spec.memory", fnRefuses: true},
		"MemoryHugeExponent": {reason: "A three-digit exponent is refused before it is parsed.", spec: `{"memory": "1e999999999"}`, field: "spec.memory", fnRefuses: true},
		"CPUZero":            {reason: "No CPU is refused.", spec: `{"memory": "256Mi", "cpu": {"request": "0"}}`, field: "spec.cpu.request", fnRefuses: true},
		"CPUTooMuch":         {reason: "65 CPUs is above the maximum.", spec: `{"memory": "256Mi", "cpu": {"limit": 65}}`, field: "spec.cpu.limit", fnRefuses: true},
		"StorageTooLarge":    {reason: "A volume above 64Ti is refused.", spec: `{"memory": "256Mi", "storage": {"size": "100Ti"}}`, field: "spec.storage.size", fnRefuses: true},
		"GatewayMemoryLow":   {reason: "A gateway below 16Mi is refused.", spec: `{"memory": "256Mi", "http": {"enabled": true, "resources": {"limits": {"memory": "8Mi"}}}}`, field: "spec.http.resources.limits.memory", fnRefuses: true},
		"RedisSix":           {reason: "Redis 6 is refused.", spec: `{"memory": "256Mi", "redisVersion": "6.2"}`, field: "spec.redisVersion", fnRefuses: true},
		"RedisSixMajorOnly":  {reason: "Redis 6 without a minor is refused.", spec: `{"memory": "256Mi", "redisVersion": "6"}`, field: "spec.redisVersion", fnRefuses: true},
		"RedisTen":           {reason: "A two-digit major is 7 or later.", spec: `{"memory": "256Mi", "redisVersion": "10.0"}`},
		"UnknownDirective":   {reason: "A directive not on the allow-list is refused.", spec: `{"memory": "256Mi", "config": {"rename-command": "FLUSHALL x"}}`, field: "spec.config", fnRefuses: true},
		"DirectiveBadValue":  {reason: "Values are the function's to check (CEL does not parse them): the API server lets it through.", spec: `{"memory": "256Mi", "config": {"hz": "1000"}}`, fnRefuses: true},
		"IngressNoHost":      {reason: "A TLS Secret without a host is refused.", spec: `{"memory": "256Mi", "http": {"enabled": true, "ingress": {"tlsSecretName": "tls"}}}`, field: "spec.http.ingress", fnRefuses: true},
		"IngressWithHost":    {reason: "A TLS Secret with a host passes.", spec: `{"memory": "256Mi", "http": {"enabled": true, "ingress": {"host": "c.example.com", "tlsSecretName": "tls"}}}`},
		"DashboardAlone":     {reason: "A dashboard without the exporter would show nothing: refused.", spec: `{"memory": "256Mi", "monitoring": {"dashboard": true}}`, field: "spec.monitoring", fnRefuses: true},
		"DashboardMonitored": {reason: "A dashboard with the exporter passes.", spec: `{"memory": "256Mi", "monitoring": {"enabled": true, "dashboard": true}}`},
		"Snippet":            {reason: "A snippet annotation is refused.", spec: `{"memory": "256Mi", "http": {"enabled": true, "ingress": {"host": "c.example.com", "annotations": {"nginx.ingress.kubernetes.io/Server-Snippet": "x"}}}}`, field: "spec.http.ingress.annotations", fnRefuses: true},
	}
	for _, path := range xrds {
		t.Run(filepath.Base(filepath.Dir(path)), func(t *testing.T) {
			crd := instanceCRD(t, path)
			if errs := crdvalidation.ValidateCustomResourceDefinition(context.Background(), crd); len(errs) > 0 {
				t.Fatalf("the API server would refuse the CRD of %s: %v", path, errs.ToAggregate())
			}
			// The internal form keeps a schema all versions share at the top.
			s, err := schema.NewStructural(crd.Spec.Validation.OpenAPIV3Schema)
			if err != nil {
				t.Fatalf("cannot make a structural schema of %s: %v", path, err)
			}
			v := cel.NewValidator(s, true, celconfig.PerCallLimit)
			for name, tc := range cases {
				t.Run(name, func(t *testing.T) {
					spec := map[string]any{}
					// As the API server decodes it: integers as int64.
					if err := utiljson.Unmarshal([]byte(tc.spec), &spec); err != nil {
						t.Fatalf("cannot parse the spec: %v", err)
					}
					obj := map[string]any{"apiVersion": "redishttp.io/v1alpha1", "kind": "RedisHttpInstance", "spec": spec}
					errs, _ := v.Validate(context.Background(), nil, s, obj, nil, celconfig.RuntimeCELCostBudget)
					got := ""
					for _, e := range errs {
						got = e.Field
					}
					if diff := cmp.Diff(tc.field, got); diff != "" {
						t.Errorf("%s\nthe API server's CEL rules: -want refused field, +got (%v):\n%s", tc.reason, errs.ToAggregate(), diff)
					}
					_, ferrs := parseSpec(spec, "cache")
					if diff := cmp.Diff(tc.fnRefuses, len(ferrs) > 0); diff != "" {
						t.Errorf("%s\nparseSpec(...) refuses: -want, +got (%v):\n%s", tc.reason, ferrs.ToAggregate(), diff)
					}
					if tc.field != "" && !strings.Contains(ferrs.ToAggregate().Error(), tc.field) {
						t.Errorf("%s\nthe function should refuse %s too, got: %v", tc.reason, tc.field, ferrs.ToAggregate())
					}
				})
			}
		})
	}
}
