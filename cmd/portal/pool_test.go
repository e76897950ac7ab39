package main

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/2i2c-org/credential-portal/internal/store"
)

// TestPoolGivesUpOnASilentDatabase: a database host that takes the
// connection and never answers (a partition, a node gone) costs a page two
// seconds, not the kernel's two minutes, and the failure reads as the
// database being unreachable (a 503). A connect_timeout in the URL wins.
func TestPoolGivesUpOnASilentDatabase(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 16)
	t.Cleanup(func() {
		ln.Close()
		for len(accepted) > 0 {
			(<-accepted).Close()
		}
	})
	go func() { // accept and say nothing
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			select {
			case accepted <- c:
			default:
				c.Close()
			}
		}
	}()
	base := "postgres://portal@" + ln.Addr().String() + "/portal?sslmode=disable"
	for _, tt := range []struct {
		name, url string
		want      time.Duration
	}{
		{"default", base, defaultConnectTimeout},
		{"connect_timeout in the URL", base + "&connect_timeout=1", time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pool, err := openPool(context.Background(), tt.url)
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			if got := pool.Config().ConnConfig.ConnectTimeout; got != tt.want {
				t.Errorf("ConnectTimeout %s, want %s", got, tt.want)
			}
			// The test's own bound: without a connect timeout the ping waits
			// for as long as the listener stays silent.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			err = pool.Ping(ctx)
			took := time.Since(start)
			if err == nil || ctx.Err() != nil || took > tt.want+time.Second {
				t.Fatalf("ping of a silent database: %v after %s, want a failure after about %s", err, took, tt.want)
			}
			if !store.Unreachable(err) {
				t.Errorf("the failure %q is not seen as the database being unreachable", err)
			}
			t.Logf("a silent database is given up after %s", took.Round(time.Millisecond))
		})
	}
}
