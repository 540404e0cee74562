package apikey

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	kerrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
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
	CommandsFn   func(r redis.Rules) (string, bool)
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
func (f *fakeACL) Commands(r redis.Rules) (string, bool) { return f.CommandsFn(r) }

const (
	user     = "team-a.web.0123abcd"
	key      = "rhk_current-key-current-key-current-key-xx"
	oldKey   = "rhk_previous-key-previous-key-previous-key"
	endpoint = "cache-redis.team-a.svc.cluster.local"
	compact  = "+@all -@dangerous -@scripting"
)

var (
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

func known(redis.Rules) (string, bool) { return compact, true }

func newExternal(kube client.Client, acl redis.ACL) *external {
	return &external{
		kube:  kube,
		live:  kube,
		acl:   acl,
		admin: admin{creds: redis.Credentials{Username: "default"}, endpoint: endpoint, port: "6379"},
		now:   func() time.Time { return now },
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
				ConnectionDetails: details(user, key, endpoint, "6379"),
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
				ConnectionDetails: details(user, key, endpoint, "6379"),
				Diff:              `key patterns: want ["app:narrow:*"], got ["app:*"]`,
			}},
		},
		"CommandsNotYetLearned": {
			reason: "Until the provider has applied a set of command rules to this Redis it cannot compare them, so it should update.",
			args: args{
				kube: kubeWithSecret(key),
				acl: &fakeACL{
					GetUserFn:  func(context.Context, string) (*redis.User, bool, error) { return userWith(hash(key)), true, nil },
					CommandsFn: func(redis.Rules) (string, bool) { return "", false },
				},
				cr: apiKeyFor(withSerial(0, 0)),
			},
			want: want{o: managed.ExternalObservation{
				ResourceExists:    true,
				ConnectionDetails: details(user, key, endpoint, "6379"),
				Diff:              `commands: "+@all -@dangerous -@scripting" not yet applied to this Redis`,
			}},
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
				ConnectionDetails: details(user, key, endpoint, "6379"),
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
				ConnectionDetails: details(user, key, endpoint, "6379"),
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
				ConnectionDetails: details(user, key, endpoint, "6379"),
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
				ConnectionDetails: details(user, key, endpoint, "6379"),
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
			want: want{err: cmpopts.AnyError},
		},
		"UserOfAnotherApiKeyWithoutSecret": {
			reason: "A user this ApiKey does not own should be an error even when this ApiKey's Secret is gone, not a reason to create it.",
			args: args{
				kube: kubeWithSecret(""),
				acl:  &fakeACL{GetUserFn: func(context.Context, string) (*redis.User, bool, error) { return userWith(hash(oldKey)), true, nil }},
				cr:   apiKeyFor(withExternalName("team-b.web.89abcdef")),
			},
			want: want{err: cmpopts.AnyError},
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
			want: want{err: cmpopts.AnyError},
		},
		"PatternWithSpace": {
			reason: "A key pattern that would not reach Redis as one pattern should be refused.",
			args: args{
				kube: kubeWithSecret(key),
				acl:  &fakeACL{},
				cr:   apiKeyFor(withKeyPatterns("app:* allcommands")),
			},
			want: want{err: cmpopts.AnyError},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := newExternal(tc.args.kube, tc.args.acl).Observe(context.Background(), tc.args.cr)
			if diff := cmp.Diff(tc.want.err, err, cmpopts.EquateErrors()); diff != "" {
				t.Errorf("%s\nObserve(...): -want error, +got error:\n%s", tc.reason, diff)
			}
			if diff := cmp.Diff(tc.want.o, got); diff != "" {
				t.Errorf("%s\nObserve(...): -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}

func TestCreate(t *testing.T) {
	cases := map[string]struct {
		reason  string
		kube    client.Client
		cr      *v1alpha1.ApiKey
		user    *redis.User // an ACL user that already has the name
		err     error
		wantKey string // "" means a new key
		wantErr error
	}{
		"UserOfAnotherApiKey": {
			reason:  "An external name naming a user that accepts none of this ApiKey's keys should be refused, not reset with this ApiKey's key.",
			kube:    kubeWithSecret(key),
			cr:      apiKeyFor(withExternalName("team-b.web.89abcdef")),
			user:    userWith(hash(oldKey)),
			wantErr: cmpopts.AnyError,
		},
		"OwnUserWhoseSecretWasLost": {
			reason: "A user with this ApiKey's default name whose Secret was lost is this ApiKey's own, so it should be made again with a new key.",
			kube:   kubeWithSecret(""),
			user:   userWith(hash(oldKey)),
		},
		"OwnUserRecordedInStatus": {
			reason:  "A user this ApiKey recorded managing under its custom name is its own, even if its password was changed behind its back.",
			kube:    kubeWithSecret(key),
			cr:      apiKeyFor(withExternalName("web-custom"), func(ak *v1alpha1.ApiKey) { ak.Status.AtProvider.Username = "web-custom" }),
			user:    userWith(hash(oldKey)),
			wantKey: key,
		},
		"ReusesTheSecretsKey": {
			reason:  "A user that vanished should come back with the key the Secret already holds, so apps keep working.",
			kube:    kubeWithSecret(key),
			wantKey: key,
		},
		"NewKey": {
			reason: "A first creation should generate a new key and send Redis only its digest.",
			kube:   kubeWithSecret(""),
		},
		"SetUserFails": {
			reason:  "A failure to create the user should be returned to the reconciler.",
			kube:    kubeWithSecret(key),
			err:     errBoom,
			wantErr: errBoom,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var set redis.Rules
			setCalled := false
			acl := &fakeACL{
				GetUserFn: func(context.Context, string) (*redis.User, bool, error) { return tc.user, tc.user != nil, nil },
				SetUserFn: func(_ context.Context, _ string, r redis.Rules) error { set, setCalled = r, true; return tc.err },
			}
			cr := tc.cr
			if cr == nil {
				cr = apiKeyFor()
			}
			got, err := newExternal(tc.kube, acl).Create(context.Background(), cr)
			if diff := cmp.Diff(tc.wantErr, err, cmpopts.EquateErrors()); diff != "" {
				t.Fatalf("%s\nCreate(...): -want error, +got error:\n%s", tc.reason, diff)
			}
			if tc.wantErr != nil {
				if tc.err == nil && setCalled {
					t.Errorf("%s\nCreate(...): SETUSER ran on a user the ApiKey does not own", tc.reason)
				}
				return
			}
			user := meta.GetExternalName(cr)
			k := string(got.ConnectionDetails[contract.KeyPassword])
			if tc.wantKey != "" && k != tc.wantKey {
				t.Errorf("%s\nCreate(...): published a different key than the Secret's", tc.reason)
			}
			if tc.wantKey == "" && (k == key || len(k) < 32 || k[:len(KeyPrefix)] != KeyPrefix) {
				t.Errorf("%s\nCreate(...): want a new %q key of >= 32 characters, got %d characters", tc.reason, KeyPrefix, len(k))
			}
			want := redis.Rules{PasswordHashes: []string{hash(k)}, KeyPatterns: []string{"app:*"}, Commands: defaultCommands}
			if diff := cmp.Diff(want, set); diff != "" {
				t.Errorf("%s\nCreate(...): -want rules, +got rules:\n%s", tc.reason, diff)
			}
			if diff := cmp.Diff(details(user, k, endpoint, "6379"), got.ConnectionDetails); diff != "" {
				t.Errorf("%s\nCreate(...): -want details, +got details:\n%s", tc.reason, diff)
			}
		})
	}
}

func TestUpdate(t *testing.T) {
	type want struct {
		recorded bool
		rotated  bool
		hashes   func(published string) []string
		previous string
		expires  *metav1.Time
		patterns []string
		err      error
	}
	cases := map[string]struct {
		reason string
		cr     *v1alpha1.ApiKey
		err    error
		status error
		want   want
	}{
		"PermissionChange": {
			reason: "A permission change should apply in place and keep the key.",
			cr:     apiKeyFor(withSerial(0, 0), withKeyPatterns("app:narrow:*")),
			want: want{
				hashes:   func(string) []string { return []string{hash(key)} },
				patterns: []string{"app:narrow:*"},
			},
		},
		"Rotation": {
			reason: "A bumped serial should publish a new key and keep the old one valid for the grace period, rounded up to a second.",
			cr: apiKeyFor(withSerial(1, 0), func(ak *v1alpha1.ApiKey) {
				ak.Spec.ForProvider.Rotation.GracePeriod = &metav1.Duration{Duration: 2500 * time.Millisecond}
			}),
			want: want{
				recorded: true,
				rotated:  true,
				hashes:   func(k string) []string { return []string{hash(k), hash(key)} },
				previous: hash(key),
				expires:  &metav1.Time{Time: now.Add(3 * time.Second)},
				patterns: []string{"app:*"},
			},
		},
		"GracePeriodOver": {
			reason: "A previous key past its grace period should be dropped from the user and the status.",
			cr:     apiKeyFor(withSerial(1, 1), withPrevious(hash(oldKey), now.Add(-time.Second))),
			want: want{
				hashes:   func(string) []string { return []string{hash(key)} },
				patterns: []string{"app:*"},
			},
		},
		"SetUserFails": {
			reason: "A failure to update the user should be returned to the reconciler.",
			cr:     apiKeyFor(withSerial(0, 0)),
			err:    errBoom,
			want:   want{err: errBoom},
		},
		"CannotRecordRotation": {
			reason: "A rotation that cannot be recorded in the status should stop before Redis or the Secret see a new key.",
			cr:     apiKeyFor(withSerial(1, 0)),
			status: errBoom,
			want:   want{err: errBoom},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var set redis.Rules
			setCalled, recorded := false, false
			acl := &fakeACL{SetUserFn: func(_ context.Context, _ string, r redis.Rules) error { set, setCalled = r, true; return tc.err }}
			kube := kubeWithSecret(key)
			kube.MockStatusUpdate = func(context.Context, client.Object, ...client.SubResourceUpdateOption) error {
				if setCalled {
					t.Errorf("%s\nUpdate(...): the rotation was recorded after Redis saw the new key", tc.reason)
				}
				recorded = true
				return tc.status
			}
			got, err := newExternal(kube, acl).Update(context.Background(), tc.cr)
			if diff := cmp.Diff(tc.want.err, err, cmpopts.EquateErrors()); diff != "" {
				t.Fatalf("%s\nUpdate(...): -want error, +got error:\n%s", tc.reason, diff)
			}
			if tc.status != nil && setCalled {
				t.Errorf("%s\nUpdate(...): Redis was changed although the rotation could not be recorded", tc.reason)
			}
			if tc.want.err != nil {
				return
			}
			if recorded != tc.want.recorded {
				t.Errorf("%s\nUpdate(...): want status recorded %t, got %t", tc.reason, tc.want.recorded, recorded)
			}
			k := string(got.ConnectionDetails[contract.KeyPassword])
			if rotated := k != key; rotated != tc.want.rotated {
				t.Errorf("%s\nUpdate(...): want rotated %t, got %t", tc.reason, tc.want.rotated, rotated)
			}
			want := redis.Rules{PasswordHashes: tc.want.hashes(k), KeyPatterns: tc.want.patterns, Commands: defaultCommands}
			if diff := cmp.Diff(want, set); diff != "" {
				t.Errorf("%s\nUpdate(...): -want rules, +got rules:\n%s", tc.reason, diff)
			}
			at := tc.cr.Status.AtProvider
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
	cases := map[string]struct {
		reason  string
		err     error
		deleted bool
		wantErr error
	}{
		"DeletesUserAndSecret": {
			reason:  "Deletion should delete the ACL user and the connection Secret.",
			deleted: true,
		},
		"DeleteUserFails": {
			reason:  "A failure to delete the user should be returned, and the Secret kept.",
			err:     errBoom,
			wantErr: errBoom,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var deletedUser string
			var secretDeleted bool
			kube := kubeWithSecret(key)
			kube.MockDelete = test.NewMockDeleteFn(nil, func(client.Object) error { secretDeleted = true; return nil })
			acl := &fakeACL{DeleteUserFn: func(_ context.Context, n string) error { deletedUser = n; return tc.err }}
			_, err := newExternal(kube, acl).Delete(context.Background(), apiKeyFor())
			if diff := cmp.Diff(tc.wantErr, err, cmpopts.EquateErrors()); diff != "" {
				t.Errorf("%s\nDelete(...): -want error, +got error:\n%s", tc.reason, diff)
			}
			if deletedUser != user {
				t.Errorf("%s\nDelete(...): want user %q deleted, got %q", tc.reason, user, deletedUser)
			}
			if secretDeleted != tc.deleted {
				t.Errorf("%s\nDelete(...): want Secret deleted %t, got %t", tc.reason, tc.deleted, secretDeleted)
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
			if diff := cmp.Diff(tc.setErr, err, cmpopts.EquateErrors()); diff != "" {
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
