package apikey

import (
	"context"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	authzclient "k8s.io/client-go/kubernetes/typed/authorization/v1"
	"k8s.io/client-go/rest"
)

// A reviewer asks the API server whether the provider may do something.
type reviewer interface {
	Create(ctx context.Context, r *authorizationv1.SelfSubjectAccessReview, o metav1.CreateOptions) (*authorizationv1.SelfSubjectAccessReview, error)
}

// canWatchPods reports whether the provider may list and watch pods in every
// namespace. The Pod watch that heals ApiKeys at once after a Redis restart
// needs it, and packages cannot grant it: a provider upgraded without the
// new RBAC rule would otherwise fail its cache sync and crash-loop, healing
// nothing at all.
func canWatchPods(ctx context.Context, r reviewer) bool {
	for _, verb := range []string{"list", "watch"} {
		rv, err := r.Create(ctx, &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: verb, Resource: "pods"},
		}}, metav1.CreateOptions{})
		if err != nil || !rv.Status.Allowed {
			return false
		}
	}
	return true
}

// podAccess checks canWatchPods with the manager's credentials.
func podAccess(cfg *rest.Config) bool {
	c, err := authzclient.NewForConfig(cfg)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return canWatchPods(ctx, c.SelfSubjectAccessReviews())
}
