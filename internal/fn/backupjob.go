package fn

import (
	"encoding/json"
	"fmt"
	"regexp"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/ai-decenter/redishttp/internal/contract"

	"github.com/crossplane/function-sdk-go/errors"
	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
	"github.com/crossplane/function-sdk-go/request"
	fnresource "github.com/crossplane/function-sdk-go/resource"
	"github.com/crossplane/function-sdk-go/resource/composite"
	"github.com/crossplane/function-sdk-go/response"
)

// The backup job and the restore init container run cmd/backup, our static
// binary, as a non-root user without a service account token: they need
// nothing of the Kubernetes API, only Redis, the bucket and the data volume.
const (
	backupUID = 65532
	// backupDeadline bounds one backup job (also the binary's --timeout).
	backupDeadline = 6 * time.Hour
	// backupHistory is how many finished jobs of each outcome the CronJob
	// keeps; their pods are where the function reads results from.
	backupHistory = 3
	// onDemandTTL deletes jobs made with kubectl create job --from after a
	// week (the CronJob's history limits only count its own).
	onDemandTTL = 7 * 24 * 3600
	// caDir is where the optional CA bundle is mounted.
	caDir = "/etc/backup-ca"
	// backupCAVolume is the CA bundle's volume in both pods.
	backupCAVolume = "backup-ca"
)

// conditionBackupHealthy is True when the newest backup job succeeded, False
// with its reason when it failed.
const conditionBackupHealthy = "BackupHealthy"

// requirementBackupPods is the key under which the function asks for the
// backup jobs' pods, whose termination messages carry their results.
const requirementBackupPods = "backup-pods"

var (
	backupResources = corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("256Mi")},
	}
	reasonRE = regexp.MustCompile(`^[A-Z][A-Za-z]{0,63}$`)
)

// backupSelector selects an instance's backup pods.
func backupSelector(in *instance) map[string]string {
	return map[string]string{contract.LabelName: contract.NameBackup, contract.LabelInstance: in.Name}
}

func backupLabels(in *instance) map[string]string {
	l := backupSelector(in)
	l[contract.LabelManagedBy] = contract.ManagedBy
	return l
}

// restrictedContainer is the security context of both of our containers:
// Pod Security Standards "restricted".
func restrictedContainer() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: new(false),
		ReadOnlyRootFilesystem:   new(true),
		RunAsNonRoot:             new(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
}

// s3Env is the environment cmd/backup reads a bucket location and its
// credentials from; Secret values are references, never copied.
func s3Env(in *instance, s s3Params, keySecret string) []corev1.EnvVar {
	env := []corev1.EnvVar{
		{Name: "S3_ENDPOINT", Value: s.Endpoint},
		{Name: "S3_BUCKET", Value: s.Bucket},
		{Name: "S3_PREFIX", Value: prefixOf(s, in)},
		{Name: "S3_REGION", Value: s.Region},
		secretEnv("AWS_ACCESS_KEY_ID", s.Credentials, contract.BackupAccessKeyKey),
		secretEnv("AWS_SECRET_ACCESS_KEY", s.Credentials, contract.BackupSecretKeyKey),
	}
	if keySecret != "" {
		env = append(env, secretEnv("BACKUP_ENCRYPTION_KEY", keySecret, contract.BackupEncryptionKeyKey))
	}
	if s.CA != "" {
		env = append(env, corev1.EnvVar{Name: "S3_CA_FILE", Value: caDir + "/" + contract.BackupCAKey})
	}
	return env
}

func secretEnv(name, secret, key string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: key,
	}}}
}

func caVolume(s s3Params) []corev1.Volume {
	if s.CA == "" {
		return nil
	}
	return []corev1.Volume{{Name: backupCAVolume, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
		SecretName: s.CA, Items: []corev1.KeyToPath{{Key: contract.BackupCAKey, Path: contract.BackupCAKey}}, DefaultMode: ptr.To[int32](0o444),
	}}}}
}

func caMount(s s3Params) []corev1.VolumeMount {
	if s.CA == "" {
		return nil
	}
	return []corev1.VolumeMount{{Name: backupCAVolume, MountPath: caDir, ReadOnly: true}}
}

