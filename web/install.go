package web

import (
	"context"
	"net/url"
	"slices"
	"strings"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/repos"
)

// KeyPlaceholder stands for the customer's license key in the install
// instructions: the pages never show a key (it is shown once, when the
// license is made), so the customer puts it in.
const KeyPlaceholder = "YOUR_LICENSE_KEY"

// custInstall is how to install a product's packages with apt and dnf,
// from the portal's repositories (server/apt.go, server/rpm.go). Either
// is nil when the license may install no package of that format.
type custInstall struct {
	APT *aptInstall
	DNF *dnfInstall
	// Fingerprint is the repository signing key's, in groups of four as
	// gpg and dnf print it ("" if unknown).
	Fingerprint string
}

// aptInstall: the commands of the README's "APT (Debian, Ubuntu)" for one
// product, with this portal's URLs.
type aptInstall struct {
	Slug string
	// KeyURL is the binary keyring (for signed-by), Keyring where it goes.
	KeyURL, Keyring string
	// Lines are the sources.list lines, one per channel with packages,
	// most stable first; List is the file they go in.
	Lines []string
	List  string
	// Auth is the auth.conf.d line (with KeyPlaceholder), AuthFile its
	// file; both empty for an open product, which needs no credentials.
	Auth, AuthFile string
	Packages       []string
}

// dnfInstall: the .repo files of the product's channels and the packages.
type dnfInstall struct {
	Slug  string
	Repos []repoFile
	// Open products' .repo files carry no credentials.
	Open     bool
	Packages []string
}

// repoFile is one channel's .repo file: its URL answers without
// credentials with KeyPlaceholder for the password, and with a license's
// credentials with that key (server/rpm.go).
type repoFile struct {
	Channel, URL, Name string
}

// installFor returns how the caller in ctx installs product p's packages,
// or nil when it may install none. Which packages and channels is
// repos.Permitted, the repositories' own rule: a channel is offered when
// the license may install packages released on it (each channel's
// repository also lists the more stable channels' releases, so a
// stable-only license is offered stable alone). base is the portal's
// public URL. offered names, as "channel/format", where the releases the
// page lists have packages: only those channels are asked of
// repos.Permitted (the page's list is a superset, up to its length), so a
// product without packages costs nothing more.
func (h *Handler) installFor(ctx context.Context, base string, p releases.Product, offered map[string]bool) (*custInstall, error) {
	var in custInstall
	for _, format := range []string{"deb", "rpm"} {
		var channels, packages []string
		for _, ch := range releases.Channels {
			if !offered[ch+"/"+format] {
				continue
			}
			set, err := repos.Permitted(ctx, h.Resolver, p.Slug, ch, format)
			if portal.IsCode(err, portal.EForbidden) || portal.IsCode(err, portal.ENotFound) || portal.IsCode(err, portal.EUnauthorized) {
				return nil, nil // refused: the page shows why elsewhere
			}
			if err != nil {
				return nil, err
			}
			for _, e := range set.Entries {
				if e.Release.Channel == set.Channel && !slices.Contains(channels, set.Channel) {
					channels = append(channels, set.Channel)
				}
				if e.Artifact.Package != nil && !slices.Contains(packages, e.Artifact.Package.Name) {
					packages = append(packages, e.Artifact.Package.Name)
				}
			}
		}
		if len(channels) == 0 {
			continue
		}
		slices.Sort(packages)
		open := p.Distribution == releases.Open
		switch format {
		case "deb":
			in.APT = aptInstructions(base, p.Slug, channels, packages, open)
		case "rpm":
			d := &dnfInstall{Slug: p.Slug, Open: open, Packages: packages}
			for _, ch := range channels {
				d.Repos = append(d.Repos, repoFile{Channel: ch,
					URL:  base + "/rpm/" + url.PathEscape(p.Slug) + "/" + ch + ".repo",
					Name: p.Slug + "-" + ch + ".repo"})
			}
			in.DNF = d
		}
	}
	if in.APT == nil && in.DNF == nil {
		return nil, nil
	}
	return &in, nil
}

func aptInstructions(base, slug string, channels, packages []string, open bool) *aptInstall {
	repo := base + "/apt/" + url.PathEscape(slug)
	a := &aptInstall{Slug: slug, KeyURL: repo + "/key.gpg", Keyring: "/etc/apt/keyrings/" + slug + ".gpg",
		List: "/etc/apt/sources.list.d/" + slug + ".list", Packages: packages}
	for _, ch := range channels {
		a.Lines = append(a.Lines, "deb [signed-by="+a.Keyring+"] "+repo+" "+ch+" main")
	}
	if !open {
		// apt_auth.conf(5): a machine without a scheme matches https
		// only; over plain http the line must say http://.
		machine := strings.TrimPrefix(repo, "https://")
		a.AuthFile = "/etc/apt/auth.conf.d/" + slug + ".conf"
		a.Auth = "machine " + machine + " login license password " + KeyPlaceholder
	}
	return a
}

// groupFingerprint writes an OpenPGP fingerprint in groups of four.
func groupFingerprint(fp string) string {
	var b strings.Builder
	for i := 0; i < len(fp); i += 4 {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(fp[i:min(i+4, len(fp))])
	}
	return b.String()
}
