package local

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	kerrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ai-decenter/redishttp/internal/podrunner"
	"github.com/ai-decenter/redishttp/internal/testenv"
)

func TestNftRulesAccepted(t *testing.T) {
	if _, err := exec.LookPath("nft"); err != nil || os.Geteuid() != 0 {
		if testenv.Required() {
			t.Fatal("needs nft (hack/deps.sh) and root")
		}
		t.Skip("needs nft and root")
	}
	rules := []proxyRule{
		{IP: "10.99.0.5", Proto: "tcp", Port: 6379, Endpoints: []string{"198.18.0.2:6379", "198.18.0.3:6379"}},
		{IP: "10.99.0.10", Proto: "udp", Port: 53, Endpoints: []string{"127.0.0.1:5353"}},
		{IP: "10.99.0.7", Proto: "tcp", Port: 80},
	}
	cmd := exec.CommandContext(context.Background(), "nft", "-c", "-f", "-")
	cmd.Stdin = strings.NewReader(nftRules("redishttp-check", "10.99.0.0/16", 1, rules))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("nft should accept the Services' table: %v: %s", err, out)
	}
}

// startKube starts a Kubernetes-only local control plane for the test.
func startKube(t *testing.T) *Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	testenv.Root(t)
	testenv.Tool(t, "kwok")
	testenv.Binary(t, "redis-server")
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{Dir: dir, ToolDirs: filepath.SplitList(os.Getenv("REDISHTTP_TOOLS_BIN")), KubeOnly: true, Logf: t.Logf})
	t.Cleanup(func() {
		c.Stop()
		RemoveAddresses(dir)
	})
	if err != nil {
		t.Fatalf("Start(...): %v", err)
	}
	return c
}

// redisSet is a StatefulSet of Redis pods behind headless Service
// <name>-headless, each with a readiness probe of periodSeconds 1,
// failureThreshold 2.
func redisSet(ns, name string, replicas int32) (*appsv1.StatefulSet, *corev1.Service) {
	labels := map[string]string{"app": name}
	headless := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-headless", Namespace: ns},
		Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: labels,
			Ports: []corev1.ServicePort{{Name: "redis", Port: 6379}}},
	}
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.StatefulSetSpec{
			Replicas: &replicas, ServiceName: headless.Name, PodManagementPolicy: appsv1.ParallelPodManagement,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: ptr.To[int64](1),
					Containers: []corev1.Container{{
						Name: "redis", Image: "redis:7.0",
						Args:  []string{"--port", "6379", "--protected-mode", "no", "--save", "", "--appendonly", "no"},
						Ports: []corev1.ContainerPort{{Name: "redis", ContainerPort: 6379}},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{
								"sh", "-c", `[ "$(redis-cli -p 6379 ping 2>&1)" = PONG ]`,
							}}},
							PeriodSeconds: 1, FailureThreshold: 2, TimeoutSeconds: 1,
						},
					}},
				},
			},
		},
	}
	return sts, headless
}

// redisCmd sends one inline command over conn and returns the first line
// of the reply.
func redisCmd(conn net.Conn, cmd string) (string, error) {
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := fmt.Fprintf(conn, "%s\r\n", cmd); err != nil {
		return "", err
	}
	rd := bufio.NewReader(conn)
	l, err := rd.ReadString('\n')
	if err != nil {
		return "", err
	}
	if strings.HasPrefix(l, "$") {
		l, err = rd.ReadString('\n')
	}
	return strings.TrimSpace(l), err
}

// whoAt dials addr with the cluster's resolver (a new connection, as a new
// client would) and returns the name the Redis there holds under "who".
func whoAt(ctx context.Context, c *Cluster, addr string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := c.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return redisCmd(conn, "GET who")
}

