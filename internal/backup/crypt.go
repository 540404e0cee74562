package backup

import (
	"errors"
	"fmt"
	"strings"

	"filippo.io/age"
)

// ParseKey parses an encryption key: an age X25519 identity
// (AGE-SECRET-KEY-1..., as age-keygen writes it; comment lines are ignored).
// Errors never quote the key.
func ParseKey(s string) (*age.X25519Identity, error) {
	var lines []string
	for l := range strings.SplitSeq(s, "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 {
		return nil, &Error{Reason: ReasonInvalidConfig, Err: errors.New("the encryption key must be one age identity (AGE-SECRET-KEY-1..., from age-keygen)")}
	}
	id, err := age.ParseX25519Identity(lines[0])
	if err != nil {
		return nil, &Error{Reason: ReasonInvalidConfig, Err: fmt.Errorf("the encryption key is not an age identity (AGE-SECRET-KEY-1..., from age-keygen)")}
	}
	return id, nil
}
