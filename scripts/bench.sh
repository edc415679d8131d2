#!/usr/bin/env bash
# The portal's benchmarks, end to end, in one command:
#
#   scripts/bench.sh
#
# 1. installs wrk, nginx and curl with apt-get when missing, and starts the
#    S3 test server (scripts/s3-server.sh, versitygw) in the background;
# 2. builds portal, the baseline (bench/baseline: minimal Gin, fixed JSON),
#    the seeding tool (bench/seed) and bench/benchtool;
# 3. seeds a data dir straight through the store: one licensed product with
#    10,000 releases of 4 platforms each and a real 256 MiB artifact,
#    100,000 licenses (unlimited downloads), an admin token;
# 4. runs the Go benchmarks of the parts (go test -bench), and the hot
#    handlers in process next to a minimal Gin handler (server);
# 5. drives wrk (same settings for every API scenario) against the
#    baseline, the upgrade check, the JSON download grant on the local
#    store and on S3, a /d/ share link, and the 256 MiB blob GET against
#    nginx serving the same file;
# 6. prints the results and writes them to docs/BENCHMARKS.md.
#
# Every process it starts is stopped on exit; temporary files live under
# one mktemp directory, removed on exit (BENCH_KEEP=1 keeps it).
#
# Knobs (environment): BENCH_DURATION (wrk -d, default 10s, at most 20s),
# BENCH_CONNECTIONS (default 64), BENCH_THREADS (default 2),
# BENCH_BLOB_CONNECTIONS (default 1), BENCH_RELEASES (10000),
# BENCH_LICENSES (100000), BENCH_OUT (docs/BENCHMARKS.md).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
START=$(date +%s)

DURATION=${BENCH_DURATION:-10s}
CONNS=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-2}
BLOB_CONNS=${BENCH_BLOB_CONNECTIONS:-1}
RELEASES=${BENCH_RELEASES:-10000}
LICENSES=${BENCH_LICENSES:-100000}
OUT_MD=${BENCH_OUT:-docs/BENCHMARKS.md}
WARMUP=2s

log() { printf '\n== %s\n' "$*" >&2; }
die() { echo "bench.sh: $*" >&2; exit 1; }

case $DURATION in
[1-9]s | 1[0-9]s | 20s) ;;
*) die "BENCH_DURATION must be 1s..20s (each wrk run is bounded), not $DURATION" ;;
esac

TMP=$(mktemp -d -t portal-bench.XXXXXX)
BIN=$TMP/bin
RES=$TMP/results
mkdir -p "$BIN" "$RES"

