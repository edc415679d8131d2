package web

import (
	"encoding/json"
	"net/http"
	"net/url"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/downloads/ledger"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/tokens"
	"github.com/portaldist/portal/web/chart"
)

// The console's token, audit and downloads pages.

type tokensView struct {
	adminView
	Tokens []tokens.Token
	// Self is the signed-in token's id: revoking it ends this session.
	Self string
}

func (h *Handler) adminTokens(c *gin.Context) {
	ts, err := h.Tokens.List(c)
	if err != nil {
		h.Fail(c, err)
		return
	}
	v := tokensView{adminView: h.adminView(c, "tokens"), Tokens: ts}
	if t := who(c).Token(); t != nil {
		v.Self = t.ID
	}
	h.Render(c, http.StatusOK, "admin_tokens", "Tokens", v)
}

// adminCreateToken is tokens.Service.CreateWith, as POST /v1/tokens.
func (h *Handler) adminCreateToken(c *gin.Context) {
	nt, err := newTokenFromForm(c.Request.PostForm)
	if err != nil {
		h.Fail(c, err)
		return
	}
	t, raw, err := h.Tokens.CreateWith(c, nt)
	if err != nil {
		h.Fail(c, err)
		return
	}
	h.showSecret(c, http.StatusCreated, secretView{adminView: adminView{Section: "tokens"}, What: "token", Secret: raw,
		Next: AdminPath + "/tokens", NextLabel: "Back to the tokens",
		Notice: "Token " + t.ID + " (" + t.Name + ", " + t.Role + ") created."})
}

// adminRevokeToken is tokens.Service.Delete, as DELETE /v1/tokens/{id}.
func (h *Handler) adminRevokeToken(c *gin.Context) {
	if err := h.Tokens.Delete(c, c.Param("id")); err != nil {
		h.Fail(c, err)
		return
	}
	h.done(c, "Token "+c.Param("id")+" revoked.", AdminPath+"/tokens")
}

type auditView struct {
	adminView
	Records []auditRow
	// The filter as the form shows it, and the next page's URL.
	Actor, Action, Target, Since, Until string
	Next                                string
}

// auditRow is a record with its before and after as indented JSON.
type auditRow struct {
	audit.Record
	BeforeText, AfterText string
}

func indentJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

// adminAudit is the audit log, newest first, filtered as GET /v1/audit
// (audit.ParseFilter) and paged by its cursor.
func (h *Handler) adminAudit(c *gin.Context) {
	q := c.Request.URL.Query()
	f, err := auditFilterFromQuery(q)
	if err != nil {
		h.Fail(c, err)
		return
	}
	recs, next, err := audit.New(h.Store).List(c, f)
	if err != nil {
		h.Fail(c, err)
		return
	}
	v := auditView{adminView: h.adminView(c, "audit"), Actor: q.Get("actor"), Action: q.Get("action"), Target: q.Get("target"),
		Since: q.Get("since"), Until: q.Get("until")}
	for _, r := range recs {
		v.Records = append(v.Records, auditRow{Record: r, BeforeText: indentJSON(r.Before), AfterText: indentJSON(r.After)})
	}
	if next != "" {
		nq := url.Values{}
		for _, k := range []string{"actor", "action", "target", "since", "until"} {
			if s := q.Get(k); s != "" {
				nq.Set(k, s)
			}
		}
		nq.Set("cursor", next)
		v.Next = AdminPath + "/audit?" + nq.Encode()
	}
	h.Render(c, http.StatusOK, "admin_audit", "Audit log", v)
}

// chartDays is the window of the downloads chart.
const chartDays = 30

type downloadsView struct {
	adminView
	Products []productDownloads
	First    time.Time
	Days     int
}

type productDownloads struct {
	Product releases.Product
	// Total is every download of the product so far; Window those of the
	// chart's days.
	Total, Window uint64
	Chart         chart.Daily
	Releases      []ledger.ReleaseDays
}

// adminDownloads shows, per product the caller manages, its downloads per
// day and release over the last chartDays days (the ledger's daily
// rollups) as a chart drawn on the server, and its total downloads.
func (h *Handler) adminDownloads(c *gin.Context) {
	ps, err := h.managedProducts(c)
	if err != nil {
		h.Fail(c, err)
		return
	}
	v := downloadsView{adminView: h.adminView(c, "downloads"), Days: chartDays}
	led := h.ledger()
	for _, p := range ps {
		pd := productDownloads{Product: p}
		if led != nil {
			first, rds, err := led.DailyByRelease(c, p.Slug, h.now(), chartDays)
			if err != nil {
				h.Fail(c, err)
				return
			}
			if pd.Total, err = led.Total(c, p.Slug); err != nil {
				h.Fail(c, err)
				return
			}
			v.First = first
			pd.Releases = rds
			series := make([]chart.Series, len(rds))
			for i, rd := range rds {
				series[i] = chart.Series{Name: rd.Version, Values: rd.Days}
				pd.Window += rd.Total
			}
			pd.Chart = chart.Daily{ID: "chart-" + p.Slug, Title: "Downloads of " + p.Name + " per day, last 30 days",
				First: first, Days: chartDays, Series: series}
		}
		v.Products = append(v.Products, pd)
	}
	h.Render(c, http.StatusOK, "admin_downloads", "Downloads", v)
}
