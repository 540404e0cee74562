package testenv

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// Eventually calls fn until it returns nil, and fails t with what and fn's
// last error when timeout passes first. The timeout is a bound for failing a
// stuck test, never a performance assertion. The polling is
// wait.PollUntilContextTimeout's; what this adds is fn's last error in the
// failure, which says why the test was stuck.
func Eventually(t testing.TB, timeout time.Duration, what string, fn func() error) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		last = fn()
		return last == nil, nil
	})
	if err != nil {
		t.Fatalf("%s: not within %s: %v", what, timeout, last)
	}
}
