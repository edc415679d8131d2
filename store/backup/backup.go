// Package backup writes, checks and restores backups of a whole store, and
// copies one store into another: every key the store holds (products,
// releases, licenses, tokens, links, the download ledger, the audit log,
// webhooks, the sealed signing keys, as stored) plus the named counters of
// Tx.NextSequence (store.SequenceTx), whatever the driver.
//
// # The file
//
// A backup is one stream, all integers big-endian:
//
//	header    magic "PORTALBK" | version uint16 (= Version)
//	          | created int64 (Unix nanoseconds, UTC) | keys uint64
//	          | sequences uint32 | driver length uint8 | driver
//	sequences 'S' | name length uint16 | last value uint64 | name      (× sequences, by name)
//	keys      'K' | key length uint16 | value length uint32 | key | value   (× keys, in key order)
//	end       'E'
//	trailer   SHA-256 of every byte before it (32 bytes), then the end of the file
//
// The header's counts, the order of keys and names (strictly increasing, so
// no duplicates), the limits of the store (store.MaxKeySize,
// store.MaxValueSize, MaxSequences, MaxDriver) and the trailer are all
// checked: a file truncated at any point, altered anywhere, or written by a
// newer format is refused (ErrFormat, ErrVersion, ErrChecksum) with no byte
// read beyond what its header promises and no allocation beyond the store's
// own limits.
//
// # Consistency
//
// Write reads everything in one store.View, so the backup is the state of
// one instant even while the server writes (on etcd, one revision). It
// reads every key twice in that View: once to count them for the header,
// once to write them. The View lasts as long as the writing: on bbolt a
// writer that needs the file to grow waits for it, so back up to a fast
// local disk, not a slow pipe; on etcd a backup that outlives the
// compaction of its revision fails (take it again).
//
// # Restore
//
// Restore reads the file twice: a first pass checks all of it (Verify), and
// only then a second pass loads it, in transactions of at most the target's
// MaxTxnOps keys and about MaxTxnBytes bytes each, keys first, then the
// counters (raised, never lowered). It refuses a store that holds any key
// (ErrNotEmpty) unless Wipe is set: then every key of the target is deleted
// first, so the result holds exactly the backup's keys. A failure midway
// (the store, or a file that changed between the passes) leaves the target
// with part of the backup's keys and its counters not yet raised, and
// nothing else; restoring again with Wipe starts over and is safe. The
// server must not run on the target meanwhile.
package backup

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"
	"unicode/utf8"

	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/store"
)

// Magic opens every backup file.
const Magic = "PORTALBK"

// Version is the format this package writes; it reads only this one.
const Version = 1

// Limits of a backup beyond the store's own key and value limits.
const (
	// MaxSequences is the most named counters a backup may hold.
	MaxSequences = 4096
	// MaxSequenceName is the longest counter name.
	MaxSequenceName = 255
	// MaxDriver is the longest driver name in a header.
	MaxDriver = 64
	// MaxTxnBytes is about the most key and value bytes Restore and Copy
	// write in one transaction (one larger value goes alone): below
	// etcd's default request limit of 1.5 MiB.
	MaxTxnBytes = 1 << 20
)

const (
	tagSeq = 'S'
	tagKey = 'K'
	tagEnd = 'E'
)

var (
	// ErrFormat is a file that is not a backup, is truncated or breaks the
	// format's rules.
	ErrFormat = errors.New("backup: not a valid backup file")
	// ErrVersion is a backup of a format this portal does not read.
	ErrVersion = errors.New("backup: unsupported format version")
	// ErrChecksum is a backup whose content does not match its checksum:
	// altered or damaged.
	ErrChecksum = errors.New("backup: checksum mismatch: the file was altered or damaged")
	// ErrNotEmpty is a restore into a store that holds keys, without Wipe.
	ErrNotEmpty = errors.New("backup: the target store is not empty")
)

// Info is what a backup's header says, as checked.
type Info struct {
	Version   int
	Created   time.Time
	Driver    string
	Keys      uint64
	Sequences map[string]uint64
	// SHA256 is the trailer's checksum (lower hex), set once the whole
	// file was read.
	SHA256 string
}

