package apikey

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	kerrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ai-decenter/redishttp/apis/v1alpha1"
	"github.com/ai-decenter/redishttp/internal/clients/redis"
	"github.com/ai-decenter/redishttp/internal/contract"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
	"github.com/crossplane/crossplane-runtime/v2/pkg/meta"
	"github.com/crossplane/crossplane-runtime/v2/pkg/reconciler/managed"
	"github.com/crossplane/crossplane-runtime/v2/pkg/test"
	xpv2 "github.com/crossplane/crossplane/apis/v2/core/v2"
)

type fakeACL struct {
	GetUserFn    func(ctx context.Context, name string) (*redis.User, bool, error)
	SetUserFn    func(ctx context.Context, name string, r redis.Rules) error
	DeleteUserFn func(ctx context.Context, name string) error
	CommandsFn   func(r redis.Rules) (string, error)
}

func (f *fakeACL) GetUser(ctx context.Context, name string) (*redis.User, bool, error) {
	return f.GetUserFn(ctx, name)
}

func (f *fakeACL) SetUser(ctx context.Context, name string, r redis.Rules) error {
	return f.SetUserFn(ctx, name, r)
}

func (f *fakeACL) DeleteUser(ctx context.Context, name string) error {
	return f.DeleteUserFn(ctx, name)
}
func (f *fakeACL) Commands(_ context.Context, r redis.Rules) (string, error) {
	return f.CommandsFn(r)
}

const (
	user     = "team-a.web.0123abcd"
	key      = "rhk_current-key-current-key-current-key-xx"
	oldKey   = "rhk_previous-key-previous-key-previous-key"
	endpoint = "cache-redis.team-a.svc.cluster.local"
	compact  = "+@all -@dangerous -@scripting"
)

var (
	// appCommands are the default command rules of a key limited to app:*.
	appCommands = []string{"+@all", "-@dangerous", "-@scripting", "-scan", "-randomkey", "-pubsub|channels", "-pubsub|numsub", "-pubsub|shardchannels", "-pubsub|shardnumsub"}

	errBoom = errors.New("boom")
	now     = time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
)

type akOption func(*v1alpha1.ApiKey)

func apiKeyFor(o ...akOption) *v1alpha1.ApiKey {
	ak := &v1alpha1.ApiKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "web", UID: "0123abcd-0000-0000-0000-000000000000"},
		Spec: v1alpha1.ApiKeySpec{
			ManagedResourceSpec: xpv2.ManagedResourceSpec{WriteConnectionSecretToReference: &xpv2.LocalSecretReference{Name: "web-redis"}},
			ForProvider:         v1alpha1.ApiKeyParameters{InstanceRef: &v1alpha1.LocalReference{Name: "cache"}, KeyPatterns: []string{"app:*"}},
		},
	}
	meta.SetExternalName(ak, user)
	for _, fn := range o {
		fn(ak)
	}
	return ak
}

func withSerial(spec, status int64) akOption {
	return func(ak *v1alpha1.ApiKey) {
		ak.Spec.ForProvider.Rotation.Serial = spec
		ak.Status.AtProvider.RotationSerial = &status
	}
}

func withPrevious(h string, expires time.Time) akOption {
	return func(ak *v1alpha1.ApiKey) {
		ak.Status.AtProvider.PreviousKeySHA256 = h
		ak.Status.AtProvider.PreviousKeyExpiresAt = &metav1.Time{Time: expires}
	}
}

func withKeyPatterns(p ...string) akOption {
	return func(ak *v1alpha1.ApiKey) { ak.Spec.ForProvider.KeyPatterns = p }
}

func withDeletion() akOption {
	return func(ak *v1alpha1.ApiKey) { ak.SetDeletionTimestamp(&metav1.Time{Time: now}) }
}

func withExternalName(n string) akOption {
	return func(ak *v1alpha1.ApiKey) { meta.SetExternalName(ak, n) }
}

// kubeWithSecret returns a client that holds the ApiKey's connection Secret
// with key, or no Secret when key is empty.
func kubeWithSecret(k string) *test.MockClient {
	return &test.MockClient{
		MockGet: func(_ context.Context, _ client.ObjectKey, obj client.Object) error {
			if k == "" {
				return kerrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, "web-redis")
			}
			s := obj.(*corev1.Secret)
			s.SetName("web-redis")
			s.SetOwnerReferences([]metav1.OwnerReference{{UID: "0123abcd-0000-0000-0000-000000000000", Controller: new(true)}})
			s.Data = map[string][]byte{contract.KeyPassword: []byte(k)}
			return nil
		},
		MockDelete:       test.NewMockDeleteFn(nil),
		MockStatusUpdate: test.NewMockSubResourceUpdateFn(nil),
	}
}

