package fn

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/robfig/cron/v3"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/ai-decenter/redishttp/apis/instance/v1alpha1"
	"github.com/ai-decenter/redishttp/internal/contract"
)

// Defaults and bounds of spec.backup and spec.restore (the XRDs carry the
// same: TestXRDsAgreeWithCode).
const (
	defaultBackupKeep   = 7
	minBackupKeep       = 1
	maxBackupKeep       = 100
	defaultS3Region     = "us-east-1"
	maxScheduleLength   = 128
	maxEndpointLength   = 256
	minBucketLength     = 3
	maxBucketLength     = 63
	maxPrefixLength     = 256
	maxRegionLength     = 64
	maxBackupNameLength = 64
)

var (
	// bucketRE is S3's bucket naming rule (lowercase letters, digits, dots
	// and hyphens, starting and ending with a letter or digit).
	bucketRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]*[a-z0-9]$`)
	// prefixRE admits S3's "safe characters" only: nothing a URL, a shell
	// or a log line would read differently.
	prefixRE     = regexp.MustCompile(`^[A-Za-z0-9!_.*'()/-]*$`)
	regionRE     = regexp.MustCompile(`^[a-z0-9-]*$`)
	backupNameRE = regexp.MustCompile(contract.BackupNameRE)
)

// backupParams is the validated spec.backup.
type backupParams struct {
	// Schedule is empty for on-demand backups only (the CronJob is then
	// suspended).
	Schedule      string
	Keep          int32
	S3            s3Params
	EncryptionKey string // Secret name, "" when not encrypted
}

// restoreParams is the validated spec.restore.
type restoreParams struct {
	S3            s3Params
	Backup        string
	EncryptionKey string
}

// s3Params is a validated bucket location.
type s3Params struct {
	Endpoint    string
	Host        string // host[:port] of Endpoint
	Port        int32  // the endpoint's port, for the egress NetworkPolicy
	Bucket      string
	Prefix      string // "" means "<namespace>/<name>/" (prefixOf)
	Region      string
	Credentials string // Secret name
	CA          string // Secret name, "" for the system roots
}

// validateBackup checks spec.backup; nil when absent.
func validateBackup(in *v1alpha1.Backup, path *field.Path, errs field.ErrorList) (*backupParams, field.ErrorList) {
	if in == nil {
		return nil, errs
	}
	p := &backupParams{Schedule: strings.TrimSpace(in.Schedule), Keep: defaultBackupKeep}
	if in.Keep != nil {
		p.Keep = *in.Keep
	}
	if p.Keep < minBackupKeep || p.Keep > maxBackupKeep {
		errs = append(errs, field.Invalid(path.Child("keep"), p.Keep, fmt.Sprintf("must be from %d to %d", minBackupKeep, maxBackupKeep)))
	}
	if msg := scheduleProblem(p.Schedule); msg != "" {
		errs = append(errs, field.Invalid(path.Child("schedule"), shown(in.Schedule), msg))
	}
	p.S3, errs = validateS3(&in.S3, path.Child("s3"), errs)
	p.EncryptionKey, errs = secretName(in.EncryptionKeySecretRef, path.Child("encryptionKeySecretRef", "name"), errs)
	return p, errs
}

// validateRestore checks spec.restore; nil when absent.
func validateRestore(in *v1alpha1.Restore, path *field.Path, errs field.ErrorList) (*restoreParams, field.ErrorList) {
	if in == nil {
		return nil, errs
	}
	p := &restoreParams{Backup: withDefault(in.Backup, contract.BackupLatest)}
	if p.Backup != contract.BackupLatest && !backupNameRE.MatchString(p.Backup) {
		errs = append(errs, field.Invalid(path.Child("backup"), shown(p.Backup), `must be "latest" or a backup's name such as 20261204T191600Z-3fa9c1 (status.backup.last)`))
	}
	p.S3, errs = validateS3(&in.S3, path.Child("s3"), errs)
	p.EncryptionKey, errs = secretName(in.EncryptionKeySecretRef, path.Child("encryptionKeySecretRef", "name"), errs)
	return p, errs
}

// scheduleProblem explains why a CronJob schedule is refused, or returns "".
// The parser is the one Kubernetes' CronJob controller uses; time zones are
// refused (schedules run in UTC).
func scheduleProblem(s string) string {
	switch {
	case s == "":
		return ""
	case len(s) > maxScheduleLength:
		return fmt.Sprintf("must be at most %d characters", maxScheduleLength)
	case strings.Contains(s, "TZ"):
		return "must not name a time zone: schedules run in UTC"
	}
	if _, err := cron.ParseStandard(s); err != nil {
		return `must be a cron schedule such as "0 */6 * * *" (minute hour day-of-month month day-of-week)`
	}
	return ""
}

