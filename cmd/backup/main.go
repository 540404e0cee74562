// Command backup takes verified backups of a tenant's Redis into an
// S3-compatible bucket (backup) and restores one into a new instance's data
// directory before Redis starts (restore). Secrets come from the environment
// only (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, REDIS_PASSWORD,
// BACKUP_ENCRYPTION_KEY), never from flags, and are never printed.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"filippo.io/age"
	"github.com/alecthomas/kong"

	"github.com/ai-decenter/redishttp/internal/backup"
	"github.com/ai-decenter/redishttp/internal/contract"
	"github.com/ai-decenter/redishttp/internal/version"
)

// S3 flags, shared by both commands. The credentials are environment
// variables only (from the tenant's Secret).
type S3 struct {
	Endpoint       string        `env:"S3_ENDPOINT" help:"S3 endpoint, http(s)://host[:port]." required:""`
	Bucket         string        `env:"S3_BUCKET"   help:"Bucket."                             required:""`
	Prefix         string        `env:"S3_PREFIX"   help:"Prefix of the objects (ends in /)."`
	Region         string        `default:"us-east-1" env:"S3_REGION" help:"Region."`
	CAFile         string        `env:"S3_CA_FILE"  help:"PEM bundle of the CA that signs the endpoint's certificate." type:"path"`
	TerminationLog string        `default:"/dev/termination-log" env:"TERMINATION_LOG" help:"Where the result is written for Kubernetes to report."`
	Timeout        time.Duration `default:"6h" env:"TIMEOUT" help:"Longest the whole run may take."`
}

func (s *S3) store() (*backup.Store, error) {
	return backup.OpenStore(backup.S3Options{
		Endpoint: s.Endpoint, Bucket: s.Bucket, Prefix: s.Prefix, Region: s.Region, CAFile: s.CAFile,
		AccessKey: os.Getenv("AWS_ACCESS_KEY_ID"), SecretKey: os.Getenv("AWS_SECRET_ACCESS_KEY"),
	})
}

// key is the age identity in BACKUP_ENCRYPTION_KEY, if set.
func (s *S3) key() (*age.X25519Identity, error) {
	k := os.Getenv("BACKUP_ENCRYPTION_KEY")
	if k == "" {
		return nil, nil //nolint:nilnil // No key is no error: backups are then not encrypted.
	}
	return backup.ParseKey(k)
}

// BackupCmd takes one backup.
type BackupCmd struct {
	S3
	RedisAddress string `env:"REDIS_ADDRESS" help:"Redis to back up, HOST:PORT (a replica when there is one)." required:""`
	RedisUser    string `default:"default" env:"REDIS_USER" help:"Redis user allowed SYNC."`
	Keep         int    `default:"7" env:"KEEP" help:"Complete backups to keep (1-100)."`
}

// Run takes the backup and writes its result.
func (c *BackupCmd) Run(log *slog.Logger) error {
	ctx, cancel := c.context()
	defer cancel()
	m, err := c.run(ctx, log)
	return c.result(log, m, err, backup.ReasonUploadFailed)
}

func (c *BackupCmd) run(ctx context.Context, log *slog.Logger) (*backup.Manifest, error) {
	if c.Keep < 1 || c.Keep > 100 {
		return nil, &backup.Error{Reason: backup.ReasonInvalidConfig, Err: fmt.Errorf("--keep must be from 1 to 100, not %d", c.Keep)}
	}
	id, err := c.key()
	if err != nil {
		return nil, err
	}
	s, err := c.store()
	if err != nil {
		return nil, err
	}
	return backup.Backup(ctx, s, backup.BackupOptions{
		Redis: backup.RedisOptions{Addr: c.RedisAddress, User: c.RedisUser, Password: os.Getenv("REDIS_PASSWORD")},
		Keep:  c.Keep, Key: id, Log: log.Info,
	})
}