// userWith returns the user as the ACL client reports it: digests sorted.
func userWith(hashes ...string) *redis.User {
	slices.Sort(hashes)
	return &redis.User{Name: user, Enabled: true, PasswordHashes: hashes, KeyPatterns: []string{"app:*"}, Commands: compact}
}

func known(redis.Rules) (string, error) { return compact, nil }

func newExternal(kube client.Client, acl redis.ACL) *external {
	return &external{
		kube:   kube,
		live:   kube,
		nodes:  []node{{acl: acl, ready: true}},
		admin:  admin{creds: redis.Credentials{Username: "default"}, endpoint: endpoint, port: "6379"},
		now:    func() time.Time { return now },
		forget: func(types.UID) {},
	}
}

// aclWithUser is an ACL holding the ApiKey's user with these password hashes,
// whose command rules are already known.
func aclWithUser(hashes ...string) *fakeACL {
	return &fakeACL{
		GetUserFn:  func(context.Context, string) (*redis.User, bool, error) { return userWith(hashes...), true, nil },
		CommandsFn: known,
	}
}

// equateErrors compares errors with errors.Is, or else by message: a case
// that wants the error a user reads asserts it exactly.
func equateErrors() cmp.Option {
	bothErrors := func(a, b any) bool {
		_, aok := a.(error)
		_, bok := b.(error)
		return aok && bok
	}
	return cmp.FilterValues(bothErrors, cmp.Comparer(func(a, b any) bool {
		ae, be := a.(error), b.(error) //nolint:forcetypeassert // the filter checked both.
		return errors.Is(ae, be) || errors.Is(be, ae) || ae.Error() == be.Error()
	}))
}

