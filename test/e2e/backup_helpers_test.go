//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ai-decenter/redishttp/cluster/local"
	"github.com/ai-decenter/redishttp/internal/backup"
	"github.com/ai-decenter/redishttp/internal/contract"
	"github.com/ai-decenter/redishttp/internal/podrunner"
	"github.com/ai-decenter/redishttp/internal/testenv"
)

// What the backup tests of both modes share: a real S3 server the pods
// reach, the data written and compared, and on-demand backup Jobs.

// backupBucket is the bucket the tests' backups go to.
const backupBucket = "tenant-backups"

// A backupS3 is a real S3 server (versitygw) holding backupBucket.
type backupS3 struct {
	*testenv.S3
	// PodEndpoint is its URL as the local platform's pods reach it.
	PodEndpoint string
}

// startBackupS3 starts the S3 server for the test and creates backupBucket.
func startBackupS3(t *testing.T) *backupS3 {
	t.Helper()
	s3 := testenv.StartS3ForPods(t)
	s3.MakeBucket(t, backupBucket)
	return &backupS3{S3: s3, PodEndpoint: "http://" + net.JoinHostPort(podrunner.HostIP, strconv.Itoa(s3.Port))}
}

// location is an s3 block of spec.backup or spec.restore naming the
// credentials' Secret.
func (s *backupS3) location(credentials string) map[string]any {
	return map[string]any{"endpoint": s.PodEndpoint, "bucket": backupBucket, "credentialsSecretRef": map[string]any{"name": credentials}}
}

// store opens the backups under prefix as the test reads them.
func (s *backupS3) store(t *testing.T, prefix string) *backup.Store {
	t.Helper()
	st, err := backup.OpenStore(backup.S3Options{Endpoint: s.Endpoint, Bucket: backupBucket, Prefix: prefix, AccessKey: s.AccessKey, SecretKey: s.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// secrets creates the Secrets data names in namespace ns.
func secrets(ctx context.Context, t *testing.T, c *local.Cluster, ns string, data map[string]map[string]string) {
	t.Helper()
	for sec, d := range data {
		if err := c.Client.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sec}, StringData: d}); err != nil {
			t.Fatal(err)
		}
	}
}

// writeBackupData writes n strings and one key of each other type.
func writeBackupData(ctx context.Context, t *testing.T, rc *redis.Client, n int) {
	t.Helper()
	pipe := rc.Pipeline()
	for i := range n {
		pipe.Set(ctx, fmt.Sprintf("key:%05d", i), fmt.Sprintf("value-%d-%s", i, strings.Repeat("x", i%64)), 0)
	}
	pipe.HSet(ctx, "hash", "a", "1", "b", "2")
	pipe.RPush(ctx, "list", "a", "b", "c")
	pipe.SAdd(ctx, "set", "a", "b")
	pipe.ZAdd(ctx, "zset", redis.Z{Score: 1, Member: "a"}, redis.Z{Score: 2.5, Member: "b"})
	pipe.XAdd(ctx, &redis.XAddArgs{Stream: "stream", ID: "1-1", Values: []string{"f", "v"}})
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("cannot write the data: %v", err)
	}
}

// digest is the number of keys and a SHA-256 over every key's name, type
// and value (members of sets and hashes sorted: their order is the hash
// table's), in name order: equal digests are equal datasets.
func digest(ctx context.Context, t *testing.T, rc *redis.Client) (int, string) {
	t.Helper()
	n, d, err := digestOf(ctx, rc)
	if err != nil {
		t.Fatal(err)
	}
	return n, d
}

// digestOf is digest, returning its failure.
func digestOf(ctx context.Context, rc *redis.Client) (int, string, error) {
	var keys []string
	iter := rc.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return 0, "", fmt.Errorf("SCAN: %w", err)
	}
	slices.Sort(keys)
	h := sha256.New()
	for chunk := range slices.Chunk(keys, 1000) {
		pipe := rc.Pipeline()
		types := make([]*redis.StatusCmd, len(chunk))
		for i, k := range chunk {
			types[i] = pipe.Type(ctx, k)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return 0, "", fmt.Errorf("TYPE: %w", err)
		}
		pipe = rc.Pipeline()
		vals := make([]redis.Cmder, len(chunk))
		for i, k := range chunk {
			switch types[i].Val() {
			case "string":
				vals[i] = pipe.Get(ctx, k)
			case "list":
				vals[i] = pipe.LRange(ctx, k, 0, -1)
			case "set":
				vals[i] = pipe.SMembers(ctx, k)
			case "zset":
				vals[i] = pipe.ZRangeWithScores(ctx, k, 0, -1)
			case "hash":
				vals[i] = pipe.HGetAll(ctx, k)
			case "stream":
				vals[i] = pipe.XRange(ctx, k, "-", "+")
			default:
				return 0, "", fmt.Errorf("key %q has type %q", k, types[i].Val())
			}
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return 0, "", fmt.Errorf("reading the values: %w", err)
		}
		for i, k := range chunk {
			v := vals[i]
			if m, ok := v.(*redis.StringSliceCmd); ok && types[i].Val() == "set" {
				members := m.Val()
				slices.Sort(members)
				v = redis.NewStringSliceResult(members, nil)
			}
			// fmt prints maps with sorted keys.
			fmt.Fprintf(h, "%s\x00%s\x00%v\x00", k, types[i].Val(), resultOf(v))
		}
	}
	return len(keys), hex.EncodeToString(h.Sum(nil)), nil
}

