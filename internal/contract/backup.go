package contract

// Backups: the job the function composes (cmd/backup) reports its result as
// its container's termination message, a BackupResult in JSON, which the
// function reads from the job's pods to set the instance's status.backup and
// its BackupHealthy condition. Nothing in it is secret.
const (
	// NameBackup is LabelName's value on backup jobs' pods.
	NameBackup = "redis-backup"
	// BackupContainer is the backup job's container.
	BackupContainer = "backup"
	// RestoreContainer is the init container that restores a backup into a
	// new instance's data directory.
	RestoreContainer = "restore"
)

// Secret keys the tenant's backup Secrets hold.
const (
	// BackupAccessKeyKey and BackupSecretKeyKey are in
	// credentialsSecretRef's Secret.
	BackupAccessKeyKey = "AWS_ACCESS_KEY_ID"
	BackupSecretKeyKey = "AWS_SECRET_ACCESS_KEY" //nolint:gosec // G101: a Secret key's name.
	// BackupEncryptionKeyKey holds the age identity in
	// encryptionKeySecretRef's Secret.
	BackupEncryptionKeyKey = "key"
	// BackupCAKey holds the PEM CA bundle in caSecretRef's Secret.
	BackupCAKey = "ca.crt"
)

// BackupNameRE is what a backup's name looks like: its UTC time and a
// random suffix, e.g. 20261204T191600Z-3fa9c1.
const BackupNameRE = `^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$`

// BackupLatest in spec.restore.backup names the newest complete backup.
const BackupLatest = "latest"

// A BackupResult is one backup job's outcome.
type BackupResult struct {
	// Name of the backup made (empty on failure).
	Name string `json:"name,omitempty"`
	// Time the snapshot was taken, RFC 3339.
	Time string `json:"time,omitempty"`
	Keys int64  `json:"keys,omitempty"`
	Size int64  `json:"size,omitempty"`
	// Reason and Message of a failure (empty on success).
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// BackupCronJobName is the instance's backup CronJob; an on-demand backup is
// kubectl create job --from=cronjob/<it>.
func BackupCronJobName(instance string) string { return instance + "-backup" }
