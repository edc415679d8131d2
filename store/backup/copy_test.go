package backup_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/store/backup"
)

func TestCopyRerunAndExtras(t *testing.T) {
	ctx := context.Background()
	src := openBolt(t)
	fill(t, src, 700)
	dst := limited{openBolt(t), &txnLog{}}
	// The target already holds a key of the source with another value, and
	// keys the source lacks, before, between and after the source's keys.
	err := dst.Update(ctx, func(tx store.Tx) error {
		for _, k := range []string{"a/first", "k/000350x", "zzz/last"} {
			if err := tx.Put([]byte(k), []byte("stray")); err != nil {
				return err
			}
		}
		return tx.Put([]byte("k/000010"), []byte("old"))
	})
	if err != nil {
		t.Fatal(err)
	}

	res, err := backup.Copy(ctx, src, dst, backup.CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Keys != 702 || res.Written != 702 || res.Extra != 3 || res.Pruned != 0 || res.Sequences != 2 {
		t.Fatalf("first copy: %+v", res)
	}
	d, err := backup.Compare(ctx, src, dst)
	if err != nil {
		t.Fatal(err)
	}
	if d.Equal() || d.NExtra != 3 || d.NMissing != 0 || d.NChanged != 0 || len(d.Counters) != 0 || d.Keys != 702 {
		t.Fatalf("compare after a copy that kept the extras: %s", d)
	}

	// A change in the source, then a rerun: only that key is written.
	if err := src.Update(ctx, func(tx store.Tx) error { return tx.Put([]byte("k/000500"), []byte("new")) }); err != nil {
		t.Fatal(err)
	}
	res, err = backup.Copy(ctx, src, dst, backup.CopyOptions{Prune: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Written != 1 || res.Extra != 3 || res.Pruned != 3 {
		t.Fatalf("rerun: %+v", res)
	}
	mustEqual(t, src, dst)
	if m := dst.log.max.Load(); m > store.MaxTxnOps {
		t.Fatalf("a copy transaction wrote %d keys", m)
	}
	res, err = backup.Copy(ctx, src, dst, backup.CopyOptions{})
	if err != nil || res.Written != 0 || res.Extra != 0 {
		t.Fatalf("third run: %+v, %v", res, err)
	}
}

func TestCompareFindsEveryDifference(t *testing.T) {
	ctx := context.Background()
	src, dst := openBolt(t), openBolt(t)
	fill(t, src, 400)
	if _, err := backup.Copy(ctx, src, dst, backup.CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, src, dst)
	err := dst.Update(ctx, func(tx store.Tx) error {
		tx.Delete([]byte("k/000000"))
		tx.Delete([]byte("k/000399"))
		tx.Put([]byte("k/000200"), []byte("changed"))
		return tx.Put([]byte("k/000200a"), []byte("extra"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Update(ctx, func(tx store.Tx) error { _, err := tx.NextSequence("webhooks"); return err }); err != nil {
		t.Fatal(err)
	}
	d, err := backup.Compare(ctx, src, dst)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%d %d %d %d", 2, 1, 1, 1)
	if got := fmt.Sprintf("%d %d %d %d", d.NMissing, d.NChanged, d.NExtra, len(d.Counters)); got != want {
		t.Fatalf("compare: %s", d)
	}
}
