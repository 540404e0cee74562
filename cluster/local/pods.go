package local

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
)

// The pod runner stands in for a kubelet on machines without containers: it
// runs every scheduled pod whose container runs redis-server as a local
// redis-server process, built from the pod spec alone (command, args, env
// with secret/configMap/field references, ConfigMap/Secret/projected/emptyDir
// and PVC volumes), listening on the pod's own IP from kwok's loopback range
// and the container's port. Paths under the container's mount points, in
// arguments and in the mounted files (redis.conf's `dir`, `include`...), are
// mapped to the local directories that stand in for the mounts.

// A runningPod is one pod's redis-server.
type runningPod struct {
	uid  types.UID
	ip   string
	port int
	proc *Process
}

type podRunner struct {
	c     *Cluster
	redis string

	mu   sync.Mutex
	pods map[types.NamespacedName]*runningPod
	// skipped remembers pods that are not ours to run, by UID.
	skipped map[types.UID]bool
}

func (c *Cluster) startPods(ctx context.Context) {
	r := &podRunner{c: c, pods: map[types.NamespacedName]*runningPod{}, skipped: map[types.UID]bool{}}
	r.redis, _ = exec.LookPath("redis-server")
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx)) // Runs until Stop, beyond Start.
	done := make(chan struct{})
	c.onStop(func() {
		cancel()
		<-done
		r.mu.Lock()
		defer r.mu.Unlock()
		for k, p := range r.pods {
			r.stop(p)
			delete(r.pods, k)
		}
	})
	c.runner = r
	go func() {
		defer close(done)
		for {
			r.syncOnce(ctx)
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
}

// PodAddress returns the host:port the redis-server of a pod listens on, once
// it runs.
func (c *Cluster) PodAddress(namespace, name string) (string, bool) {
	if c.runner == nil {
		return "", false
	}
	c.runner.mu.Lock()
	defer c.runner.mu.Unlock()
	p, ok := c.runner.pods[types.NamespacedName{Namespace: namespace, Name: name}]
	if !ok || !p.proc.Running() {
		return "", false
	}
	return fmt.Sprintf("%s:%d", p.ip, p.port), true
}

// RunningPods returns the pods whose redis-server runs, as namespace/name.
func (c *Cluster) RunningPods() []string {
	if c.runner == nil {
		return nil
	}
	c.runner.mu.Lock()
	defer c.runner.mu.Unlock()
	out := make([]string, 0, len(c.runner.pods))
	for k, p := range c.runner.pods {
		if p.proc.Running() {
			out = append(out, k.String())
		}
	}
	sort.Strings(out)
	return out
}

func (r *podRunner) syncOnce(ctx context.Context) {
	pods := &corev1.PodList{}
	if err := r.c.Client.List(ctx, pods); err != nil {
		return
	}
	seen := map[types.NamespacedName]types.UID{}
	for i := range pods.Items {
		pod := &pods.Items[i]
		if pod.Spec.NodeName != NodeName || pod.DeletionTimestamp != nil || pod.Status.PodIP == "" {
			continue
		}
		key := types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name}
		seen[key] = pod.UID
		r.mu.Lock()
		cur, skip := r.pods[key], r.skipped[pod.UID]
		r.mu.Unlock()
		if skip || (cur != nil && cur.uid == pod.UID) {
			continue
		}
		if cur != nil {
			// A new pod with the same name (a StatefulSet rolled it).
			r.stop(cur)
		}
		rp, err := r.start(ctx, pod)
		r.mu.Lock()
		switch {
		case err == nil:
			r.pods[key] = rp
		case errors.Is(err, errNotRedis):
			r.skipped[pod.UID] = true
			delete(r.pods, key)
		default:
			// Retried on the next pass (a volume may not be bound yet).
			delete(r.pods, key)
			r.c.opts.Logf("pod %s: %v", key, err)
		}
		r.mu.Unlock()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, p := range r.pods {
		if uid, ok := seen[k]; !ok || uid != p.uid {
			r.stop(p)
			delete(r.pods, k)
		}
	}
}

func (r *podRunner) stop(p *runningPod) {
	p.proc.Stop(5 * time.Second)
	r.c.delAddress(p.ip)
}

// redisArgv returns the container's argv if it runs redis-server.
func redisArgv(ctr corev1.Container) []string {
	argv := append(append([]string{}, ctr.Command...), ctr.Args...)
	if len(argv) == 0 {
		return nil
	}
	if path.Base(argv[0]) == "redis-server" {
		return argv
	}
	// The official image's entrypoint runs redis-server for a leading .conf
	// argument or flag.
	if len(ctr.Command) == 0 && strings.Contains(ctr.Image, "redis") && (strings.HasSuffix(argv[0], ".conf") || strings.HasPrefix(argv[0], "-")) {
		return append([]string{"redis-server"}, argv...)
	}
	return nil
}

// errNotRedis says a pod has no redis-server container: not ours to run.
var errNotRedis = errors.New("no redis-server container")

// start runs pod's redis container, or returns errNotRedis.
func (r *podRunner) start(ctx context.Context, pod *corev1.Pod) (*runningPod, error) {
	var ctr *corev1.Container
	var argv []string
	for i := range pod.Spec.Containers {
		if a := redisArgv(pod.Spec.Containers[i]); a != nil {
			ctr, argv = &pod.Spec.Containers[i], a
			break
		}
	}
	if ctr == nil {
		return nil, errNotRedis
	}
	if r.redis == "" {
		return nil, errors.New("redis-server is not installed")
	}
	root := filepath.Join(r.c.opts.Dir, "pods", fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID))
	vols, err := r.volumes(ctx, pod, root)
	if err != nil {
		return nil, err
	}
	mounts := map[string]string{}
	for _, m := range ctr.VolumeMounts {
		dir, ok := vols[m.Name]
		if !ok {
			return nil, errors.Errorf("volume %q of mount %q is not supported", m.Name, m.MountPath)
		}
		mounts[path.Clean(m.MountPath)] = filepath.Join(dir, m.SubPath)
	}
	// Files the container reads may name other mounted paths (include, dir).
	for name, dir := range vols {
		if r.isPVC(pod, name) {
			continue
		}
		if err := rewriteTree(dir, mounts); err != nil {
			return nil, err
		}
	}
	env, err := r.env(ctx, pod, ctr)
	if err != nil {
		return nil, err
	}
	port := 6379
	if len(ctr.Ports) > 0 {
		port = int(ctr.Ports[0].ContainerPort)
	}
	args := make([]string, 0, len(argv)+8)
	for _, a := range argv[1:] {
		args = append(args, mapPaths(expand(a, env), mounts))
	}
	// The pod's own address; everything else comes from the pod spec.
	args = append(args, "--bind", pod.Status.PodIP, "--port", strconv.Itoa(port), "--daemonize", "no", "--logfile", "")
	if err := r.c.addAddress(pod.Status.PodIP); err != nil {
		return nil, err
	}
	name := fmt.Sprintf("redis-%s-%s", pod.Namespace, pod.Name)
	p := r.c.newProcess(name, r.redis, args...)
	p.Dir = root
	for k, v := range env {
		p.Env = append(p.Env, k+"="+v)
	}
	if err := p.Start(); err != nil {
		return nil, err
	}
	r.c.opts.Logf("pod %s/%s: redis-server on %s:%d (pid %d)", pod.Namespace, pod.Name, pod.Status.PodIP, port, p.Pid())
	return &runningPod{uid: pod.UID, ip: pod.Status.PodIP, port: port, proc: p}, nil
}

