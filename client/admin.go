package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Do sends a JSON request to an API path (with its query) and decodes the
// answer into out: nil discards it, a *json.RawMessage keeps the API's
// object byte for byte. Non-2xx answers are *Error values.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	return c.call(ctx, method, path, in, out)
}

// Page is one page of a list route: the items of its array field, raw, and
// the cursor of the next page ("" on the last one).
type Page struct {
	Items      []json.RawMessage
	NextCursor string
}

// List reads one page of a list route whose answer is {field: [...],
// next_cursor?}. q may be nil.
func (c *Client) List(ctx context.Context, path string, q url.Values, field string) (Page, error) {
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var raw map[string]json.RawMessage
	if err := c.call(ctx, http.MethodGet, path, nil, &raw); err != nil {
		return Page{}, err
	}
	var p Page
	items, ok := raw[field]
	if !ok {
		return Page{}, fmt.Errorf("GET %s: the answer has no %q list", stripQuery(path), field)
	}
	if err := json.Unmarshal(items, &p.Items); err != nil {
		return Page{}, fmt.Errorf("GET %s: %s: %w", stripQuery(path), field, err)
	}
	if nc, ok := raw["next_cursor"]; ok {
		json.Unmarshal(nc, &p.NextCursor)
	}
	return p, nil
}

// ListAll follows the cursors of a list route from q's cursor (if any) to
// the last page, calling fn with each page's items. It stops at fn's first
// error.
func (c *Client) ListAll(ctx context.Context, path string, q url.Values, field string, fn func([]json.RawMessage) error) error {
	q = cloneValues(q)
	for {
		p, err := c.List(ctx, path, q, field)
		if err != nil {
			return err
		}
		if err := fn(p.Items); err != nil {
			return err
		}
		if p.NextCursor == "" || len(p.Items) == 0 || p.NextCursor == q.Get("cursor") {
			return nil
		}
		q.Set("cursor", p.NextCursor)
	}
}

func cloneValues(q url.Values) url.Values {
	out := url.Values{}
	for k, v := range q {
		out[k] = append([]string(nil), v...)
	}
	return out
}

// Product is a product as the API shows it.
type Product struct {
	Slug         string    `json:"slug"`
	Name         string    `json:"name"`
	Distribution string    `json:"distribution"`
	CreatedAt    time.Time `json:"created_at"`
}

// CustomerLicense is a customer license as the API shows it (never its key).
// Products is set by portals that let a license cover several products;
// Product is the one-product form older portals answer.
type CustomerLicense struct {
	ID              string            `json:"id"`
	Customer        string            `json:"customer"`
	Product         string            `json:"product,omitempty"`
	Products        []string          `json:"products,omitempty"`
	Constraint      string            `json:"constraint,omitempty"`
	Channels        []string          `json:"channels,omitempty"`
	Platforms       []string          `json:"platforms,omitempty"`
	ExpiresAt       *time.Time        `json:"expires_at,omitempty"`
	OnExpiry        string            `json:"on_expiry"`
	DownloadsPerDay int               `json:"downloads_per_day,omitempty"`
	Metadata        map[string]string `json:"metadata,omitempty"`
	Status          string            `json:"status"`
	CreatedAt       time.Time         `json:"created_at"`
	UpdatedAt       time.Time         `json:"updated_at"`
	KeyHint         string            `json:"key_hint"`
}

// AllProducts is the license's products in either form.
func (l CustomerLicense) AllProducts() []string {
	if len(l.Products) > 0 {
		return l.Products
	}
	if l.Product != "" {
		return []string{l.Product}
	}
	return nil
}

// LicenseCreated is the answer to creating or reissuing a license: the
// license and its key, which the portal shows this once.
type LicenseCreated struct {
	License CustomerLicense `json:"license"`
	Key     string          `json:"key"`
}

// Token is an API token as the API lists it (never its secret).
type Token struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Role       string     `json:"role"`
	Products   []string   `json:"products,omitempty"`
	Hint       string     `json:"hint,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
}

// Link is a share link as the API shows it. URL is present only in the
// answer that created it.
type Link struct {
	ID        string     `json:"id"`
	URL       string     `json:"url,omitempty"`
	License   string     `json:"license,omitempty"`
	Product   string     `json:"product"`
	Version   string     `json:"version"`
	Filename  string     `json:"filename"`
	ExpiresAt time.Time  `json:"expires_at"`
	CreatedAt *time.Time `json:"created_at,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// AuditRecord is one entry of the audit log.
type AuditRecord struct {
	ID        string          `json:"id,omitempty"`
	Time      time.Time       `json:"time"`
	Actor     json.RawMessage `json:"actor"`
	Action    string          `json:"action"`
	Target    string          `json:"target"`
	Client    string          `json:"client,omitempty"`
	RequestID string          `json:"request_id,omitempty"`
	Before    json.RawMessage `json:"before,omitempty"`
	After     json.RawMessage `json:"after,omitempty"`
}

// ActorName is a short form of the record's actor for a table: the
// actor's name, kind and id when it is an object, the text when a string.
func (r AuditRecord) ActorName() string {
	var s string
	if json.Unmarshal(r.Actor, &s) == nil {
		return s
	}
	var a struct {
		Kind string `json:"kind"`
		Type string `json:"type"`
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	if json.Unmarshal(r.Actor, &a) != nil {
		return string(r.Actor)
	}
	kind := a.Kind
	if kind == "" {
		kind = a.Type
	}
	out := kind
	if a.ID != "" {
		out += ":" + a.ID
	}
	if a.Name != "" {
		out += " (" + a.Name + ")"
	}
	return out
}

// ProductPath is the API path of a product.
func ProductPath(product string) string { return "/v1/products/" + url.PathEscape(product) }

// ReleasePath is the API path of a release.
func ReleasePath(product, version string) string { return releasePath(product, version) }

// LicensePath is the API path of a license.
func LicensePath(id string) string { return "/v1/licenses/" + url.PathEscape(id) }
