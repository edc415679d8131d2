package bolt_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/store/bolt"
)

// rssFileKB is the process's file-backed resident memory (RssFile in
// /proc/self/status), in KiB.
func rssFileKB(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "RssFile:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}

// After a scan has mapped the whole file, ReleaseMemory drops those pages
// from the process's resident set, and every value still reads back as
// stored, during and after transactions that run meanwhile.
func TestReleaseMemory(t *testing.T) {
	ctx := context.Background()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "portal.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const keys, size = 4096, 8 << 10 // 32 MiB of values
	value := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, size) }
	for batch := 0; batch < keys; batch += 64 {
		if err := db.Update(ctx, func(tx store.Tx) error {
			for i := batch; i < batch+64; i++ {
				if err := tx.Put(fmt.Appendf(nil, "k/%05d", i), value(i)); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	scan := func() {
		t.Helper()
		n := 0
		if err := db.View(ctx, func(tx store.Tx) error {
			return tx.Scan([]byte("k/"), store.ScanOptions{}, func(k, v []byte) (bool, error) {
				if !bytes.Equal(v, value(n)) {
					return false, fmt.Errorf("%s: wrong value", k)
				}
				n++
				return true, nil
			})
		}); err != nil {
			t.Fatal(err)
		}
		if n != keys {
			t.Fatalf("scanned %d keys, want %d", n, keys)
		}
	}
	scan()
	before := rssFileKB(t)
	if err := db.ReleaseMemory(); err != nil {
		t.Fatal(err)
	}
	after := rssFileKB(t)
	t.Logf("file-backed resident memory: %d KiB after the scan, %d after ReleaseMemory", before, after)
	if before-after < 24<<10 {
		t.Errorf("file-backed resident memory %d KiB before, %d after: want at least 24 MiB released", before, after)
	}
	// The data is all there, and a write after the release works.
	scan()
	if err := db.Update(ctx, func(tx store.Tx) error { return tx.Put([]byte("k/after"), []byte("x")) }); err != nil {
		t.Fatal(err)
	}
	if err := db.ReleaseMemory(); err != nil {
		t.Fatal(err)
	}
	if err := db.View(ctx, func(tx store.Tx) error {
		v, err := tx.Get([]byte("k/after"))
		if err == nil && string(v) != "x" {
			err = fmt.Errorf("k/after = %q", v)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}
