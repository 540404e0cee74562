//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ai-decenter/redishttp/cluster/local"
	"github.com/ai-decenter/redishttp/internal/contract"
	"github.com/ai-decenter/redishttp/internal/testenv"
)

// haBackupKeys is how many strings the HA backup holds (plus one key of
// each other type and what the steps before wrote): few, the data path is
// TestBackupAndRestore's.
const haBackupKeys = 300

// haBackupAndRestore backs the HA instance (team-ha/cache) up with an
// on-demand Job from its CronJob's template, which reads a replica, restores
// the backup into a new instance with three pods in team-restore and checks
// that every pod of it holds every key by digest: pod 0 restores the backup,
// is elected master for holding the data, and the others replicate it.
func haBackupAndRestore(ctx context.Context, t *testing.T, c *local.Cluster, rc *redis.Client, inst *unstructured.Unstructured) {
	t.Helper()
	s3 := startBackupS3(t)
	creds := map[string]map[string]string{"backup-s3": {contract.BackupAccessKeyKey: s3.AccessKey, contract.BackupSecretKeyKey: s3.SecretKey}}
	secrets(ctx, t, c, teamHA, creds)
	if err := c.EnsureNamespace(ctx, teamRestore, map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}); err != nil {
		t.Fatal(err)
	}
	secrets(ctx, t, c, teamRestore, creds)

	src := inst.DeepCopy()
	if err := setSpec(src, "backup", map[string]any{"keep": int64(2), "s3": s3.location("backup-s3")}); err != nil {
		t.Fatal(err)
	}
	if err := c.Apply(ctx, src); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 2*time.Minute, "CronJob "+contract.BackupCronJobName(name), func() error {
		return c.Client.Get(ctx, client.ObjectKey{Namespace: teamHA, Name: contract.BackupCronJobName(name)}, &batchv1.CronJob{})
	})
	writeBackupData(ctx, t, rc, haBackupKeys)
	// The Job reads a replica: both have every write before it starts.
	testenv.Eventually(t, time.Minute, "both replicas acknowledge every write", func() error {
		n, err := rc.Wait(ctx, 2, 5*time.Second).Result()
		if err != nil {
			return err
		}
		if n < 2 {
			return fmt.Errorf("WAIT 2: %d replicas acknowledged", n)
		}
		return nil
	})
	n, want := digest(ctx, t, rc)
	res, ok := runBackupJob(ctx, t, c, teamHA, "ha-now")
	if !ok || res.Reason != "" || res.Keys != int64(n) {
		t.Fatalf("the backup of three pods: want a complete backup of %d keys, got succeeded %t, %+v", n, ok, res)
	}

	const restored = "restored"
	o := instance(t, teamRestore)
	o.SetName(restored)
	loc := s3.location("backup-s3")
	loc["prefix"] = teamHA + "/" + name + "/"
	for field, v := range map[string]any{
		"replicas":                   int64(3),
		"http":                       map[string]any{"enabled": false},
		"writeConnectionSecretToRef": map[string]any{"name": restored + "-redis"},
		"restore":                    map[string]any{"s3": loc, "backup": res.Name},
	} {
		if err := setSpec(o, field, v); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Now()
	if err := c.Apply(ctx, o); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitInstanceReady(ctx, teamRestore, restored, 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	t.Logf("instance with three pods restored from %s (%d keys) Ready %.1fs after apply", res.Name, n, time.Since(t0).Seconds())

	s := &corev1.Secret{}
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: teamRestore, Name: restored + "-redis"}, s); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		pod := contract.PodName(restored, i)
		testenv.Eventually(t, 3*time.Minute, pod+" holds every key", func() error {
			p := &corev1.Pod{}
			if err := c.Client.Get(ctx, client.ObjectKey{Namespace: teamRestore, Name: pod}, p); err != nil {
				return err
			}
			if p.Status.PodIP == "" {
				return errors.New("no pod IP yet")
			}
			pc := redis.NewClient(&redis.Options{
				Addr: net.JoinHostPort(p.Status.PodIP, fmt.Sprint(contract.RedisPort)), Username: string(s.Data[contract.KeyUsername]), Password: string(s.Data[contract.KeyPassword]),
				MaxRetries: -1, DialTimeout: 2 * time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, DisableIdentity: true,
			})
			defer pc.Close()
			info, err := pc.Info(ctx, "replication").Result()
			if err != nil {
				return err
			}
			if !strings.Contains(info, "role:master") && !strings.Contains(info, "master_link_status:up") {
				return errors.New("a replica not in sync yet")
			}
			got, d, err := digestOf(ctx, pc)
			if err != nil {
				return err
			}
			if d != want {
				return fmt.Errorf("%d keys with digest %s, the source has %d with %s", got, d[:12], n, want[:12])
			}
			return nil
		})
	}
	// Only pod 0 downloaded the backup; the others started empty and
	// replicated it.
	for i := range 3 {
		p := &corev1.Pod{}
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: teamRestore, Name: contract.PodName(restored, i)}, p); err != nil {
			t.Fatal(err)
		}
		r := restoreResult(t, p)
		switch {
		case i == 0 && (r.Name != res.Name || r.Keys != int64(n)):
			t.Errorf("pod %s should have restored backup %s with %d keys: %+v", p.Name, res.Name, n, r)
		case i > 0 && r.Name != "":
			t.Errorf("pod %s downloaded backup %s too: only pod 0 needs it", p.Name, r.Name)
		}
	}
}

// restoreResult is what a pod's restore init container reported.
func restoreResult(t *testing.T, p *corev1.Pod) contract.BackupResult {
	t.Helper()
	var res contract.BackupResult
	for _, cs := range p.Status.InitContainerStatuses {
		if cs.Name != contract.RestoreContainer {
			continue
		}
		if cs.State.Terminated == nil {
			t.Fatalf("pod %s's restore container has not terminated: %+v", p.Name, cs.State)
		}
		if err := json.Unmarshal([]byte(cs.State.Terminated.Message), &res); err != nil {
			t.Fatalf("pod %s's restore termination message %q: %v", p.Name, cs.State.Terminated.Message, err)
		}
		return res
	}
	t.Fatalf("pod %s has no restore init container", p.Name)
	return res
}
