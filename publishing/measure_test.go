package publishing

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"

	"github.com/portaldist/portal/objects/local"
)

// TestCompleteMeasure completes one large file on the local store and
// reports the process's peak resident memory. It runs only when
// PORTAL_MEASURE_COMPLETE_SIZE gives the size in bytes, e.g.
//
//	PORTAL_MEASURE_COMPLETE_SIZE=2147483648 go test -run TestCompleteMeasure -v ./publishing/
//
// The file is sparse (zeros with a marker every 64 MiB), made in a temp dir
// and written straight into the store's root, so only its reads count.
func TestCompleteMeasure(t *testing.T) {
	size, _ := strconv.ParseInt(os.Getenv("PORTAL_MEASURE_COMPLETE_SIZE"), 10, 64)
	if size <= 0 {
		t.Skip("set PORTAL_MEASURE_COMPLETE_SIZE to measure")
	}
	dir := t.TempDir()
	keys, err := local.LoadOrCreateKeyring(filepath.Join(dir, "blob-keys"), "")
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "objects")
	st, err := local.Open(local.Options{Root: root, BaseURL: "http://127.0.0.1:1", Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e := newEnv(t, st, Options{})

	src := filepath.Join(dir, "big.bin")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for off := int64(0); off < size; off += 64 << 20 {
		f.WriteAt([]byte("portal "+strconv.FormatInt(off, 10)), off)
	}
	f.Seek(0, io.SeekStart)
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	sum := hex.EncodeToString(h.Sum(nil))

	a, _, err := e.svc.AddArtifact(e.ctx, product, version, declaration("big.bin", size, sum), "")
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(root, filepath.FromSlash(a.ObjectKey))
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(src, dst); err != nil {
		t.Fatal(err)
	}

	runtime.GC()
	hwmBefore := vmHWM(t)
	got, err := e.svc.Complete(e.ctx, product, version, a.Filename)
	if err != nil {
		t.Fatal(err)
	}
	if got.Signatures["ed25519"] == "" || got.Signatures["minisign"] == "" {
		t.Fatalf("signatures %v", got.Signatures)
	}
	samples := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(samples)
	t.Logf("completed %d bytes: VmHWM before %d KiB, after %d KiB; heap objects now %d KiB; heap allocated in total %d KiB",
		size, hwmBefore, vmHWM(t), samples[0].Value.Uint64()>>10, samples[1].Value.Uint64()>>10)
}

// vmHWM returns the process's peak resident set size in KiB.
func vmHWM(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	t.Fatal("no VmHWM")
	return 0
}
