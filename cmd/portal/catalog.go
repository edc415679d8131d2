package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/portaldist/portal/client"
)

// verb is a client command: it parses its flags, connects with the
// credential kind it needs and runs.
type verb struct {
	use, short string
	args       cobra.PositionalArgs
	// license: the command accepts a license key as well as a token.
	license bool
	flags   func(cmd *cobra.Command)
	run     func(ctx context.Context, s *session, cmd *cobra.Command, args []string) error
}

func (c cli) verb(v verb) *cobra.Command {
	var k conn
	cmd := &cobra.Command{Use: v.use, Short: v.short, Args: v.args}
	if cmd.Args == nil {
		cmd.Args = cobra.NoArgs
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		var s *session
		var err error
		if v.license {
			s, err = c.anySession(&k)
		} else {
			s, err = c.tokenSession(&k)
		}
		if err != nil {
			return err
		}
		return v.run(cmd.Context(), s, cmd, args)
	}
	k.flags(cmd.Flags(), v.license)
	if v.flags != nil {
		v.flags(cmd)
	}
	return cmd
}

// listFlags adds --limit, --cursor and --all to a list command.
type listFlags struct {
	limit  int
	cursor string
	all    bool
	quiet  bool
}

func (l *listFlags) add(cmd *cobra.Command, def int) {
	cmd.Flags().IntVar(&l.limit, "limit", def, "items per page")
	cmd.Flags().StringVar(&l.cursor, "cursor", "", "start at this cursor (printed after a page that is not the last)")
	cmd.Flags().BoolVar(&l.all, "all", false, "follow the cursors to the last page")
	cmd.Flags().BoolVarP(&l.quiet, "quiet", "q", false, "print only the ids (for scripts: ID=$(portal license list --customer bob -q))")
}

// itemID is what --quiet prints of an item: its id, slug or version.
func itemID(raw json.RawMessage) string {
	var v struct{ ID, Slug, Version string }
	json.Unmarshal(raw, &v)
	if v.ID != "" {
		return v.ID
	}
	if v.Slug != "" {
		return v.Slug
	}
	return v.Version
}

// list prints the items of a list route: one page, or every page with
// --all. With --json it prints the API's page object ({field: [...],
// next_cursor}); with --all one object holding every item.
func (s *session) list(ctx context.Context, path string, q url.Values, field string, l listFlags,
	header []string, line func(w io.Writer, item json.RawMessage) error) error {
	if q == nil {
		q = url.Values{}
	}
	if l.limit > 0 {
		q.Set("limit", strconv.Itoa(l.limit))
	}
	if l.cursor != "" {
		q.Set("cursor", l.cursor)
	}
	var items []json.RawMessage
	var next string
	if l.all {
		err := s.api.ListAll(ctx, path, q, field, func(page []json.RawMessage) error {
			items = append(items, page...)
			return nil
		})
		if err != nil {
			return s.explain(err)
		}
	} else {
		p, err := s.api.List(ctx, path, q, field)
		if err != nil {
			return s.explain(err)
		}
		items, next = p.Items, p.NextCursor
	}
	if l.quiet && !s.json {
		for _, it := range items {
			fmt.Fprintln(s.c.stdout, itemID(it))
		}
		return nil
	}
	if s.json {
		page := map[string]any{field: items}
		if items == nil {
			page[field] = []json.RawMessage{}
		}
		if next != "" {
			page["next_cursor"] = next
		}
		b, _ := json.Marshal(page)
		return writeJSON(s.c.stdout, b)
	}
	err := s.print(nil, func(w io.Writer) {
		row(w, header...)
		for _, it := range items {
			if err := line(w, it); err != nil {
				fmt.Fprintf(w, "(unreadable item: %v)\n", err)
			}
		}
	})
	if err != nil {
		return err
	}
	if next != "" {
		fmt.Fprintf(s.c.stderr, "more: add --cursor %s (or --all)\n", next)
	}
	return nil
}

