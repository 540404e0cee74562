package v1alpha1

import (
	stdjson "encoding/json"
	"sync/atomic"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/json"
)

var undecodable atomic.Pointer[func(meta metav1.ObjectMeta, err error)]

// OnUndecodable sets what is told about an ApiKey a list left out because it
// does not decode: what could be read of its metadata, and why.
func OnUndecodable(fn func(meta metav1.ObjectMeta, err error)) { undecodable.Store(&fn) }

// UnmarshalJSON decodes a list item by item and leaves out the items that do
// not decode. One ApiKey whose stored form the provider cannot decode (a
// value an older or looser schema let through) would otherwise fail the whole
// list: the provider's cache would never sync, and it would stop serving
// every tenant. Left out, that ApiKey is not reconciled, and is reported
// through OnUndecodable.
func (l *ApiKeyList) UnmarshalJSON(b []byte) error {
	var raw struct {
		metav1.TypeMeta `json:",inline"`
		metav1.ListMeta `json:"metadata,omitempty"`

		Items []stdjson.RawMessage `json:"items"` //nolint:tagliatelle // Kubernetes' own field name.
	}
	if err := json.UnmarshalCaseSensitivePreserveInts(b, &raw); err != nil {
		return err
	}
	l.TypeMeta, l.ListMeta = raw.TypeMeta, raw.ListMeta
	l.Items = make([]ApiKey, 0, len(raw.Items))
	for _, item := range raw.Items {
		var ak ApiKey
		if err := json.UnmarshalCaseSensitivePreserveInts(item, &ak); err != nil {
			if fn := undecodable.Load(); fn != nil {
				var m struct {
					Metadata metav1.ObjectMeta `json:"metadata"`
				}
				_ = json.UnmarshalCaseSensitivePreserveInts(item, &m)
				(*fn)(m.Metadata, err)
			}
			continue
		}
		l.Items = append(l.Items, ak)
	}
	return nil
}
