package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/client"
	"github.com/portaldist/portal/licenses"
)

// licenseColumns are the columns of the CSV form, in order: the fields a
// vendor sets on a license. Lists are separated by spaces, metadata is a
// JSON object, times are RFC 3339 UTC.
var licenseColumns = []string{"customer", "products", "constraint", "channels", "platforms",
	"expires_at", "on_expiry", "downloads_per_day", "metadata"}

// licenseRecord is one license in the import and export forms (a JSON line
// has exactly these fields; "product" is accepted for one product).
type licenseRecord struct {
	Customer        string            `json:"customer"`
	Product         string            `json:"product,omitempty"`
	Products        []string          `json:"products,omitempty"`
	Constraint      string            `json:"constraint,omitempty"`
	Channels        []string          `json:"channels,omitempty"`
	Platforms       []string          `json:"platforms,omitempty"`
	ExpiresAt       *time.Time        `json:"expires_at,omitempty"`
	OnExpiry        string            `json:"on_expiry,omitempty"`
	DownloadsPerDay int               `json:"downloads_per_day,omitempty"`
	Metadata        map[string]string `json:"metadata,omitempty"`

	line int // where it was read, for errors
}

func recordOf(l client.CustomerLicense) licenseRecord {
	r := licenseRecord{Customer: l.Customer, Products: l.AllProducts(), Constraint: l.Constraint,
		Channels: l.Channels, Platforms: l.Platforms, OnExpiry: l.OnExpiry,
		DownloadsPerDay: l.DownloadsPerDay, Metadata: l.Metadata}
	if l.ExpiresAt != nil {
		t := l.ExpiresAt.UTC()
		r.ExpiresAt = &t
	}
	return r
}

// request is the create request of a record.
func (r licenseRecord) request() map[string]any {
	in := map[string]any{"customer": r.Customer, "products": r.allProducts()}
	if r.Constraint != "" {
		in["constraint"] = r.Constraint
	}
	if len(r.Channels) > 0 {
		in["channels"] = r.Channels
	}
	if len(r.Platforms) > 0 {
		in["platforms"] = r.Platforms
	}
	if r.ExpiresAt != nil {
		in["expires_at"] = r.ExpiresAt
	}
	if r.OnExpiry != "" {
		in["on_expiry"] = r.OnExpiry
	}
	if r.DownloadsPerDay != 0 {
		in["downloads_per_day"] = r.DownloadsPerDay
	}
	if len(r.Metadata) > 0 {
		in["metadata"] = r.Metadata
	}
	oneProduct(in)
	return in
}

func (r licenseRecord) allProducts() []string {
	if len(r.Products) > 0 {
		return r.Products
	}
	if r.Product != "" {
		return []string{r.Product}
	}
	return nil
}

func (r licenseRecord) csvRow() []string {
	var exp, perDay, meta string
	if r.ExpiresAt != nil {
		exp = r.ExpiresAt.UTC().Format(time.RFC3339Nano)
	}
	if r.DownloadsPerDay != 0 {
		perDay = strconv.Itoa(r.DownloadsPerDay)
	}
	if len(r.Metadata) > 0 {
		b, _ := json.Marshal(r.Metadata)
		meta = string(b)
	}
	return []string{r.Customer, strings.Join(r.allProducts(), " "), r.Constraint, strings.Join(r.Channels, " "),
		strings.Join(r.Platforms, " "), exp, r.OnExpiry, perDay, meta}
}

// format is csv or jsonl: the flag's, else from the file name.
func licenseFormat(flag, name string) (string, error) {
	switch strings.ToLower(flag) {
	case "csv", "jsonl":
		return strings.ToLower(flag), nil
	case "json", "ndjson":
		return "jsonl", nil
	case "":
		switch strings.ToLower(filepath.Ext(name)) {
		case ".jsonl", ".ndjson", ".json":
			return "jsonl", nil
		}
		return "csv", nil
	}
	return "", usagef("--format %q: use csv or jsonl", flag)
}

