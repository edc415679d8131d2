package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/portaldist/portal/client"
	"github.com/portaldist/portal/pkgmeta"
	"github.com/portaldist/portal/releases"
)

// pubFile is one file to publish.
type pubFile struct {
	path, name     string
	platform, arch string
	size           int64
	sha256         string
	// sparkleSig is a publisher-made Sparkle EdDSA signature (base64), for
	// files too large for the portal to sign itself.
	sparkleSig string
}

// publishOpts are the flags of portal publish.
type publishOpts struct {
	product, version, channel, notesFile string
	platform, arch                       string
	publish                              bool
	url, token                           string
	sparkleSigs, metadata                []string
	rollout                              int
}

// publish runs portal publish with args (the files and flags after the
// command name).
func (c cli) publish(ctx context.Context, args []string) error {
	return c.run(ctx, append([]string{"publish"}, args...))
}

func (c cli) publishCommand() *cobra.Command {
	var o publishOpts
	cmd := &cobra.Command{
		Use:   "publish FILE... --product P --version V",
		Short: "hash, upload, verify and (with --publish) publish the files of a release",
		Long: `publish hashes each file, creates the release as a draft when it does not
exist, uploads each file straight to object storage through the URLs the
portal signs, has the portal verify it, and with --publish publishes the
release. Running it again resumes: files already uploaded are skipped.
The platform and arch of each file are read from its name unless
--platform and --arch are given.`,
		RunE: func(cmd *cobra.Command, paths []string) error {
			if cmd.Flags().Changed("rollout") && (o.rollout < 0 || o.rollout > 100) {
				return usagef("publish: --rollout %d: use a percentage from 0 to 100", o.rollout)
			}
			return c.runPublish(cmd.Context(), o, paths, cmd.Flags().Changed("rollout"))
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.product, "product", "", "product slug (required)")
	f.StringVar(&o.version, "version", "", "release version (required)")
	f.StringVar(&o.channel, "channel", "", "channel of a new release (default stable)")
	f.StringVar(&o.notesFile, "notes", "", "file holding the release notes of a new release")
	f.StringVar(&o.platform, "platform", "", "platform of every file (default: from each file name)")
	f.StringVar(&o.arch, "arch", "", "arch of every file (default: from each file name)")
	f.BoolVar(&o.publish, "publish", false, "publish the release once every file is uploaded")
	f.IntVar(&o.rollout, "rollout", 0, "staged rollout of a new release: the percentage of customers update checks offer it to (0 or 100: everyone)")
	f.StringArrayVar(&o.metadata, "metadata", nil, "KEY=VALUE metadata of a new release (repeatable)")
	f.StringVar(&o.url, "url", "", "portal URL (default $PORTAL_URL, else "+defaultPortalURL+")")
	f.StringVar(&o.token, "token", "", "API token (default $PORTAL_TOKEN)")
	f.StringArrayVar(&o.sparkleSigs, "sparkle-signature", nil, "NAME=BASE64: the Sparkle EdDSA signature of file NAME (`sign_update` output), for files above the portal's signing.sparkle_max_size (repeatable)")
	return cmd
}

func (c cli) runPublish(ctx context.Context, o publishOpts, paths []string, rolloutSet bool) error {
	product, version, channel, notesFile := &o.product, &o.version, &o.channel, &o.notesFile
	platformFlag, archFlag, doPublish, baseURL, token := &o.platform, &o.arch, &o.publish, &o.url, &o.token
	sparkleSigs := o.sparkleSigs
	var err error
	switch {
	case len(paths) == 0:
		return usagef("publish: name at least one file to upload")
	case *product == "":
		return usagef("publish: --product is required")
	case *version == "":
		return usagef("publish: --version is required")
	}
	metadata, err := kvFlags("metadata", o.metadata)
	if err != nil {
		return err
	}
	if *token == "" {
		*token = c.getenv("PORTAL_TOKEN")
	}
	if *token == "" {
		return usagef("publish: no API token: set PORTAL_TOKEN or pass --token")
	}
	if *platformFlag != "" {
		if *platformFlag, err = releases.ParsePlatform(*platformFlag); err != nil {
			return &usageError{fmt.Errorf("publish: --platform: %w", err)}
		}
	}
	if *archFlag != "" {
		if *archFlag, err = releases.ParseArch(*archFlag); err != nil {
			return &usageError{fmt.Errorf("publish: --arch: %w", err)}
		}
	}
	var notes string
	if *notesFile != "" {
		b, err := os.ReadFile(*notesFile)
		if err != nil {
			return fmt.Errorf("publish: --notes: %w", err)
		}
		notes = string(b)
	}

	sigs := map[string]string{}
	for _, kv := range sparkleSigs {
		name, sig, ok := strings.Cut(kv, "=")
		if !ok || name == "" || sig == "" {
			return usagef("publish: --sparkle-signature %q: use NAME=BASE64", kv)
		}
		sigs[name] = sig
	}

	// Every name and platform is checked before anything is hashed or sent.
	files := make([]*pubFile, 0, len(paths))
	seen := map[string]string{}
	for _, p := range paths {
		f := &pubFile{path: p, name: filepath.Base(p), platform: *platformFlag, arch: *archFlag}
		f.sparkleSig = sigs[f.name]
		delete(sigs, f.name)
		if prev, ok := seen[f.name]; ok {
			return usagef("publish: %s and %s have the same file name; a release holds one file of each name", prev, p)
		}
		seen[f.name] = p
		if pkgmeta.For(f.name) != nil && (f.platform == "" || f.arch == "") {
			// A .deb or .rpm says its architecture itself; the server
			// checks the declaration against it at complete.
			platform, arch, err := packagePlatform(p)
			if err != nil {
				return &usageError{fmt.Errorf("publish: %s: %w", p, err)}
			}
			f.platform, f.arch = cmp.Or(f.platform, platform), cmp.Or(f.arch, arch)
		}
		if f.platform == "" || f.arch == "" {
			platform, arch, err := detectPlatform(f.name)
			if err != nil {
				return &usageError{fmt.Errorf("publish: %w", err)}
			}
			f.platform, f.arch = cmp.Or(f.platform, platform), cmp.Or(f.arch, arch)
		}
		files = append(files, f)
	}
	for name := range sigs {
		return usagef("publish: --sparkle-signature names %s, which is not among the files", name)
	}
	for _, f := range files {
		if err := c.hashFile(ctx, f); err != nil {
			var ue *usageError
			if errors.As(err, &ue) {
				return usagef("publish: %w", err)
			}
			return fmt.Errorf("publish: %w", err)
		}
		fmt.Fprintf(c.stdout, "%s: %s/%s, %d bytes, sha256 %s\n", f.name, f.platform, f.arch, f.size, f.sha256)
	}

	u := cmp.Or(*baseURL, c.getenv("PORTAL_URL"), defaultPortalURL)
	api := client.New(u, client.Bearer(*token))
	api.HTTP = c.http
	explain := func(err error) error { return explainPublish(err, u, *product, *version) }

	rel, err := api.Release(ctx, *product, *version)
	if client.IsStatus(err, http.StatusNotFound) {
		rel, err = api.CreateRelease(ctx, *product, client.NewRelease{Version: *version, Channel: *channel, Notes: notes,
			Metadata: metadata, Rollout: rollout(rolloutSet, o.rollout)})
		if err == nil {
			fmt.Fprintf(c.stdout, "created release %s %s (%s, draft)\n", *product, rel.Version, rel.Channel)
		}
	} else if err == nil {
		if *channel != "" && rel.Channel != *channel {
			return fmt.Errorf("publish: %s %s exists on channel %s, not %s: drop --channel or bump the version", *product, rel.Version, rel.Channel, *channel)
		}
		if *notesFile != "" || metadata != nil || rolloutSet {
			fmt.Fprintf(c.stderr, "note: %s %s exists already; --notes, --metadata and --rollout apply only to a new release and were ignored (change them with: portal release edit %s %s)\n",
				*product, rel.Version, *product, rel.Version)
		}
	}
	if err != nil {
		return explain(err)
	}

	if rel.Status != "draft" {
		for _, f := range files {
			if a := rel.Artifact(f.name); a == nil || a.Status != "uploaded" || a.SHA256 != f.sha256 || a.Size != f.size {
				return fmt.Errorf("publish: %s %s is already %s and its files can no longer change: bump the version", *product, rel.Version, rel.Status)
			}
		}
		fmt.Fprintf(c.stdout, "nothing to do: %s %s is already %s with these files\n", *product, rel.Version, rel.Status)
		return nil
	}

	// A file uploaded before with other bytes is refused before anything
	// is sent, so a run either does everything it can or nothing.
	var conflicts []string
	for _, f := range files {
		if a := rel.Artifact(f.name); a != nil && a.Status == "uploaded" && (a.SHA256 != f.sha256 || a.Size != f.size) {
			conflicts = append(conflicts, fmt.Sprintf("%s was uploaded with other bytes (sha256 %s, here %s)", f.name, a.SHA256, f.sha256))
		}
	}
	if len(conflicts) > 0 {
		return fmt.Errorf("publish: %s: delete it from the draft release (DELETE %s/v1/products/%s/releases/%s/artifacts/NAME) or bump the version",
			strings.Join(conflicts, "; "), u, *product, rel.Version)
	}

	for _, f := range files {
		if a := rel.Artifact(f.name); a != nil && a.Status == "uploaded" {
			fmt.Fprintf(c.stdout, "%s: already uploaded\n", f.name)
			continue
		}
		if err := c.uploadFile(ctx, api, *product, rel.Version, f); err != nil {
			return explain(err)
		}
	}

	if !*doPublish {
		fmt.Fprintf(c.stdout, "%s %s is a draft with every file uploaded: publish it with --publish\n", *product, rel.Version)
		return nil
	}
	if rel, err = api.Publish(ctx, *product, rel.Version); err != nil {
		return explain(err)
	}
	fmt.Fprintf(c.stdout, "published %s %s on %s\n", *product, rel.Version, rel.Channel)
	return nil
}

// rollout is the rollout to send: nil when the flag was not given.
func rollout(set bool, n int) *int {
	if !set {
		return nil
	}
	return &n
}

// hashFile fills in f's size and SHA-256, reading the file once.
func (c cli) hashFile(ctx context.Context, f *pubFile) error {
	fd, err := os.Open(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return usagef("no such file %s", f.path)
	}
	if err != nil {
		return err
	}
	defer fd.Close()
	st, err := fd.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", f.path)
	}
	if st.Size() == 0 {
		return fmt.Errorf("%s is empty", f.path)
	}
	h := sha256.New()
	progress, done := c.progress("hash "+f.name, st.Size())
	defer done()
	n, err := io.Copy(h, &ctxReader{ctx: ctx, r: io.TeeReader(fd, progressWriter(progress))})
	if err != nil {
		return fmt.Errorf("read %s: %w", f.path, err)
	}
	f.size, f.sha256 = n, hex.EncodeToString(h.Sum(nil))
	return nil
}

