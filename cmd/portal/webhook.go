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

	"github.com/spf13/cobra"

	"github.com/portaldist/portal/client"
)

var webhookHeader = []string{"ID", "URL", "EVENTS", "CREATED"}

func webhookRow(w io.Writer, raw json.RawMessage) error {
	var h client.Webhook
	if err := json.Unmarshal(raw, &h); err != nil {
		return err
	}
	row(w, h.ID, h.URL, strings.Join(h.Events, " "), fmtTime(&h.CreatedAt))
	return nil
}

var deliveryHeader = []string{"ID", "EVENT", "TYPE", "STATUS", "ATTEMPTS", "LAST", "NEXT RETRY"}

func deliveryRow(w io.Writer, raw json.RawMessage) error {
	var d client.WebhookDelivery
	if err := json.Unmarshal(raw, &d); err != nil {
		return err
	}
	last, next := "", ""
	if n := len(d.Attempts); n > 0 {
		a := d.Attempts[n-1]
		last = a.Error
		if a.StatusCode != 0 {
			last = strconv.Itoa(a.StatusCode)
		}
		next = fmtTime(a.NextRetry)
	}
	row(w, d.ID, d.Event.ID, d.Event.Type, d.Status, strconv.Itoa(len(d.Attempts)), last, next)
	return nil
}

func (c cli) webhookCommand() *cobra.Command {
	var events []string
	var lf listFlags
	return group("webhook", "list, create and delete webhooks, and read their delivery log",
		c.verb(verb{use: "list", short: "list the webhooks (never their secrets)",
			run: func(ctx context.Context, s *session, cmd *cobra.Command, args []string) error {
				return s.list(ctx, "/v1/webhooks", nil, "webhooks", listFlags{}, webhookHeader, webhookRow)
			}}),
		c.verb(verb{use: "create URL --events TYPE[,TYPE...]",
			short: "subscribe URL to events and print the signing secret (shown once)", args: cobra.ExactArgs(1),
			flags: func(cmd *cobra.Command) {
				cmd.Flags().StringSliceVar(&events, "events", nil, "event types: release.published, release.yanked, "+
					"artifact.uploaded, artifact.failed, license.created, license.updated, license.suspended, "+
					"license.expired, link.created (required)")
				cmd.MarkFlagRequired("events")
			},
			run: func(ctx context.Context, s *session, cmd *cobra.Command, args []string) error {
				var raw json.RawMessage
				if err := s.do(ctx, http.MethodPost, "/v1/webhooks", map[string]any{"url": args[0], "events": events}, &raw); err != nil {
					return err
				}
				if s.json {
					return writeJSON(s.c.stdout, raw)
				}
				var out struct {
					Webhook client.Webhook `json:"webhook"`
					Secret  string         `json:"secret"`
				}
				if err := json.Unmarshal(raw, &out); err != nil {
					return fmt.Errorf("the portal's answer: %w", err)
				}
				fmt.Fprintf(s.c.stderr, "webhook %s to %s for %s; its signing secret (shown once):\n",
					out.Webhook.ID, out.Webhook.URL, strings.Join(out.Webhook.Events, " "))
				fmt.Fprintln(s.c.stdout, out.Secret)
				return nil
			}}),
		c.verb(verb{use: "delete ID", short: "delete a webhook: nothing more is sent to it", args: cobra.ExactArgs(1),
			run: func(ctx context.Context, s *session, cmd *cobra.Command, args []string) error {
				if err := s.do(ctx, http.MethodDelete, "/v1/webhooks/"+url.PathEscape(args[0]), nil, nil); err != nil {
					return err
				}
				fmt.Fprintf(s.c.stdout, "deleted webhook %s\n", args[0])
				return nil
			}}),
		c.verb(verb{use: "deliveries ID", short: "a webhook's deliveries, newest first, with their attempts (--json for every attempt)",
			args:  cobra.ExactArgs(1),
			flags: func(cmd *cobra.Command) { lf.add(cmd, 50) },
			run: func(ctx context.Context, s *session, cmd *cobra.Command, args []string) error {
				return s.list(ctx, "/v1/webhooks/"+url.PathEscape(args[0])+"/deliveries", nil, "deliveries", lf, deliveryHeader, deliveryRow)
			}}),
	)
}
