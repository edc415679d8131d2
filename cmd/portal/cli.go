package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/portaldist/portal/client"
)

const defaultPortalURL = "http://127.0.0.1:8080"

// cli is what the client commands read and write; tests build their own.
type cli struct {
	stdout, stderr io.Writer
	// stdin is read by commands given "-" as a file (nil reads nothing).
	stdin  io.Reader
	getenv func(string) string
	http   *http.Client
	// bars draws progress bars on stderr; off when stderr is not a
	// terminal, where plain lines are printed instead.
	bars bool
	// retryDelay is the pause before retrying a failed upload request.
	retryDelay time.Duration
}

func osCLI() cli {
	return cli{
		stdout: os.Stdout, stderr: os.Stderr, stdin: os.Stdin, getenv: os.Getenv, http: http.DefaultClient,
		bars: term.IsTerminal(int(os.Stderr.Fd())), retryDelay: time.Second,
	}
}

// signalContext is cancelled by Ctrl-C or SIGTERM, so an interrupted
// transfer stops at once; publish and download can be run again.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// Exit codes, documented in portal --help.
const (
	exitOK      = 0
	exitFailure = 1 // network, server (5xx), local I/O
	exitUsage   = 2 // bad flags or arguments, found before anything was sent
	exitRefused = 3 // the portal refused (4xx): its code and message are printed
)

// usageError is a mistake in the command line; it exits with exitUsage.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// refusedError is a refusal of the portal with a message of the command's
// own; it unwraps to the *client.Error for the exit code.
type refusedError struct {
	msg string
	err *client.Error
}

func (e *refusedError) Error() string { return e.msg }
func (e *refusedError) Unwrap() error { return e.err }

// exitCode maps a command's error to the documented exit codes.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var ue *usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	var ce *client.Error
	if errors.As(err, &ce) && ce.Status >= 400 && ce.Status < 500 {
		return exitRefused
	}
	return exitFailure
}

// conn holds the flags of the commands that talk to a portal.
type conn struct {
	url, token, license string
	json                bool
}

// flags registers --url, --token, --json and, with license, --license.
func (k *conn) flags(fs *pflag.FlagSet, license bool) {
	fs.StringVar(&k.url, "url", "", "portal URL (default $PORTAL_URL, else "+defaultPortalURL+")")
	fs.StringVar(&k.token, "token", "", "API token (default $PORTAL_TOKEN)")
	if license {
		fs.StringVar(&k.license, "license", "", "license key (default $PORTAL_LICENSE)")
	}
	fs.BoolVar(&k.json, "json", false, "print the API's JSON objects instead of a table")
}

// session is one command's connection to a portal.
type session struct {
	c    cli
	api  *client.Client
	url  string
	json bool
}

// tokenSession connects with the API token of --token or PORTAL_TOKEN,
// which admin verbs need.
func (c cli) tokenSession(k *conn) (*session, error) {
	tok := cmp.Or(k.token, c.getenv("PORTAL_TOKEN"))
	if tok == "" {
		return nil, usagef("no API token: set PORTAL_TOKEN or pass --token (create the first one with: portal token create --role admin)")
	}
	return c.session(k, client.Bearer(tok)), nil
}

// anySession connects with a license key or a token. Flags beat the
// environment, and a license beats a token at the same level, as in
// download.
func (c cli) anySession(k *conn) (*session, error) {
	var auth string
	switch {
	case k.license != "":
		auth = client.License(k.license)
	case k.token != "":
		auth = client.Bearer(k.token)
	case c.getenv("PORTAL_LICENSE") != "":
		auth = client.License(c.getenv("PORTAL_LICENSE"))
	case c.getenv("PORTAL_TOKEN") != "":
		auth = client.Bearer(c.getenv("PORTAL_TOKEN"))
	default:
		return nil, usagef("no credential: set PORTAL_LICENSE or PORTAL_TOKEN, or pass --license or --token")
	}
	return c.session(k, auth), nil
}

func (c cli) session(k *conn, auth string) *session {
	u := strings.TrimRight(cmp.Or(k.url, c.getenv("PORTAL_URL"), defaultPortalURL), "/")
	api := client.New(u, auth)
	api.HTTP = c.http
	return &session{c: c, api: api, url: u, json: k.json}
}

// do sends one API request; out may be a *json.RawMessage. Errors say
// what to do about them.
func (s *session) do(ctx context.Context, method, path string, in, out any) error {
	return s.explain(s.api.Do(ctx, method, path, in, out))
}

// explain turns a client error into one that names its cause: the
// portal's refusal with its code, an answer from something that is not a
// portal, or a portal that cannot be reached.
func (s *session) explain(err error) error {
	if err == nil {
		return nil
	}
	var ce *client.Error
	if errors.As(err, &ce) {
		if !ce.FromPortal() {
			return &refusedError{fmt.Sprintf("%s answered HTTP %d (%s), which is not the portal's API: check --url or PORTAL_URL (now %s)",
				ce.URL, ce.Status, ce.Message, s.url), ce}
		}
		if ce.Status >= 500 {
			return fmt.Errorf("the portal failed: %s: %s", ce.Code, ce.Message)
		}
		msg := fmt.Sprintf("refused: %s: %s", ce.Code, ce.Message)
		switch ce.Status {
		case http.StatusUnauthorized:
			msg += " (check PORTAL_TOKEN or --token)"
		case http.StatusMethodNotAllowed:
			msg += " (this portal is older than this command)"
		}
		return &refusedError{msg, ce}
	}
	if errors.Is(err, context.Canceled) {
		return errors.New("interrupted")
	}
	return fmt.Errorf("%w (is the portal at %s? set PORTAL_URL or --url)", err, s.url)
}

// print writes raw (an API object) as indented JSON with --json, else
// calls table with an aligned writer.
func (s *session) print(raw json.RawMessage, table func(w io.Writer)) error {
	if s.json {
		return writeJSON(s.c.stdout, raw)
	}
	tw := tabwriter.NewWriter(s.c.stdout, 0, 0, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

func writeJSON(w io.Writer, raw json.RawMessage) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return fmt.Errorf("the portal's answer is not JSON: %w", err)
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

// row writes tab-separated cells and a newline; empty cells show as "-".
func row(w io.Writer, cells ...string) {
	for i, c := range cells {
		if c == "" {
			c = "-"
		}
		if i > 0 {
			io.WriteString(w, "\t")
		}
		io.WriteString(w, strings.ReplaceAll(c, "\n", " "))
	}
	io.WriteString(w, "\n")
}

func fmtTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// kvFlags parses repeated k=v flags.
func kvFlags(name string, kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usagef("--%s %q: use KEY=VALUE", name, kv)
		}
		m[k] = v
	}
	return m, nil
}