func (c cli) productCommand() *cobra.Command {
	productRow := func(w io.Writer, raw json.RawMessage) error {
		var p client.Product
		if err := json.Unmarshal(raw, &p); err != nil {
			return err
		}
		row(w, p.Slug, p.Name, p.Distribution, fmtTime(&p.CreatedAt))
		return nil
	}
	header := []string{"SLUG", "NAME", "DISTRIBUTION", "CREATED"}
	showOne := func(s *session, raw json.RawMessage) error {
		return s.print(raw, func(w io.Writer) { row(w, header...); productRow(w, raw) })
	}
	var name, distribution string
	productFlags := func(cmd *cobra.Command) {
		cmd.Flags().StringVar(&name, "name", "", "display name")
		cmd.Flags().StringVar(&distribution, "distribution", "", "licensed (downloads need a license) or open")
		cmd.RegisterFlagCompletionFunc("distribution", cobra.FixedCompletions([]string{"licensed", "open"}, cobra.ShellCompDirectiveNoFileComp))
	}
	return group("product", "list, show, create, edit and delete products",
		c.verb(verb{use: "list", short: "list the products",
			run: func(ctx context.Context, s *session, cmd *cobra.Command, args []string) error {
				return s.list(ctx, "/v1/products", nil, "products", listFlags{}, header, productRow)
			}}),
		c.verb(verb{use: "show PRODUCT", short: "show a product", args: cobra.ExactArgs(1),
			run: func(ctx context.Context, s *session, cmd *cobra.Command, args []string) error {
				var raw json.RawMessage
				if err := s.do(ctx, http.MethodGet, client.ProductPath(args[0]), nil, &raw); err != nil {
					return err
				}
				return showOne(s, raw)
			}}),
		c.verb(verb{use: "keys PRODUCT [--armor]", short: "show a product's public signing keys (update feeds, and the OpenPGP key of its APT and YUM repositories)", args: cobra.ExactArgs(1), license: true,
			flags: func(cmd *cobra.Command) {
				cmd.Flags().Bool("armor", false, "print only the ASCII-armored OpenPGP public key (for apt's signed-by or rpm --import)")
			},
			run: func(ctx context.Context, s *session, cmd *cobra.Command, args []string) error {
				var raw json.RawMessage
				if err := s.do(ctx, http.MethodGet, client.ProductPath(args[0])+"/keys", nil, &raw); err != nil {
					return err
				}
				type pgp struct{ Algorithm, Fingerprint, Armored string }
				var k struct {
					Sparkle, Minisign string
					OpenPGP           *struct {
						pgp
						Next *pgp
					}
				}
				if err := json.Unmarshal(raw, &k); err != nil {
					return err
				}
				if armor, _ := cmd.Flags().GetBool("armor"); armor {
					if k.OpenPGP == nil {
						return fmt.Errorf("%s has no OpenPGP key", args[0])
					}
					_, err := io.WriteString(s.c.stdout, k.OpenPGP.Armored)
					return err
				}
				return s.print(raw, func(w io.Writer) {
					row(w, "Sparkle SUPublicEDKey:", k.Sparkle)
					row(w, "minisign public key:", k.Minisign)
					if k.OpenPGP != nil {
						row(w, "OpenPGP fingerprint:", k.OpenPGP.Fingerprint+" ("+k.OpenPGP.Algorithm+")")
						if n := k.OpenPGP.Next; n != nil {
							row(w, "OpenPGP staged:", n.Fingerprint+" ("+n.Algorithm+", signs beside the current key until activated)")
						}
					}
				})
			}}),
		c.verb(verb{use: "create SLUG [--name N] [--distribution licensed|open]", short: "create a product", args: cobra.ExactArgs(1), flags: productFlags,
			run: func(ctx context.Context, s *session, cmd *cobra.Command, args []string) error {
				in := map[string]any{"slug": args[0]}
				if name != "" {
					in["name"] = name
				}
				if distribution != "" {
					in["distribution"] = distribution
				}
				var raw json.RawMessage
				if err := s.do(ctx, http.MethodPost, "/v1/products", in, &raw); err != nil {
					return err
				}
				return showOne(s, raw)
			}}),
		c.verb(verb{use: "edit PRODUCT [--name N] [--distribution licensed|open]", short: "rename a product or change its distribution", args: cobra.ExactArgs(1), flags: productFlags,
			run: func(ctx context.Context, s *session, cmd *cobra.Command, args []string) error {
				in := changed(cmd, map[string]any{"name": name, "distribution": distribution})
				if len(in) == 0 {
					return usagef("product edit: nothing to change: pass --name or --distribution")
				}
				var raw json.RawMessage
				if err := s.do(ctx, http.MethodPatch, client.ProductPath(args[0]), in, &raw); err != nil {
					return err
				}
				return showOne(s, raw)
			}}),
		c.verb(verb{use: "delete PRODUCT", short: "delete a product that has no published or yanked release", args: cobra.ExactArgs(1),
			run: func(ctx context.Context, s *session, cmd *cobra.Command, args []string) error {
				if err := s.do(ctx, http.MethodDelete, client.ProductPath(args[0]), nil, nil); err != nil {
					return err
				}
				fmt.Fprintf(s.c.stdout, "deleted product %s\n", args[0])
				return nil
			}}),
	)
}

