package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ai-decenter/redishttp/internal/contract"
)

func TestTopUsers(t *testing.T) {
	type step struct {
		after time.Duration // since the start
		user  string
		want  string
	}
	cases := map[string]struct {
		reason  string
		n       int
		steps   []step
		evicted []string
	}{
		"FirstUsersTracked": {
			reason: "The first n users get their own label, the next ones are other.",
			n:      2,
			steps:  []step{{0, "a", "a"}, {0, "b", "b"}, {0, "c", OtherUsers}, {0, "a", "a"}},
		},
		"BusierUserTakesThePlaceOfTheLeastBusy": {
			reason: "At the end of a window, a user outside that made more requests than the least busy user inside takes its place, whose series are deleted.",
			n:      2,
			steps: []step{
				{0, "a", "a"}, {0, "b", "b"}, {0, "a", "a"},
				{0, "c", OtherUsers}, {0, "c", OtherUsers}, {0, "c", OtherUsers},
				{time.Minute, "c", "c"}, {time.Minute, "b", OtherUsers}, {time.Minute, "a", "a"},
			},
			evicted: []string{"b"},
		},
		"QuietUserStaysOut": {
			reason: "A user outside that was not busier than the users inside stays other.",
			n:      1,
			steps:  []step{{0, "a", "a"}, {0, "a", "a"}, {0, "c", OtherUsers}, {time.Minute, "c", OtherUsers}},
		},
		"UserNamedOther": {
			reason: "A user named like the aggregate is the aggregate: it never gets a label of its own.",
			n:      2,
			steps:  []step{{0, OtherUsers, OtherUsers}, {0, "a", "a"}},
		},
		"NoUsers": {
			reason: "With n=0 every user is other.",
			steps:  []step{{0, "a", OtherUsers}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			start := time.Unix(0, 0)
			now := start
			var evicted []string
			top := &topUsers{n: tc.n, window: time.Minute, now: func() time.Time { return now }, evict: func(u string) { evicted = append(evicted, u) }}
			for i, s := range tc.steps {
				now = start.Add(s.after)
				if got := top.label(s.user); got != s.want {
					t.Errorf("%s\nstep %d: label(%q): want %q, got %q", tc.reason, i, s.user, s.want, got)
				}
			}
			if diff := cmp.Diff(tc.evicted, evicted); diff != "" {
				t.Errorf("%s\nevicted: -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}

// TestTopUsersBounded proves a flood of distinct users keeps the tracker's
// memory bounded: at most n tracked and 4n candidates.
func TestTopUsersBounded(t *testing.T) {
	top := &topUsers{n: 3, window: time.Hour, now: time.Now, evict: func(string) {}}
	for i := range 10000 {
		top.label(string(rune('a'+i%26)) + time.Duration(i).String())
	}
	if len(top.tracked) > 3 || len(top.others) > 12 {
		t.Errorf("tracked %d users and %d candidates, want at most 3 and 12", len(top.tracked), len(top.others))
	}
}

// TestUserMetrics proves requests are counted by the ACL user Redis ran them
// as, against a real redis-server, and that a token naming a user Redis does
// not know never becomes a label, even for a request refused before Redis
// saw it.
func TestUserMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, withConfig(Config{Metrics: NewMetrics(reg, WithTopUsers(1))}))
	web := e.user(t, "team-a.web", "web-key", "~app:*", "+@all")
	batch := e.user(t, "team-a.batch", "batch-key", "~*", "+@all")
	e.cmd(t, web, "SET", "app:1", "v")
	e.cmd(t, web, "GET", "app:1")
	if r := e.cmd(t, web, "GET", "other:1"); r.Status != http.StatusBadRequest {
		t.Fatalf("GET outside the key pattern: want 400, got %d %s", r.Status, r.Body)
	}
	e.cmd(t, batch, "GET", "x")
	ghost := contract.Token("ghost", "nokey")
	e.cmd(t, ghost, "GET", "x")
	e.cmd(t, ghost, "MONITOR")

	m := e.srv.cfg.Metrics.users
	got := map[string]float64{}
	for _, u := range []string{"team-a.web", OtherUsers} {
		got["requests "+u] = testutil.ToFloat64(m.requests.WithLabelValues(u))
		got["errors "+u] = testutil.ToFloat64(m.errors.WithLabelValues(u))
	}
	want := map[string]float64{"requests team-a.web": 3, "errors team-a.web": 1, "requests other": 1, "errors other": 0}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("requests and errors by user: -want, +got:\n%s", diff)
	}
	if in := testutil.ToFloat64(m.bytesIn.WithLabelValues("team-a.web")); in == 0 {
		t.Error("request bytes of team-a.web: want some, got 0")
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var users []string
	for _, mf := range mfs {
		if mf.GetName() != "redishttp_gateway_user_requests_total" {
			continue
		}
		for _, s := range mf.GetMetric() {
			for _, l := range s.GetLabel() {
				users = append(users, l.GetValue())
			}
		}
	}
	sort.Strings(users)
	if diff := cmp.Diff([]string{OtherUsers, "team-a.web"}, users); diff != "" {
		t.Errorf("user label values (no ghost, batch aggregated): -want, +got:\n%s", diff)
	}
}

// TestUserMetricsKeepRepliesStreamed: counting a response's bytes for its
// user does not read a streamed response into memory. It did: a GET of
// 8 MiB of NUL bytes (48 MiB of JSON) was encoded whole before its first
// byte was written, its replies' memory given back at once; it must stay
// taken while the client has not read the response.
func TestUserMetricsKeepRepliesStreamed(t *testing.T) {
	e := newEnv(t, withConfig(Config{Metrics: NewMetrics(prometheus.NewRegistry())}))
	const size = 8 << 20
	if err := e.admin.Set(t.Context(), "nul", strings.Repeat("\x00", size), 0).Err(); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := fmt.Fprintf(c, "GET /get/nul HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer %s\r\n\r\n", adminToken()); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK || res.ContentLength != int64(6*size+len(`{"result":""}`)) {
		t.Fatalf("GET of 8 MiB of NUL bytes: want 200 of %d bytes, got %d of %d", 6*size+len(`{"result":""}`), res.StatusCode, res.ContentLength)
	}
	// The response has begun and the client reads no more of it.
	e.rds.mem.mu.Lock()
	held := e.rds.mem.used
	e.rds.mem.mu.Unlock()
	if held < size {
		t.Errorf("memory taken while the response is written: want the replies' (%d bytes at least), got %d", size, held)
	}
	if _, err := io.Copy(io.Discard, res.Body); err != nil {
		t.Fatal(err)
	}
	if out := testutil.ToFloat64(e.srv.cfg.Metrics.users.bytesOut.WithLabelValues(contract.AdminUser)); out != float64(res.ContentLength) {
		t.Errorf("response bytes counted for the user: want %d, got %v", res.ContentLength, out)
	}
}
