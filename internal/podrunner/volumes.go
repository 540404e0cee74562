package podrunner

import (
	"context"
	"os"
	"path"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
)

// volumes materialises the pod's volumes under root and returns each one's
// directory, and the names of those backed by a PersistentVolumeClaim.
func volumes(ctx context.Context, src Source, spec *corev1.PodSpec, root string) (map[string]string, map[string]bool, error) {
	dirs := map[string]string{}
	claims := map[string]bool{}
	for _, v := range spec.Volumes {
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
		default:
			return nil, nil, errors.Errorf("volume %q: only PersistentVolumeClaim, emptyDir, ConfigMap and Secret volumes are supported", v.Name)
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

// writeItems writes a ConfigMap's or Secret's data into dir, all keys or the
// listed items, as the kubelet lays them out.
func writeItems(dir string, data map[string][]byte, items []corev1.KeyToPath) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return errors.Wrap(err, "cannot create volume directory")
	}
	if len(items) == 0 {
		for k := range data {
			items = append(items, corev1.KeyToPath{Key: k, Path: k})
		}
	}
	for _, it := range items {
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
// $(VAR) references to earlier variables, and Secret and ConfigMap keys.
func env(ctx context.Context, src Source, ctr *corev1.Container) (map[string]string, error) {
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
		default:
			return nil, errors.Errorf("env %q: only values and Secret or ConfigMap keys are supported", e.Name)
		}
	}
	if len(ctr.EnvFrom) > 0 {
		return nil, errors.Errorf("container %q: envFrom is not supported", ctr.Name)
	}
	return out, nil
}