// Write writes a backup of db to w, from one View. driver names the store's
// driver in the header ("bolt", "etcd"). It returns what the header says.
// w is written inside the View (see the package documentation); an error
// leaves w with a partial file that Verify refuses.
func Write(ctx context.Context, db store.DB, w io.Writer, driver string, now time.Time) (Info, error) {
	if len(driver) > MaxDriver || !utf8.ValidString(driver) {
		return Info{}, fmt.Errorf("backup: driver name %q is not allowed", driver)
	}
	info := Info{Version: Version, Created: now.UTC(), Driver: driver, Sequences: map[string]uint64{}}
	err := db.View(ctx, func(tx store.Tx) error {
		info.Keys, info.Sequences = 0, map[string]uint64{}
		var names []string
		err := store.Sequences(tx, func(name string, last uint64) error {
			if len(names) >= MaxSequences || len(name) > MaxSequenceName || name == "" {
				return fmt.Errorf("backup: counter %q exceeds the format's limits", name)
			}
			names = append(names, name)
			info.Sequences[name] = last
			return nil
		})
		if err != nil {
			return fmt.Errorf("backup: read counters: %w", err)
		}
		// Counted first, in the same snapshot, so the header can say it.
		err = tx.Scan(nil, store.ScanOptions{}, func(k, v []byte) (bool, error) {
			info.Keys++
			return true, ctx.Err()
		})
		if err != nil {
			return err
		}
		bw := bufio.NewWriterSize(w, 64<<10)
		hw := &hashWriter{w: bw, h: sha256.New()}
		hw.write([]byte(Magic))
		hw.u16(Version)
		hw.u64(uint64(info.Created.UnixNano()))
		hw.u64(info.Keys)
		hw.u32(uint32(len(names)))
		hw.write([]byte{byte(len(driver))})
		hw.write([]byte(driver))
		for _, n := range names {
			hw.write([]byte{tagSeq})
			hw.u16(uint16(len(n)))
			hw.u64(info.Sequences[n])
			hw.write([]byte(n))
		}
		var written uint64
		err = tx.Scan(nil, store.ScanOptions{}, func(k, v []byte) (bool, error) {
			if len(k) > store.MaxKeySize || len(v) > store.MaxValueSize {
				return false, fmt.Errorf("backup: key %q: %w", k, store.ErrTooLarge)
			}
			hw.write([]byte{tagKey})
			hw.u16(uint16(len(k)))
			hw.u32(uint32(len(v)))
			hw.write(k)
			hw.write(v)
			written++
			if hw.err != nil {
				return false, hw.err
			}
			return true, ctx.Err()
		})
		if err != nil {
			return err
		}
		if written != info.Keys {
			return fmt.Errorf("backup: the snapshot changed while it was read (%d keys counted, %d written)", info.Keys, written)
		}
		hw.write([]byte{tagEnd})
		if hw.err != nil {
			return hw.err
		}
		sum := hw.h.Sum(nil)
		info.SHA256 = fmt.Sprintf("%x", sum)
		if _, err := bw.Write(sum); err != nil {
			return err
		}
		return bw.Flush()
	})
	if err != nil {
		return Info{}, fmt.Errorf("backup: %w", err)
	}
	return info, nil
}

// hashWriter writes to w and hashes what it writes; the first error sticks.
type hashWriter struct {
	w   io.Writer
	h   hash.Hash
	err error
	buf [8]byte
}

func (hw *hashWriter) write(p []byte) {
	if hw.err != nil {
		return
	}
	hw.h.Write(p)
	_, hw.err = hw.w.Write(p)
}

func (hw *hashWriter) u16(v uint16) {
	binary.BigEndian.PutUint16(hw.buf[:2], v)
	hw.write(hw.buf[:2])
}

func (hw *hashWriter) u32(v uint32) {
	binary.BigEndian.PutUint32(hw.buf[:4], v)
	hw.write(hw.buf[:4])
}

func (hw *hashWriter) u64(v uint64) {
	binary.BigEndian.PutUint64(hw.buf[:8], v)
	hw.write(hw.buf[:8])
}

// reader parses a backup, hashing everything before the trailer.
type reader struct {
	br  *bufio.Reader
	h   hash.Hash
	off int64
	buf [8]byte
}

func newReader(r io.Reader) *reader {
	return &reader{br: bufio.NewReaderSize(r, 64<<10), h: sha256.New()}
}

// full reads exactly len(p) bytes, hashed; a short read is a truncated file.
func (r *reader) full(p []byte, what string) error {
	n, err := io.ReadFull(r.br, p)
	r.h.Write(p[:n])
	r.off += int64(n)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: truncated at byte %d (in %s)", ErrFormat, r.off, what)
	}
	if err != nil {
		return fmt.Errorf("backup: read: %w", err)
	}
	return nil
}

