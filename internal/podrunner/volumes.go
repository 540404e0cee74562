package podrunner

import (
	"bytes"
	"context"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
)

// volumes materialises the pod's volumes under root and returns each one's
// directory, and the names of those backed by a PersistentVolumeClaim.
func volumes(ctx context.Context, src Source, pod *corev1.Pod, root string) (map[string]string, map[string]bool, error) {
	dirs := map[string]string{}
	claims := map[string]bool{}
	for _, v := range pod.Spec.Volumes {
		dir := filepath.Join(root, "volumes", v.Name)
		var data map[string][]byte
		var items []corev1.KeyToPath
		var err error
		switch {
		case v.PersistentVolumeClaim != nil:
			d, err := src.ClaimDir(ctx, v.PersistentVolumeClaim.ClaimName)
			if err != nil {
				return nil, nil, errors.Wrapf(err, "cannot get the volume of PersistentVolumeClaim %q", v.PersistentVolumeClaim.ClaimName)
			}
			dirs[v.Name] = d
			claims[v.Name] = true
			continue
		case v.EmptyDir != nil:
		case v.ConfigMap != nil:
			data, err = src.ConfigMap(ctx, v.ConfigMap.Name)
			items = v.ConfigMap.Items
			if err != nil && !optional(v.ConfigMap.Optional) {
				return nil, nil, errors.Wrapf(err, "cannot get ConfigMap %q", v.ConfigMap.Name)
			}
		case v.Secret != nil:
			data, err = src.Secret(ctx, v.Secret.SecretName)
			items = v.Secret.Items
			if err != nil && !optional(v.Secret.Optional) {
				return nil, nil, errors.Wrapf(err, "cannot get Secret %q", v.Secret.SecretName)
			}
		case v.Projected != nil:
			if data, err = projected(ctx, src, pod, v.Projected); err != nil {
				return nil, nil, errors.Wrapf(err, "volume %q", v.Name)
			}
		default:
			return nil, nil, errors.Errorf("volume %q: only PersistentVolumeClaim, emptyDir, ConfigMap, Secret and projected volumes are supported", v.Name)
		}
		if err := os.RemoveAll(dir); err != nil {
			return nil, nil, errors.Wrap(err, "cannot clean volume directory")
		}
		if err := writeItems(dir, data, items); err != nil {
			return nil, nil, err
		}
		dirs[v.Name] = dir
	}
	return dirs, claims, nil
}

func optional(b *bool) bool { return b != nil && *b }

// RefreshPeriod is how often a running pod's ConfigMap and Secret volumes
// are brought up to date with their objects, as the kubelet does in its
// periodic sync (within about a minute there): a container that started
// before a change reads the new files once they are there.
const RefreshPeriod = time.Second