// uploadFile declares, uploads and completes one file. Declaring again
// replaces a waiting or failed artifact of that name, which is how an
// interrupted run resumes.
func (c cli) uploadFile(ctx context.Context, api *client.Client, product, version string, f *pubFile) error {
	_, up, err := api.DeclareArtifact(ctx, product, version, client.NewArtifact{
		Filename: f.name, Platform: f.platform, Arch: f.arch, Size: f.size, SHA256: f.sha256,
		SparkleSignature: f.sparkleSig,
	})
	if err != nil {
		return fmt.Errorf("declare %s: %w", f.name, err)
	}
	fd, err := os.Open(f.path)
	if err != nil {
		return err
	}
	defer fd.Close()
	how := "one request"
	if up.Multipart {
		how = fmt.Sprintf("%d parts", len(up.Parts))
	}
	if !c.bars {
		fmt.Fprintf(c.stdout, "%s: uploading %d bytes in %s\n", f.name, f.size, how)
	}
	progress, done := c.progress("upload "+f.name, f.size)
	err = api.UploadFile(ctx, up, fd, f.size, client.UploadOptions{Progress: progress, RetryDelay: c.retryDelay})
	done()
	if err != nil {
		return fmt.Errorf("upload %s: %w (run the same command again to retry; did the file change since it was hashed?)", f.name, err)
	}
	a, err := api.CompleteArtifact(ctx, product, version, f.name)
	var ce *client.Error
	if errors.As(err, &ce) && ce.Status == http.StatusUnprocessableEntity && (ce.Expected == nil || ce.Actual == nil) {
		// The bytes were right but the file is refused for what it is (a
		// .deb or .rpm of another version or arch, or no valid package):
		// the portal's message says why, with both values.
		return fmt.Errorf("%s: the portal refused the file: %s", f.name, ce.Message)
	}
	if errors.As(err, &ce) && ce.Status == http.StatusUnprocessableEntity {
		msg := fmt.Sprintf("%s: the portal refused the upload: the stored file does not match", f.name)
		if ce.Expected != nil && ce.Actual != nil {
			msg += fmt.Sprintf("\n  expected: %d bytes, sha256 %s\n  actual:   %d bytes, sha256 %s",
				ce.Expected.Size, ce.Expected.SHA256, ce.Actual.Size, cmp.Or(ce.Actual.SHA256, "(unknown)"))
		}
		return errors.New(msg + "\nthe upload was deleted; was the file changed while it was uploading? Run the command again.")
	}
	if err != nil {
		return fmt.Errorf("complete %s: %w", f.name, err)
	}
	fmt.Fprintf(c.stdout, "%s: %s\n", f.name, a.Status)
	return nil
}

