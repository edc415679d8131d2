package netlimit

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"time"
)

// IdleDeadlines returns h with progress deadlines on each request's body and
// response: every read of the body must bring bytes within readIdle, and
// every write of the response must go out within writeIdle. An upload or a
// download goes on as long as it makes progress; one that stalls gets an
// error (the body read fails with an error that matches
// os.ErrDeadlineExceeded) and its connection is closed. A zero duration
// turns that deadline off.
//
// The deadlines are set through http.ResponseController on the connection,
// so they bound the HTTP/1 connection as a whole: h must not run reads or
// writes of one request concurrently with a long wait of its own.
//
// A request whose body h did not read to its end is answered with
// "Connection: close": the server then does not read the rest of the body to
// reuse the connection (a client trickling a body nobody reads holds nothing
// after the answer), and that last read is bounded by readIdle too.
func IdleDeadlines(h http.Handler, readIdle, writeIdle time.Duration) http.Handler {
	if readIdle <= 0 && writeIdle <= 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		var body *idleBody
		if readIdle > 0 && r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
			body = &idleBody{ReadCloser: r.Body, rc: rc, idle: readIdle}
			// A shallow copy: the server keeps its own *Request with the
			// original body, which it inspects after the handler (100
			// Continue, the early close of an unread body).
			r = r.WithContext(r.Context())
			r.Body = body
		}
		iw := &idleWriter{ResponseWriter: w, rc: rc, idle: writeIdle, body: body}
		h.ServeHTTP(iw, r)
		iw.beforeHeader()
		if body != nil && !body.eof {
			// The server may read what is left of the body after the
			// answer; bound that read.
			rc.SetReadDeadline(time.Now().Add(readIdle))
		}
		// The server flushes what is buffered after the handler returns,
		// then clears the write deadline itself: that flush is bounded by
		// the last extension, or a new one.
		iw.extend()
	})
}

// idleBody extends the connection's read deadline before each read.
type idleBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	idle    time.Duration
	eof     bool
	lastSet time.Time
}

func (b *idleBody) Read(p []byte) (int, error) {
	if b.eof {
		return 0, io.EOF
	}
	if now := time.Now(); now.Sub(b.lastSet) >= b.idle/2 {
		// Extended at most every idle/2 (a deadline costs the runtime a
		// timer update): a stalled read is cut after idle/2 to idle.
		b.rc.SetReadDeadline(now.Add(b.idle))
		b.lastSet = now
	}
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) {
		b.eof = true
		// At the end of the body the server starts its own background read
		// of the connection (to notice a client going away); a deadline
		// left on it would end the connection's context.
		b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// idleWriter extends the connection's write deadline before each write.
type idleWriter struct {
	http.ResponseWriter
	rc          *http.ResponseController
	idle        time.Duration
	body        *idleBody
	wroteHeader bool
	lastSet     time.Time
}

// beforeHeader runs once, before the response header can go out.
func (w *idleWriter) beforeHeader() {
	if w.wroteHeader {
		return
	}
	w.wroteHeader = true
	if w.body != nil && !w.body.eof {
		w.Header().Set("Connection", "close")
	}
}

// extend moves the write deadline to idle from now, at most every idle/2
// (a deadline costs the runtime a timer update, and one answer writes its
// header and body within microseconds): a stalled write is cut after
// idle/2 to idle.
func (w *idleWriter) extend() {
	if w.idle <= 0 {
		return
	}
	if now := time.Now(); now.Sub(w.lastSet) >= w.idle/2 {
		w.rc.SetWriteDeadline(now.Add(w.idle))
		w.lastSet = now
	}
}

func (w *idleWriter) WriteHeader(code int) {
	if code >= 200 || code == http.StatusSwitchingProtocols {
		w.beforeHeader()
	}
	w.extend()
	w.ResponseWriter.WriteHeader(code)
}

func (w *idleWriter) Write(p []byte) (int, error) {
	w.beforeHeader()
	w.extend()
	return w.ResponseWriter.Write(p)
}

func (w *idleWriter) WriteString(s string) (int, error) {
	w.beforeHeader()
	w.extend()
	return io.WriteString(w.ResponseWriter, s)
}

// Flush and FlushError send what is buffered, under the write deadline.
func (w *idleWriter) Flush() { w.FlushError() }

func (w *idleWriter) FlushError() error {
	w.beforeHeader()
	w.extend()
	return w.rc.Flush()
}

// Hijack hands the connection over without deadlines: the new owner sets
// its own.
func (w *idleWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := w.rc.Hijack()
	if err == nil {
		c.SetDeadline(time.Time{})
	}
	return c, rw, err
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *idleWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
