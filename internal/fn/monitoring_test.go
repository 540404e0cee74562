package fn

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	goredis "github.com/redis/go-redis/v9"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/ai-decenter/redishttp/internal/contract"
	"github.com/ai-decenter/redishttp/internal/testenv"

	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
)

// TestRunFunctionMonitoring checks what spec.monitoring.enabled composes: the
// exporter sidecar, reading its own password from the auth Secret, whose
// auth file creates its user with a hash only; the metrics Service; and,
// with the tenant's NetworkPolicy, one admitting Prometheus to the exporter.
func TestRunFunctionMonitoring(t *testing.T) {
	rsp := run(t, &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: namespacedXR(`{"memory": "256Mi", "monitoring": {"enabled": true}, "networkPolicy": {"enabled": true}}`)}})
	got := desiredKinds(rsp)
	for name, want := range map[string]string{
		"metrics-service":       "Service team-a/cache-redis-metrics",
		"metrics-networkpolicy": "NetworkPolicy team-a/cache-redis-metrics",
	} {
		if got[name] != want {
			t.Errorf("desired %s: want %s, got %q", name, want, got[name])
		}
	}
	sts := &appsv1.StatefulSet{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(rsp.GetDesired().GetResources()["statefulset"].GetResource().AsMap(), sts); err != nil {
		t.Fatal(err)
	}
	cs := sts.Spec.Template.Spec.Containers
	if len(cs) != 2 || cs[1].Name != "exporter" || cs[1].Image != DefaultExporterImage {
		t.Fatalf("containers: want redis and the exporter %s, got %+v", DefaultExporterImage, cs)
	}
	if diff := cmp.Diff(ExporterArgs(), cs[1].Args); diff != "" {
		t.Errorf("exporter args: -want, +got:\n%s", diff)
	}
	if ref := cs[1].Env[0].ValueFrom.SecretKeyRef; ref.Name != "cache-redis-auth" || ref.Key != contract.ExporterPasswordKey {
		t.Errorf("exporter password from %s/%s, want the auth Secret's %s", ref.Name, ref.Key, contract.ExporterPasswordKey)
	}
	auth := rsp.GetDesired().GetResources()["secret-auth"].GetResource().AsMap()["data"].(map[string]any)
	if _, ok := auth[contract.ExporterPasswordKey]; !ok {
		t.Errorf("the auth Secret has no %s", contract.ExporterPasswordKey)
	}
	conf := rsp.GetDesired().GetResources()["configmap"].GetResource().AsMap()["data"].(map[string]any)[confKey].(string)
	if strings.Contains(conf, contract.ExporterUser) {
		t.Error("the ConfigMap names the exporter's user: its line belongs in the auth Secret's file")
	}

	off := run(t, &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: namespacedXR(`{"memory": "256Mi"}`)}})
	if _, ok := desiredKinds(off)["metrics-service"]; ok {
		t.Error("a metrics Service without spec.monitoring.enabled")
	}
}

// TestExporterUser runs a real redis-server with the exporter's user line and
// the Debian build of the exporter with the arguments the sidecar gets: the
// exporter scrapes (redis_up 1), and its user cannot read a key, write,
// read the configuration (the admin password) or administer.
func TestExporterUser(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: runs redis-server and the exporter")
	}
	const exporterPassword = "Ex0123456789abcdefghijklmnopqrstuvwxyzAB"
	line := strings.Fields(strings.TrimSpace(exporterUserConf(exporterPassword)))
	r := testenv.StartRedis(t, append([]string{"--requirepass", testPassword, "--" + line[0]}, line[1:]...)...)
	ctx := context.Background()
	admin := goredis.NewClient(&goredis.Options{Addr: r.Addr, Password: testPassword, Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { _ = admin.Close() })
	if err := admin.Set(ctx, "secret:1", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	exp := goredis.NewClient(&goredis.Options{Addr: r.Addr, Username: contract.ExporterUser, Password: exporterPassword, Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { _ = exp.Close() })
	if err := exp.Ping(ctx).Err(); err != nil {
		t.Fatalf("the exporter's user cannot log in: %v", err)
	}
	if err := exp.Info(ctx, "memory").Err(); err != nil {
		t.Errorf("the exporter's user cannot run INFO: %v", err)
	}
	for _, cmd := range [][]any{
		{"GET", "secret:1"}, {"SET", "k", "v"}, {"DEL", "secret:1"}, {"KEYS", "*"}, {"SCAN", "0"}, {"DUMP", "secret:1"},
		{"CONFIG", "GET", "requirepass"}, {"ACL", "LIST"}, {"FLUSHALL"}, {"CLIENT", "LIST"}, {"MONITOR"}, {"EVAL", "return 1", "0"},
	} {
		if err := exp.Do(ctx, cmd...).Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
			t.Errorf("%v as the exporter's user: want NOPERM, got %v", cmd, err)
		}
	}

	if err := admin.Do(ctx, "ACL", "LOG", "RESET").Err(); err != nil {
		t.Fatal(err)
	}
	scrapeExporter(t, r.Addr, exporterPassword, "redis_up", "1")
	log, err := admin.Do(ctx, "ACL", "LOG").Slice()
	if err != nil {
		t.Fatal(err)
	}
	if len(log) > 0 {
		t.Errorf("the exporter ran commands its user may not: ACL LOG %v", log)
	}
}

// scrapeExporter runs the Debian build of the exporter with the sidecar's
// arguments against the Redis at addr, as the exporter's user, and returns
// its /metrics once it serves metric (with any labels) at value.
func scrapeExporter(t *testing.T, addr, password, metric, value string) []byte {
	t.Helper()
	bin, err := exec.LookPath("prometheus-redis-exporter")
	if err != nil {
		if testenv.Required() {
			t.Fatalf("prometheus-redis-exporter is not installed (hack/deps.sh installs it): %v", err)
		}
		t.Skip("prometheus-redis-exporter is not installed (hack/deps.sh installs it)")
	}
	port := testenv.FreePort(t)
	args := ExporterArgs()
	for i, a := range args {
		switch {
		case strings.HasPrefix(a, "--redis.addr="):
			args[i] = "--redis.addr=redis://" + addr
		case strings.HasPrefix(a, "--web.listen-address="):
			args[i] = fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port)
		}
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "REDIS_PASSWORD="+password)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	want := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(metric) + `(\{[^}]*\})? ` + regexp.QuoteMeta(value) + `$`)
	var metrics []byte
	testenv.Eventually(t, time.Minute, "the exporter scraped with "+metric+" "+value, func() error {
		res, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
		if err != nil {
			return err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			return err
		}
		if want.Match(b) {
			metrics = b
			return nil
		}
		return fmt.Errorf("no %s %s in %d bytes", metric, value, len(b))
	})
	return metrics
}
