package client

import "time"

// Webhook is a subscribed endpoint (GET /v1/webhooks); its secret is shown
// once, in the answer to its creation.
type Webhook struct {
	ID        string    `json:"id"`
	URL       string    `json:"url"`
	Events    []string  `json:"events"`
	CreatedAt time.Time `json:"created_at"`
}

// WebhookAttempt is one try of a delivery.
type WebhookAttempt struct {
	Time       time.Time  `json:"time"`
	StatusCode int        `json:"status_code,omitempty"`
	Error      string     `json:"error,omitempty"`
	NextRetry  *time.Time `json:"next_retry,omitempty"`
}

// WebhookDelivery is one event for one webhook with its attempts
// (GET /v1/webhooks/{id}/deliveries).
type WebhookDelivery struct {
	ID      string `json:"id"`
	Webhook string `json:"webhook"`
	Event   struct {
		ID        string    `json:"id"`
		Type      string    `json:"type"`
		CreatedAt time.Time `json:"created_at"`
	} `json:"event"`
	Status    string           `json:"status"`
	Attempts  []WebhookAttempt `json:"attempts"`
	NextAt    *time.Time       `json:"next_at,omitempty"`
	CreatedAt time.Time        `json:"created_at"`
}
