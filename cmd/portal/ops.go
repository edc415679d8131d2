package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/portaldist/portal/app"
	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/configs"
	"github.com/portaldist/portal/internal/adminsock"
	"github.com/portaldist/portal/publishing/inventory"
	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/store/backup"
)

const backupLong = `Write a consistent snapshot of the whole store (catalog, licenses, tokens,
share links, the download ledger, the audit log, webhooks, the sealed signing
keys) to FILE, in portal's checksummed backup format.

It works while serve runs: on the bolt store, which the server holds, it asks
the running server through its admin socket (admin.socket); on etcd it reads
the cluster at one revision. The file is written beside FILE, read back and
checked, then renamed to FILE, so FILE is only ever a complete backup ("-"
writes to stdout instead). Taking a backup is audited (store.backup).

Keep the data directory's secrets/ (or objects.local.secret) and
signing.master_key with it: they are not in the store.`

const restoreLong = `Load a backup written by 'portal backup' (or GET /v1/admin/backup) into the
configured store. Stop every server on that store first.

The whole file is checked (format, limits, SHA-256) before anything is written:
a truncated or altered backup is refused and the store is left as it was.
A store that holds any key is refused, unless --force: then every key it holds
is deleted first, so it ends holding exactly the backup's keys. Counters are
raised to the backup's, never lowered. A restore that fails midway leaves part
of the backup in the store; run it again with --force to start over.`

const storeCopyLong = `Copy every key of the configured store (with its counters) into the store that
CONFIG describes, from one snapshot, then compare the two key by key.

CONFIG is a config file read alone (no PORTAL_* environment, no flags), for
example one that says store.backend: etcd. Only keys missing from the target or
holding another value are written, so the command is safe to rerun. Keys that
only the target holds are left alone and reported (the comparison then fails),
unless --prune deletes them. Stop the servers on the source first: writes made
during the copy are not in it.`

const objectsCopyLong = `Copy every object the catalog names (every uploaded artifact, in releases of
any status) from the configured object store to the one CONFIG describes (for
example local disk to S3), so objects.backend can be switched without losing a
build. CONFIG is a config file read alone (no PORTAL_* environment, no flags).

Each object is read once, hashed on the way, and written so that the target
refuses any content but the catalog's size and SHA-256; the target is then
asked what it holds. Objects already in the target with the right size and
hash are skipped, so an interrupted copy resumes. Objects the catalog names but
the source lacks are listed, and the command then exits 1.`

const objectsVerifyLong = `Check that every object the catalog names (every uploaded artifact, in
releases of any status) is in the configured object store with the catalog's
size and SHA-256. Without --read the store's recorded hash is trusted where it
keeps one (the local store's, S3's checksum) and objects are read and hashed
only where it does not; with --read every object is read and hashed. Exits 1
when any object is missing or wrong.`

// opsContext is the actor of the store-opening operations commands: the
// local operator.
func opsContext(ctx context.Context) context.Context {
	return audit.WithActor(ctx, audit.Actor{Kind: audit.KindCLI})
}

func (c cli) backupCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backup FILE",
		Short: "write a consistent, checksummed backup of the whole store (works while serve runs)",
		Long:  backupLong,
		Args:  cobra.ExactArgs(1),
	}
	load := configFlags(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		cfg, err := load()
		if err != nil {
			return err
		}
		return c.backup(opsContext(cmd.Context()), cfg, args[0])
	}
	return cmd
}

