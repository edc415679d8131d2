package objectstest_test

import (
	"context"
	"testing"
	"time"

	"github.com/portaldist/portal/objects"
	"github.com/portaldist/portal/objects/local"
	"github.com/portaldist/portal/objects/objectstest"
	"github.com/portaldist/portal/objects/s3store"
	"github.com/portaldist/portal/objects/s3store/s3test"
)

func TestLocal(t *testing.T) {
	st, _ := objectstest.LocalStore(t)
	objectstest.Run(t, func(*testing.T) objects.ObjectStore { return st })
}

func TestS3(t *testing.T) {
	st := s3test.Store(t)
	objectstest.Run(t, func(*testing.T) objects.ObjectStore { return st })

	t.Run("StatReportsStoredSHA256", func(t *testing.T) {
		data := objectstest.RandomBytes(1000)
		key := objectstest.RandomKey("sum.bin")
		objectstest.Upload(t, st, key, data)
		info, err := st.Stat(context.Background(), key)
		if err != nil || info.SHA256 != objectstest.SHA256(data) {
			t.Fatalf("Stat %+v %v, want the SHA-256 S3 verified at upload", info, err)
		}
	})
	t.Run("Ping", func(t *testing.T) {
		cfg := s3test.Config(t)
		cfg.Bucket = "portal-no-such-bucket"
		other, err := s3store.New(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := other.Ping(context.Background()); err == nil {
			t.Fatal("Ping succeeded for a missing bucket")
		}
	})
}

func BenchmarkLocalPresignGet(b *testing.B) {
	keys, err := local.NewKeyring(local.Key{ID: "k1", Secret: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		b.Fatal(err)
	}
	st, err := local.Open(local.Options{Root: b.TempDir(), BaseURL: "http://127.0.0.1:8080", Keys: keys})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := st.PresignGet(ctx, "p/product/0123456789/app-1.2.3-linux-amd64.tar.gz", 15*time.Minute, "app-1.2.3-linux-amd64.tar.gz"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkS3PresignGet(b *testing.B) {
	ctx := context.Background()
	// Presigning is offline: no server behind this endpoint.
	st, err := s3store.New(ctx, s3store.Config{
		Bucket: "bench", Endpoint: "http://127.0.0.1:9", PathStyle: true,
		AccessKey: "AKIDEXAMPLE", SecretKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := st.PresignGet(ctx, "p/product/0123456789/app-1.2.3-linux-amd64.tar.gz", 15*time.Minute, "app-1.2.3-linux-amd64.tar.gz"); err != nil {
			b.Fatal(err)
		}
	}
}