// explainPublish adds what to do next to an error from the portal.
func explainPublish(err error, baseURL, product, version string) error {
	var ce *client.Error
	if !errors.As(err, &ce) {
		if errors.Is(err, context.Canceled) {
			return fmt.Errorf("publish: interrupted: run the same command again to resume")
		}
		var ue interface{ Timeout() bool }
		if errors.As(err, &ue) || strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "no such host") {
			return fmt.Errorf("publish: %w (is the portal at %s? set PORTAL_URL or --url)", err, baseURL)
		}
		return fmt.Errorf("publish: %w", err)
	}
	if !ce.FromPortal() {
		return &refusedError{fmt.Sprintf("publish: %s answered HTTP %d (%s), which is not the portal's API: check --url or PORTAL_URL (now %s)",
			ce.URL, ce.Status, ce.Message, baseURL), ce}
	}
	switch ce.Status {
	case http.StatusUnauthorized:
		return fmt.Errorf("publish: %w: check PORTAL_TOKEN (or --token)", err)
	case http.StatusForbidden:
		return fmt.Errorf("publish: %w: this token may not publish %s; use an admin token or a publisher token for %s", err, product, product)
	case http.StatusTooManyRequests:
		return fmt.Errorf("publish: %w: wait a minute and run the command again", err)
	case http.StatusConflict:
		return fmt.Errorf("publish: %w (look at the release: GET %s/v1/products/%s/releases/%s)", err, baseURL, product, version)
	}
	return fmt.Errorf("publish: %w", err)
}