func TestObserve(t *testing.T) {
	type args struct {
		kube client.Client
		acl  redis.ACL
		cr   *v1alpha1.ApiKey
	}
	type want struct {
		o   managed.ExternalObservation
		err error
	}
	cases := map[string]struct {
		reason string
		args   args
		want   want
	}{
		"GetUserFails": {
			reason: "A failure to read the ACL should be returned to the reconciler.",
			args: args{
				kube: kubeWithSecret(key),
				acl:  &fakeACL{GetUserFn: func(context.Context, string) (*redis.User, bool, error) { return nil, false, errBoom }},
				cr:   apiKeyFor(),
			},
			want: want{err: errBoom},
		},
		"RedisBusyIsRetriedQuietly": {
			reason: "A Redis busy answering another reconcile of the provider (a snapshot at a time) is nothing wrong with this key: a conflict, which the reconciler retries without a Warning event or a status write.",
			args: args{
				kube: kubeWithSecret(key),
				acl:  &fakeACL{GetUserFn: func(context.Context, string) (*redis.User, bool, error) { return nil, false, redis.ErrBusy }},
				cr:   apiKeyFor(),
			},
			want: want{err: kerrors.NewConflict(schema.GroupResource{Group: v1alpha1.Group, Resource: "apikeys"}, "", redis.ErrBusy)},
		},
		"UserMissing": {
			reason: "A user that does not exist (never made, or vanished in a restart) should be reported so it is created.",
			args: args{
				kube: kubeWithSecret(key),
				acl:  &fakeACL{GetUserFn: func(context.Context, string) (*redis.User, bool, error) { return nil, false, nil }},
				cr:   apiKeyFor(),
			},
			want: want{o: managed.ExternalObservation{ResourceExists: false}},
		},
		"UpToDate": {
			reason: "A user with exactly the spec's rules and the Secret's key should be up to date, and its connection details published.",
			args: args{
				kube: kubeWithSecret(key),
				acl:  aclWithUser(hash(key)),
				cr:   apiKeyFor(withSerial(0, 0)),
			},
			want: want{o: managed.ExternalObservation{
				ResourceExists:    true,
				ResourceUpToDate:  true,
				ConnectionDetails: details(user, key, admin{endpoint: endpoint, port: "6379"}, nil),
			}},
		},
		"KeyPatternsChanged": {
			reason: "A spec asking for other key patterns than the user has should need an update.",
			args: args{
				kube: kubeWithSecret(key),
				acl:  aclWithUser(hash(key)),
				cr:   apiKeyFor(withSerial(0, 0), withKeyPatterns("app:narrow:*")),
			},
			want: want{o: managed.ExternalObservation{
				ResourceExists:    true,
				ConnectionDetails: details(user, key, admin{endpoint: endpoint, port: "6379"}, nil),
				Diff:              `key patterns: want ["app:narrow:*"], got ["app:*"]`,
			}},
		},
		"CommandsCannotBeLearned": {
			reason: "When Redis cannot say how it writes the command rules, the user cannot be compared: the error should be returned, and nothing written.",
			args: args{
				kube: kubeWithSecret(key),
				acl: &fakeACL{
					GetUserFn:  func(context.Context, string) (*redis.User, bool, error) { return userWith(hash(key)), true, nil },
					CommandsFn: func(redis.Rules) (string, error) { return "", errBoom },
				},
				cr: apiKeyFor(withSerial(0, 0)),
			},
			want: want{err: errBoom},
		},
		"RotationRequested": {
			reason: "A bumped rotation serial should need an update, without revealing any key in the diff.",
			args: args{
				kube: kubeWithSecret(key),
				acl:  aclWithUser(hash(key)),
				cr:   apiKeyFor(withSerial(1, 0)),
			},
			want: want{o: managed.ExternalObservation{
				ResourceExists:    true,
				ConnectionDetails: details(user, key, admin{endpoint: endpoint, port: "6379"}, nil),
				Diff:              "rotation serial: want 1, got 0",
			}},
		},
		"GracePeriodOver": {
			reason: "A previous key whose grace period ended should make the user need an update that drops it.",
			args: args{
				kube: kubeWithSecret(key),
				acl:  aclWithUser(hash(key), hash(oldKey)),
				cr:   apiKeyFor(withSerial(1, 1), withPrevious(hash(oldKey), now.Add(-time.Second))),
			},
			want: want{o: managed.ExternalObservation{
				ResourceExists:    true,
				ConnectionDetails: details(user, key, admin{endpoint: endpoint, port: "6379"}, nil),
				Diff:              "passwords: want 1, got 2 (or different ones)",
			}},
		},
		"InGracePeriod": {
			reason: "During the grace period both keys should be expected.",
			args: args{
				kube: kubeWithSecret(key),
				acl:  aclWithUser(hash(key), hash(oldKey)),
				cr:   apiKeyFor(withSerial(1, 1), withPrevious(hash(oldKey), now.Add(time.Second))),
			},
			want: want{o: managed.ExternalObservation{
				ResourceExists:    true,
				ResourceUpToDate:  true,
				ConnectionDetails: details(user, key, admin{endpoint: endpoint, port: "6379"}, nil),
			}},
		},
		"RotationNeverPublished": {
			reason: "When a recorded rotation's new key never reached the Secret, the rotation should be reported incomplete so Update finishes it.",
			args: args{
				kube: kubeWithSecret(key),
				acl:  aclWithUser(hash(key), hash(oldKey)),
				cr:   apiKeyFor(withSerial(1, 1), withPrevious(hash(key), now.Add(time.Minute))),
			},
			want: want{o: managed.ExternalObservation{
				ResourceExists:    true,
				ConnectionDetails: details(user, key, admin{endpoint: endpoint, port: "6379"}, nil),
				Diff:              "passwords: want 1, got 2 (or different ones); rotation to serial 1 incomplete: the Secret still holds the previous key",
			}},
		},
		"SecretLost": {
			reason: "When the Secret holding the key is gone no app can use the user, so it should be made again with a new key.",
			args: args{
				kube: kubeWithSecret(""),
				acl:  &fakeACL{GetUserFn: func(context.Context, string) (*redis.User, bool, error) { return userWith(hash(key)), true, nil }},
				cr:   apiKeyFor(),
			},
			want: want{o: managed.ExternalObservation{ResourceExists: false}},
		},
		"DeletingWithSecretLost": {
			reason: "An ApiKey being deleted should see its user whatever became of the Secret, so the user is deleted.",
			args: args{
				kube: kubeWithSecret(""),
				acl:  &fakeACL{GetUserFn: func(context.Context, string) (*redis.User, bool, error) { return userWith(hash(key)), true, nil }},
				cr:   apiKeyFor(withDeletion()),
			},
			want: want{o: managed.ExternalObservation{ResourceExists: true}},
		},
		"UserOfAnotherApiKey": {
			reason: "An external name naming a user that accepts none of this ApiKey's keys should be an error, so the user is never reset with this ApiKey's key.",
			args: args{
				kube: kubeWithSecret(key),
				acl:  &fakeACL{GetUserFn: func(context.Context, string) (*redis.User, bool, error) { return userWith(hash(oldKey)), true, nil }},
				cr:   apiKeyFor(withSerial(0, 0), withExternalName("team-b.web.89abcdef")),
			},
			want: want{err: errTakeover("team-b.web.89abcdef")},
		},
		"UserOfAnotherApiKeyWithoutSecret": {
			reason: "A user this ApiKey does not own should be an error even when this ApiKey's Secret is gone, not a reason to create it.",
			args: args{
				kube: kubeWithSecret(""),
				acl:  &fakeACL{GetUserFn: func(context.Context, string) (*redis.User, bool, error) { return userWith(hash(oldKey)), true, nil }},
				cr:   apiKeyFor(withExternalName("team-b.web.89abcdef")),
			},
			want: want{err: errTakeover("team-b.web.89abcdef")},
		},
		"DeletingWithUserOfAnotherApiKey": {
			reason: "Deleting an ApiKey whose external name names a user it does not own should leave that user alone.",
			args: args{
				kube: kubeWithSecret(key),
				acl:  &fakeACL{GetUserFn: func(context.Context, string) (*redis.User, bool, error) { return userWith(hash(oldKey)), true, nil }},
				cr:   apiKeyFor(withDeletion(), withExternalName("team-b.web.89abcdef")),
			},
			want: want{o: managed.ExternalObservation{ResourceExists: false}},
		},
		"AdminUserName": {
			reason: "An external name naming the admin user should be refused before anything reaches Redis.",
			args: args{
				kube: kubeWithSecret(key),
				acl:  &fakeACL{},
				cr:   apiKeyFor(withExternalName("default")),
			},
			want: want{err: errors.New(`cannot use ACL user "default": it is an administrator`)},
		},
		"ProbeUserName": {
			reason: "An external name the provider uses for its probe users should be refused before anything reaches Redis: the probe would delete it.",
			args: args{
				kube: kubeWithSecret(key),
				acl:  &fakeACL{},
				cr:   apiKeyFor(withExternalName(redis.ProbePrefix + "00")),
			},
			want: want{err: errors.New(`cannot use ACL user "redishttp-probe-00": names starting with "redishttp-probe-" are the provider's own`)},
		},
		"GracePeriodOverflows": {
			reason: "A grace period Go cannot hold (stored before the schema bounded it) should be refused on this ApiKey, before anything reaches Redis.",
			args: args{
				kube: kubeWithSecret(key),
				acl:  &fakeACL{},
				cr:   apiKeyFor(func(ak *v1alpha1.ApiKey) { ak.Spec.ForProvider.Rotation.GracePeriod = new("2562048h") }),
			},
			want: want{err: errors.New(`cannot use spec.forProvider.rotation.gracePeriod "2562048h": want a duration such as 10m or 1h30m, at most 720h`)},
		},
		"PatternWithSpace": {
			reason: "A key pattern that would not reach Redis as one pattern should be refused.",
			args: args{
				kube: kubeWithSecret(key),
				acl:  &fakeACL{},
				cr:   apiKeyFor(withKeyPatterns("app:* allcommands")),
			},
			want: want{err: errors.New(`cannot use spec.forProvider.keyPatterns[0]: pattern "app:* allcommands" contains whitespace or a control character`)},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := newExternal(tc.args.kube, tc.args.acl).Observe(context.Background(), tc.args.cr)
			if diff := cmp.Diff(tc.want.err, err, equateErrors()); diff != "" {
				t.Errorf("%s\nObserve(...): -want error, +got error:\n%s", tc.reason, diff)
			}
			if diff := cmp.Diff(tc.want.o, got); diff != "" {
				t.Errorf("%s\nObserve(...): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}

func TestCreate(t *testing.T) {
	type args struct {
		kube *test.MockClient
		cr   *v1alpha1.ApiKey
		user *redis.User // an ACL user that already has the name
		err  error       // what SETUSER returns
	}
	type want struct {
		key     string // "" means a new key
		setUser bool
		err     error
	}
	cases := map[string]struct {
		reason string
		args   args
		want   want
	}{
		"UserOfAnotherApiKey": {
			reason: "An external name naming a user that accepts none of this ApiKey's keys should be refused, not reset with this ApiKey's key.",
			args:   args{kube: kubeWithSecret(key), cr: apiKeyFor(withExternalName("team-b.web.89abcdef")), user: userWith(hash(oldKey))},
			want:   want{err: errTakeover("team-b.web.89abcdef")},
		},
		"OwnUserWhoseSecretWasLost": {
			reason: "A user with this ApiKey's default name whose Secret was lost is this ApiKey's own, so it should be made again with a new key.",
			args:   args{kube: kubeWithSecret(""), cr: apiKeyFor(), user: userWith(hash(oldKey))},
			want:   want{setUser: true},
		},
		"OwnUserRecordedInStatus": {
			reason: "A user this ApiKey recorded managing under its custom name is its own, even if its password was changed behind its back.",
			args: args{
				kube: kubeWithSecret(key),
				cr:   apiKeyFor(withExternalName("web-custom"), func(ak *v1alpha1.ApiKey) { ak.Status.AtProvider.Username = "web-custom" }),
				user: userWith(hash(oldKey)),
			},
			want: want{key: key, setUser: true},
		},
		"ReusesTheSecretsKey": {
			reason: "A user that vanished should come back with the key the Secret already holds, so apps keep working.",
			args:   args{kube: kubeWithSecret(key), cr: apiKeyFor()},
			want:   want{key: key, setUser: true},
		},
		"NewKey": {
			reason: "A first creation should generate a new key and send Redis only its digest.",
			args:   args{kube: kubeWithSecret(""), cr: apiKeyFor()},
			want:   want{setUser: true},
		},
		"SetUserFails": {
			reason: "A failure to create the user should be returned to the reconciler.",
			args:   args{kube: kubeWithSecret(key), cr: apiKeyFor(), err: errBoom},
			want:   want{setUser: true, err: errBoom},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var set *redis.Rules
			acl := &fakeACL{
				GetUserFn: func(context.Context, string) (*redis.User, bool, error) {
					return tc.args.user, tc.args.user != nil, nil
				},
				SetUserFn: func(_ context.Context, _ string, r redis.Rules) error { set = &r; return tc.args.err },
			}
			got, err := newExternal(tc.args.kube, acl).Create(context.Background(), tc.args.cr)
			if diff := cmp.Diff(tc.want.err, err, equateErrors()); diff != "" {
				t.Errorf("%s\nCreate(...): -want error, +got error:\n%s", tc.reason, diff)
			}
			if (set != nil) != tc.want.setUser {
				t.Errorf("%s\nCreate(...): want SETUSER %t, got %t", tc.reason, tc.want.setUser, set != nil)
			}
			if err != nil {
				return
			}
			user := meta.GetExternalName(tc.args.cr)
			k := string(got.ConnectionDetails[contract.KeyPassword])
			if tc.want.key != "" && k != tc.want.key {
				t.Errorf("%s\nCreate(...): published a different key than the Secret's", tc.reason)
			}
			if tc.want.key == "" && (k == key || len(k) < 32 || k[:len(KeyPrefix)] != KeyPrefix) {
				t.Errorf("%s\nCreate(...): want a new %q key of >= 32 characters, got %d characters", tc.reason, KeyPrefix, len(k))
			}
			want := &redis.Rules{PasswordHashes: []string{hash(k)}, KeyPatterns: []string{"app:*"}, Commands: appCommands}
			if diff := cmp.Diff(want, set); diff != "" {
				t.Errorf("%s\nCreate(...): -want rules, +got rules:\n%s", tc.reason, diff)
			}
			if diff := cmp.Diff(details(user, k, admin{endpoint: endpoint, port: "6379"}, nil), got.ConnectionDetails); diff != "" {
				t.Errorf("%s\nCreate(...): -want details, +got details:\n%s", tc.reason, diff)
			}
		})
	}
}

func TestUpdate(t *testing.T) {
	type args struct {
		cr     *v1alpha1.ApiKey
		setErr error // what SETUSER returns
		status error // what the status update returns
	}
	type want struct {
		// calls made, in order: "status" (the rotation recorded) and
		// "setuser" (Redis told).
		calls    []string
		rotated  bool
		hashes   func(published string) []string
		previous string
		expires  *metav1.Time
		patterns []string
		err      error
	}
	cases := map[string]struct {
		reason string
		args   args
		want   want
	}{
		"PermissionChange": {
			reason: "A permission change should apply in place and keep the key.",
			args:   args{cr: apiKeyFor(withSerial(0, 0), withKeyPatterns("app:narrow:*"))},
			want: want{
				calls:    []string{"setuser"},
				hashes:   func(string) []string { return []string{hash(key)} },
				patterns: []string{"app:narrow:*"},
			},
		},
		"Rotation": {
			reason: "A bumped serial should record the rotation before Redis sees the new key, publish it, and keep the old one valid for the grace period, rounded up to a second.",
			args: args{cr: apiKeyFor(withSerial(1, 0), func(ak *v1alpha1.ApiKey) {
				ak.Spec.ForProvider.Rotation.GracePeriod = new("2500ms")
			})},
			want: want{
				calls:    []string{"status", "setuser"},
				rotated:  true,
				hashes:   func(k string) []string { return []string{hash(k), hash(key)} },
				previous: hash(key),
				expires:  &metav1.Time{Time: now.Add(3 * time.Second)},
				patterns: []string{"app:*"},
			},
		},
		"GracePeriodOver": {
			reason: "A previous key past its grace period should be dropped from the user and the status.",
			args:   args{cr: apiKeyFor(withSerial(1, 1), withPrevious(hash(oldKey), now.Add(-time.Second)))},
			want: want{
				calls:    []string{"setuser"},
				hashes:   func(string) []string { return []string{hash(key)} },
				patterns: []string{"app:*"},
			},
		},
		"SetUserFails": {
			reason: "A failure to update the user should be returned to the reconciler.",
			args:   args{cr: apiKeyFor(withSerial(0, 0)), setErr: errBoom},
			want:   want{calls: []string{"setuser"}, err: errBoom},
		},
		"CannotRecordRotation": {
			reason: "A rotation that cannot be recorded in the status should stop before Redis or the Secret see a new key.",
			args:   args{cr: apiKeyFor(withSerial(1, 0)), status: errBoom},
			want:   want{calls: []string{"status"}, err: errBoom},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var calls []string
			var set redis.Rules
			acl := &fakeACL{SetUserFn: func(_ context.Context, _ string, r redis.Rules) error {
				calls, set = append(calls, "setuser"), r
				return tc.args.setErr
			}}
			kube := kubeWithSecret(key)
			kube.MockStatusUpdate = func(context.Context, client.Object, ...client.SubResourceUpdateOption) error {
				calls = append(calls, "status")
				return tc.args.status
			}
			got, err := newExternal(kube, acl).Update(context.Background(), tc.args.cr)
			if diff := cmp.Diff(tc.want.err, err, equateErrors()); diff != "" {
				t.Errorf("%s\nUpdate(...): -want error, +got error:\n%s", tc.reason, diff)
			}
			if diff := cmp.Diff(tc.want.calls, calls); diff != "" {
				t.Errorf("%s\nUpdate(...): -want calls, +got calls:\n%s", tc.reason, diff)
			}
			if err != nil {
				return
			}
			k := string(got.ConnectionDetails[contract.KeyPassword])
			if rotated := k != key; rotated != tc.want.rotated {
				t.Errorf("%s\nUpdate(...): want rotated %t, got %t", tc.reason, tc.want.rotated, rotated)
			}
			want := redis.Rules{PasswordHashes: tc.want.hashes(k), KeyPatterns: tc.want.patterns, Commands: appCommands}
			if diff := cmp.Diff(want, set); diff != "" {
				t.Errorf("%s\nUpdate(...): -want rules, +got rules:\n%s", tc.reason, diff)
			}
			at := tc.args.cr.Status.AtProvider
			if diff := cmp.Diff(tc.want.previous, at.PreviousKeySHA256); diff != "" {
				t.Errorf("%s\nUpdate(...): -want previous, +got previous:\n%s", tc.reason, diff)
			}
			if diff := cmp.Diff(tc.want.expires, at.PreviousKeyExpiresAt); diff != "" {
				t.Errorf("%s\nUpdate(...): -want expiry, +got expiry:\n%s", tc.reason, diff)
			}
		})
	}
}

func TestDelete(t *testing.T) {
	type args struct {
		cr  *v1alpha1.ApiKey
		err error // what DELUSER returns
	}
	type want struct {
		// calls made, in order: "deluser <name>" and "delete <Secret>".
		calls []string
		err   error
	}
	cases := map[string]struct {
		reason string
		args   args
		want   want
	}{
		"DeletesUserAndSecret": {
			reason: "Deletion should delete the ACL user, then the connection Secret.",
			args:   args{cr: apiKeyFor()},
			want:   want{calls: []string{"deluser " + user, "delete web-redis"}},
		},
		"DeleteUserFails": {
			reason: "A failure to delete the user should be returned, and the Secret kept.",
			args:   args{cr: apiKeyFor(), err: errBoom},
			want:   want{calls: []string{"deluser " + user}, err: errBoom},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var calls []string
			kube := kubeWithSecret(key)
			kube.MockDelete = func(_ context.Context, o client.Object, _ ...client.DeleteOption) error {
				calls = append(calls, "delete "+o.GetName())
				return nil
			}
			acl := &fakeACL{DeleteUserFn: func(_ context.Context, n string) error {
				calls = append(calls, "deluser "+n)
				return tc.args.err
			}}
			_, err := newExternal(kube, acl).Delete(context.Background(), tc.args.cr)
			if diff := cmp.Diff(tc.want.err, err, equateErrors()); diff != "" {
				t.Errorf("%s\nDelete(...): -want error, +got error:\n%s", tc.reason, diff)
			}
			if diff := cmp.Diff(tc.want.calls, calls); diff != "" {
				t.Errorf("%s\nDelete(...): -want calls, +got calls:\n%s", tc.reason, diff)
			}
		})
	}
}

func TestRotationInterrupted(t *testing.T) {
	cases := map[string]struct {
		reason string
		// setErr fails the first SETUSER, after the rotation was recorded.
		setErr error
	}{
		"SetUserFailsAfterTheStatusWrite": {
			reason: "When SETUSER fails after the rotation was recorded, the next reconcile should see the rotation as incomplete and finish it with a new key, keeping the old one for the grace period.",
			setErr: errBoom,
		},
		"SecretNeverPublished": {
			reason: "When Redis took the new key but the Secret never got it, the next reconcile should see the rotation as incomplete and finish it with a new key, keeping the old one for the grace period.",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var users [][]string
			acl := &fakeACL{
				GetUserFn: func(context.Context, string) (*redis.User, bool, error) {
					return userWith(slices.Clone(users[len(users)-1])...), true, nil
				},
				SetUserFn: func(_ context.Context, _ string, r redis.Rules) error {
					if tc.setErr != nil && len(users) == 1 {
						users = append(users, users[0])
						return tc.setErr
					}
					users = append(users, r.PasswordHashes)
					return nil
				},
				CommandsFn: known,
			}
			users = append(users, []string{hash(key)})
			// The Secret keeps the old key throughout: the first rotation's
			// key never reaches it.
			e := newExternal(kubeWithSecret(key), acl)
			cr := apiKeyFor(withSerial(1, 0))

			_, err := e.Update(context.Background(), cr)
			if diff := cmp.Diff(tc.setErr, err, equateErrors()); diff != "" {
				t.Fatalf("%s\nUpdate(...): -want error, +got error:\n%s", tc.reason, diff)
			}
			o, err := e.Observe(context.Background(), cr)
			if err != nil {
				t.Fatalf("%s\nObserve(...): %v", tc.reason, err)
			}
			if o.ResourceUpToDate {
				t.Fatalf("%s\nObserve(...): an incomplete rotation was reported up to date", tc.reason)
			}
			u, err := e.Update(context.Background(), cr)
			if err != nil {
				t.Fatalf("%s\nUpdate(...): %v", tc.reason, err)
			}
			k := string(u.ConnectionDetails[contract.KeyPassword])
			if k == key {
				t.Fatalf("%s\nUpdate(...): the rotation was not completed: the old key is still published", tc.reason)
			}
			want := []string{hash(k), hash(key)}
			if diff := cmp.Diff(want, users[len(users)-1]); diff != "" {
				t.Errorf("%s\nUpdate(...): -want password digests, +got:\n%s", tc.reason, diff)
			}
			if diff := cmp.Diff(hash(key), cr.Status.AtProvider.PreviousKeySHA256); diff != "" {
				t.Errorf("%s\nUpdate(...): -want previous, +got previous:\n%s", tc.reason, diff)
			}
		})
	}
}
