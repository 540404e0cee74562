package coordinator

import (
	"context"
	"encoding/json"
	"strconv"

	kerrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/ai-decenter/redishttp/internal/contract"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
)

// Pods is the Kube of one instance, through the API server, with only the
// permissions the function's Role grants: get of the StatefulSet, get and
// patch of its pods by name.
type Pods struct {
	Client    kubernetes.Interface
	Namespace string
	Instance  string
}

// Replicas returns the StatefulSet's replicas and the tenant's wanted count
// (contract.AnnotationReplicas, when valid and lower).
func (p *Pods) Replicas(ctx context.Context) (int, int, error) {
	sts, err := p.Client.AppsV1().StatefulSets(p.Namespace).Get(ctx, contract.StatefulSetName(p.Instance), metav1.GetOptions{})
	if err != nil {
		return 0, 0, err
	}
	have := 1
	if sts.Spec.Replicas != nil {
		have = int(*sts.Spec.Replicas)
	}
	want := have
	if w, err := strconv.Atoi(sts.Annotations[contract.AnnotationReplicas]); err == nil && w >= 1 && w < have {
		want = w
	}
	return have, want, nil
}

// Role returns the role label of a pod.
func (p *Pods) Role(ctx context.Context, ordinal int) (string, bool, error) {
	pod, err := p.Client.CoreV1().Pods(p.Namespace).Get(ctx, contract.PodName(p.Instance, ordinal), metav1.GetOptions{})
	if kerrors.IsNotFound(err) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return pod.Labels[contract.LabelRole], true, nil
}

// SetRole sets (or, for "", removes) a pod's role label with a merge patch.
func (p *Pods) SetRole(ctx context.Context, ordinal int, role string) error {
	var v any
	if role != "" {
		v = role
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]any{contract.LabelRole: v}}})
	if err != nil {
		return errors.Wrap(err, "cannot encode the label patch")
	}
	_, err = p.Client.CoreV1().Pods(p.Namespace).Patch(ctx, contract.PodName(p.Instance, ordinal), types.MergePatchType, patch, metav1.PatchOptions{})
	if kerrors.IsNotFound(err) {
		return nil
	}
	return err
}