// backupCronJob is <name>-backup: scheduled backups, and the template of
// on-demand ones (kubectl create job --from=cronjob/<name>-backup). Without a
// schedule it is suspended, which keeps it as a template. The snapshot comes
// from the instance's Service over Redis's replication protocol (see
// internal/backup), authenticated with the instance's admin password from
// its auth Secret; with replicas from the replicas' Service, so the master
// does not fork for it.
func backupCronJob(in *instance, b *backupParams, image, clusterDomain string, ha bool) *batchv1.CronJob {
	schedule, suspend := b.Schedule, false
	if schedule == "" {
		// Never due; suspended anyway.
		schedule, suspend = "0 0 1 1 *", true
	}
	host := contract.ServiceHost(in.Name, in.Namespace, clusterDomain)
	if ha {
		host = fmt.Sprintf("%s.%s.svc.%s", contract.ReplicasServiceName(in.Name), in.Namespace, clusterDomain)
	}
	redisAddr := fmt.Sprintf("%s:%d", host, contract.RedisPort)
	env := append([]corev1.EnvVar{
		{Name: "REDIS_ADDRESS", Value: redisAddr},
		{Name: "REDIS_USER", Value: contract.AdminUser},
		secretEnv("REDIS_PASSWORD", contract.AuthSecretName(in.Name), contract.AuthPasswordKey),
		{Name: "KEEP", Value: fmt.Sprint(b.Keep)},
		{Name: "TIMEOUT", Value: backupDeadline.String()},
	}, s3Env(in, b.S3, b.EncryptionKey)...)
	pod := corev1.PodSpec{
		RestartPolicy:                corev1.RestartPolicyNever,
		AutomountServiceAccountToken: new(false),
		EnableServiceLinks:           new(false),
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot:   new(true),
			RunAsUser:      ptr.To[int64](backupUID),
			RunAsGroup:     ptr.To[int64](backupUID),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		Containers: []corev1.Container{{
			Name:                     contract.BackupContainer,
			Image:                    image,
			Args:                     []string{"backup"},
			Env:                      env,
			Resources:                backupResources,
			SecurityContext:          restrictedContainer(),
			TerminationMessagePolicy: corev1.TerminationMessageReadFile,
			VolumeMounts:             caMount(b.S3),
		}},
		Volumes: caVolume(b.S3),
	}
	return &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: contract.BackupCronJobName(in.Name), Namespace: in.Namespace, Labels: backupLabels(in)},
		Spec: batchv1.CronJobSpec{
			Schedule:                   schedule,
			TimeZone:                   new("Etc/UTC"),
			Suspend:                    new(suspend),
			ConcurrencyPolicy:          batchv1.ForbidConcurrent,
			StartingDeadlineSeconds:    new(int64(300)),
			SuccessfulJobsHistoryLimit: new(int32(backupHistory)),
			FailedJobsHistoryLimit:     new(int32(backupHistory)),
			JobTemplate: batchv1.JobTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: backupLabels(in)},
				Spec: batchv1.JobSpec{
					// A failed backup is reported, not retried: the next one
					// is at most one schedule away, and a retry would hide
					// the failure from BackupHealthy.
					BackoffLimit:            new(int32(0)),
					ActiveDeadlineSeconds:   new(int64(backupDeadline.Seconds())),
					TTLSecondsAfterFinished: new(int32(onDemandTTL)),
					Template: corev1.PodTemplateSpec{
						ObjectMeta: metav1.ObjectMeta{Labels: backupLabels(in)},
						Spec:       pod,
					},
				},
			},
		},
	}
}

// backupNetworkPolicy limits the backup pods' egress, when the instance has
// a NetworkPolicy, to Redis's port on the instance's pods, DNS, and the
// bucket's port (on any address: the endpoint is a name).
func backupNetworkPolicy(in *instance, b *backupParams) *networkingv1.NetworkPolicy {
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	redisPort, dns, s3 := intstr.FromInt32(contract.RedisPort), intstr.FromInt32(53), intstr.FromInt32(b.S3.Port)
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: contract.BackupCronJobName(in.Name), Namespace: in.Namespace, Labels: backupLabels(in)},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: backupSelector(in)},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			Egress: []networkingv1.NetworkPolicyEgressRule{
				{
					To:    []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: selector(in)}}},
					Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &redisPort}},
				},
				{Ports: []networkingv1.NetworkPolicyPort{{Protocol: &udp, Port: &dns}, {Protocol: &tcp, Port: &dns}}},
				{Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &s3}}},
			},
		},
	}
}

