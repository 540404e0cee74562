//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/redis/go-redis/v9"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ai-decenter/redishttp/cluster/local"
	"github.com/ai-decenter/redishttp/internal/backup"
	"github.com/ai-decenter/redishttp/internal/contract"
	"github.com/ai-decenter/redishttp/internal/testenv"
)

const (
	teamBackup  = "team-backup"
	teamRestore = "team-restore"
	// backupKeys string keys, plus a few of the other types.
	backupKeys = 10000
)

// TestBackupAndRestore runs backups and restores as the platform runs them:
// the function's CronJob, Jobs and pods (the kube-controller-manager's
// cronjob and job controllers, the pod runner running cmd/backup's image
// from the local registry), a real S3 server (versitygw) reached from the
// pods, and restores by the init container of new instances. Sub-tests
// build on each other. Timings are printed, never asserted.
func TestBackupAndRestore(t *testing.T) {
	c := start(t, local.ModeNamespaced)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	step := stepper(ctx, t, c, teamBackup, teamRestore)

	s3 := startBackupS3(t)
	prefix := teamBackup + "/" + name + "/"
	store := s3.store(t, prefix)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{teamBackup, teamRestore} {
		if err := c.EnsureNamespace(ctx, ns, map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}); err != nil {
			t.Fatal(err)
		}
		secrets(ctx, t, c, ns, map[string]map[string]string{
			"backup-s3":       {contract.BackupAccessKeyKey: s3.AccessKey, contract.BackupSecretKeyKey: s3.SecretKey},
			"backup-s3-wrong": {contract.BackupAccessKeyKey: s3.AccessKey, contract.BackupSecretKeyKey: "not-" + s3.SecretKey},
			"backup-key":      {contract.BackupEncryptionKeyKey: id.String()},
		})
	}
	location := s3.location
	source := func(schedule, credentials, key string) *unstructured.Unstructured {
		o := instance(t, teamBackup)
		b := map[string]any{"schedule": schedule, "keep": int64(2), "s3": location(credentials)}
		if key != "" {
			b["encryptionKeySecretRef"] = map[string]any{"name": key}
		}
		spec := o.Object["spec"].(map[string]any)
		spec["http"] = map[string]any{"enabled": false}
		spec["backup"] = b
		return o
	}

	var want string // the source's digest
	runs := map[string]bool{}
	step("ScheduledAndOnDemandBackupsVerifiedAndRetained", func(t *testing.T) {
		if err := c.Apply(ctx, source("* * * * *", "backup-s3", "")); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitInstanceReady(ctx, teamBackup, name, 3*time.Minute); err != nil {
			t.Fatal(err)
		}
		rc, _ := redisClient(ctx, t, c, teamBackup, "cache-redis")
		testenv.Eventually(t, 30*time.Second, "PING the source", func() error { return ping(ctx, rc) })
		writeBackupData(ctx, t, rc, backupKeys)
		var n int
		n, want = digest(ctx, t, rc)
		t.Logf("source: %d keys, digest %s", n, want[:12])

		// The CronJob controller starts a Job every minute.
		t0 := time.Now()
		testenv.Eventually(t, 3*time.Minute, "a scheduled backup Job completed", func() error {
			for _, j := range backupJobs(ctx, t, c, teamBackup) {
				if _, scheduled := j.Annotations["batch.kubernetes.io/cronjob-scheduled-timestamp"]; scheduled && jobFinished(&j) == batchv1.JobComplete {
					runs[j.Name] = true
					return nil
				}
			}
			return errors.New("none yet")
		})
		t.Logf("a scheduled backup completed %.1fs after the keys were written", time.Since(t0).Seconds())
		// More runs, on demand (kubectl create job --from=cronjob/...):
		// the newest ones hold every key.
		var last contract.BackupResult
		for i := 0; len(runs) < 4; i++ {
			var ok bool
			last, ok = runBackupJob(ctx, t, c, teamBackup, fmt.Sprintf("now-%d", i))
			if !ok || last.Reason != "" {
				t.Fatalf("on-demand backup %d failed: %+v", i, last)
			}
			runs[fmt.Sprintf("now-%d", i)] = true
		}
		m, err := store.Manifest(ctx, last.Name)
		if err != nil {
			t.Fatalf("the last backup's manifest: %v", err)
		}
		if m.Keys != int64(n) || m.Encrypted {
			t.Errorf("backup %s's manifest: want %d keys, not encrypted; got %d keys, encrypted %t", last.Name, n, m.Keys, m.Encrypted)
		}
		// keep: 2 after 4 or more runs (the schedule may add more).
		testenv.Eventually(t, 2*time.Minute, "two complete backups in the bucket, the newest in status and BackupHealthy True", func() error {
			complete, _, err := store.Backups(ctx)
			if err != nil {
				return err
			}
			if len(complete) != 2 {
				return fmt.Errorf("complete backups %v", complete)
			}
			xr, err := c.Get(ctx, local.InstanceAPIVersion, "RedisHttpInstance", teamBackup, name)
			if err != nil {
				return err
			}
			got, _, _ := unstructured.NestedString(xr.Object, "status", "backup", "last")
			if got != complete[0] {
				return fmt.Errorf("status.backup.last %q, newest complete backup %q", got, complete[0])
			}
			if st, reason, msg := condition(xr, "BackupHealthy"); st != "True" {
				return fmt.Errorf("BackupHealthy %s %s: %s", st, reason, msg)
			}
			return nil
		})
		t.Logf("%d backup runs, 2 complete backups kept", len(runs))
		// The rest restores named backups: no more scheduled runs.
		if err := c.Apply(ctx, source("", "backup-s3", "")); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 3*time.Minute, "the CronJob suspended and no backup running", func() error {
			cj := &batchv1.CronJob{}
			if err := c.Client.Get(ctx, client.ObjectKey{Namespace: teamBackup, Name: contract.BackupCronJobName(name)}, cj); err != nil {
				return err
			}
			if cj.Spec.Suspend == nil || !*cj.Spec.Suspend {
				return errors.New("not suspended yet")
			}
			for _, j := range backupJobs(ctx, t, c, teamBackup) {
				if jobFinished(&j) == "" {
					return fmt.Errorf("job %s still running", j.Name)
				}
			}
			return nil
		})
	})

	newest := func(t *testing.T) string {
		t.Helper()
		complete, _, err := store.Backups(ctx)
		if err != nil || len(complete) == 0 {
			t.Fatalf("complete backups %v, %v", complete, err)
		}
		return complete[0]
	}
	target := func(n, backupName, key string, appendOnly bool) *unstructured.Unstructured {
		o := instance(t, teamRestore)
		o.SetName(n)
		spec := o.Object["spec"].(map[string]any)
		spec["http"] = map[string]any{"enabled": false}
		spec["persistence"] = map[string]any{"rdb": true, "appendOnly": appendOnly}
		spec["writeConnectionSecretToRef"] = map[string]any{"name": n + "-redis"}
		loc := location("backup-s3")
		loc["prefix"] = prefix
		r := map[string]any{"s3": loc, "backup": backupName}
		if key != "" {
			r["encryptionKeySecretRef"] = map[string]any{"name": key}
		}
		spec["restore"] = r
		return o
	}

	step("RestoreTenThousandKeysIntoAnotherNamespaceWithAOF", func(t *testing.T) {
		b := newest(t)
		t0 := time.Now()
		if err := c.Apply(ctx, target("restored", b, "", true)); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitInstanceReady(ctx, teamRestore, "restored", 3*time.Minute); err != nil {
			t.Fatal(err)
		}
		t.Logf("instance restored from %s Ready %.1fs after apply", b, time.Since(t0).Seconds())
		rc, _ := redisClient(ctx, t, c, teamRestore, "restored-redis")
		testenv.Eventually(t, 30*time.Second, "PING the restored instance", func() error { return ping(ctx, rc) })
		if n, got := digest(ctx, t, rc); got != want {
			t.Fatalf("the restored instance holds %d keys with digest %s, the source's is %s", n, got[:12], want[:12])
		}
		if aof, err := rc.ConfigGet(ctx, "appendonly").Result(); err != nil || aof["appendonly"] != "yes" {
			t.Errorf("appendonly: want yes, got %v (%v)", aof, err)
		}
		// The keys are in the AOF, not only in memory: a new pod loads them.
		old := &corev1.Pod{}
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: teamRestore, Name: "restored-redis-0"}, old); err != nil {
			t.Fatal(err)
		}
		if err := c.Client.Delete(ctx, old); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 3*time.Minute, "a new pod restored-redis-0 Ready", func() error {
			p := &corev1.Pod{}
			if err := c.Client.Get(ctx, client.ObjectKey{Namespace: teamRestore, Name: "restored-redis-0"}, p); err != nil {
				return err
			}
			if p.UID == old.UID || !podReady(p) {
				return errors.New("not replaced and Ready yet")
			}
			return nil
		})
		rc, _ = redisClient(ctx, t, c, teamRestore, "restored-redis")
		testenv.Eventually(t, 30*time.Second, "PING the restarted instance", func() error { return ping(ctx, rc) })
		if n, got := digest(ctx, t, rc); got != want {
			t.Errorf("after a pod restart the restored instance holds %d keys with digest %s, the source's is %s", n, got[:12], want[:12])
		}
	})

	step("EncryptedBackupNeedsItsKeyCorruptBackupFailsLoudly", func(t *testing.T) {
		plain := newest(t)
		if err := c.Apply(ctx, source("", "backup-s3", "backup-key")); err != nil {
			t.Fatal(err)
		}
		// The function composes the key into the CronJob; wait for it
		// before taking the backup.
		testenv.Eventually(t, 2*time.Minute, "the CronJob has the encryption key", func() error {
			cj := &batchv1.CronJob{}
			if err := c.Client.Get(ctx, client.ObjectKey{Namespace: teamBackup, Name: contract.BackupCronJobName(name)}, cj); err != nil {
				return err
			}
			for _, e := range cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Env {
				if e.Name == "BACKUP_ENCRYPTION_KEY" {
					return nil
				}
			}
			return errors.New("not yet")
		})
		res, ok := runBackupJob(ctx, t, c, teamBackup, "encrypted")
		if !ok || res.Reason != "" {
			t.Fatalf("encrypted backup failed: %+v", res)
		}
		enc := res.Name
		if m, err := store.Manifest(ctx, enc); err != nil || !m.Encrypted {
			t.Fatalf("backup %s should be encrypted: %+v, %v", enc, m, err)
		}
		// One byte of the plain backup's object changed in the bucket.
		obj := filepath.Join(s3.Dir, backupBucket, prefix, plain+".rdb")
		b, err := os.ReadFile(obj)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0x01
		if err := os.WriteFile(obj, b, 0o600); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		if err := c.Apply(ctx, target("with-key", enc, "backup-key", false), target("without-key", enc, "", false), target("corrupt", plain, "", false)); err != nil {
			t.Fatal(err)
		}
		// The three restores run side by side (parallel sub-tests run
		// when this function returns; the step waits for them).
		t.Run("WithItsKey", func(t *testing.T) {
			t.Parallel()
			if err := c.WaitInstanceReady(ctx, teamRestore, "with-key", 3*time.Minute); err != nil {
				t.Fatal(err)
			}
			t.Logf("instance restored from encrypted %s with its key Ready %.1fs after apply", enc, time.Since(t0).Seconds())
			rc, _ := redisClient(ctx, t, c, teamRestore, "with-key-redis")
			testenv.Eventually(t, 30*time.Second, "PING with-key", func() error { return ping(ctx, rc) })
			if n, got := digest(ctx, t, rc); got != want {
				t.Errorf("restored from the encrypted backup with its key: %d keys with digest %s, the source's is %s", n, got[:12], want[:12])
			}
		})
		for _, f := range []struct{ instance, backup, says string }{
			{"without-key", enc, "encrypted and no encryption key was given"},
			{"corrupt", plain, "cannot restore backup"},
		} {
			t.Run(f.instance, func(t *testing.T) {
				t.Parallel()
				restoreFailsLoudly(ctx, t, c, f.instance, f.backup, f.says)
			})
		}
	})

	step("WrongCredentialsBackupHealthyFalse", func(t *testing.T) {
		before, _, err := store.Backups(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Apply(ctx, source("", "backup-s3-wrong", "")); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 2*time.Minute, "the CronJob uses the wrong credentials' Secret", func() error {
			cj := &batchv1.CronJob{}
			if err := c.Client.Get(ctx, client.ObjectKey{Namespace: teamBackup, Name: contract.BackupCronJobName(name)}, cj); err != nil {
				return err
			}
			for _, e := range cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name == "backup-s3-wrong" {
					return nil
				}
			}
			return errors.New("not yet")
		})
		res, ok := runBackupJob(ctx, t, c, teamBackup, "wrong-credentials")
		if ok || res.Reason != backup.ReasonCredentialsRefused {
			t.Fatalf("a backup with a wrong secret key: want a failed Job saying %s, got succeeded %t, %+v", backup.ReasonCredentialsRefused, ok, res)
		}
		var msg string
		testenv.Eventually(t, 3*time.Minute, "BackupHealthy False CredentialsRefused", func() error {
			xr, err := c.Get(ctx, local.InstanceAPIVersion, "RedisHttpInstance", teamBackup, name)
			if err != nil {
				return err
			}
			var st, reason string
			if st, reason, msg = condition(xr, "BackupHealthy"); st != "False" || reason != backup.ReasonCredentialsRefused {
				return fmt.Errorf("BackupHealthy %s %s: %s", st, reason, msg)
			}
			return nil
		})
		t.Logf("BackupHealthy False %s: %s", backup.ReasonCredentialsRefused, msg)
		warning(ctx, t, c, teamBackup, name, "the newest backup failed")
		for _, secret := range []string{s3.SecretKey, "not-" + s3.SecretKey} {
			if strings.Contains(msg, secret) {
				t.Error("BackupHealthy's message quotes the secret key")
			}
		}
		after, _, err := store.Backups(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(before, after) {
			t.Errorf("a refused backup changed the bucket's complete backups: %v -> %v", before, after)
		}
	})
}

