package bolt

import (
	"fmt"
	"syscall"
	"unsafe"

	"go.etcd.io/bbolt"
)

// ReleaseMemory tells the kernel that this process no longer needs the
// pages of the file's memory map it has read so far (madvise with
// MADV_DONTNEED over the map). The pages stay in the page cache, shared
// and reclaimable as before: a later read maps a page back without I/O
// while it is cached, and nothing stored changes. Only the process's
// resident set shrinks, which is what monitoring and memory limits see.
//
// Call it after a scan that touched much of the file and will not be
// repeated soon, such as the start-up loads of the key sets and the update
// index: on a catalog of a million licenses they leave some 600 MB of the
// map resident. It is safe to call while transactions run: it holds a read
// transaction, so bbolt cannot remap the file meanwhile. A no-op on
// systems other than Linux.
func (db *DB) ReleaseMemory() error {
	return db.db.View(func(tx *bbolt.Tx) error {
		info := db.db.Info()
		size := tx.Size()
		if info.Data == 0 || size <= 0 {
			return nil
		}
		// info.Data is the map's address as a uintptr; read it as a
		// pointer in place rather than converting (the map is not Go
		// memory and does not move while the transaction is open).
		base := *(*unsafe.Pointer)(unsafe.Pointer(&info.Data))
		if err := syscall.Madvise(unsafe.Slice((*byte)(base), size), syscall.MADV_DONTNEED); err != nil {
			return fmt.Errorf("store: release the map's pages: %w", err)
		}
		return nil
	})
}
