package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/portaldist/portal/client"
)

var tokenHeader = []string{"ID", "NAME", "ROLE", "PRODUCTS", "CREATED", "LAST USED", "EXPIRES"}

func tokenRow(w io.Writer, raw json.RawMessage) error {
	var t client.Token
	if err := json.Unmarshal(raw, &t); err != nil {
		return err
	}
	last := fmtTime(t.LastUsedAt)
	if last == "" {
		last = "never"
	}
	exp := fmtTime(t.ExpiresAt)
	if exp == "" {
		exp = "never"
	}
	row(w, t.ID, t.Name, t.Role, strings.Join(t.Products, " "), fmtTime(&t.CreatedAt), last, exp)
	return nil
}

func (c cli) tokenCommand() *cobra.Command {
	return group("token", "create (offline), list, show and delete API tokens",
		tokenCreateCommand(),
		c.verb(verb{use: "list", short: "list the API tokens (never their secrets)",
			run: func(ctx context.Context, s *session, cmd *cobra.Command, args []string) error {
				return s.list(ctx, "/v1/tokens", nil, "tokens", listFlags{}, tokenHeader, tokenRow)
			}}),
		c.verb(verb{use: "show ID", short: "show one API token", args: cobra.ExactArgs(1),
			run: func(ctx context.Context, s *session, cmd *cobra.Command, args []string) error {
				var found json.RawMessage
				err := s.api.ListAll(ctx, "/v1/tokens", nil, "tokens", func(items []json.RawMessage) error {
					for _, raw := range items {
						var t client.Token
						if json.Unmarshal(raw, &t) == nil && t.ID == args[0] {
							found = raw
						}
					}
					return nil
				})
				if err != nil {
					return s.explain(err)
				}
				if found == nil {
					return s.explain(&client.Error{Status: http.StatusNotFound, Code: "not_found", Message: "no token " + args[0]})
				}
				return s.print(found, func(w io.Writer) { row(w, tokenHeader...); tokenRow(w, found) })
			}}),
		c.verb(verb{use: "delete ID", short: "delete an API token: it stops working at once", args: cobra.ExactArgs(1),
			run: func(ctx context.Context, s *session, cmd *cobra.Command, args []string) error {
				if err := s.do(ctx, http.MethodDelete, "/v1/tokens/"+url.PathEscape(args[0]), nil, nil); err != nil {
					return err
				}
				fmt.Fprintf(s.c.stdout, "deleted token %s\n", args[0])
				return nil
			}}),
	)
}

var linkHeader = []string{"ID", "LICENSE", "PRODUCT", "VERSION", "FILE", "EXPIRES", "REVOKED"}

func linkRow(w io.Writer, raw json.RawMessage) error {
	var l client.Link
	if err := json.Unmarshal(raw, &l); err != nil {
		return err
	}
	row(w, l.ID, l.License, l.Product, l.Version, l.Filename, fmtTime(&l.ExpiresAt), fmtTime(l.RevokedAt))
	return nil
}