// restoreContainer is the init container that seeds a new instance's data
// directory from a backup, before prepare-data (which loads the RDB into the
// AOF when appendOnly is on) and before Redis starts. A failure exits
// non-zero with its message as the termination message: the pod never
// starts Redis, and the instance turns Failed saying which backup.
func restoreContainer(in *instance, r *restoreParams, image string, redis corev1.Container) corev1.Container {
	env := []corev1.EnvVar{
		{Name: "BACKUP", Value: r.Backup},
		{Name: "DATA_DIR", Value: dataDir},
	}
	if v := redisVersionOf(redis.Image); v != "" {
		// A backup a newer Redis made is refused, saying so, rather than
		// left for this Redis to refuse at every start.
		env = append(env, corev1.EnvVar{Name: "REDIS_VERSION", Value: v})
	}
	env = append(env, s3Env(in, r.S3, r.EncryptionKey)...)
	return corev1.Container{
		Name:                     contract.RestoreContainer,
		Image:                    image,
		Args:                     []string{"restore"},
		Env:                      env,
		Resources:                backupResources,
		SecurityContext:          redis.SecurityContext,
		TerminationMessagePolicy: corev1.TerminationMessageReadFile,
		VolumeMounts:             append([]corev1.VolumeMount{{Name: "data", MountPath: dataDir}}, caMount(r.S3)...),
	}
}

// imageVersionRE finds a Redis version at the start of an image's tag
// (redis:7.2-alpine, registry/redis:7.0.15).
var imageVersionRE = regexp.MustCompile(`:(\d{1,4}\.\d{1,4}(?:\.\d{1,6})?)(?:[-.][^:/@]*)?(?:@.*)?$`)

// redisVersionOf returns the Redis version an image's tag names, "" when it
// names none (the restore then does not check the backup's version).
func redisVersionOf(image string) string {
	if m := imageVersionRE.FindStringSubmatch(image); m != nil {
		return m[1]
	}
	return ""
}

// addRestore puts the restore init container into a new instance's pods:
// spec.restore is read when the instance is created (no StatefulSet yet),
// and kept while the StatefulSet has it, so a later spec change never adds
// a restore to a running instance.
func addRestore(sts *corev1.PodSpec, in *instance, r *restoreParams, image string, observed map[fnresource.Name]fnresource.ObservedComposed) {
	if r == nil {
		return
	}
	if oc, ok := observed[nameStatefulSet]; ok && !hasInitContainer(oc.Resource.Object, contract.RestoreContainer) {
		return
	}
	redis := sts.Containers[0]
	for _, c := range sts.Containers {
		if c.Name == redisContainer {
			redis = c
		}
	}
	rc := restoreContainer(in, r, image, redis)
	for i := range sts.Containers {
		if c := &sts.Containers[i]; c.Name == coordinatorContainer {
			// With replicas only pod 0 downloads the backup: the others
			// start empty and replicate from the master, which the
			// coordinators elect among the pods with data, so never
			// before pod 0 restored (see internal/coordinator).
			rc.Env = append(rc.Env, corev1.EnvVar{Name: "RESTORE_POD", Value: contract.PodName(in.Name, 0)})
			c.Args = append(c.Args, "--restored")
		}
	}
	sts.InitContainers = append([]corev1.Container{rc}, sts.InitContainers...)
	sts.Volumes = append(sts.Volumes, caVolume(r.S3)...)
}

func hasInitContainer(sts map[string]any, name string) bool {
	cs, _, _ := unstructured.NestedSlice(sts, "spec", "template", "spec", "initContainers")
	for _, c := range cs {
		m, _ := c.(map[string]any)
		if n, _, _ := unstructured.NestedString(m, "name"); n == name {
			return true
		}
	}
	return false
}

// requireBackupPods asks Crossplane for the instance's backup pods.
func requireBackupPods(rsp *fnv1.RunFunctionResponse, in *instance) {
	ns := in.Namespace
	require(rsp, requirementBackupPods, &fnv1.ResourceSelector{
		ApiVersion: "v1",
		Kind:       "Pod",
		Match:      &fnv1.ResourceSelector_MatchLabels{MatchLabels: &fnv1.MatchLabels{Labels: backupSelector(in)}},
		Namespace:  &ns,
	})
}

// A backupOutcome is what the backup pods say.
type backupOutcome struct {
	// Last and LastTime are the newest successful backup, if any.
	Last     string
	LastTime time.Time
	// Newest is the newest finished job's result; nil when none finished.
	Newest *contract.BackupResult
}