// backup writes the backup to file ("-": stdout) from the store, or from
// the running server that holds it.
func (c cli) backup(ctx context.Context, cfg *configs.Config, file string) error {
	write := func(w io.Writer) error {
		a, err := app.OpenStore(ctx, cfg, app.Options{})
		if errors.Is(err, store.ErrLocked) {
			path := cfg.AdminSocketPath()
			if path == "" {
				return fmt.Errorf("%w; and admin.socket is disabled, so the running server cannot be asked instead", err)
			}
			if serr := adminsock.Backup(ctx, path, w); serr != nil {
				return fmt.Errorf("%w; and the running server could not be asked instead: %v", err, serr)
			}
			return nil
		}
		if err != nil {
			return err
		}
		defer a.Close(ctx)
		_, err = backup.WriteAudited(ctx, a.DB, w, cfg.Store.Backend, time.Now())
		return err
	}
	if file == "-" {
		return write(c.stdout)
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".*.tmp")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	if err := write(tmp); err != nil {
		return fmt.Errorf("backup: %w (%s is unchanged)", err, file)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	info, err := backup.Verify(tmp)
	if err != nil {
		return fmt.Errorf("backup: the file written does not check out: %w (%s is unchanged)", err, file)
	}
	size, _ := tmp.Seek(0, io.SeekCurrent)
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	fmt.Fprintf(c.stderr, "backup %s: %d keys and %d counters of the %s store as of %s, %d bytes, sha256 %s\n",
		file, info.Keys, len(info.Sequences), info.Driver, info.Created.Format(time.RFC3339), size, info.SHA256)
	return nil
}

func (c cli) restoreCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "restore FILE [--force]",
		Short: "load a backup into the configured store (empty, or wiped with --force)",
		Long:  restoreLong,
		Args:  cobra.ExactArgs(1),
	}
	load := configFlags(cmd.Flags())
	force := cmd.Flags().Bool("force", false, "delete every key the store holds before loading the backup")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		cfg, err := load()
		if err != nil {
			return err
		}
		ctx := opsContext(cmd.Context())
		f, err := os.Open(args[0])
		if err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		defer f.Close()
		a, err := app.OpenStore(ctx, cfg, app.Options{})
		if errors.Is(err, store.ErrLocked) {
			return fmt.Errorf("restore: %w: a restore replaces the store under the server; stop it first", err)
		}
		if err != nil {
			return err
		}
		defer a.Close(ctx)
		last := time.Now()
		info, err := backup.Restore(ctx, a.DB, f, backup.RestoreOptions{Wipe: *force, Progress: func(done, total uint64) {
			if time.Since(last) > 2*time.Second {
				last = time.Now()
				fmt.Fprintf(c.stderr, "restore: %d of %d keys\n", done, total)
			}
		}})
		if err != nil {
			if errors.Is(err, backup.ErrNotEmpty) {
				return &usageError{fmt.Errorf("restore: %w", err)}
			}
			return fmt.Errorf("restore: %w", err)
		}
		fmt.Fprintf(c.stderr, "restored %d keys and %d counters from %s (a backup of a %s store taken %s) into the %s store\n",
			info.Keys, len(info.Sequences), args[0], info.Driver, info.Created.Format(time.RFC3339), cfg.Store.Backend)
		return nil
	}
	return cmd
}

// loadCopy reads the configs of a copy: the source's with load (flags,
// environment, config file), then the target's with loadTarget.
func loadCopy(load func() (*configs.Config, error), to string) (src, dst *configs.Config, err error) {
	if src, err = load(); err != nil {
		return nil, nil, err
	}
	if dst, err = loadTarget(to); err != nil {
		return nil, nil, err
	}
	return src, dst, nil
}

// loadTarget reads the config file of a copy's target alone: neither the
// environment nor flags, which describe the source.
func loadTarget(file string) (*configs.Config, error) {
	if file == "" {
		return nil, usagef("--to CONFIG is required: the config file of the target")
	}
	cfg, err := configs.Load(configs.LoadOptions{File: file})
	if err != nil {
		return nil, fmt.Errorf("--to %s: %w", file, err)
	}
	return cfg, nil
}