func (r *reader) u8(what string) (byte, error) {
	err := r.full(r.buf[:1], what)
	return r.buf[0], err
}

func (r *reader) u16(what string) (uint16, error) {
	err := r.full(r.buf[:2], what)
	return binary.BigEndian.Uint16(r.buf[:2]), err
}

func (r *reader) u32(what string) (uint32, error) {
	err := r.full(r.buf[:4], what)
	return binary.BigEndian.Uint32(r.buf[:4]), err
}

func (r *reader) u64(what string) (uint64, error) {
	err := r.full(r.buf[:8], what)
	return binary.BigEndian.Uint64(r.buf[:8]), err
}

func formatErr(off int64, format string, args ...any) error {
	return fmt.Errorf("%w: at byte %d: %s", ErrFormat, off, fmt.Sprintf(format, args...))
}

// header reads and checks the header.
func (r *reader) header() (Info, uint32, error) {
	var info Info
	magic := make([]byte, len(Magic))
	if err := r.full(magic, "magic"); err != nil {
		return info, 0, err
	}
	if string(magic) != Magic {
		return info, 0, fmt.Errorf("%w: it does not start with %q", ErrFormat, Magic)
	}
	v, err := r.u16("version")
	if err != nil {
		return info, 0, err
	}
	if v != Version {
		return info, 0, fmt.Errorf("%w: the file has format %d, this portal reads format %d", ErrVersion, v, Version)
	}
	info.Version = int(v)
	created, err := r.u64("created")
	if err != nil {
		return info, 0, err
	}
	info.Created = time.Unix(0, int64(created)).UTC()
	if info.Keys, err = r.u64("key count"); err != nil {
		return info, 0, err
	}
	nseq, err := r.u32("counter count")
	if err != nil {
		return info, 0, err
	}
	if nseq > MaxSequences {
		return info, 0, formatErr(r.off, "%d counters, more than %d", nseq, MaxSequences)
	}
	dl, err := r.u8("driver length")
	if err != nil {
		return info, 0, err
	}
	if dl > MaxDriver {
		return info, 0, formatErr(r.off, "driver name of %d bytes, more than %d", dl, MaxDriver)
	}
	d := make([]byte, dl)
	if err := r.full(d, "driver"); err != nil {
		return info, 0, err
	}
	if !utf8.Valid(d) {
		return info, 0, formatErr(r.off, "driver name is not UTF-8")
	}
	info.Driver = string(d)
	info.Sequences = make(map[string]uint64, nseq)
	return info, nseq, nil
}

// record is one key and value read from a backup; both are reused by the
// next call of next.
type record struct{ key, value []byte }

