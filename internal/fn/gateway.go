package fn

import (
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/ai-decenter/redishttp/internal/contract"
)

// An IngressPeer is where the cluster's ingress controller runs: the gateway's
// NetworkPolicy admits it when the instance has an Ingress.
type IngressPeer struct {
	// Namespace of the ingress controller's pods.
	Namespace string
	// Labels of the ingress controller's pods.
	Labels map[string]string
}

// DefaultIngressPeer is ingress-nginx installed by its own manifests.
var DefaultIngressPeer = IngressPeer{Namespace: "ingress-nginx", Labels: map[string]string{"app.kubernetes.io/name": "ingress-nginx"}}

func gatewayLabels(in *instance) map[string]string {
	return map[string]string{
		contract.LabelName:      contract.NameGateway,
		contract.LabelInstance:  in.Name,
		contract.LabelManagedBy: contract.ManagedBy,
	}
}

func gatewaySelector(in *instance) map[string]string {
	return map[string]string{
		contract.LabelName:     contract.NameGateway,
		contract.LabelInstance: in.Name,
	}
}

// gatewayURLs are the REST URL apps use (the Ingress's when there is one)
// and the in-cluster one.
func gatewayURLs(in *instance, h *httpParams, clusterDomain string) (string, string) {
	inCluster := contract.GatewayURL(in.Name, in.Namespace, clusterDomain)
	switch {
	case h.Host != "" && h.TLSSecretName != "":
		return "https://" + h.Host, inCluster
	case h.Host != "":
		return "http://" + h.Host, inCluster
	default:
		return inCluster, inCluster
	}
}

// restDetails are the connection details of the REST gateway: what
// @upstash/redis's Redis.fromEnv() reads, and the in-cluster URL.
func restDetails(url, inCluster, password string) map[string][]byte {
	return map[string][]byte{
		contract.KeyRESTURL:          []byte(url),
		contract.KeyRESTToken:        []byte(contract.Token(contract.AdminUser, password)),
		contract.KeyRESTURLInCluster: []byte(inCluster),
	}
}

// gatewayDeployment runs the REST gateway against the instance's Service. It
// holds no password: every request's token carries its credentials.
func gatewayDeployment(in *instance, h *httpParams, image, clusterDomain string) *appsv1.Deployment {
	redis := fmt.Sprintf("%s:%d", contract.ServiceHost(in.Name, in.Namespace, clusterDomain), contract.RedisPort)
	probe := func(path string) corev1.ProbeHandler {
		return corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("metrics")}}
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: contract.GatewayName(in.Name), Namespace: in.Namespace, Labels: gatewayLabels(in)},
		Spec: appsv1.DeploymentSpec{
			Replicas: new(h.Replicas),
			Selector: &metav1.LabelSelector{MatchLabels: gatewaySelector(in)},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: gatewayLabels(in)},
				Spec: corev1.PodSpec{
					AutomountServiceAccountToken: new(false),
					EnableServiceLinks:           new(false),
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   new(true),
						RunAsUser:      ptr.To[int64](contract.ImageUID),
						RunAsGroup:     ptr.To[int64](contract.ImageUID),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Containers: []corev1.Container{{
						Name:  "gateway",
						Image: image,
						Args:  GatewayArgs(redis),
						Env:   goRuntimeEnv(h),
						Ports: []corev1.ContainerPort{
							{Name: "http", ContainerPort: contract.GatewayPort, Protocol: corev1.ProtocolTCP},
							{Name: "metrics", ContainerPort: contract.GatewayMetricsPort, Protocol: corev1.ProtocolTCP},
						},
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{corev1.ResourceCPU: h.CPURequest, corev1.ResourceMemory: h.MemoryRequest},
							Limits:   corev1.ResourceList{corev1.ResourceCPU: h.CPULimit, corev1.ResourceMemory: h.MemoryLimit},
						},
						ReadinessProbe: &corev1.Probe{ProbeHandler: probe("/readyz"), PeriodSeconds: 5, TimeoutSeconds: 2, FailureThreshold: 3, SuccessThreshold: 1},
						LivenessProbe:  &corev1.Probe{ProbeHandler: probe("/healthz"), PeriodSeconds: 10, TimeoutSeconds: 2, FailureThreshold: 6, SuccessThreshold: 1},
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: new(false),
							ReadOnlyRootFilesystem:   new(true),
							RunAsNonRoot:             new(true),
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
					}},
				},
			},
		},
	}
}

