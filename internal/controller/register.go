package controller

import (
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/ai-decenter/redishttp/internal/controller/apikey"
	"github.com/ai-decenter/redishttp/internal/controller/config"

	"github.com/crossplane/crossplane-runtime/v2/pkg/controller"
)

// Setup adds every controller of the provider to the manager at once.
func Setup(mgr ctrl.Manager, o controller.Options, c apikey.Config) error {
	if err := config.Setup(mgr, o); err != nil {
		return err
	}
	return apikey.Setup(mgr, o, c)
}

// SetupGated adds every controller of the provider to the manager, each one
// once the CRDs it needs are installed (the safe-start capability: Crossplane
// may install a provider's CRDs after the provider starts).
func SetupGated(mgr ctrl.Manager, o controller.Options, c apikey.Config) error {
	if err := config.SetupGated(mgr, o); err != nil {
		return err
	}
	return apikey.SetupGated(mgr, o, c)
}
