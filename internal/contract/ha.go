package contract

import "fmt"

// High availability (spec.replicas 3 or 5): one master, the other pods its
// replicas, Redis Sentinel in every pod deciding failovers. Every Redis pod of
// an instance, master or replica, carries the labels PodSelector returns; the
// master alone carries LabelRole=RoleMaster, which the instance's Service
// (ServiceName) selects. An instance with one replica has no Sentinel and its
// single pod is always the master.
const (
	// LabelRole is on every Redis pod of an instance with replicas: RoleMaster
	// on the one pod that is Redis's master, RoleReplica on the others. A
	// coordinator in each pod keeps its own pod's label true; a pod without
	// the label (starting, or its coordinator not yet sure) is neither.
	LabelRole   = "redishttp.io/role"
	RoleMaster  = "master"
	RoleReplica = "replica"

	// SentinelPort is Sentinel's port in every pod and on SentinelServiceName.
	SentinelPort = 26379
	// SentinelMasterName is the name Sentinel monitors the master under (the
	// "<master-name>" of SENTINEL GET-MASTER-ADDR-BY-NAME), in every instance.
	SentinelMasterName = "redishttp"

	// MaxPods is the most Redis pods an instance has.
	MaxPods = 5
)

// PodSelector selects every Redis pod of an instance (and no gateway pod).
func PodSelector(instance string) map[string]string {
	return map[string]string{LabelName: NameRedis, LabelInstance: instance}
}

// MasterSelector selects the instance's master pod; ServiceName's Service
// uses it when the instance has replicas.
func MasterSelector(instance string) map[string]string {
	s := PodSelector(instance)
	s[LabelRole] = RoleMaster
	return s
}

// PodName is the name of the StatefulSet's pod with this ordinal.
func PodName(instance string, ordinal int) string {
	return fmt.Sprintf("%s-%d", StatefulSetName(instance), ordinal)
}

// PodHost is the stable DNS name of one Redis pod, through the headless
// Service: <pod>.<headless>.<namespace>.svc.<domain>. Sentinel and replicas
// address each other by it (pod IPs change when a pod is recreated).
func PodHost(instance, namespace string, ordinal int, clusterDomain string) string {
	return fmt.Sprintf("%s.%s.%s.svc.%s", PodName(instance, ordinal), HeadlessServiceName(instance), namespace, clusterDomain)
}

// ReplicasServiceName is the ClusterIP Service of the ready replicas (reads).
func ReplicasServiceName(instance string) string { return instance + "-redis-replicas" }

// SentinelServiceName is the ClusterIP Service of every pod's Sentinel, for
// Sentinel-aware clients.
func SentinelServiceName(instance string) string { return instance + "-redis-sentinel" }

// SentinelHost is the in-cluster DNS name of SentinelServiceName.
func SentinelHost(instance, namespace, clusterDomain string) string {
	return fmt.Sprintf("%s.%s.svc.%s", SentinelServiceName(instance), namespace, clusterDomain)
}

// Status fields of an instance with replicas (claim mode: Crossplane copies
// them to the claim).
const (
	// StatusMaster names the master's pod, as the role label says.
	StatusMaster = "status.master"
	// StatusReplicas counts the ready replicas (not the master).
	StatusReplicas = "status.replicas"
)

// AnnotationReplicas is on the StatefulSet of an instance with replicas: the
// number of pods the tenant asked for. While it is below the StatefulSet's
// replicas, the function is waiting to scale down: the coordinators hand the
// master to a pod that stays (ordinal below it) first, and pods that go are
// never promoted.
const AnnotationReplicas = "redishttp.io/replicas"
