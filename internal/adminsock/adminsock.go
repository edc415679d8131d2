// Package adminsock is the portal's local administration door: a unix socket
// (by default portal.sock in the data directory) on which a running server
// does the one thing an operator on the same machine needs while the server
// holds the store: create an API token, for `portal token create`. A
// container or a service manager can thus get its first admin token without
// stopping the server, and no secret is written to disk: the token crosses
// the socket once, to the command that prints it.
//
// # Who may use it
//
// The caller is the local operator. The socket file has mode 0600, so only
// the server's user (and root) can open it, and every request is checked
// again against the peer's credentials as the kernel recorded them at
// connect (SO_PEERCRED): a peer whose uid is neither the server's nor root's
// gets 403 before its request is read. Changes are audited with actor kind
// "cli" (audit.KindCLI) and the client "unix uid=U pid=P".
//
// # What it answers
//
// POST /v1/tokens, with the body and the answer of the HTTP API's POST
// /v1/tokens ({name, role, products?, expires_at?} -> 201 {id, token, name,
// role, products, created_at, expires_at?}; refusals in the API's error
// envelope), for `portal token create`; and, when the server gives
// WithBackup, GET /v1/admin/backup, which streams a backup of the whole
// store (the format of package store/backup, as the API's route of the
// same path) for `portal backup`. Any other path is 404 and any other
// method 405: nothing else of the portal is reachable through the socket.
//
// The socket needs peer credentials, which this package reads on Linux
// only; elsewhere Listen returns an error wrapping errors.ErrUnsupported.
package adminsock

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/server"
	"github.com/portaldist/portal/tokens"
)

// TokensPath and BackupPath are the paths the socket answers.
const (
	TokensPath = "/v1/tokens"
	BackupPath = "/v1/admin/backup"
)

// backupIdle is how long a backup's answer may wait for the peer to read
// before the connection is cut (the socket's write timeout would cut a
// large backup).
const backupIdle = time.Minute

// Option configures Listen.
type Option func(*Server)

// WithBackup makes the socket answer GET BackupPath by calling write with
// the response body; ctx carries the actor (kind cli) and the peer as the
// request's client. write must audit the backup (backup.WriteAudited).
func WithBackup(write func(ctx context.Context, w io.Writer) error) Option {
	return func(s *Server) { s.backup = write }
}

// MaxPath is the longest socket path, in bytes, that a unix socket address
// holds (sun_path less its terminating NUL on Linux; the BSDs allow less).
const MaxPath = 107

// Bounds of what a peer can make the server hold.
const (
	maxConns = 4        // connections open at once; more wait in the backlog
	maxBody  = 16 << 10 // a token request is a few hundred bytes
)

// TokenRequest is the body of POST /v1/tokens.
type TokenRequest struct {
	Name     string     `json:"name,omitempty"`
	Role     string     `json:"role"`
	Products []string   `json:"products,omitempty"`
	Expires  *time.Time `json:"expires_at,omitempty"`
}

