package apikey

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/ai-decenter/redishttp/apis/v1alpha1"
	"github.com/ai-decenter/redishttp/internal/testenv"

	xpv2 "github.com/crossplane/crossplane/apis/v2/core/v2"
)

func TestNamespaceTurns(t *testing.T) {
	req := func(ns, name string) reconcile.Request {
		return reconcile.Request{NamespacedName: client.ObjectKey{Namespace: ns, Name: name}}
	}
	cases := map[string]struct {
		reason string
		push   []reconcile.Request
		// pops is how many to pop before the rest are pushed.
		pops int
		more []reconcile.Request
		want []reconcile.Request
	}{
		"OneNamespaceInOrder": {
			reason: "Requests of one namespace come out first in, first out.",
			push:   []reconcile.Request{req("a", "1"), req("a", "2"), req("a", "3")},
			want:   []reconcile.Request{req("a", "1"), req("a", "2"), req("a", "3")},
		},
		"NamespacesTakeTurns": {
			reason: "A namespace with one request queued behind another's three is served second, not fourth.",
			push:   []reconcile.Request{req("a", "1"), req("a", "2"), req("a", "3"), req("b", "1")},
			want:   []reconcile.Request{req("a", "1"), req("b", "1"), req("a", "2"), req("a", "3")},
		},
		"ANewNamespaceWaitsOneRound": {
			reason: "A namespace that queues while two others take turns joins the end of the round: it is served after the namespaces still to have their turn in it, not after their queues.",
			push:   []reconcile.Request{req("a", "1"), req("a", "2"), req("a", "3"), req("b", "1"), req("b", "2")},
			pops:   1,
			more:   []reconcile.Request{req("c", "1")},
			want:   []reconcile.Request{req("a", "1"), req("b", "1"), req("c", "1"), req("a", "2"), req("b", "2"), req("a", "3")},
		},
		"EmptiedNamespaceLeavesTheRing": {
			reason: "A namespace whose last request was served does not hold a turn, and comes back at the end of the ring.",
			push:   []reconcile.Request{req("a", "1"), req("b", "1"), req("b", "2")},
			pops:   2,
			more:   []reconcile.Request{req("a", "2")},
			want:   []reconcile.Request{req("a", "1"), req("b", "1"), req("b", "2"), req("a", "2")},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			q := &namespaceTurns{}
			for _, r := range tc.push {
				q.Push(r)
			}
			var got []reconcile.Request
			for range tc.pops {
				got = append(got, q.Pop())
			}
			for _, r := range tc.more {
				q.Push(r)
			}
			for q.Len() > 0 {
				got = append(got, q.Pop())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("\n%s\nPop order: -want, +got:\n%s", tc.reason, diff)
			}
		})
	}
}

// TestBurstDoesNotDelayOtherNamespaces gives the provider, at 10 reconciles a
// second, 100 new ApiKeys of one tenant and then one of another tenant at
// once (the provider starts and finds them all, as after a restart or an
// outage): the other tenant's key must not wait for the burst. Before, the
// queue served requests in the order they came and the global rate limiter
// gave each a turn in one shared line: the other key was Ready after about
// every key of the burst.
func TestBurstDoesNotDelayOtherNamespaces(t *testing.T) {
	const burst = 100
	h := startHarness(t, harnessOptions{pollInterval: 10 * time.Minute, rate: 10, exactRate: true})
	ctx := context.Background()
	// The informer lists namespaces in order: "a-burst" first, so that a
	// first come, first served queue serves the whole burst first.
	h.tenant(t, "a-burst", "cache")
	h.tenant(t, "z-other", "cache")

	h.stop()
	createKeys(t, h, "a-burst", "k-", burst, nil, nil)
	h.create(t, apiKey("z-other", "web", v1alpha1.ApiKeyParameters{InstanceRef: &v1alpha1.LocalReference{Name: "cache"}}))

	// The order in which keys turn Ready, as the API server stored them.
	wc, err := client.NewWithWatch(h.cp.Config, client.Options{Scheme: h.scheme})
	if err != nil {
		t.Fatal(err)
	}
	w, err := wc.Watch(ctx, &v1alpha1.ApiKeyList{})
	if err != nil {
		t.Fatalf("cannot watch ApiKeys: %v", err)
	}
	defer w.Stop()
	h.stop = h.startProvider(t)

	var order []string
	isReady := map[string]bool{}
	deadline := time.After(5 * time.Minute)
	for len(order) < burst+1 {
		select {
		case e, ok := <-w.ResultChan():
			if !ok {
				t.Fatalf("the watch ended after %d of %d keys turned Ready", len(order), burst+1)
			}
			ak, isKey := e.Object.(*v1alpha1.ApiKey)
			if !isKey || e.Type == watch.Deleted {
				continue
			}
			key := ak.GetNamespace() + "/" + ak.GetName()
			if !isReady[key] && ak.GetCondition(xpv2.TypeReady).Status == corev1.ConditionTrue {
				isReady[key] = true
				order = append(order, key)
			}
		case <-deadline:
			t.Fatalf("%d of %d keys turned Ready in 5 minutes", len(order), burst+1)
		}
	}
	// The other tenant's key is the second the provider takes up: at most
	// the keys of the burst reconciled at the same time (ten workers) can
	// turn Ready first, not most of the burst.
	pos := -1
	for i, k := range order {
		if k == "z-other/web" {
			pos = i
		}
	}
	if pos >= burst/2 {
		t.Errorf("another namespace's ApiKey turned Ready after %d of the %d keys of a burst in another namespace: want fewer than %d", pos, burst, burst/2)
	}
	testenv.Eventually(t, 2*time.Minute, "the other tenant's key works", func() error {
		s := h.secret(t, "z-other", "web-redis")
		if err := h.authenticates(s["username"], s["password"]); err != nil {
			return fmt.Errorf("cannot authenticate: %w", err)
		}
		return nil
	})
}
