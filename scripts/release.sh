#!/usr/bin/env bash
# Builds the release archives of portal into dist/: one per OS and
# architecture (linux, darwin, windows x amd64, arm64), each holding the
# static binary stamped with the version and commit (`portal version`),
# README.md and the systemd unit, and dist/SHA256SUMS over the archives.
#
#   scripts/release.sh            # version from `git describe`
#   VERSION=1.4.0 scripts/release.sh
#
# The build is the Dockerfile's: CGO_ENABLED=0, -trimpath, -s -w.
set -euo pipefail
cd "$(dirname "$0")/.."

version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
commit=${COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
platforms=${PLATFORMS:-"linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64"}
ldflags="-s -w -X main.version=$version -X main.commit=$commit"
case " $platforms " in *" windows/"*) command -v zip >/dev/null || { echo "release.sh: the windows archives need zip (apt-get install zip)" >&2; exit 1; } ;; esac

rm -rf dist
mkdir -p dist
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

for p in $platforms; do
	goos=${p%/*} goarch=${p#*/}
	name="portal_${version}_${goos}_${goarch}"
	dir="$stage/$name"
	mkdir -p "$dir"
	exe=portal
	[ "$goos" = windows ] && exe=portal.exe
	echo "release.sh: $name"
	CGO_ENABLED=0 GOOS=$goos GOARCH=$goarch go build -trimpath -ldflags "$ldflags" -o "$dir/$exe" ./cmd/portal
	cp README.md "$dir/"
	[ "$goos" = linux ] && cp deploy/portal.service "$dir/"
	if [ "$goos" = windows ]; then
		(cd "$stage" && zip -qr "$OLDPWD/dist/$name.zip" "$name")
	else
		# Reproducible archives: fixed order, owner and time.
		tar -C "$stage" --sort=name --owner=0 --group=0 --numeric-owner \
			--mtime="@${SOURCE_DATE_EPOCH:-0}" -czf "dist/$name.tar.gz" "$name"
	fi
done

(cd dist && shopt -s nullglob && sha256sum -- *.tar.gz *.zip >SHA256SUMS)
echo "release.sh: dist/ holds $(ls dist | wc -l) files"
cat dist/SHA256SUMS
