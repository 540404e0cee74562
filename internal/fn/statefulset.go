package fn

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"

	"github.com/ai-decenter/redishttp/internal/contract"

	"github.com/crossplane/function-sdk-go/resource"
)

// The official Redis images run redis-server as uid 999 (group 1000 in the
// alpine variants). Pinning them lets the pod pass Pod Security Standards
// "restricted" (runAsNonRoot needs a numeric uid) while the data volume stays
// writable through fsGroup.
const (
	redisContainer = "redis"

	redisUID = 999
	redisGID = 1000
)

// Probe scripts. `redis-cli ping` exits 0 even when it prints NOAUTH or
// cannot connect, so the scripts compare the reply itself. REDISCLI_AUTH comes
// from the auth Secret; a wrong or missing password gets NOAUTH/WRONGPASS, not
// PONG. Liveness also accepts LOADING so a large dataset being loaded at start
// is not killed in a loop; readiness does not, so no traffic arrives before
// the data is there.
const (
	readinessScript = `r="$(redis-cli -h 127.0.0.1 -p 6379 ping 2>&1)"; [ "$r" = PONG ] || { echo "$r"; exit 1; }`
	livenessScript  = `r="$(redis-cli -h 127.0.0.1 -p 6379 ping 2>&1)"; case "$r" in PONG|LOADING*) exit 0;; esac; echo "$r"; exit 1`
)

// ReadinessCommand and LivenessCommand are the probes' exec commands, exported
// for the tests that run them against a real redis-server.
func ReadinessCommand() []string { return []string{"sh", "-c", readinessScript} }

// LivenessCommand is the liveness probe's exec command.
func LivenessCommand() []string { return []string{"sh", "-c", livenessScript} }

// checksum covers everything the pod reads at start (redis.conf and the auth
// file), so changing either rolls the pod. It is a digest; the password cannot
// be recovered from it.
func checksum(conf, auth string) string {
	h := sha256.New()
	h.Write([]byte(conf))
	h.Write([]byte{0})
	h.Write([]byte(auth))
	return hex.EncodeToString(h.Sum(nil))
}

// stampPrefix starts the last line of redis.conf and of auth.conf: the
// checksum of both as composed (the pod template's checksumAnno).
const stampPrefix = "# redishttp-config "

// stamp ends a file the pod reads at start with the checksum of everything
// composed for it. Crossplane may apply the StatefulSet before the ConfigMap
// or the Secret: a pod created then would start with the previous files. So
// prepare-data, the first to read them, waits until redis.conf and every
// file it includes carry the checksum of the pod's own template (the kubelet
// updates ConfigMap and Secret volumes within a minute or so).
func stamp(file, sum string) string { return file + stampPrefix + sum + "\n" }

// gracePeriodFor is the pod's terminationGracePeriodSeconds: on SIGTERM Redis
// writes its final RDB snapshot (and fsyncs the AOF) before it exits, and a
// kubelet that kills it sooner loses the writes since the last snapshot.
// 30 seconds, plus 10 for every GiB of memory or part of one (about 100 MiB/s
// of disk): 256Mi -> 40 s, 4Gi -> 70 s, 64Gi -> 670 s.
func gracePeriodFor(memory int64) int64 {
	const gib = 1 << 30
	return 30 + 10*((memory+gib-1)/gib)
}

