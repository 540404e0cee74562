package fn

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/structpb"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/ai-decenter/redishttp/internal/contract"

	"github.com/crossplane/function-sdk-go/logging"
	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
)

const testBackupImage = "registry.example.com/backup-redishttp:v0.1.0"

const testS3 = `{"endpoint": "https://s3.example.com", "bucket": "team-a-backups", "credentialsSecretRef": {"name": "backup-s3"}}`

func runWithBackups(t *testing.T, req *fnv1.RunFunctionRequest) *fnv1.RunFunctionResponse {
	t.Helper()
	f := NewFunction(logging.NewNopLogger(), WithPasswordGenerator(fixedPassword), WithBackupImage(testBackupImage), WithCoordinatorImage(testCoordinatorImage))
	rsp, err := f.RunFunction(context.Background(), req)
	if err != nil {
		t.Fatalf("RunFunction(...): unexpected gRPC error: %v", err)
	}
	return rsp
}

// desiredAs converts a desired composed resource into a typed object.
func desiredAs(t *testing.T, rsp *fnv1.RunFunctionResponse, name string, into runtime.Object) bool {
	t.Helper()
	r, ok := rsp.GetDesired().GetResources()[name]
	if !ok {
		return false
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(r.GetResource().AsMap(), into); err != nil {
		t.Fatalf("cannot convert desired %s: %v", name, err)
	}
	return true
}

func TestRunFunctionBackupRejectsBadInput(t *testing.T) {
	const pfx = `invalid RedisHttpInstance "team-a/cache": `
	s3 := func(field, value string) string {
		m := map[string]string{}
		_ = json.Unmarshal([]byte(`{"endpoint": "https://s3.example.com", "bucket": "team-a-backups"}`), &m)
		m[field] = value
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSuffix(string(b), "}") + `, "credentialsSecretRef": {"name": "backup-s3"}}`
	}
	cases := map[string]struct {
		reason string
		spec   string
		want   string
	}{
		"EndpointScheme": {
			reason: "Only http and https endpoints are S3.",
			spec:   `"backup": {"s3": ` + s3("endpoint", "file:///etc/passwd") + `}`,
			want:   `spec.backup.s3.endpoint: Invalid value: "file:///etc/passwd": must be http(s)://host[:port], without path, query or credentials, e.g. https://s3.example.com`,
		},
		"EndpointCredentials": {
			reason: "Credentials in the URL would end up in logs and status: refused.",
			spec:   `"backup": {"s3": ` + s3("endpoint", "https://key:secret@s3.example.com") + `}`,
			want:   `spec.backup.s3.endpoint: Invalid value: "https://key:secret@s3.example.com": must be http(s)://host[:port], without path, query or credentials, e.g. https://s3.example.com`,
		},
		"EndpointPath": {
			reason: "A path would redirect the signed requests elsewhere.",
			spec:   `"restore": {"s3": ` + s3("endpoint", "https://s3.example.com/other-bucket") + `}`,
			want:   `spec.restore.s3.endpoint: Invalid value: "https://s3.example.com/other-bucket": must be http(s)://host[:port], without path, query or credentials, e.g. https://s3.example.com`,
		},
		"Bucket": {
			reason: "Bucket names follow S3's rules.",
			spec:   `"backup": {"s3": ` + s3("bucket", "Team_A") + `}`,
			want:   `spec.backup.s3.bucket: Invalid value: "Team_A": must be an S3 bucket name: lowercase letters, digits, dots and hyphens, not an IP address`,
		},
		"PrefixDotDot": {
			reason: "A prefix cannot climb into another tenant's objects.",
			spec:   `"backup": {"s3": ` + s3("prefix", "team-a/../team-b/") + `}`,
			want:   `spec.backup.s3.prefix: Invalid value: "team-a/../team-b/": must not contain "." or ".." segments`,
		},
		"PrefixLeadingSlash": {
			reason: "A prefix is relative to the bucket.",
			spec:   `"backup": {"s3": ` + s3("prefix", "/team-a/") + `}`,
			want:   `spec.backup.s3.prefix: Invalid value: "/team-a/": must not start with "/", must end with "/" and must not contain "//", e.g. team-a/cache/`,
		},
		"Keep": {
			reason: "keep is 1 to 100.",
			spec:   `"backup": {"keep": 0, "s3": ` + testS3 + `}`,
			want:   `spec.backup.keep: Invalid value: 0: must be from 1 to 100`,
		},
		"Schedule": {
			reason: "A schedule the CronJob controller cannot parse is refused now, not at the first run.",
			spec:   `"backup": {"schedule": "every hour", "s3": ` + testS3 + `}`,
			want:   `spec.backup.schedule: Invalid value: "every hour": must be a cron schedule such as "0 */6 * * *" (minute hour day-of-month month day-of-week)`,
		},
		"ScheduleTimeZone": {
			reason: "Schedules run in UTC.",
			spec:   `"backup": {"schedule": "CRON_TZ=Europe/Berlin 0 3 * * *", "s3": ` + testS3 + `}`,
			want:   `spec.backup.schedule: Invalid value: "CRON_TZ=Europe/Berlin 0 3 * * *": must not name a time zone: schedules run in UTC`,
		},
		"RestoreName": {
			reason: "A backup name has the shape backups get.",
			spec:   `"restore": {"backup": "../../etc", "s3": ` + testS3 + `}`,
			want:   `spec.restore.backup: Invalid value: "../../etc": must be "latest" or a backup's name such as 20261204T191600Z-3fa9c1 (status.backup.last)`,
		},
		"KeySecretName": {
			reason: "Secret names are DNS subdomains.",
			spec:   `"backup": {"encryptionKeySecretRef": {"name": "Not A Name"}, "s3": ` + testS3 + `}`,
			want:   `spec.backup.encryptionKeySecretRef.name: Invalid value: "Not A Name": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rsp := runWithBackups(t, &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: namespacedXR(`{"memory": "256Mi", ` + tc.spec + `}`)}})
			if diff := cmp.Diff(refused(pfx+tc.want), rsp, protocmp.Transform()); diff != "" {
				t.Errorf("%s\nRunFunction(...): -want rsp, +got rsp:\n%s", tc.reason, diff)
			}
		})
	}
}

func TestRunFunctionBackupNeedsImage(t *testing.T) {
	rsp := run(t, &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: namespacedXR(`{"memory": "256Mi", "restore": {"s3": ` + testS3 + `}}`)}})
	want := refused(`invalid RedisHttpInstance "team-a/cache": spec.restore: Forbidden: this platform runs no backups (the function has no --backup-image): ask the platform team, or leave it out`)
	if diff := cmp.Diff(want, rsp, protocmp.Transform()); diff != "" {
		t.Errorf("Without a backup image there are no backups, and the tenant should hear why.\nRunFunction(...): -want rsp, +got rsp:\n%s", diff)
	}
}

// TestRunFunctionComposesBackupJob: the CronJob runs our image without a
// service account token, PSS-restricted, in the tenant's namespace, with
// every secret as a reference; an empty schedule suspends it (on-demand
// only); with a NetworkPolicy, Redis admits the backup pods and their egress
// is limited.
func TestRunFunctionComposesBackupJob(t *testing.T) {
	rsp := runWithBackups(t, &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: namespacedXR(`{"memory": "256Mi", "networkPolicy": {"enabled": true, "podSelector": {"app": "web"}},
		"backup": {"schedule": "0 */6 * * *", "keep": 3, "encryptionKeySecretRef": {"name": "backup-key"}, "s3": ` + testS3 + `}}`)}})
	cj := &batchv1.CronJob{}
	if !desiredAs(t, rsp, string(nameBackupCronJob), cj) {
		t.Fatalf("no CronJob composed; results: %v", rsp.GetResults())
	}
	pod := cj.Spec.JobTemplate.Spec.Template.Spec
	c := pod.Containers[0]
	got := map[string]any{
		"name": cj.Name, "namespace": cj.Namespace, "schedule": cj.Spec.Schedule, "suspend": *cj.Spec.Suspend,
		"image": c.Image, "token": *pod.AutomountServiceAccountToken, "nonroot": *pod.SecurityContext.RunAsNonRoot,
		"privesc": *c.SecurityContext.AllowPrivilegeEscalation, "concurrency": string(cj.Spec.ConcurrencyPolicy),
		"labels": cj.Spec.JobTemplate.Spec.Template.Labels["app.kubernetes.io/name"],
	}
	want := map[string]any{
		"name": "cache-backup", "namespace": "team-a", "schedule": "0 */6 * * *", "suspend": false,
		"image": testBackupImage, "token": false, "nonroot": true, "privesc": false, "concurrency": "Forbid",
		"labels": contract.NameBackup,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("backup CronJob: -want, +got:\n%s", diff)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			env[e.Name] = "secret " + e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
			continue
		}
		env[e.Name] = e.Value
	}
	wantEnv := map[string]string{
		"REDIS_ADDRESS": "cache-redis.team-a.svc.cluster.local:6379", "REDIS_USER": "default",
		"REDIS_PASSWORD":    "secret cache-redis-auth/password",
		"KEEP":              "3",
		"TIMEOUT":           "6h0m0s",
		"S3_ENDPOINT":       "https://s3.example.com",
		"S3_BUCKET":         "team-a-backups",
		"S3_PREFIX":         "team-a/cache/",
		"S3_REGION":         "us-east-1",
		"AWS_ACCESS_KEY_ID": "secret backup-s3/AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY": "secret backup-s3/AWS_SECRET_ACCESS_KEY",
		"BACKUP_ENCRYPTION_KEY": "secret backup-key/key",
	}
	if diff := cmp.Diff(wantEnv, env); diff != "" {
		t.Errorf("backup container environment: -want, +got:\n%s", diff)
	}

	np := &networkingv1.NetworkPolicy{}
	if !desiredAs(t, rsp, string(nameNetworkPolicy), np) {
		t.Fatal("no NetworkPolicy for Redis")
	}
	admitted := false
	for _, peer := range np.Spec.Ingress[0].From {
		if peer.PodSelector != nil && peer.PodSelector.MatchLabels[contract.LabelName] == contract.NameBackup && peer.NamespaceSelector == nil {
			admitted = true
		}
	}
	if !admitted {
		t.Errorf("Redis's NetworkPolicy should admit the backup pods (the tenant's podSelector would not): %v", np.Spec.Ingress[0].From)
	}
	egress := &networkingv1.NetworkPolicy{}
	if !desiredAs(t, rsp, string(nameBackupNetworkPolicy), egress) || len(egress.Spec.Egress) != 3 || egress.Spec.Egress[2].Ports[0].Port.IntValue() != 443 {
		t.Errorf("The backup pods' egress should be limited to Redis, DNS and the bucket's port 443: %+v", egress.Spec)
	}

	// No schedule: a suspended CronJob, still a template for on-demand
	// backups.
	rsp = runWithBackups(t, &fnv1.RunFunctionRequest{Observed: &fnv1.State{Composite: namespacedXR(`{"memory": "256Mi", "backup": {"s3": ` + testS3 + `}}`)}})
	if !desiredAs(t, rsp, string(nameBackupCronJob), cj) || !*cj.Spec.Suspend {
		t.Errorf("Without a schedule the CronJob should be suspended, not absent")
	}
	if _, ok := rsp.GetDesired().GetResources()[string(nameBackupNetworkPolicy)]; ok {
		t.Errorf("Without networkPolicy there is no egress policy for backups")
	}
}

func observedSTSWithInit(names ...string) map[string]*fnv1.Resource {
	var ics []any
	for _, n := range names {
		ics = append(ics, map[string]any{"name": n, "image": "x"})
	}
	s, _ := structpb.NewStruct(map[string]any{
		"apiVersion": "apps/v1", "kind": "StatefulSet",
		"metadata": map[string]any{"name": "cache-redis", "namespace": "team-a"},
		"spec":     map[string]any{"template": map[string]any{"spec": map[string]any{"initContainers": ics}}},
	})
	return map[string]*fnv1.Resource{string(nameStatefulSet): {Resource: s}}
}

// TestRunFunctionRestoreOnlyAtCreation: the restore init container runs
// before prepare-data in a new instance, stays while its StatefulSet has it,
// and is never added to a running instance.
func TestRunFunctionRestoreOnlyAtCreation(t *testing.T) {
	cases := map[string]struct {
		reason   string
		observed map[string]*fnv1.Resource
		want     []string
	}{
		"New": {
			reason: "A new instance restores before prepare-data and Redis.",
			want:   []string{contract.RestoreContainer, prepareDataContainer},
		},
		"RunningWithout": {
			reason:   "spec.restore added to a running instance does nothing: its data stays.",
			observed: observedSTSWithInit(prepareDataContainer),
			want:     []string{prepareDataContainer},
		},
		"RunningWith": {
			reason:   "A restored instance keeps its init container (it does nothing once the data is there).",
			observed: observedSTSWithInit(contract.RestoreContainer, prepareDataContainer),
			want:     []string{contract.RestoreContainer, prepareDataContainer},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rsp := runWithBackups(t, &fnv1.RunFunctionRequest{Observed: &fnv1.State{
				Composite: namespacedXR(`{"memory": "256Mi", "persistence": {"appendOnly": true}, "restore": {"backup": "20261204T191600Z-3fa9c1", "s3": ` + testS3 + `}}`),
				Resources: tc.observed,
			}})
			sts := &appsv1.StatefulSet{}
			if !desiredAs(t, rsp, string(nameStatefulSet), sts) {
				t.Fatalf("no StatefulSet; results: %v", rsp.GetResults())
			}
			var got []string
			for _, c := range sts.Spec.Template.Spec.InitContainers {
				got = append(got, c.Name)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("%s\ninit containers: -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}

// TestRunFunctionRestoresOnlyIntoPodZero: with replicas only pod 0
// downloads the backup (the others start empty and replicate), and the
// coordinators know the instance restores, so that they never elect an empty
// pod while pod 0 restores.
func TestRunFunctionRestoresOnlyIntoPodZero(t *testing.T) {
	type want struct {
		restorePod  string
		coordinator []string
	}
	cases := map[string]struct {
		reason string
		spec   string
		want   want
	}{
		"OnePod": {
			reason: "A single pod restores itself; there is no coordinator.",
			spec:   `{"memory": "256Mi"`,
		},
		"ThreePods": {
			reason: "Of three pods only pod 0 restores, and the coordinators run with --restored.",
			spec:   `{"memory": "256Mi", "replicas": 3`,
			want: want{restorePod: "cache-redis-0", coordinator: []string{
				"--instance=cache", "--namespace=team-a", "--cluster-domain=cluster.local", "--restored",
			}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rsp := runWithBackups(t, &fnv1.RunFunctionRequest{Observed: &fnv1.State{
				Composite: namespacedXR(tc.spec + `, "restore": {"backup": "20261204T191600Z-3fa9c1", "s3": ` + testS3 + `}}`),
			}})
			sts := &appsv1.StatefulSet{}
			if !desiredAs(t, rsp, string(nameStatefulSet), sts) {
				t.Fatalf("no StatefulSet; results: %v", rsp.GetResults())
			}
			var got want
			for _, c := range sts.Spec.Template.Spec.InitContainers {
				for _, e := range c.Env {
					if c.Name == contract.RestoreContainer && e.Name == "RESTORE_POD" {
						got.restorePod = e.Value
					}
				}
			}
			for _, c := range sts.Spec.Template.Spec.Containers {
				if c.Name == coordinatorContainer {
					got.coordinator = c.Args
				}
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(want{})); diff != "" {
				t.Errorf("%s\nRunFunction(...): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}

func backupPod(name, finishedAt string, exitCode int, message string) *fnv1.Resource {
	s, _ := structpb.NewStruct(map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": name, "namespace": "team-a"},
		"status": map[string]any{"containerStatuses": []any{map[string]any{
			"name": contract.BackupContainer,
			"state": map[string]any{"terminated": map[string]any{
				"exitCode": exitCode, "finishedAt": finishedAt, "message": message,
			}},
		}}},
	})
	return &fnv1.Resource{Resource: s}
}

// TestRunFunctionReportsBackups: status.backup and BackupHealthy follow the
// backup pods' results; a failure is a Warning event with its reason; what
// a pod in the tenant's namespace claims is bounded and shaped.
func TestRunFunctionReportsBackups(t *testing.T) {
	ok := `{"name":"20261204T060000Z-aaaaaa","time":"2026-12-04T06:00:00Z","keys":10000,"size":123456}`
	failed := `{"reason":"CredentialsRefused","message":"cannot reach bucket \"team-a-backups\": The access key ID you provided does not exist"}`
	type want struct {
		last, lastTime string
		cond           string
		warnings       []string
	}
	cases := map[string]struct {
		reason string
		pods   []*fnv1.Resource
		want   want
	}{
		"Succeeded": {
			reason: "The newest job succeeded: its backup is the last one, BackupHealthy True.",
			pods:   []*fnv1.Resource{backupPod("a", "2026-12-04T06:00:09Z", 0, ok)},
			want:   want{last: "20261204T060000Z-aaaaaa", lastTime: "2026-12-04T06:00:00Z", cond: "True BackupSucceeded backup 20261204T060000Z-aaaaaa holds 10000 keys (123456 bytes), verified"},
		},
		"FailedAfterSuccess": {
			reason: "The newest job failed: the last good backup stays in the status, BackupHealthy False saying why, a Warning event.",
			pods:   []*fnv1.Resource{backupPod("a", "2026-12-04T06:00:09Z", 0, ok), backupPod("b", "2026-12-04T12:00:03Z", 1, failed)},
			want: want{last: "20261204T060000Z-aaaaaa", lastTime: "2026-12-04T06:00:00Z",
				cond:     `False CredentialsRefused the newest backup failed: cannot reach bucket "team-a-backups": The access key ID you provided does not exist`,
				warnings: []string{`the newest backup failed: cannot reach bucket "team-a-backups": The access key ID you provided does not exist`}},
		},
		"Forged": {
			reason: "A pod of the tenant's own with a made-up message gets a generic reason, a bounded message and no backup name.",
			pods:   []*fnv1.Resource{backupPod("x", "2026-12-04T13:00:00Z", 1, `{"name":"../../x","reason":"Bad Reason!","message":"`+strings.Repeat("A", 5000)+`"}`)},
			want: want{cond: "False BackupFailed the newest backup failed: " + strings.Repeat("A", maxMessage) + "...",
				warnings: []string{"the newest backup failed: " + strings.Repeat("A", maxMessage) + "..."}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rsp := runWithBackups(t, &fnv1.RunFunctionRequest{
				Observed:          &fnv1.State{Composite: namespacedXR(`{"memory": "256Mi", "backup": {"s3": ` + testS3 + `}}`)},
				RequiredResources: map[string]*fnv1.Resources{requirementBackupPods: {Items: tc.pods}},
			})
			got := want{}
			status, _ := rsp.GetDesired().GetComposite().GetResource().AsMap()["status"].(map[string]any)
			if b, ok := status["backup"].(map[string]any); ok {
				got.last, _ = b["last"].(string)
				got.lastTime, _ = b["lastSuccessfulTime"].(string)
			}
			for _, c := range rsp.GetConditions() {
				if c.GetType() == conditionBackupHealthy {
					got.cond = strings.TrimPrefix(c.GetStatus().String(), "STATUS_CONDITION_")
					got.cond = strings.ToUpper(got.cond[:1]) + strings.ToLower(got.cond[1:]) + " " + c.GetReason() + " " + c.GetMessage()
				}
			}
			for _, r := range rsp.GetResults() {
				if r.GetSeverity() == fnv1.Severity_SEVERITY_WARNING {
					got.warnings = append(got.warnings, r.GetMessage())
				}
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(want{})); diff != "" {
				t.Errorf("%s\nRunFunction(...): -want, +got:\n%s", tc.reason, diff)
			}
			sel := rsp.GetRequirements().GetResources()[requirementBackupPods]
			if sel.GetNamespace() != "team-a" || sel.GetMatchLabels().GetLabels()[contract.LabelInstance] != "cache" {
				t.Errorf("%s\nshould require the instance's backup pods in its namespace, got %v", tc.reason, sel)
			}
		})
	}
}

// TestRunFunctionReportsFailedRestore: a restore that cannot load its backup
// makes the instance Failed, saying which backup and why.
func TestRunFunctionReportsFailedRestore(t *testing.T) {
	msg := `{"reason":"BackupCorrupt","message":"cannot restore backup \"20261204T060000Z-aaaaaa\" from s3://team-a-backups/team-a/cache/: its RDB holds 3 keys and does not match the manifest (4 keys)"}`
	s, _ := structpb.NewStruct(map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": "cache-redis-0", "namespace": "team-a"},
		"status": map[string]any{"initContainerStatuses": []any{map[string]any{
			"name":      contract.RestoreContainer,
			"state":     map[string]any{"waiting": map[string]any{"reason": "CrashLoopBackOff"}},
			"lastState": map[string]any{"terminated": map[string]any{"exitCode": 1, "message": msg}},
		}}},
	})
	rsp := runWithBackups(t, &fnv1.RunFunctionRequest{
		Observed:          &fnv1.State{Composite: namespacedXR(`{"memory": "256Mi", "restore": {"s3": ` + testS3 + `}}`)},
		RequiredResources: map[string]*fnv1.Resources{requirementPod: {Items: []*fnv1.Resource{{Resource: s}}}},
	})
	phase := rsp.GetDesired().GetComposite().GetResource().AsMap()["status"].(map[string]any)["phase"]
	var warnings []string
	for _, r := range rsp.GetResults() {
		if r.GetSeverity() == fnv1.Severity_SEVERITY_WARNING {
			warnings = append(warnings, r.GetMessage())
		}
	}
	want := []string{`Redis pod team-a/cache-redis-0 is failing: container "restore" is CrashLoopBackOff: BackupCorrupt: cannot restore backup "20261204T060000Z-aaaaaa" from s3://team-a-backups/team-a/cache/: its RDB holds 3 keys and does not match the manifest (4 keys)`}
	if diff := cmp.Diff(want, warnings); phase != "Failed" || diff != "" {
		t.Errorf("A failed restore: phase %v (want Failed), warnings -want, +got:\n%s", phase, diff)
	}
}
