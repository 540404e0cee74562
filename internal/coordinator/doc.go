// Package coordinator keeps one pod of an instance with replicas in its
// place: it points the pod's held Redis at the master a majority of Sentinels
// name, tells its Sentinel what to monitor, elects the first master when no
// Sentinel knows one, hands the master over before a scale-down removes its
// pod, and keeps the pod's role label (which the instance's Service selects)
// true. It runs in every pod, as cmd/coordinator.
package coordinator
