package fn

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/ai-decenter/redishttp/internal/contract"
)

// A ProviderPeer is where the ApiKey provider runs: its pods must reach every
// instance to manage ACL users, NetworkPolicy or not.
type ProviderPeer struct {
	// Namespace of the provider's pods, Crossplane's namespace.
	Namespace string
	// Name of the Provider package object; Crossplane labels its pods
	// pkg.crossplane.io/provider=<Name>.
	Name string
}

// DefaultProviderPeer is the provider installed as the README says.
var DefaultProviderPeer = ProviderPeer{Namespace: "crossplane-system", Name: "provider-redishttp"}

// networkPolicy admits connections to Redis's port only from pods in the
// instance's namespace (optionally only those matching the tenant's
// selector), from the ApiKey provider and, when HTTP is on, from the
// instance's gateway, when backups are on from its backup jobs. With
// replicas it also admits the instance's own pods (replication, Sentinel,
// coordinators) to Redis and Sentinel, and the tenant's pods to Sentinel.
func networkPolicy(in *instance, podSelector map[string]string, provider ProviderPeer, gateway, ha, backup bool) *networkingv1.NetworkPolicy {
	from := []networkingv1.NetworkPolicyPeer{
		{PodSelector: &metav1.LabelSelector{MatchLabels: podSelector}},
		{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": provider.Namespace}},
			PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"pkg.crossplane.io/provider": provider.Name}},
		},
	}
	if gateway {
		from = append(from, networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchLabels: gatewaySelector(in)}})
	}
	if backup {
		from = append(from, networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchLabels: backupSelector(in)}})
	}
	meta := metav1.ObjectMeta{Name: contract.ServiceName(in.Name), Namespace: in.Namespace, Labels: labels(in)}
	np := ingressPolicy(meta, selector(in), contract.RedisPort, from)
	if ha {
		tcp := corev1.ProtocolTCP
		redis, sentinel := intstr.FromInt32(contract.RedisPort), intstr.FromInt32(contract.SentinelPort)
		np.Spec.Ingress = append(np.Spec.Ingress,
			networkingv1.NetworkPolicyIngressRule{
				From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: contract.PodSelector(in.Name)}}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &redis}, {Protocol: &tcp, Port: &sentinel}},
			},
			networkingv1.NetworkPolicyIngressRule{
				From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: podSelector}}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &sentinel}},
			})
	}
	return np
}

// ingressPolicy admits TCP connections to port of the pods selector selects
// from the peers in from, and nothing else.
func ingressPolicy(meta metav1.ObjectMeta, selector map[string]string, port int32, from []networkingv1.NetworkPolicyPeer) *networkingv1.NetworkPolicy {
	p := intstr.FromInt32(port)
	tcp := corev1.ProtocolTCP
	return &networkingv1.NetworkPolicy{
		ObjectMeta: meta,
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: selector},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  from,
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &p}},
			}},
		},
	}
}

// podDisruptionBudget keeps the single Redis pod from voluntary evictions
// while it serves. An unready pod may always be evicted (AlwaysAllow): it
// serves nothing a budget could protect, and with IfHealthyBudget a crash-
// looping pod would block every node drain forever.
func podDisruptionBudget(in *instance) *policyv1.PodDisruptionBudget {
	one := intstr.FromInt32(1)
	return &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: contract.ServiceName(in.Name), Namespace: in.Namespace, Labels: labels(in)},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable:               &one,
			UnhealthyPodEvictionPolicy: ptr.To(policyv1.AlwaysAllow),
			Selector:                   &metav1.LabelSelector{MatchLabels: selector(in)},
		},
	}
}
