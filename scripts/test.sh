#!/usr/bin/env bash
# The one test command: installs what the tests need, starts the real servers
# they run against on 127.0.0.1, runs go vet and the whole suite, stops the
# servers. Exits non-zero on any failure.
#
# PORTAL_SKIP_S3=1 skips the S3 backend tests (they then print SKIPPED).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$(go env GOPATH)/bin:$PATH"

# Debian tools the tests verify against.
missing=()
command -v minisign >/dev/null || missing+=(minisign)
command -v openssl >/dev/null || missing+=(openssl)
# deploy-test.sh: curl for /readyz, file for the static-binary check.
command -v curl >/dev/null || missing+=(curl)
command -v file >/dev/null || missing+=(file)
# The APT repository tests: dpkg-deb and dpkg-scanpackages build and index
# real .debs, gpgv checks the OpenPGP signatures, apt-get is the real client.
command -v dpkg-scanpackages >/dev/null || missing+=(dpkg-dev)
command -v gpgv >/dev/null || missing+=(gpgv)
command -v apt-get >/dev/null || missing+=(apt)
# The YUM repository tests: rpmbuild makes real rpms, createrepo_c is the
# reference for repodata, dnf the real client (about 5 s to install).
command -v rpmbuild >/dev/null || missing+=(rpm)
command -v createrepo_c >/dev/null || missing+=(createrepo-c)
command -v dnf >/dev/null || missing+=(dnf)
command -v gpg-agent >/dev/null || missing+=(gnupg) # rpmsign, for signed-package tests
# The web pages' browser tests drive Debian's chromium, headless
# (internal/browsertest).
command -v chromium >/dev/null || missing+=(chromium)
if ((${#missing[@]})); then
	echo "test.sh: installing ${missing[*]}"
	if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
	else sudo apt-get update -qq && sudo apt-get install -y -qq "${missing[@]}" >/dev/null; fi
fi

work=$(mktemp -d)
cleanup() {
	if [ -f scripts/s3-server.sh ]; then scripts/s3-server.sh stop "$work/s3" || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

if [ "${PORTAL_SKIP_S3:-}" != 1 ] && [ -f scripts/s3-server.sh ]; then
	eval "$(scripts/s3-server.sh start "$work/s3")"
fi

go vet ./...
# -race: the caches, the ledger queue and the update index are shared by
# every request goroutine.
go test -race -count=1 -timeout 14m ./...

# The deployable build: the Dockerfile's static binary run as a non-root
# user, and the systemd unit.
scripts/deploy-test.sh

# Fuzz targets, a few seconds each after the suite (their seed corpora in
# testdata/fuzz/ already ran above as ordinary tests). -fuzz takes one
# package and one target at a time. PORTAL_FUZZTIME changes the time each.
fuzztime=${PORTAL_FUZZTIME:-2s}
for target in \
	./downloads/links:FuzzVerify ./downloads/links:FuzzTokenMutation \
	./objects/local:FuzzHandler ./objects/local:FuzzSignedLinkMutation ./objects/local:FuzzSignedKey \
	./releases:FuzzVersionOrder ./releases:FuzzValidateFilename ./licenses:FuzzParseConstraint \
	./server:FuzzAuthorization ./configs:FuzzLoad ./signing:FuzzSealerOpen \
	./pkgmeta:FuzzParseRPM ./store/backup:FuzzVerify; do
	pkg=${target%%:*} name=${target#*:}
	echo "test.sh: fuzz $name ($pkg, $fuzztime)"
	# timeout: a fuzz run that hangs fails the suite instead of holding CI.
	fuzzrun() { timeout 180 go test -run '^$' -fuzz "^$name\$" -fuzztime "$fuzztime" "$pkg" >"$work/fuzz.log" 2>&1; }
	if ! fuzzrun; then
		# Go's fuzzer can report "context deadline exceeded" when -fuzztime
		# ends while a worker is mid-input, with no failing input found:
		# that run found nothing, so it is run once more. A real failure
		# writes its input under testdata/fuzz and fails both times.
		if grep -q 'context deadline exceeded' "$work/fuzz.log" && ! grep -q 'Failing input written' "$work/fuzz.log"; then
			echo "test.sh: fuzz $name stopped mid-input at the deadline without a finding; running it again"
			fuzzrun || { cat "$work/fuzz.log"; exit 1; }
		else
			cat "$work/fuzz.log"
			exit 1
		fi
	fi
done
