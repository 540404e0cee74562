package apis

import (
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/ai-decenter/redishttp/apis/v1alpha1"
)

// AddToSchemes may be used to add all resources the provider reconciles to a
// Scheme. The composite resource types (apis/instance) are not among them: the
// provider reads instances as unstructured objects.
var AddToSchemes = runtime.SchemeBuilder{
	v1alpha1.SchemeBuilder.AddToScheme,
}

// AddToScheme adds all resources the provider reconciles to a Scheme.
func AddToScheme(s *runtime.Scheme) error {
	return AddToSchemes.AddToScheme(s)
}