// CreatedToken is the answer to POST /v1/tokens: the token and, once, its
// secret.
type CreatedToken struct {
	ID        string     `json:"id"`
	Token     string     `json:"token"`
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	Products  []string   `json:"products,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// Server is a listening admin socket. Listen starts it; Close stops it and
// removes the socket file.
type Server struct {
	path   string
	tokens *tokens.Service
	log    *slog.Logger
	uid    uint32      // the server's user; with root, the peers allowed
	file   os.FileInfo // the socket file as created: Close removes only it
	http   *http.Server
	served chan error
	backup func(ctx context.Context, w io.Writer) error

	closeOnce sync.Once
	closeErr  error
}

// Listen creates the socket at path and serves it until Close. The parent
// directory is created (mode 0700) when missing. A socket file left at path
// by a server that was killed is replaced; a live one (another server
// answers on it) or a file that is not a socket is an error, as is a path
// longer than MaxPath.
func Listen(path string, ts *tokens.Service, log *slog.Logger, opts ...Option) (*Server, error) {
	if !supported {
		return nil, fmt.Errorf("adminsock: %s: the socket needs peer credentials, which this system does not offer: %w", path, errors.ErrUnsupported)
	}
	if len(path) > MaxPath {
		return nil, fmt.Errorf("adminsock: %s is %d bytes, longer than the %d a unix socket path may have", path, len(path), MaxPath)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("adminsock: %w", err)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("adminsock: %w", err)
	}
	// Close removes the file itself, and only when it is still this one.
	ln.SetUnlinkOnClose(false)
	// Until this chmod the file has the umask's mode; a peer that connects
	// meanwhile is still held to the uid check of every request.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		os.Remove(path)
		return nil, fmt.Errorf("adminsock: %w", err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("adminsock: %w", err)
	}
	s := &Server{
		path: path, tokens: ts, log: log, uid: uint32(os.Getuid()), file: fi,
		served: make(chan error, 1),
	}
	for _, o := range opts {
		o(s)
	}
	s.http = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 10 * time.Second, IdleTimeout: 30 * time.Second,
		MaxHeaderBytes: 16 << 10,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if lc, ok := c.(*limitConn); ok {
				return context.WithValue(ctx, credKey{}, lc.cred)
			}
			return ctx
		},
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ll := &limitListener{UnixListener: ln, sem: make(chan struct{}, maxConns), done: make(chan struct{})}
	go func() { s.served <- s.http.Serve(ll) }()
	return s, nil
}

// removeStale clears path for a new socket: nothing there is fine, a socket
// nobody answers on is removed, anything else is an error.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("adminsock: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("adminsock: %s exists and is not a socket; move it away or choose another admin.socket", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("adminsock: %s: another process is listening on this socket (is another portal serving?)", path)
	}
	// No one answers: the socket of a server that was killed.
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("adminsock: remove stale socket: %w", err)
	}
	return nil
}

// Path returns the socket's path.
func (s *Server) Path() string { return s.path }

// Close stops accepting connections, waits for requests in flight until
// ctx ends (then cuts them), and removes the socket file unless another
// file has taken its place. It is idempotent.
func (s *Server) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		var errs []error
		if err := s.http.Shutdown(ctx); err != nil {
			s.http.Close()
			errs = append(errs, fmt.Errorf("adminsock: shutdown: %w", err))
		}
		if err := <-s.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, fmt.Errorf("adminsock: serve: %w", err))
		}
		if fi, err := os.Lstat(s.path); err == nil && os.SameFile(fi, s.file) {
			if err := os.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("adminsock: %w", err))
			}
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// cred is who is at the other end of a connection.
type cred struct {
	uid uint32
	pid int32
	err error // why uid and pid could not be read
}

type credKey struct{}

// allowed reports whether a peer running as uid may use a socket served as
// self: the same user, or root.
func allowed(uid, self uint32) bool { return uid == self || uid == 0 }

// ServeHTTP is the whole door: peer check, then POST /v1/tokens.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, ok := r.Context().Value(credKey{}).(cred)
	switch {
	case !ok || c.err != nil:
		s.log.Warn("admin socket: refused a peer whose credentials cannot be read", "err", c.err)
		writeError(w, portal.Errorf(portal.EForbidden, "the server cannot tell who is connecting"))
		return
	case !allowed(c.uid, s.uid):
		s.log.Warn("admin socket: refused a peer of another user", "peer_uid", c.uid, "peer_pid", c.pid)
		writeError(w, portal.Errorf(portal.EForbidden, "uid %d is neither the server's user (uid %d) nor root", c.uid, s.uid))
		return
	}
	if r.URL.Path == BackupPath && s.backup != nil {
		s.serveBackup(w, r, c)
		return
	}
	if r.URL.Path != TokensPath {
		writeError(w, portal.Errorf(portal.ENotFound, "the admin socket answers only POST %s", TokensPath))
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, errorBody("method_not_allowed", "the admin socket answers only POST "+TokensPath))
		return
	}
	var in TokenRequest
	if err := decode(w, r, &in); err != nil {
		writeError(w, err)
		return
	}
	ctx, reqID := auditContext(r, c)
	nt := tokens.NewToken{Name: in.Name, Role: in.Role, Products: in.Products}
	if in.Expires != nil {
		nt.ExpiresAt = *in.Expires
	}
	t, raw, err := s.tokens.CreateWith(ctx, nt)
	if err != nil {
		if portal.ErrorCode(err) == portal.EInternal {
			s.log.Error("admin socket: create token", "request_id", reqID, "err", err)
		}
		writeError(w, err)
		return
	}
	s.log.Info("admin socket: token created", "id", t.ID, "name", t.Name, "role", t.Role,
		"peer_uid", c.uid, "peer_pid", c.pid, "request_id", reqID)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, CreatedToken{
		ID: t.ID, Token: raw, Name: t.Name, Role: t.Role, Products: t.Products,
		CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt,
	})
}

// decode reads one JSON object of at most maxBody bytes with no unknown
// field into v.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return portal.Errorf(portal.ETooLarge, "request body over %d bytes", maxBody)
		}
		return portal.Errorf(portal.EInvalid, "request body: %v", err)
	}
	if dec.More() {
		return portal.Errorf(portal.EInvalid, "request body: more than one JSON value")
	}
	return nil
}

func errorBody(code, message string) map[string]any {
	return map[string]any{"error": map[string]string{"code": code, "message": message}}
}

// writeError sends err in the API's error envelope, with the API's status
// for its code; an internal error's text is never sent.
func writeError(w http.ResponseWriter, err error) {
	code := portal.ErrorCode(err)
	status := server.StatusOf(code)
	msg := portal.ErrorMessage(err)
	if status >= 500 {
		code, msg = portal.EInternal, "internal error"
	}
	writeJSON(w, status, errorBody(code, msg))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// limitListener holds at most cap(sem) connections open, and reads each
// peer's credentials as it accepts it.
type limitListener struct {
	*net.UnixListener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.UnixListener.AcceptUnix()
	if err != nil {
		<-l.sem
		return nil, err
	}
	cr, err := peerCred(c)
	cr.err = err
	return &limitConn{UnixConn: c, cred: cr, release: sync.OnceFunc(func() { <-l.sem })}, nil
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.UnixListener.Close()
}

type limitConn struct {
	*net.UnixConn
	cred    cred
	release func()
}

func (c *limitConn) Close() error {
	defer c.release()
	return c.UnixConn.Close()
}

// CreateToken asks the server listening on the socket at path to create a
// token, and returns it with its secret. When the server answers with a
// refusal the error is a *portal.Error carrying its code and message;
// any other error means no server answered on path (no such socket, no
// permission to open it, a server that stopped).
func CreateToken(ctx context.Context, path string, in TokenRequest) (CreatedToken, error) {
	body, err := json.Marshal(in)
	if err != nil {
		return CreatedToken{}, err
	}
	client := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", path)
			},
			DisableKeepAlives: true,
		},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://portal"+TokensPath, bytes.NewReader(body))
	if err != nil {
		return CreatedToken{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		// The URL's made-up host says nothing, and the dial error repeats
		// the path: keep the cause ("connect: no such file or directory").
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		if oe, ok := errors.AsType[*net.OpError](err); ok && oe.Op == "dial" {
			err = oe.Err
		}
		return CreatedToken{}, fmt.Errorf("admin socket %s: %w", path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, maxBody))
	if err != nil {
		return CreatedToken{}, fmt.Errorf("admin socket %s: %w", path, err)
	}
	if res.StatusCode == http.StatusCreated {
		var out CreatedToken
		if err := json.Unmarshal(b, &out); err != nil || out.Token == "" {
			return CreatedToken{}, fmt.Errorf("admin socket %s: unreadable answer (%d bytes)", path, len(b))
		}
		return out, nil
	}
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if json.Unmarshal(b, &e) != nil || e.Error.Code == "" {
		return CreatedToken{}, fmt.Errorf("admin socket %s: %s", path, res.Status)
	}
	return CreatedToken{}, portal.Errorf(e.Error.Code, "%s", e.Error.Message)
}

// auditContext is r's context with what the audit log records of a
// request on the socket: the CLI as actor, the peer's credentials as its
// origin and a new request ID, which it also returns for the log.
func auditContext(r *http.Request, c cred) (context.Context, string) {
	var id [8]byte
	rand.Read(id[:])
	reqID := hex.EncodeToString(id[:])
	ctx := audit.WithActor(r.Context(), audit.Actor{Kind: audit.KindCLI})
	return audit.WithRequest(ctx, fmt.Sprintf("unix uid=%d pid=%d", c.uid, c.pid), reqID), reqID
}

// serveBackup streams a backup to the peer. The status and headers are
// sent before the first byte of the backup: a failure after that cuts the
// connection, and the peer's copy, short of its checksum, is refused by
// every reader of the format.
func (s *Server) serveBackup(w http.ResponseWriter, r *http.Request, c cred) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeJSON(w, http.StatusMethodNotAllowed, errorBody("method_not_allowed", "GET "+BackupPath))
		return
	}
	ctx, reqID := auditContext(r, c)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Cache-Control", "no-store")
	rc := http.NewResponseController(w)
	dw := &deadlineWriter{w: w, rc: rc}
	if err := s.backup(ctx, dw); err != nil {
		s.log.Error("admin socket: backup", "request_id", reqID, "err", err)
		if !dw.started {
			writeError(w, err)
			return
		}
		panic(http.ErrAbortHandler)
	}
	s.log.Info("admin socket: backup sent", "peer_uid", c.uid, "peer_pid", c.pid, "request_id", reqID)
}

// deadlineWriter moves the write deadline backupIdle ahead before each
// write, so a backup may take as long as the peer keeps reading.
type deadlineWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	started bool
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	d.rc.SetWriteDeadline(time.Now().Add(backupIdle))
	d.started = true
	return d.w.Write(p)
}

// Backup asks the server listening on the socket at path for a backup of
// its store and copies it to w. A refusal is a *portal.Error; any other
// error means no server answered on path, or the transfer broke (then w
// holds a partial backup, which the format's readers refuse).
func Backup(ctx context.Context, path string, w io.Writer) error {
	client := &http.Client{
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", path)
			},
			DisableKeepAlives: true,
		},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://portal"+BackupPath, nil)
	if err != nil {
		return err
	}
	res, err := client.Do(req)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		if oe, ok := errors.AsType[*net.OpError](err); ok && oe.Op == "dial" {
			err = oe.Err
		}
		return fmt.Errorf("admin socket %s: %w", path, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, maxBody))
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(b, &e) != nil || e.Error.Code == "" {
			return fmt.Errorf("admin socket %s: %s", path, res.Status)
		}
		return portal.Errorf(e.Error.Code, "%s", e.Error.Message)
	}
	if _, err := io.Copy(w, res.Body); err != nil {
		return fmt.Errorf("admin socket %s: backup cut short: %w", path, err)
	}
	return nil
}