// GatewayArgs are the gateway's arguments for a Redis at redis (HOST:PORT).
func GatewayArgs(redis string) []string {
	return []string{
		"--" + contract.GatewayFlagRedisAddress + "=" + redis,
		fmt.Sprintf("--%s=:%d", contract.GatewayFlagAddress, contract.GatewayPort),
		fmt.Sprintf("--%s=:%d", contract.GatewayFlagMetricsAddress, contract.GatewayMetricsPort),
	}
}

// goRuntimeEnv sizes the gateway's Go runtime to its container's limits.
// GOMAXPROCS is the CPU limit rounded up: Go's own cgroup-aware default never
// goes below 2, and more Go threads than the CPU share lets run contend with
// each other and serve fewer requests (docs/testing.md, "The HTTP gateway: how
// it was measured"). GOMEMLIMIT is 90% of the memory limit, so the collector
// works harder before the kernel would kill the pod.
func goRuntimeEnv(h *httpParams) []corev1.EnvVar {
	procs := max(h.CPULimit.MilliValue()+999, 1000) / 1000
	env := []corev1.EnvVar{{Name: "GOMAXPROCS", Value: strconv.FormatInt(procs, 10)}}
	if mem := h.MemoryLimit.Value() / 10 * 9; mem > 0 {
		env = append(env, corev1.EnvVar{Name: "GOMEMLIMIT", Value: strconv.FormatInt(mem, 10)})
	}
	return env
}

// gatewayService is where apps in the cluster (and the Ingress) reach the
// gateway.
func gatewayService(in *instance) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: contract.GatewayName(in.Name), Namespace: in.Namespace, Labels: gatewayLabels(in)},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: gatewaySelector(in),
			Ports:    []corev1.ServicePort{{Name: "http", Port: contract.GatewayPort, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP}},
		},
	}
}

// gatewayIngress exposes the gateway's Service at the tenant's host.
func gatewayIngress(in *instance, h *httpParams) *networkingv1.Ingress {
	prefix := networkingv1.PathTypePrefix
	ing := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: contract.GatewayName(in.Name), Namespace: in.Namespace, Labels: gatewayLabels(in), Annotations: h.Annotations},
		Spec: networkingv1.IngressSpec{
			Rules: []networkingv1.IngressRule{{
				Host: h.Host,
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
					Paths: []networkingv1.HTTPIngressPath{{
						Path:     "/",
						PathType: &prefix,
						Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
							Name: contract.GatewayName(in.Name),
							Port: networkingv1.ServiceBackendPort{Number: contract.GatewayPort},
						}},
					}},
				}},
			}},
		},
	}
	if h.ClassName != "" {
		ing.Spec.IngressClassName = new(h.ClassName)
	}
	if h.TLSSecretName != "" {
		ing.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{h.Host}, SecretName: h.TLSSecretName}}
	}
	return ing
}

// gatewayNetworkPolicy admits connections to the gateway's port from the pods
// the tenant's policy admits to Redis and, when there is an Ingress, from the
// ingress controller.
func gatewayNetworkPolicy(in *instance, h *httpParams, podSelector map[string]string, ingress IngressPeer) *networkingv1.NetworkPolicy {
	from := []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: podSelector}}}
	if h.Host != "" {
		from = append(from, networkingv1.NetworkPolicyPeer{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ingress.Namespace}},
			PodSelector:       &metav1.LabelSelector{MatchLabels: ingress.Labels},
		})
	}
	meta := metav1.ObjectMeta{Name: contract.GatewayName(in.Name), Namespace: in.Namespace, Labels: gatewayLabels(in)}
	return ingressPolicy(meta, gatewaySelector(in), contract.GatewayPort, from)
}

// gatewayPodDisruptionBudget keeps all but one gateway replica through
// voluntary evictions; unready pods may always go.
func gatewayPodDisruptionBudget(in *instance) *policyv1.PodDisruptionBudget {
	one := intstr.FromInt32(1)
	return &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: contract.GatewayName(in.Name), Namespace: in.Namespace, Labels: gatewayLabels(in)},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable:             &one,
			Selector:                   &metav1.LabelSelector{MatchLabels: gatewaySelector(in)},
			UnhealthyPodEvictionPolicy: ptr.To(policyv1.AlwaysAllow),
		},
	}
}