func (c cli) storeCommand() *cobra.Command {
	cp := &cobra.Command{
		Use:   "copy --to CONFIG [--prune]",
		Short: "copy the whole store into the store another config file describes (bolt <-> etcd), verified",
		Long:  storeCopyLong,
		Args:  cobra.NoArgs,
	}
	load := configFlags(cp.Flags())
	to := cp.Flags().String("to", "", "config file of the target store (read alone)")
	prune := cp.Flags().Bool("prune", false, "delete the keys only the target holds")
	cp.MarkFlagRequired("to")
	cp.RunE = func(cmd *cobra.Command, args []string) error {
		src, dst, err := loadCopy(load, *to)
		if err != nil {
			return err
		}
		if src.Store.Backend == "bolt" && dst.Store.Backend == "bolt" && sameFile(src.DataPath("portal.db"), dst.DataPath("portal.db")) {
			return usagef("store copy: the source and the target are the same store (%s)", src.DataPath("portal.db"))
		}
		ctx := opsContext(cmd.Context())
		from, err := app.OpenStore(ctx, src, app.Options{})
		if err != nil {
			return fmt.Errorf("store copy: the source: %w", err)
		}
		defer from.Close(ctx)
		into, err := app.OpenStore(ctx, dst, app.Options{})
		if err != nil {
			return fmt.Errorf("store copy: the target (%s): %w", *to, err)
		}
		defer into.Close(ctx)
		res, err := backup.Copy(ctx, from.DB, into.DB, backup.CopyOptions{Prune: *prune})
		if err != nil {
			return fmt.Errorf("store copy: %w (rerun to go on)", err)
		}
		fmt.Fprintf(c.stderr, "store copy: %d keys in the %s source, %d written to the %s target, %d counters raised",
			res.Keys, src.Store.Backend, res.Written, dst.Store.Backend, res.Sequences)
		if res.Extra > 0 {
			fmt.Fprintf(c.stderr, ", %d keys only in the target (%d deleted)", res.Extra, res.Pruned)
		}
		fmt.Fprintln(c.stderr)
		d, err := backup.Compare(ctx, from.DB, into.DB)
		if err != nil {
			return fmt.Errorf("store copy: verify: %w", err)
		}
		if !d.Equal() {
			hint := ""
			if d.NExtra > 0 && !*prune {
				hint = " (keys only in the target are left alone without --prune)"
			}
			return fmt.Errorf("store copy: the target differs from the source: %s%s", d, hint)
		}
		fmt.Fprintf(c.stderr, "store copy: verified: %s\n", d)
		return nil
	}
	return group("store", "copy the whole store to another store (bolt <-> etcd)", cp)
}

// sameFile reports whether a and b name the same file, or the same path
// when neither exists yet.
func sameFile(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	if err1 == nil && err2 == nil {
		return os.SameFile(fa, fb)
	}
	aa, _ := filepath.Abs(a)
	bb, _ := filepath.Abs(b)
	return aa == bb
}

// catalogObjects reads the objects the catalog names, then closes the
// store, so the transfer that follows does not hold it.
func catalogObjects(ctx context.Context, cfg *configs.Config) ([]inventory.Object, error) {
	a, err := app.OpenStore(ctx, cfg, app.Options{})
	if err != nil {
		return nil, err
	}
	defer a.Close(ctx)
	return inventory.Catalog(ctx, a.Catalog, false)
}

// sameObjects reports whether two configs name the same object store.
func sameObjects(a, b *configs.Config) bool {
	if a.Objects.Backend != b.Objects.Backend {
		return false
	}
	if a.Objects.Backend == "s3" {
		return a.Objects.S3.Endpoint == b.Objects.S3.Endpoint && a.Objects.S3.Bucket == b.Objects.S3.Bucket
	}
	return sameFile(a.DataPath("objects"), b.DataPath("objects"))
}

func (c cli) objectsCommand() *cobra.Command {
	cp := &cobra.Command{
		Use:   "copy --to CONFIG",
		Short: "copy every object the catalog names to another object store (local <-> S3), verified, resumable",
		Long:  objectsCopyLong,
		Args:  cobra.NoArgs,
	}
	load := configFlags(cp.Flags())
	to := cp.Flags().String("to", "", "config file of the target object store (read alone)")
	conc := cp.Flags().Int("concurrency", 4, "objects copied at once")
	cp.MarkFlagRequired("to")
	cp.RunE = func(cmd *cobra.Command, args []string) error {
		src, dst, err := loadCopy(load, *to)
		if err != nil {
			return err
		}
		if sameObjects(src, dst) {
			return usagef("objects copy: the source and the target are the same object store")
		}
		if *conc < 1 || *conc > 64 {
			return usagef("objects copy: --concurrency must be 1 to 64")
		}
		return c.objectsCopy(opsContext(cmd.Context()), src, dst, *conc)
	}

	verify := &cobra.Command{
		Use:   "verify [--read]",
		Short: "check that every object the catalog names is in the object store with its size and SHA-256",
		Long:  objectsVerifyLong,
		Args:  cobra.NoArgs,
	}
	vload := configFlags(verify.Flags())
	read := verify.Flags().Bool("read", false, "read and hash every object, even where the store records its hash")
	verify.RunE = func(cmd *cobra.Command, args []string) error {
		cfg, err := vload()
		if err != nil {
			return err
		}
		return c.objectsVerify(opsContext(cmd.Context()), cfg, *read)
	}
	return group("objects", "copy and verify the objects the catalog names", cp, verify)
}