PIDS=()
S3_STARTER=
cleanup() {
	local rc=$?
	set +e
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null
	done
	if [ -n "$S3_STARTER" ]; then
		# The starter runs in its own session (setsid): stop it and a
		# `go install` it may still be running.
		kill -- "-$S3_STARTER" 2>/dev/null
		wait "$S3_STARTER" 2>/dev/null
	fi
	[ -d "$TMP/s3" ] && "$ROOT/scripts/s3-server.sh" stop "$TMP/s3"
	if [ "${BENCH_KEEP:-}" = 1 ]; then
		echo "bench.sh: kept $TMP" >&2
	else
		rm -rf "$TMP"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- tools -------------------------------------------------------------------
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
	log "installing ${missing[*]} with apt-get"
	SUDO=
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	$SUDO apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

# The S3 server (and, on a fresh machine, its `go install`) starts while
# the binaries build and the catalog is seeded.
mkdir -p "$TMP/s3"
setsid "$ROOT/scripts/s3-server.sh" start "$TMP/s3" >"$TMP/s3.env" 2>"$TMP/s3.err" &
S3_STARTER=$!

# --- build -------------------------------------------------------------------
log "building portal, baseline, seed, benchtool"
go build -o "$BIN/portal" ./cmd/portal
go build -o "$BIN/baseline" ./bench/baseline
go build -o "$BIN/seed" ./bench/seed
go build -o "$BIN/benchtool" ./bench/benchtool
BT=$BIN/benchtool

# --- seed --------------------------------------------------------------------
log "seeding $RELEASES releases x 4 platforms, $LICENSES licenses"
DATA=$TMP/data
SEED=$TMP/seed
"$BIN/seed" -data-dir "$DATA" -out "$SEED" -releases "$RELEASES" -licenses "$LICENSES"
cp "$SEED/seed.json" "$RES/seed.json"
field() { "$BT" json "$1" <"$SEED/seed.json"; }
PRODUCT=$(field product)
OLDEST=$(field oldest)
LATEST=$(field latest)
BLOB_FILE=$(field blob_filename)
BLOB_KEY=$(field blob_object_key)
KEY=$(head -n1 "$SEED/keys")

log "waiting for the S3 server"
if ! wait "$S3_STARTER"; then
	cat "$TMP/s3.err" >&2
	S3_STARTER=
	die "scripts/s3-server.sh start failed"
fi
S3_STARTER=
# shellcheck disable=SC1091
. "$TMP/s3.env"

# --- Go benchmarks -----------------------------------------------------------
log "go test -bench (the parts)"
{
	go test -run '^$' -bench '^Benchmark(Local|S3)PresignGet$' -benchtime 1s ./objects/objectstest
	go test -run '^$' -bench '^BenchmarkDecide$' -benchtime 0.5s ./licenses
	# The flatness targets compare two sizes: three runs each, the
	# report keeps the fastest of each.
	go test -run '^$' -bench '^BenchmarkLatest$' -benchtime 0.3s -count 3 ./updates
	go test -run '^$' -bench '^BenchmarkByKey$' -benchtime 1s -count 3 ./licenses
	go test -run '^$' -bench '^BenchmarkHandlers$' -benchtime 1s ./server
} 2>&1 | tee "$RES/gobench.txt" | grep -E '^(Benchmark|ok|FAIL|---)' >&2
grep -q '^FAIL' "$RES/gobench.txt" && die "a Go benchmark failed (see above)"

# --- load generator ----------------------------------------------------------
# License keys in turn, so the lookups hit 1,000 different licenses.
cat >"$TMP/license.lua" <<'EOF'
local keys = {}
for line in io.lines(os.getenv("BENCH_KEYS")) do keys[#keys + 1] = line end
local accept = os.getenv("BENCH_ACCEPT") or "*/*"
local i = 0
setup = function(thread) end
init = function(args) i = math.random(#keys) end
request = function()
	i = i % #keys + 1
	return wrk.format(nil, nil, { ["Authorization"] = "License " .. keys[i], ["Accept"] = accept })
end
EOF
export BENCH_KEYS=$SEED/keys BENCH_ACCEPT=application/json

# run_wrk NAME CONNECTIONS THREADS wrk-args... : a short warm-up, then the
# measured run into $RES/NAME.wrk.
run_wrk() {
	local name=$1 c=$2 t=$3
	shift 3
	log "wrk: $name"
	wrk -t"$t" -c"$c" -d"$WARMUP" "$@" >/dev/null
	wrk -t"$t" -c"$c" -d"$DURATION" --latency "$@" | tee "$RES/$name.wrk" >&2
}

PORTAL_PID=
PORT=
start_portal() {
	PORT=$("$BT" port)
	env PORTAL_DATA_DIR="$DATA" PORTAL_LISTEN="127.0.0.1:$PORT" PORTAL_LOG_ACCESS=false "$@" \
		"$BIN/portal" serve >>"$TMP/portal.log" 2>&1 &
	PORTAL_PID=$!
	PIDS+=("$PORTAL_PID")
	"$BT" wait "http://127.0.0.1:$PORT/healthz" 60 || { tail -n 20 "$TMP/portal.log" >&2; die "portal did not start"; }
}
stop_portal() {
	kill "$PORTAL_PID"
	wait "$PORTAL_PID" || true
}
# must_get URL ARGS...: curl that fails on an HTTP error, printing the body.
must() {
	local out code
	out=$(curl -sS -w '\n%{http_code}' "$@") || die "curl $*"
	code=${out##*$'\n'}
	out=${out%$'\n'*}
	case $code in 2??) printf '%s' "$out" ;; *) die "HTTP $code from curl $*: $out" ;; esac
}

# --- baseline ----------------------------------------------------------------
BPORT=$("$BT" port)
"$BIN/baseline" -listen "127.0.0.1:$BPORT" >"$TMP/baseline.log" 2>&1 &
PIDS+=("$!")
"$BT" wait "http://127.0.0.1:$BPORT/" 30
run_wrk baseline "$CONNS" "$THREADS" "http://127.0.0.1:$BPORT/"

# --- portal, local store -----------------------------------------------------
start_portal
API=http://127.0.0.1:$PORT
UPGRADE="$API/v1/products/$PRODUCT/upgrade?current=$OLDEST&platform=linux&arch=amd64"
GRANT="$API/v1/products/$PRODUCT/releases/latest/download?platform=linux&arch=amd64"
# Check the answers once before loading them.
must -o /dev/null -H "Authorization: License $KEY" "$UPGRADE"
[ "$(must -H "Authorization: License $KEY" "$UPGRADE" | "$BT" json version)" = "$LATEST" ] || die "upgrade check did not offer $LATEST"

# Each API scenario runs right after a baseline run of its own: the machine's
# speed drifts over minutes, and a ratio of two runs side by side holds.
run_wrk baseline-upgrade "$CONNS" "$THREADS" "http://127.0.0.1:$BPORT/"
run_wrk upgrade "$CONNS" "$THREADS" -s "$TMP/license.lua" "$UPGRADE"
run_wrk baseline-grant-local "$CONNS" "$THREADS" "http://127.0.0.1:$BPORT/"
run_wrk grant-local "$CONNS" "$THREADS" -s "$TMP/license.lua" "$GRANT"

LINK=$(must -X POST -H "Authorization: License $KEY" -H 'Content-Type: application/json' \
	-d "{\"product\":\"$PRODUCT\",\"version\":\"$LATEST\",\"filename\":\"$BLOB_FILE\",\"ttl\":3600}" \
	"$API/v1/links" | "$BT" json url)
case $LINK in "$API"/d/*) ;; *) die "unexpected share link $LINK" ;; esac
run_wrk baseline-share "$CONNS" "$THREADS" "http://127.0.0.1:$BPORT/"
run_wrk share "$CONNS" "$THREADS" "$LINK"

# The blob: mint a /blobs/ URL through the JSON grant, and serve the same
# file from nginx.
BLOB_URL=$(must -H "Authorization: License $KEY" -H 'Accept: application/json' "$GRANT" | "$BT" json url)
case $BLOB_URL in "$API"/blobs/*) ;; *) die "unexpected blob URL $BLOB_URL" ;; esac
NPORT=$("$BT" port)
mkdir -p "$TMP/nginx"
cat >"$TMP/nginx/nginx.conf" <<EOF
daemon off;
user root;
worker_processes auto;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    default_type application/octet-stream;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    server {
        listen 127.0.0.1:$NPORT;
        root $DATA/objects;
    }
}
EOF
"$NGINX" -e "$TMP/nginx/error.log" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" &
PIDS+=("$!")
"$BT" wait "http://127.0.0.1:$NPORT/" 30
NGINX_URL="http://127.0.0.1:$NPORT/$BLOB_KEY"
must -o /dev/null -r 0-0 "$NGINX_URL"
must -o /dev/null -r 0-0 "$BLOB_URL"
run_wrk blob-nginx "$BLOB_CONNS" 1 "$NGINX_URL"
run_wrk blob-portal "$BLOB_CONNS" 1 "$BLOB_URL"
stop_portal

# --- portal, S3 store (same catalog; the grant only presigns) ---------------
start_portal PORTAL_OBJECTS_BACKEND=s3 PORTAL_OBJECTS_S3_BUCKET="$PORTAL_TEST_S3_BUCKET" \
	PORTAL_OBJECTS_S3_ENDPOINT="$PORTAL_TEST_S3_ENDPOINT" PORTAL_OBJECTS_S3_ACCESS_KEY="$PORTAL_TEST_S3_ACCESS_KEY" \
	PORTAL_OBJECTS_S3_SECRET_KEY="$PORTAL_TEST_S3_SECRET_KEY" PORTAL_OBJECTS_S3_REGION="$PORTAL_TEST_S3_REGION" \
	PORTAL_OBJECTS_S3_PATH_STYLE=true
API=http://127.0.0.1:$PORT
GRANT="$API/v1/products/$PRODUCT/releases/latest/download?platform=linux&arch=amd64"
S3_URL=$(must -H "Authorization: License $KEY" -H 'Accept: application/json' "$GRANT" | "$BT" json url)
case $S3_URL in "$PORTAL_TEST_S3_ENDPOINT"/*X-Amz-Signature=*) ;; *) die "unexpected S3 URL $S3_URL" ;; esac
run_wrk baseline-grant-s3 "$CONNS" "$THREADS" "http://127.0.0.1:$BPORT/"
run_wrk grant-s3 "$CONNS" "$THREADS" -s "$TMP/license.lua" "$GRANT"
stop_portal

# --- report ------------------------------------------------------------------
log "report"
{
	echo "DATE=$(date -u +%Y-%m-%dT%H:%MZ)"
	echo "CORES=$(nproc)"
	echo "MEM=$(free -h | awk '/^Mem:/ {print $2}')"
	echo "CPU=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
	echo "GO=$(go version)"
	echo "WRK=$(wrk -v 2>&1 | head -n1 | awk '{print $1, $2}'), $("$NGINX" -v 2>&1)"
	echo "WRK_ARGS=-t$THREADS -c$CONNS -d$DURATION --latency (after a $WARMUP warm-up)"
	echo "BLOB_WRK_ARGS=-t1 -c$BLOB_CONNS -d$DURATION --latency"
	echo "BLOB_SIZE=$(($(field blob_size 2>/dev/null || echo 0) / 1048576)) MiB"
	echo "COMMAND=scripts/bench.sh"
	echo "SECONDS=$(($(date +%s) - START))"
} >"$RES/machine.env"
[ -f bench/findings.md ] && cp bench/findings.md "$RES/findings.md"
mkdir -p "$(dirname "$OUT_MD")"
"$BT" report "$RES" "$OUT_MD"
echo "bench.sh: wrote $OUT_MD in $(($(date +%s) - START)) s" >&2
