package fn

import (
	"fmt"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	kresource "k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/ai-decenter/redishttp/internal/contract"

	"github.com/crossplane/function-sdk-go/resource"
)

// High availability (spec.replicas 3 or 5). Every pod runs three containers:
//
//   - redis: redis-server, started "held": as a replica of an address where
//     nothing listens (127.0.0.1:1). A held Redis accepts no write and, not
//     being connected to a master, refuses to serve a replica's SYNC
//     (NOMASTERLINK), so a pod that comes back with an empty or stale data
//     directory can neither become master by itself nor wipe a peer.
//   - sentinel: redis-server --sentinel with a configuration rebuilt at every
//     start from the pod's name alone (hostnames, a fixed myid): no ghost
//     sentinels. It monitors nothing until the coordinator tells it which pod
//     is the master.
//   - coordinator: our program (cmd/coordinator). It points the held Redis at
//     the master a majority of Sentinels name, elects the first master when
//     no Sentinel knows one (the pod with the most data), adds the master to
//     its Sentinel, and keeps its pod's role label (contract.LabelRole) true,
//     which the Service <name>-redis selects. Sentinel alone promotes
//     replicas after a failure.
//
// Planned stops hand the master over first: the redis container's preStop
// pauses writes, waits until the replicas have every write, asks Sentinel
// for a failover and waits until this Redis is a replica.
const (
	sentinelContainer    = "sentinel"
	coordinatorContainer = "coordinator"

	// heldMaster is where a held Redis replicates from: nothing listens there.
	heldMaster = "127.0.0.1 1"

	sentinelDir       = "/sentinel"
	serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

	// minReplicasMaxLag is how long, in seconds, a master accepts writes
	// without hearing from any replica: a master cut off from its replicas
	// (frozen, partitioned) refuses writes after it, so it cannot take many
	// writes a failover elsewhere would lose.
	minReplicasMaxLag = 10
)

// The coordinator's resources: it polls a handful of Redis and Sentinel
// processes once a second.
var (
	coordinatorCPURequest    = "10m"
	coordinatorCPULimit      = "100m"
	coordinatorMemoryRequest = "32Mi"
	coordinatorMemoryLimit   = "64Mi"
	sentinelCPURequest       = "10m"
	sentinelCPULimit         = "100m"
	sentinelMemoryRequest    = "16Mi"
	sentinelMemoryLimit      = "64Mi"
)

// haRedisConf are the redis.conf lines of every pod of an instance with
// replicas. A master with no replica acknowledging within minReplicasMaxLag
// seconds refuses writes (NOREPLICAS): the split-brain bound.
func haRedisConf() string {
	return fmt.Sprintf("min-replicas-to-write 1\nmin-replicas-max-lag %d\nreplica-read-only yes\nreplica-serve-stale-data yes\nrepl-diskless-sync yes\n", minReplicasMaxLag)
}

// podHostExpr is a shell expression for this pod's stable DNS name: the
// kubelet names a StatefulSet's pod's host after the pod.
func podHostExpr(in *instance, clusterDomain string) string {
	return fmt.Sprintf(`$HOSTNAME.%s.%s.svc.%s`, contract.HeadlessServiceName(in.Name), in.Namespace, clusterDomain)
}

// redisHAScript starts redis-server held, announcing its stable name to the
// master (Sentinel finds replicas by what they announce; pod IPs change).
func redisHAScript(in *instance, clusterDomain string) string {
	return fmt.Sprintf(`exec redis-server "$1" --replica-announce-ip "%s" --replicaof %s`, podHostExpr(in, clusterDomain), heldMaster)
}

// sentinelScript writes sentinel.conf from the pod's name and the password
// and runs Sentinel. The file is rebuilt at every start (an emptyDir), with a
// myid derived from the pod's name: a restarted Sentinel is the same Sentinel
// to its peers, never a ghost beside its old self. Hostnames, not IPs, are
// resolved and announced, and set before anything is monitored.
func sentinelScript(in *instance, clusterDomain string) string {
	return fmt.Sprintf(`set -eu
host="%s"
id="$(printf %%s "$host" | sha1sum | cut -c1-40)"
umask 077
cat > %s/sentinel.conf <<EOF
port %d
bind * -::*
dir %s
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip $host
sentinel announce-port %d
sentinel myid $id
sentinel deny-scripts-reconfig yes
requirepass $REDISCLI_AUTH
sentinel sentinel-pass $REDISCLI_AUTH
EOF
exec redis-server %s/sentinel.conf --sentinel
`, podHostExpr(in, clusterDomain), sentinelDir, contract.SentinelPort, sentinelDir, contract.SentinelPort, sentinelDir)
}

