package webhooks

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/store"
)

// Event is what a delivery posts, signed.
type Event struct {
	// ID is the same for every delivery of one event ("evt_" and the audit
	// record's position): receivers use it to drop a repeated delivery.
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	CreatedAt time.Time       `json:"created_at"`
	Data      json.RawMessage `json:"data"`
}

// EventData is an event's data: the audit record's target ("license/ID",
// "release/PRODUCT/VERSION", "artifact/PRODUCT/VERSION/FILE", "link/ID"),
// the actor, and the object's state before and after the change (only the
// fields that changed, for an update; never a secret).
type EventData struct {
	Target string          `json:"target"`
	Actor  audit.Actor     `json:"actor"`
	Before json.RawMessage `json:"before,omitempty"`
	After  json.RawMessage `json:"after,omitempty"`
}

// Delivery states.
const (
	Pending   = "pending"
	Succeeded = "succeeded"
	Failed    = "failed"
)

// Attempt is one try of a delivery.
type Attempt struct {
	Time time.Time `json:"time"`
	// StatusCode is the receiver's answer, 0 when there was none.
	StatusCode int `json:"status_code,omitempty"`
	// Error says why an attempt without an answer failed.
	Error string `json:"error,omitempty"`
	// NextRetry is when the delivery is tried again; nil after the last
	// attempt.
	NextRetry *time.Time `json:"next_retry,omitempty"`
}

// Delivery is one event for one webhook, with its attempts.
type Delivery struct {
	ID        string    `json:"id"`
	Webhook   string    `json:"webhook"`
	Event     Event     `json:"event"`
	Status    string    `json:"status"`
	Attempts  []Attempt `json:"attempts"`
	NextAt    time.Time `json:"next_at,omitzero"`
	CreatedAt time.Time `json:"created_at"`
}

func dueKey(at time.Time, id string) []byte {
	k := make([]byte, 0, len(duePrefix)+8+len(id))
	k = append(k, duePrefix...)
	k = binary.BigEndian.AppendUint64(k, uint64(max(at.UnixNano(), 0)))
	return append(k, id...)
}

// dispatchBatch is the most audit records one dispatch transaction reads.
const dispatchBatch = 64

// RunDispatcher follows the audit log and writes the deliveries of its
// events until ctx ends. It starts from the position kept in the store,
// which the first webhook sets to the end of the log (earlier changes make
// no events; a webhook gets only the events of records written after its
// creation). While there is no webhook it writes nothing. It acts on store.Watch notices, and every minute besides.
func (s *Service) RunDispatcher(ctx context.Context) {
	events, err := s.db.Watch(ctx, audit.Prefix())
	if err != nil {
		s.log.Error("webhooks: watch the audit log", "err", err)
		return
	}
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		for {
			more, err := s.DispatchOnce(ctx)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("webhooks: dispatch", "err", err)
				}
				break
			}
			if !more {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case _, ok := <-events:
			if !ok {
				return
			}
		case <-tick.C:
		}
	}
}

// DispatchOnce turns the audit records after the dispatcher's position into
// deliveries, in one transaction with the new position, and reports
// whether records are left for another call.
func (s *Service) DispatchOnce(ctx context.Context) (bool, error) {
	var more, made bool
	err := s.db.Update(ctx, func(tx store.Tx) error {
		more, made = false, false
		var hooks []stored
		if err := tx.Scan([]byte(hookPrefix), store.ScanOptions{}, func(_, v []byte) (bool, error) {
			var h stored
			if err := json.Unmarshal(v, &h); err != nil {
				return false, err
			}
			hooks = append(hooks, h)
			return true, nil
		}); err != nil {
			return err
		}
		if len(hooks) == 0 {
			// Nothing to deliver, nothing written: Create moves the
			// position to the end of the log when the first webhook comes.
			return nil
		}
		pos, err := tx.Get([]byte(positionKey))
		if errors.Is(err, store.ErrNotFound) {
			last, err := audit.Last(tx)
			if err != nil {
				return err
			}
			if last == nil {
				last = audit.Prefix()
			}
			return tx.Put([]byte(positionKey), last)
		}
		if err != nil {
			return err
		}
		if string(pos) == string(audit.Prefix()) {
			pos = nil
		}
		entries, err := audit.After(tx, pos, dispatchBatch)
		if err != nil || len(entries) == 0 {
			return err
		}
		budget := s.db.MaxTxnOps() - 2 // the position and the sequence
		var done []byte
		for _, e := range entries {
			typ := eventOf[e.Action]
			var subs []stored
			if typ != "" {
				for _, h := range hooks {
					if slices.Contains(h.Events, typ) && bytes.Compare(e.Key, h.Since) > 0 {
						subs = append(subs, h)
					}
				}
			}
			if 3*len(subs) > budget {
				if done == nil {
					return fmt.Errorf("webhooks: %d deliveries do not fit one transaction", len(subs))
				}
				more = true
				break
			}
			budget -= 3 * len(subs)
			if len(subs) > 0 {
				if err := s.writeDeliveries(tx, e, typ, subs); err != nil {
					return err
				}
				made = true
			}
			done = e.Key
		}
		more = more || len(entries) == dispatchBatch
		return tx.Put([]byte(positionKey), done)
	})
	if err != nil {
		return false, fmt.Errorf("webhooks: dispatch: %w", err)
	}
	if made {
		s.nudge()
	}
	return more, nil
}