// progress returns a function to report bytes done and one to call when
// the transfer ends. With bars off both do nothing: the caller prints plain
// lines instead.
func (c cli) progress(what string, size int64) (func(int64), func()) {
	if !c.bars || size <= 0 {
		return func(int64) {}, func() {}
	}
	bar := progressbar.NewOptions64(size,
		progressbar.OptionSetWriter(c.stderr),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowTotalBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(20),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
	return func(n int64) { bar.Add64(n) }, func() { bar.Finish() }
}

type progressWriter func(int64)

func (p progressWriter) Write(b []byte) (int, error) {
	p(int64(len(b)))
	return len(b), nil
}

// ctxReader stops a long read when ctx is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r *ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// Words in file names that name a platform or an architecture. Names are
// split into words at anything but letters and digits, after the
// multi-word spellings below are joined.
var (
	nameJoins = strings.NewReplacer("x86_64", "amd64", "x86-64", "amd64")

	namePlatforms = map[string]string{
		"linux": "linux", "darwin": "darwin", "macos": "darwin", "mac": "darwin", "osx": "darwin",
		"windows": "windows", "win": "windows", "win32": "windows", "win64": "windows", "freebsd": "freebsd",
	}
	nameArches = map[string]string{
		"amd64": "amd64", "x64": "amd64",
		"arm64": "arm64", "aarch64": "arm64",
		"386": "386", "i386": "386", "i686": "386", "x86": "386", "ia32": "386",
		"arm": "arm", "armv7": "arm", "armv7l": "arm", "armhf": "arm",
		"universal": "universal", "noarch": "any",
	}
	// Package formats that belong to one platform, and the arch their
	// files have when the name says none.
	nameExtensions = []struct{ ext, platform, arch string }{
		{".dmg", "darwin", "universal"},
		{".pkg", "darwin", "universal"},
		{".exe", "windows", "amd64"},
		{".msi", "windows", "amd64"},
		{".msix", "windows", "amd64"},
		{".appimage", "linux", "amd64"},
		{".deb", "linux", "amd64"},
		{".rpm", "linux", "amd64"},
	}
	// defaultArch is the arch of a file whose name names only its platform:
	// a macOS build without an arch is universal, a Windows one x64. Linux
	// archives are built for too many arches to guess.
	defaultArch = map[string]string{"darwin": "universal", "windows": "amd64"}
)

// packagePlatform reads a system package's platform and arch from the
// package (package pkgmeta, the reader the server runs at complete).
func packagePlatform(path string) (platform, arch string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", "", err
	}
	p, err := pkgmeta.Extract(path, f, st.Size())
	if err != nil {
		return "", "", err
	}
	return pkgmeta.Platform(p)
}