func (r *podRunner) isPVC(pod *corev1.Pod, volume string) bool {
	for _, v := range pod.Spec.Volumes {
		if v.Name == volume {
			return v.PersistentVolumeClaim != nil
		}
	}
	return false
}

// volumes materialises the pod's volumes and returns each one's directory.
func (r *podRunner) volumes(ctx context.Context, pod *corev1.Pod, root string) (map[string]string, error) {
	out := map[string]string{}
	for _, v := range pod.Spec.Volumes {
		dir := filepath.Join(root, "volumes", v.Name)
		switch {
		case v.PersistentVolumeClaim != nil:
			d, err := r.pvcDir(ctx, pod.Namespace, v.PersistentVolumeClaim.ClaimName)
			if err != nil {
				return nil, err
			}
			out[v.Name] = d
			continue
		case v.EmptyDir != nil:
		case v.ConfigMap != nil:
			data, err := r.configMap(ctx, pod.Namespace, v.ConfigMap.Name, v.ConfigMap.Optional)
			if err != nil {
				return nil, err
			}
			if err := writeItems(dir, data, v.ConfigMap.Items); err != nil {
				return nil, err
			}
		case v.Secret != nil:
			data, err := r.secret(ctx, pod.Namespace, v.Secret.SecretName, v.Secret.Optional)
			if err != nil {
				return nil, err
			}
			if err := writeItems(dir, data, v.Secret.Items); err != nil {
				return nil, err
			}
		case v.Projected != nil:
			for _, s := range v.Projected.Sources {
				var data map[string][]byte
				var items []corev1.KeyToPath
				var err error
				switch {
				case s.Secret != nil:
					data, err = r.secret(ctx, pod.Namespace, s.Secret.Name, s.Secret.Optional)
					items = s.Secret.Items
				case s.ConfigMap != nil:
					data, err = r.configMap(ctx, pod.Namespace, s.ConfigMap.Name, s.ConfigMap.Optional)
					items = s.ConfigMap.Items
				default:
					// Service account tokens and downward API files are not
					// needed by redis-server.
					continue
				}
				if err != nil {
					return nil, err
				}
				if err := writeItems(dir, data, items); err != nil {
					return nil, err
				}
			}
		default:
			continue
		}
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, errors.Wrap(err, "cannot create volume directory")
		}
		out[v.Name] = dir
	}
	return out, nil
}

