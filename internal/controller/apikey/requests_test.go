package apikey

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
)

// requests counts the provider's requests to the API server, by verb and
// resource ("PUT apikeys/status", "GET secrets"), so tests can assert how
// many writes a reconcile costs.
type requests struct {
	mu sync.Mutex
	n  map[string]int
	// paths counts reads by path: how often one object was read.
	paths map[string]int
}

func (r *requests) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripperFn(func(req *http.Request) (*http.Response, error) {
		if req.URL.Query().Get("watch") != "true" {
			r.mu.Lock()
			if r.n == nil {
				r.n = map[string]int{}
			}
			r.n[req.Method+" "+resourceOf(req.URL.Path)]++
			if req.Method == http.MethodGet {
				if r.paths == nil {
					r.paths = map[string]int{}
				}
				r.paths[req.URL.Path]++
			}
			r.mu.Unlock()
		}
		return rt.RoundTrip(req)
	})
}

// all returns how many requests were made.
func (r *requests) all() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return total(r.n)
}

// reset forgets what was counted.
func (r *requests) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n, r.paths = nil, nil
}

// reads returns how often the object at path was read.
func (r *requests) reads(path string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.paths[path]
}

// writes returns the requests that change something, by verb and resource.
func (r *requests) writes() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := map[string]int{}
	for k, v := range r.n {
		if !strings.HasPrefix(k, "GET ") {
			w[k] = v
		}
	}
	return w
}

// keyWrites returns the writes of w made for ApiKeys: to ApiKeys, their
// status, Secrets, provider config usages and events. (Provider configs'
// own controller writes their status when it starts: once per config,
// however many keys there are.)
func keyWrites(w map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range w {
		_, res, _ := strings.Cut(k, " ")
		switch res {
		case "apikeys", "apikeys/status", "secrets", "providerconfigusages", "events":
			out[k] = v
		}
	}
	return out
}

// count returns how many requests of one verb and resource were made.
func (r *requests) count(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[key]
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// resourceOf returns the resource (and subresource) of an API path:
// /apis/g/v/namespaces/ns/apikeys/name/status is "apikeys/status".
func resourceOf(path string) string {
	p := strings.Split(strings.Trim(path, "/"), "/")
	// Drop /api/v1 or /apis/group/version.
	switch {
	case len(p) > 0 && p[0] == "api":
		p = p[min(2, len(p)):]
	case len(p) > 0 && p[0] == "apis":
		p = p[min(3, len(p)):]
	}
	if len(p) >= 2 && p[0] == "namespaces" {
		if len(p) == 2 {
			return "namespaces"
		}
		p = p[2:]
	}
	switch len(p) {
	case 0:
		return ""
	case 1, 2:
		return p[0]
	default:
		return p[0] + "/" + p[2]
	}
}

type roundTripperFn func(*http.Request) (*http.Response, error)

func (fn roundTripperFn) RoundTrip(r *http.Request) (*http.Response, error) { return fn(r) }

// perKey returns every request made, by verb and resource, divided by n:
// what the provider asked of the API server for each of n keys.
func (r *requests) perKey(n int) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	keys := slices.Sorted(maps.Keys(r.n))
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s %.2f; ", k, float64(r.n[k])/float64(n))
	}
	return strings.TrimSuffix(b.String(), "; ")
}
