package fn

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/crossplane/function-sdk-go/resource"
)

// imageAllowed reports whether a tenant's spec.image is under one of the
// platform's allowed prefixes (any image when there are none). A prefix
// matches a whole registry, repository path or repository: "registry.example.com"
// allows "registry.example.com/redis:7.2" but not
// "registry.example.com.evil.io/redis".
func imageAllowed(image string, prefixes []string) bool {
	if len(prefixes) == 0 {
		return true
	}
	for _, p := range prefixes {
		rest, ok := strings.CutPrefix(image, p)
		if !ok {
			continue
		}
		if rest == "" || strings.HasSuffix(p, "/") || strings.ContainsAny(rest[:1], "/:@") {
			return true
		}
	}
	return false
}

// imageErrors checks the image an instance would run against the platform's
// allowed prefixes and against the image its StatefulSet runs now.
func imageErrors(p *params, allowed []string, observed map[resource.Name]resource.ObservedComposed) field.ErrorList {
	var errs field.ErrorList
	path := field.NewPath("spec", "redisVersion")
	if p.ImageFromSpec {
		path = field.NewPath("spec", "image")
		if !imageAllowed(p.Image, allowed) {
			errs = append(errs, field.Forbidden(path, fmt.Sprintf("%q is not under a registry this platform allows (%s); use an image from one of them", p.Image, strings.Join(allowed, ", "))))
		}
	}
	if running := runningImage(observed); running != "" {
		if msg := downgrade(running, p.Image); msg != "" {
			errs = append(errs, field.Forbidden(path, msg))
		}
	}
	return errs
}

// runningImage is the Redis container's image in the observed StatefulSet.
func runningImage(observed map[resource.Name]resource.ObservedComposed) string {
	oc, ok := observed[nameStatefulSet]
	if !ok {
		return ""
	}
	cs, _, _ := unstructured.NestedSlice(oc.Resource.Object, "spec", "template", "spec", "containers")
	for _, c := range cs {
		m, _ := c.(map[string]any)
		if name, _, _ := unstructured.NestedString(m, "name"); name == redisContainer {
			img, _, _ := unstructured.NestedString(m, "image")
			return img
		}
	}
	return ""
}

// tagVersionRE is the version at the start of an image tag: 7.2 in
// redis:7.2-alpine, 7.0.15 in redis:7.0.15.
var tagVersionRE = regexp.MustCompile(`^([0-9]+)\.([0-9]+)`)

// imageVersion returns the major and minor Redis version an image's tag
// names, if it names one.
func imageVersion(image string) (int, int, bool) {
	image, _, _ = strings.Cut(image, "@")
	i := strings.LastIndex(image, ":")
	if i < 0 || strings.Contains(image[i:], "/") {
		return 0, 0, false
	}
	m := tagVersionRE.FindStringSubmatch(image[i+1:])
	if m == nil {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(m[1])
	minor, err2 := strconv.Atoi(m[2])
	return major, minor, err1 == nil && err2 == nil
}

// downgrade explains why moving from the running image to the wanted one
// would make Redis unable to read its own data, or returns "". Redis reads
// RDB and AOF files written by its own and older versions only, and their
// format changes with minor versions (7.0 writes RDB 10, 7.2 RDB 11), so a
// lower major.minor is refused; patch releases are interchangeable. Tags
// without a version (latest, a digest) cannot be compared and pass.
func downgrade(running, wanted string) string {
	rMaj, rMin, ok1 := imageVersion(running)
	wMaj, wMin, ok2 := imageVersion(wanted)
	if !ok1 || !ok2 || wMaj > rMaj || (wMaj == rMaj && wMin >= rMin) {
		return ""
	}
	return fmt.Sprintf("the instance runs Redis %d.%d (%q), and Redis %d.%d (%q) cannot read the data it wrote: "+
		"keep %d.%d or later; to move to an older Redis, create a new instance with it and copy the keys with a client (not DUMP/RESTORE, which carry the newer format)",
		rMaj, rMin, running, wMaj, wMin, wanted, rMaj, rMin)
}
