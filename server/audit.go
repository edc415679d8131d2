package server

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/audit"
)

// auditRoutes registers the audit log's reading side (admin only).
func (s *Server) auditRoutes(v1 *gin.RouterGroup) {
	v1.GET("/audit", s.requireAdmin, s.listAudit)
}

// auditParams are the query parameters of GET /v1/audit.
var auditParams = map[string]bool{"actor": true, "action": true, "target": true, "since": true, "until": true, "limit": true, "cursor": true}

// listAudit answers GET /v1/audit: records newest first, filtered by
// audit.ParseFilter, with next_cursor while there may be more.
func (s *Server) listAudit(c *gin.Context) {
	q := c.Request.URL.Query()
	for name := range q {
		if !auditParams[name] {
			e := portal.Errorf(portal.EInvalid, "unknown query parameter %q: use actor, action, target, since, until, limit or cursor", truncateParam(name))
			e.Details = map[string]any{"field": truncateParam(name)}
			s.fail(c, e)
			return
		}
	}
	f, err := audit.ParseFilter(q)
	if err != nil {
		s.fail(c, err)
		return
	}
	recs, next, err := audit.New(s.Store).List(c, f)
	if err != nil {
		s.fail(c, err)
		return
	}
	if recs == nil {
		recs = []audit.Record{}
	}
	out := gin.H{"records": recs}
	if next != "" {
		out["next_cursor"] = next
	}
	c.PureJSON(http.StatusOK, out)
}

func truncateParam(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
