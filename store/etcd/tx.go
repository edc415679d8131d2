package etcd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/store/internal/txcheck"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// tx is a View's or an Update's transaction.
type tx struct {
	db       *DB
	ctx      context.Context
	writable bool
	start    time.Time // when the Update's run began
	rev      int64     // the snapshot's revision; 0 before the first read

	// Update only: the last write of each key (by store key) and the new
	// value of each sequence drawn; together at most db.maxOps.
	writes     map[string]write
	seqs       map[string]uint64
	writeBytes int
	tooLarge   error
	// compacted: a read failed because etcd compacted the snapshot's
	// revision away; an Update then runs again on a fresh one.
	compacted bool
	// reads are the etcd key ranges [start, end) read from the snapshot,
	// which the commit guards.
	reads []keyRange
}

type write struct {
	value []byte
	del   bool
}

type keyRange struct{ start, end string }

// get reads at the snapshot: the first read of a transaction is
// linearizable and fixes the snapshot's revision; later ones name it and may
// be answered by any member that has applied it.
func (t *tx) get(key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	if t.rev == 0 {
		resp, err := t.db.cli.Get(t.ctx, key, opts...)
		if err != nil {
			return nil, t.readErr(err)
		}
		t.rev = resp.Header.Revision
		return resp, nil
	}
	opts = append(opts, clientv3.WithRev(t.rev))
	resp, err := t.db.cli.Get(t.ctx, key, append(opts, clientv3.WithSerializable())...)
	if errors.Is(err, rpctypes.ErrFutureRev) {
		// The member answering has not applied the snapshot yet.
		resp, err = t.db.cli.Get(t.ctx, key, opts...)
	}
	if err != nil {
		return nil, t.readErr(err)
	}
	return resp, nil
}

func (t *tx) readErr(err error) error {
	if cerr := t.ctx.Err(); cerr != nil {
		return cerr
	}
	if errors.Is(err, rpctypes.ErrCompacted) {
		t.compacted = true
	}
	if t.db.closed.Load() {
		return store.ErrClosed
	}
	return fmt.Errorf("store: etcd: %w", err)
}

// decode splits a stored value: its value and whether it is live.
func decode(key, raw []byte) ([]byte, bool, error) {
	if len(raw) == 0 {
		return nil, false, fmt.Errorf("store: etcd: key %q has an untagged value", key)
	}
	switch raw[0] {
	case tagValue:
		return raw[1:], true, nil
	case tagTombstone:
		return nil, false, nil
	}
	return nil, false, fmt.Errorf("store: etcd: key %q has an unknown value tag %#x", key, raw[0])
}

func (t *tx) Get(key []byte) ([]byte, error) {
	if err := txcheck.Key(key); err != nil {
		return nil, err
	}
	if w, ok := t.writes[string(key)]; ok {
		if w.del {
			return nil, store.ErrNotFound
		}
		return bytes.Clone(w.value), nil
	}
	ek := t.db.data + string(key)
	resp, err := t.get(ek)
	if err != nil {
		return nil, err
	}
	t.read(ek, ek+"\x00")
	if len(resp.Kvs) == 0 {
		return nil, store.ErrNotFound
	}
	v, live, err := decode(key, resp.Kvs[0].Value)
	if err != nil {
		return nil, err
	}
	if !live {
		return nil, store.ErrNotFound
	}
	return bytes.Clone(v), nil
}

// read records that the transaction read the etcd keys [start, end).
func (t *tx) read(start, end string) {
	if t.writable && start < end {
		t.reads = append(t.reads, keyRange{start, end})
	}
}

// count records a write of key (or of sequence name) and refuses it when
// it would take the transaction past the limits.
func (t *tx) count(name string, seq bool, size int) error {
	exists, old := false, 0
	if seq {
		if _, ok := t.seqs[name]; ok {
			return nil
		}
	} else if w, ok := t.writes[name]; ok {
		exists, old = true, len(t.db.data)+len(name)+1+len(w.value)
	}
	if !exists && len(t.writes)+len(t.seqs) >= t.db.maxOps {
		t.tooLarge = fmt.Errorf("%w (at most %d)", store.ErrTxnTooLarge, t.db.maxOps)
		return t.tooLarge
	}
	if t.writeBytes-old+size > t.db.maxBytes {
		t.tooLarge = fmt.Errorf("%w: its keys and values would total more than %d bytes (etcd's request limit)", store.ErrTxnTooLarge, t.db.maxBytes)
		return t.tooLarge
	}
	t.writeBytes += size - old
	return nil
}