// refresh keeps the pod's ConfigMap and Secret volumes up to date until the
// pod stops. Each changed file is replaced whole (a rename), so a reader
// sees the old or the new content, never a mix; a failed read keeps what
// the volume has, as the kubelet does.
func (p *Pod) refresh(ctx context.Context, src Source, pod *corev1.Pod, dirs map[string]string, claims map[string]bool, mounts map[string]string) {
	t := time.NewTicker(RefreshPeriod)
	defer t.Stop()
	for {
		select {
		case <-p.stopped:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, v := range pod.Spec.Volumes {
			var data map[string][]byte
			var items []corev1.KeyToPath
			var err error
			switch {
			case claims[v.Name]:
				continue
			case v.ConfigMap != nil:
				data, err = src.ConfigMap(ctx, v.ConfigMap.Name)
				items = v.ConfigMap.Items
			case v.Secret != nil:
				data, err = src.Secret(ctx, v.Secret.SecretName)
				items = v.Secret.Items
			default:
				continue
			}
			if err != nil {
				continue
			}
			_ = updateItems(dirs[v.Name], data, items, mounts) // The next period tries again.
		}
	}
}

// updateItems replaces the files of a ConfigMap or Secret volume whose
// content changed, mapping the paths they name as writeItems and rewriteTree
// did at start.
func updateItems(dir string, data map[string][]byte, items []corev1.KeyToPath, mounts map[string]string) error {
	for _, it := range itemsOf(data, items) {
		v, ok := data[it.Key]
		if !ok {
			continue
		}
		f := filepath.Join(dir, filepath.Clean("/"+it.Path))
		want := []byte(mapPaths(string(v), mounts))
		if have, err := os.ReadFile(f); err == nil && bytes.Equal(have, want) { //nolint:gosec // A file the runner wrote itself.
			continue
		}
		tmp := f + ".refresh"
		if err := os.WriteFile(tmp, want, 0o600); err != nil {
			return errors.Wrapf(err, "cannot write %q", it.Path)
		}
		if err := os.Rename(tmp, f); err != nil {
			return errors.Wrapf(err, "cannot replace %q", it.Path)
		}
	}
	return nil
}

// projected returns the files of a projected volume by path: service account
// tokens, ConfigMap and Secret keys, and the downward API's pod metadata (what
// the API server's kube-api-access-* volume holds).
func projected(ctx context.Context, src Source, pod *corev1.Pod, v *corev1.ProjectedVolumeSource) (map[string][]byte, error) {
	out := map[string][]byte{}
	keys := func(data map[string][]byte, items []corev1.KeyToPath) {
		if len(items) == 0 {
			for k := range data {
				items = append(items, corev1.KeyToPath{Key: k, Path: k})
			}
		}
		for _, it := range items {
			if d, ok := data[it.Key]; ok {
				out[it.Path] = d
			}
		}
	}
	for _, s := range v.Sources {
		switch {
		case s.ServiceAccountToken != nil:
			exp := int64(3600)
			if s.ServiceAccountToken.ExpirationSeconds != nil {
				exp = *s.ServiceAccountToken.ExpirationSeconds
			}
			tok, err := src.ServiceAccountToken(ctx, s.ServiceAccountToken.Audience, exp)
			if err != nil {
				return nil, errors.Wrap(err, "cannot get a service account token")
			}
			out[s.ServiceAccountToken.Path] = tok
		case s.ConfigMap != nil:
			data, err := src.ConfigMap(ctx, s.ConfigMap.Name)
			if err != nil && !optional(s.ConfigMap.Optional) {
				return nil, errors.Wrapf(err, "cannot get ConfigMap %q", s.ConfigMap.Name)
			}
			keys(data, s.ConfigMap.Items)
		case s.Secret != nil:
			data, err := src.Secret(ctx, s.Secret.Name)
			if err != nil && !optional(s.Secret.Optional) {
				return nil, errors.Wrapf(err, "cannot get Secret %q", s.Secret.Name)
			}
			keys(data, s.Secret.Items)
		case s.DownwardAPI != nil:
			for _, it := range s.DownwardAPI.Items {
				if it.FieldRef == nil {
					return nil, errors.Errorf("downwardAPI %q: only fieldRef is supported", it.Path)
				}
				val, err := fieldRef(pod, it.FieldRef.FieldPath)
				if err != nil {
					return nil, err
				}
				out[it.Path] = []byte(val)
			}
		default:
			return nil, errors.New("only serviceAccountToken, configMap, secret and downwardAPI sources are supported")
		}
	}
	return out, nil
}

// fieldRef resolves the pod fields the downward API offers that are known
// before the pod runs.
func fieldRef(pod *corev1.Pod, path string) (string, error) {
	switch path {
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.name":
		return pod.Name, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "status.podIP":
		return pod.Status.PodIP, nil
	}
	if k, ok := strings.CutPrefix(path, "metadata.labels['"); ok {
		return pod.Labels[strings.TrimSuffix(k, "']")], nil
	}
	if k, ok := strings.CutPrefix(path, "metadata.annotations['"); ok {
		return pod.Annotations[strings.TrimSuffix(k, "']")], nil
	}
	return "", errors.Errorf("downward API field %q is not supported", path)
}

// writeItems writes a ConfigMap's or Secret's data into dir, all keys or the
// listed items, as the kubelet lays them out.
func writeItems(dir string, data map[string][]byte, items []corev1.KeyToPath) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return errors.Wrap(err, "cannot create volume directory")
	}
	for _, it := range itemsOf(data, items) {
		v, ok := data[it.Key]
		if !ok {
			continue
		}
		f := filepath.Join(dir, filepath.Clean("/"+it.Path))
		if err := os.MkdirAll(filepath.Dir(f), 0o750); err != nil {
			return errors.Wrap(err, "cannot create volume directory")
		}
		if err := os.WriteFile(f, v, 0o600); err != nil {
			return errors.Wrapf(err, "cannot write %q", it.Path)
		}
	}
	return nil
}

