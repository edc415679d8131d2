// Package etcd is the store driver on an etcd v3 cluster, for portals that
// run as several replicas sharing one catalog.
//
// # Layout
//
// Every key lives under Options.Prefix (default "portal/"), so several
// portals can share a cluster:
//
//	<prefix>d/<key>    a store key; the value is one tag byte ('v' for a
//	                   live value, 't' for a deletion's tombstone) and the
//	                   value itself
//	<prefix>s/<name>   the NextSequence counter name, its last value in
//	                   decimal
//	<prefix>x/...      reserved for other code sharing the cluster under the
//	                   same prefix (the replicas' leader election); the
//	                   store never reads, writes, scans or watches it (see
//	                   DB.ReservedPrefix)
//
// # Transactions
//
// View reads at one etcd revision: its first read is a linearizable Get,
// whose revision R every later read of the transaction names (WithRev), so
// it sees every Update committed before it started and nothing later. Scans
// read in pages of Options.ScanPage keys (WithLimit, WithSort, WithRev), so a
// scan over a large prefix never holds more than a page.
//
// Update runs fn against the same kind of snapshot, buffering its writes;
// Get and Scan inside it see those writes. When fn returns nil the writes go
// to etcd in one transaction guarded by compares on everything fn read from
// the snapshot: for a key fn read, ModRevision(key) < R+1; for the part of a
// key range a Scan went through (up to where fn stopped it), the same compare
// over the range (WithRange), which etcd checks against every key in it. If
// any of those keys was written after R, or a key was created inside a
// scanned range, the transaction commits nothing and fn runs again on a fresh
// snapshot (until ctx ends). The Updates of one process that conflicted run
// again one at a time, so goroutines of one replica contending for a hot
// key each waste about one run; against other replicas a conflicted Update
// backs off a random while, growing to 64 ms. NextSequence reads
// and writes its counter key the same way. An Update that read nothing
// commits its writes unconditionally; one that wrote nothing commits nothing.
// When the answer to a commit is lost (the member carrying it went away
// after it was sent), Update returns the error although the transaction may
// have committed, as when its ctx ends during the commit: running fn again
// could apply it twice.
//
// A range compare cannot see a key that was deleted: it is gone from the
// range. So a Delete does not remove the etcd key; it writes a tombstone, a
// write like any other, which the range and key compares of every
// concurrent reader do see. Reads skip tombstones, and the watch reports
// them as deletions. Tombstones are attached to an etcd lease (granted by
// the driver and rotated so that every tombstone lives at least
// Options.TombstoneTTL/2), and etcd removes them when it expires; that
// removal changes nothing a transaction can read. For it to be safe, no
// transaction may commit on a snapshot older than Options.TombstoneTTL/4:
// one that has taken longer starts again. This scheme is exact (no false
// conflicts from unrelated writers, unlike a write-guard key that every
// Update bumps) and costs no operation beyond the transaction's own writes,
// so an Update may write etcd's whole --max-txn-ops; its costs are the
// tombstones' space until their lease ends, a lease grant every
// TombstoneTTL/2 on a driver that deletes, and that etcd evaluates a range
// compare by reading the range again at commit (an Update that scans a large
// prefix pays twice for it). When fn read more keys and ranges than etcd
// takes compares in one transaction, neighbouring ones are merged into
// covering ranges: still correct, with more chance of a retry.
//
// # What a transaction may hold
//
// One Update may write at most MaxTxnOps() distinct keys (Options.MaxTxnOps,
// default 128, etcd's default --max-txn-ops; set it to the server's value
// when that is raised), counting Put and Delete once per distinct key and
// NextSequence/RaiseSequence once per distinct name; beyond that the write
// fails with store.ErrTxnTooLarge. The keys and values it writes may total at
// most Options.MaxRequestBytes (default 1.5 MiB, etcd's default
// --max-request-bytes) less 64 KiB kept for the compares and framing, that is
// about 1.43 MiB; beyond that the write also fails with store.ErrTxnTooLarge
// (one value of store.MaxValueSize always fits). A View or an Update may read
// any amount, a page at a time, but a View's read at a revision that etcd
// has compacted away fails (an Update's runs fn again on a fresh snapshot):
// etcd's compaction retention must exceed the longest View.
//
// # Running etcd for it
//
// etcd keeps every revision until it is compacted; run it with periodic
// auto-compaction (say --auto-compaction-mode=periodic
// --auto-compaction-retention=1h) so that history and tombstones do not
// grow without bound, and keep the retention above the longest View (a
// backup of a large catalog) and the longest time a replica may be cut off
// and still resume its watches without a Reset. The driver needs only
// read and write access to the keys under its prefix (an etcd role with
// that key range, when authentication is on), and the right to grant
// leases.
//
// # Watches
//
// DB.Watch is an etcd watch on the prefix, started at the revision current
// when Watch is called. A goroutine per watcher drains it into a queue of at
// most Options.WatchBuffer events, so a slow reader never holds etcd's stream
// up; a watcher that falls further behind gets one store.EventReset instead
// of what it missed. A compaction of the revision the watch needs (after a
// long disconnection) also gives a Reset, and the watch goes on from the
// current revision. The client resumes a broken watch stream from the last
// revision received by itself; when etcd ends the watch (no leader, a member
// stopped), the driver starts a new one from that revision. Event.Rev is the
// etcd revision of the change. The removal of a tombstone by its lease is
// reported as a second EventDelete of an already deleted key, which the
// store contract allows.
package etcd
