package audit

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/portaldist/portal/store"
)

// Actor kinds.
const (
	KindAdmin     = "admin"     // an admin API token
	KindPublisher = "publisher" // a publisher API token
	KindLicense   = "license"   // a customer's license key
	KindCLI       = "cli"       // an offline command on the store
	KindSystem    = "system"    // a background job
	KindAnonymous = "anonymous" // a door that authenticated nobody
)

// Actor is who made a change. For tokens ID and Name are the token's; for a
// license ID is the license's; the cli and system kinds have neither.
type Actor struct {
	Kind string `json:"kind"`
	ID   string `json:"id,omitempty"`
	Name string `json:"name,omitempty"`
}

// String returns "kind:id", or the kind alone when there is no id.
func (a Actor) String() string {
	if a.ID == "" {
		return a.Kind
	}
	return a.Kind + ":" + a.ID
}

// Record is one audited change, as stored and as listed.
type Record struct {
	Time      time.Time       `json:"time"`
	Actor     Actor           `json:"actor"`
	Action    string          `json:"action"`
	Target    string          `json:"target"`
	Client    string          `json:"client,omitempty"`
	RequestID string          `json:"request_id,omitempty"`
	Before    json.RawMessage `json:"before,omitempty"`
	After     json.RawMessage `json:"after,omitempty"`
}

// Limits of a record's fields.
const (
	// MaxRequestField is the most bytes kept of the client address and
	// the request id (both come from outside; longer ones are cut).
	MaxRequestField = 128
	// MaxTarget is the longest target Write accepts.
	MaxTarget = 512
	// MaxAction is the longest action Write accepts.
	MaxAction = 64
	// MaxSideBytes is the most bytes of JSON kept for before or after.
	MaxSideBytes = 32 << 10
)

type actorKey struct{}
type requestKey struct{}

type request struct{ client, id string }

// WithActor returns ctx naming a as the actor of the changes made with it.
// Doors that authenticate a caller use caller.NewContext instead, which
// derives the actor from the access.Caller; offline commands pass
// Actor{Kind: KindCLI} and background jobs Actor{Kind: KindSystem}. An
// actor without a Kind is ignored.
func WithActor(ctx context.Context, a Actor) context.Context {
	if a.Kind == "" {
		return ctx
	}
	return context.WithValue(ctx, actorKey{}, a)
}

// ActorFrom returns the actor in ctx and whether there is one.
func ActorFrom(ctx context.Context) (Actor, bool) {
	a, ok := ctx.Value(actorKey{}).(Actor)
	return a, ok
}

// WithRequest returns ctx carrying the request's client address and id, for
// every record written with it. The values are kept as given and cleaned
// when read (RequestFrom): every request carries them, few write a record.
func WithRequest(ctx context.Context, client, requestID string) context.Context {
	return context.WithValue(ctx, requestKey{}, request{client: client, id: requestID})
}

// RequestFrom returns the client address and request id in ctx, as they
// will be recorded ("" when absent): bounded, without control characters,
// and redacted when they look like a secret.
func RequestFrom(ctx context.Context) (client, requestID string) {
	r, _ := ctx.Value(requestKey{}).(request)
	return clean(r.client), clean(r.id)
}

// Clean returns s as the audit log would record a value that came from
// outside the portal (see RequestFrom).
func Clean(s string) string { return clean(s) }

// clean bounds a value that came from outside the portal: valid UTF-8, no
// control characters, at most MaxRequestField bytes, no secret.
func clean(s string) string {
	b := make([]byte, 0, min(len(s), MaxRequestField))
	for _, r := range s {
		if r == utf8.RuneError || r < 0x20 || r == 0x7f {
			r = '?'
		}
		if len(b)+utf8.RuneLen(r) > MaxRequestField {
			break
		}
		b = utf8.AppendRune(b, r)
	}
	out := string(b)
	if secretLike(out) {
		return redacted
	}
	return out
}

// ErrNoActor is returned by Write when ctx names no actor.
var ErrNoActor = errors.New("audit: no actor in the context: the door must call caller.NewContext, or audit.WithActor for offline commands and background jobs")

