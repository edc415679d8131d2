package backup_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/portaldist/portal/internal/etcdtest"
	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/store/backup"
	"github.com/portaldist/portal/store/etcd"
)

// openEtcd opens the driver on c under a prefix of its own.
func openEtcd(t *testing.T, c *etcdtest.Cluster, name string) *etcd.DB {
	t.Helper()
	db, err := etcd.Open(context.Background(), etcd.Options{Endpoints: c.Endpoints(), Prefix: etcdtest.Prefix(t) + name + "/"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestEtcd: bolt -> etcd with store copy; a backup of etcd taken while
// writers commit pairs of keys, restored into etcd and into bolt; etcd ->
// bolt with store copy; each compared key by key, counters included, on a
// real 3-member cluster with etcd's default limits.
func TestEtcd(t *testing.T) {
	ctx := context.Background()
	c := etcdtest.New(t, etcdtest.Options{})
	src := openBolt(t)
	fill(t, src, 600)

	e := openEtcd(t, c, "copy")
	res, err := backup.Copy(ctx, src, e, backup.CopyOptions{})
	if err != nil || res.Written != 602 || res.Sequences != 2 {
		t.Fatalf("bolt -> etcd: %+v, %v", res, err)
	}
	mustEqual(t, src, e)
	if res, err := backup.Copy(ctx, src, e, backup.CopyOptions{}); err != nil || res.Written != 0 {
		t.Fatalf("rerun bolt -> etcd: %+v, %v", res, err)
	}

	// A backup of etcd while writers go on.
	stop := writePairs(t, e, 2, 20)
	var buf bytes.Buffer
	info, err := backup.Write(ctx, e, &buf, "etcd", time.Now())
	stop()
	if err != nil {
		t.Fatal(err)
	}
	if info.Driver != "etcd" || info.Keys <= 602 {
		t.Fatalf("backup of etcd: %+v", info)
	}

	for _, target := range []struct {
		name string
		db   store.DB
	}{{"etcd", openEtcd(t, c, "restored")}, {"bolt", openBolt(t)}} {
		t.Run("restore into "+target.name, func(t *testing.T) {
			got, err := backup.Restore(ctx, target.db, bytes.NewReader(buf.Bytes()), backup.RestoreOptions{})
			if err != nil || got.Keys != info.Keys {
				t.Fatalf("restore: %+v, %v", got, err)
			}
			// The snapshot holds both keys of every pair or neither.
			var a, b int
			err = target.db.View(ctx, func(tx store.Tx) error {
				return tx.Scan([]byte("pair/"), store.ScanOptions{}, func(k, v []byte) (bool, error) {
					other := bytes.Clone(k)
					if k[5] == 'a' {
						a++
						other[5] = 'b'
					} else {
						b++
						other[5] = 'a'
					}
					if _, err := tx.Get(other); err != nil {
						return false, fmt.Errorf("%s without its pair: %w", k, err)
					}
					return true, nil
				})
			})
			if err != nil || a != b || uint64(602+a+b) != info.Keys {
				t.Fatalf("pairs: %d a, %d b, %d keys: %v", a, b, info.Keys, err)
			}
			if s := sequences(t, target.db); s["ledger"] != info.Sequences["ledger"] || s["ledger"] < 7+uint64(a) {
				t.Fatalf("counters %v, backup's %v", s, info.Sequences)
			}
			// A second backup of the restored store is the same keys.
			var again bytes.Buffer
			if _, err := backup.Write(ctx, target.db, &again, target.name, time.Now()); err != nil {
				t.Fatal(err)
			}
			check := openBolt(t)
			if _, err := backup.Restore(ctx, check, bytes.NewReader(again.Bytes()), backup.RestoreOptions{}); err != nil {
				t.Fatal(err)
			}
			mustEqual(t, target.db, check)
		})
	}

	// And back: etcd -> bolt, then a wipe-and-restore into a non-empty etcd.
	back := openBolt(t)
	if _, err := backup.Copy(ctx, e, back, backup.CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, e, back)
	if _, err := backup.Restore(ctx, e, bytes.NewReader(writeBackup(t, src)), backup.RestoreOptions{Wipe: true}); err != nil {
		t.Fatal(err)
	}
	if d, err := backup.Compare(ctx, src, e); err != nil || d.NMissing+d.NChanged+d.NExtra != 0 {
		t.Fatalf("etcd after restore --force of the bolt backup: %s, %v", d, err)
	}
}
