package fn

import (
	"context"
	"fmt"
	"time"

	"github.com/robfig/cron/v3"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	fnresource "github.com/crossplane/function-sdk-go/resource"
)

// reasonScheduleMissed is BackupHealthy's reason when scheduled backups stop
// succeeding without a failed job to say why (the CronJob does not run,
// jobs never start or never finish).
const reasonScheduleMissed = "ScheduleMissed"

// A scheduleCheck is what telling a missed schedule needs: the schedule,
// since when it applies (the CronJob's creation: before it no backup was
// due), and the time of the call.
type scheduleCheck struct {
	Schedule string
	Since    time.Time
	Now      time.Time
}

// scheduleCheckOf returns the check for a validated spec.backup, from the
// observed CronJob; a zero check (nothing to check) without a schedule or
// before the CronJob exists.
func scheduleCheckOf(b *backupParams, observed map[fnresource.Name]fnresource.ObservedComposed, now time.Time) scheduleCheck {
	oc, ok := observed[nameBackupCronJob]
	if b == nil || b.Schedule == "" || !ok {
		return scheduleCheck{}
	}
	created, _, _ := unstructured.NestedString(oc.Resource.Object, "metadata", "creationTimestamp")
	since, err := time.Parse(time.RFC3339, created)
	if err != nil {
		return scheduleCheck{}
	}
	return scheduleCheck{Schedule: b.Schedule, Since: since, Now: now}
}

// missed says whether the schedule was missed: the second run due after
// the last successful backup started (or, without one, after the CronJob was
// created) is in the past, so at least one whole run that should have
// produced a backup did not. When not missed, until is when it would be
// (zero when it never can be).
func (s scheduleCheck) missed(lastSuccess time.Time) (missed bool, since, until time.Time) {
	if s.Schedule == "" {
		return false, time.Time{}, time.Time{}
	}
	sched, err := cron.ParseStandard(s.Schedule)
	if err != nil {
		return false, time.Time{}, time.Time{}
	}
	since = s.Since.UTC()
	if lastSuccess.After(since) {
		since = lastSuccess.UTC()
	}
	due := sched.Next(sched.Next(since))
	if due.IsZero() {
		return false, since, time.Time{}
	}
	return !s.Now.Before(due), since, due
}

// missedMessage tells the tenant what was missed and where to look.
func missedMessage(instance, schedule string, since time.Time, succeeded bool) string {
	what := "no backup succeeded since the schedule was set at " + since.Format(time.RFC3339)
	if succeeded {
		what = "no backup succeeded since the last one at " + since.Format(time.RFC3339)
	}
	return fmt.Sprintf("the backup schedule %q was missed: %s, two scheduled runs ago; check CronJob %s-backup and its Jobs", schedule, what, instance)
}

// A validity, carried by the context of one RunFunction call, is the time
// at which the response stops being true although the request is the same
// (a schedule is missed by time passing alone): the response cache must
// not answer with it after that.
type validity struct{ until time.Time }

type validityKey struct{}

func withValidity(ctx context.Context) (context.Context, *validity) {
	v := &validity{}
	return context.WithValue(ctx, validityKey{}, v), v
}

// validUntil records that the call's response is true until t at the
// latest (a zero t: no bound).
func validUntil(ctx context.Context, t time.Time) {
	v, ok := ctx.Value(validityKey{}).(*validity)
	if !ok || t.IsZero() {
		return
	}
	if v.until.IsZero() || t.Before(v.until) {
		v.until = t
	}
}

// WithClock replaces the clock that tells a missed backup schedule, for
// tests.
func WithClock(now func() time.Time) Option {
	return func(f *Function) { f.now = now }
}
