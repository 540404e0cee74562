package apikey

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
)

type fakeReviewer struct {
	CreateFn func(r *authorizationv1.SelfSubjectAccessReview) (*authorizationv1.SelfSubjectAccessReview, error)
}

func (f *fakeReviewer) Create(_ context.Context, r *authorizationv1.SelfSubjectAccessReview, _ metav1.CreateOptions) (*authorizationv1.SelfSubjectAccessReview, error) {
	return f.CreateFn(r)
}

func allow(verbs ...string) *fakeReviewer {
	return &fakeReviewer{CreateFn: func(r *authorizationv1.SelfSubjectAccessReview) (*authorizationv1.SelfSubjectAccessReview, error) {
		for _, v := range verbs {
			if r.Spec.ResourceAttributes.Verb == v && r.Spec.ResourceAttributes.Resource == "pods" && r.Spec.ResourceAttributes.Namespace == "" {
				r.Status.Allowed = true
			}
		}
		return r, nil
	}}
}

func TestCanWatchPods(t *testing.T) {
	cases := map[string]struct {
		reason string
		r      reviewer
		want   bool
	}{
		"Allowed": {
			reason: "With list and watch on pods in every namespace the Pod watch can run.",
			r:      allow("list", "watch"),
			want:   true,
		},
		"NoWatch": {
			reason: "Without watch the informer would never sync, so the Pod watch must be left out.",
			r:      allow("list"),
			want:   false,
		},
		"ReviewFails": {
			reason: "When the API server cannot answer, assume no access rather than risk a controller that never starts.",
			r: &fakeReviewer{CreateFn: func(*authorizationv1.SelfSubjectAccessReview) (*authorizationv1.SelfSubjectAccessReview, error) {
				return nil, errors.New("boom")
			}},
			want: false,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, canWatchPods(context.Background(), tc.r)); diff != "" {
				t.Errorf("%s\ncanWatchPods(...): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}
