package etcd_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/store/etcd"
	"github.com/portaldist/portal/store/storetest"
)

// The benchmarks run against the package's in-process 3-member cluster
// (loopback, no fsync): they measure the driver and etcd's request path,
// not a disk or a network.

func benchDB(b *testing.B) *etcd.DB {
	b.Helper()
	return open(b, etcd.Options{})
}

// BenchmarkUpdate: one Update writing one key (blind: one etcd Txn).
func BenchmarkUpdate(b *testing.B) {
	db := benchDB(b)
	v := make([]byte, 256)
	b.ResetTimer()
	for i := range b.N {
		k := []byte(fmt.Sprintf("u/%08d", i%1000))
		if err := db.Update(bg, func(tx store.Tx) error { return tx.Put(k, v) }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUpdateReadWrite: Get then Put of one key (a linearizable read
// and a guarded Txn).
func BenchmarkUpdateReadWrite(b *testing.B) {
	db := benchDB(b)
	storetest.Put(b, db, "n", "0")
	b.ResetTimer()
	for range b.N {
		if err := db.Update(bg, func(tx store.Tx) error {
			v, err := tx.Get([]byte("n"))
			if err != nil {
				return err
			}
			return tx.Put([]byte("n"), v[:min(len(v), 8)])
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUpdateParallel: independent read-modify-write Updates of
// different keys from concurrent goroutines.
func BenchmarkUpdateParallel(b *testing.B) {
	db := benchDB(b)
	var id atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		k := []byte(fmt.Sprintf("par/%d", id.Add(1)))
		for pb.Next() {
			if err := db.Update(bg, func(tx store.Tx) error {
				if _, err := tx.Get(k); err != nil && err != store.ErrNotFound {
					return err
				}
				return tx.Put(k, []byte("v"))
			}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkViewGet: a View reading one key.
func BenchmarkViewGet(b *testing.B) {
	db := benchDB(b)
	storetest.Put(b, db, "g", "value")
	b.ResetTimer()
	for range b.N {
		if err := db.View(bg, func(tx store.Tx) error { _, err := tx.Get([]byte("g")); return err }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScanPage: a View scanning one page (100 of 1000 keys of 256
// bytes, from a cursor).
func BenchmarkScanPage(b *testing.B) {
	db := benchDB(b)
	v := string(make([]byte, 256))
	for start := 0; start < 1000; start += 100 {
		var kv []string
		for i := start; i < start+100; i++ {
			kv = append(kv, fmt.Sprintf("s/%04d", i), v)
		}
		storetest.Put(b, db, kv...)
	}
	b.ResetTimer()
	for i := range b.N {
		after := []byte(fmt.Sprintf("s/%04d", (i*100)%900))
		n := 0
		if err := db.View(bg, func(tx store.Tx) error {
			return tx.Scan([]byte("s/"), store.ScanOptions{After: after}, func(k, v []byte) (bool, error) {
				n++
				return n < 100, nil
			})
		}); err != nil {
			b.Fatal(err)
		}
		if n != 100 {
			b.Fatalf("scanned %d", n)
		}
	}
}
