// Package podrunner stands in for a kubelet on machines without containers. It
// turns one pod spec into running processes: the pod gets its own network
// namespace holding its IP (so 127.0.0.1 is the pod's own, as in a real pod,
// and the host reaches it at the pod IP); its ConfigMap, Secret, emptyDir and
// PersistentVolumeClaim volumes become local directories, and container paths
// under their mount points (in commands, arguments, probe commands and the
// mounted files) are mapped to them; init containers run to completion in
// order, then the main containers run and are restarted when they exit
// (counted); each container's readiness and liveness probes (exec with the
// container's environment, httpGet, tcpSocket) run on their schedule, and
// Stop runs preStop hooks and honours the termination grace period. Tests
// inject faults: Kill a container, Freeze and Thaw the pod, cut its network.
//
// Which containers can run is the Resolver's business: Redis images run the
// redis-server and sh of this machine (Redis), images of a registry run the
// static binary taken out of the image (Registry).
//
// Network namespaces need root (or CAP_NET_ADMIN and CAP_SYS_ADMIN).
package podrunner