func waitPod(t *testing.T, c *Cluster, ns, name string, ok func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	testenv.Eventually(t, 2*time.Minute, "pod "+name, func() error {
		pod = &corev1.Pod{}
		if err := c.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, pod); err != nil {
			return err
		}
		if !ok(pod) {
			return fmt.Errorf("pod %s: phase %s ip %q conditions %v\n%s", name, pod.Status.Phase, pod.Status.PodIP, pod.Status.Conditions, c.Describe(context.Background(), ns))
		}
		return nil
	})
	return pod
}

func podReady(p *corev1.Pod) bool {
	for _, cd := range p.Status.Conditions {
		if cd.Type == corev1.PodReady {
			return cd.Status == corev1.ConditionTrue
		}
	}
	return false
}

func setLabel(t *testing.T, c *Cluster, ns, name, key, value string) {
	t.Helper()
	v := "null"
	if value != "" {
		v = fmt.Sprintf("%q", value)
	}
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%s}}}`, key, v)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := c.Client.Patch(context.Background(), pod, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatalf("cannot label pod %s: %v", name, err)
	}
}

// TestClusterNetwork proves what the HA tests rely on: a Service follows a
// label and readiness, per-pod names resolve from other pods and follow a
// recreated pod's new IP, a pod reaches itself through its Service, and a
// Service without ready endpoints refuses connections.
func TestClusterNetwork(t *testing.T) {
	c := startKube(t)
	ctx := context.Background()
	const ns = "ha"
	if err := c.EnsureNamespace(ctx, ns, nil); err != nil {
		t.Fatal(err)
	}
	sts, headless := redisSet(ns, "db", 2)
	master := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "db", "role": "master"},
			Ports: []corev1.ServicePort{{Name: "redis", Port: 6379}}},
	}
	for _, o := range []client.Object{headless, master, sts} {
		if err := c.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	pods := map[string]*corev1.Pod{}
	for _, n := range []string{"db-0", "db-1"} {
		pods[n] = waitPod(t, c, ns, n, podReady)
		conn, err := net.DialTimeout("tcp", net.JoinHostPort(pods[n].Status.PodIP, "6379"), 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := redisCmd(conn, "SET who "+n); err != nil {
			t.Fatal(err)
		}
		_ = conn.Close()
	}
	svc := "db.ha.svc.cluster.local:6379"

	t.Run("NoReadyEndpointRefuses", func(t *testing.T) {
		// Polled: the Service's name and rules appear a moment after it.
		testenv.Eventually(t, 2*time.Minute, "a Service selecting no pod refuses connections (as kube-proxy's reject)", func() error {
			if _, err := whoAt(ctx, c, svc); !errors.Is(err, syscall.ECONNREFUSED) {
				return fmt.Errorf("want a refusal, got %w", err)
			}
			return nil
		})
	})

	t.Run("LabelMoveReroutes", func(t *testing.T) {
		setLabel(t, c, ns, "db-0", "role", "master")
		testenv.Eventually(t, 2*time.Minute, "the Service routes to db-0", func() error {
			if who, err := whoAt(ctx, c, svc); err != nil || who != "db-0" {
				return fmt.Errorf("who: %q, %w", who, err)
			}
			return nil
		})
		setLabel(t, c, ns, "db-0", "role", "")
		setLabel(t, c, ns, "db-1", "role", "master")
		moved := time.Now()
		testenv.Eventually(t, 2*time.Minute, "the Service routes to db-1 only", func() error {
			if who, err := whoAt(ctx, c, svc); err != nil || who != "db-1" {
				return fmt.Errorf("who: %q, %w", who, err)
			}
			return nil
		})
		t.Logf("label move -> Service routes new connections to the new pod: %s", time.Since(moved).Round(time.Millisecond))
		// From another pod, by its short name (the pod's search domains);
		// and db-1 reaching itself through the Service (hairpin).
		for _, from := range []string{"db-0", "db-1"} {
			testenv.Eventually(t, 2*time.Minute, from+" reaches the Service by its short name", func() error {
				out, err := mustPod(t, c, ns, from).Exec(ctx, "redis", "redis-cli", "-h", "db", "GET", "who")
				if err != nil || strings.TrimSpace(string(out)) != "db-1" {
					return fmt.Errorf("%q, %w", out, err)
				}
				return nil
			})
		}
	})

	t.Run("UnreadyLeavesService", func(t *testing.T) {
		p := mustPod(t, c, ns, "db-1")
		if err := p.Freeze(); err != nil {
			t.Fatal(err)
		}
		frozen := time.Now()
		testenv.Eventually(t, 2*time.Minute, "a frozen pod leaves the Service", func() error {
			if _, err := whoAt(ctx, c, svc); !errors.Is(err, syscall.ECONNREFUSED) {
				return fmt.Errorf("want a refusal, got %w", err)
			}
			return nil
		})
		t.Logf("freeze -> Service refuses (periodSeconds 1, failureThreshold 2, timeoutSeconds 1): %s", time.Since(frozen).Round(time.Millisecond))
		if err := p.Thaw(); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 2*time.Minute, "a thawed pod is back in the Service", func() error {
			if who, err := whoAt(ctx, c, svc); err != nil || who != "db-1" {
				return fmt.Errorf("who: %q, %w", who, err)
			}
			return nil
		})
	})

	t.Run("ServiceAccountReachesAPIServer", func(t *testing.T) {
		role := &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: "label-self", Namespace: ns},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "patch"}}},
		}
		rb := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "label-self", Namespace: ns},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "default", Namespace: ns}},
		}
		for _, o := range []client.Object{role, rb} {
			if err := c.Client.Create(ctx, o); err != nil {
				t.Fatal(err)
			}
		}
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		var out []byte
		testenv.Eventually(t, 2*time.Minute, "a pod patches its own labels with its service account", func() error {
			out, err = mustPod(t, c, ns, "db-1").Exec(ctx, "redis", "env", "LOCAL_HELPER=1", self, "-test.run=^TestHelperInCluster$")
			if err != nil {
				return fmt.Errorf("%w: %s", err, out)
			}
			return nil
		})
		if !strings.Contains(string(out), "list kube-system: true") {
			t.Errorf("The pod's token should be its service account's, forbidden beyond its Role: %s", out)
		}
		waitPod(t, c, ns, "db-1", func(p *corev1.Pod) bool { return p.Labels["patched-by"] == "self" })
	})

	t.Run("DrainRespectsPDB", func(t *testing.T) {
		pdb := &policyv1.PodDisruptionBudget{
			ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns},
			Spec: policyv1.PodDisruptionBudgetSpec{
				MaxUnavailable: new(intstr.FromInt32(0)),
				Selector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			},
		}
		if err := c.Client.Create(ctx, pdb); err != nil {
			t.Fatal(err)
		}
		old := waitPod(t, c, ns, "db-1", podReady)
		if err := c.Drain(ctx, old.Spec.NodeName, 3*time.Second); err == nil {
			t.Error("A drain should not evict a pod its PodDisruptionBudget protects")
		}
		if err := c.Client.Patch(ctx, pdb, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"maxUnavailable":1}}`))); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 2*time.Minute, "the PDB allows one disruption", func() error {
			got := &policyv1.PodDisruptionBudget{}
			if err := c.Client.Get(ctx, client.ObjectKeyFromObject(pdb), got); err != nil || got.Status.DisruptionsAllowed < 1 {
				return fmt.Errorf("disruptions allowed: %d, %w", got.Status.DisruptionsAllowed, err)
			}
			return nil
		})
		if err := c.Drain(ctx, old.Spec.NodeName, 3*time.Minute); err != nil {
			t.Fatalf("Drain: %v", err)
		}
		again := waitPod(t, c, ns, "db-1", func(p *corev1.Pod) bool { return p.UID != old.UID && podReady(p) })
		if again.Spec.NodeName == old.Spec.NodeName {
			t.Errorf("The evicted pod should come back on another node than the drained %s", old.Spec.NodeName)
		}
		if err := c.Uncordon(ctx, old.Spec.NodeName); err != nil {
			t.Error(err)
		}
	})

	t.Run("PodNamesFollowRecreatedPods", func(t *testing.T) {
		name := "db-0.db-headless.ha.svc.cluster.local"
		resolveFrom := func(from string) (string, error) {
			out, err := mustPod(t, c, ns, from).Exec(ctx, "redis", "getent", "ahostsv4", name)
			f := strings.Fields(string(out))
			if err != nil || len(f) == 0 {
				return "", fmt.Errorf("getent: %q, %w", out, err)
			}
			return f[0], nil
		}
		// db-1 was evicted and came back in the step before: polled.
		var ip string
		testenv.Eventually(t, 2*time.Minute, "db-1 resolves "+name+" to db-0's IP", func() error {
			var err error
			if ip, err = resolveFrom("db-1"); err != nil || ip != pods["db-0"].Status.PodIP {
				return fmt.Errorf("want %s, got %q, %w", pods["db-0"].Status.PodIP, ip, err)
			}
			return nil
		})
		if addrs, err := c.Resolver().LookupHost(ctx, name); err != nil || len(addrs) != 1 || addrs[0] != ip {
			t.Errorf("This machine should resolve %s through Resolver: %v, %v", name, addrs, err)
		}
		if err := c.Client.Delete(ctx, pods["db-0"], client.GracePeriodSeconds(0)); err != nil {
			t.Fatal(err)
		}
		old := pods["db-0"]
		again := waitPod(t, c, ns, "db-0", func(p *corev1.Pod) bool { return p.UID != old.UID && podReady(p) })
		if again.Status.PodIP == old.Status.PodIP {
			t.Errorf("A recreated pod should get a new IP, got %s again", old.Status.PodIP)
		}
		testenv.Eventually(t, 2*time.Minute, "db-1 resolves db-0's new IP", func() error {
			if ip, err := resolveFrom("db-1"); err != nil || ip != again.Status.PodIP {
				return fmt.Errorf("want %s, got %q, %w", again.Status.PodIP, ip, err)
			}
			return nil
		})
		if _, err := c.Resolver().LookupHost(ctx, "db-9.db-headless.ha.svc.cluster.local"); err == nil {
			t.Error("A name no pod has should not resolve")
		}
	})
}

