package fn

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	kyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/ai-decenter/redishttp/internal/contract"
	"github.com/ai-decenter/redishttp/internal/testenv"

	"github.com/crossplane/function-sdk-go/logging"
	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
)

// These tests run the real crossplane CLI (render and resource validate) and
// Crossplane core against the function served over gRPC, the way a developer
// does with `make render`.

var updateGolden = flag.Bool("update", false, "rewrite the golden files in testdata (render output, RunFunction responses) with what the code produces now")

// repoRoot is where the examples and XRDs live, relative to this package.
const repoRoot = "../.."

const (
	annotationResourceName = "crossplane.io/composition-resource-name"
	annotationTarget       = "render.crossplane.io/runtime-development-target"
	renderTimeout          = 90 * time.Second
)

// An example is one of examples/function's XRs with its Composition and XRD.
type example struct {
	xr          string
	composition string
	xrd         string
	golden      string
	// composed is every object the function should compose, as
	// "<composition-resource-name> <Kind> <namespace>/<name>".
	composed []string
}

var examples = map[string]example{
	"ClaimMode": {
		xr:          "examples/function/xr.yaml",
		composition: "examples/function/composition.yaml",
		xrd:         "package/configuration/xrd.yaml",
		golden:      "testdata/render/claim.yaml",
		composed: []string{
			"configmap ConfigMap team-a/cache-redis-config",
			"gateway-deployment Deployment team-a/cache-http",
			"gateway-service Service team-a/cache-http",
			"secret-auth Secret team-a/cache-redis-auth",
			"service Service team-a/cache-redis",
			"service-headless Service team-a/cache-redis-headless",
			"statefulset StatefulSet team-a/cache-redis",
		},
	},
	"NamespacedMode": {
		xr:          "examples/function/xr-namespaced.yaml",
		composition: "examples/function/composition-namespaced.yaml",
		xrd:         "package/configuration-namespaced/xrd.yaml",
		golden:      "testdata/render/namespaced.yaml",
		composed: []string{
			"configmap ConfigMap team-a/cache-redis-config",
			"gateway-deployment Deployment team-a/cache-http",
			"gateway-ingress Ingress team-a/cache-http",
			"gateway-service Service team-a/cache-http",
			"secret-auth Secret team-a/cache-redis-auth",
			"secret-connection Secret team-a/cache-redis",
			"service Service team-a/cache-redis",
			"service-headless Service team-a/cache-redis-headless",
			"statefulset StatefulSet team-a/cache-redis",
		},
	},
}

// serve runs f as a real, insecure gRPC function server on a loopback port
// until the test ends, and returns its address.
func serve(t *testing.T, f *Function) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("cannot listen on loopback: %v", err)
	}
	srv := grpc.NewServer()
	fnv1.RegisterFunctionRunnerServiceServer(srv, f)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return l.Addr().String()
}

// fixedPassword makes render output deterministic.
func fixedPassword() (string, error) { return testPassword, nil }

// crossplane runs the crossplane CLI and returns its stdout; a non-zero exit
// is returned as an error that carries stdout and stderr.
func crossplane(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), renderTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.Tool(t, "crossplane"), args...)
	cmd.Dir = repoRoot
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), &cliError{args: args, err: err, stdout: stdout.String(), stderr: stderr.String()}
	}
	return stdout.Bytes(), nil
}

type cliError struct {
	args           []string
	err            error
	stdout, stderr string
}

func (e *cliError) Error() string {
	return "crossplane " + strings.Join(e.args, " ") + ": " + e.err.Error() + "\nstdout:\n" + e.stdout + "\nstderr:\n" + e.stderr
}

// render renders ex with the function at addr. The function runs in
// functions.yaml's Development runtime; only its target is overridden (the
// CLI's --function-annotations, so examples/function is used as it is).
// observed, when not empty, is a file of observed composed resources.
func render(t *testing.T, addr string, ex example, observed string) []byte {
	t.Helper()
	args := []string{
		"render", ex.xr, ex.composition, "examples/function/functions.yaml",
		"--xrd=" + ex.xrd,
		// The whole XR (spec with the XRD's defaults, and the status the
		// function wrote), so that it can be validated against the XRD.
		"--include-full-xr",
		"--crossplane-binary=" + testenv.Tool(t, "crossplane-core"),
		"--function-annotations=" + annotationTarget + "=" + addr,
		"--timeout=" + renderTimeout.String(),
	}
	if observed != "" {
		args = append(args, "--observed-resources="+observed)
	}
	out, err := crossplane(t, args...)
	if err != nil {
		t.Fatalf("cannot render %s: %v", ex.xr, err)
	}
	return out
}

// documents parses a multi-document YAML stream.
func documents(t *testing.T, b []byte) []*unstructured.Unstructured {
	t.Helper()
	d := kyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	var docs []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		err := d.Decode(&u.Object)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("cannot parse render output: %v\n%s", err, b)
		}
		if len(u.Object) > 0 {
			docs = append(docs, u)
		}
	}
}

