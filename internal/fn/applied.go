package fn

import (
	"encoding/json"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/ai-decenter/redishttp/apis/instance/v1alpha1"

	"github.com/crossplane/function-sdk-go/errors"
	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
	"github.com/crossplane/function-sdk-go/request"
	"github.com/crossplane/function-sdk-go/resource"
	"github.com/crossplane/function-sdk-go/response"
)

// statusApplied is where the XR keeps the last spec the function accepted,
// with its defaults (v1alpha1.RedisHttpInstanceStatus.Applied): what runs.
const statusApplied = "status.applied"

// accept decodes, defaults and validates a spec, with the checks that depend
// on the platform (allowed images, the gateway image) and on what runs (no
// downgrade). It returns the params to compose and the spec as
// status.applied records it, or every problem at once.
func (f *Function) accept(spec map[string]any, in *instance, observed map[resource.Name]resource.ObservedComposed) (*params, map[string]any, field.ErrorList) {
	s, errs := decodeSpec(spec)
	if len(errs) > 0 {
		return nil, nil, errs
	}
	applyDefaults(s)
	p, errs := validateSpec(s, in.Name)
	if p != nil {
		errs = append(errs, imageErrors(p, f.images, observed)...)
		errs = append(errs, replicasErrors(p, observed)...)
	}
	if p != nil && (p.Backup != nil || p.Restore != nil) && f.backupImage == "" {
		path := field.NewPath("spec", "backup")
		if p.Backup == nil {
			path = field.NewPath("spec", "restore")
		}
		errs = append(errs, field.Forbidden(path, "this platform runs no backups (the function has no --backup-image): ask the platform team, or leave it out"))
	}
	if p != nil && p.HTTP != nil && f.gatewayImage == "" {
		errs = append(errs, field.Forbidden(field.NewPath("spec", "http", "enabled"), "this platform runs no HTTP gateway (the function has no --gateway-image): ask the platform team, or leave it off"))
	}
	if p != nil && p.HA() && f.coordinator == "" {
		errs = append(errs, field.Forbidden(field.NewPath("spec", "replicas"), "this platform runs no replicas (the function has no --coordinator-image): ask the platform team, or use 1"))
	}
	if p != nil && p.Monitoring && f.exporterImage == "" {
		errs = append(errs, field.Forbidden(field.NewPath("spec", "monitoring", "enabled"), "this platform runs no exporter (the function has no --exporter-image): ask the platform team, or leave it off"))
	}
	if len(errs) > 0 {
		return nil, nil, errs
	}
	if in.Claim {
		// Crossplane's own reference to the XR's Secret, not the tenant's.
		s.WriteConnectionSecretToRef = nil
	}
	applied, err := asMap(s)
	if err != nil {
		return nil, nil, field.ErrorList{field.InternalError(field.NewPath("spec"), err)}
	}
	return p, applied, nil
}

// lastApplied returns the spec status.applied records, nil when there is
// none (an instance never composed, or composed before status.applied
// existed).
func lastApplied(xr *resource.Composite) map[string]any {
	status, _ := xr.Resource.Object["status"].(map[string]any)
	applied, _ := status["applied"].(map[string]any)
	return applied
}

func asMap(s *v1alpha1.RedisHttpInstanceSpec) (map[string]any, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, errors.Wrap(err, "cannot encode the applied spec")
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, errors.Wrap(err, "cannot decode the applied spec")
	}
	pruneEmpty(m)
	return m, nil
}

// pruneEmpty removes the empty objects of m, at every depth. Crossplane
// applies the XR's status with server-side apply, and an empty object
// (a defaulted spec.http.ingress) where the last apply had fields came back
// from the API server as null, which the schema refuses: the status was
// never written again (switching an ingress off failed the composition).
func pruneEmpty(m map[string]any) {
	for k, v := range m {
		if c, ok := v.(map[string]any); ok {
			pruneEmpty(c)
			if len(c) == 0 {
				delete(m, k)
			}
		}
	}
}

// refuse tells the tenant, where they look, that a spec is refused while
// what runs stays as it was: a Warning event and a Valid=False condition on
// the claim and the XR, naming every wrong field. With no Fatal result
// Crossplane applies what the function still composes (the last accepted
// spec) and the status with phase Invalid.
func refuse(rsp *fnv1.RunFunctionResponse, msg string) {
	response.Warning(rsp, errors.New(msg)).WithReason(reasonInvalidSpec).TargetCompositeAndClaim()
	response.ConditionFalse(rsp, conditionValid, reasonInvalidSpec).WithMessage(msg).TargetCompositeAndClaim()
}

// invalid refuses a spec when nothing can be composed at all: a refusal
// (refuse) and a Fatal result, so that Crossplane keeps every composed
// object as it is.
func invalid(rsp *fnv1.RunFunctionResponse, msg string) {
	refuse(rsp, msg)
	response.Fatal(rsp, errors.New(msg))
}

// reasonInvalidSpec is the reason of the refusal's event and condition.
const reasonInvalidSpec = "InvalidSpec"

// invalidStatus sets the XR's status for a spec refused before anything was
// composed: phase Invalid, and not ready (Crossplane would call an XR with no
// composed resources ready).
func invalidStatus(req *fnv1.RunFunctionRequest, rsp *fnv1.RunFunctionResponse) error {
	dxr, err := request.GetDesiredCompositeResource(req)
	if err != nil {
		return errors.Wrap(err, "cannot get the desired composite resource")
	}
	if err := dxr.Resource.SetValue("status.phase", v1alpha1.PhaseInvalid); err != nil {
		return errors.Wrap(err, "cannot set status.phase")
	}
	dxr.Ready = resource.ReadyFalse
	return errors.Wrap(response.SetDesiredCompositeResource(rsp, dxr), "cannot set the desired composite resource")
}