// RestoreCmd restores a backup into an empty data directory.
type RestoreCmd struct {
	S3
	Backup  string `default:"latest" env:"BACKUP" help:"Backup to restore: a name, or latest."`
	DataDir string `default:"/data" env:"DATA_DIR" help:"Redis's data directory." type:"path"`
	RDBFile string `default:"dump.rdb" env:"RDB_FILE" help:"The RDB file Redis loads (dbfilename)."`
	AOFDir  string `default:"appendonlydir" env:"AOF_DIR" help:"Redis's append-only directory (appenddirname)."`
	// RedisVersion is the instance's: a backup newer Redis made is refused.
	RedisVersion string `env:"REDIS_VERSION" help:"Version of the Redis that loads the backup (e.g. 7.2); a backup in a newer RDB format is refused. Empty: not checked."`
	// Pod and SeedPod: of an instance with replicas only the pod elected
	// first master needs the data (the others start empty and replicate
	// from it); its coordinator elects no empty pod while that one is
	// restoring (internal/coordinator).
	Pod     string `env:"HOSTNAME"    help:"Name of this pod (the container runtime sets HOSTNAME to it)."`
	SeedPod string `env:"RESTORE_POD" help:"Only this pod restores; the others start empty and replicate from it. Empty: this pod restores."`
}

// Run restores and writes the result.
func (c *RestoreCmd) Run(log *slog.Logger) error {
	if c.SeedPod != "" && c.Pod != c.SeedPod {
		log.Info("Not restoring: another pod restores the backup, this one replicates it", "pod", c.Pod, "restoring-pod", c.SeedPod)
		return c.report(log, contract.BackupResult{}, nil)
	}
	ctx, cancel := c.context()
	defer cancel()
	m, err := c.run(ctx, log)
	return c.result(log, m, err, backup.ReasonBackupUnreadable)
}

func (c *RestoreCmd) run(ctx context.Context, log *slog.Logger) (*backup.Manifest, error) {
	id, err := c.key()
	if err != nil {
		return nil, err
	}
	s, err := c.store()
	if err != nil {
		return nil, err
	}
	return backup.Restore(ctx, s, backup.RestoreOptions{
		Backup: c.Backup, DataDir: c.DataDir, RDBFile: c.RDBFile, AOFDir: c.AOFDir, Key: id, RedisVersion: c.RedisVersion, Log: log.Info,
	})
}

func (s *S3) context() (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	return ctx, func() { cancel(); stop() }
}

// result reports the manifest of what was backed up or restored, or err
// with its reason (fallback when err names none).
func (s *S3) result(log *slog.Logger, m *backup.Manifest, err error, fallback string) error {
	res := contract.BackupResult{}
	if m != nil {
		res.Name, res.Time, res.Keys, res.Size = m.Name, m.Time.Format(time.RFC3339), m.Keys, m.Size
	}
	if err != nil {
		res.Reason, res.Message = backup.ReasonOf(err, fallback), err.Error()
	}
	return s.report(log, res, err)
}

// report writes res where Kubernetes reads the termination message, and logs
// it.
func (s *S3) report(log *slog.Logger, res contract.BackupResult, err error) error {
	b, merr := json.Marshal(res)
	if merr != nil {
		return merr
	}
	if s.TerminationLog != "" {
		if werr := os.WriteFile(s.TerminationLog, b, 0o600); werr != nil {
			log.Warn("Cannot write the termination message", "error", werr.Error())
		}
	}
	if err != nil {
		log.Error("Failed", "reason", res.Reason, "error", res.Message)
		return &reported{err}
	}
	log.Info("Done", "backup", res.Name, "keys", res.Keys, "bytes", res.Size)
	return nil
}

// CLI of the backup binary.
type CLI struct {
	Backup  BackupCmd  `cmd:"" help:"Take one verified backup and apply retention."`
	Restore RestoreCmd `cmd:"" help:"Restore a backup into an empty data directory."`

	Version version.Flag `help:"Print the version and exit."`
}

// options are the command line's: main's and the tests'.
func options(log *slog.Logger) []kong.Option {
	return []kong.Option{kong.Description("Verified Redis backups to S3-compatible storage, and restores."), kong.Bind(log)}
}

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx := kong.Parse(&CLI{}, options(log)...)
	os.Exit(run(ctx, log))
}

// run runs the parsed command and returns the exit code.
func run(ctx *kong.Context, log *slog.Logger) int {
	log.Info("Starting", "command", ctx.Command(), "version", version.Version)
	if err := ctx.Run(); err != nil {
		// A command reports its own failures (report); this is a failure
		// to run it at all.
		if _, reported := errors.AsType[*reported](err); !reported {
			log.Error("Cannot run", "command", ctx.Command(), "error", err.Error())
		}
		return 1
	}
	return 0
}

// reported is an error a command already reported.
type reported struct{ error }

func (r *reported) Unwrap() error { return r.error }