func (c cli) linkCommand() *cobra.Command {
	var license string
	var in struct {
		product, version, filename, platform, arch, channel, ttl string
	}
	return group("link", "list, create and revoke share links",
		c.verb(verb{use: "list [--for LICENSE_ID]", short: "list a license's share links (an admin names the license)", license: true,
			flags: func(cmd *cobra.Command) {
				cmd.Flags().StringVar(&license, "for", "", "the license whose links to list (admin)")
			},
			run: func(ctx context.Context, s *session, cmd *cobra.Command, args []string) error {
				q := url.Values{}
				if license != "" {
					q.Set("license", license)
				}
				return s.list(ctx, "/v1/links", q, "links", listFlags{}, linkHeader, linkRow)
			}}),
		c.verb(verb{use: "create --product P [--version V|latest] (--filename F | --platform OS --arch ARCH) [--ttl 24h]",
			short: "create a share link to one build and print its URL", license: true,
			flags: func(cmd *cobra.Command) {
				f := cmd.Flags()
				f.StringVar(&in.product, "product", "", "product slug (required)")
				f.StringVar(&in.version, "version", "latest", "release version, or latest")
				f.StringVar(&in.filename, "filename", "", "the file to share")
				f.StringVar(&in.platform, "platform", "", "platform of the build to share")
				f.StringVar(&in.arch, "arch", "", "arch of the build to share")
				f.StringVar(&in.channel, "channel", "", "channel latest is looked up on (default stable)")
				f.StringVar(&in.ttl, "ttl", "", "life of the link, e.g. 24h (default: the portal's)")
				f.StringVar(&license, "for", "", "the license to make the link for (admin, for customer support)")
				cmd.MarkFlagRequired("product")
			},
			run: func(ctx context.Context, s *session, cmd *cobra.Command, args []string) error {
				body := map[string]any{"product": in.product, "version": in.version}
				for k, v := range map[string]string{"filename": in.filename, "platform": in.platform, "arch": in.arch,
					"channel": in.channel, "ttl": in.ttl, "license": license} {
					if v != "" {
						body[k] = v
					}
				}
				var raw json.RawMessage
				if err := s.do(ctx, http.MethodPost, "/v1/links", body, &raw); err != nil {
					return err
				}
				if s.json {
					return writeJSON(s.c.stdout, raw)
				}
				var l client.Link
				if err := json.Unmarshal(raw, &l); err != nil {
					return fmt.Errorf("the portal's answer: %w", err)
				}
				fmt.Fprintf(s.c.stderr, "share link %s to %s %s %s, until %s:\n", l.ID, l.Product, l.Version, l.Filename, fmtTime(&l.ExpiresAt))
				fmt.Fprintln(s.c.stdout, l.URL)
				return nil
			}}),
		c.verb(verb{use: "delete ID", short: "revoke a share link at once", args: cobra.ExactArgs(1), license: true,
			run: func(ctx context.Context, s *session, cmd *cobra.Command, args []string) error {
				if err := s.do(ctx, http.MethodDelete, "/v1/links/"+url.PathEscape(args[0]), nil, nil); err != nil {
					return err
				}
				fmt.Fprintf(s.c.stdout, "revoked link %s\n", args[0])
				return nil
			}}),
	)
}

var auditHeader = []string{"TIME", "ACTOR", "ACTION", "TARGET", "CLIENT", "REQUEST"}

func auditRow(w io.Writer, raw json.RawMessage) error {
	var r client.AuditRecord
	if err := json.Unmarshal(raw, &r); err != nil {
		return err
	}
	row(w, fmtTime(&r.Time), r.ActorName(), r.Action, r.Target, r.Client, r.RequestID)
	return nil
}

func (c cli) auditCommand() *cobra.Command {
	var lf listFlags
	var f struct{ actor, action, target, since, until string }
	return group("audit", "read the audit log",
		c.verb(verb{use: "list [--actor A] [--action A] [--target PREFIX] [--since T] [--until T]", short: "list audit records, newest first",
			flags: func(cmd *cobra.Command) {
				fs := cmd.Flags()
				fs.StringVar(&f.actor, "actor", "", "records of this actor (token id, license id, cli)")
				fs.StringVar(&f.action, "action", "", "records of this action (license.suspend, release.publish, ...)")
				fs.StringVar(&f.target, "target", "", "records whose target starts with this")
				fs.StringVar(&f.since, "since", "", "records at or after this time (RFC 3339, a date, or a duration ago such as 24h)")
				fs.StringVar(&f.until, "until", "", "records before this time (RFC 3339, a date, or a duration ago)")
				lf.add(cmd, 50)
			},
			run: func(ctx context.Context, s *session, cmd *cobra.Command, args []string) error {
				q := url.Values{}
				for k, v := range map[string]string{"actor": f.actor, "action": f.action, "target": f.target} {
					if v != "" {
						q.Set(k, v)
					}
				}
				for k, v := range map[string]string{"since": f.since, "until": f.until} {
					if v == "" {
						continue
					}
					t, err := parseWhen(v, time.Now())
					if err != nil {
						return usagef("--%s %q: use an RFC 3339 time, a date or a duration ago such as 24h", k, v)
					}
					q.Set(k, t.UTC().Format(time.RFC3339))
				}
				return s.list(ctx, "/v1/audit", q, "records", lf, auditHeader, auditRow)
			}}),
	)
}

