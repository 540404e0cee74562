package backup

import "errors"

// Reasons a backup or restore failed, as the BackupHealthy condition and
// the instance's events show them.
const (
	ReasonInvalidConfig      = "InvalidConfiguration"
	ReasonCredentialsRefused = "CredentialsRefused"
	ReasonBucketMissing      = "BucketMissing"
	ReasonRedisUnavailable   = "RedisUnavailable"
	ReasonUploadFailed       = "UploadFailed"
	ReasonVerificationFailed = "VerificationFailed"

	ReasonBackupMissing    = "BackupMissing"
	ReasonBackupUnreadable = "BackupUnreadable"
	ReasonBackupCorrupt    = "BackupCorrupt"
	ReasonKeyMissing       = "EncryptionKeyMissing"
	ReasonKeyWrong         = "EncryptionKeyWrong"
	ReasonDataDirNotEmpty  = "DataDirectoryNotEmpty"
	// ReasonDataDirNotWritable: the restore cannot write its file into the
	// data directory (missing, read-only, permissions, I/O errors).
	ReasonDataDirNotWritable = "DataDirectoryNotWritable"
	// ReasonDataVolumeFull: the backup does not fit on the data volume.
	ReasonDataVolumeFull = "DataVolumeFull"
	ReasonRedisTooOld    = "RedisVersionTooOld"
)

// An Error is a failure with the reason a tenant sees.
type Error struct {
	Reason string
	Err    error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// ReasonOf returns err's reason, or fallback when it has none.
func ReasonOf(err error, fallback string) string {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Reason
	}
	return fallback
}