func (r *podRunner) pvcDir(ctx context.Context, namespace, name string) (string, error) {
	pvc := &corev1.PersistentVolumeClaim{}
	if err := r.c.Client.Get(ctx, nsName(namespace, name), pvc); err != nil {
		return "", errors.Wrapf(err, "cannot get PVC %q", name)
	}
	if pvc.Spec.VolumeName == "" {
		return "", errors.Errorf("PVC %q is not bound yet", name)
	}
	pv := &corev1.PersistentVolume{}
	if err := r.c.Client.Get(ctx, nsName("", pvc.Spec.VolumeName), pv); err != nil {
		return "", errors.Wrapf(err, "cannot get PV %q", pvc.Spec.VolumeName)
	}
	if pv.Spec.HostPath == nil {
		return "", errors.Errorf("PV %q is not a hostPath volume", pv.Name)
	}
	return pv.Spec.HostPath.Path, nil
}

func (r *podRunner) configMap(ctx context.Context, namespace, name string, optional *bool) (map[string][]byte, error) {
	cm := &corev1.ConfigMap{}
	if err := r.c.Client.Get(ctx, nsName(namespace, name), cm); err != nil {
		if optional != nil && *optional && client.IgnoreNotFound(err) == nil {
			return map[string][]byte{}, nil
		}
		return nil, errors.Wrapf(err, "cannot get ConfigMap %q", name)
	}
	out := map[string][]byte{}
	for k, v := range cm.Data {
		out[k] = []byte(v)
	}
	maps.Copy(out, cm.BinaryData)
	return out, nil
}

