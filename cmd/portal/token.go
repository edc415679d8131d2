package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/portaldist/portal/app"
)

type multiFlag []string

func (m *multiFlag) String() string     { return fmt.Sprint(*m) }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// token creates an API token offline, straight in the configured store. It
// fails at once when a running server holds the store.
func token(args []string) error {
	if len(args) == 0 || args[0] != "create" {
		return fmt.Errorf("usage: portal token create --role admin|publisher [--product P]... [--name N]")
	}
	fs := flag.NewFlagSet("token create", flag.ContinueOnError)
	load := configFlags(fs)
	role := fs.String("role", "", "admin or publisher")
	name := fs.String("name", "", "a name to recognise the token by")
	var products multiFlag
	fs.Var(&products, "product", "product a publisher token may publish (repeatable)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	ctx := context.Background()
	a, err := app.OpenStore(ctx, cfg, app.Options{})
	if err != nil {
		return err
	}
	defer a.Close(ctx)
	t, raw, err := a.Tokens.Create(ctx, *name, *role, products)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "created %s token %s (%s); it is shown this once:\n", t.Role, t.ID, t.Name)
	fmt.Println(raw)
	return nil
}
