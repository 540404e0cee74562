package testenv

import (
	"bufio"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// A FakeRedis is a hostile or broken "Redis" a tenant could point the
// provider at: it refuses HELLO (as Redis 5 does, so clients fall back to
// AUTH), answers AUTH with +OK, INFO with an empty bulk string, and every
// other command with Reply, verbatim, or never when Reply is empty.
type FakeRedis struct {
	// Addr is where it listens (host:port on loopback).
	Addr string
	// Conns counts the connections it accepted.
	Conns atomic.Int32
	// Commands counts the commands other than HELLO, AUTH and INFO.
	Commands atomic.Int32
	// Got is closed when the first command other than HELLO, AUTH and INFO
	// arrives.
	Got chan struct{}
}

// StartFakeRedis starts a FakeRedis answering reply; it stops, closing every
// connection, when the test ends.
func StartFakeRedis(t *testing.T, reply string) *FakeRedis {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &FakeRedis{Addr: l.Addr().String(), Got: make(chan struct{})}
	var once sync.Once
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		for _, c := range open {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			f.Conns.Add(1)
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			wg.Go(func() {
				rd := bufio.NewReader(c)
				for {
					name, err := readCommandName(rd)
					if err != nil {
						return
					}
					answer := reply
					switch strings.ToUpper(name) {
					case "HELLO":
						answer = "-ERR unknown command 'HELLO'\r\n"
					case "AUTH":
						answer = "+OK\r\n"
					case "INFO":
						answer = "$0\r\n\r\n"
					default:
						f.Commands.Add(1)
						once.Do(func() { close(f.Got) })
					}
					if _, err := io.WriteString(c, answer); err != nil {
						return
					}
				}
			})
		}
	})
	return f
}

// readCommandName reads one command, an array of bulk strings, and returns
// its first word.
func readCommandName(rd *bufio.Reader) (string, error) {
	line, err := rd.ReadString('\n')
	if err != nil {
		return "", err
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "*")))
	if err != nil {
		return "", err
	}
	var name string
	for i := range n {
		if _, err := rd.ReadString('\n'); err != nil { // $<len>
			return "", err
		}
		arg, err := rd.ReadString('\n')
		if err != nil {
			return "", err
		}
		if i == 0 {
			name = strings.TrimSpace(arg)
		}
	}
	return name, nil
}