// validateS3 checks a bucket location. Endpoint, bucket and prefix are the
// tenant's input to a job that signs requests with their credentials: no
// path tricks, no credentials in the URL, nothing but http(s).
func validateS3(in *v1alpha1.S3, path *field.Path, errs field.ErrorList) (s3Params, field.ErrorList) {
	p := s3Params{Endpoint: in.Endpoint, Bucket: in.Bucket, Prefix: in.Prefix, Region: withDefault(in.Region, defaultS3Region)}
	var msg string
	p.Host, p.Port, msg = endpointHost(in.Endpoint)
	if msg != "" {
		errs = append(errs, field.Invalid(path.Child("endpoint"), shown(in.Endpoint), msg))
	}
	switch {
	case len(in.Bucket) < minBucketLength || len(in.Bucket) > maxBucketLength:
		errs = append(errs, field.Invalid(path.Child("bucket"), shown(in.Bucket), fmt.Sprintf("must be %d to %d characters", minBucketLength, maxBucketLength)))
	case !bucketRE.MatchString(in.Bucket) || strings.Contains(in.Bucket, "..") || net.ParseIP(in.Bucket) != nil:
		errs = append(errs, field.Invalid(path.Child("bucket"), shown(in.Bucket), "must be an S3 bucket name: lowercase letters, digits, dots and hyphens, not an IP address"))
	}
	if msg := prefixProblem(in.Prefix); msg != "" {
		errs = append(errs, field.Invalid(path.Child("prefix"), shown(in.Prefix), msg))
	}
	if len(p.Region) > maxRegionLength || !regionRE.MatchString(p.Region) {
		errs = append(errs, field.Invalid(path.Child("region"), shown(p.Region), "must be a region such as us-east-1"))
	}
	if in.CredentialsSecretRef.Name == "" {
		errs = append(errs, field.Required(path.Child("credentialsSecretRef", "name"), "a Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"))
	}
	p.Credentials, errs = secretName(&in.CredentialsSecretRef, path.Child("credentialsSecretRef", "name"), errs)
	p.CA, errs = secretName(in.CASecretRef, path.Child("caSecretRef", "name"), errs)
	return p, errs
}

// endpointHost returns an endpoint's host[:port] and port, or why it is
// refused.
func endpointHost(endpoint string) (string, int32, string) {
	const want = "must be http(s)://host[:port], without path, query or credentials, e.g. https://s3.example.com"
	if endpoint == "" {
		return "", 0, want
	}
	if len(endpoint) > maxEndpointLength {
		return "", 0, fmt.Sprintf("must be at most %d characters", maxEndpointLength)
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" || strings.ContainsAny(endpoint, " \t\r\n") {
		return "", 0, want
	}
	host := u.Hostname()
	if net.ParseIP(host) == nil && len(validation.IsDNS1123Subdomain(strings.ToLower(host))) > 0 {
		return "", 0, "must name a DNS name or an IP address: " + want
	}
	port := int64(80)
	if u.Scheme == "https" {
		port = 443
	}
	if ps := u.Port(); ps != "" {
		if port, err = strconv.ParseInt(ps, 10, 32); err != nil || port < 1 || port > 65535 {
			return "", 0, "must have a port from 1 to 65535"
		}
	}
	return u.Host, int32(port), ""
}

// prefixProblem explains why an object name prefix is refused, or returns "".
func prefixProblem(p string) string {
	switch {
	case p == "":
		return ""
	case len(p) > maxPrefixLength:
		return fmt.Sprintf("must be at most %d characters", maxPrefixLength)
	case !prefixRE.MatchString(p):
		return "must hold only letters, digits and !-_.*'()/"
	case strings.HasPrefix(p, "/") || !strings.HasSuffix(p, "/") || strings.Contains(p, "//"):
		return `must not start with "/", must end with "/" and must not contain "//", e.g. team-a/cache/`
	}
	for seg := range strings.SplitSeq(strings.TrimSuffix(p, "/"), "/") {
		if seg == "." || seg == ".." {
			return `must not contain "." or ".." segments`
		}
	}
	return ""
}

// secretName checks an optional Secret reference.
func secretName(ref *v1alpha1.SecretReference, path *field.Path, errs field.ErrorList) (string, field.ErrorList) {
	if ref == nil || ref.Name == "" {
		return "", errs
	}
	for _, msg := range validation.IsDNS1123Subdomain(ref.Name) {
		errs = append(errs, field.Invalid(path, shown(ref.Name), msg))
	}
	return ref.Name, errs
}

// prefixOf is where an instance's backups live in the bucket.
func prefixOf(s s3Params, in *instance) string {
	if s.Prefix != "" {
		return s.Prefix
	}
	return in.Namespace + "/" + in.Name + "/"
}
