package apikey

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ai-decenter/redishttp/apis/v1alpha1"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
	"github.com/crossplane/crossplane-runtime/v2/pkg/reconciler/managed"
	"github.com/crossplane/crossplane-runtime/v2/pkg/resource"
)

// DefaultGracePeriod is how long a rotated-out key keeps working when the
// spec does not say, and MaxGracePeriod how long it may keep working at most.
const (
	DefaultGracePeriod = 10 * time.Minute
	MaxGracePeriod     = 720 * time.Hour
)

// gracePeriod returns the grace period the spec asks for. The schema bounds
// it too; a value stored before it did is refused here, on this ApiKey only.
func gracePeriod(r v1alpha1.Rotation) (time.Duration, error) {
	if r.GracePeriod == nil {
		return DefaultGracePeriod, nil
	}
	d, err := time.ParseDuration(*r.GracePeriod)
	if err != nil || d < 0 || d > MaxGracePeriod {
		return 0, errors.Errorf("cannot use spec.forProvider.rotation.gracePeriod %q: want a duration such as 10m or 1h30m, at most 720h", *r.GracePeriod)
	}
	return d, nil
}

// pollUntilGraceEnds polls an ApiKey whose previous key is in its grace period
// right when the period ends, so the old key is dropped on time.
func pollUntilGraceEnds(now func() time.Time) managed.PollIntervalHook {
	return func(mg resource.Managed, d time.Duration) time.Duration {
		cr, ok := mg.(*v1alpha1.ApiKey)
		if !ok || cr.Status.AtProvider.PreviousKeyExpiresAt == nil {
			return d
		}
		until := cr.Status.AtProvider.PreviousKeyExpiresAt.Sub(now()) + 100*time.Millisecond
		return max(min(until, d), 100*time.Millisecond)
	}
}

// incomplete reports whether a rotation was recorded but did not complete:
// SETUSER or publishing the Secret failed after the status write, so the
// Secret still holds the key the rotation replaced, and it is the only key
// apps have.
func incomplete(at *v1alpha1.ApiKeyObservation, key string) bool {
	return at.PreviousKeySHA256 != "" && at.PreviousKeySHA256 == hash(key)
}

// expired reports whether a previous key exists and its grace period ended.
func expired(at *v1alpha1.ApiKeyObservation, now time.Time) bool {
	return at.PreviousKeyExpiresAt != nil && !now.Before(at.PreviousKeyExpiresAt.Time)
}

// passwords returns the digests the user must accept: the current key, and
// the previous one during its grace period.
func passwords(at *v1alpha1.ApiKeyObservation, key string, now time.Time) []string {
	p := []string{hash(key)}
	// The previous key equals the current one when a rotation was recorded
	// but its new key never reached the Secret.
	if at.PreviousKeySHA256 != "" && at.PreviousKeySHA256 != p[0] && at.PreviousKeyExpiresAt != nil && now.Before(at.PreviousKeyExpiresAt.Time) {
		p = append(p, at.PreviousKeySHA256)
	}
	return p
}

// rotating reports whether the ApiKey asks for a new key: its rotation serial
// changed, or a rotation recorded earlier never reached the Secret.
func rotating(cr *v1alpha1.ApiKey, key string) bool {
	at := &cr.Status.AtProvider
	return at.RotationSerial == nil || *at.RotationSerial != cr.Spec.ForProvider.Rotation.Serial || incomplete(at, key)
}

// rotate returns a new key for the ApiKey, and records in its status that
// old keeps working until the grace period ends. A key still in an earlier
// grace period is dropped now. A rotation recorded earlier whose new key
// never reached the Secret is done again here.
func (e *external) rotate(ctx context.Context, cr *v1alpha1.ApiKey, old string, now time.Time) (string, error) {
	key, err := newKey()
	if err != nil {
		return "", err
	}
	grace, err := gracePeriod(cr.Spec.ForProvider.Rotation)
	if err != nil {
		return "", err
	}
	at := &cr.Status.AtProvider
	serial := cr.Spec.ForProvider.Rotation.Serial
	at.PreviousKeySHA256 = hash(old)
	// Status times have second precision: round up, never cut the grace
	// period short.
	at.PreviousKeyExpiresAt = new(metav1.NewTime(now.Add(grace + time.Second - 1).Truncate(time.Second)))
	at.RotationSerial = &serial
	// Record the rotation before Redis or the Secret see the new key. Were
	// it recorded after (by the reconciler) and that write lost, the next
	// reconcile would rotate again and drop the key apps hold without a
	// grace period. Recorded first, a failure later leaves the Secret
	// holding the key the status calls previous: the next observation sees
	// an incomplete rotation and Update does it again.
	if err := e.kube.Status().Update(ctx, cr); err != nil {
		return "", errors.Wrap(err, "cannot record the key rotation in the ApiKey's status")
	}
	return key, nil
}