// TestHelperInCluster is not a test: TestClusterNetwork runs the test binary
// in a pod, where it patches its own pod's labels with client-go's
// in-cluster config, as a coordinator in a Redis pod would.
func TestHelperInCluster(t *testing.T) {
	if os.Getenv("LOCAL_HELPER") != "1" {
		t.Skip("helper process")
	}
	cfg, err := rest.InClusterConfig()
	if err != nil {
		fmt.Fprintln(os.Stdout, "in-cluster config:", err)
		os.Exit(1)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		fmt.Fprintln(os.Stdout, "clientset:", err)
		os.Exit(1)
	}
	ns, _ := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
	ctx := context.Background()
	if _, err := cs.CoreV1().Pods(string(ns)).Patch(ctx, os.Getenv("HOSTNAME"), types.MergePatchType, []byte(`{"metadata":{"labels":{"patched-by":"self"}}}`), metav1.PatchOptions{}); err != nil {
		fmt.Fprintln(os.Stdout, "patch own pod:", err)
		os.Exit(1)
	}
	_, err = cs.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{})
	fmt.Fprintln(os.Stdout, "list kube-system:", kerrors.IsForbidden(err))
	os.Exit(0)
}

func mustPod(t *testing.T, c *Cluster, ns, name string) *podrunner.Pod {
	t.Helper()
	var p *podrunner.Pod
	testenv.Eventually(t, 2*time.Minute, "the runner runs "+name, func() error {
		var err error
		p, err = c.Pod(ns, name)
		return err
	})
	return p
}
