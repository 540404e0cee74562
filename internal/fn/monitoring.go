package fn

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	kresource "k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/ai-decenter/redishttp/internal/contract"

	"github.com/crossplane/function-sdk-go/errors"
	"github.com/crossplane/function-sdk-go/resource"
)

// DefaultExporterImage is the exporter sidecar's image unless the platform
// sets --exporter-image: the well-known oliver006/redis_exporter, pinned (the
// version Debian ships, which the local platform runs in its place).
const DefaultExporterImage = "oliver006/redis_exporter:v1.45.0"

const exporterContainer = "exporter"

// exporterRules are all the exporter's ACL user may do: INFO (every metric
// of the exporter's default set comes from it), the slow log and latency
// reports, naming its connection. No key pattern and no channel, so not one
// command on a key would be allowed even if listed; no CONFIG (CONFIG GET
// requirepass would read the admin password: the exporter runs with
// --config-command=-). ACL DRYRUN tests prove it (monitoring_test.go).
var exporterRules = []string{
	"resetkeys", "resetchannels", "-@all",
	"+ping", "+info", "+client|setname", "+slowlog|get", "+slowlog|len", "+latency|latest", "+dbsize", "+select",
}

// exporterUserConf is the redis.conf line (in the auth Secret's file, never in
// the ConfigMap) that creates the exporter's user, with only the SHA-256 of
// its password.
func exporterUserConf(password string) string {
	sum := sha256.Sum256([]byte(password))
	return fmt.Sprintf("user %s on #%s %s\n", contract.ExporterUser, hex.EncodeToString(sum[:]), strings.Join(exporterRules, " "))
}

// ExporterArgs are the exporter's arguments: Redis on the pod's loopback as
// its own user (the password comes from the environment, REDIS_PASSWORD),
// no CONFIG command, metrics on contract.ExporterPort.
func ExporterArgs() []string {
	return []string{
		fmt.Sprintf("--redis.addr=redis://127.0.0.1:%d", contract.RedisPort),
		"--redis.user=" + contract.ExporterUser,
		"--config-command=-",
		fmt.Sprintf("--web.listen-address=:%d", contract.ExporterPort),
	}
}

// exporterSidecar is the exporter container of the Redis pod.
func exporterSidecar(in *instance, image string) corev1.Container {
	return corev1.Container{
		Name:  exporterContainer,
		Image: image,
		Args:  ExporterArgs(),
		Env: []corev1.EnvVar{{
			Name: "REDIS_PASSWORD",
			ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: contract.AuthSecretName(in.Name)},
				Key:                  contract.ExporterPasswordKey,
			}},
		}},
		Ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: contract.ExporterPort, Protocol: corev1.ProtocolTCP}},
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: kresource.MustParse("10m"), corev1.ResourceMemory: kresource.MustParse("32Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceCPU: kresource.MustParse("100m"), corev1.ResourceMemory: kresource.MustParse("64Mi")},
		},
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: new(false),
			ReadOnlyRootFilesystem:   new(true),
			RunAsNonRoot:             new(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		},
	}
}

// metricsService is the exporter's Service, which ServiceMonitors select.
func metricsService(in *instance) *corev1.Service {
	l := labels(in)
	l[contract.LabelComponent] = contract.ComponentMetrics
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: contract.MetricsServiceName(in.Name), Namespace: in.Namespace, Labels: l},
		Spec: corev1.ServiceSpec{
			Selector: selector(in),
			Ports: []corev1.ServicePort{{
				Name: "metrics", Port: contract.ExporterPort, TargetPort: intstr.FromString("metrics"), Protocol: corev1.ProtocolTCP,
			}},
		},
	}
}

// A PrometheusPeer is where the platform's Prometheus runs: the exporter's
// NetworkPolicy admits it.
type PrometheusPeer struct {
	// Namespace of Prometheus's pods.
	Namespace string
	// Labels of Prometheus's pods.
	Labels map[string]string
	// SelectLabels are put on the composed ServiceMonitors and
	// PrometheusRules, for the Prometheus resource's selectors (such as
	// release: kube-prometheus-stack).
	SelectLabels map[string]string
}

// DefaultPrometheusPeer is the Prometheus Operator's Prometheus in namespace
// monitoring.
var DefaultPrometheusPeer = PrometheusPeer{Namespace: "monitoring", Labels: map[string]string{"app.kubernetes.io/name": "prometheus"}}

// metricsNetworkPolicy admits the platform's Prometheus to the exporter, when
// the tenant's NetworkPolicy closes the Redis pod to everything else.
func metricsNetworkPolicy(in *instance, prom PrometheusPeer) *networkingv1.NetworkPolicy {
	meta := metav1.ObjectMeta{Name: contract.MetricsServiceName(in.Name), Namespace: in.Namespace, Labels: labels(in)}
	return ingressPolicy(meta, selector(in), contract.ExporterPort, []networkingv1.NetworkPolicyPeer{{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: prom.Namespace}},
		PodSelector:       &metav1.LabelSelector{MatchLabels: prom.Labels},
	}})
}

// monitor adds monitoring to what is composed: the exporter sidecar, its
// password beside the auth Secret's file (which has its user), the metrics
// Service and, when the tenant's NetworkPolicy closes the pod, a policy
// admitting the platform's Prometheus to the exporter alone.
func (f *Function) monitor(objs map[resource.Name]runtime.Object, in *instance, p *params, sts *appsv1.StatefulSet, password string) {
	spec := &sts.Spec.Template.Spec
	spec.Containers = append(spec.Containers, exporterSidecar(in, f.exporterImage))
	if s, ok := objs[nameAuthSecret].(*corev1.Secret); ok {
		s.Data[contract.ExporterPasswordKey] = []byte(password)
	}
	objs[nameMetricsService] = metricsService(in)
	if p.NetworkPolicy {
		objs[nameMetricsNetworkPolicy] = metricsNetworkPolicy(in, f.prometheus)
	}
}

// exporterPassword is the exporter user's password: the observed auth
// Secret's, else a new one (it is the function's own: a new one only rolls
// the pod).
func (f *Function) exporterPassword(observed map[resource.Name]resource.ObservedComposed) (string, error) {
	if oc, ok := observed[nameAuthSecret]; ok {
		if pw, err := secretPassword(oc.Resource.Object, contract.ExporterPasswordKey); err == nil && pw != "" {
			return pw, nil
		}
	}
	pw, err := f.password()
	if err != nil {
		return "", errors.Wrap(err, "cannot generate the exporter's password")
	}
	return pw, nil
}
