package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/portaldist/portal/client"
	"github.com/portaldist/portal/objects"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/signing"
)

// downloadOpts are the flags of portal download.
type downloadOpts struct {
	product, version, channel, platform, arch string
	output, license, token, url               string
}

// download runs portal download with args (the flags after the command
// name).
func (c cli) download(ctx context.Context, args []string) error {
	return c.run(ctx, append([]string{"download"}, args...))
}

func (c cli) downloadCommand() *cobra.Command {
	var o downloadOpts
	cmd := &cobra.Command{
		Use:   "download --product P [--version V|latest] --platform OS --arch ARCH [-o FILE|DIR]",
		Short: "download a build and verify its size, SHA-256 and signature",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("unexpected argument %q", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.runDownload(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.product, "product", "", "product slug (required)")
	f.StringVar(&o.version, "version", "latest", "release version, or latest")
	f.StringVar(&o.channel, "channel", "", "channel latest is looked up on (default stable)")
	f.StringVar(&o.platform, "platform", "", "platform: linux, darwin, windows, ... (required)")
	f.StringVar(&o.arch, "arch", "", "arch: amd64, arm64, 386, ... (required)")
	f.StringVarP(&o.output, "output", "o", "", "file to write, or a directory to write into (default: the artifact's name in the current directory)")
	f.StringVar(&o.license, "license", "", "license key (default $PORTAL_LICENSE)")
	f.StringVar(&o.token, "token", "", "API token, for admins and publishers (default $PORTAL_TOKEN)")
	f.StringVar(&o.url, "url", "", "portal URL (default $PORTAL_URL, else "+defaultPortalURL+")")
	return cmd
}

func (c cli) runDownload(ctx context.Context, o downloadOpts) error {
	product, version, channel := &o.product, &o.version, &o.channel
	platformFlag, archFlag, output := &o.platform, &o.arch, o.output
	license, token, baseURL := &o.license, &o.token, &o.url
	switch {
	case *product == "":
		return usagef("download: --product is required")
	case *platformFlag == "" || *archFlag == "":
		return usagef("download: --platform and --arch are required")
	}
	platform, err := releases.ParsePlatform(*platformFlag)
	if err != nil {
		return &usageError{fmt.Errorf("download: --platform: %w", err)}
	}
	arch, err := releases.ParseArch(*archFlag)
	if err != nil {
		return &usageError{fmt.Errorf("download: --arch: %w", err)}
	}

	// A license key is how customers authenticate; a token lets an admin
	// or publisher fetch what they published; nothing works for open
	// products.
	// Flags beat the environment: an explicit --token wins over a
	// PORTAL_LICENSE left in the shell, and the other way round.
	var auth string
	switch {
	case *license != "":
		auth = client.License(*license)
	case *token != "":
		auth = client.Bearer(*token)
	case c.getenv("PORTAL_LICENSE") != "":
		auth = client.License(c.getenv("PORTAL_LICENSE"))
	case c.getenv("PORTAL_TOKEN") != "":
		auth = client.Bearer(c.getenv("PORTAL_TOKEN"))
	}
	u := cmp.Or(*baseURL, c.getenv("PORTAL_URL"), defaultPortalURL)
	api := client.New(u, auth)
	api.HTTP = c.http

	g, err := api.Download(ctx, *product, *version, client.DownloadQuery{Platform: platform, Arch: arch, Channel: *channel})
	if err != nil {
		var ce *client.Error
		if errors.As(err, &ce) {
			if !ce.FromPortal() {
				return &refusedError{fmt.Sprintf("download: %s answered HTTP %d (%s), which is not the portal's API: check --url or PORTAL_URL (now %s)",
					ce.URL, ce.Status, ce.Message, u), ce}
			}
			msg := fmt.Sprintf("refused: %s: %s", cmp.Or(ce.Code, fmt.Sprint(ce.Status)), ce.Message)
			if ce.Status == http.StatusUnauthorized {
				msg += " (set PORTAL_LICENSE or pass --license)"
			}
			if ce.Status >= 500 {
				return fmt.Errorf("download: the portal failed: %s", msg[len("refused: "):])
			}
			return &refusedError{msg, ce}
		}
		return fmt.Errorf("download: %w (is the portal at %s? set PORTAL_URL or --url)", err, u)
	}
	// The file name becomes a path on this machine: it must be one plain
	// name, whatever the server says.
	if err := objects.CheckFilename(g.Filename); err != nil || g.Filename != filepath.Base(g.Filename) {
		return fmt.Errorf("download: the portal offered an unusable file name %q", g.Filename)
	}
	if g.Size < 0 || releases.ValidateSHA256(g.SHA256) != nil {
		return fmt.Errorf("download: the portal's answer has no valid size and sha256")
	}

	target := output
	if target == "" {
		target = g.Filename
	} else if st, err := os.Stat(target); err == nil && st.IsDir() {
		target = filepath.Join(target, g.Filename)
	}
	relVersion := cmp.Or(g.Version, *version)
	if !c.bars {
		fmt.Fprintf(c.stdout, "%s: downloading %s %s, %d bytes\n", g.Filename, *product, relVersion, g.Size)
	}
	sum, err := c.fetch(ctx, api, g, target, func(sum signing.Digests) error {
		return c.verifySignature(ctx, api, *product, relVersion, g.Filename, sum)
	})
	if err != nil {
		return fmt.Errorf("download: %w", err)
	}
	fmt.Fprintf(c.stdout, "saved %s (%d bytes, sha256 %s)\n", target, sum.Size, sum.SHA256Hex())
	return nil
}

// fetch downloads g's URL into a temporary file beside target, checks size
// and SHA-256, runs check on the digests, and only then renames the file to
// target, so target is never a partial or unverified file. On any failure
// the temporary file is removed.
func (c cli) fetch(ctx context.Context, api *client.Client, g client.Grant, target string, check func(signing.Digests) error) (signing.Digests, error) {
	tmp, err := os.CreateTemp(filepath.Dir(target), "."+filepath.Base(target)+".*.part")
	if err != nil {
		return signing.Digests{}, err
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()

	res, err := api.Get(ctx, g.URL)
	if err != nil {
		return signing.Digests{}, err
	}
	defer res.Body.Close()
	if res.ContentLength >= 0 && res.ContentLength != g.Size {
		return signing.Digests{}, fmt.Errorf("%s: storage sends %d bytes, the portal says %d: nothing was saved", g.Filename, res.ContentLength, g.Size)
	}
	// SHA-256 for the catalog's hash, BLAKE2b-512 for the minisign
	// signature, in the one pass.
	d := signing.NewDigester(-1)
	progress, finish := c.progress("download "+g.Filename, g.Size)
	// One byte more than promised is enough to know the file is wrong.
	_, err = io.Copy(io.MultiWriter(tmp, d, progressWriter(progress)), io.LimitReader(res.Body, g.Size+1))
	finish()
	if err != nil {
		return signing.Digests{}, fmt.Errorf("%s: %w", g.Filename, err)
	}
	sum := d.Sum()
	if sum.Size != g.Size || sum.SHA256Hex() != g.SHA256 {
		return sum, fmt.Errorf("%s does not match the portal's record: got %d bytes, sha256 %s; expected %d bytes, sha256 %s: nothing was saved",
			g.Filename, sum.Size, sum.SHA256Hex(), g.Size, g.SHA256)
	}
	if err := check(sum); err != nil {
		return sum, err
	}
	if err := tmp.Sync(); err != nil {
		return sum, err
	}
	if err := tmp.Close(); err != nil {
		return sum, err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return sum, err
	}
	if err := os.Rename(tmp.Name(), target); err != nil {
		return sum, err
	}
	done = true
	return sum, nil
}

// verifySignature checks the artifact's minisign signature against the
// product's public key when the portal offers both; a portal that has
// neither (404) is not an error, since size and SHA-256 were checked.
func (c cli) verifySignature(ctx context.Context, api *client.Client, product, version, filename string, sum signing.Digests) error {
	keys, err := api.Keys(ctx, product)
	if client.IsStatus(err, http.StatusNotFound) || (err == nil && keys.Minisign == "") {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: fetching the product's public key: %w", filename, err)
	}
	sig, err := api.Minisig(ctx, product, version, filename)
	if client.IsStatus(err, http.StatusNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: fetching its signature: %w", filename, err)
	}
	comment, err := signing.VerifyMinisign(keys.Minisign, sum.BLAKE2b512, sig)
	if err != nil {
		return fmt.Errorf("%s: signature check failed: %w: nothing was saved", filename, err)
	}
	// The portal names the file in the signed comment; a valid signature
	// of another file of the product is not this file's.
	if !strings.Contains(comment+"\t", "\tfile:"+filename+"\t") {
		return fmt.Errorf("%s: the signature is for another file (%q): nothing was saved", filename, comment)
	}
	fmt.Fprintf(c.stdout, "%s: signature verified\n", filename)
	return nil
}
