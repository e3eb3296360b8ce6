package testenv

import (
	"bytes"
	"sync"
)

// Buffer collects the output of a process or a logger while the test reads
// it: the writer (exec's copying goroutine, a logger) runs concurrently with
// the test's reads, which bytes.Buffer alone does not allow.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// Bytes returns a copy of what was written so far.
func (l *Buffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]byte(nil), l.b.Bytes()...)
}

func (l *Buffer) String() string { return string(l.Bytes()) }
