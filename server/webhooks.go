package server

import (
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/webhooks"
)

// webhookRoutes registers the webhook administration (admin only). Without
// a webhooks service the routes answer 404.
func (s *Server) webhookRoutes(v1 *gin.RouterGroup) {
	if s.Webhooks == nil {
		return
	}
	v1.POST("/webhooks", s.requireAdmin, s.createWebhook)
	v1.GET("/webhooks", s.requireAdmin, s.listWebhooks)
	v1.GET("/webhooks/:id", s.requireAdmin, s.getWebhook)
	v1.DELETE("/webhooks/:id", s.requireAdmin, s.deleteWebhook)
	v1.GET("/webhooks/:id/deliveries", s.requireAdmin, s.webhookDeliveries)
}

func (s *Server) createWebhook(c *gin.Context) {
	var in struct {
		URL    string   `json:"url"`
		Events []string `json:"events"`
	}
	if err := s.decode(c, &in); err != nil {
		s.fail(c, err)
		return
	}
	h, secret, err := s.Webhooks.Create(c, in.URL, in.Events)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.PureJSON(http.StatusCreated, gin.H{"webhook": h, "secret": secret})
}

func (s *Server) listWebhooks(c *gin.Context) {
	hs, err := s.Webhooks.List(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.PureJSON(http.StatusOK, gin.H{"webhooks": hs})
}

func (s *Server) getWebhook(c *gin.Context) {
	h, err := s.Webhooks.Get(c, c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.PureJSON(http.StatusOK, gin.H{"webhook": h})
}

func (s *Server) deleteWebhook(c *gin.Context) {
	if err := s.Webhooks.Delete(c, c.Param("id")); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// webhookDeliveries answers GET /v1/webhooks/{id}/deliveries?limit=&cursor=,
// newest first.
func (s *Server) webhookDeliveries(c *gin.Context) {
	limit := 0
	if v, ok := c.GetQuery("limit"); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			e := portal.Errorf(portal.EInvalid, "limit must be a whole number from 1 to %d", webhooks.MaxDeliveries)
			e.Details = map[string]any{"field": "limit"}
			s.fail(c, e)
			return
		}
		if n == 0 {
			n = -1 // refused by Deliveries, like any other bad limit
		}
		limit = n
	}
	ds, next, err := s.Webhooks.Deliveries(c, c.Param("id"), limit, c.Query("cursor"))
	if err != nil {
		s.fail(c, err)
		return
	}
	out := gin.H{"deliveries": ds}
	if next != "" {
		out["next_cursor"] = next
	}
	c.PureJSON(http.StatusOK, out)
}
