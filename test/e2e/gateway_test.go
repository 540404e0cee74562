//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ai-decenter/redishttp/cluster/local"
	"github.com/ai-decenter/redishttp/internal/contract"
	"github.com/ai-decenter/redishttp/internal/testenv"
	"github.com/ai-decenter/redishttp/internal/xpkg"
)

// gatewayImageStep proves the platform runs the gateway image from the local
// registry as a pod: the binary taken out of the image, the pod resolving
// the instance's Service name, Ready only once its /readyz answers, and the
// instance's REST token writing a key that redis-cli reads. The Deployment is
// the test's own, shaped as the function's gateway Deployment will be.
func gatewayImageStep(ctx context.Context, c *local.Cluster, step func(string, func(*testing.T))) {
	step("GatewayImageRunsOnThePlatform", func(t *testing.T) {
		const gw = "gateway-smoke"
		labels := map[string]string{"app": gw}
		dep := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: gw, Namespace: teamA},
			Spec: appsv1.DeploymentSpec{
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{
						AutomountServiceAccountToken: new(false),
						SecurityContext: &corev1.PodSecurityContext{
							RunAsNonRoot: new(true), RunAsUser: new(int64(65532)),
							SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
						},
						Containers: []corev1.Container{{
							Name:  "gateway",
							Image: c.ImageRef(xpkg.Gateway.Name),
							Args:  []string{"--redis-address=" + contract.ServiceHost("cache", teamA, "cluster.local") + ":" + strconv.Itoa(contract.RedisPort)},
							Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: contract.GatewayPort}, {Name: "metrics", ContainerPort: 8081}},
							ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
								Path: "/readyz", Port: intstr.FromString("metrics"),
							}}, PeriodSeconds: 1},
							SecurityContext: &corev1.SecurityContext{
								AllowPrivilegeEscalation: new(false), ReadOnlyRootFilesystem: new(true),
								Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
							},
						}},
					},
				},
			},
		}
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: gw, Namespace: teamA},
			Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Name: "http", Port: contract.GatewayPort, TargetPort: intstr.FromString("http")}}},
		}
		for _, o := range []client.Object{dep, svc} {
			if err := c.Client.Create(ctx, o); err != nil {
				t.Fatal(err)
			}
		}
		t.Cleanup(func() {
			_ = c.Client.Delete(context.Background(), dep)
			_ = c.Client.Delete(context.Background(), svc)
		})
		testenv.Eventually(t, 2*time.Minute, "the gateway Deployment is available", func() error {
			d := &appsv1.Deployment{}
			if err := c.Client.Get(ctx, client.ObjectKeyFromObject(dep), d); err != nil {
				return err
			}
			if d.Status.AvailableReplicas < 1 {
				return fmt.Errorf("available replicas %d", d.Status.AvailableReplicas)
			}
			return nil
		})
		ip, err := c.ServiceAddress(ctx, teamA, gw)
		if err != nil {
			t.Fatal(err)
		}
		rc, data := redisClient(ctx, t, c, teamA, "cache-redis")
		token := contract.Token("default", string(data["password"]))
		body := []byte(`["SET","http:hello","from-http"]`)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+net.JoinHostPort(ip, strconv.Itoa(contract.GatewayPort))+"/", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		rsp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer rsp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(rsp.Body).Decode(&out)
		if rsp.StatusCode != http.StatusOK || out["result"] != "OK" {
			t.Fatalf("SET over HTTP with the instance's token: status %d, body %v", rsp.StatusCode, out)
		}
		if v, err := rc.Get(ctx, "http:hello").Result(); err != nil || v != "from-http" {
			t.Errorf("the key written over HTTP, read with redis-cli's protocol: %q, %v", v, err)
		}
		req, _ = http.NewRequestWithContext(ctx, http.MethodPost, "http://"+net.JoinHostPort(ip, strconv.Itoa(contract.GatewayPort))+"/", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+contract.Token("default", "wrong"))
		rsp2, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = rsp2.Body.Close()
		if rsp2.StatusCode != http.StatusUnauthorized {
			t.Errorf("a wrong token: want 401, got %d", rsp2.StatusCode)
		}
	})
}
