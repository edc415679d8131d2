package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/portaldist/portal/client"
)

var licenseHeader = []string{"ID", "CUSTOMER", "PRODUCTS", "STATUS", "EXPIRES", "ON EXPIRY", "PER DAY", "KEY"}

func licenseRow(w io.Writer, raw json.RawMessage) error {
	var l client.CustomerLicense
	if err := json.Unmarshal(raw, &l); err != nil {
		return err
	}
	perDay := "unlimited"
	if l.DownloadsPerDay > 0 {
		perDay = strconv.Itoa(l.DownloadsPerDay)
	}
	expires := fmtTime(l.ExpiresAt)
	if expires == "" {
		expires = "never"
	}
	row(w, l.ID, l.Customer, strings.Join(l.AllProducts(), " "), l.Status, expires, l.OnExpiry, perDay, l.KeyHint+"...")
	return nil
}

// licenseFields are the flags of license create and edit.
type licenseFields struct {
	customer, constraint, expiresAt, onExpiry string
	products, channels, platforms, metadata   []string
	perDay                                    int
}

func (f *licenseFields) add(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.customer, "customer", "", "who holds the license")
	fs.StringArrayVar(&f.products, "product", nil, "a product the license covers (repeatable)")
	fs.StringVar(&f.constraint, "constraint", "", `versions it covers, go-version syntax (">= 2.0, < 3.0"; "" for all)`)
	fs.StringArrayVar(&f.channels, "channel", nil, "a channel it may use (repeatable; none: every channel)")
	fs.StringArrayVar(&f.platforms, "platform", nil, "a platform it may download for (repeatable; none: every platform)")
	fs.StringVar(&f.expiresAt, "expires-at", "", "expiry: RFC 3339 time or YYYY-MM-DD (UTC midnight); never for none")
	fs.StringVar(&f.onExpiry, "on-expiry", "", "revoke (all access ends) or maintain (releases published before expiry stay)")
	fs.IntVar(&f.perDay, "downloads-per-day", 0, "downloads per UTC day (0: unlimited)")
	fs.StringArrayVar(&f.metadata, "metadata", nil, "KEY=VALUE of the vendor's own data (repeatable; on edit, replaces the whole set)")
	cmd.RegisterFlagCompletionFunc("on-expiry", cobra.FixedCompletions([]string{"revoke", "maintain"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.RegisterFlagCompletionFunc("channel", cobra.FixedCompletions([]string{"stable", "rc", "beta", "alpha", "dev"}, cobra.ShellCompDirectiveNoFileComp))
}

// body is the request of the flags given on the command line.
func (f *licenseFields) body(cmd *cobra.Command) (map[string]any, error) {
	set := cmd.Flags().Changed
	in := map[string]any{}
	if set("customer") {
		in["customer"] = f.customer
	}
	if set("product") {
		in["products"] = f.products
	}
	if set("constraint") {
		in["constraint"] = f.constraint
	}
	if set("channel") {
		in["channels"] = f.channels
	}
	if set("platform") {
		in["platforms"] = f.platforms
	}
	if set("expires-at") {
		t, err := parseExpiry(f.expiresAt)
		if err != nil {
			return nil, err
		}
		in["expires_at"] = t // nil: never
	}
	if set("on-expiry") {
		in["on_expiry"] = f.onExpiry
	}
	if set("downloads-per-day") {
		in["downloads_per_day"] = f.perDay
	}
	if set("metadata") {
		m, err := kvFlags("metadata", f.metadata)
		if err != nil {
			return nil, err
		}
		if m == nil {
			m = map[string]string{}
		}
		in["metadata"] = m
	}
	return in, nil
}

// parseExpiry reads --expires-at: RFC 3339, a date (midnight UTC), or
// never (nil).
func parseExpiry(s string) (*time.Time, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "never", "null", "none":
		return nil, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return &t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return &t, nil
	}
	return nil, usagef("--expires-at %q: use an RFC 3339 time (2027-01-31T00:00:00Z), a date (2027-01-31) or never", s)
}

// oneProduct sends the one-product form on create when the license covers
// one product, which every portal accepts.
func oneProduct(in map[string]any) {
	if ps, ok := in["products"].([]string); ok && len(ps) == 1 {
		delete(in, "products")
		in["product"] = ps[0]
	}
}

func (c cli) licenseCommand() *cobra.Command {
	showOne := func(s *session, raw json.RawMessage) error {
		return s.print(raw, func(w io.Writer) { row(w, licenseHeader...); licenseRow(w, raw) })
	}
	// withKey prints a license and the key the portal shows this once.
	withKey := func(s *session, raw json.RawMessage) error {
		if s.json {
			return writeJSON(s.c.stdout, raw)
		}
		var lc struct {
			License json.RawMessage `json:"license"`
			Key     string          `json:"key"`
		}
		if err := json.Unmarshal(raw, &lc); err != nil {
			return fmt.Errorf("the portal's answer: %w", err)
		}
		if err := s.print(nil, func(w io.Writer) { row(w, licenseHeader...); licenseRow(w, lc.License) }); err != nil {
			return err
		}
		fmt.Fprintf(s.c.stderr, "the license key, shown this once:\n")
		fmt.Fprintln(s.c.stdout, lc.Key)
		return nil
	}
	action := func(use, short, path string, keyed bool) *cobra.Command {
		return c.verb(verb{use: use + " ID", short: short, args: cobra.ExactArgs(1),
			run: func(ctx context.Context, s *session, cmd *cobra.Command, args []string) error {
				var raw json.RawMessage
				if err := s.do(ctx, http.MethodPost, client.LicensePath(args[0])+path, nil, &raw); err != nil {
					return err
				}
				if keyed {
					return withKey(s, raw)
				}
				return showOne(s, unwrapLicense(raw))
			}})
	}
	var lf listFlags
	var filter struct{ product, customer, status, expiresBefore string }
	filterFlags := func(cmd *cobra.Command) {
		cmd.Flags().StringVar(&filter.product, "product", "", "licenses that cover this product")
		cmd.Flags().StringVar(&filter.customer, "customer", "", "licenses whose customer contains this, ignoring case")
		cmd.Flags().StringVar(&filter.status, "status", "", "active, expired, suspended or revoked")
		cmd.Flags().StringVar(&filter.expiresBefore, "expires-before", "", "licenses that expire before this RFC 3339 time or date")
		cmd.RegisterFlagCompletionFunc("status", cobra.FixedCompletions([]string{"active", "expired", "suspended", "revoked"}, cobra.ShellCompDirectiveNoFileComp))
	}
	query := func() (url.Values, error) {
		q := url.Values{}
		for k, v := range map[string]string{"product": filter.product, "customer": filter.customer, "status": filter.status} {
			if v != "" {
				q.Set(k, v)
			}
		}
		if filter.expiresBefore != "" {
			t, err := parseExpiry(filter.expiresBefore)
			if err != nil || t == nil {
				return nil, usagef("--expires-before %q: use an RFC 3339 time or a date", filter.expiresBefore)
			}
			q.Set("expires_before", t.UTC().Format(time.RFC3339))
		}
		return q, nil
	}
	var create, edit licenseFields
	var imp importOpts
	var eo exportOpts
	return group("license", "list, show, create, edit, suspend, reinstate, revoke, reissue, import and export licenses",
		c.verb(verb{use: "list [--product P] [--customer TEXT] [--status S] [--expires-before T]", short: "find licenses", flags: func(cmd *cobra.Command) {
			filterFlags(cmd)
			lf.add(cmd, 100)
		}, run: func(ctx context.Context, s *session, cmd *cobra.Command, args []string) error {
			q, err := query()
			if err != nil {
				return err
			}
			return s.list(ctx, "/v1/licenses", q, "licenses", lf, licenseHeader, licenseRow)
		}}),
		c.verb(verb{use: "show ID", short: "show a license (never its key)", args: cobra.ExactArgs(1),
			run: func(ctx context.Context, s *session, cmd *cobra.Command, args []string) error {
				var raw json.RawMessage
				if err := s.do(ctx, http.MethodGet, client.LicensePath(args[0]), nil, &raw); err != nil {
					return err
				}
				return showOne(s, unwrapLicense(raw))
			}}),
		c.verb(verb{use: "create --customer C --product P [--product P]...", short: "create a license and print its key once",
			flags: func(cmd *cobra.Command) {
				create.add(cmd)
				cmd.MarkFlagRequired("customer")
				cmd.MarkFlagRequired("product")
			},
			run: func(ctx context.Context, s *session, cmd *cobra.Command, args []string) error {
				in, err := create.body(cmd)
				if err != nil {
					return err
				}
				oneProduct(in)
				var raw json.RawMessage
				if err := s.do(ctx, http.MethodPost, "/v1/licenses", in, &raw); err != nil {
					return err
				}
				return withKey(s, raw)
			}}),
		c.verb(verb{use: "edit ID [--customer C] [--product P]... [--expires-at T] ...", short: "change a license: renew, extend, raise its quota, ...", args: cobra.ExactArgs(1),
			flags: edit.add,
			run: func(ctx context.Context, s *session, cmd *cobra.Command, args []string) error {
				in, err := edit.body(cmd)
				if err != nil {
					return err
				}
				if len(in) == 0 {
					return usagef("license edit: nothing to change: pass the flags to change (see --help)")
				}
				var raw json.RawMessage
				if err := s.do(ctx, http.MethodPatch, client.LicensePath(args[0]), in, &raw); err != nil {
					return err
				}
				return showOne(s, unwrapLicense(raw))
			}}),
		action("suspend", "suspend a license (reversible with reinstate)", "/suspend", false),
		action("reinstate", "make a suspended license active again", "/reinstate", false),
		action("revoke", "revoke a license for good", "/revoke", false),
		action("reissue", "give a license a new key (printed once); the old key stops working at once", "/reissue", true),
		c.verb(verb{use: "import FILE [--format csv|jsonl] [--dry-run]", short: "create licenses from CSV or JSON lines, all or nothing; print each new key once",
			args: cobra.ExactArgs(1), flags: imp.add,
			run: func(ctx context.Context, s *session, cmd *cobra.Command, args []string) error {
				return s.importLicenses(ctx, args[0], imp)
			}}),
		c.verb(verb{use: "export [--format csv|jsonl] [-o FILE]", short: "write licenses as CSV or JSON lines, in the form import reads",
			flags: func(cmd *cobra.Command) { filterFlags(cmd); eo.add(cmd) },
			run: func(ctx context.Context, s *session, cmd *cobra.Command, args []string) error {
				q, err := query()
				if err != nil {
					return err
				}
				return s.exportLicenses(ctx, q, eo)
			}}),
	)
}

// unwrapLicense takes the license out of an answer that wraps it
// ({"license": {...}, ...}), and leaves a bare license as it is.
func unwrapLicense(raw json.RawMessage) json.RawMessage {
	var w struct {
		License json.RawMessage `json:"license"`
		ID      string          `json:"id"`
	}
	if json.Unmarshal(raw, &w) == nil && w.ID == "" && len(w.License) > 0 {
		return w.License
	}
	return raw
}
