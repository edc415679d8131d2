// Package accesslog writes the HTTP access log: one line per request, in
// the layout of log/slog's TextHandler (time, level, msg, then the fields),
// so that it reads as one log with the server's other lines.
//
// Lines are buffered and written at most FlushEvery after they were
// recorded, or as soon as the buffer holds 64 KiB, as nginx's
// "access_log ... buffer= flush=" does: a write(2) per request was the
// largest single cost of a cached upgrade check under load. Close writes
// what is buffered; lines recorded in the last FlushEvery before a crash
// are lost (the audit log, not this one, is the record of changes).
package accesslog

import (
	"io"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// bufferSize is the size at which the buffer is written at once.
const bufferSize = 64 << 10

// Entry is one request.
type Entry struct {
	Time      time.Time // when the request ended
	Method    string
	Route     string // the route pattern, never the raw path (it may hold a token)
	Status    int
	Bytes     int
	Duration  time.Duration
	Client    string
	RequestID string
}

// Log is an access log. Its methods are safe for concurrent use.
type Log struct {
	out   io.Writer
	every time.Duration

	mu     sync.Mutex
	buf    []byte
	err    error // the last write error, reported by Close
	stop   chan struct{}
	done   chan struct{}
	closed bool
}

// New returns a log writing to out. With flushEvery > 0 it buffers lines
// and writes them from a goroutine at that interval (call Close to stop
// it); with 0 every Record writes its line at once.
func New(out io.Writer, flushEvery time.Duration) *Log {
	l := &Log{out: out, every: flushEvery}
	if flushEvery > 0 {
		l.buf = make([]byte, 0, bufferSize)
		l.stop, l.done = make(chan struct{}), make(chan struct{})
		go l.flusher()
	}
	return l
}

// Record appends e's line. After Close, lines are written at once.
func (l *Log) Record(e Entry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = appendEntry(l.buf, e)
	if l.every <= 0 || l.closed || len(l.buf) >= bufferSize {
		l.writeLocked()
	}
}

// Flush writes what is buffered.
func (l *Log) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writeLocked()
	return l.err
}

// Close stops the flusher and writes what is buffered. It returns the
// last write error, if any.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return l.err
	}
	l.closed = true
	l.mu.Unlock()
	if l.stop != nil {
		close(l.stop)
		<-l.done
	}
	return l.Flush()
}

func (l *Log) flusher() {
	defer close(l.done)
	t := time.NewTicker(l.every)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.Flush()
		}
	}
}

// writeLocked writes the buffer in one Write; l.mu must be held.
func (l *Log) writeLocked() {
	if len(l.buf) == 0 {
		return
	}
	if _, err := l.out.Write(l.buf); err != nil {
		l.err = err
	}
	l.buf = l.buf[:0]
}

// appendEntry appends e as slog's TextHandler would log
// Info("request", "method", ..., "route", ..., "status", ..., "bytes", ...,
// "ms", ..., "client", ..., "request_id", ...).
func appendEntry(b []byte, e Entry) []byte {
	b = append(b, "time="...)
	b = e.Time.AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, " level=INFO msg=request method="...)
	b = appendValue(b, e.Method)
	b = append(b, " route="...)
	b = appendValue(b, e.Route)
	b = append(b, " status="...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, " bytes="...)
	b = strconv.AppendInt(b, int64(e.Bytes), 10)
	b = append(b, " ms="...)
	b = strconv.AppendInt(b, e.Duration.Milliseconds(), 10)
	b = append(b, " client="...)
	b = appendValue(b, e.Client)
	b = append(b, " request_id="...)
	b = appendValue(b, e.RequestID)
	return append(b, '\n')
}

// appendValue appends s, quoted where slog's TextHandler quotes it: when
// it is empty or holds a space, '=', '"', a control or a non-ASCII rune.
func appendValue(b []byte, s string) []byte {
	if needsQuoting(s) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}

func needsQuoting(s string) bool {
	if s == "" {
		return true
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c == '=' || c == '"' || c >= utf8.RuneSelf || c == 0x7f {
			return true
		}
	}
	return false
}