func (s *Service) writeDeliveries(tx store.Tx, e audit.Entry, typ string, subs []stored) error {
	data, err := json.Marshal(EventData{Target: e.Target, Actor: e.Actor, Before: e.Before, After: e.After})
	if err != nil {
		return err
	}
	ev := Event{
		ID: "evt_" + hex.EncodeToString(e.Key[len(audit.Prefix()):]), Type: typ,
		CreatedAt: e.Time.UTC(), Data: data,
	}
	// Deliveries are due at once, but stamped with the event's time: the
	// dispatcher must not read a clock to stay free of outside effects
	// between runs of the transaction, and the event's time is the same
	// in every run.
	for _, h := range subs {
		seq, err := tx.NextSequence(deliverySeq)
		if err != nil {
			return err
		}
		d := Delivery{
			ID: fmt.Sprintf("dlv_%016x", seq), Webhook: h.ID, Event: ev, Status: Pending,
			Attempts: []Attempt{}, NextAt: ev.CreatedAt, CreatedAt: ev.CreatedAt,
		}
		if err := store.PutJSON(tx, []byte(deliveryPrefix+d.ID), d); err != nil {
			return err
		}
		if err := tx.Put(dueKey(d.NextAt, d.ID), nil); err != nil {
			return err
		}
		if err := tx.Put([]byte(byHookPrefix+h.ID+"/"+d.ID), nil); err != nil {
			return err
		}
	}
	return nil
}

// Deliveries pages.
const (
	DefaultDeliveries = 50
	MaxDeliveries     = 200
)

// Deliveries returns a webhook's deliveries, newest first, at most limit
// (0 means DefaultDeliveries) after cursor (the next cursor of the previous
// page, or ""), and the next cursor ("" on the last page). ENotFound for an
// unknown webhook, EInvalid for a bad limit or cursor.
func (s *Service) Deliveries(ctx context.Context, id string, limit int, cursor string) ([]Delivery, string, error) {
	if limit == 0 {
		limit = DefaultDeliveries
	}
	if limit < 1 || limit > MaxDeliveries {
		return nil, "", invalidField("limit", "limit must be from 1 to %d", MaxDeliveries)
	}
	if cursor != "" && (len(cursor) != 20 || cursor[:4] != "dlv_") {
		return nil, "", invalidField("cursor", "cursor is not one this server returned")
	}
	var (
		out  []Delivery
		next string
	)
	err := s.db.View(ctx, func(tx store.Tx) error {
		out, next = []Delivery{}, ""
		if _, err := getHook(tx, id); err != nil {
			return err
		}
		prefix := []byte(byHookPrefix + id + "/")
		opts := store.ScanOptions{Reverse: true}
		if cursor != "" {
			opts.After = append(append([]byte(nil), prefix...), cursor...)
		}
		return tx.Scan(prefix, opts, func(k, _ []byte) (bool, error) {
			if len(out) == limit {
				next = out[len(out)-1].ID
				return false, nil
			}
			b, err := tx.Get(append([]byte(deliveryPrefix), k[len(prefix):]...))
			if errors.Is(err, store.ErrNotFound) {
				return true, nil
			}
			if err != nil {
				return false, err
			}
			var d Delivery
			if err := json.Unmarshal(b, &d); err != nil {
				return false, err
			}
			out = append(out, d)
			return true, nil
		})
	})
	if err != nil {
		return nil, "", fmt.Errorf("webhooks: deliveries: %w", err)
	}
	return out, next, nil
}
