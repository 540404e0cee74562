package fn

import (
	"net/url"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ai-decenter/redishttp/internal/contract"
)

// configMap holds redis.conf, which has no secret in it.
func configMap(in *instance, conf string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: contract.ConfigMapName(in.Name), Namespace: in.Namespace, Labels: labels(in)},
		Data:       map[string]string{confKey: conf},
	}
}

// authSecret holds the instance's password: the key Redis's probes read, and
// the auth.conf redis.conf includes (auth, stamped).
func authSecret(in *instance, password, auth string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: contract.AuthSecretName(in.Name), Namespace: in.Namespace, Labels: labels(in)},
		Type:       corev1.SecretTypeOpaque,
		Data: map[string][]byte{
			contract.AuthPasswordKey: []byte(password),
			contract.AuthFileKey:     []byte(auth),
		},
	}
}

// connectionDetails are what apps need to connect. In claim mode they are
// returned to Crossplane, which writes them to the claim's connection Secret;
// in namespaced mode they are the data of a composed Secret.
func connectionDetails(host, password string) map[string][]byte {
	port := strconv.Itoa(contract.RedisPort)
	u := url.URL{Scheme: "redis", User: url.UserPassword(contract.AdminUser, password), Host: host + ":" + port, Path: "/0"}
	return map[string][]byte{
		contract.KeyEndpoint: []byte(host),
		contract.KeyPort:     []byte(port),
		contract.KeyUsername: []byte(contract.AdminUser),
		contract.KeyPassword: []byte(password),
		contract.KeyURL:      []byte(u.String()),
	}
}

// connectionSecret is the tenant's connection Secret in namespaced mode, where
// v2 XRs have no connection secrets of their own.
func connectionSecret(in *instance, name string, details map[string][]byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: in.Namespace, Labels: labels(in)},
		Type:       corev1.SecretTypeOpaque,
		Data:       details,
	}
}