// composedIn returns the composed objects in render output by their
// composition resource name; the XR is the one document without that name.
func composedIn(t *testing.T, out []byte) map[string]*unstructured.Unstructured {
	t.Helper()
	m := map[string]*unstructured.Unstructured{}
	for _, u := range documents(t, out) {
		if n := u.GetAnnotations()[annotationResourceName]; n != "" {
			m[n] = u
		}
	}
	return m
}

func describe(m map[string]*unstructured.Unstructured) []string {
	s := make([]string, 0, len(m))
	for n, u := range m {
		s = append(s, n+" "+u.GetKind()+" "+u.GetNamespace()+"/"+u.GetName())
	}
	sort.Strings(s)
	return s
}

// secretValue returns a decoded key of a rendered Secret.
func secretValue(t *testing.T, s *unstructured.Unstructured, key string) string {
	t.Helper()
	enc, _, _ := unstructured.NestedString(s.Object, "data", key)
	b, err := base64.StdEncoding.DecodeString(enc)
	if err != nil || enc == "" {
		t.Fatalf("Secret %s/%s has no usable data.%s (%q): %v", s.GetNamespace(), s.GetName(), key, enc, err)
	}
	return string(b)
}

func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatalf("cannot write %s: %v", p, err)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// validate runs `crossplane resource validate` offline: Crossplane's own
// schemas come from a seeded cache, Kubernetes' built-in kinds are checked by
// the CLI's strict decoding into the Kubernetes API types, and ours come from
// the XRDs given as extensions. A resource without a schema is an error.
func validate(t *testing.T, extensions, resources []string) (string, error) {
	t.Helper()
	out, err := crossplane(t, "resource", "validate",
		strings.Join(extensions, ","), strings.Join(resources, ","),
		"--cache-dir="+testenv.CrossplaneSchemaCache(t),
		"--error-on-missing-schemas")
	return string(out), err
}

func TestRender(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the crossplane CLI and Crossplane core")
	}
	addr := serve(t, NewFunction(logging.NewNopLogger(), WithPasswordGenerator(fixedPassword), WithGatewayImage(testGatewayImage)))

	for name, ex := range examples {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := render(t, addr, ex, "")

			if *updateGolden {
				if err := os.WriteFile(ex.golden, got, 0o600); err != nil {
					t.Fatalf("cannot update %s: %v", ex.golden, err)
				}
			}
			want, err := os.ReadFile(ex.golden)
			if err != nil {
				t.Fatalf("cannot read %s (write it with -update): %v", ex.golden, err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("crossplane render %s: output differs from %s (rerun with -update if the change is intended)\nrender(...): -want, +got:\n%s", ex.xr, ex.golden, diff)
			}

			if diff := cmp.Diff(ex.composed, describe(composedIn(t, got))); diff != "" {
				t.Errorf("crossplane render %s should compose every object in the tenant's namespace\ncomposed(...): -want, +got:\n%s", ex.xr, diff)
			}

			// The rendered XR, every composed object, the Composition and the
			// Function are valid against our XRD, Kubernetes' and Crossplane's
			// schemas.
			rendered := writeFile(t, "rendered.yaml", got)
			resources := []string{rendered, ex.composition, "examples/function/functions.yaml"}
			if out, err := validate(t, []string{ex.xrd}, resources); err != nil {
				t.Errorf("crossplane resource validate of the render of %s: %v\n%s", ex.xr, err, out)
			}
		})
	}
}

func TestRenderKeepsPassword(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the crossplane CLI and Crossplane core")
	}
	// The real, random generator: the password can only be equal across
	// renders if the function read it back from the observed Secret.
	addr := serve(t, NewFunction(logging.NewNopLogger(), WithGatewayImage(testGatewayImage)))

	for name, ex := range examples {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			first := composedIn(t, render(t, addr, ex, ""))
			auth, ok := first[string(nameAuthSecret)]
			if !ok {
				t.Fatalf("crossplane render %s composed no %q: %v", ex.xr, nameAuthSecret, describe(first))
			}
			pw := secretValue(t, auth, contract.AuthPasswordKey)

			obs, err := yaml.Marshal(auth.Object)
			if err != nil {
				t.Fatal(err)
			}
			second := composedIn(t, render(t, addr, ex, writeFile(t, "observed.yaml", obs)))
			if got := secretValue(t, second[string(nameAuthSecret)], contract.AuthPasswordKey); got != pw {
				t.Errorf("crossplane render %s --observed-resources=<first render's Secret>: the password changed\nrender(...): -want, +got:\n%s", ex.xr, cmp.Diff(pw, got))
			}
			if conn, ok := second[string(nameConnectionSecret)]; ok {
				if got := secretValue(t, conn, "password"); got != pw {
					t.Errorf("crossplane render %s: the connection Secret's password is not the observed one\nrender(...): -want, +got:\n%s", ex.xr, cmp.Diff(pw, got))
				}
			}

			// Control: without the observed Secret, a new password is generated.
			third := composedIn(t, render(t, addr, ex, ""))
			if got := secretValue(t, third[string(nameAuthSecret)], contract.AuthPasswordKey); got == pw {
				t.Errorf("crossplane render %s without observed resources: want a new random password, got the first one again", ex.xr)
			}
		})
	}
}

