package fn

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ai-decenter/redishttp/internal/contract"

	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
	"github.com/crossplane/function-sdk-go/request"
	"github.com/crossplane/function-sdk-go/resource"
)

// requirementPod is the key under which the function asks Crossplane for the
// Redis pods. Pods are not composed (the StatefulSet makes them), so the only
// way to see why Redis is not coming up, and which pod is the master, is to
// ask for the pods themselves.
const requirementPod = "redis-pod"

// failingReasons are container states that will not fix themselves without a
// change: a tenant should hear about them on their own object.
var failingReasons = map[string]bool{
	"CrashLoopBackOff":           true,
	"ImagePullBackOff":           true,
	"ErrImagePull":               true,
	"InvalidImageName":           true,
	"CreateContainerConfigError": true,
	"CreateContainerError":       true,
	"RunContainerError":          true,
}

// requirePod asks Crossplane to send the instance's Redis pods on the next
// call.
func requirePod(rsp *fnv1.RunFunctionResponse, in *instance) {
	ns := in.Namespace
	require(rsp, requirementPod, &fnv1.ResourceSelector{
		ApiVersion: "v1",
		Kind:       "Pod",
		Match:      &fnv1.ResourceSelector_MatchLabels{MatchLabels: &fnv1.MatchLabels{Labels: contract.PodSelector(in.Name)}},
		Namespace:  &ns,
	})
}

// pods are the instance's Redis pods Crossplane sent, by name.
func pods(req *fnv1.RunFunctionRequest) []resource.Required {
	ps, ok, err := request.GetRequiredResource(req, requirementPod)
	if err != nil || !ok {
		return nil
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].Resource.GetName() < ps[j].Resource.GetName() })
	return ps
}

// roles are what the instance's pods say of themselves: the master (the one
// pod its role label names, "" when none or several do, as during a
// failover), whether that pod is ready, and how many ready replicas there
// are.
type roles struct {
	Master        string
	MasterReady   bool
	ReadyReplicas int32
}

func rolesOf(ps []resource.Required) roles {
	var r roles
	masters := 0
	for _, p := range ps {
		u := p.Resource
		if u.GetDeletionTimestamp() != nil {
			continue
		}
		switch u.GetLabels()[contract.LabelRole] {
		case contract.RoleMaster:
			masters++
			r.Master, r.MasterReady = u.GetName(), podReady(p)
		case contract.RoleReplica:
			if podReady(p) {
				r.ReadyReplicas++
			}
		}
	}
	if masters != 1 {
		r.Master, r.MasterReady = "", false
	}
	return r
}

func podReady(p resource.Required) bool {
	conds, _, _ := unstructured.NestedSlice(p.Resource.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Ready" {
			return m["status"] == "True"
		}
	}
	return false
}

// require adds a resource requirement to the response.
func require(rsp *fnv1.RunFunctionResponse, key string, sel *fnv1.ResourceSelector) {
	if rsp.GetRequirements() == nil {
		rsp.Requirements = &fnv1.Requirements{}
	}
	if rsp.GetRequirements().GetResources() == nil {
		rsp.Requirements.Resources = map[string]*fnv1.ResourceSelector{}
	}
	rsp.Requirements.Resources[key] = sel
}

// podProblem explains, in a sentence a tenant can act on, why the Redis pod
// Crossplane sent is failing, or returns "" when it is not (or was not sent).
func podProblem(ps []resource.Required) string {
	var problems []string
	for _, p := range ps {
		if msg := containerProblem(p); msg != "" {
			problems = append(problems, msg)
		}
	}
	return strings.Join(problems, "; ")
}

func containerProblem(pod resource.Required) string {
	var cs []any
	for _, kind := range []string{"initContainerStatuses", "containerStatuses"} {
		s, _, _ := unstructured.NestedSlice(pod.Resource.Object, "status", kind)
		cs = append(cs, s...)
	}
	var problems []string
	for _, c := range cs {
		m, _ := c.(map[string]any)
		name, _, _ := unstructured.NestedString(m, "name")
		reason, _, _ := unstructured.NestedString(m, "state", "waiting", "reason")
		if !failingReasons[reason] {
			continue
		}
		p := fmt.Sprintf("container %q is %s", name, reason)
		if last, _, _ := unstructured.NestedString(m, "lastState", "terminated", "reason"); last == "OOMKilled" {
			p += " after being OOMKilled: raise spec.memory"
		}
		if msg, _, _ := unstructured.NestedString(m, "state", "waiting", "message"); msg != "" {
			p += ": " + oneLine(msg)
		}
		if name == contract.RestoreContainer {
			// The restore's own words: why (its reason, when it has the
			// shape of one), which backup, and what to do.
			msg, _, _ := unstructured.NestedString(m, "lastState", "terminated", "message")
			if res := (contract.BackupResult{}); json.Unmarshal([]byte(msg), &res) == nil && res.Message != "" {
				if reasonRE.MatchString(res.Reason) {
					p += ": " + res.Reason
				}
				p += ": " + oneLine(res.Message)
			}
		}
		problems = append(problems, p)
	}
	if len(problems) == 0 {
		return ""
	}
	sort.Strings(problems)
	return fmt.Sprintf("Redis pod %s/%s is failing: %s", pod.Resource.GetNamespace(), pod.Resource.GetName(), strings.Join(problems, "; "))
}

// maxMessage is how many bytes of a kubelet message a tenant sees.
const maxMessage = 300

// oneLine keeps a kubelet message to one bounded line of valid UTF-8: it cuts
// on a rune boundary, since a response with a broken character cannot be
// marshalled and would fail every reconcile of the instance.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(strings.ToValidUTF8(s, "\uFFFD")), " ")
	if len(s) <= maxMessage {
		return s
	}
	return truncate(s, maxMessage) + "..."
}