// parseLicenses reads every record of a CSV or JSON-lines file. Errors
// name the line; all of them are returned, not just the first.
func parseLicenses(data []byte, format string) ([]licenseRecord, []string) {
	var recs []licenseRecord
	var errs []string
	if format == "jsonl" {
		for i, line := range bytes.Split(data, []byte("\n")) {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			dec := json.NewDecoder(bytes.NewReader(line))
			dec.DisallowUnknownFields()
			var r licenseRecord
			if err := dec.Decode(&r); err != nil {
				errs = append(errs, fmt.Sprintf("line %d: %v", i+1, err))
				continue
			}
			r.line = i + 1
			recs = append(recs, r)
		}
		return recs, errs
	}
	cr := csv.NewReader(bytes.NewReader(data))
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err != nil {
		return nil, []string{fmt.Sprintf("line 1: a header row is needed (%s): %v", strings.Join(licenseColumns, ","), err)}
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		if h == "product" {
			h = "products"
		}
		known := false
		for _, c := range licenseColumns {
			known = known || c == h
		}
		if !known {
			return nil, []string{fmt.Sprintf("line 1: unknown column %q: the columns are %s", h, strings.Join(licenseColumns, ","))}
		}
		col[h] = i
	}
	for _, need := range []string{"customer", "products"} {
		if _, ok := col[need]; !ok {
			return nil, []string{fmt.Sprintf("line 1: the header has no %s column", need)}
		}
	}
	for {
		fields, err := cr.Read()
		if err == io.EOF {
			break
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			errs = append(errs, err.Error())
			if _, ok := err.(*csv.ParseError); ok {
				continue
			}
			break
		}
		get := func(name string) string {
			if i, ok := col[name]; ok && i < len(fields) {
				return strings.TrimSpace(fields[i])
			}
			return ""
		}
		r := licenseRecord{line: line, Customer: get("customer"), Products: strings.Fields(get("products")),
			Constraint: get("constraint"), Channels: strings.Fields(get("channels")), Platforms: strings.Fields(get("platforms")),
			OnExpiry: get("on_expiry")}
		bad := func(field string, err error) { errs = append(errs, fmt.Sprintf("line %d: %s: %v", line, field, err)) }
		if s := get("expires_at"); s != "" {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				bad("expires_at", fmt.Errorf("%q is not an RFC 3339 time", s))
				continue
			}
			r.ExpiresAt = &t
		}
		if s := get("downloads_per_day"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				bad("downloads_per_day", fmt.Errorf("%q is not a whole number", s))
				continue
			}
			r.DownloadsPerDay = n
		}
		if s := get("metadata"); s != "" {
			if err := json.Unmarshal([]byte(s), &r.Metadata); err != nil {
				bad("metadata", fmt.Errorf("not a JSON object of strings: %v", err))
				continue
			}
		}
		recs = append(recs, r)
	}
	return recs, errs
}

type importOpts struct {
	format string
	dryRun bool
}

func (o *importOpts) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.format, "format", "", "csv or jsonl (default: from the file name; csv)")
	cmd.Flags().BoolVar(&o.dryRun, "dry-run", false, "check every row, create nothing")
	cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"csv", "jsonl"}, cobra.ShellCompDirectiveNoFileComp))
}

// importLicenses checks every row before it creates any license: the
// license rules of the licenses package (the ones the portal applies) on
// each row, then that each product exists on the portal, naming file
// lines. Then the portal's import creates every license in one
// transaction, or none (it checks the rows again; --dry-run asks it to
// check only).
func (s *session) importLicenses(ctx context.Context, file string, o importOpts) error {
	format, err := licenseFormat(o.format, file)
	if err != nil {
		return err
	}
	data, err := s.c.readFileArg(file)
	if err != nil {
		return err
	}
	recs, errs := parseLicenses(data, format)
	products := map[string][]int{}
	for _, r := range recs {
		l := licenses.License{Customer: r.Customer, Products: append([]string(nil), r.allProducts()...), Constraint: r.Constraint,
			Channels: append([]string(nil), r.Channels...), Platforms: append([]string(nil), r.Platforms...),
			ExpiresAt: r.ExpiresAt, OnExpiry: r.OnExpiry, DownloadsPerDay: r.DownloadsPerDay, Metadata: r.Metadata}
		if err := l.Validate(); err != nil {
			errs = append(errs, fmt.Sprintf("line %d: %s", r.line, portal.ErrorMessage(err)))
			continue
		}
		for _, p := range r.allProducts() {
			products[p] = append(products[p], r.line)
		}
	}
	if len(errs) > 0 {
		return usagef("license import: %s: nothing was imported:\n  %s", file, joinErrs(errs))
	}
	if len(recs) == 0 {
		return usagef("license import: %s holds no licenses", file)
	}
	for p, lines := range products {
		err := s.api.Do(ctx, http.MethodGet, client.ProductPath(p), nil, nil)
		if client.IsStatus(err, http.StatusNotFound) {
			errs = append(errs, fmt.Sprintf("line %d: no product %q on %s (%d rows name it)", lines[0], p, s.url, len(lines)))
		} else if err != nil {
			return s.explain(err)
		}
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		return usagef("license import: %s: nothing was imported:\n  %s", file, joinErrs(errs))
	}
	// The portal checks every row again and creates all of them in one
	// transaction, or none (POST /v1/licenses/import).
	body := struct {
		Licenses []any `json:"licenses"`
		DryRun   bool  `json:"dry_run"`
	}{DryRun: o.dryRun}
	for _, r := range recs {
		body.Licenses = append(body.Licenses, r.request())
	}
	var out struct {
		Licenses []json.RawMessage `json:"licenses"`
	}
	if err := s.api.Do(ctx, http.MethodPost, "/v1/licenses/import", body, &out); err != nil {
		var ce *client.Error
		if errors.As(err, &ce) {
			return &refusedError{fmt.Sprintf("license import: %s: %v (rows count from 1, in file order)", file, s.explain(err)), ce}
		}
		return s.explain(err)
	}
	if o.dryRun {
		fmt.Fprintf(s.c.stdout, "%d licenses checked: every row is valid; nothing was imported (--dry-run)\n", len(recs))
		return nil
	}
	created := out.Licenses
	if s.json {
		b, _ := json.Marshal(created)
		return writeJSON(s.c.stdout, b)
	}
	fmt.Fprintf(s.c.stderr, "%d licenses imported; their keys are shown this once:\n", len(created))
	return s.print(nil, func(w io.Writer) {
		row(w, "ID", "CUSTOMER", "PRODUCTS", "KEY")
		for _, raw := range created {
			var lc client.LicenseCreated
			json.Unmarshal(raw, &lc)
			row(w, lc.License.ID, lc.License.Customer, strings.Join(lc.License.AllProducts(), " "), lc.Key)
		}
	})
}