func (c cli) objectsCopy(ctx context.Context, src, dst *configs.Config, conc int) error {
	objs, err := catalogObjects(ctx, src)
	if err != nil {
		return fmt.Errorf("objects copy: %w", err)
	}
	from, closeFrom, err := app.OpenObjects(ctx, src)
	if err != nil {
		return fmt.Errorf("objects copy: the source: %w", err)
	}
	defer closeFrom()
	into, closeInto, err := app.OpenObjects(ctx, dst)
	if err != nil {
		return fmt.Errorf("objects copy: the target (%s): %w", dst.Objects.Backend, err)
	}
	defer closeInto()
	total := totalSize(objs)
	fmt.Fprintf(c.stderr, "objects copy: %d objects (%d bytes) from %s to %s\n", len(objs), total, src.Objects.Backend, dst.Objects.Backend)
	add, done := c.byteProgress("copying", "objects copy", total)
	rep, err := inventory.Copy(ctx, from, into, objs, inventory.CopyOptions{Concurrency: conc, Progress: add})
	done()
	if err != nil {
		return fmt.Errorf("objects copy: %w (rerun to resume)", err)
	}
	for _, o := range rep.Missing {
		fmt.Fprintf(c.stdout, "MISSING in the source: %s\n", o)
	}
	for _, p := range rep.Failed {
		fmt.Fprintf(c.stdout, "FAILED: %s\n", p)
	}
	fmt.Fprintf(c.stderr, "objects copy: %d copied (%d bytes), %d already there, %d missing in the source, %d failed\n",
		rep.Copied, rep.Bytes, rep.Skipped, len(rep.Missing), len(rep.Failed))
	if !rep.OK() {
		return fmt.Errorf("objects copy: %d objects the catalog names are not in the target (listed above); rerun after fixing the source", len(rep.Missing)+len(rep.Failed))
	}
	return nil
}

func (c cli) objectsVerify(ctx context.Context, cfg *configs.Config, read bool) error {
	objs, err := catalogObjects(ctx, cfg)
	if err != nil {
		return fmt.Errorf("objects verify: %w", err)
	}
	st, closeSt, err := app.OpenObjects(ctx, cfg)
	if err != nil {
		return fmt.Errorf("objects verify: %w", err)
	}
	defer closeSt()
	total := totalSize(objs)
	add, done := func(int64) {}, func() {}
	if read {
		add, done = c.byteProgress("verifying", "objects verify", total)
	}
	rep, err := inventory.Check(ctx, st, objs, inventory.CheckOptions{Read: read, Progress: func(_ inventory.Object, n int64) { add(n) }})
	done()
	if err != nil {
		return fmt.Errorf("objects verify: %w", err)
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(c.stdout, "%s\n", p)
	}
	if len(rep.Problems) > 0 {
		return fmt.Errorf("objects verify: %d of %d objects are missing or wrong in the %s store (listed above)", len(rep.Problems), rep.Checked, cfg.Objects.Backend)
	}
	fmt.Fprintf(c.stderr, "objects verify: all %d objects are in the %s store with their size and SHA-256\n", rep.Checked, cfg.Objects.Backend)
	return nil
}

// totalSize is the sum of objs' sizes.
func totalSize(objs []inventory.Object) int64 {
	var total int64
	for _, o := range objs {
		total += o.Size
	}
	return total
}

// byteProgress returns the progress of total bytes: a bar labelled bar on
// a terminal (c.progress), else lines starting with lines (progressLines).
// done ends the display.
func (c cli) byteProgress(bar, lines string, total int64) (add func(int64), done func()) {
	add, done = c.progress(bar, total)
	if !c.bars {
		add = c.progressLines(lines, total)
	}
	return add, done
}

// progressLines returns a progress function that, without a terminal for
// bars, prints a line at most every 10 seconds.
func (c cli) progressLines(what string, total int64) func(int64) {
	var done int64
	last := time.Now()
	return func(n int64) {
		done += n
		if time.Since(last) >= 10*time.Second {
			last = time.Now()
			fmt.Fprintf(c.stderr, "%s: %d of %d bytes\n", what, done, total)
		}
	}
}
