package fn

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/crossplane/function-sdk-go/logging"
	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
)

// scheduled is a request for an instance backed up every six hours whose
// CronJob was created at 05:00, with the backup pods given.
func scheduled(schedule string, pods ...*fnv1.Resource) *fnv1.RunFunctionRequest {
	cj, _ := structpb.NewStruct(map[string]any{
		"apiVersion": "batch/v1", "kind": "CronJob",
		"metadata": map[string]any{"name": "cache-backup", "namespace": "team-a", "creationTimestamp": "2026-12-04T05:00:00Z"},
	})
	return &fnv1.RunFunctionRequest{
		Observed: &fnv1.State{
			Composite: namespacedXR(`{"memory": "256Mi", "backup": {"schedule": "` + schedule + `", "s3": ` + testS3 + `}}`),
			Resources: map[string]*fnv1.Resource{string(nameBackupCronJob): {Resource: cj}},
		},
		RequiredResources: map[string]*fnv1.Resources{requirementBackupPods: {Items: pods}},
	}
}

// backupHealthy returns BackupHealthy as "Status Reason message" and the
// Warning results.
func backupHealthy(rsp *fnv1.RunFunctionResponse) (string, []string) {
	var cond string
	var warnings []string
	for _, c := range rsp.GetConditions() {
		if c.GetType() == conditionBackupHealthy {
			st := strings.TrimPrefix(c.GetStatus().String(), "STATUS_CONDITION_")
			cond = strings.ToUpper(st[:1]) + strings.ToLower(st[1:]) + " " + c.GetReason() + " " + c.GetMessage()
		}
	}
	for _, r := range rsp.GetResults() {
		if r.GetSeverity() == fnv1.Severity_SEVERITY_WARNING {
			warnings = append(warnings, r.GetMessage())
		}
	}
	return cond, warnings
}

func at(s string) func() time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return func() time.Time { return t }
}

// TestRunFunctionScheduleMissed: BackupHealthy turns False with reason
// ScheduleMissed once the second run due after the last successful backup
// (or after the CronJob was created, before any) has passed without a new
// one; a failed job's own reason says more and wins.
func TestRunFunctionScheduleMissed(t *testing.T) {
	ok := backupPod("a", "2026-12-04T06:00:09Z", 0, `{"name":"20261204T060000Z-aaaaaa","time":"2026-12-04T06:00:00Z","keys":3,"size":100}`)
	failed := backupPod("b", "2026-12-04T12:00:03Z", 1, `{"reason":"CredentialsRefused","message":"cannot reach bucket \"team-a-backups\": Access Denied"}`)
	missedAfterSuccess := `False ScheduleMissed the backup schedule "0 */6 * * *" was missed: no backup succeeded since the last one at 2026-12-04T06:00:00Z, two scheduled runs ago; check CronJob cache-backup and its Jobs`
	cases := map[string]struct {
		reason   string
		schedule string
		pods     []*fnv1.Resource
		now      string
		want     string
		warnings int
	}{
		"OneRunLate": {
			reason:   "The run due at 12:00 may still be running at 17:59: not missed yet.",
			schedule: "0 */6 * * *", pods: []*fnv1.Resource{ok}, now: "2026-12-04T17:59:59Z",
			want: "True BackupSucceeded backup 20261204T060000Z-aaaaaa holds 3 keys (100 bytes), verified",
		},
		"TwoRunsMissed": {
			reason:   "The runs due at 12:00 and 18:00 passed without a backup since 06:00: missed, with a Warning.",
			schedule: "0 */6 * * *", pods: []*fnv1.Resource{ok}, now: "2026-12-04T18:00:00Z",
			want: missedAfterSuccess, warnings: 1,
		},
		"NeverSucceeded": {
			reason:   "No backup at all since the CronJob was created at 05:00 (runs due 06:00 and 12:00): missed.",
			schedule: "0 */6 * * *", now: "2026-12-04T12:00:01Z",
			want:     `False ScheduleMissed the backup schedule "0 */6 * * *" was missed: no backup succeeded since the schedule was set at 2026-12-04T05:00:00Z, two scheduled runs ago; check CronJob cache-backup and its Jobs`,
			warnings: 1,
		},
		"NotYetDue": {
			reason:   "A new schedule with no run due twice yet says nothing.",
			schedule: "0 */6 * * *", now: "2026-12-04T11:59:59Z",
			want: "",
		},
		"FailureSaysMore": {
			reason:   "The newest job failed: its own reason stays, even when the schedule was missed too.",
			schedule: "0 */6 * * *", pods: []*fnv1.Resource{ok, failed}, now: "2026-12-05T06:00:00Z",
			want: `False CredentialsRefused the newest backup failed: cannot reach bucket "team-a-backups": Access Denied`, warnings: 1,
		},
		"OnDemandOnly": {
			reason:   "Without a schedule nothing is ever missed.",
			schedule: "", pods: []*fnv1.Resource{ok}, now: "2027-12-04T06:00:00Z",
			want: "True BackupSucceeded backup 20261204T060000Z-aaaaaa holds 3 keys (100 bytes), verified",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f := NewFunction(logging.NewNopLogger(), WithPasswordGenerator(fixedPassword), WithBackupImage(testBackupImage), WithClock(at(tc.now)))
			rsp, err := f.RunFunction(context.Background(), scheduled(tc.schedule, tc.pods...))
			if err != nil {
				t.Fatal(err)
			}
			cond, warnings := backupHealthy(rsp)
			if diff := cmp.Diff(tc.want, cond); diff != "" || len(warnings) != tc.warnings {
				t.Errorf("%s\nBackupHealthy: -want, +got:\n%s\nwarnings: want %d, got %q", tc.reason, diff, tc.warnings, warnings)
			}
		})
	}
}

// TestRunFunctionScheduleMissedNotCached: the same request asked again once
// the schedule was missed gets the new answer: time alone changed it, so
// the response cache must not answer with the old one.
func TestRunFunctionScheduleMissedNotCached(t *testing.T) {
	ok := backupPod("a", "2026-12-04T06:00:09Z", 0, `{"name":"20261204T060000Z-aaaaaa","time":"2026-12-04T06:00:00Z","keys":3,"size":100}`)
	now := at("2026-12-04T11:00:00Z")()
	f := NewFunction(logging.NewNopLogger(), WithPasswordGenerator(fixedPassword), WithBackupImage(testBackupImage), WithClock(func() time.Time { return now }))
	var got []string
	for _, t1 := range []string{"2026-12-04T11:00:00Z", "2026-12-04T17:00:00Z", "2026-12-04T18:00:01Z"} {
		now = at(t1)()
		rsp, err := f.RunFunction(context.Background(), scheduled("0 */6 * * *", ok))
		if err != nil {
			t.Fatal(err)
		}
		cond, _ := backupHealthy(rsp)
		got = append(got, strings.Join(strings.Fields(cond)[:2], " "))
	}
	want := []string{"True BackupSucceeded", "True BackupSucceeded", "False ScheduleMissed"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the same request at 11:00, 17:00 and 18:00:01: -want, +got:\n%s", diff)
	}
}
