#!/usr/bin/env bash
# Soak test: builds portal, starts `portal serve` on a free loopback port
# with a temporary data directory, drives mixed load at it with bench/soak
# for SOAK_DURATION (default 10m; e.g. SOAK_DURATION=60s), and stops it.
# bench/soak prints heap, goroutines, open files and RSS at the start, every
# tenth of the run and at the end, and exits non-zero on any 5xx answer or
# clear growth; so does this script.
#
# SOAK_WORKERS sets the number of request loops (default 8).
set -euo pipefail
cd "$(dirname "$0")/.."

duration=${SOAK_DURATION:-10m}
workers=${SOAK_WORKERS:-8}
work=$(mktemp -d)
pid=
cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/portal" ./cmd/portal
go build -o "$work/soak" ./bench/soak

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export PORTAL_DATA_DIR="$work/data" PORTAL_LISTEN="127.0.0.1:$port" PORTAL_PUBLIC_URL="http://127.0.0.1:$port" \
	PORTAL_LOG_ACCESS=false PORTAL_LOG_LEVEL=warn
token=$("$work/portal" token create --role admin --name soak 2>/dev/null)

"$work/portal" serve 2>"$work/serve.log" &
pid=$!
for i in $(seq 1 300); do
	if curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null; then break; fi
	if ! kill -0 "$pid" 2>/dev/null || [ "$i" = 300 ]; then
		echo "soak.sh: portal serve did not start:" >&2
		cat "$work/serve.log" >&2
		exit 1
	fi
	sleep 0.1
done

echo "soak.sh: portal serve (pid $pid) on 127.0.0.1:$port for $duration, $workers request loops"
status=0
"$work/soak" -url "http://127.0.0.1:$port" -token "$token" -pid "$pid" -duration "$duration" -workers "$workers" || status=$?
if grep -q -i 'panic\|level=ERROR' "$work/serve.log"; then
	echo "soak.sh: the server logged errors:" >&2
	grep -i -m 20 'panic\|level=ERROR' "$work/serve.log" >&2
	status=1
fi
exit $status
