package fn

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ai-decenter/redishttp/internal/contract"

	"github.com/crossplane/function-sdk-go/errors"
	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
	"github.com/crossplane/function-sdk-go/request"
	"github.com/crossplane/function-sdk-go/resource"
	"github.com/crossplane/function-sdk-go/resource/composite"
	"github.com/crossplane/function-sdk-go/response"
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

// A podFailure is why the instance's Redis pods are failing, "" when they
// are not. Summary names the pods, containers and reasons and stays the same
// while the failure does; Detail adds what the kubelet and the restore said
// (a log tail, a back-off, the backup and what to do), which changes from
// one restart to the next.
type podFailure struct {
	Summary string
	Detail  string
}

// podProblem explains, in sentences a tenant can act on, why the Redis pods
// Crossplane sent are failing.
func podProblem(ps []resource.Required) podFailure {
	var summaries, details []string
	for _, p := range ps {
		if summary, detail := containerProblem(p); summary != "" {
			summaries, details = append(summaries, summary), append(details, detail)
		}
	}
	return podFailure{Summary: strings.Join(summaries, "; "), Detail: strings.Join(details, "; ")}
}

func containerProblem(pod resource.Required) (string, string) {
	var cs []any
	for _, kind := range []string{"initContainerStatuses", "containerStatuses"} {
		s, _, _ := unstructured.NestedSlice(pod.Resource.Object, "status", kind)
		cs = append(cs, s...)
	}
	type problem struct{ summary, detail string }
	var problems []problem
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
		summary, detail := p, p
		if msg, _, _ := unstructured.NestedString(m, "state", "waiting", "message"); msg != "" {
			detail += ": " + oneLine(msg)
		}
		if name == contract.RestoreContainer {
			// The restore's own words: why (its reason, when it has the
			// shape of one), which backup, and what to do.
			msg, _, _ := unstructured.NestedString(m, "lastState", "terminated", "message")
			if res := (contract.BackupResult{}); json.Unmarshal([]byte(msg), &res) == nil && res.Message != "" {
				if reasonRE.MatchString(res.Reason) {
					summary += ": " + res.Reason
					detail += ": " + res.Reason
				}
				detail += ": " + oneLine(res.Message)
			}
		}
		problems = append(problems, problem{summary, detail})
	}
	if len(problems) == 0 {
		return "", ""
	}
	sort.Slice(problems, func(i, j int) bool { return problems[i].detail < problems[j].detail })
	summaries, details := make([]string, len(problems)), make([]string, len(problems))
	for i, p := range problems {
		summaries[i], details[i] = p.summary, p.detail
	}
	prefix := fmt.Sprintf("Redis pod %s/%s is failing: ", pod.Resource.GetNamespace(), pod.Resource.GetName())
	return prefix + strings.Join(summaries, "; "), prefix + strings.Join(details, "; ")
}

// Condition RedisPodsHealthy: False while the instance is Failed because of
// its pods, saying which and why; True once they recovered.
const (
	conditionPodsHealthy = "RedisPodsHealthy"
	reasonPodFailing     = "RedisPodFailing"
	reasonPodsRecovered  = "RedisPodsRecovered"
)

// reportPodFailure sets condition RedisPodsHealthy from f (zero: no failure)
// and emits a Warning event once per distinct failure: when the condition
// the XR carries does not already hold f's summary. Crossplane's event
// recorder folds only identical events, and a failure's detail changes at
// every restart: there was one Warning per reconcile.
func reportPodFailure(rsp *fnv1.RunFunctionResponse, xr *composite.Unstructured, f podFailure) {
	status, msg := observedCondition(xr, conditionPodsHealthy)
	switch {
	case f.Summary != "":
		response.ConditionFalse(rsp, conditionPodsHealthy, reasonPodFailing).WithMessage(f.Summary).TargetCompositeAndClaim()
		if status != "False" || msg != f.Summary {
			response.Warning(rsp, errors.New(f.Detail)).WithReason(reasonPodFailing).TargetCompositeAndClaim()
		}
	case status == "False":
		response.ConditionTrue(rsp, conditionPodsHealthy, reasonPodsRecovered).WithMessage("no Redis pod is failing any more").TargetCompositeAndClaim()
	}
}

// observedCondition returns the status and message of the XR's condition of
// type typ, "" when it has none.
func observedCondition(xr *composite.Unstructured, typ string) (string, string) {
	conds, _, _ := unstructured.NestedSlice(xr.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if t, _ := m["type"].(string); t == typ {
			st, _ := m["status"].(string)
			msg, _ := m["message"].(string)
			return st, msg
		}
	}
	return "", ""
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
