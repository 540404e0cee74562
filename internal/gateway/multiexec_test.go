package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ai-decenter/redishttp/internal/contract"
)

func TestMultiExecAtomic(t *testing.T) {
	e := newEnv(t, withPoolSize(8))
	tok := adminToken()
	var stop atomic.Bool
	var wg sync.WaitGroup
	post := func(body string) (string, error) {
		req, _ := http.NewRequest(http.MethodPost, e.url+"/multi-exec", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		return string(b), err
	}
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				_, _ = post(`[["INCR","a"],["INCR","b"]]`)
			}
		})
	}
	// Readers never see a transaction half applied.
	var failure string
	for i := range 300 {
		body, err := post(`[["MGET","a","b"]]`)
		var got []struct {
			Result []*string `json:"result"`
		}
		if err == nil {
			err = json.Unmarshal([]byte(body), &got)
		}
		if err != nil || len(got) != 1 || len(got[0].Result) != 2 || !cmp.Equal(got[0].Result[0], got[0].Result[1]) {
			failure = fmt.Sprintf("read %d: a and b differ or cannot be read: %s (%v)", i, body, err)
			break
		}
	}
	stop.Store(true)
	wg.Wait()
	if failure != "" {
		t.Fatal(failure)
	}
	if e.get(t, "a") == "" {
		t.Fatal("no transaction ran")
	}
}

func TestNoSecretsInMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, withConfig(Config{Metrics: NewMetrics(reg)}))
	tok := e.user(t, "app", "very-secret-key", "~*", "+@all")
	e.cmd(t, tok, "SET", "k", "v")
	e.cmd(t, contract.Token("app", "wrong-secret"), "GET", "k")
	e.do(t, http.MethodGet, "/get/k?_token="+tok, "", nil)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	for _, mf := range mfs {
		text.WriteString(mf.String())
	}
	// The user name is a label (usermetrics.go): not a secret.
	for _, secret := range []string{tok, "very-secret-key", "wrong-secret"} {
		if strings.Contains(text.String(), secret) {
			t.Errorf("metrics contain %q", secret)
		}
	}
	if n := testutil.ToFloat64(e.srv.cfg.Metrics.requests.WithLabelValues(RouteCommand, "401")); n != 1 {
		t.Errorf("requests_total{route=command,status=401}: want 1, got %v", n)
	}
}
