package config

import (
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ai-decenter/redishttp/apis/v1alpha1"

	"github.com/crossplane/crossplane-runtime/v2/pkg/controller"
	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
	"github.com/crossplane/crossplane-runtime/v2/pkg/event"
	"github.com/crossplane/crossplane-runtime/v2/pkg/ratelimiter"
	"github.com/crossplane/crossplane-runtime/v2/pkg/reconciler/providerconfig"
	"github.com/crossplane/crossplane-runtime/v2/pkg/resource"
)

// ApiKeys record the use of either config kind with a namespaced
// ProviderConfigUsage labelled with the config's kind and name, so both
// reconcilers count ProviderConfigUsages; a ClusterProviderConfig's are
// listed across namespaces.
var kinds = []struct {
	gk     string
	config client.Object
	of     resource.ProviderConfigKinds
}{
	{
		gk:     v1alpha1.ProviderConfigGroupKind,
		config: &v1alpha1.ProviderConfig{},
		of: resource.ProviderConfigKinds{
			Config:    v1alpha1.ProviderConfigGroupVersionKind,
			Usage:     v1alpha1.ProviderConfigUsageGroupVersionKind,
			UsageList: v1alpha1.ProviderConfigUsageListGroupVersionKind,
		},
	},
	{
		gk:     v1alpha1.ClusterProviderConfigGroupKind,
		config: &v1alpha1.ClusterProviderConfig{},
		of: resource.ProviderConfigKinds{
			Config:    v1alpha1.ClusterProviderConfigGroupVersionKind,
			Usage:     v1alpha1.ProviderConfigUsageGroupVersionKind,
			UsageList: v1alpha1.ProviderConfigUsageListGroupVersionKind,
		},
	},
}

// Setup adds a controller per config kind that accounts for its usage.
func Setup(mgr ctrl.Manager, o controller.Options) error {
	for _, k := range kinds {
		name := providerconfig.ControllerName(k.gk)
		r := providerconfig.NewReconciler(mgr, k.of,
			providerconfig.WithLogger(o.Logger.WithValues("controller", name)),
			providerconfig.WithRecorder(event.NewAPIRecorder(mgr.GetEventRecorderFor(name)))) //nolint:staticcheck // crossplane-runtime v2.4 recorders still take the old events API.

		err := ctrl.NewControllerManagedBy(mgr).
			Named(name).
			WithOptions(o.ForControllerRuntime()).
			For(k.config).
			Watches(&v1alpha1.ProviderConfigUsage{}, &resource.EnqueueRequestForProviderConfig{Kind: k.of.Config.Kind}).
			Complete(ratelimiter.NewReconciler(name, r, o.GlobalRateLimiter))
		if err != nil {
			return errors.Wrapf(err, "cannot set up %s controller", k.gk)
		}
	}
	return nil
}

// SetupGated adds the controllers once the config and usage CRDs exist.
func SetupGated(mgr ctrl.Manager, o controller.Options) error {
	o.Gate.Register(func() {
		if err := Setup(mgr, o); err != nil {
			mgr.GetLogger().Error(err, "cannot set up provider config controllers")
			panic(err)
		}
	}, v1alpha1.ProviderConfigGroupVersionKind, v1alpha1.ClusterProviderConfigGroupVersionKind, v1alpha1.ProviderConfigUsageGroupVersionKind)
	return nil
}
