package fn

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/ai-decenter/redishttp/apis/instance/v1alpha1"
	"github.com/ai-decenter/redishttp/internal/contract"
)

// quantitySchemaPattern is the pattern controller-gen gives every
// resource.Quantity.
const quantitySchemaPattern = `^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$`

// xrds are the generated XRDs of both modes.
var xrds = []string{"package/configuration/xrd.yaml", "package/configuration-namespaced/xrd.yaml"}

// schemaRules collects every default, enum and pattern under a schema, keyed
// by "<path> <rule>".
func schemaRules(path string, schema map[string]any, out map[string]any) {
	for _, rule := range []string{"default", "enum", "pattern", "minLength", "maxLength", "maxProperties", "minimum", "maximum", "x-kubernetes-validations"} {
		if v, ok := schema[rule]; ok {
			out[path+" "+rule] = v
		}
	}
	props, _ := schema["properties"].(map[string]any)
	for name, p := range props {
		if m, ok := p.(map[string]any); ok {
			schemaRules(path+"."+name, m, out)
		}
	}
}

func ints2any(n []int32) []any {
	out := make([]any, len(n))
	for i, v := range n {
		out[i] = float64(v)
	}
	return out
}

func strings2any(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// TestXRDsAgreeWithCode proves the defaults, enums and patterns the XRDs
// (generated from the kubebuilder markers) give the API server are the ones
// the function applies and checks itself: one set of rules, whichever of the
// two a tenant's object went through.
func TestXRDsAgreeWithCode(t *testing.T) {
	want := map[string]any{
		"spec.redisVersion default":                      defaultRedisVersion,
		"spec.redisVersion pattern":                      redisVersionRE.String(),
		"spec.redisVersion maxLength":                    float64(maxRedisVersionLength),
		"spec.image maxLength":                           float64(maxImageLength),
		"spec.maxmemoryPolicy default":                   defaultMaxmemoryPolicy,
		"spec.maxmemoryPolicy enum":                      strings2any(maxmemoryPolicies),
		"spec.cpu.request default":                       defaultCPURequest,
		"spec.cpu.limit default":                         defaultCPULimit,
		"spec.storage.size default":                      defaultStorageSize,
		"spec.storage.reclaimPolicy default":             defaultReclaimPolicy,
		"spec.storage.reclaimPolicy enum":                strings2any(reclaimPolicies),
		"spec.persistence.rdb default":                   defaultRDB,
		"spec.persistence.appendOnly default":            defaultAppendOnly,
		"spec.config maxProperties":                      float64(maxConfigDirectives),
		"spec.networkPolicy.podSelector maxProperties":   float64(maxPodSelectorLabels),
		"spec.writeConnectionSecretToRef.name minLength": float64(1),
		"spec.writeConnectionSecretToRef.name maxLength": float64(validation.DNS1123SubdomainMaxLength),
		"spec.replicas default":                          float64(defaultReplicas),
		"spec.replicas enum":                             ints2any(replicaCounts),
		"spec.http.replicas default":                     float64(defaultHTTPReplicas),
		"spec.http.replicas minimum":                     float64(minHTTPReplicas),
		"spec.http.replicas maximum":                     float64(maxHTTPReplicas),
		"spec.http.resources.requests.cpu default":       defaultHTTPCPURequest,
		"spec.http.resources.requests.memory default":    defaultHTTPMemoryRequest,
		"spec.http.resources.limits.cpu default":         defaultHTTPCPULimit,
		"spec.http.resources.limits.memory default":      defaultHTTPMemoryLimit,
		"spec.http.ingress.host maxLength":               float64(validation.DNS1123SubdomainMaxLength),
		"spec.http.ingress.className maxLength":          float64(validation.DNS1123SubdomainMaxLength),
		"spec.http.ingress.tlsSecretName maxLength":      float64(validation.DNS1123SubdomainMaxLength),
		"spec.http.ingress.annotations maxProperties":    float64(maxIngressAnnotations),
	}
	// spec.backup and spec.restore (backup.go).
	maps.Copy(want, map[string]any{
		"spec.backup.schedule maxLength": float64(maxScheduleLength),
		"spec.backup.keep default":       float64(defaultBackupKeep),
		"spec.backup.keep minimum":       float64(minBackupKeep),
		"spec.backup.keep maximum":       float64(maxBackupKeep),
		"spec.restore.backup default":    contract.BackupLatest,
		"spec.restore.backup maxLength":  float64(maxBackupNameLength),
	})
	for _, top := range []string{"spec.backup", "spec.restore"} {
		maps.Copy(want, map[string]any{
			top + ".s3.endpoint minLength":                  float64(1),
			top + ".s3.endpoint maxLength":                  float64(maxEndpointLength),
			top + ".s3.bucket minLength":                    float64(minBucketLength),
			top + ".s3.bucket maxLength":                    float64(maxBucketLength),
			top + ".s3.prefix maxLength":                    float64(maxPrefixLength),
			top + ".s3.region default":                      defaultS3Region,
			top + ".s3.region maxLength":                    float64(maxRegionLength),
			top + ".s3.credentialsSecretRef.name minLength": float64(1),
			top + ".s3.credentialsSecretRef.name maxLength": float64(validation.DNS1123SubdomainMaxLength),
			top + ".s3.caSecretRef.name minLength":          float64(1),
			top + ".s3.caSecretRef.name maxLength":          float64(validation.DNS1123SubdomainMaxLength),
			top + ".encryptionKeySecretRef.name minLength":  float64(1),
			top + ".encryptionKeySecretRef.name maxLength":  float64(validation.DNS1123SubdomainMaxLength),
		})
	}
	// The CEL rules, as hack/xrdgen places them.
	for path, rules := range XValidations() {
		b, err := json.Marshal(rules)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		want[path+" x-kubernetes-validations"] = v
	}
	// status.applied is a spec the function accepted: the same schema
	// (without the CEL rules, which spec has checked).
	for k, v := range maps.Clone(want) {
		if strings.HasPrefix(k, "spec.") && !strings.HasSuffix(k, " x-kubernetes-validations") {
			want["status.applied."+strings.TrimPrefix(k, "spec.")] = v
		}
	}
	want["status.phase enum"] = strings2any([]string{v1alpha1.PhaseProvisioning, v1alpha1.PhaseReady, v1alpha1.PhaseFailed, v1alpha1.PhaseInvalid})
	// Kubernetes' quantity syntax, which resource.Quantity implements
	// (FuzzQuantitySchema proves the code accepts all it matches).
	var quantityPatterns []string
	for _, f := range numberFields {
		for _, top := range []string{"spec.", "status.applied."} {
			if f.quantity {
				quantityPatterns = append(quantityPatterns, top+strings.Join(f.path, ".")+" pattern")
			}
		}
	}

	for _, path := range xrds {
		t.Run(filepath.Base(filepath.Dir(path)), func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(repoRoot, path))
			if err != nil {
				t.Fatalf("cannot read %s: %v", path, err)
			}
			xrd := map[string]any{}
			if err := yaml.Unmarshal(b, &xrd); err != nil {
				t.Fatalf("cannot parse %s: %v", path, err)
			}
			versions, _ := xrd["spec"].(map[string]any)["versions"].([]any)
			if len(versions) != 1 {
				t.Fatalf("%s: want one version, got %d", path, len(versions))
			}
			schema, _ := versions[0].(map[string]any)["schema"].(map[string]any)["openAPIV3Schema"].(map[string]any)
			got := map[string]any{}
			props, _ := schema["properties"].(map[string]any)
			for _, top := range []string{"spec", "status"} {
				m, _ := props[top].(map[string]any)
				schemaRules(top, m, got)
			}
			for _, k := range quantityPatterns {
				if got[k] != quantitySchemaPattern {
					t.Errorf("%s: %s should be Kubernetes' quantity pattern, got %v", path, k, got[k])
				}
				delete(got, k)
			}
			want := maps.Clone(want)
			if _, ok := props["spec"].(map[string]any)["properties"].(map[string]any)["writeConnectionSecretToRef"]; !ok {
				// Claim mode: Crossplane's own writeConnectionSecretToRef.
				delete(want, "spec.writeConnectionSecretToRef.name minLength")
				delete(want, "spec.writeConnectionSecretToRef.name maxLength")
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s should carry exactly the defaults, enums, patterns and bounds the function applies (change the kubebuilder markers and the code together, then go generate ./...)\n%s: -code, +xrd:\n%s", path, path, diff)
			}
		})
	}
}
