// Package logtest captures log output in tests: a sink that the code under
// test writes from its own goroutines while the test reads it.
//
// Only tests import it, so no binary reaches its functions: `deadcode ./...`
// lists them as unreachable, and that is expected.
package logtest

import (
	"bytes"
	"sync"
)

// Buffer is a bytes.Buffer that is safe for concurrent use: a handler or
// background loop writes log lines while the test reads what has arrived.
// Its zero value is ready to use. It is for tests only.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p; it never returns an error.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