// resultOf is a command's value, for printing.
func resultOf(c redis.Cmder) any {
	switch c := c.(type) {
	case *redis.StringCmd:
		return c.Val()
	case *redis.StringSliceCmd:
		return c.Val()
	case *redis.ZSliceCmd:
		return c.Val()
	case *redis.MapStringStringCmd:
		return c.Val()
	case *redis.XMessageSliceCmd:
		return c.Val()
	}
	return c.String()
}

// backupJobs lists the instance's backup Jobs in ns.
func backupJobs(ctx context.Context, t *testing.T, c *local.Cluster, ns string) []batchv1.Job {
	t.Helper()
	l := &batchv1.JobList{}
	if err := c.Client.List(ctx, l, client.InNamespace(ns), client.MatchingLabels{contract.LabelName: contract.NameBackup, contract.LabelInstance: name}); err != nil {
		t.Fatal(err)
	}
	return l.Items
}

// jobFinished is JobComplete or JobFailed once the Job finished, "" before.
func jobFinished(j *batchv1.Job) batchv1.JobConditionType {
	for _, cd := range j.Status.Conditions {
		if (cd.Type == batchv1.JobComplete || cd.Type == batchv1.JobFailed) && cd.Status == corev1.ConditionTrue {
			return cd.Type
		}
	}
	return ""
}

// runBackupJob takes an on-demand backup as `kubectl create job
// --from=cronjob/cache-backup <job>` does, waits until the Job finished and
// returns whether it succeeded and what its pod reported.
func runBackupJob(ctx context.Context, t *testing.T, c *local.Cluster, ns, job string) (contract.BackupResult, bool) {
	t.Helper()
	cj := &batchv1.CronJob{}
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: contract.BackupCronJobName(name)}, cj); err != nil {
		t.Fatal(err)
	}
	j := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: job, Labels: cj.Spec.JobTemplate.Labels,
			Annotations:     map[string]string{"cronjob.kubernetes.io/instantiate": "manual"},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(cj, batchv1.SchemeGroupVersion.WithKind("CronJob"))},
		},
		Spec: cj.Spec.JobTemplate.Spec,
	}
	t0 := time.Now()
	if err := c.Client.Create(ctx, j); err != nil {
		t.Fatal(err)
	}
	var done batchv1.JobConditionType
	testenv.Eventually(t, 3*time.Minute, "Job "+job+" finished", func() error {
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(j), j); err != nil {
			return err
		}
		if done = jobFinished(j); done == "" {
			return errors.New("still running")
		}
		return nil
	})
	pods := &corev1.PodList{}
	if err := c.Client.List(ctx, pods, client.InNamespace(ns), client.MatchingLabels{batchv1.JobNameLabel: job}); err != nil || len(pods.Items) != 1 {
		t.Fatalf("Job %s's pod: %d pods, %v", job, len(pods.Items), err)
	}
	var res contract.BackupResult
	for _, cs := range pods.Items[0].Status.ContainerStatuses {
		if cs.Name == contract.BackupContainer && cs.State.Terminated != nil {
			if err := json.Unmarshal([]byte(cs.State.Terminated.Message), &res); err != nil {
				t.Fatalf("Job %s's termination message %q: %v", job, cs.State.Terminated.Message, err)
			}
		}
	}
	t.Logf("backup Job %s: %s in %.1fs: %+v", job, done, time.Since(t0).Seconds(), res)
	return res, done == batchv1.JobComplete
}

// condition returns the status, reason and message of a condition.
func condition(u *unstructured.Unstructured, typ string) (string, string, string) {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, cd := range conds {
		m, _ := cd.(map[string]any)
		if m["type"] == typ {
			return fmt.Sprint(m["status"]), fmt.Sprint(m["reason"]), fmt.Sprint(m["message"])
		}
	}
	return "", "", ""
}

// warning waits for a Warning event on the instance whose message holds
// says, and returns its message.
func warning(ctx context.Context, t *testing.T, c *local.Cluster, ns, inst, says string) string {
	t.Helper()
	var msg string
	testenv.Eventually(t, 2*time.Minute, fmt.Sprintf("a Warning event on %s/%s saying %q", ns, inst, says), func() error {
		l := &corev1.EventList{}
		if err := c.Client.List(ctx, l, client.InNamespace(ns)); err != nil {
			return err
		}
		var seen bytes.Buffer
		for _, e := range l.Items {
			if e.InvolvedObject.Name != inst || e.Type != corev1.EventTypeWarning {
				continue
			}
			if strings.Contains(e.Message, says) {
				msg = e.Message
				return nil
			}
			fmt.Fprintf(&seen, "%s: %s; ", e.Reason, e.Message)
		}
		return fmt.Errorf("warnings so far: %s", seen.String())
	})
	return msg
}
