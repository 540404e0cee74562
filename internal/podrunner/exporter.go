package podrunner

import (
	"context"
	"path"
	"strings"
)

// RedisExporter runs the oliver006/redis_exporter images (any image whose
// repository's last element is redis_exporter) with this machine's
// prometheus-redis-exporter, the Debian build of the same exporter: the
// image's entrypoint is the exporter, so a container without a command runs
// it with its arguments.
func RedisExporter(_ context.Context, image string, command, args []string) ([]string, error) {
	repo, _, _ := strings.Cut(image, "@")
	if i := strings.LastIndexByte(repo, ':'); i > strings.LastIndexByte(repo, '/') {
		repo = repo[:i]
	}
	if path.Base(repo) != "redis_exporter" {
		return nil, ErrNotRunnable
	}
	if len(command) > 0 {
		// The image holds nothing else to run.
		return nil, ErrNotRunnable
	}
	return append([]string{"prometheus-redis-exporter"}, args...), nil
}