// handoverScript is the redis container's preStop hook: a master hands over
// before it stops, losing no acknowledged write. It pauses writes (clients
// wait; none is acknowledged here any more), waits up to 5 s until every
// online replica has the master's offset, asks a Sentinel for a failover and,
// as soon as the Sentinels name the new master, follows it (Sentinel's own
// reconfiguration would wait behind the pause), waiting up to 20 s. The
// writes that waited then fail with READONLY instead of being lost. A
// replica, or a master without an online replica, stops at once. The
// coordinator's Handover does the same in Go, for scale-downs.
func handoverScript(in *instance, clusterDomain string) string {
	return fmt.Sprintf(`self="%s"
cli() { redis-cli -h 127.0.0.1 -p %d "$@" 2>/dev/null | tr -d '\r'; }
sen() { redis-cli -h %s -p %d "$@" 2>/dev/null | tr -d '\r'; }
[ "$(cli role | head -n 1)" = master ] || exit 0
cli info replication | grep -q '^slave[0-9]*:.*state=online' || exit 0
cli client pause 30000 write >/dev/null
i=0
while [ $i -lt 50 ]; do
  info="$(cli info replication)"
  off="$(echo "$info" | sed -n 's/^master_repl_offset://p')"
  echo "$info" | grep '^slave[0-9]*:.*state=online' | grep -v "offset=$off," >/dev/null || break
  sleep 0.1; i=$((i+1))
done
i=0
while [ $i -lt 100 ]; do
  [ "$(cli role | head -n 1)" = master ] || break
  set -- $(sen sentinel get-master-addr-by-name %s)
  if [ $# = 2 ] && [ "$1" != "$self" ]; then
    cli replicaof "$1" "$2" >/dev/null
  elif [ $((i %% 10)) = 0 ]; then
    sen sentinel failover %s >/dev/null
  fi
  sleep 0.2; i=$((i+1))
done
cli client unpause >/dev/null
`, podHostExpr(in, clusterDomain), contract.RedisPort, contract.SentinelHost(in.Name, in.Namespace, clusterDomain), contract.SentinelPort,
		contract.SentinelMasterName, contract.SentinelMasterName)
}

// makeHA turns the single-Redis StatefulSet into a master with replicas:
// desired pods, the redis container started held with its preStop handover,
// and the sentinel and coordinator containers. wantReplicas is what the
// tenant asked for, which may be below replicas while the master is handed
// to a pod that stays.
func makeHA(sts *appsv1.StatefulSet, in *instance, replicas, wantReplicas int32, coordinatorImage, clusterDomain string) {
	if sts.Annotations == nil {
		sts.Annotations = map[string]string{}
	}
	sts.Annotations[contract.AnnotationReplicas] = strconv.Itoa(int(wantReplicas))
	sts.Spec.Replicas = new(replicas)
	pod := &sts.Spec.Template.Spec
	pod.ServiceAccountName = contract.StatefulSetName(in.Name)
	// The deprecated twin too, so that the composition owns it: the API
	// server defaults it from serviceAccountName and copies it back into an
	// empty serviceAccountName, so when a scale to one replica drops the
	// field, a serviceAccount nobody owns would keep naming the coordinators'
	// ServiceAccount, deleted at the same time, and no pod could be created.
	pod.DeprecatedServiceAccount = pod.ServiceAccountName
	pod.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{
		spread("kubernetes.io/hostname", in), spread("topology.kubernetes.io/zone", in),
	}

	redis := &pod.Containers[0]
	redis.Command = []string{"sh", "-c", redisHAScript(in, clusterDomain), redisContainer, configFile}
	redis.Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{
		Command: []string{"sh", "-c", handoverScript(in, clusterDomain)},
	}}}

	small := func(cpuReq, cpuLim, memReq, memLim string) corev1.ResourceRequirements {
		return corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: kresource.MustParse(cpuReq), corev1.ResourceMemory: kresource.MustParse(memReq)},
			Limits:   corev1.ResourceList{corev1.ResourceCPU: kresource.MustParse(cpuLim), corev1.ResourceMemory: kresource.MustParse(memLim)},
		}
	}
	sentinel := corev1.Container{
		Name:      sentinelContainer,
		Image:     redis.Image,
		Command:   []string{"sh", "-c", sentinelScript(in, clusterDomain)},
		Ports:     []corev1.ContainerPort{{Name: "sentinel", ContainerPort: contract.SentinelPort, Protocol: corev1.ProtocolTCP}},
		Env:       redis.Env,
		Resources: small(sentinelCPURequest, sentinelCPULimit, sentinelMemoryRequest, sentinelMemoryLimit),
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("sentinel")}},
			PeriodSeconds: 5, TimeoutSeconds: 3, FailureThreshold: 3, SuccessThreshold: 1,
		},
		SecurityContext: redis.SecurityContext,
		VolumeMounts:    []corev1.VolumeMount{{Name: "sentinel", MountPath: sentinelDir}},
	}
	coordinator := corev1.Container{
		Name:  coordinatorContainer,
		Image: coordinatorImage,
		Args: []string{
			"--instance=" + in.Name,
			"--namespace=" + in.Namespace,
			"--cluster-domain=" + clusterDomain,
		},
		Env: []corev1.EnvVar{{
			Name: "REDIS_PASSWORD",
			ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: contract.AuthSecretName(in.Name)},
				Key:                  contract.AuthPasswordKey,
			}},
		}, {Name: "GOMAXPROCS", Value: "1"}},
		Resources:       small(coordinatorCPURequest, coordinatorCPULimit, coordinatorMemoryRequest, coordinatorMemoryLimit),
		SecurityContext: redis.SecurityContext,
		// The only container with a service-account token: it patches the
		// role label of its own pod and of a demoted master.
		VolumeMounts: []corev1.VolumeMount{{Name: "kube-api-access", MountPath: serviceAccountDir, ReadOnly: true}},
	}
	pod.Containers = append(pod.Containers, sentinel, coordinator)
	pod.Volumes = append(pod.Volumes,
		corev1.Volume{Name: "sentinel", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: new(kresource.MustParse("16Mi"))}}},
		corev1.Volume{Name: "kube-api-access", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			DefaultMode: ptr.To[int32](0o440),
			Sources: []corev1.VolumeProjection{
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr.To[int64](3607)}},
				{ConfigMap: &corev1.ConfigMapProjection{
					LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"},
					Items:                []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}},
				}},
			},
		}}},
	)
}