func TestValidateTenantManifest(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the crossplane CLI")
	}
	// The tenant's manifest is the claim in claim mode (the CLI derives the
	// claim's CRD from the XRD) and the XR itself in namespaced mode.
	for name, ex := range examples {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if out, err := validate(t, []string{ex.xrd}, []string{"examples/instance/redishttpinstance.yaml", ex.xr}); err != nil {
				t.Errorf("crossplane resource validate %s: %v\n%s", ex.xrd, err, out)
			}
		})
	}
}

// TestValidateCatchesMistakes proves the offline validation is not vacuous:
// a misspelled field in a Kubernetes kind or in our API fails it.
func TestValidateCatchesMistakes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the crossplane CLI")
	}
	type args struct {
		file, from, to, xrd string
	}
	cases := map[string]struct {
		reason string
		args   args
		want   string
	}{
		"MisspelledStatefulSetField": {
			reason: "A misspelled field in a composed StatefulSet should fail validation against Kubernetes' schema.",
			args:   args{file: examples["NamespacedMode"].golden, from: "serviceName:", to: "serviceNmae:", xrd: examples["NamespacedMode"].xrd},
			want:   `unknown field "spec.serviceNmae"`,
		},
		"MistypedServicePort": {
			reason: "A port of the wrong type in a composed Service should fail validation against Kubernetes' schema.",
			args:   args{file: examples["ClaimMode"].golden, from: "port: 6379\n    protocol: TCP", to: "port: redis\n    protocol: TCP", xrd: examples["ClaimMode"].xrd},
			want:   "ServicePort.spec.ports.port",
		},
		"MistypedXRStatus": {
			reason: "A status field of the wrong type on the rendered XR should fail validation against the XRD.",
			args:   args{file: examples["ClaimMode"].golden, from: "  port: 6379\n", to: "  port: \"6379\"\n", xrd: examples["ClaimMode"].xrd},
			want:   "status.port",
		},
		"MisspelledClaimField": {
			reason: "A misspelled field in the tenant's claim should fail validation against the claim CRD derived from the XRD.",
			args:   args{file: "../../examples/instance/redishttpinstance.yaml", from: "maxmemoryPolicy:", to: "maxMemoryPolicy:", xrd: examples["ClaimMode"].xrd},
			want:   "spec.maxMemoryPolicy",
		},
		"MisspelledNamespacedXRField": {
			reason: "A misspelled field in the tenant's namespaced XR should fail validation against the XRD.",
			args:   args{file: "../../examples/instance/redishttpinstance.yaml", from: "writeConnectionSecretToRef:", to: "writeConnectionSecretRef:", xrd: examples["NamespacedMode"].xrd},
			want:   "spec.writeConnectionSecretRef",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b, err := os.ReadFile(tc.args.file)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(b, []byte(tc.args.from)) {
				t.Fatalf("%s has no %q to break", tc.args.file, tc.args.from)
			}
			broken := writeFile(t, "broken.yaml", bytes.Replace(b, []byte(tc.args.from), []byte(tc.args.to), 1))
			out, err := validate(t, []string{tc.args.xrd}, []string{broken})
			if err == nil {
				t.Fatalf("%s\ncrossplane resource validate: want an error, got success:\n%s", tc.reason, out)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("%s\ncrossplane resource validate: want a message naming %q, got:\n%s", tc.reason, tc.want, out)
			}
		})
	}
}

// TestRenderDryRun proves what `crossplane resource validate` cannot: that a
// real kube-apiserver accepts every composed object, with its semantic
// validation (selectors matching labels, mounts naming volumes, probe and port
// rules...), when it is server-side applied as Crossplane does. It checks the
// golden files, which TestRender keeps equal to the render output.
func TestRenderDryRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs etcd and kube-apiserver")
	}
	cp := testenv.StartControlPlane(t)
	c, err := client.New(cp.Config, client.Options{})
	if err != nil {
		t.Fatalf("cannot create a client: %v", err)
	}
	ctx := context.Background()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}); err != nil {
		t.Fatalf("cannot create namespace team-a: %v", err)
	}

	for name, ex := range examples {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(ex.golden)
			if err != nil {
				t.Fatal(err)
			}
			objs := composedIn(t, b)
			if len(objs) == 0 {
				t.Fatalf("%s holds no composed objects", ex.golden)
			}
			for _, n := range slices.Sorted(maps.Keys(objs)) {
				u := objs[n]
				err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u),
					client.FieldOwner("apiextensions.crossplane.io/composed"), client.ForceOwnership, client.DryRunAll)
				if err != nil {
					t.Errorf("kube-apiserver rejects composed %q (%s %s/%s) from %s: %v", n, u.GetKind(), u.GetNamespace(), u.GetName(), ex.golden, err)
				}
			}
		})
	}
}
