package fn

import (
	"crypto/sha256"
	"time"

	"google.golang.org/protobuf/proto"
	"k8s.io/utils/lru"

	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
)

// Bounds of the response cache: the composite resources it remembers (one
// response each, the newest), and the largest request whose response it
// keeps. A response grows with the spec, which the schema bounds; measuring
// the response itself (proto.Size) would cost a tenth of composing it.
const (
	cachedComposites  = 1024
	maxCachedReqBytes = 256 << 10
)

// A responseCache remembers, per composite resource, the last request the
// function answered and its response. Crossplane calls the function again
// and again with the same request while nothing changes (every poll, every
// realtime event of an unrelated object), and the answer to a request is a
// function of the request alone, so a repeated request gets the same response
// without composing it again: composing is most of the function's CPU
// (docs/testing.md, "The composition function: figures").
//
// A response is shared between the calls it answers and must not be modified
// (the gRPC server only marshals it). One entry per composite resource: a
// tenant who changes their spec replaces their own entry, and cannot grow
// the cache beyond cachedComposites entries.
type responseCache struct {
	lru *lru.Cache
}

type cachedResponse struct {
	request [sha256.Size]byte
	rsp     *fnv1.RunFunctionResponse
	// until is when rsp stops being the answer to request (a backup
	// schedule is missed by time passing alone); zero: never.
	until time.Time
}

func newResponseCache() *responseCache {
	return &responseCache{lru: lru.New(cachedComposites)}
}

// key returns the cache key of req's composite resource and the digest of
// req. ok is false for a request that cannot be cached.
func (c *responseCache) key(req *fnv1.RunFunctionRequest) (string, [sha256.Size]byte, bool) {
	xr := req.GetObserved().GetComposite().GetResource().GetFields()
	md := xr["metadata"].GetStructValue().GetFields()
	name := md["name"].GetStringValue()
	if name == "" {
		return "", [sha256.Size]byte{}, false
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(req)
	if err != nil || len(b) > maxCachedReqBytes {
		return "", [sha256.Size]byte{}, false
	}
	k := xr["apiVersion"].GetStringValue() + "\x00" + xr["kind"].GetStringValue() + "\x00" + md["namespace"].GetStringValue() + "\x00" + name
	return k, sha256.Sum256(b), true
}

// get returns the response to the request with digest sum, if it is the last
// one the composite resource key asked and still true at now.
func (c *responseCache) get(key string, sum [sha256.Size]byte, now time.Time) *fnv1.RunFunctionResponse {
	v, ok := c.lru.Get(key)
	if !ok {
		return nil
	}
	if e := v.(cachedResponse); e.request == sum && (e.until.IsZero() || now.Before(e.until)) { //nolint:forcetypeassert // Only add stores values, always cachedResponse.
		return e.rsp
	}
	return nil
}

// add remembers rsp as the response to the request with digest sum, until
// (zero: for as long as the request stays the same).
func (c *responseCache) add(key string, sum [sha256.Size]byte, rsp *fnv1.RunFunctionResponse, until time.Time) {
	c.lru.Add(key, cachedResponse{request: sum, rsp: rsp, until: until})
}
