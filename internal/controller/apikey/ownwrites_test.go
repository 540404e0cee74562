package apikey

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ai-decenter/redishttp/apis/v1alpha1"

	"github.com/crossplane/crossplane-runtime/v2/pkg/meta"
)

func TestOwnWrite(t *testing.T) {
	ak := func(gen int64, labels, annotations map[string]string) *v1alpha1.ApiKey {
		return &v1alpha1.ApiKey{ObjectMeta: metav1.ObjectMeta{Generation: gen, Labels: labels, Annotations: annotations}}
	}
	name := map[string]string{meta.AnnotationKeyExternalName: "team-a.web.0123abcd"}
	cases := map[string]struct {
		reason string
		was    *v1alpha1.ApiKey
		is     *v1alpha1.ApiKey
		want   bool
	}{
		"ExternalNameSet": {
			reason: "Setting the external name of a new ApiKey is the reconciler's own write.",
			was:    ak(1, nil, nil),
			is:     ak(1, nil, name),
			want:   true,
		},
		"CreationAnnotations": {
			reason: "The creation annotations are the reconciler's own writes.",
			was:    ak(1, nil, name),
			is:     ak(1, nil, map[string]string{meta.AnnotationKeyExternalName: "team-a.web.0123abcd", meta.AnnotationKeyExternalCreateSucceeded: "now"}),
			want:   true,
		},
		"ExternalNameChanged": {
			reason: "A changed external name is the tenant's: it must be reconciled.",
			was:    ak(1, nil, name),
			is:     ak(1, nil, map[string]string{meta.AnnotationKeyExternalName: "other"}),
		},
		"SpecChanged": {
			reason: "A new generation is a spec change: it must be reconciled.",
			was:    ak(1, nil, name),
			is:     ak(2, nil, name),
		},
		"OtherAnnotation": {
			reason: "Another annotation (say crossplane.io/paused) must be reconciled.",
			was:    ak(1, nil, name),
			is:     ak(1, nil, map[string]string{meta.AnnotationKeyExternalName: "team-a.web.0123abcd", meta.AnnotationKeyReconciliationPaused: "true"}),
		},
		"LabelChanged": {
			reason: "A label change must be reconciled.",
			was:    ak(1, nil, name),
			is:     ak(1, map[string]string{"team": "a"}, name),
		},
	}
	for n, tc := range cases {
		t.Run(n, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, ownWrite(tc.was, tc.is)); diff != "" {
				t.Errorf("%s\nownWrite(...): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}
