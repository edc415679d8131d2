package webhooks

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/store"
)

// SignatureHeader carries a delivery's signature.
const SignatureHeader = "Portal-Signature"

// Sign returns the Portal-Signature value of body sent at t:
// "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>".
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil))
}

// sendBatch is the most deliveries tried at once.
const sendBatch = 8

// client returns the HTTP client of deliveries: no proxy, no redirects,
// and (unless private targets are allowed) a dialer that refuses
// non-public addresses.
func (s *Service) client() *http.Client {
	d := &net.Dialer{Timeout: s.opts.Timeout}
	if !s.opts.AllowPrivate {
		d.Control = DialControl
	}
	return &http.Client{
		Timeout: s.opts.Timeout,
		Transport: &http.Transport{
			Proxy: nil, DialContext: d.DialContext, ForceAttemptHTTP2: true,
			MaxIdleConnsPerHost: 2, IdleConnTimeout: time.Minute, TLSHandshakeTimeout: s.opts.Timeout,
			ResponseHeaderTimeout: s.opts.Timeout,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// RunSender delivers due deliveries until ctx ends; an attempt under way
// when ctx ends is cut and retried after a restart. It also purges finished
// deliveries older than Options.Retention, hourly.
func (s *Service) RunSender(ctx context.Context) {
	c := s.client()
	defer c.CloseIdleConnections()
	var lastPurge time.Time
	for {
		if s.now().Sub(lastPurge) >= time.Hour {
			lastPurge = s.now()
			if _, err := s.Purge(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("webhooks: purge deliveries", "err", err)
			}
		}
		ids, next, err := s.due(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("webhooks: read due deliveries", "err", err)
			next = s.now().Add(time.Second)
		}
		if len(ids) > 0 {
			var wg sync.WaitGroup
			var stuck atomic.Bool
			for _, id := range ids {
				wg.Go(func() {
					if !s.attempt(ctx, c, id) {
						stuck.Store(true)
					}
				})
			}
			wg.Wait()
			if !stuck.Load() {
				continue
			}
			// The store refused a read or a write: the same deliveries are
			// still due, so do not go round at once.
			next = s.now().Add(time.Second)
		}
		wait := time.Minute
		if !next.IsZero() {
			wait = min(wait, max(next.Sub(s.now()), time.Millisecond))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-s.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// due returns the ids of up to sendBatch deliveries due now, and when the
// next one is due (zero when none is queued).
func (s *Service) due(ctx context.Context) ([]string, time.Time, error) {
	var (
		ids  []string
		next time.Time
	)
	now := s.now()
	err := s.db.View(ctx, func(tx store.Tx) error {
		ids, next = nil, time.Time{}
		return tx.Scan([]byte(duePrefix), store.ScanOptions{}, func(k, _ []byte) (bool, error) {
			rest := k[len(duePrefix):]
			if len(rest) < 8 {
				return true, nil
			}
			at := time.Unix(0, int64(binary.BigEndian.Uint64(rest[:8])))
			if at.After(now) || len(ids) == sendBatch {
				if at.After(now) {
					next = at
				} else {
					next = now
				}
				return false, nil
			}
			ids = append(ids, string(rest[8:]))
			return true, nil
		})
	})
	return ids, next, err
}

func getDelivery(tx store.Tx, id string) (Delivery, error) {
	var d Delivery
	b, err := tx.Get([]byte(deliveryPrefix + id))
	if err != nil {
		return d, err
	}
	return d, json.Unmarshal(b, &d)
}

// attempt tries one delivery and records the attempt. It reports false when
// the store failed (the delivery is then still due as it was).
func (s *Service) attempt(ctx context.Context, c *http.Client, id string) bool {
	var (
		d    Delivery
		h    stored
		gone bool
	)
	err := s.db.View(ctx, func(tx store.Tx) (err error) {
		gone = false
		if d, err = getDelivery(tx, id); err != nil {
			return err
		}
		h, err = getHook(tx, d.Webhook)
		if portal.IsCode(err, portal.ENotFound) {
			gone, err = true, nil
		}
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		s.dropDue(ctx, id)
		return true
	}
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("webhooks: read delivery", "delivery", id, "err", err)
		}
		return false
	}
	if gone || d.Status != Pending {
		// The webhook was deleted: its deliveries go with it.
		if err := s.drop(ctx, d, gone); err != nil && ctx.Err() == nil {
			s.log.Warn("webhooks: drop delivery", "delivery", id, "err", err)
			return false
		}
		return true
	}
	at := s.now()
	a := Attempt{Time: at.UTC()}
	secret, err := s.secret(h)
	if err != nil {
		a.Error = "the webhook's secret does not open: " + err.Error()
	} else {
		a.StatusCode, a.Error = s.post(ctx, c, h.URL, secret, d.Event)
	}
	if ctx.Err() != nil {
		return true // cut by shutdown: tried again after the restart
	}
	if err := s.record(ctx, id, a); err != nil && ctx.Err() == nil {
		s.log.Warn("webhooks: record attempt", "delivery", id, "err", err)
		return false
	}
	return true
}

// post sends ev to url and returns the answer's status, or the error.
func (s *Service) post(ctx context.Context, c *http.Client, url, secret string, ev Event) (int, string) {
	body, err := json.Marshal(ev)
	if err != nil {
		return 0, err.Error()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, "bad request: " + err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "portal-webhooks/1")
	req.Header.Set(SignatureHeader, Sign(secret, s.now(), body))
	resp, err := c.Do(req)
	if err != nil {
		msg := err.Error()
		if errors.Is(err, ErrPrivateTarget) {
			msg = "refused: the target address is not public (webhooks.allow_private_targets)"
		}
		return 0, truncate(msg, 256)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, ""
}

// delay is the wait after the n-th failed attempt (n from 1).
func (s *Service) delay(n int) time.Duration {
	d := s.opts.RetryBase
	for i := 1; i < n && d < s.opts.RetryMax; i++ {
		d *= 2
	}
	return min(d, s.opts.RetryMax)
}

// record stores attempt a of delivery id and schedules what follows.
func (s *Service) record(ctx context.Context, id string, a Attempt) error {
	err := s.db.Update(ctx, func(tx store.Tx) error {
		d, err := getDelivery(tx, id)
		if err != nil {
			return err
		}
		if d.Status != Pending {
			return nil
		}
		if err := tx.Delete(dueKey(d.NextAt, d.ID)); err != nil {
			return err
		}
		ok := a.Error == "" && a.StatusCode >= 200 && a.StatusCode < 300
		n := len(d.Attempts) + 1
		switch {
		case ok:
			d.Status, d.NextAt = Succeeded, time.Time{}
		default:
			next := a.Time.Add(s.delay(n))
			if next.After(d.Event.CreatedAt.Add(s.opts.RetryFor)) || n >= MaxAttempts {
				d.Status, d.NextAt = Failed, time.Time{}
			} else {
				d.NextAt = next.UTC()
				a.NextRetry = &d.NextAt
				if err := tx.Put(dueKey(d.NextAt, d.ID), nil); err != nil {
					return err
				}
			}
		}
		d.Attempts = append(d.Attempts, a)
		return store.PutJSON(tx, []byte(deliveryPrefix+d.ID), d)
	})
	if err != nil {
		return fmt.Errorf("webhooks: record attempt: %w", err)
	}
	return nil
}

// dropDue removes the queue entries of a delivery that no longer exists.
func (s *Service) dropDue(ctx context.Context, id string) {
	s.db.Update(ctx, func(tx store.Tx) error {
		var keys [][]byte
		err := tx.Scan([]byte(duePrefix), store.ScanOptions{}, func(k, _ []byte) (bool, error) {
			if len(k) >= len(duePrefix)+8 && string(k[len(duePrefix)+8:]) == id {
				keys = append(keys, bytes.Clone(k))
			}
			return len(keys) < 16, nil
		})
		if err != nil {
			return err
		}
		for _, k := range keys {
			if err := tx.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// drop takes a delivery off the queue; with all, it deletes the delivery
// too (its webhook is gone).
func (s *Service) drop(ctx context.Context, d Delivery, all bool) error {
	return s.db.Update(ctx, func(tx store.Tx) error {
		if err := tx.Delete(dueKey(d.NextAt, d.ID)); err != nil {
			return err
		}
		if !all {
			return nil
		}
		if err := tx.Delete([]byte(byHookPrefix + d.Webhook + "/" + d.ID)); err != nil {
			return err
		}
		return tx.Delete([]byte(deliveryPrefix + d.ID))
	})
}

// Purge deletes the finished deliveries created more than
// Options.Retention ago, and those of deleted webhooks, oldest first, in
// transactions of at most the store's MaxTxnOps keys; it returns how many
// it deleted. Pending deliveries are kept (the sender finishes them).
func (s *Service) Purge(ctx context.Context) (int, error) {
	cutoff := s.now().Add(-s.opts.Retention)
	total := 0
	var after []byte
	for {
		var n int
		var last []byte
		var done bool
		err := s.db.Update(ctx, func(tx store.Tx) error {
			n, last, done = 0, nil, true
			budget := s.db.MaxTxnOps() / 3 // three keys per delivery
			var dels []Delivery
			hooks := map[string]bool{}
			err := tx.Scan([]byte(deliveryPrefix), store.ScanOptions{After: after}, func(k, v []byte) (bool, error) {
				if len(dels) == budget {
					done = false
					return false, nil
				}
				var d Delivery
				if err := json.Unmarshal(v, &d); err != nil {
					return false, err
				}
				if !d.CreatedAt.Before(cutoff) {
					return false, nil // ids grow with time: the rest are newer
				}
				last = bytes.Clone(k)
				exists, seen := hooks[d.Webhook]
				if !seen {
					_, err := tx.Get([]byte(hookPrefix + d.Webhook))
					exists = err == nil
					hooks[d.Webhook] = exists
				}
				if d.Status != Pending || !exists {
					dels = append(dels, d)
				}
				return true, nil
			})
			if err != nil {
				return err
			}
			for _, d := range dels {
				for _, k := range [][]byte{[]byte(deliveryPrefix + d.ID), []byte(byHookPrefix + d.Webhook + "/" + d.ID), dueKey(d.NextAt, d.ID)} {
					if err := tx.Delete(k); err != nil {
						return err
					}
				}
			}
			n = len(dels)
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("webhooks: purge: %w", err)
		}
		total += n
		if done || last == nil {
			return total, nil
		}
		after = last
	}
}