// now is the clock of Write; tests replace it.
var now = time.Now

// Key layout: recordPrefix, then the time in Unix nanoseconds and the
// "audit" sequence, both 8 bytes big-endian, so keys sort by time and then
// by sequence, and a reverse scan reads newest first.
const (
	recordPrefix = "aud/r/"
	sequence     = "audit"
	suffixLen    = 16
)

func recordKey(t time.Time, seq uint64) []byte {
	k := make([]byte, len(recordPrefix)+suffixLen)
	copy(k, recordPrefix)
	binary.BigEndian.PutUint64(k[len(recordPrefix):], unixNano(t))
	binary.BigEndian.PutUint64(k[len(recordPrefix)+8:], seq)
	return k
}

// timeKey is the smallest key of the records written at t or later.
func timeKey(t time.Time) []byte {
	return recordKey(t, 0)
}

func unixNano(t time.Time) uint64 {
	if t.Before(time.Unix(0, 0)) {
		return 0
	}
	return uint64(t.UnixNano())
}

// Write appends a record of a change to tx, the transaction that makes the
// change: they commit together or not at all. The actor comes from ctx
// (ErrNoActor when it has none), as do the client address and request id
// (see WithRequest). action is "<object>.<verb>"; target names the changed
// object. before and after are the object's state around the change (nil
// for a creation or a deletion) and are scrubbed of secrets (see the
// package documentation).
//
// Write counts as 2 keys against tx's MaxTxnOps: the record and the
// "audit" sequence (the sequence once per transaction). It has no effect
// outside tx, so it may run in an Update function that runs more than once.
// An error from Write must be returned from the Update function, which
// then commits nothing.
func Write(ctx context.Context, tx store.Tx, action, target string, before, after any) error {
	_, err := write(ctx, tx, action, target, before, after)
	return err
}

func write(ctx context.Context, tx store.Tx, action, target string, before, after any) ([]byte, error) {
	a, ok := ActorFrom(ctx)
	if !ok {
		return nil, ErrNoActor
	}
	if err := validAction(action); err != nil {
		return nil, err
	}
	if target == "" || len(target) > MaxTarget || !utf8.ValidString(target) {
		return nil, fmt.Errorf("audit: %s: target must be 1 to %d bytes of UTF-8", action, MaxTarget)
	}
	b, err := scrub(before)
	if err != nil {
		return nil, fmt.Errorf("audit: %s %s: before: %w", action, target, err)
	}
	af, err := scrub(after)
	if err != nil {
		return nil, fmt.Errorf("audit: %s %s: after: %w", action, target, err)
	}
	b, af = changed(b, af)
	client, id := RequestFrom(ctx)
	r := Record{
		Time:      now().UTC(),
		Actor:     Actor{Kind: clean(a.Kind), ID: clean(a.ID), Name: clean(a.Name)},
		Action:    action,
		Target:    target,
		Client:    client,
		RequestID: id,
		Before:    bound(b),
		After:     bound(af),
	}
	if secretLike(target) {
		r.Target = redacted
	}
	seq, err := tx.NextSequence(sequence)
	if err != nil {
		return nil, fmt.Errorf("audit: %s %s: %w", action, target, err)
	}
	key := recordKey(r.Time, seq)
	if err := store.PutJSON(tx, key, r); err != nil {
		return nil, fmt.Errorf("audit: %s %s: %w", action, target, err)
	}
	return key, nil
}

// validAction checks the "<object>.<verb>" form: lower-case ASCII letters,
// digits and underscores on each side of one dot.
func validAction(action string) error {
	dot := -1
	ok := len(action) > 0 && len(action) <= MaxAction
	for i := 0; ok && i < len(action); i++ {
		switch c := action[i]; {
		case c == '.' && dot < 0 && i > 0 && i < len(action)-1:
			dot = i
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_':
		default:
			ok = false
		}
	}
	if !ok || dot < 0 {
		return fmt.Errorf("audit: action %q is not <object>.<verb>", action)
	}
	return nil
}