func (r *podRunner) secret(ctx context.Context, namespace, name string, optional *bool) (map[string][]byte, error) {
	s := &corev1.Secret{}
	if err := r.c.Client.Get(ctx, nsName(namespace, name), s); err != nil {
		if optional != nil && *optional && client.IgnoreNotFound(err) == nil {
			return map[string][]byte{}, nil
		}
		return nil, errors.Wrapf(err, "cannot get Secret %q", name)
	}
	return s.Data, nil
}

// env resolves the container's environment as the kubelet would.
func (r *podRunner) env(ctx context.Context, pod *corev1.Pod, ctr *corev1.Container) (map[string]string, error) {
	env := map[string]string{}
	for _, ef := range ctr.EnvFrom {
		var data map[string][]byte
		var err error
		switch {
		case ef.SecretRef != nil:
			data, err = r.secret(ctx, pod.Namespace, ef.SecretRef.Name, ef.SecretRef.Optional)
		case ef.ConfigMapRef != nil:
			data, err = r.configMap(ctx, pod.Namespace, ef.ConfigMapRef.Name, ef.ConfigMapRef.Optional)
		}
		if err != nil {
			return nil, err
		}
		for k, v := range data {
			env[ef.Prefix+k] = string(v)
		}
	}
	for _, e := range ctr.Env {
		if e.ValueFrom == nil {
			env[e.Name] = expand(e.Value, env)
			continue
		}
		switch vf := e.ValueFrom; {
		case vf.SecretKeyRef != nil:
			data, err := r.secret(ctx, pod.Namespace, vf.SecretKeyRef.Name, vf.SecretKeyRef.Optional)
			if err != nil {
				return nil, err
			}
			env[e.Name] = string(data[vf.SecretKeyRef.Key])
		case vf.ConfigMapKeyRef != nil:
			data, err := r.configMap(ctx, pod.Namespace, vf.ConfigMapKeyRef.Name, vf.ConfigMapKeyRef.Optional)
			if err != nil {
				return nil, err
			}
			env[e.Name] = string(data[vf.ConfigMapKeyRef.Key])
		case vf.FieldRef != nil:
			env[e.Name] = map[string]string{
				"metadata.name": pod.Name, "metadata.namespace": pod.Namespace, "metadata.uid": string(pod.UID),
				"status.podIP": pod.Status.PodIP, "status.hostIP": pod.Status.HostIP, "spec.nodeName": pod.Spec.NodeName,
				"spec.serviceAccountName": pod.Spec.ServiceAccountName,
			}[vf.FieldRef.FieldPath]
		}
	}
	return env, nil
}

// expand replaces $(VAR) references as Kubernetes does for env values,
// command and args: unknown references stay as they are, $$ escapes a $.
func expand(s string, env map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := env[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// mapPaths replaces container paths under a mount point with the local
// directory standing in for it. A mount point matches only as a whole path
// element: /etc/redis does not match /etc/redis-auth.
func mapPaths(s string, mounts map[string]string) string {
	points := make([]string, 0, len(mounts))
	for m := range mounts {
		points = append(points, m)
	}
	// Longest first, so /data/x wins over /data.
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	var b strings.Builder
	for i := 0; i < len(s); {
		matched := false
		if i == 0 || !pathChar(s[i-1]) {
			for _, m := range points {
				end := i + len(m)
				if strings.HasPrefix(s[i:], m) && (end == len(s) || s[end] == '/' || !pathChar(s[end])) {
					b.WriteString(mounts[m])
					i = end
					matched = true
					break
				}
			}
		}
		if !matched {
			b.WriteByte(s[i])
			i++
		}
	}
	return b.String()
}

func pathChar(c byte) bool {
	return c == '/' || c == '.' || c == '-' || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// rewriteTree maps container paths in every file under dir.
func rewriteTree(dir string, mounts map[string]string) error {
	return filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if out := mapPaths(string(b), mounts); out != string(b) {
			return os.WriteFile(p, []byte(out), 0o600)
		}
		return nil
	})
}

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
