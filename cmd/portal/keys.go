package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/portaldist/portal/app"
	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/signing"
)

const keysUsage = `usage:
  portal keys seal [--config FILE] [--data-dir DIR]
        seal every product key still in plaintext with signing.master_key
  portal keys rotate --product P [--activate] [--json] [--config FILE] [--data-dir DIR]
        without --activate: stage new keys for P (printed; /keys lists them as "next");
        the current keys keep signing. Build and publish a transition release that
        carries the new public keys, then run again with --activate: the new keys
        sign from then on, the old ones are listed as "previous".
  portal keys rotate --openpgp --product P [--activate] [--config FILE] [--data-dir DIR]
        the OpenPGP key of P's APT and YUM repositories: without --activate, stage a
        new key (repos.openpgp_algorithm), published and signing beside the current
        one, so customers can add it to their keyrings; with --activate, the new key
        signs alone.`

// keys runs the key management verbs, offline on the configured store (like
// token create, it fails at once while a server holds the store).
func keys(args []string) error {
	if len(args) == 0 {
		return errors.New(keysUsage)
	}
	switch args[0] {
	case "seal":
		return keysSeal(args[1:], os.Stdout)
	case "rotate":
		return keysRotate(args[1:], os.Stdout)
	}
	return errors.New(keysUsage)
}

func keysSeal(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("keys seal", flag.ContinueOnError)
	load := configFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	if cfg.Signing.MasterKey == "" {
		return errors.New("keys seal: signing.master_key (PORTAL_SIGNING_MASTER_KEY) is not set: there is nothing to seal with")
	}
	// An offline command: its changes are audited as the local operator's.
	ctx := audit.WithActor(context.Background(), audit.Actor{Kind: audit.KindCLI})
	a, err := app.OpenStore(ctx, cfg, app.Options{})
	if err != nil {
		return err
	}
	defer a.Close(ctx)
	n, err := a.Keys.SealAll(ctx, slog.New(slog.NewTextHandler(stdout, nil)))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d product key(s) sealed; none is left in plaintext\n", n)
	return nil
}

func keysRotate(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("keys rotate", flag.ContinueOnError)
	load := configFlags(fs)
	product := fs.String("product", "", "the product whose keys to rotate")
	activate := fs.Bool("activate", false, "make the staged keys the signing keys")
	asJSON := fs.Bool("json", false, "print the public keys as JSON")
	openpgp := fs.Bool("openpgp", false, "rotate the OpenPGP key of the package repositories instead")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *product == "" || fs.NArg() > 0 {
		return errors.New(keysUsage)
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	// An offline command: its changes are audited as the local operator's.
	ctx := audit.WithActor(context.Background(), audit.Actor{Kind: audit.KindCLI})
	a, err := app.OpenStore(ctx, cfg, app.Options{})
	if err != nil {
		return err
	}
	defer a.Close(ctx)
	// A rotation rewrites the product's stored keys: seal what is in
	// plaintext first, as serve would.
	if _, err := a.Keys.SealAll(ctx, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		return err
	}
	if *openpgp {
		return keysRotateOpenPGP(ctx, a, *product, *activate, stdout)
	}
	var pub signing.PublicKeys
	var msg string
	if *activate {
		if pub, err = a.Keys.Activate(ctx, *product); err != nil {
			return err
		}
		msg = "the new keys of " + *product + " sign from now on; the previous ones are listed by /keys as \"previous\""
	} else {
		var created bool
		if pub, created, err = a.Keys.Stage(ctx, *product); err != nil {
			return err
		}
		msg = "new keys staged for " + *product
		if !created {
			msg = "keys already staged for " + *product + " (unchanged)"
		}
		msg += "; the current keys keep signing. Publish a transition release that carries these public keys, then run: portal keys rotate --product " + *product + " --activate"
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(pub)
	}
	fmt.Fprintf(stdout, "%s\n\nSparkle SUPublicEDKey: %s\nminisign public key:   %s\nTauri pubkey:          %s\n",
		msg, pub.Sparkle, pub.Minisign, pub.TauriPubkey())
	return nil
}

func keysRotateOpenPGP(ctx context.Context, a *app.App, product string, activate bool, stdout io.Writer) error {
	if activate {
		k, err := a.Keys.ActivateOpenPGP(ctx, product)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "the OpenPGP key %s signs the repositories of %s alone from now on\n", k.Fingerprint(), product)
		return nil
	}
	k, created, err := a.Keys.StageOpenPGP(ctx, product)
	if err != nil {
		return err
	}
	msg := "new OpenPGP key staged for " + product
	if !created {
		msg = "an OpenPGP key is already staged for " + product + " (unchanged)"
	}
	fmt.Fprintf(stdout, "%s: %s (%s)\nIt signs beside the current key and is in /apt/%s/key.gpg and /keys (openpgp.next). "+
		"Once customers have it, run: portal keys rotate --openpgp --product %s --activate\n\n%s",
		msg, k.Fingerprint(), k.Algorithm(), product, product, k.PublicArmored())
	return nil
}
