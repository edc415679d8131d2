// Package audit is the portal's audit log: one record for every state
// change, written in the same store transaction as the change it records, so
// a change without its record cannot exist and a record of a change that was
// rolled back cannot either.
//
// # What a door puts in the context
//
// Whichever door handles a request (the HTTP API, the web pages, the CLI's
// local socket, an offline command, a background job) says who is acting
// and, for a request, where it came from:
//
//   - WithRequest(ctx, client, requestID): the client address and the
//     request id (the same id the server logs for the request). Both are
//     optional; they are cut to MaxRequestField bytes and scrubbed of
//     anything that looks like a secret.
//   - the actor: an authenticated door calls caller.NewContext (package
//     audit/caller), which puts the access.Caller in the context and derives
//     the actor from it (an admin or publisher token's id and name, a
//     license's id). Offline commands use WithActor(ctx, Actor{Kind: KindCLI})
//     and background jobs WithActor(ctx, Actor{Kind: KindSystem}).
//
// Write refuses to record a change whose context names no actor, and so the
// change is refused too: a door that forgets to say who is acting fails
// loudly instead of filling the log with unknown actors.
//
// # How a service records a change
//
// Inside the Update that makes the change, after the change's own writes
// succeed:
//
//	err := db.Update(ctx, func(tx store.Tx) error {
//		var old License
//		if err := store.GetJSON(tx, key, &old); err != nil {
//			return err
//		}
//		l := old
//		l.Status = Suspended
//		if err := store.PutJSON(tx, key, l); err != nil {
//			return err
//		}
//		return audit.Write(ctx, tx, "license.suspend", "license/"+l.ID, old, l)
//	})
//
// Write returns an error when the record cannot be written; returning it
// from the Update function rolls the change back. Write has no effect
// outside tx, so it is safe in an Update function that the store runs more
// than once. Each Write counts as 2 keys against the transaction's
// store.DB.MaxTxnOps limit: the record, and the "audit" sequence (the
// sequence only once per transaction, however many records it holds).
//
// Actions are "<object>.<verb>" (license.suspend, release.publish,
// token.create), in lower case. Targets name the object ("license/<id>",
// "release/<product>/<version>") so that List can filter on a prefix.
//
// # What is never recorded
//
// Before and after are encoded as JSON and scrubbed before they are stored:
// members named like a secret (key, key_digest, digest, token, secret,
// password, signature(s), signing_key, private_key, seed and their
// *_token, *_secret, *_digest, *_signature... forms, in snake, kebab or camel
// case) are dropped, and every string that looks like a portal secret (a
// lic_ or ptk_ key), a signed URL (sig=, X-Amz-Signature=, ...), a bearer
// credential or a private key block is replaced with "[redacted]". Members
// whose names look like a secret are dropped from map keys as well. When
// both before and after are JSON objects, only the members that differ are
// kept: a record holds the changed fields, not whole copies. A side larger
// than MaxSideBytes once scrubbed is replaced by {"truncated":true,"bytes":N}.
//
// # Reading
//
// Log.List reads records newest first, filtered by actor, action, target
// prefix and time range, in pages with an opaque cursor. Records are ordered
// by the time they were written and then by the "audit" sequence; with
// several replicas, records are ordered by each writer's clock, so a page
// may miss a record written later with an older time by a replica whose
// clock lags. Every audited transaction takes the one "audit" sequence, so
// on etcd concurrent audited writes conflict on it and are retried (the
// store runs their Update functions again); they stay correct, at the cost
// of serializing audited writes.
//
// Log.Purge deletes records older than a cutoff, for retention, in
// transactions of the store's MaxTxnOps, and records each of them as
// audit.purge.
package audit