// spread asks the scheduler to put the pods on different nodes (zones) when
// it can. ScheduleAnyway, not DoNotSchedule: on a one-node cluster a hard
// constraint would leave replicas pending, and replicas on one node still
// survive a process or pod failure.
func spread(key string, in *instance) corev1.TopologySpreadConstraint {
	return corev1.TopologySpreadConstraint{
		MaxSkew:           1,
		TopologyKey:       key,
		WhenUnsatisfiable: corev1.ScheduleAnyway,
		LabelSelector:     &metav1.LabelSelector{MatchLabels: contract.PodSelector(in.Name)},
	}
}

// coordinatorServiceAccount is the coordinators' identity; only their
// container mounts its token.
func coordinatorServiceAccount(in *instance) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{
		ObjectMeta:                   metav1.ObjectMeta{Name: contract.StatefulSetName(in.Name), Namespace: in.Namespace, Labels: labels(in)},
		AutomountServiceAccountToken: new(false),
	}
}

// coordinatorRole lets the coordinators read and label the instance's own
// pods, by name, and read its StatefulSet (how many pods there are and are
// wanted): nothing else, not even listing.
// The Role names all contract.MaxPods pods, so scaling needs no change of
// permissions.
func coordinatorRole(in *instance) *rbacv1.Role {
	pods := make([]string, 0, contract.MaxPods)
	for i := range contract.MaxPods {
		pods = append(pods, contract.PodName(in.Name, i))
	}
	return &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: contract.StatefulSetName(in.Name), Namespace: in.Namespace, Labels: labels(in)},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods"}, ResourceNames: pods, Verbs: []string{"get", "patch"}},
			{APIGroups: []string{"apps"}, Resources: []string{"statefulsets"}, ResourceNames: []string{contract.StatefulSetName(in.Name)}, Verbs: []string{"get"}},
		},
	}
}

func coordinatorRoleBinding(in *instance) *rbacv1.RoleBinding {
	name := contract.StatefulSetName(in.Name)
	return &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: in.Namespace, Labels: labels(in)},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: in.Namespace}},
	}
}

// replicasService routes reads to the ready replicas.
func replicasService(in *instance) *corev1.Service {
	sel := contract.PodSelector(in.Name)
	sel[contract.LabelRole] = contract.RoleReplica
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: contract.ReplicasServiceName(in.Name), Namespace: in.Namespace, Labels: labels(in)},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Selector: sel, Ports: servicePorts()},
	}
}