// mounts maps a container's mount points to the local directories standing in
// for them.
func mounts(ctr *corev1.Container, dirs map[string]string) (map[string]string, error) {
	out := map[string]string{}
	for _, m := range ctr.VolumeMounts {
		dir, ok := dirs[m.Name]
		if !ok {
			return nil, errors.Errorf("container %q mounts volume %q, which the pod does not have", ctr.Name, m.Name)
		}
		out[path.Clean(m.MountPath)] = filepath.Join(dir, m.SubPath)
	}
	return out, nil
}

// env resolves a container's environment as the kubelet would: values, with
// $(VAR) references to earlier variables, Secret and ConfigMap keys, and the
// downward API's pod fields.
func env(ctx context.Context, src Source, pod *corev1.Pod, ctr *corev1.Container) (map[string]string, error) {
	out := map[string]string{}
	for _, e := range ctr.Env {
		switch vf := e.ValueFrom; {
		case vf == nil:
			out[e.Name] = expand(e.Value, out)
		case vf.SecretKeyRef != nil:
			data, err := src.Secret(ctx, vf.SecretKeyRef.Name)
			if err != nil && !optional(vf.SecretKeyRef.Optional) {
				return nil, errors.Wrapf(err, "env %q: cannot get Secret %q", e.Name, vf.SecretKeyRef.Name)
			}
			v, ok := data[vf.SecretKeyRef.Key]
			if !ok && !optional(vf.SecretKeyRef.Optional) {
				return nil, errors.Errorf("env %q: Secret %q has no key %q", e.Name, vf.SecretKeyRef.Name, vf.SecretKeyRef.Key)
			}
			if ok {
				out[e.Name] = string(v)
			}
		case vf.ConfigMapKeyRef != nil:
			data, err := src.ConfigMap(ctx, vf.ConfigMapKeyRef.Name)
			if err != nil && !optional(vf.ConfigMapKeyRef.Optional) {
				return nil, errors.Wrapf(err, "env %q: cannot get ConfigMap %q", e.Name, vf.ConfigMapKeyRef.Name)
			}
			v, ok := data[vf.ConfigMapKeyRef.Key]
			if !ok && !optional(vf.ConfigMapKeyRef.Optional) {
				return nil, errors.Errorf("env %q: ConfigMap %q has no key %q", e.Name, vf.ConfigMapKeyRef.Name, vf.ConfigMapKeyRef.Key)
			}
			if ok {
				out[e.Name] = string(v)
			}
		case vf.FieldRef != nil:
			v, err := fieldRef(pod, vf.FieldRef.FieldPath)
			if err != nil {
				return nil, errors.Wrapf(err, "env %q", e.Name)
			}
			out[e.Name] = v
		default:
			return nil, errors.Errorf("env %q: only values, Secret or ConfigMap keys and pod fields are supported", e.Name)
		}
	}
	if len(ctr.EnvFrom) > 0 {
		return nil, errors.Errorf("container %q: envFrom is not supported", ctr.Name)
	}
	return out, nil
}

// itemsOf is the files a ConfigMap or Secret volume holds: the listed items,
// or every key under its own name.
func itemsOf(data map[string][]byte, items []corev1.KeyToPath) []corev1.KeyToPath {
	if len(items) > 0 {
		return items
	}
	all := make([]corev1.KeyToPath, 0, len(data))
	for k := range data {
		all = append(all, corev1.KeyToPath{Key: k, Path: k})
	}
	return all
}
