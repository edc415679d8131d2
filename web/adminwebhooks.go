package web

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/webhooks"
)

// The console's webhook pages (admins only, as /v1/webhooks): the list,
// create (the secret shown once), delete, and a webhook's deliveries with
// their attempts. webhooks.Service validates (the URL's scheme and public
// address, the event types) and audits each change.

type webhooksView struct {
	adminView
	Webhooks []webhooks.Webhook
	Events   []string
}

// requireWebhooks answers 404, as the API does, when the portal runs
// without a webhooks service.
func (h *Handler) requireWebhooks(c *gin.Context) {
	if h.Webhooks == nil {
		h.Fail(c, portal.Errorf(portal.ENotFound, "this portal has no webhooks"))
		return
	}
	c.Next()
}

func (h *Handler) adminWebhooks(c *gin.Context) {
	hs, err := h.Webhooks.List(c)
	if err != nil {
		h.Fail(c, err)
		return
	}
	h.Render(c, http.StatusOK, "admin_webhooks", "Webhooks",
		webhooksView{adminView: h.adminView(c, "webhooks"), Webhooks: hs, Events: webhooks.EventTypes()})
}

// adminCreateWebhook is POST /v1/webhooks; its secret is shown once, on
// this answer's own page.
func (h *Handler) adminCreateWebhook(c *gin.Context) {
	wh, secret, err := h.Webhooks.Create(c, strings.TrimSpace(c.PostForm("url")), formList(c.Request.PostForm, "event"))
	if err != nil {
		h.Fail(c, err)
		return
	}
	h.showSecret(c, http.StatusCreated, secretView{adminView: adminView{Section: "webhooks"}, What: "webhook secret", Secret: secret,
		Next: webhookPath(wh.ID), NextLabel: "Go to the webhook's deliveries",
		Kept:   "the portal keeps it sealed, to sign deliveries, and never shows it again",
		Notice: "Webhook " + wh.ID + " created for " + wh.URL + ". Its deliveries carry a Portal-Signature header made with this secret."})
}

// adminDeleteWebhook is DELETE /v1/webhooks/{id}.
func (h *Handler) adminDeleteWebhook(c *gin.Context) {
	if err := h.Webhooks.Delete(c, c.Param("id")); err != nil {
		h.Fail(c, err)
		return
	}
	h.done(c, "Webhook "+c.Param("id")+" deleted.", AdminPath+"/webhooks")
}

type webhookView struct {
	adminView
	Webhook    webhooks.Webhook
	Deliveries []webhooks.Delivery
	// Next is the URL of the next (older) page of deliveries, or "".
	Next string
}

// deliveriesPerPage is the deliveries of one page of a webhook.
const deliveriesPerPage = 25

// adminWebhook is a webhook and its deliveries, newest first, as GET
// /v1/webhooks/{id} and /v1/webhooks/{id}/deliveries.
func (h *Handler) adminWebhook(c *gin.Context) {
	id := c.Param("id")
	wh, err := h.Webhooks.Get(c, id)
	if err != nil {
		h.Fail(c, err)
		return
	}
	ds, next, err := h.Webhooks.Deliveries(c, id, deliveriesPerPage, c.Query("cursor"))
	if err != nil {
		h.Fail(c, err)
		return
	}
	v := webhookView{adminView: h.adminView(c, "webhooks"), Webhook: wh, Deliveries: ds}
	if next != "" {
		v.Next = webhookPath(id) + "?" + url.Values{"cursor": {next}}.Encode()
	}
	h.Render(c, http.StatusOK, "admin_webhook", "Webhook "+wh.ID, v)
}

func webhookPath(id string) string { return AdminPath + "/webhooks/" + url.PathEscape(id) }