func statefulSet(in *instance, p *params, sum string) *appsv1.StatefulSet {
	retention := appsv1.DeletePersistentVolumeClaimRetentionPolicyType
	if p.ReclaimPolicy == reclaimRetain {
		retention = appsv1.RetainPersistentVolumeClaimRetentionPolicyType
	}
	pvc := corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data", Labels: selector(in)},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: p.StorageSize}},
		},
	}
	if p.StorageClass != "" {
		pvc.Spec.StorageClassName = new(p.StorageClass)
	}
	redis := corev1.Container{
		Name:    redisContainer,
		Image:   p.Image,
		Command: []string{"redis-server", configFile},
		Ports:   []corev1.ContainerPort{{Name: "redis", ContainerPort: contract.RedisPort, Protocol: corev1.ProtocolTCP}},
		Env: []corev1.EnvVar{{
			Name: "REDISCLI_AUTH",
			ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: contract.AuthSecretName(in.Name)},
				Key:                  contract.AuthPasswordKey,
			}},
		}},
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceMemory: p.Memory, corev1.ResourceCPU: p.CPURequest},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: p.Memory, corev1.ResourceCPU: p.CPULimit},
		},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: ReadinessCommand()}},
			PeriodSeconds:    5,
			TimeoutSeconds:   3,
			FailureThreshold: 3,
			SuccessThreshold: 1,
		},
		LivenessProbe: &corev1.Probe{
			ProbeHandler:        corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: LivenessCommand()}},
			InitialDelaySeconds: 10,
			PeriodSeconds:       10,
			TimeoutSeconds:      5,
			FailureThreshold:    6,
			SuccessThreshold:    1,
		},
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: new(false),
			ReadOnlyRootFilesystem:   new(true),
			RunAsNonRoot:             new(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		},
		VolumeMounts: []corev1.VolumeMount{
			{Name: "data", MountPath: dataDir},
			{Name: "config", MountPath: configDir, ReadOnly: true},
			{Name: "auth", MountPath: authDir, ReadOnly: true},
		},
	}
	if savesOnlyOnStop(p) {
		redis.Command = []string{"sh", "-c", noPersistenceScript, redisContainer, configFile}
	}
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: contract.StatefulSetName(in.Name), Namespace: in.Namespace, Labels: labels(in)},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    ptr.To[int32](1),
			ServiceName: contract.HeadlessServiceName(in.Name),
			Selector:    &metav1.LabelSelector{MatchLabels: selector(in)},
			// Parallel, not OrderedReady: with OrderedReady a pod that never
			// becomes ready (a bad image or config value) blocks the controller
			// before it reaches the rolling update, so even reverting the spec
			// leaves it stuck until someone deletes the pod by hand
			// (kubernetes#67250). With Parallel the controller replaces a pod
			// of an old revision whether or not it is ready, so a revert heals.
			// With one replica there is no ordering to lose.
			PodManagementPolicy: appsv1.ParallelPodManagement,
			UpdateStrategy:      appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType},
			PersistentVolumeClaimRetentionPolicy: &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
				WhenDeleted: retention,
				WhenScaled:  appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels(in), Annotations: map[string]string{checksumAnno: sum}},
				Spec: corev1.PodSpec{
					AutomountServiceAccountToken:  new(false),
					EnableServiceLinks:            new(false),
					TerminationGracePeriodSeconds: new(gracePeriodFor(p.Memory.Value())),
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:        new(true),
						RunAsUser:           ptr.To[int64](redisUID),
						RunAsGroup:          ptr.To[int64](redisGID),
						FSGroup:             ptr.To[int64](redisGID),
						FSGroupChangePolicy: ptr.To(corev1.FSGroupChangeOnRootMismatch),
						SeccompProfile:      &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					InitContainers: []corev1.Container{prepareData(redis)},
					Containers:     []corev1.Container{redis},
					Volumes: []corev1.Volume{
						{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
							LocalObjectReference: corev1.LocalObjectReference{Name: contract.ConfigMapName(in.Name)},
							Items:                []corev1.KeyToPath{{Key: confKey, Path: confKey}},
						}}},
						{Name: "auth", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
							SecretName:  contract.AuthSecretName(in.Name),
							Items:       []corev1.KeyToPath{{Key: contract.AuthFileKey, Path: contract.AuthFileKey}},
							DefaultMode: ptr.To[int32](0o440),
						}}},
					},
				},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{pvc},
		},
	}
}

// keepVolumeTemplate keeps an existing StatefulSet's volume claim template:
// Kubernetes refuses any change to it, and a refused apply would freeze the
// StatefulSet, memory changes and all, until the tenant reverted. It returns
// a message for the tenant when their storage spec differs from the volume
// they have.
func keepVolumeTemplate(sts *appsv1.StatefulSet, observed map[resource.Name]resource.ObservedComposed) string {
	oc, ok := observed[nameStatefulSet]
	if !ok {
		return ""
	}
	templates, ok, _ := unstructured.NestedSlice(oc.Resource.Object, "spec", "volumeClaimTemplates")
	if !ok || len(templates) == 0 {
		return ""
	}
	var have []corev1.PersistentVolumeClaim
	for _, t := range templates {
		m, ok := t.(map[string]any)
		if !ok {
			return ""
		}
		pvc := corev1.PersistentVolumeClaim{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, &pvc); err != nil {
			return ""
		}
		pvc.Status = corev1.PersistentVolumeClaimStatus{}
		have = append(have, pvc)
	}
	want := sts.Spec.VolumeClaimTemplates[0].Spec
	got := have[0].Spec
	sts.Spec.VolumeClaimTemplates = have
	wantSize, gotSize := want.Resources.Requests[corev1.ResourceStorage], got.Resources.Requests[corev1.ResourceStorage]
	wantClass, gotClass := ptr.Deref(want.StorageClassName, ""), ptr.Deref(got.StorageClassName, "")
	if wantSize.Cmp(gotSize) == 0 && (wantClass == "" || wantClass == gotClass) {
		return ""
	}
	return fmt.Sprintf("spec.storage changes do not apply to the existing volume (size %s, class %q): Kubernetes cannot change a StatefulSet's volume template. "+
		"To grow it, resize PersistentVolumeClaim %s-%s-0 directly if its storage class allows expansion",
		gotSize.String(), gotClass, have[0].Name, sts.Name)
}
