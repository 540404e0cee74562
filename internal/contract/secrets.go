package contract

// Keys of a connection Secret: the instance's (composed by the function, or
// the claim's written by Crossplane) and every ApiKey's (written by the
// provider). Apps read these names.
const (
	KeyEndpoint = "endpoint"
	KeyPort     = "port"
	KeyUsername = "username"
	KeyPassword = "password"
	KeyURL      = "url"

	// KeyRESTURL and KeyRESTToken are the names @upstash/redis's
	// Redis.fromEnv() reads, so envFrom of the Secret is all an app needs.
	KeyRESTURL   = "UPSTASH_REDIS_REST_URL"
	KeyRESTToken = "UPSTASH_REDIS_REST_TOKEN" //nolint:gosec // G101: the name of a Secret key, not a credential.
	// KeyRESTURLInCluster is the gateway's in-cluster URL, for in-cluster
	// apps when KeyRESTURL is the Ingress's.
	KeyRESTURLInCluster = "REDISHTTP_REST_URL_IN_CLUSTER"
)

// Keys of the instance's connection Secret when it has replicas: where
// Sentinel-aware clients ask for the master (host:port of
// SentinelServiceName) and under which name (SentinelMasterName).
const (
	KeySentinelAddress    = "sentinelAddress"
	KeySentinelMasterName = "sentinelMasterName"
)