// detectPlatform tells a file's platform and arch from its name, as build
// tools commonly spell them (app_1.2.0_linux_amd64.tar.gz,
// App-1.2.0-arm64.dmg, app-setup-x64.exe, app_1.2.0_aarch64.AppImage).
// It returns an error saying to pass --platform and --arch when the name
// does not tell, or names two platforms or two arches.
func detectPlatform(name string) (platform, arch string, err error) {
	lower := strings.ToLower(name)
	var defArch string
	for _, e := range nameExtensions {
		if strings.HasSuffix(lower, e.ext) {
			platform, defArch = e.platform, e.arch
			break
		}
	}
	words := strings.FieldsFunc(nameJoins.Replace(lower), func(r rune) bool {
		return !('a' <= r && r <= 'z' || '0' <= r && r <= '9')
	})
	for _, w := range words {
		if p, ok := namePlatforms[w]; ok {
			if platform != "" && platform != p {
				return "", "", fmt.Errorf("%s: the name says both %s and %s: pass --platform and --arch", name, platform, p)
			}
			platform = p
		}
		if a, ok := nameArches[w]; ok {
			if arch != "" && arch != a {
				return "", "", fmt.Errorf("%s: the name says both %s and %s: pass --platform and --arch", name, arch, a)
			}
			arch = a
		}
	}
	if arch == "" {
		arch = defArch
	}
	if arch == "" {
		arch = defaultArch[platform]
	}
	switch {
	case platform == "" && arch == "":
		return "", "", fmt.Errorf("%s: cannot tell the platform and arch from the name: pass --platform and --arch", name)
	case platform == "":
		return "", "", fmt.Errorf("%s: cannot tell the platform from the name (arch %s): pass --platform and --arch", name, arch)
	case arch == "":
		return "", "", fmt.Errorf("%s: cannot tell the arch from the name (platform %s): pass --platform and --arch", name, platform)
	}
	return platform, arch, nil
}
