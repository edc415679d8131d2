package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/app"
	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/configs"
	"github.com/portaldist/portal/internal/adminsock"
	"github.com/portaldist/portal/store"
)

type multiFlag []string

func (m *multiFlag) String() string     { return fmt.Sprint(*m) }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// token creates an API token and prints it once: offline, straight in the
// configured store, or, when a running server holds the store, through
// that server's admin socket on this machine (see tokenCreate).
func token(args []string) error {
	return tokenCreate(context.Background(), args, os.Stdout, os.Stderr)
}

// tokenCreate runs `token create` with args (starting with "create"),
// printing the secret alone on stdout and what it is on stderr. It opens
// the store offline first; when a server holds it (store.ErrLocked) it
// asks that server through admin.socket instead, with the same request.
// When neither works the error gives both causes and still matches
// store.ErrLocked. A refusal of the request (a bad role, name or product)
// is the same *portal.Error whichever way it went.
func tokenCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return fmt.Errorf("usage: portal token create --role admin|publisher [--product P]... [--name N]")
	}
	flags := flag.NewFlagSet("token create", flag.ContinueOnError)
	flags.SetOutput(stderr)
	load := configFlags(flags)
	role := flags.String("role", "", "admin or publisher")
	name := flags.String("name", "", "a name to recognise the token by")
	var products multiFlag
	flags.Var(&products, "product", "product a publisher token may publish (repeatable)")
	if err := flags.Parse(args[1:]); err != nil {
		return err
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	// The offline command is the local operator, as the socket's caller is.
	ctx = audit.WithActor(ctx, audit.Actor{Kind: audit.KindCLI})
	a, err := app.OpenStore(ctx, cfg, app.Options{})
	if errors.Is(err, store.ErrLocked) {
		req := adminsock.TokenRequest{Name: *name, Role: *role, Products: products}
		return tokenCreateRunning(ctx, cfg, err, req, stdout, stderr)
	}
	if err != nil {
		return err
	}
	defer a.Close(ctx)
	t, raw, err := a.Tokens.Create(ctx, *name, *role, products)
	if err != nil {
		return err
	}
	printToken(stdout, stderr, t.Role, t.ID, t.Name, raw)
	return nil
}

// socketWait is how long token create waits for the admin socket of a
// server that holds the store but does not listen yet.
const socketWait = 3 * time.Second

// tokenCreateRunning asks the server that holds the store (locked is
// OpenStore's error) to create the token through its admin socket.
func tokenCreateRunning(ctx context.Context, cfg *configs.Config, locked error, req adminsock.TokenRequest, stdout, stderr io.Writer) error {
	path := cfg.AdminSocketPath()
	if path == "" {
		return fmt.Errorf("%w; and admin.socket is disabled, so the running server cannot be asked instead", locked)
	}
	// A server that is starting holds the store a moment before its
	// socket listens: wait for it a little, as long as no connection was
	// made (so no request can have been sent twice).
	deadline := time.Now().Add(socketWait)
	t, err := adminsock.CreateToken(ctx, path, req)
	for (errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED)) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		t, err = adminsock.CreateToken(ctx, path, req)
	}
	if _, refused := errors.AsType[*portal.Error](err); refused {
		return err
	}
	if err != nil {
		hint := "is the server's admin.socket the same as this command's?"
		if errors.Is(err, fs.ErrPermission) {
			hint = "run this command as the server's user or root"
		}
		return fmt.Errorf("%w; and the running server could not be asked instead: %v (%s)", locked, err, hint)
	}
	printToken(stdout, stderr, t.Role, t.ID, t.Name, t.Token)
	return nil
}

// printToken shows a new token: what it is on stderr, the secret alone on
// stdout (for `TOKEN=$(portal token create ...)`).
func printToken(stdout, stderr io.Writer, role, id, name, raw string) {
	fmt.Fprintf(stderr, "created %s token %s (%s); it is shown this once:\n", role, id, name)
	fmt.Fprintln(stdout, raw)
}