// walk reads a whole backup: the header, then each counter (seq), then each
// key (key), in file order, then the trailer. Nothing is reported to key or
// seq that has not passed the format's checks, but the checksum is checked
// only at the end: a caller that writes as it goes must have run walk once
// without writing first.
func walk(src io.Reader, seq func(name string, last uint64) error, key func(k, v []byte) error) (Info, error) {
	r := newReader(src)
	info, nseq, err := r.header()
	if err != nil {
		return info, err
	}
	var prevName string
	for i := uint32(0); i < nseq; i++ {
		tag, err := r.u8("counter")
		if err != nil {
			return info, err
		}
		if tag != tagSeq {
			return info, formatErr(r.off, "counter %d of %d expected, found tag 0x%02x", i+1, nseq, tag)
		}
		nl, err := r.u16("counter name length")
		if err != nil {
			return info, err
		}
		if nl == 0 || nl > MaxSequenceName {
			return info, formatErr(r.off, "counter name of %d bytes (1 to %d allowed)", nl, MaxSequenceName)
		}
		last, err := r.u64("counter value")
		if err != nil {
			return info, err
		}
		name := make([]byte, nl)
		if err := r.full(name, "counter name"); err != nil {
			return info, err
		}
		if i > 0 && string(name) <= prevName {
			return info, formatErr(r.off, "counter %q out of order", name)
		}
		prevName = string(name)
		info.Sequences[prevName] = last
		if seq != nil {
			if err := seq(prevName, last); err != nil {
				return info, err
			}
		}
	}
	kbuf := make([]byte, 0, store.MaxKeySize)
	prev := make([]byte, 0, store.MaxKeySize)
	var vbuf []byte
	for i := uint64(0); ; i++ {
		tag, err := r.u8("record tag")
		if err != nil {
			return info, err
		}
		if tag == tagEnd {
			if i != info.Keys {
				return info, formatErr(r.off, "%d keys, the header says %d", i, info.Keys)
			}
			break
		}
		if tag != tagKey {
			return info, formatErr(r.off, "unknown record tag 0x%02x", tag)
		}
		if i >= info.Keys {
			return info, formatErr(r.off, "more keys than the header's %d", info.Keys)
		}
		kl, err := r.u16("key length")
		if err != nil {
			return info, err
		}
		vl, err := r.u32("value length")
		if err != nil {
			return info, err
		}
		if kl == 0 || int(kl) > store.MaxKeySize {
			return info, formatErr(r.off, "key of %d bytes (1 to %d allowed)", kl, store.MaxKeySize)
		}
		if vl > store.MaxValueSize {
			return info, formatErr(r.off, "value of %d bytes (at most %d allowed)", vl, store.MaxValueSize)
		}
		k := kbuf[:kl]
		if err := r.full(k, "key"); err != nil {
			return info, err
		}
		if i > 0 && bytes.Compare(k, prev) <= 0 {
			return info, formatErr(r.off, "key %q out of order", k)
		}
		if cap(vbuf) < int(vl) {
			vbuf = make([]byte, vl)
		}
		v := vbuf[:vl]
		if err := r.full(v, "value"); err != nil {
			return info, err
		}
		if key != nil {
			if err := key(k, v); err != nil {
				return info, err
			}
		}
		prev = append(prev[:0], k...)
	}
	want := r.h.Sum(nil)
	got := make([]byte, sha256.Size)
	if n, err := io.ReadFull(r.br, got); err != nil {
		return info, fmt.Errorf("%w: truncated at byte %d (in the checksum, %d of %d bytes)", ErrFormat, r.off+int64(n), n, sha256.Size)
	}
	if !bytes.Equal(got, want) {
		return info, ErrChecksum
	}
	if _, err := r.br.ReadByte(); err != io.EOF {
		if err != nil {
			return info, fmt.Errorf("backup: read: %w", err)
		}
		return info, fmt.Errorf("%w: bytes after the checksum", ErrFormat)
	}
	info.SHA256 = fmt.Sprintf("%x", got)
	return info, nil
}

// Verify reads a whole backup and reports what it holds, or why it is
// refused. It writes nothing anywhere.
func Verify(r io.Reader) (Info, error) {
	return walk(r, nil, nil)
}

// RestoreOptions tune Restore.
type RestoreOptions struct {
	// Wipe deletes every key of a non-empty target before loading, so the
	// target ends holding exactly the backup's keys. Without it a
	// non-empty target is refused with ErrNotEmpty.
	Wipe bool
	// Progress, when set, is called after each committed transaction with
	// the keys loaded so far and the backup's total.
	Progress func(done, total uint64)
}

// Restore loads the backup r into db: it checks the whole file first
// (nothing is written when that fails), then, from the start again,
// loads it (see the package documentation for what a failure midway
// leaves). r must be positioned at the backup's start.
func Restore(ctx context.Context, db store.DB, r io.ReadSeeker, opts RestoreOptions) (Info, error) {
	start, err := r.Seek(0, io.SeekCurrent)
	if err != nil {
		return Info{}, fmt.Errorf("backup: restore: %w", err)
	}
	checked, err := Verify(r)
	if err != nil {
		return checked, err
	}
	n, err := Count(ctx, db, 1)
	if err != nil {
		return checked, fmt.Errorf("backup: restore: %w", err)
	}
	if n > 0 {
		if !opts.Wipe {
			return checked, fmt.Errorf("%w: restore loads into an empty store (or pass --force to delete every key it holds first)", ErrNotEmpty)
		}
		if _, err := Wipe(ctx, db); err != nil {
			return checked, fmt.Errorf("backup: restore: wipe the target: %w", err)
		}
	}
	if _, err := r.Seek(start, io.SeekStart); err != nil {
		return checked, fmt.Errorf("backup: restore: %w", err)
	}
	b := newBatcher(ctx, db)
	var done uint64
	b.committed = func(n int) {
		done += uint64(n)
		if opts.Progress != nil {
			opts.Progress(done, checked.Keys)
		}
	}
	info, err := walk(r, nil, func(k, v []byte) error { return b.put(k, v) })
	if err == nil {
		err = b.flush()
	}
	if err == nil && info.SHA256 != checked.SHA256 {
		err = errors.New("the file changed since it was checked")
	}
	if err == nil {
		err = raiseSequences(ctx, db, info.Sequences)
	}
	if err != nil {
		return info, fmt.Errorf("backup: restore stopped after %d of %d keys, leaving a partial store (restore again with --force to start over): %w", done, checked.Keys, err)
	}
	return info, nil
}