// parseWhen reads an RFC 3339 time, a date, or a duration before now.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("not a time")
	}
	return now.Add(-d), nil
}

func (c cli) meCommand() *cobra.Command {
	return c.verb(verb{use: "me", short: "who the portal takes this credential for, and what it may download", license: true,
		run: func(ctx context.Context, s *session, cmd *cobra.Command, args []string) error {
			var raw json.RawMessage
			if err := s.do(ctx, http.MethodGet, "/v1/me", nil, &raw); err != nil {
				return err
			}
			return s.print(raw, func(w io.Writer) { meTable(w, raw) })
		}})
}

func meTable(w io.Writer, raw json.RawMessage) {
	var me struct {
		Token   *client.Token           `json:"token"`
		License *client.CustomerLicense `json:"license"`
		Access  string                  `json:"access"`
		Quota   *struct {
			Limit     int        `json:"limit"`
			Used      int        `json:"used"`
			Remaining *int       `json:"remaining"`
			ResetAt   *time.Time `json:"reset_at"`
		} `json:"quota"`
		Releases []struct {
			Version   string   `json:"version"`
			Channel   string   `json:"channel"`
			Platforms []string `json:"platforms"`
		} `json:"releases"`
	}
	json.Unmarshal(raw, &me)
	switch {
	case me.Token != nil:
		row(w, "token", me.Token.ID)
		row(w, "name", me.Token.Name)
		row(w, "role", me.Token.Role)
		row(w, "products", strings.Join(me.Token.Products, " "))
	case me.License != nil:
		l := me.License
		row(w, "license", l.ID)
		row(w, "customer", l.Customer)
		row(w, "products", strings.Join(l.AllProducts(), " "))
		row(w, "access", me.Access)
		exp := fmtTime(l.ExpiresAt)
		if exp == "" {
			exp = "never"
		}
		row(w, "expires", exp+" (on expiry: "+l.OnExpiry+")")
		if q := me.Quota; q != nil {
			quota := "unlimited"
			if q.Remaining != nil {
				quota = fmt.Sprintf("%d used, %d left today, resets %s", q.Used, *q.Remaining, fmtTime(q.ResetAt))
			} else if q.Used > 0 {
				quota = fmt.Sprintf("unlimited (%d used today)", q.Used)
			}
			row(w, "downloads", quota)
		}
		for _, r := range me.Releases {
			row(w, "release", r.Version+" ("+r.Channel+") "+strings.Join(r.Platforms, " "))
		}
	}
}

// Stamped with -ldflags "-X main.version=... -X main.commit=..."; when
// empty, the build information of the binary says.
var version, commit string

func (c cli) versionCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "print the version, commit and Go version of this binary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			v := buildVersion()
			if asJSON {
				b, _ := json.Marshal(v)
				return writeJSON(c.stdout, b)
			}
			fmt.Fprintf(c.stdout, "portal %s\ncommit %s\n%s\n", v.Version, v.Commit, v.Go)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

type versionInfo struct {
	Version  string `json:"version"`
	Commit   string `json:"commit"`
	Modified bool   `json:"modified,omitempty"`
	Go       string `json:"go"`
}

func buildVersion() versionInfo {
	v := versionInfo{Version: version, Commit: commit, Go: "unknown"}
	if bi, ok := debug.ReadBuildInfo(); ok {
		v.Go = bi.GoVersion
		if v.Version == "" {
			v.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if v.Commit == "" {
					v.Commit = s.Value
				}
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	if v.Version == "" {
		v.Version = "(devel)"
	}
	if v.Commit == "" {
		v.Commit = "unknown"
	}
	return v
}

func completionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "print the shell completion script",
		Long: `Print the completion script for a shell. For example:
  bash: source <(portal completion bash)
  zsh:  portal completion zsh > "${fpath[1]}/_portal"
  fish: portal completion fish > ~/.config/fish/completions/portal.fish`,
		ValidArgs: []string{"bash", "zsh", "fish"},
		Args:      cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			root, out := cmd.Root(), cmd.OutOrStdout()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(out, true)
			case "zsh":
				return root.GenZshCompletion(out)
			default:
				return root.GenFishCompletion(out, true)
			}
		},
	}
}
