package fn

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/ai-decenter/redishttp/internal/contract"
)

func servicePorts() []corev1.ServicePort {
	return []corev1.ServicePort{{Name: "redis", Port: contract.RedisPort, TargetPort: intstr.FromString("redis"), Protocol: corev1.ProtocolTCP}}
}

// clientService is the ClusterIP Service apps connect to; its DNS name is the
// endpoint in the connection Secret. With replicas it selects the master
// only, by the role label the pods' coordinators keep true.
func clientService(in *instance, ha bool) *corev1.Service {
	sel := selector(in)
	if ha {
		sel = contract.MasterSelector(in.Name)
	}
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: contract.ServiceName(in.Name), Namespace: in.Namespace, Labels: labels(in)},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: sel,
			Ports:    servicePorts(),
		},
	}
}

// headlessService gives the StatefulSet's pod its stable DNS name. It
// publishes not-ready addresses so the pod is resolvable while it starts.
func headlessService(in *instance) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: contract.HeadlessServiceName(in.Name), Namespace: in.Namespace, Labels: labels(in)},
		Spec: corev1.ServiceSpec{
			Type:                     corev1.ServiceTypeClusterIP,
			ClusterIP:                corev1.ClusterIPNone,
			Selector:                 selector(in),
			Ports:                    servicePorts(),
			PublishNotReadyAddresses: true,
		},
	}
}