// changed keeps the fields of in whose flag (the key with _ as -) was
// given on the command line, so an edit sends only what the caller set.
func changed(cmd *cobra.Command, in map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range in {
		if cmd.Flags().Changed(strings.ReplaceAll(k, "_", "-")) {
			out[k] = v
		}
	}
	return out
}

func releaseRow(w io.Writer, raw json.RawMessage) error {
	var r client.Release
	if err := json.Unmarshal(raw, &r); err != nil {
		return err
	}
	rollout := "100%"
	if r.Rollout > 0 && r.Rollout < 100 {
		rollout = strconv.Itoa(r.Rollout) + "%"
	}
	var files []string
	for _, a := range r.Artifacts {
		files = append(files, a.Filename+"("+a.Status+")")
	}
	row(w, r.Product, r.Version, r.Channel, r.Status, rollout, fmtTime(r.PublishedAt), strings.Join(files, " "))
	return nil
}

var releaseHeader = []string{"PRODUCT", "VERSION", "CHANNEL", "STATUS", "ROLLOUT", "PUBLISHED", "FILES"}

func (c cli) releaseCommand() *cobra.Command {
	showOne := func(s *session, raw json.RawMessage) error {
		return s.print(raw, func(w io.Writer) {
			row(w, releaseHeader...)
			releaseRow(w, raw)
			var r client.Release
			if json.Unmarshal(raw, &r) == nil {
				if len(r.Metadata) > 0 {
					keys := make([]string, 0, len(r.Metadata))
					for k := range r.Metadata {
						keys = append(keys, k)
					}
					sort.Strings(keys)
					for _, k := range keys {
						fmt.Fprintf(w, "\nmetadata %s=%s", k, r.Metadata[k])
					}
					fmt.Fprintln(w)
				}
				if r.Notes != "" {
					fmt.Fprintf(w, "\n%s\n", strings.TrimRight(r.Notes, "\n"))
				}
			}
		})
	}
	var lf listFlags
	var channel, status, notesFile string
	var metadata []string
	var rolloutN int
	action := func(use, short, path string) *cobra.Command {
		return c.verb(verb{use: use + " PRODUCT VERSION", short: short, args: cobra.ExactArgs(2),
			run: func(ctx context.Context, s *session, cmd *cobra.Command, args []string) error {
				var raw json.RawMessage
				if err := s.do(ctx, http.MethodPost, client.ReleasePath(args[0], args[1])+path, nil, &raw); err != nil {
					return err
				}
				return showOne(s, raw)
			}})
	}
	editFlags := func(cmd *cobra.Command) {
		cmd.Flags().StringVar(&notesFile, "notes", "", "file holding the release notes (- reads standard input)")
		cmd.Flags().StringArrayVar(&metadata, "metadata", nil, "KEY=VALUE metadata (repeatable; on edit, replaces the whole set)")
		cmd.Flags().IntVar(&rolloutN, "rollout", 0, "staged rollout: the percentage of customers update checks offer it to (0 or 100: everyone)")
		cmd.Flags().StringVar(&channel, "channel", "", "channel: stable, rc, beta, alpha, dev (on edit: drafts only)")
		cmd.RegisterFlagCompletionFunc("channel", cobra.FixedCompletions([]string{"stable", "rc", "beta", "alpha", "dev"}, cobra.ShellCompDirectiveNoFileComp))
	}
	// body builds a create or edit request from the flags given.
	body := func(cmd *cobra.Command) (map[string]any, error) {
		in := map[string]any{}
		if cmd.Flags().Changed("channel") {
			in["channel"] = channel
		}
		if cmd.Flags().Changed("notes") {
			b, err := c.readFileArg(notesFile)
			if err != nil {
				return nil, err
			}
			in["notes"] = string(b)
		}
		if cmd.Flags().Changed("metadata") {
			m, err := kvFlags("metadata", metadata)
			if err != nil {
				return nil, err
			}
			if m == nil {
				m = map[string]string{}
			}
			in["metadata"] = m
		}
		if cmd.Flags().Changed("rollout") {
			if rolloutN < 0 || rolloutN > 100 {
				return nil, usagef("--rollout %d: use a percentage from 0 to 100", rolloutN)
			}
			in["rollout"] = rolloutN
		}
		return in, nil
	}
	patch := func(ctx context.Context, s *session, product, version string, in map[string]any) error {
		var raw json.RawMessage
		if err := s.do(ctx, http.MethodPatch, client.ReleasePath(product, version), in, &raw); err != nil {
			return err
		}
		return showOne(s, raw)
	}
	return group("release", "list, show, create, edit, publish, yank, unyank, roll out and delete releases",
		c.verb(verb{use: "list PRODUCT [--channel C] [--status S]", short: "list a product's releases, newest first", args: cobra.ExactArgs(1),
			flags: func(cmd *cobra.Command) {
				cmd.Flags().StringVar(&channel, "channel", "", "only releases visible on this channel")
				cmd.Flags().StringVar(&status, "status", "", "draft, published or yanked")
				lf.add(cmd, 50)
			},
			run: func(ctx context.Context, s *session, cmd *cobra.Command, args []string) error {
				q := url.Values{}
				if channel != "" {
					q.Set("channel", channel)
				}
				if status != "" {
					q.Set("status", status)
				}
				return s.list(ctx, client.ProductPath(args[0])+"/releases", q, "releases", lf, releaseHeader, releaseRow)
			}}),
		c.verb(verb{use: "show PRODUCT VERSION", short: "show a release with its files and notes", args: cobra.ExactArgs(2),
			run: func(ctx context.Context, s *session, cmd *cobra.Command, args []string) error {
				var raw json.RawMessage
				if err := s.do(ctx, http.MethodGet, client.ReleasePath(args[0], args[1]), nil, &raw); err != nil {
					return err
				}
				return showOne(s, raw)
			}}),
		c.verb(verb{use: "create PRODUCT VERSION", short: "create a draft release (portal publish uploads its files)", args: cobra.ExactArgs(2), flags: editFlags,
			run: func(ctx context.Context, s *session, cmd *cobra.Command, args []string) error {
				in, err := body(cmd)
				if err != nil {
					return err
				}
				in["version"] = args[1]
				var raw json.RawMessage
				if err := s.do(ctx, http.MethodPost, client.ProductPath(args[0])+"/releases", in, &raw); err != nil {
					return err
				}
				return showOne(s, raw)
			}}),
		c.verb(verb{use: "edit PRODUCT VERSION [--notes FILE] [--metadata K=V]... [--rollout N] [--channel C]", short: "change a release's notes, metadata, rollout, or a draft's channel", args: cobra.ExactArgs(2), flags: editFlags,
			run: func(ctx context.Context, s *session, cmd *cobra.Command, args []string) error {
				in, err := body(cmd)
				if err != nil {
					return err
				}
				if len(in) == 0 {
					return usagef("release edit: nothing to change: pass --notes, --metadata, --rollout or --channel")
				}
				return patch(ctx, s, args[0], args[1], in)
			}}),
		c.verb(verb{use: "rollout PRODUCT VERSION PERCENT", short: "offer a release to PERCENT of customers in update checks (100: everyone)", args: cobra.ExactArgs(3),
			run: func(ctx context.Context, s *session, cmd *cobra.Command, args []string) error {
				n, err := strconv.Atoi(strings.TrimSuffix(args[2], "%"))
				if err != nil || n < 0 || n > 100 {
					return usagef("release rollout: %q: use a percentage from 0 to 100", args[2])
				}
				return patch(ctx, s, args[0], args[1], map[string]any{"rollout": n})
			}}),
		action("publish", "publish a draft release whose files are all uploaded", "/publish"),
		action("yank", "withdraw a published release from updates and downloads", "/yank"),
		action("unyank", "make a yanked release published again", "/unyank"),
		c.verb(verb{use: "delete PRODUCT VERSION", short: "delete a draft release and its uploaded files", args: cobra.ExactArgs(2),
			run: func(ctx context.Context, s *session, cmd *cobra.Command, args []string) error {
				if err := s.do(ctx, http.MethodDelete, client.ReleasePath(args[0], args[1]), nil, nil); err != nil {
					return err
				}
				fmt.Fprintf(s.c.stdout, "deleted draft %s %s\n", args[0], args[1])
				return nil
			}}),
	)
}

// readFileArg reads a file named on the command line; "-" is standard
// input. A missing file is a usage error naming it.
func (c cli) readFileArg(name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(readerOr(c.stdin))
	}
	b, err := os.ReadFile(name)
	if os.IsNotExist(err) {
		return nil, usagef("no such file %s", name)
	}
	return b, err
}