func (t *tx) Put(key, value []byte) error {
	if err := txcheck.Put(t.writable, key, value); err != nil {
		return err
	}
	if err := t.count(string(key), false, len(t.db.data)+len(key)+1+len(value)); err != nil {
		return err
	}
	if t.writes == nil {
		t.writes = make(map[string]write)
	}
	t.writes[string(key)] = write{value: bytes.Clone(value)}
	return nil
}

func (t *tx) Delete(key []byte) error {
	if err := txcheck.Delete(t.writable, key); err != nil {
		return err
	}
	if err := t.count(string(key), false, len(t.db.data)+len(key)+1); err != nil {
		return err
	}
	if t.writes == nil {
		t.writes = make(map[string]write)
	}
	t.writes[string(key)] = write{del: true}
	return nil
}

// bufferedIn returns the transaction's writes to store keys in [lo, hi)
// (hi nil: unbounded), sorted by key.
func (t *tx) bufferedIn(lo, hi []byte) []string {
	var keys []string
	for k := range t.writes {
		if k >= string(lo) && (hi == nil || k < string(hi)) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

func (t *tx) Scan(prefix []byte, opts store.ScanOptions, fn func(k, v []byte) (bool, error)) error {
	// The store keys to visit are [lo, hi); hi nil means no upper bound.
	lo, hi := prefix, store.PrefixEnd(prefix)
	if opts.After != nil {
		if !opts.Reverse && bytes.Compare(opts.After, prefix) >= 0 {
			lo = append(bytes.Clone(opts.After), 0)
		}
		if opts.Reverse && (hi == nil || bytes.Compare(opts.After, hi) < 0) {
			hi = opts.After
		}
	}
	if hi != nil && bytes.Compare(lo, hi) >= 0 {
		return nil
	}
	elo, ehi := t.db.data+string(lo), t.db.dataEnd
	if hi != nil {
		ehi = t.db.data + string(hi)
	}
	buffered := t.bufferedIn(lo, hi)
	if opts.Reverse {
		slices.Reverse(buffered)
	}
	// Buffered writes are copied now: fn may write while it scans.
	bufVals := make([]write, len(buffered))
	for i, k := range buffered {
		bufVals[i] = t.writes[k]
	}
	skip := len(t.db.data)

	// emit delivers one key; stopped says fn ended the scan at it.
	stopped := false
	var stopKey string
	emit := func(k string, v []byte) error {
		more, err := fn([]byte(k), v)
		if err != nil {
			return err
		}
		if !more {
			stopped, stopKey = true, k
		}
		return nil
	}
	bi := 0
	before := func(a, b string) bool {
		if opts.Reverse {
			return a > b
		}
		return a < b
	}
	// flush emits the buffered writes that come before k in scan order (all
	// the remaining ones when all is set).
	flush := func(k string, all bool) error {
		for bi < len(buffered) && !stopped && (all || before(buffered[bi], k)) {
			w := bufVals[bi]
			bi++
			if !w.del {
				if err := emit(buffered[bi-1], w.value); err != nil {
					return err
				}
			}
		}
		return nil
	}

	cur, curEnd := elo, ehi
	for !stopped {
		order := clientv3.SortAscend
		if opts.Reverse {
			order = clientv3.SortDescend
		}
		resp, err := t.get(cur, clientv3.WithRange(curEnd), clientv3.WithLimit(int64(t.db.scanPage)),
			clientv3.WithSort(clientv3.SortByKey, order))
		if err != nil {
			return err
		}
		for _, kv := range resp.Kvs {
			k := string(kv.Key[skip:])
			if err := flush(k, false); err != nil {
				return err
			}
			if stopped {
				break
			}
			if bi < len(buffered) && buffered[bi] == k {
				// The transaction's own write replaces the stored value.
				w := bufVals[bi]
				bi++
				if !w.del {
					if err := emit(k, w.value); err != nil {
						return err
					}
				}
				if stopped {
					break
				}
				continue
			}
			v, live, err := decode(kv.Key, kv.Value)
			if err != nil {
				return err
			}
			if live {
				if err := emit(k, v); err != nil {
					return err
				}
				if stopped {
					break
				}
			}
		}
		if stopped || !resp.More || len(resp.Kvs) == 0 {
			break
		}
		last := string(resp.Kvs[len(resp.Kvs)-1].Key)
		if opts.Reverse {
			curEnd = last
		} else {
			cur = last + "\x00"
		}
	}
	if !stopped {
		if err := flush("", true); err != nil {
			return err
		}
	}
	// Guard what the scan went through: up to the key fn stopped at, or
	// the whole range.
	switch {
	case !stopped:
		t.read(elo, ehi)
	case opts.Reverse:
		t.read(t.db.data+stopKey, ehi)
	default:
		t.read(elo, t.db.data+stopKey+"\x00")
	}
	return nil
}

// seqValue returns the counter name's value: the transaction's own when it
// drew one, else the snapshot's.
func (t *tx) seqValue(name string) (uint64, error) {
	if v, ok := t.seqs[name]; ok {
		return v, nil
	}
	ek := t.db.seq + name
	resp, err := t.get(ek)
	if err != nil {
		return 0, err
	}
	t.read(ek, ek+"\x00")
	if len(resp.Kvs) == 0 {
		return 0, nil
	}
	v, err := strconv.ParseUint(string(resp.Kvs[0].Value), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("store: etcd: sequence %q: %w", name, err)
	}
	return v, nil
}

func checkSeqName(name string) error {
	if name == "" || len(name) > store.MaxKeySize {
		return fmt.Errorf("%w: sequence name %q", store.ErrTooLarge, name)
	}
	return nil
}

func (t *tx) NextSequence(name string) (uint64, error) {
	if !t.writable {
		return 0, store.ErrReadOnly
	}
	if err := checkSeqName(name); err != nil {
		return 0, err
	}
	v, err := t.seqValue(name)
	if err != nil {
		return 0, err
	}
	if err := t.count(name, true, len(t.db.seq)+len(name)+20); err != nil {
		return 0, err
	}
	if t.seqs == nil {
		t.seqs = make(map[string]uint64)
	}
	t.seqs[name] = v + 1
	return v + 1, nil
}

// RaiseSequence implements store.SequenceTx.
func (t *tx) RaiseSequence(name string, last uint64) error {
	if !t.writable {
		return store.ErrReadOnly
	}
	if err := checkSeqName(name); err != nil {
		return err
	}
	v, err := t.seqValue(name)
	if err != nil {
		return err
	}
	if err := t.count(name, true, len(t.db.seq)+len(name)+20); err != nil {
		return err
	}
	if t.seqs == nil {
		t.seqs = make(map[string]uint64)
	}
	t.seqs[name] = max(v, last)
	return nil
}

// Sequences implements store.SequenceTx: the counters at the snapshot, with
// an Update's own draws.
func (t *tx) Sequences(fn func(name string, last uint64) error) error {
	vals := make(map[string]uint64)
	cur := t.db.seq
	for {
		resp, err := t.get(cur, clientv3.WithRange(t.db.seqEnd), clientv3.WithLimit(int64(t.db.scanPage)),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
		if err != nil {
			return err
		}
		for _, kv := range resp.Kvs {
			v, err := strconv.ParseUint(string(kv.Value), 10, 64)
			if err != nil {
				return fmt.Errorf("store: etcd: sequence %q: %w", kv.Key, err)
			}
			vals[string(kv.Key[len(t.db.seq):])] = v
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		cur = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	t.read(t.db.seq, t.db.seqEnd)
	for name, v := range t.seqs {
		vals[name] = v
	}
	names := make([]string, 0, len(vals))
	for name, v := range vals {
		if v > 0 {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		if err := fn(name, vals[name]); err != nil {
			return err
		}
	}
	return nil
}

// commit writes the transaction's writes in one etcd transaction guarded by
// its reads; errConflict means fn must run again.
func (t *tx) commit() error {
	if len(t.writes) == 0 && len(t.seqs) == 0 {
		return nil
	}
	if t.rev != 0 && time.Since(t.start) > t.db.tombTTL/4 {
		// Tombstones written since the snapshot may be gone by now (see
		// the package comment): start again on a fresh one.
		return errConflict
	}
	d := t.db
	var lease clientv3.LeaseID
	ops := make([]clientv3.Op, 0, len(t.writes)+len(t.seqs))
	size := 0
	for k, w := range t.writes {
		ek := d.data + k
		if w.del {
			if lease == 0 {
				var err error
				if lease, err = d.tombstoneLease(t.ctx); err != nil {
					return err
				}
			}
			ops = append(ops, clientv3.OpPut(ek, string([]byte{tagTombstone}), clientv3.WithLease(lease)))
			size += len(ek) + 1 + 16
			continue
		}
		v := make([]byte, 1+len(w.value))
		v[0] = tagValue
		copy(v[1:], w.value)
		ops = append(ops, clientv3.OpPut(ek, string(v)))
		size += len(ek) + len(v) + 16
	}
	for name, v := range t.seqs {
		ek := d.seq + name
		s := strconv.FormatUint(v, 10)
		ops = append(ops, clientv3.OpPut(ek, s))
		size += len(ek) + len(s) + 16
	}
	var cmps []clientv3.Cmp
	if t.rev != 0 {
		// Compares are bounded by etcd's operation limit and, with the
		// writes, by its request size.
		ranges := coalesce(t.reads, d.maxOps, d.reqBytes-size-4096)
		for _, r := range ranges {
			c := clientv3.Compare(clientv3.ModRevision(r.start), "<", t.rev+1)
			if r.end != r.start+"\x00" {
				c = c.WithRange(r.end)
			}
			cmps = append(cmps, c)
		}
	}
	resp, err := d.cli.Txn(t.ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		if isLeaseNotFound(err) {
			d.dropLease(lease)
			return errConflict
		}
		if cerr := t.ctx.Err(); cerr != nil {
			return fmt.Errorf("store: etcd: commit (it may have committed): %w", cerr)
		}
		if errors.Is(err, rpctypes.ErrTooManyOps) || errors.Is(err, rpctypes.ErrRequestTooLarge) {
			return fmt.Errorf("%w: etcd refused it: %v (is MaxTxnOps or MaxRequestBytes above the server's?)", store.ErrTxnTooLarge, err)
		}
		return fmt.Errorf("store: etcd: commit: %w", err)
	}
	if !resp.Succeeded {
		return errConflict
	}
	return nil
}

// coalesce merges the ranges rs into at most maxN sorted disjoint ranges
// whose keys total at most maxBytes, merging the closest neighbours first
// (by position): every key of rs stays covered.
func coalesce(rs []keyRange, maxN, maxBytes int) []keyRange {
	if len(rs) == 0 {
		return nil
	}
	rs = slices.Clone(rs)
	slices.SortFunc(rs, func(a, b keyRange) int { return strings.Compare(a.start, b.start) })
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if r.start <= last.end {
			last.end = max(last.end, r.end)
			continue
		}
		out = append(out, r)
	}
	bytesOf := func(rs []keyRange) int {
		n := 0
		for _, r := range rs {
			n += len(r.start) + len(r.end) + 16
		}
		return n
	}
	for len(out) > 1 && (len(out) > maxN || bytesOf(out) > maxBytes) {
		// Merge neighbours pairwise, halving the count.
		merged := out[:0:0]
		for i := 0; i < len(out); i += 2 {
			if i+1 < len(out) {
				merged = append(merged, keyRange{out[i].start, max(out[i].end, out[i+1].end)})
			} else {
				merged = append(merged, out[i])
			}
		}
		out = merged
	}
	return out
}
