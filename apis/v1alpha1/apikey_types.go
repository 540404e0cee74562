package v1alpha1

import (
	"reflect"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/crossplane/crossplane-runtime/v2/pkg/resource"
	xpv2 "github.com/crossplane/crossplane/apis/v2/core/v2"
)

// A LocalReference names an object in the ApiKey's own namespace.
type LocalReference struct {
	// Name of the referenced object.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// Rotation controls when the key of an ApiKey is replaced.
type Rotation struct {
	// Serial is bumped to rotate the key now. The provider generates a new key,
	// publishes it to the connection Secret at once, and keeps the previous key
	// valid for GracePeriod.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Serial int64 `json:"serial,omitempty"`

	// GracePeriod during which the previous key keeps working after a
	// rotation, as a Go duration such as 10m or 1h30m, at most 720h (30
	// days). Defaults to 10m. It is a string the provider parses when it
	// rotates, so a value it cannot use is a condition on this ApiKey only.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('720h')",message="gracePeriod must be at most 720h (30 days)"
	GracePeriod *string `json:"gracePeriod,omitempty"`
}

// ApiKeyParameters are the configurable fields of an ApiKey.
// +kubebuilder:validation:XValidation:rule="has(self.instanceRef) != has(self.connectionSecretRef)",message="exactly one of instanceRef and connectionSecretRef must be set"
// +kubebuilder:validation:XValidation:rule="has(self.instanceRef) == has(oldSelf.instanceRef) && (!has(self.instanceRef) || self.instanceRef.name == oldSelf.instanceRef.name) && has(self.connectionSecretRef) == has(oldSelf.connectionSecretRef) && (!has(self.connectionSecretRef) || self.connectionSecretRef.name == oldSelf.connectionSecretRef.name)",message="instanceRef and connectionSecretRef cannot change: the key's ACL user lives in that Redis, and would stay there with a working key. To move the key, create an ApiKey for the other Redis and delete this one (deleting it deletes its user)"
type ApiKeyParameters struct {
	// InstanceRef names a RedisHttpInstance in the ApiKey's namespace. The
	// provider administers it as user default with the password in the
	// instance's auth Secret (<name>-redis-auth), at the endpoint of the
	// instance's status.
	// +optional
	InstanceRef *LocalReference `json:"instanceRef,omitempty"`

	// ConnectionSecretRef names a Secret in the ApiKey's namespace with the
	// keys endpoint, port, password and optionally username of a Redis 6+
	// user allowed to run ACL SETUSER (bring your own Redis). While an
	// ApiKey may need it to delete its user, the Secret carries the
	// finalizer apikey.redishttp.io/in-use: deleting it (or its namespace)
	// waits until the users are gone.
	// +optional
	ConnectionSecretRef *LocalReference `json:"connectionSecretRef,omitempty"`

	// KeyPatterns the key may access, as Redis ACL ~patterns. Defaults to
	// ["*"]. Patterns cannot contain whitespace.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=256
	// +kubebuilder:validation:items:Pattern=`^[^\s]+$`
	KeyPatterns []string `json:"keyPatterns,omitempty"`

	// Channels the key may use with Pub/Sub, as Redis ACL &patterns.
	// Defaults to none.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=256
	// +kubebuilder:validation:items:Pattern=`^[^\s]+$`
	Channels []string `json:"channels,omitempty"`

	// ReadOnly limits the key to read commands, whatever Commands lists:
	// no write, administration, dangerous, scripting or PUBLISH command.
	// +optional
	ReadOnly bool `json:"readOnly,omitempty"`

	// Commands is an explicit allow list of commands or categories, for
	// example ["get", "set", "+@hash", "-hdel", "config|get"]. Entries
	// without a sign are allowed (+). Defaults to +@all -@dangerous
	// -@scripting (+@read when readOnly), and, unless keyPatterns allow
	// every key, -scan -randomkey so that key names outside the patterns
	// stay hidden; list SCAN to get it.
	// +optional
	// +kubebuilder:validation:MaxItems=128
	// +kubebuilder:validation:items:MaxLength=128
	// +kubebuilder:validation:items:Pattern=`^[+-]?@?[a-zA-Z0-9_.|-]+$`
	Commands []string `json:"commands,omitempty"`

	// Rotation of the key.
	// +optional
	Rotation Rotation `json:"rotation,omitempty"`
}

// ApiKeyObservation are the observed fields of an ApiKey. It never holds a
// key: the plaintext lives only in the connection Secret.
type ApiKeyObservation struct {
	// Username of the Redis ACL user.
	Username string `json:"username,omitempty"`

	// RotationSerial is the rotation serial the current key was made for.
	RotationSerial *int64 `json:"rotationSerial,omitempty"`

	// PreviousKeySHA256 is the SHA-256 of the key replaced by the last
	// rotation, kept valid until PreviousKeyExpiresAt.
	PreviousKeySHA256 string `json:"previousKeySHA256,omitempty"`

	// PreviousKeyExpiresAt is when the previous key stops working.
	PreviousKeyExpiresAt *metav1.Time `json:"previousKeyExpiresAt,omitempty"`

	// ConnectionSecretInUse is the connectionSecretRef Secret the provider
	// keeps from being deleted for this ApiKey (finalizer
	// apikey.redishttp.io/in-use), recorded before the ApiKey's user can
	// exist: the Secret goes once no ApiKey records it.
	ConnectionSecretInUse string `json:"connectionSecretInUse,omitempty"`

	// ConnectionSecretsToRelease are Secrets this ApiKey used before (it
	// names another one now) whose finalizer is removed unless another
	// ApiKey uses them.
	// +optional
	ConnectionSecretsToRelease []string `json:"connectionSecretsToRelease,omitempty"`
}

// An ApiKeySpec defines the desired state of an ApiKey. The connection Secret
// is required: it is the only place the key is kept.
// +kubebuilder:validation:XValidation:rule="has(self.writeConnectionSecretToRef)",message="spec.writeConnectionSecretToRef is required: the key is kept only in that Secret"
type ApiKeySpec struct {
	xpv2.ManagedResourceSpec `json:",inline"`
	ForProvider              ApiKeyParameters `json:"forProvider"`
}

// An ApiKeyStatus represents the observed state of an ApiKey.
type ApiKeyStatus struct {
	xpv2.ManagedResourceStatus `json:",inline"`
	AtProvider                 ApiKeyObservation `json:"atProvider,omitempty"`
}

// An ApiKey is a Redis ACL user for one app, with exactly the permissions its
// spec asks for. Its key is published to the connection Secret.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="READY",type="string",JSONPath=".status.conditions[?(@.type=='Ready')].status"
// +kubebuilder:printcolumn:name="SYNCED",type="string",JSONPath=".status.conditions[?(@.type=='Synced')].status"
// +kubebuilder:printcolumn:name="EXTERNAL-NAME",type="string",JSONPath=".metadata.annotations.crossplane\\.io/external-name"
// +kubebuilder:printcolumn:name="AGE",type="date",JSONPath=".metadata.creationTimestamp"
// +kubebuilder:resource:scope=Namespaced,categories={crossplane,managed,redishttp}
type ApiKey struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ApiKeySpec   `json:"spec"`
	Status ApiKeyStatus `json:"status,omitempty"`
}

// ApiKeyList contains a list of ApiKey.
// +kubebuilder:object:root=true
type ApiKeyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ApiKey `json:"items"`
}

// ApiKey type metadata.
var (
	ApiKeyKind             = reflect.TypeFor[ApiKey]().Name()
	ApiKeyGroupKind        = schema.GroupKind{Group: Group, Kind: ApiKeyKind}.String()
	ApiKeyKindAPIVersion   = ApiKeyKind + "." + SchemeGroupVersion.String()
	ApiKeyGroupVersionKind = SchemeGroupVersion.WithKind(ApiKeyKind)
)

// The method sets angryjet generates (zz_generated.managed*.go).
var (
	_ resource.ModernManaged = &ApiKey{}
	_ resource.ManagedList   = &ApiKeyList{}
)

func init() { //nolint:gochecknoinits // Scheme registration in init is the kubebuilder convention.
	SchemeBuilder.Register(&ApiKey{}, &ApiKeyList{})
}