func joinErrs(errs []string) string {
	const most = 20
	if len(errs) > most {
		return strings.Join(errs[:most], "\n  ") + fmt.Sprintf("\n  ... and %d more", len(errs)-most)
	}
	return strings.Join(errs, "\n  ")
}

type exportOpts struct {
	format, output string
}

func (o *exportOpts) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.format, "format", "", "csv or jsonl (default: from -o's name; csv)")
	cmd.Flags().StringVarP(&o.output, "output", "o", "", "file to write (default: standard output)")
	cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"csv", "jsonl"}, cobra.ShellCompDirectiveNoFileComp))
}

// exportLicenses writes the licenses the query selects in the form import
// reads, oldest first. The portal keeps creation times to the second and
// ids are random, so licenses created in the same second (an import) are
// ordered by customer, then by their record, then by id: importing an
// export and exporting again gives the same file, and so does a file
// whose rows are sorted by customer.
func (s *session) exportLicenses(ctx context.Context, q url.Values, o exportOpts) error {
	format, err := licenseFormat(o.format, o.output)
	if err != nil {
		return err
	}
	q.Set("limit", "1000")
	var ls []client.CustomerLicense
	err = s.api.ListAll(ctx, "/v1/licenses", q, "licenses", func(items []json.RawMessage) error {
		for _, raw := range items {
			var l client.CustomerLicense
			if err := json.Unmarshal(raw, &l); err != nil {
				return fmt.Errorf("the portal's answer: %w", err)
			}
			ls = append(ls, l)
		}
		return nil
	})
	if err != nil {
		return s.explain(err)
	}
	sort.SliceStable(ls, func(i, j int) bool {
		a, b := ls[i], ls[j]
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.Before(b.CreatedAt)
		}
		if a.Customer != b.Customer {
			return a.Customer < b.Customer
		}
		if ra, rb := strings.Join(recordOf(a).csvRow(), "\x00"), strings.Join(recordOf(b).csvRow(), "\x00"); ra != rb {
			return ra < rb
		}
		return a.ID < b.ID
	})
	var buf bytes.Buffer
	if format == "jsonl" {
		enc := json.NewEncoder(&buf)
		for _, l := range ls {
			if err := enc.Encode(recordOf(l)); err != nil {
				return err
			}
		}
	} else {
		w := csv.NewWriter(&buf)
		w.Write(licenseColumns)
		for _, l := range ls {
			w.Write(recordOf(l).csvRow())
		}
		w.Flush()
		if err := w.Error(); err != nil {
			return err
		}
	}
	if o.output == "" || o.output == "-" {
		_, err := s.c.stdout.Write(buf.Bytes())
		return err
	}
	if err := os.WriteFile(o.output, buf.Bytes(), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(s.c.stderr, "%d licenses written to %s\n", len(ls), o.output)
	return nil
}
