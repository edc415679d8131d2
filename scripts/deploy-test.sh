#!/usr/bin/env bash
# Checks the deployable build without a container engine: builds the
# binary the Dockerfile copies (same command), checks that it is static,
# runs it as a non-root user (nobody, 65534, as distroless's nonroot is)
# on 127.0.0.1 with an empty data directory and public_url set, waits for
# /readyz, checks `portal version` shows the stamped version, stops it with
# SIGTERM; then `systemd-analyze verify deploy/portal.service` where
# systemd-analyze exists. Called by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
pid=
cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT
say() { echo "deploy-test.sh: $*"; }
fail() { echo "deploy-test.sh: FAIL: $*" >&2; [ -f "$work/log" ] && sed 's/^/  /' "$work/log" >&2; exit 1; }

version="deploy-test-$(git rev-parse --short HEAD 2>/dev/null || echo none)"
commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)

# The Dockerfile's build command.
say "build (CGO_ENABLED=0, -trimpath, version $version)"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$version -X main.commit=$commit" \
	-o "$work/portal" ./cmd/portal

# Static: no program interpreter, no shared libraries (distroless/static
# has no libc).
if command -v file >/dev/null; then
	file "$work/portal" | grep -q 'statically linked' || fail "not static: $(file "$work/portal")"
fi
if command -v ldd >/dev/null && ldd "$work/portal" 2>&1 | grep -q '=>'; then
	fail "links shared libraries: $(ldd "$work/portal" 2>&1)"
fi
say "static binary: ok"

# An empty data directory owned by the unprivileged user; the binary and
# the directory above are readable and searchable by it.
uid=65534
chmod 0755 "$work"
mkdir "$work/data"
run=()
if [ "$(id -u)" = 0 ]; then
	chown "$uid:$uid" "$work/data"
	if command -v setpriv >/dev/null; then
		run=(setpriv --reuid="$uid" --regid="$uid" --clear-groups --)
	else
		run=(runuser -u "$(id -nu "$uid")" --)
	fi
else
	uid=$(id -u)
	say "not root: running as the current user ($uid), which is not root either"
fi

# Port 0 picks a free port; the address bound is in the start-up log.
env -i PATH=/usr/bin:/bin HOME="$work/data" \
	PORTAL_DATA_DIR="$work/data" PORTAL_LISTEN=127.0.0.1:0 PORTAL_PUBLIC_URL=http://portal.invalid \
	PORTAL_LOG_ACCESS=false "${run[@]}" "$work/portal" serve >"$work/log" 2>&1 &
pid=$!

addr=
for _ in $(seq 1 300); do
	addr=$(sed -n 's/.*msg="portal serving" listen=\([^ ]*\).*/\1/p' "$work/log" | head -n1)
	[ -n "$addr" ] && break
	kill -0 "$pid" 2>/dev/null || fail "portal serve exited"
	sleep 0.1
done
[ -n "$addr" ] || fail "portal serve did not start listening"
ready=
for _ in $(seq 1 300); do
	code=$(curl -s -o /dev/null -w '%{http_code}' "http://$addr/readyz" || true)
	[ "$code" = 200 ] && { ready=1; break; }
	sleep 0.1
done
[ -n "$ready" ] || fail "/readyz never answered 200 (last: $code)"
running_uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
[ "$running_uid" = "$uid" ] || fail "serving as uid $running_uid, want $uid"
[ "$running_uid" != 0 ] || fail "serving as root"
say "serve as uid $running_uid on $addr, /readyz 200: ok"

out=$("$work/portal" version)
grep -qx "portal $version" <<<"$out" || fail "portal version says: $out"
grep -qx "commit $commit" <<<"$out" || fail "portal version says: $out"
say "portal version stamped: ok"

kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=
[ "$status" = 0 ] || fail "portal serve exited with $status after SIGTERM"
[ -f "$work/data/portal.db" ] || fail "no portal.db in the data directory"
say "stopped cleanly: ok"

if command -v systemd-analyze >/dev/null; then
	# verify wants ExecStart to exist: point it at the binary just built.
	sed "s|/usr/local/bin/portal|$work/portal|" deploy/portal.service >"$work/portal.service"
	systemd-analyze verify "$work/portal.service" || fail "systemd-analyze verify deploy/portal.service"
	say "systemd-analyze verify deploy/portal.service: ok"
else
	say "SKIPPED systemd-analyze verify (systemd-analyze is not installed)"
fi