// restoreFailsLoudly waits until the new instance in team-restore is Failed,
// with a Warning naming the backup and saying why, and checks that its Redis
// never served: no ready endpoint, nothing answering at the pod's IP.
func restoreFailsLoudly(ctx context.Context, t *testing.T, c *local.Cluster, inst, backupName, says string) {
	t.Helper()
	t0 := time.Now()
	testenv.Eventually(t, 3*time.Minute, inst+" Failed", func() error {
		xr, err := c.Get(ctx, local.InstanceAPIVersion, "RedisHttpInstance", teamRestore, inst)
		if err != nil {
			return err
		}
		if ph, _, _ := unstructured.NestedString(xr.Object, "status", "phase"); ph != "Failed" {
			return fmt.Errorf("phase %q", ph)
		}
		return nil
	})
	t.Logf("%s: Failed %.1fs after apply", inst, time.Since(t0).Seconds())
	ev := warning(ctx, t, c, teamRestore, inst, `container "restore" is CrashLoopBackOff`)
	if !strings.Contains(ev, backupName) || !strings.Contains(ev, says) {
		t.Errorf("%s: the Warning should name backup %s and say %q: %s", inst, backupName, says, ev)
	}
	t.Logf("%s: %s", inst, ev)
	xr, err := c.Get(ctx, local.InstanceAPIVersion, "RedisHttpInstance", teamRestore, inst)
	if err != nil {
		t.Fatal(err)
	}
	if st, _, _ := condition(xr, "Ready"); st == "True" {
		t.Errorf("%s is Ready although its restore failed", inst)
	}
	l := &discoveryv1.EndpointSliceList{}
	if err := c.Client.List(ctx, l, client.InNamespace(teamRestore), client.MatchingLabels{discoveryv1.LabelServiceName: inst + "-redis"}); err != nil {
		t.Fatal(err)
	}
	for _, es := range l.Items {
		for _, ep := range es.Endpoints {
			if ep.Conditions.Ready != nil && *ep.Conditions.Ready {
				t.Errorf("%s: Service %s-redis has a ready endpoint %v: an empty Redis would be served", inst, inst, ep.Addresses)
			}
		}
	}
	p := &corev1.Pod{}
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: teamRestore, Name: inst + "-redis-0"}, p); err != nil {
		t.Fatal(err)
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Running != nil || cs.Ready {
			t.Errorf("%s: container %q is running although the restore failed: %+v", inst, cs.Name, cs.State)
		}
	}
	// Nothing speaks Redis with the instance's password at the pod's IP.
	s := &corev1.Secret{}
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: teamRestore, Name: inst + "-redis"}, s); err != nil {
		t.Fatal(err)
	}
	if p.Status.PodIP != "" {
		rc := redis.NewClient(&redis.Options{
			Addr: net.JoinHostPort(p.Status.PodIP, "6379"), Username: string(s.Data[contract.KeyUsername]), Password: string(s.Data[contract.KeyPassword]),
			MaxRetries: -1, DialTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second, DisableIdentity: true,
		})
		defer rc.Close()
		if err := ping(ctx, rc); err == nil {
			t.Errorf("%s: a Redis answers PING at the pod's IP although its restore failed", inst)
		}
	}
}