// raiseSequences raises db's counters to at least seqs', in transactions
// of at most db.MaxTxnOps() counters.
func raiseSequences(ctx context.Context, db store.DB, seqs map[string]uint64) error {
	names := sortedNames(seqs)
	for len(names) > 0 {
		chunk := names[:min(len(names), db.MaxTxnOps())]
		names = names[len(chunk):]
		err := db.Update(ctx, func(tx store.Tx) error {
			for _, n := range chunk {
				if err := store.RaiseSequence(tx, n, seqs[n]); err != nil {
					return fmt.Errorf("counter %s: %w", n, err)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Count returns how many keys db holds, counting no further than limit
// (0: no limit).
func Count(ctx context.Context, db store.DB, limit uint64) (uint64, error) {
	var n uint64
	err := db.View(ctx, func(tx store.Tx) error {
		n = 0
		return tx.Scan(nil, store.ScanOptions{}, func(k, v []byte) (bool, error) {
			n++
			return limit == 0 || n < limit, ctx.Err()
		})
	})
	return n, err
}

// Wipe deletes every key of db, in transactions of at most db.MaxTxnOps()
// keys, and returns how many it deleted. Counters are left as they are.
func Wipe(ctx context.Context, db store.DB) (int, error) {
	total := 0
	for {
		var keys [][]byte
		err := db.View(ctx, func(tx store.Tx) error {
			keys = keys[:0]
			return tx.Scan(nil, store.ScanOptions{}, func(k, v []byte) (bool, error) {
				keys = append(keys, bytes.Clone(k))
				return len(keys) < db.MaxTxnOps(), nil
			})
		})
		if err != nil || len(keys) == 0 {
			return total, err
		}
		err = db.Update(ctx, func(tx store.Tx) error {
			for _, k := range keys {
				if err := tx.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += len(keys)
	}
}

// batcher collects puts into transactions of at most MaxTxnOps keys and
// about MaxTxnBytes bytes.
type batcher struct {
	ctx       context.Context
	db        store.DB
	keys      [][]byte
	vals      [][]byte
	bytes     int
	committed func(n int)
}

func newBatcher(ctx context.Context, db store.DB) *batcher {
	return &batcher{ctx: ctx, db: db}
}

func (b *batcher) put(k, v []byte) error {
	if len(b.keys) > 0 && (len(b.keys) >= b.db.MaxTxnOps() || b.bytes+len(k)+len(v) > MaxTxnBytes) {
		if err := b.flush(); err != nil {
			return err
		}
	}
	b.keys = append(b.keys, bytes.Clone(k))
	b.vals = append(b.vals, bytes.Clone(v))
	b.bytes += len(k) + len(v)
	return nil
}

func (b *batcher) flush() error {
	if len(b.keys) == 0 {
		return nil
	}
	err := b.db.Update(b.ctx, func(tx store.Tx) error {
		for i, k := range b.keys {
			if err := tx.Put(k, b.vals[i]); err != nil {
				return fmt.Errorf("put %q: %w", k, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if b.committed != nil {
		b.committed(len(b.keys))
	}
	b.keys, b.vals, b.bytes = b.keys[:0], b.vals[:0], 0
	return nil
}

// WriteAudited records the audit record "store.backup" (target "store", the
// actor and request from ctx) in a transaction of its own, then writes the
// backup, which therefore holds its own record. Every door that hands out
// backups (the admin route, the admin socket, `portal backup`) goes
// through it: a backup holds every key, including the sealed signing keys
// and the ledger, so who took one is on record.
func WriteAudited(ctx context.Context, db store.DB, w io.Writer, driver string, now time.Time) (Info, error) {
	err := db.Update(ctx, func(tx store.Tx) error {
		return audit.Write(ctx, tx, "store.backup", "store", nil, map[string]string{"driver": driver})
	})
	if err != nil {
		return Info{}, fmt.Errorf("backup: %w", err)
	}
	return Write(ctx, db, w, driver, now)
}
