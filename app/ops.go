package app

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/portaldist/portal/configs"
	"github.com/portaldist/portal/objects"
	"github.com/portaldist/portal/publishing/inventory"
	"github.com/portaldist/portal/store/backup"
)

// Bounds of the start-up check that published artifacts' objects exist.
const (
	// ObjectsSampleSize is how many published objects Open has checked
	// (with Stat, none read) in the background.
	ObjectsSampleSize = 200
	// ObjectsSampleTimeout bounds that check; /readyz says when it ran out.
	ObjectsSampleTimeout = 30 * time.Second
)

// OpenObjects opens the object store cfg describes, alone, as Open would
// (an S3 store must pass its probe), for tools that copy or check objects.
// The caller calls close when done.
func OpenObjects(ctx context.Context, cfg *configs.Config) (st objects.ObjectStore, close func() error, err error) {
	a := &App{Config: cfg, Log: slog.New(slog.DiscardHandler)}
	if err := a.openObjects(ctx); err != nil {
		return nil, nil, err
	}
	close = a.closeObjects
	if close == nil {
		close = func() error { return nil }
	}
	return a.Objects, close, nil
}

// checkObjects runs the start-up sample of published objects (see
// inventory.Sampler) and says loudly, in the log, what it finds missing;
// /readyz shows the same result.
func (a *App) checkObjects(ctx context.Context) {
	res := a.ObjectsSample.Run(ctx, a.Catalog, a.Objects, inventory.SampleOptions{
		Size: ObjectsSampleSize, Timeout: ObjectsSampleTimeout, Now: a.opts.Now,
	})
	if ctx.Err() != nil {
		return
	}
	if res.Error != "" {
		a.Log.Warn("objects check: could not check the published objects", "err", res.Error,
			"checked", res.Checked, "sampled", res.Sampled)
	}
	if res.Missing == 0 {
		a.Log.Info("objects check: the sampled published objects are all in the object store",
			"checked", res.Checked, "published_objects", res.Objects)
		return
	}
	for _, p := range res.Problems {
		a.Log.Error("objects check: a published artifact's object is not as the catalog says; its downloads will fail",
			"kind", p.Kind, "product", p.Object.Product, "version", p.Object.Version, "filename", p.Object.Filename,
			"key", p.Object.Key, "detail", p.Detail)
	}
	a.Log.Error("objects check: published objects are MISSING from the object store (did objects.backend change without `portal objects copy`?); run `portal objects verify` for the full list",
		"missing", res.Missing, "checked", res.Checked, "published_objects", res.Objects)
}

// backupTo writes an audited backup of the store to w; the admin socket
// serves it to `portal backup` while this App holds the store.
func (a *App) backupTo(ctx context.Context, w io.Writer) error {
	now := time.Now
	if a.opts.Now != nil {
		now = a.opts.Now
	}
	_, err := backup.WriteAudited(ctx, a.DB, w, a.Config.Store.Backend, now())
	return err
}
