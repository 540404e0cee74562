package testenv

import (
	"testing"
	"time"
)

// Eventually calls fn until it returns nil, and fails t with what and fn's
// last error when timeout passes first. The timeout is a bound for failing a
// stuck test, never a performance assertion.
func Eventually(t testing.TB, timeout time.Duration, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
