package v1alpha1

import (
	"reflect"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/crossplane/crossplane-runtime/v2/pkg/resource"
	xpv2 "github.com/crossplane/crossplane/apis/v2/core/v2"
)

// How the provider resolves the address of an instance's Redis, besides DNS
// (the default: the endpoint in the instance's status, its Service's
// in-cluster name).
const (
	// ResolveEndpointSlice connects to a ready pod IP of the instance's
	// Service, read from its EndpointSlices; for providers that run outside
	// the cluster network but can reach pod IPs.
	ResolveEndpointSlice = "EndpointSlice"
)

// InstanceAccess says how the provider reaches the Redis of a
// RedisHttpInstance. It never changes what is published to apps.
type InstanceAccess struct {
	// Resolve is DNS (default: dial the endpoint in the instance's status,
	// the in-cluster name of its Service) or EndpointSlice (dial a ready pod
	// IP of that Service).
	// +optional
	// +kubebuilder:validation:Enum=DNS;EndpointSlice
	// +kubebuilder:default=DNS
	Resolve string `json:"resolve,omitempty"`

	// AddressOverride is a host:port the provider dials for every instance,
	// instead of resolving it. Meant for out-of-cluster runs (tests,
	// `make dev`) with a port-forward or a local redis-server.
	// +optional
	// +kubebuilder:validation:MaxLength=261
	// +kubebuilder:validation:Pattern=`^[^\s:]+:[0-9]+$`
	AddressOverride string `json:"addressOverride,omitempty"`
}

// A ProviderConfigSpec defines the settings shared by the ApiKeys that use a
// ProviderConfig or ClusterProviderConfig.
type ProviderConfigSpec struct {
	// Instances says how to reach the Redis of RedisHttpInstances.
	// +optional
	Instances InstanceAccess `json:"instances,omitempty"`
}

// A ProviderConfigStatus reflects the observed state of a ProviderConfig.
type ProviderConfigStatus struct {
	xpv2.ProviderConfigStatus `json:",inline"`
}

// A ProviderConfig configures how ApiKeys in its namespace reach Redis.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="AGE",type="date",JSONPath=".metadata.creationTimestamp"
// +kubebuilder:printcolumn:name="RESOLVE",type="string",JSONPath=".spec.instances.resolve"
// +kubebuilder:printcolumn:name="ADDRESS-OVERRIDE",type="string",JSONPath=".spec.instances.addressOverride",priority=1
// +kubebuilder:resource:scope=Namespaced,categories={crossplane,provider,redishttp}
type ProviderConfig struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ProviderConfigSpec   `json:"spec,omitempty"`
	Status ProviderConfigStatus `json:"status,omitempty"`
}

// ProviderConfigList contains a list of ProviderConfig.
// +kubebuilder:object:root=true
type ProviderConfigList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ProviderConfig `json:"items"`
}

// A ClusterProviderConfig configures how ApiKeys in any namespace reach Redis.
// ApiKeys use the one named "default" unless they say otherwise; when it does
// not exist the defaults apply (in-cluster DNS).
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="AGE",type="date",JSONPath=".metadata.creationTimestamp"
// +kubebuilder:printcolumn:name="RESOLVE",type="string",JSONPath=".spec.instances.resolve"
// +kubebuilder:printcolumn:name="ADDRESS-OVERRIDE",type="string",JSONPath=".spec.instances.addressOverride",priority=1
// +kubebuilder:resource:scope=Cluster,categories={crossplane,provider,redishttp}
type ClusterProviderConfig struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ProviderConfigSpec   `json:"spec,omitempty"`
	Status ProviderConfigStatus `json:"status,omitempty"`
}

// ClusterProviderConfigList contains a list of ClusterProviderConfig.
// +kubebuilder:object:root=true
type ClusterProviderConfigList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterProviderConfig `json:"items"`
}

// A ProviderConfigUsage records that an ApiKey uses a ProviderConfig or a
// ClusterProviderConfig.
// +kubebuilder:object:root=true
// +kubebuilder:printcolumn:name="AGE",type="date",JSONPath=".metadata.creationTimestamp"
// +kubebuilder:printcolumn:name="CONFIG-NAME",type="string",JSONPath=".providerConfigRef.name"
// +kubebuilder:printcolumn:name="RESOURCE-KIND",type="string",JSONPath=".resourceRef.kind"
// +kubebuilder:printcolumn:name="RESOURCE-NAME",type="string",JSONPath=".resourceRef.name"
// +kubebuilder:resource:scope=Namespaced,categories={crossplane,provider,redishttp}
type ProviderConfigUsage struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	xpv2.TypedProviderConfigUsage `json:",inline"`
}

// ProviderConfigUsageList contains a list of ProviderConfigUsage.
// +kubebuilder:object:root=true
type ProviderConfigUsageList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ProviderConfigUsage `json:"items"`
}

// Provider config type metadata.
var (
	ProviderConfigKind             = reflect.TypeFor[ProviderConfig]().Name()
	ProviderConfigGroupKind        = schema.GroupKind{Group: Group, Kind: ProviderConfigKind}.String()
	ProviderConfigGroupVersionKind = SchemeGroupVersion.WithKind(ProviderConfigKind)

	ClusterProviderConfigKind             = reflect.TypeFor[ClusterProviderConfig]().Name()
	ClusterProviderConfigGroupKind        = schema.GroupKind{Group: Group, Kind: ClusterProviderConfigKind}.String()
	ClusterProviderConfigGroupVersionKind = SchemeGroupVersion.WithKind(ClusterProviderConfigKind)

	ProviderConfigUsageKind                 = reflect.TypeFor[ProviderConfigUsage]().Name()
	ProviderConfigUsageGroupVersionKind     = SchemeGroupVersion.WithKind(ProviderConfigUsageKind)
	ProviderConfigUsageListKind             = reflect.TypeFor[ProviderConfigUsageList]().Name()
	ProviderConfigUsageListGroupVersionKind = SchemeGroupVersion.WithKind(ProviderConfigUsageListKind)
)

// The method sets angryjet generates (zz_generated.pc*.go).
var (
	_ resource.ProviderConfig           = &ProviderConfig{}
	_ resource.ProviderConfig           = &ClusterProviderConfig{}
	_ resource.TypedProviderConfigUsage = &ProviderConfigUsage{}
	_ resource.ProviderConfigUsageList  = &ProviderConfigUsageList{}
)

func init() { //nolint:gochecknoinits // Scheme registration in init is the kubebuilder convention.
	SchemeBuilder.Register(
		&ProviderConfig{}, &ProviderConfigList{},
		&ClusterProviderConfig{}, &ClusterProviderConfigList{},
		&ProviderConfigUsage{}, &ProviderConfigUsageList{},
	)
}