// sentinelService routes Sentinel-aware clients to any pod's Sentinel.
func sentinelService(in *instance) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: contract.SentinelServiceName(in.Name), Namespace: in.Namespace, Labels: labels(in)},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: contract.PodSelector(in.Name),
			Ports: []corev1.ServicePort{{
				Name: "sentinel", Port: contract.SentinelPort, TargetPort: intstr.FromString("sentinel"), Protocol: corev1.ProtocolTCP,
			}},
		},
	}
}

// haPodDisruptionBudget lets voluntary evictions (drains) take one pod at a
// time: the others keep a master and a majority of Sentinels.
func haPodDisruptionBudget(in *instance) *policyv1.PodDisruptionBudget {
	one := intstr.FromInt32(1)
	return &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: contract.ServiceName(in.Name), Namespace: in.Namespace, Labels: labels(in)},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable:             &one,
			UnhealthyPodEvictionPolicy: ptr.To(policyv1.AlwaysAllow),
			Selector:                   &metav1.LabelSelector{MatchLabels: contract.PodSelector(in.Name)},
		},
	}
}

// sentinelDetails are the connection details Sentinel-aware clients need.
func sentinelDetails(in *instance, clusterDomain string) map[string][]byte {
	return map[string][]byte{
		contract.KeySentinelAddress:    fmt.Appendf(nil, "%s:%d", contract.SentinelHost(in.Name, in.Namespace, clusterDomain), contract.SentinelPort),
		contract.KeySentinelMasterName: []byte(contract.SentinelMasterName),
	}
}

// podOrdinal is the ordinal of a pod of the instance's StatefulSet, or -1.
func podOrdinal(in *instance, pod string) int {
	s, ok := strings.CutPrefix(pod, contract.StatefulSetName(in.Name)+"-")
	if !ok {
		return -1
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || strconv.Itoa(n) != s {
		return -1
	}
	return n
}

// holdScaleDown keeps an instance with replicas at the pods it has while the
// tenant asks for fewer and the master is on a pod that would go: a
// StatefulSet removes its highest ordinals, and removing the master would be
// an unplanned failover (or, down to one pod, keep a replica's data instead
// of the master's). The coordinators see the wanted count on the StatefulSet,
// never promote a pod that goes, and hand the master to one that stays; the
// next composition then scales down. It returns a message while it holds.
func holdScaleDown(p *params, in *instance, observed map[resource.Name]resource.ObservedComposed, rs roles) string {
	oc, ok := observed[nameStatefulSet]
	if !ok {
		return ""
	}
	have, _ := oc.Resource.GetInteger("spec.replicas")
	if have <= 1 || have <= int64(p.Replicas) || have > contract.MaxPods {
		return ""
	}
	if o := podOrdinal(in, rs.Master); o >= 0 && o < int(p.Replicas) {
		return ""
	}
	p.WantReplicas, p.Replicas = p.Replicas, int32(have)
	return fmt.Sprintf("spec.replicas %d: waiting for the master (now %q) to move to a pod that stays (%s) before removing pods",
		p.WantReplicas, rs.Master, contract.PodName(in.Name, 0))
}

// replicasErrors refuses a change of spec.replicas between one pod and
// several while the instance keeps no data on disk (spec.persistence rdb
// and appendOnly both off). The change restarts every pod (one Redis, or a
// master and replicas, run different pod templates), and a Redis without
// persistence saves nothing when it stops and starts empty: every key
// would be lost. Between 3 and 5 pods the replicas keep the data through
// the roll.
func replicasErrors(p *params, observed map[resource.Name]resource.ObservedComposed) field.ErrorList {
	oc, ok := observed[nameStatefulSet]
	if !ok || p.RDB || p.AppendOnly {
		return nil
	}
	have, err := oc.Resource.GetInteger("spec.replicas")
	if err != nil || have < 1 || (have > 1) == p.HA() {
		return nil
	}
	msg := fmt.Sprintf("cannot change from %d pods to %d while spec.persistence keeps no data on disk (rdb and appendOnly both false): the change restarts every pod, and a Redis without persistence restarts empty. ", have, p.Replicas)
	if have > 1 {
		msg += "Switch spec.persistence.rdb on first (a rolling change: the replicas keep the data), then change spec.replicas"
	} else {
		msg += "No change keeps the keys of a single Redis without persistence: create a new instance with the replicas you want and copy the keys to it"
	}
	return field.ErrorList{field.Forbidden(field.NewPath("spec", "replicas"), msg)}
}
