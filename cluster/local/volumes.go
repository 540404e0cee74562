package local

import (
	"context"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	kerrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// annotationProvisioned marks the PersistentVolumes the provisioner made.
const annotationProvisioned = "redishttp.io/local-provisioner"

// StorageClass is the default StorageClass the local control plane creates:
// WaitForFirstConsumer, provisioned by startVolumes.
const StorageClass = "standard"

// startVolumes runs a small PersistentVolume provisioner: every pending PVC
// gets a hostPath PV under <dir>/volumes, pre-bound to it, which
// kube-controller-manager then binds. Released PVs it made are deleted with
// their directory (kube-controller-manager's hostPath deleter only handles
// /tmp). The pod runner uses the PV's directory as the pod's volume.
func (c *Cluster) startVolumes(ctx context.Context) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx)) // Runs until Stop, beyond Start.
	done := make(chan struct{})
	c.onStop(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for {
			c.provisionOnce(ctx)
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
}

func (c *Cluster) provisionOnce(ctx context.Context) {
	pvcs := &corev1.PersistentVolumeClaimList{}
	if err := c.Client.List(ctx, pvcs); err != nil {
		return
	}
	for i := range pvcs.Items {
		pvc := &pvcs.Items[i]
		if pvc.Spec.VolumeName != "" || pvc.Status.Phase != corev1.ClaimPending || pvc.DeletionTimestamp != nil {
			continue
		}
		// Our default StorageClass binds on first consumer: provision once
		// the scheduler picked the node, as a real provisioner would. A PVC
		// that asks for no class binds statically, at once.
		_, picked := pvc.Annotations["volume.kubernetes.io/selected-node"]
		if !picked && (pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName != "") {
			continue
		}
		dir := filepath.Join(c.opts.Dir, "volumes", string(pvc.UID))
		if err := os.MkdirAll(dir, 0o750); err != nil {
			continue
		}
		class := ""
		if pvc.Spec.StorageClassName != nil {
			class = *pvc.Spec.StorageClassName
		}
		size := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
		hostPathType := corev1.HostPathDirectory
		pv := &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: "pvc-" + string(pvc.UID), Annotations: map[string]string{annotationProvisioned: "true"}},
			Spec: corev1.PersistentVolumeSpec{
				Capacity:                      corev1.ResourceList{corev1.ResourceStorage: size},
				AccessModes:                   pvc.Spec.AccessModes,
				StorageClassName:              class,
				PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
				ClaimRef:                      &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID},
				PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: dir, Type: &hostPathType}},
				VolumeMode:                    pvc.Spec.VolumeMode,
			},
		}
		if err := c.Client.Create(ctx, pv); err != nil && !kerrors.IsAlreadyExists(err) {
			c.opts.Logf("cannot provision a volume for PVC %s/%s: %v", pvc.Namespace, pvc.Name, err)
			continue
		}
	}
	pvs := &corev1.PersistentVolumeList{}
	if err := c.Client.List(ctx, pvs); err != nil {
		return
	}
	for i := range pvs.Items {
		pv := &pvs.Items[i]
		if pv.Annotations[annotationProvisioned] != "true" || (pv.Status.Phase != corev1.VolumeReleased && pv.Status.Phase != corev1.VolumeFailed) {
			continue
		}
		if ref := pv.Spec.ClaimRef; ref != nil && c.claimInUse(ref.Namespace, ref.Name) {
			continue
		}
		if err := c.Client.Delete(ctx, pv); client.IgnoreNotFound(err) == nil && pv.Spec.HostPath != nil {
			_ = os.RemoveAll(pv.Spec.HostPath.Path)
		}
	}
}
