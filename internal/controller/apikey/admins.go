package apikey

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// admins remembers how each instance ApiKey's Redis was last administered,
// so that an ApiKey deleted with its namespace can still delete its user
// once the instance's auth Secret is gone, while the instance's Redis is
// still going. Entries go when the ApiKey's user is deleted; what a
// restarted provider never saw is not known, and need not be: the Redis goes
// anyway.
type admins struct {
	mu sync.Mutex
	m  map[types.UID]admin
}

func (r *admins) remember(uid types.UID, a admin) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[types.UID]admin{}
	}
	r.m[uid] = a
}

func (r *admins) recall(uid types.UID) (admin, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.m[uid]
	return a, ok
}

func (r *admins) forget(uid types.UID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m, uid)
}
