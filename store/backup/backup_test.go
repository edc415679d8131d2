package backup_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/store/backup"
	"github.com/portaldist/portal/store/bolt"
)

func openBolt(t testing.TB) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "portal.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// fill writes n keys (some at the store's limits) and draws counters.
func fill(t testing.TB, db store.DB, n int) {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < n; i += 100 {
		err := db.Update(ctx, func(tx store.Tx) error {
			for j := i; j < min(i+100, n); j++ {
				if err := tx.Put(fmt.Appendf(nil, "k/%06d", j), fmt.Appendf(nil, "value %d", j)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	err := db.Update(ctx, func(tx store.Tx) error {
		if err := tx.Put(bytes.Repeat([]byte{0xff}, store.MaxKeySize), bytes.Repeat([]byte("v"), store.MaxValueSize)); err != nil {
			return err
		}
		if err := tx.Put([]byte("empty"), nil); err != nil {
			return err
		}
		for range 7 {
			if _, err := tx.NextSequence("ledger"); err != nil {
				return err
			}
		}
		_, err := tx.NextSequence("audit")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func sequences(t testing.TB, db store.DB) map[string]uint64 {
	t.Helper()
	m := map[string]uint64{}
	err := db.View(context.Background(), func(tx store.Tx) error {
		return store.Sequences(tx, func(name string, last uint64) error { m[name] = last; return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func writeBackup(t testing.TB, db store.DB) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := backup.Write(context.Background(), db, &buf, "bolt", time.Now()); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func mustEqual(t *testing.T, src, dst store.DB) {
	t.Helper()
	d, err := backup.Compare(context.Background(), src, dst)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Equal() {
		t.Fatalf("stores differ: %s", d)
	}
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	src := openBolt(t)
	fill(t, src, 1000)
	file := writeBackup(t, src)

	info, err := backup.Verify(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	if info.Keys != 1002 || info.Driver != "bolt" || info.Version != backup.Version || info.Sequences["ledger"] != 7 {
		t.Fatalf("info = %+v", info)
	}
	if want := fmt.Sprintf("%x", sha256.Sum256(file[:len(file)-32])); info.SHA256 != want {
		t.Fatalf("checksum %s, want %s", info.SHA256, want)
	}

	dst := limited{openBolt(t), &txnLog{}}
	var progress uint64
	got, err := backup.Restore(ctx, dst, bytes.NewReader(file), backup.RestoreOptions{Progress: func(done, total uint64) { progress = done }})
	if err != nil {
		t.Fatal(err)
	}
	if got.Keys != 1002 || progress != 1002 {
		t.Fatalf("restored %d keys, progress %d", got.Keys, progress)
	}
	mustEqual(t, src, dst)
	if s := sequences(t, dst); s["ledger"] != 7 || s["audit"] != 1 {
		t.Fatalf("counters %v", s)
	}
	// Every transaction stayed within the portable limits.
	if m := dst.log.max.Load(); m > store.MaxTxnOps || m == 0 {
		t.Fatalf("a restore transaction wrote %d keys", m)
	}
	// The next grant key does not reuse a restored one.
	err = dst.Update(ctx, func(tx store.Tx) error {
		v, err := tx.NextSequence("ledger")
		if err == nil && v != 8 {
			err = fmt.Errorf("next ledger value %d, want 8", v)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// limited is a store that allows only the portable MaxTxnOps per Update
// and records the largest Update and can fail the nth.
type limited struct {
	store.DB
	log *txnLog
}

type txnLog struct {
	max    atomic.Int64
	n      atomic.Int64
	failAt int64 // fail the failAt-th Update (1-based); 0 never
}

func (l limited) MaxTxnOps() int { return store.MaxTxnOps }

func (l limited) Update(ctx context.Context, fn func(store.Tx) error) error {
	if n := l.log.n.Add(1); n == l.log.failAt {
		return errors.New("injected failure")
	}
	return l.DB.Update(ctx, func(tx store.Tx) error {
		c := &countTx{Tx: tx, keys: map[string]bool{}}
		if err := fn(c); err != nil {
			return err
		}
		if int64(len(c.keys)) > l.log.max.Load() {
			l.log.max.Store(int64(len(c.keys)))
		}
		if len(c.keys) > store.MaxTxnOps {
			return fmt.Errorf("%d keys in one transaction", len(c.keys))
		}
		return nil
	})
}

type countTx struct {
	store.Tx
	keys map[string]bool
}

func (c *countTx) Put(k, v []byte) error { c.keys[string(k)] = true; return c.Tx.Put(k, v) }
func (c *countTx) Delete(k []byte) error { c.keys[string(k)] = true; return c.Tx.Delete(k) }
func (c *countTx) RaiseSequence(n string, last uint64) error {
	c.keys["seq:"+n] = true
	return store.RaiseSequence(c.Tx, n, last)
}
func (c *countTx) Sequences(fn func(string, uint64) error) error { return store.Sequences(c.Tx, fn) }

func TestRestoreRefusesNonEmptyUnlessWipe(t *testing.T) {
	ctx := context.Background()
	src := openBolt(t)
	fill(t, src, 300)
	file := writeBackup(t, src)

	dst := openBolt(t)
	err := dst.Update(ctx, func(tx store.Tx) error { return tx.Put([]byte("zz/stray"), []byte("x")) })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := backup.Restore(ctx, dst, bytes.NewReader(file), backup.RestoreOptions{}); !errors.Is(err, backup.ErrNotEmpty) {
		t.Fatalf("restore into a non-empty store: %v", err)
	}
	if n, _ := backup.Count(ctx, dst, 0); n != 1 {
		t.Fatalf("the refused restore left %d keys", n)
	}
	if _, err := backup.Restore(ctx, dst, bytes.NewReader(file), backup.RestoreOptions{Wipe: true}); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, src, dst)
}

func TestRestoreFailureMidwayThenRerun(t *testing.T) {
	ctx := context.Background()
	src := openBolt(t)
	fill(t, src, 1000)
	file := writeBackup(t, src)

	dst := limited{openBolt(t), &txnLog{failAt: 4}}
	_, err := backup.Restore(ctx, dst, bytes.NewReader(file), backup.RestoreOptions{})
	if err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("restore with a failing store: %v", err)
	}
	n, _ := backup.Count(ctx, dst, 0)
	if n == 0 || n >= 1002 {
		t.Fatalf("the failed restore left %d keys, want part of them", n)
	}
	if _, err := backup.Restore(ctx, dst, bytes.NewReader(file), backup.RestoreOptions{}); !errors.Is(err, backup.ErrNotEmpty) {
		t.Fatalf("rerun without wipe: %v", err)
	}
	if _, err := backup.Restore(ctx, dst, bytes.NewReader(file), backup.RestoreOptions{Wipe: true}); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, src, dst)
}

// writePairs starts writers goroutines that each commit, until stop is
// called, transactions drawing the "ledger" counter and writing a pair of
// keys (pair/a/W/N and pair/b/W/N); it returns once min have committed. A
// failed commit fails t. stop ends the writers and waits for them.
func writePairs(t testing.TB, db store.DB, writers int, min int64) (stop func()) {
	ctx := context.Background()
	done := make(chan struct{})
	var wg sync.WaitGroup
	var commits atomic.Int64
	for w := range writers {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				err := db.Update(ctx, func(tx store.Tx) error {
					if _, err := tx.NextSequence("ledger"); err != nil {
						return err
					}
					if err := tx.Put(fmt.Appendf(nil, "pair/a/%d/%06d", w, i), []byte("a")); err != nil {
						return err
					}
					return tx.Put(fmt.Appendf(nil, "pair/b/%d/%06d", w, i), []byte("b"))
				})
				if err != nil {
					t.Error(err)
					return
				}
				commits.Add(1)
			}
		})
	}
	for commits.Load() < min {
		time.Sleep(time.Millisecond)
	}
	return func() {
		close(done)
		wg.Wait()
	}
}

// TestBackupWhileWriting backs up while writers commit transactions that
// each write a pair of keys: a consistent snapshot holds both keys of a
// pair or neither, and restores to the same store.
func TestBackupWhileWriting(t *testing.T) {
	ctx := context.Background()
	src := openBolt(t)
	fill(t, src, 200)
	stop := writePairs(t, src, 3, 50)
	var files [][]byte
	for range 3 {
		files = append(files, writeBackup(t, src))
	}
	stop()
	if t.Failed() {
		return
	}
	for i, file := range files {
		dst := openBolt(t)
		info, err := backup.Restore(ctx, dst, bytes.NewReader(file), backup.RestoreOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var a, b int
		err = dst.View(ctx, func(tx store.Tx) error {
			return tx.Scan([]byte("pair/a/"), store.ScanOptions{}, func(k, v []byte) (bool, error) {
				a++
				_, err := tx.Get(bytes.Replace(k, []byte("pair/a/"), []byte("pair/b/"), 1))
				if err != nil {
					return false, fmt.Errorf("%s without its pair: %w", k, err)
				}
				return true, nil
			})
		})
		if err != nil {
			t.Fatalf("backup %d: %v", i, err)
		}
		dst.View(ctx, func(tx store.Tx) error {
			return tx.Scan([]byte("pair/b/"), store.ScanOptions{}, func(k, v []byte) (bool, error) { b++; return true, nil })
		})
		if a != b || a == 0 || info.Keys != uint64(202+a+b) {
			t.Fatalf("backup %d: %d a keys, %d b keys, %d keys in all", i, a, b, info.Keys)
		}
		// The counter covers every pair in the snapshot (each drew one).
		if s := sequences(t, dst); s["ledger"] < 7+uint64(a) {
			t.Fatalf("backup %d: ledger counter %d below %d", i, s["ledger"], 7+a)
		}
	}
}

// TestHostileFiles: every damaged file is refused before anything is
// written.
func TestHostileFiles(t *testing.T) {
	ctx := context.Background()
	src := openBolt(t)
	err := src.Update(ctx, func(tx store.Tx) error {
		for i := range 5 {
			if err := tx.Put(fmt.Appendf(nil, "key/%d", i), fmt.Appendf(nil, "val%d", i)); err != nil {
				return err
			}
		}
		_, err := tx.NextSequence("ledger")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	good := writeBackup(t, src)

	// A header of our own making: magic, version, created, keys, nseq,
	// driver; then body.
	header := func(version uint16, keys uint64, nseq uint32, driver string) []byte {
		b := []byte(backup.Magic)
		b = binary.BigEndian.AppendUint16(b, version)
		b = binary.BigEndian.AppendUint64(b, 0)
		b = binary.BigEndian.AppendUint64(b, keys)
		b = binary.BigEndian.AppendUint32(b, nseq)
		b = append(b, byte(len(driver)))
		return append(b, driver...)
	}
	seal := func(b []byte) []byte { s := sha256.Sum256(b); return append(b, s[:]...) }
	keyRec := func(kl uint16, vl uint32, k, v string) []byte {
		b := []byte{'K'}
		b = binary.BigEndian.AppendUint16(b, kl)
		b = binary.BigEndian.AppendUint32(b, vl)
		return append(append(b, k...), v...)
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	type tc struct {
		name string
		file []byte
		want error
		msg  string
	}
	cases := []tc{
		{"empty", nil, backup.ErrFormat, "truncated"},
		{"bad magic", append([]byte("PORTALXX"), good[8:]...), backup.ErrFormat, "does not start"},
		{"future version", cat(header(2, 0, 0, "bolt"), []byte{'E'}), backup.ErrVersion, "format 2"},
		{"huge key length", seal(cat(header(1, 1, 0, "bolt"), keyRec(0xffff, 1, "", ""))), backup.ErrFormat, "key of 65535 bytes"},
		{"huge value length", seal(cat(header(1, 1, 0, "bolt"), keyRec(1, 0xffffffff, "k", ""))), backup.ErrFormat, "value of 4294967295"},
		{"empty key", seal(cat(header(1, 1, 0, "bolt"), keyRec(0, 1, "", "v"), []byte{'E'})), backup.ErrFormat, "key of 0 bytes"},
		{"too many counters", seal(cat(header(1, 0, 1<<31, "bolt"))), backup.ErrFormat, "counters"},
		{"long driver", seal(cat(header(1, 0, 0, strings.Repeat("d", 200)))), backup.ErrFormat, "driver name"},
		{"more keys than said", seal(cat(header(1, 1, 0, "bolt"), keyRec(1, 1, "a", "v"), keyRec(1, 1, "b", "v"), []byte{'E'})), backup.ErrFormat, "more keys"},
		{"fewer keys than said", seal(cat(header(1, 2, 0, "bolt"), keyRec(1, 1, "a", "v"), []byte{'E'})), backup.ErrFormat, "header says 2"},
		{"keys out of order", seal(cat(header(1, 2, 0, "bolt"), keyRec(1, 1, "b", "v"), keyRec(1, 1, "a", "v"), []byte{'E'})), backup.ErrFormat, "out of order"},
		{"duplicate key", seal(cat(header(1, 2, 0, "bolt"), keyRec(1, 1, "a", "v"), keyRec(1, 1, "a", "w"), []byte{'E'})), backup.ErrFormat, "out of order"},
		{"unknown tag", seal(cat(header(1, 1, 0, "bolt"), []byte{'X'})), backup.ErrFormat, "unknown record tag"},
		{"wrong checksum", append(bytes.Clone(good[:len(good)-1]), good[len(good)-1]^1), backup.ErrChecksum, "altered"},
		{"trailing bytes", append(bytes.Clone(good), 0), backup.ErrFormat, "after the checksum"},
	}
	// Truncated at every point.
	for i := range len(good) {
		cases = append(cases, tc{fmt.Sprintf("truncated at %d", i), good[:i], backup.ErrFormat, "truncated"})
	}
	// Altered at every byte (the result may also break the format first).
	for i := range len(good) {
		bad := bytes.Clone(good)
		bad[i] ^= 0x20
		cases = append(cases, tc{fmt.Sprintf("altered at %d", i), bad, nil, ""})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dst := openBolt(t)
			_, err := backup.Restore(ctx, dst, bytes.NewReader(c.file), backup.RestoreOptions{Wipe: true})
			if err == nil {
				t.Fatal("accepted")
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
			if c.msg != "" && !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("error %q does not say %q", err, c.msg)
			}
			if n, _ := backup.Count(ctx, dst, 0); n != 0 {
				t.Fatalf("%d keys written", n)
			}
			if s := sequences(t, dst); len(s) != 0 {
				t.Fatalf("counters written: %v", s)
			}
		})
	}
}

// FuzzVerify: no input panics or allocates beyond the limits, and what
// Verify accepts restores to exactly as many keys as it says.
func FuzzVerify(f *testing.F) {
	src := openBolt(f)
	src.Update(context.Background(), func(tx store.Tx) error {
		tx.Put([]byte("a"), []byte("1"))
		tx.Put([]byte("b"), nil)
		_, err := tx.NextSequence("ledger")
		return err
	})
	good := writeBackup(f, src)
	f.Add(good)
	f.Add(good[:40])
	f.Add([]byte(backup.Magic))
	f.Fuzz(func(t *testing.T, file []byte) {
		info, err := backup.Verify(bytes.NewReader(file))
		if err != nil {
			return
		}
		dst := openBolt(t)
		got, err := backup.Restore(context.Background(), dst, bytes.NewReader(file), backup.RestoreOptions{})
		if err != nil {
			t.Fatalf("verified file not restored: %v", err)
		}
		if n, _ := backup.Count(context.Background(), dst, 0); n != info.Keys || got.Keys != info.Keys {
			t.Fatalf("restored %d keys, header says %d", n, info.Keys)
		}
	})
}

// failingWriter fails after n bytes.
type failingWriter struct{ n int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		return 0, io.ErrShortWrite
	}
	w.n -= len(p)
	return len(p), nil
}

func TestWriteErrorIsReported(t *testing.T) {
	src := openBolt(t)
	fill(t, src, 5000)
	if _, err := backup.Write(context.Background(), src, &failingWriter{n: 100 << 10}, "bolt", time.Now()); !errors.Is(err, io.ErrShortWrite) {
		t.Fatalf("write to a failing writer: %v", err)
	}
}