// backupOutcomeOf reads the finished backup pods' termination messages. The
// pods live in the tenant's namespace, so what they say is the tenant's
// input: names, times and reasons must have their shape, messages are cut.
func backupOutcomeOf(req *fnv1.RunFunctionRequest, oxr *composite.Unstructured) backupOutcome {
	var out backupOutcome
	last, _, _ := unstructured.NestedString(oxr.Object, "status", "backup", "last")
	at, _, _ := unstructured.NestedString(oxr.Object, "status", "backup", "lastSuccessfulTime")
	if t, err := time.Parse(time.RFC3339, at); err == nil && backupNameRE.MatchString(last) {
		out.Last, out.LastTime = last, t
	}
	pods, _, _ := request.GetRequiredResource(req, requirementBackupPods)
	var newest time.Time
	for _, pod := range pods {
		cs, _, _ := unstructured.NestedSlice(pod.Resource.Object, "status", "containerStatuses")
		for _, c := range cs {
			m, _ := c.(map[string]any)
			if n, _, _ := unstructured.NestedString(m, "name"); n != contract.BackupContainer {
				continue
			}
			term, ok, _ := unstructured.NestedMap(m, "state", "terminated")
			if !ok {
				continue
			}
			finished, _ := term["finishedAt"].(string)
			ft, err := time.Parse(time.RFC3339, finished)
			if err != nil {
				continue
			}
			msg, _ := term["message"].(string)
			code, _, _ := unstructured.NestedInt64(term, "exitCode")
			res := resultOf(msg, code)
			if ft.After(newest) {
				newest, out.Newest = ft, &res
			}
			if t, err := time.Parse(time.RFC3339, res.Time); err == nil && res.Reason == "" && t.After(out.LastTime) {
				out.Last, out.LastTime = res.Name, t
			}
		}
	}
	return out
}

// resultOf reads one termination message, trusting only its shape.
func resultOf(msg string, exitCode int64) contract.BackupResult {
	res := contract.BackupResult{}
	_ = json.Unmarshal([]byte(msg), &res)
	if exitCode == 0 && backupNameRE.MatchString(res.Name) && res.Reason == "" {
		return contract.BackupResult{Name: res.Name, Time: res.Time, Keys: max(res.Keys, 0), Size: max(res.Size, 0)}
	}
	out := contract.BackupResult{Reason: "BackupFailed", Message: oneLine(res.Message)}
	if reasonRE.MatchString(res.Reason) {
		out.Reason = res.Reason
	}
	if out.Message == "" {
		out.Message = fmt.Sprintf("the backup job's container exited with code %d", exitCode)
	}
	return out
}

// reportBackups sets status.backup and the BackupHealthy condition from what
// the backup pods said, with a Warning event when the newest backup failed
// or the schedule was missed (sc). It returns when its answer would change
// with time alone (zero: never).
func reportBackups(rsp *fnv1.RunFunctionResponse, dxr *fnresource.Composite, in *instance, o backupOutcome, sc scheduleCheck) (time.Time, error) {
	if o.Last != "" {
		st := map[string]any{"last": o.Last, "lastSuccessfulTime": o.LastTime.UTC().Format(time.RFC3339)}
		if err := dxr.Resource.SetValue("status.backup", st); err != nil {
			return time.Time{}, errors.Wrap(err, "cannot set status.backup")
		}
	}
	missed, since, until := sc.missed(o.LastTime)
	switch r := o.Newest; {
	case r != nil && r.Reason != "":
		msg := "the newest backup failed: " + r.Message
		response.ConditionFalse(rsp, conditionBackupHealthy, r.Reason).WithMessage(msg).TargetCompositeAndClaim()
		response.Warning(rsp, errors.New(msg)).WithReason(r.Reason).TargetCompositeAndClaim()
		return time.Time{}, nil
	case missed:
		msg := missedMessage(in.Name, sc.Schedule, since, o.Last != "")
		response.ConditionFalse(rsp, conditionBackupHealthy, reasonScheduleMissed).WithMessage(msg).TargetCompositeAndClaim()
		response.Warning(rsp, errors.New(msg)).WithReason(reasonScheduleMissed).TargetCompositeAndClaim()
		return time.Time{}, nil
	case r == nil:
	default:
		response.ConditionTrue(rsp, conditionBackupHealthy, "BackupSucceeded").
			WithMessage(fmt.Sprintf("backup %s holds %d keys (%d bytes), verified", r.Name, r.Keys, r.Size)).TargetCompositeAndClaim()
	}
	return until, nil
}
