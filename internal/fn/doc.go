// Package fn is the redishttp composition function: it turns a tenant's
// RedisHttpInstance (a claim's legacy XR, or a namespaced v2 XR) into the
// StatefulSet, Services, ConfigMap and Secrets that run an authenticated Redis
// in the tenant's namespace.
package fn
