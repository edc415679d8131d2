#!/usr/bin/env bash
# The portal's benchmarks, end to end, in one command (8 to 9 minutes on a
# 2-core machine with the seeded catalog cached, plus the seeding without):
#
#   BENCH_SEED_ONLY=1 scripts/bench.sh   # once: seed and cache the catalog
#   scripts/bench.sh
#
# 1. installs wrk, nginx and curl with apt-get when missing, and starts the
#    S3 test server (scripts/s3-server.sh, versitygw) in the background;
# 2. builds portal, the Gin baseline (bench/baseline), the presign-only Go
#    service (bench/presignonly), the seeding tool (bench/seed),
#    bench/heapprof and bench/benchtool;
# 3. seeds the catalog straight through the store: one licensed product
#    with 10,000 releases of 4 builds each and a real 256 MiB artifact,
#    1,000,000 licenses (unlimited downloads). Seeding takes minutes (the
#    licenses go through licenses.Service.Put, audited, in random order as
#    a real catalog's are: ~10 minutes on a loaded 2-core machine), which
#    would take the run past 10 minutes, so the seeded data dir (~2 GB) is
#    cached in $BENCH_CACHE keyed by the SHA-256 of the seed binary and its
#    arguments, and copied from there (the report says which). A run that
#    must seed takes that much longer; BENCH_SEED_ONLY=1 builds, seeds the
#    cache and stops, so that the timed run finds it;
# 4. runs the Go benchmarks of the parts (go test -bench), license lookups
#    on the seeded catalog and on one of 10,000 licenses (bench/lookup), and
#    the download ledger's BenchmarkFlush on the ledger before its log layout
#    (from git) and on this tree, alternately;
# 5. memory and start-up: `portal serve` on the seeded catalog, time from
#    start to /readyz, resident memory after start and after a load of
#    licensed upgrade checks, the bbolt file's size; then a heap profile of
#    the same server under the same load (bench/heapprof);
# 6. interleaved pairs (BENCH_PAIRS, default 5): for each scenario, a run of
#    its reference (the Gin baseline, nginx with the exact bytes of the
#    answer, the presign-only service) then a run of the scenario, with the
#    same wrk settings, and again. Where the scenario sends license keys
#    (wrk's Lua script, a key in turn per request), its reference gets the
#    same script and headers, so both pairs cost wrk the same and the ratio
#    measures the servers only. A scenario whose pairs are too spread to
#    decide its target is run once more while the time budget allows;
#    The same for the upgrade check and the grant on the etcd store driver
#    (a 3-member cluster on 127.0.0.1, bench/etcdcluster, with a smaller
#    catalog seeded into it), counting the store's write transactions;
# 7. writes docs/BENCHMARKS.md and the raw outputs (every wrk output, the
#    go test -bench outputs, load averages, settings) to docs/bench-raw/.
#
# The portal runs as the README starts it: `portal serve` with only the
# data dir and listen address set (access log on, as by default, to a
# file); serve sets GOGC=400 when GOGC is unset, so the baseline and the
# presign-only service get GOGC=400 too.
#
# Every process it starts is stopped on exit; temporary files live under
# one mktemp directory, removed on exit (BENCH_KEEP=1 keeps it).
#
# Knobs (environment): BENCH_PAIRS (5), BENCH_DURATION (wrk -d of each run,
# 2s, at most 20s), BENCH_WARMUP (1s, once per server), BENCH_CONNECTIONS
# (64), BENCH_THREADS (2), BENCH_BLOB_CONNECTIONS (1), BENCH_RELEASES
# (10000), BENCH_LICENSES (1000000), BENCH_MEMORY_LOAD (60s),
# BENCH_ETCD_RELEASES (1000) and BENCH_ETCD_LICENSES (10000) for the etcd
# lines, BENCH_BUDGET (seconds the run should stay under, 590: reruns only while
# there is time), BENCH_GO (1; 0 skips the Go benchmarks and "ledger" runs
# only the ledger's before/after, for a quick check of the script),
# BENCH_SEED_ONLY (1: seed the cache and stop), BENCH_CACHE (~/.cache/portal-bench), BENCH_OUT
# (docs/BENCHMARKS.md), BENCH_RAW (docs/bench-raw).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
START=$(date +%s)
LOAD_BEFORE=$(cat /proc/loadavg)

PAIRS=${BENCH_PAIRS:-5}
DURATION=${BENCH_DURATION:-2s}
WARMUP=${BENCH_WARMUP:-1s}
CONNS=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-2}
BLOB_CONNS=${BENCH_BLOB_CONNECTIONS:-1}
RELEASES=${BENCH_RELEASES:-10000}
LICENSES=${BENCH_LICENSES:-1000000}
MEM_LOAD=${BENCH_MEMORY_LOAD:-60s}
ETCD_RELEASES=${BENCH_ETCD_RELEASES:-1000}
ETCD_LICENSES=${BENCH_ETCD_LICENSES:-10000}
BUDGET=${BENCH_BUDGET:-590}
GOBENCH=${BENCH_GO:-1}
CACHE=${BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/portal-bench}
OUT_MD=${BENCH_OUT:-docs/BENCHMARKS.md}
RAW=${BENCH_RAW:-docs/bench-raw}
# The ledger as it was before its log layout (a key per grant under its
# license), for BenchmarkFlush side by side.
LEDGER_OLD=cdf6dba

log() { printf '\n== %s (%ds)\n' "$*" "$(($(date +%s) - START))" >&2; }
die() { echo "bench.sh: $*" >&2; exit 1; }

for d in "$DURATION" "$WARMUP" "$MEM_LOAD"; do
	case $d in
	[1-9]s | [1-9][0-9]s) ;;
	*) die "durations are whole seconds (1s..99s), not $d" ;;
	esac
done
case $DURATION in [1-9]s | 1[0-9]s | 20s) ;; *) die "BENCH_DURATION must be 1s..20s" ;; esac
[ "$PAIRS" -ge 1 ] 2>/dev/null || die "BENCH_PAIRS must be a positive number"

TMP=$(mktemp -d -t portal-bench.XXXXXX)
BIN=$TMP/bin
RES=$TMP/results
mkdir -p "$BIN" "$RES/wrk"

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
log "building portal, baseline, presignonly, seed, heapprof, lookup, benchtool"
go build -o "$BIN/" ./cmd/portal ./bench/baseline ./bench/presignonly ./bench/seed ./bench/heapprof ./bench/lookup ./bench/benchtool
if [ -d store/etcd ] && [ -d internal/etcdtest ]; then
	go build -o "$BIN/" ./bench/etcdcluster
fi
BT=$BIN/benchtool

# --- seed (cached) -----------------------------------------------------------
SEED_ARGS="-releases $RELEASES -licenses $LICENSES"
SEED_KEY=$({ sha256sum <"$BIN/seed"; echo "$SEED_ARGS"; } | sha256sum | cut -c1-16)
CACHED=$CACHE/seed-$SEED_KEY
DATA=$TMP/data
SEED=$TMP/seed
if [ -f "$CACHED/done" ]; then
	log "catalog from the cache $CACHED"
	SEED_NOTE="taken from the cache \`$CACHED\` (made by an earlier run with the same seed binary and arguments: the key is the SHA-256 of both); its seeding time below is that run's"
else
	log "seeding $RELEASES releases x 4 builds, $LICENSES licenses (cached afterwards in $CACHED)"
	rm -rf "$CACHED.tmp"
	mkdir -p "$CACHED.tmp"
	# shellcheck disable=SC2086
	"$BIN/seed" -data-dir "$CACHED.tmp/data" -out "$CACHED.tmp/seed" $SEED_ARGS
	touch "$CACHED.tmp/done"
	rm -rf "$CACHED"
	mv "$CACHED.tmp" "$CACHED"
	# Catalogs of other seed binaries are stale (about 2 GB each).
	find "$CACHE" -mindepth 1 -maxdepth 1 -name 'seed-*' ! -name "seed-$SEED_KEY" -exec rm -rf {} +
	SEED_NOTE="seeded by this run and cached in \`$CACHED\`, keyed by the SHA-256 of the seed binary and its arguments, for the next runs"
fi
if [ "${BENCH_SEED_ONLY:-}" = 1 ]; then
	echo "bench.sh: the catalog is in $CACHED" >&2
	exit 0
fi
cp -a "$CACHED/data" "$DATA"
cp -a "$CACHED/seed" "$SEED"
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
if [ "$GOBENCH" = 1 ]; then
	log "go test -bench (the parts)"
	{
		go test -run '^$' -bench '^Benchmark(Local|S3)PresignGet$' -benchtime 1s ./objects/objectstest
		go test -run '^$' -bench '^BenchmarkDecide$' -benchtime 0.5s ./licenses
		# The flatness targets compare two sizes: several runs each, the
		# report keeps the fastest of each.
		go test -run '^$' -bench '^BenchmarkLatest$' -benchtime 0.3s -count 3 ./updates
		go test -run '^$' -bench '^BenchmarkHandlers$' -benchtime 1s ./server
		# License lookups on the seeded catalog and on one of 10,000
		# licenses (bench/lookup: licenses.Service.ByKey with the cache off
		# and on, three runs each), rather than licenses' BenchmarkByKey,
		# which seeds 1,000,000 licenses inside the benchmark for minutes.
		"$BIN/seed" -data-dir "$TMP/small" -out "$TMP/small-seed" -releases 10 -service-releases 1 \
			-licenses 10000 -blob-size 65536 >/dev/null 2>&1 || echo "FAIL: seeding 10,000 licenses"
		"$BIN/lookup" -data-dir "$TMP/small" -keys "$TMP/small-seed/keys" -licenses 10000 -count 3 || echo "FAIL: bench/lookup"
		"$BIN/lookup" -data-dir "$DATA" -keys "$SEED/keys" -licenses "$LICENSES" -count 3 || echo "FAIL: bench/lookup"
	} 2>&1 | tee "$RES/gobench.txt" | grep -E '^(Benchmark|ok|FAIL|---)' >&2
	grep -q '^FAIL' "$RES/gobench.txt" && die "a Go benchmark failed (see above)"
fi
if [ "$GOBENCH" = 1 ] || [ "$GOBENCH" = ledger ]; then
	log "download ledger: BenchmarkFlush at $LEDGER_OLD (before the log) and on this tree, alternately"
	if git cat-file -e "$LEDGER_OLD^{commit}" 2>/dev/null; then
		mkdir -p "$TMP/ledger-old"
		git archive "$LEDGER_OLD" | tar -x -C "$TMP/ledger-old"
		# The same benchmark on both, with the options the old ledger has
		# (it has no rollups).
		cp downloads/ledger/flush_bench_test.go "$TMP/ledger-old/downloads/ledger/"
		cat >"$TMP/ledger-old/downloads/ledger/flush_opts_test.go" <<'EOF'
package ledger_test

import (
	"time"

	"github.com/portaldist/portal/downloads/ledger"
)

func flushBenchOptions() ledger.Options {
	return ledger.Options{FlushInterval: time.Hour, Queue: 200000}
}
EOF
		(cd "$TMP/ledger-old" && go test -c -o "$BIN/ledger-old.test" ./downloads/ledger)
		go test -c -o "$BIN/ledger-new.test" ./downloads/ledger
		: >"$RES/ledger-old.txt"
		: >"$RES/ledger-new.txt"
		for i in 1 2 3; do
			for v in old new; do
				(cd "$TMP" && "$BIN/ledger-$v.test" -test.run '^$' -test.bench '^BenchmarkFlush$' \
					-test.benchtime 20000x -test.benchmem) >>"$RES/ledger-$v.txt" 2>&1
			done
		done
		grep -h '^Benchmark' "$RES/ledger-old.txt" "$RES/ledger-new.txt" >&2 || true
	else
		echo "bench.sh: no git history ($LEDGER_OLD): the ledger's before/after is not measured" >&2
	fi
fi

# --- load generator ----------------------------------------------------------
# License keys in turn, so the lookups hit 1,000 different licenses.
cat >"$TMP/license.lua" <<'EOF'
local keys = {}
for line in io.lines(os.getenv("WRK_KEYS")) do keys[#keys + 1] = line end
local accept = os.getenv("WRK_ACCEPT") or "*/*"
local i = 0
setup = function(thread) end
init = function(args) i = math.random(#keys) end
request = function()
	i = i % #keys + 1
	return wrk.format(nil, nil, { ["Authorization"] = "License " .. keys[i], ["Accept"] = accept })
end
EOF
export WRK_KEYS=$SEED/keys WRK_ACCEPT=application/json
LUA=(-s "$TMP/license.lua")

# must URL ARGS...: curl that fails on an HTTP error, printing the body.
must() {
	local out code
	out=$(curl -sS -w '\n%{http_code}' "$@") || die "curl $*"
	code=${out##*$'\n'}
	out=${out%$'\n'*}
	case $code in 2??) printf '%s' "$out" ;; *) die "HTTP $code from curl $*: $out" ;; esac
}

PORTAL_PID=
PORT=
PORTAL_ENV_NOTE="PORTAL_DATA_DIR, PORTAL_LISTEN"
# start_portal BINARY [ENV...]: start the server on the data dir and wait
# until /readyz answers 200; READY_MS is the time from start to ready.
start_portal() {
	local bin=$1 t0 t1
	shift
	PORT=$("$BT" port)
	t0=$(date +%s%N)
	env PORTAL_DATA_DIR="$DATA" PORTAL_LISTEN="127.0.0.1:$PORT" "$@" \
		"$bin" serve >>"$TMP/portal.log" 2>&1 &
	PORTAL_PID=$!
	PIDS+=("$PORTAL_PID")
	wait_ready "http://127.0.0.1:$PORT/readyz" 120 || { tail -n 20 "$TMP/portal.log" >&2; die "portal did not become ready"; }
	t1=$(date +%s%N)
	READY_MS=$(((t1 - t0) / 1000000))
}
# wait_ready URL SECONDS: until URL answers 200.
wait_ready() {
	local deadline=$(($(date +%s) + $2))
	while [ "$(date +%s)" -lt "$deadline" ]; do
		[ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = 200 ] && return 0
		sleep 0.01
	done
	return 1
}
stop_portal() {
	kill "$PORTAL_PID"
	wait "$PORTAL_PID" || true
}

# --- memory and start-up -----------------------------------------------------
log "memory and start-up: portal serve on the seeded catalog"
start_portal "$BIN/portal"
API=http://127.0.0.1:$PORT
UPGRADE="$API/v1/products/$PRODUCT/upgrade?current=$OLDEST&platform=linux&arch=amd64"
[ "$(must -H "Authorization: License $KEY" "$UPGRADE" | "$BT" json version)" = "$LATEST" ] || die "upgrade check did not offer $LATEST"
read -r RSS_START _ ANON_START FILE_START < <("$BT" rss "$PORTAL_PID")
{
	echo "RELEASES=$RELEASES"
	echo "LICENSES=$LICENSES"
	echo "READY_MS=$READY_MS"
	echo "RSS_START_KB=$RSS_START"
	echo "ANON_START_KB=$ANON_START"
	echo "FILE_START_KB=$FILE_START"
	echo "DB_BYTES=$(stat -c %s "$DATA/portal.db")"
	echo "LOAD_SECONDS=${MEM_LOAD%s}"
	echo "LOAD_ARGS=-t$THREADS -c$CONNS -d$MEM_LOAD, licensed upgrade checks"
} >"$RES/memory.env"
wrk -t"$THREADS" -c"$CONNS" -d"$MEM_LOAD" --latency "${LUA[@]}" "$UPGRADE" >"$RES/memory-load.wrk"
read -r RSS_LOAD HWM ANON_LOAD FILE_LOAD < <("$BT" rss "$PORTAL_PID")
{
	echo "RSS_LOAD_KB=$RSS_LOAD"
	echo "ANON_LOAD_KB=$ANON_LOAD"
	echo "FILE_LOAD_KB=$FILE_LOAD"
	echo "HWM_KB=$HWM"
	echo "LOAD_RPS=$(awk '/Requests\/sec/ {printf "%.0f", $2}' "$RES/memory-load.wrk")"
} >>"$RES/memory.env"
stop_portal
cat "$RES/memory.env" >&2

log "heap profile: bench/heapprof (the same server with net/http/pprof) under 10 s of the same load"
PPORT=$("$BT" port)
PORT=$("$BT" port)
env PORTAL_DATA_DIR="$DATA" PORTAL_LISTEN="127.0.0.1:$PORT" "$BIN/heapprof" -pprof "127.0.0.1:$PPORT" >>"$TMP/portal.log" 2>&1 &
HPID=$!
PIDS+=("$HPID")
wait_ready "http://127.0.0.1:$PORT/readyz" 120 || die "heapprof did not become ready"
wrk -t"$THREADS" -c"$CONNS" -d10s "${LUA[@]}" "http://127.0.0.1:$PORT/v1/products/$PRODUCT/upgrade?current=$OLDEST&platform=linux&arch=amd64" >/dev/null
curl -sS -o "$RES/heap.pprof" "http://127.0.0.1:$PPORT/debug/pprof/heap?gc=1"
kill "$HPID"
wait "$HPID" || true
go tool pprof -top -inuse_space -nodecount 25 "$BIN/heapprof" "$RES/heap.pprof" 2>/dev/null | sed -n '1,35p' >"$RES/heap.txt" || true
echo "HEAP_WHAT=\`go tool pprof -top -inuse_space\` of bench/heapprof (app.Open and App.Serve as \`portal serve\`, GOGC=400) on the same catalog after 10 s of licensed upgrade checks, heap.pprof in the raw outputs" >>"$RES/memory.env"
cat "$RES/heap.txt" >&2

# --- interleaved pairs -------------------------------------------------------
# run_wrk FILE CONNECTIONS THREADS wrk-args...: one measured run.
run_wrk() {
	local file=$1 c=$2 t=$3
	shift 3
	wrk -t"$t" -c"$c" -d"$DURATION" --latency "$@" >"$file" 2>&1 || true
}
warm() {
	local c=$1 t=$2
	shift 2
	wrk -t"$t" -c"$c" -d"$WARMUP" "$@" >/dev/null 2>&1 || true
}
# Each comparison: NAME, the reference's wrk arguments, the scenario's.
declare -A REF_ARGS RUN_ARGS CONN_OF
ATTEMPT_OF=()
# compare NAME: PAIRS pairs, reference first, then its verdict; a
# comparison too spread to decide gets one more attempt while the budget
# allows (retry_undecided runs those).
UNDECIDED=()
compare() {
	local name=$1 attempt=${2:-1} i c
	c=${CONN_OF[$name]:-$CONNS}
	local t=$THREADS
	[ "$c" -lt "$t" ] && t=$c
	log "pairs: $name (attempt $attempt)"
	# shellcheck disable=SC2086
	for i in $(seq 1 "$PAIRS"); do
		eval "run_wrk \"$RES/wrk/$name.$attempt.$i.ref.wrk\" $c $t ${REF_ARGS[$name]}"
		eval "run_wrk \"$RES/wrk/$name.$attempt.$i.run.wrk\" $c $t ${RUN_ARGS[$name]}"
	done
	if ! "$BT" pairs "$RES" "$name" >&2; then
		if [ "$attempt" = 1 ]; then
			UNDECIDED+=("$name")
		fi
	fi
}
# pairs_cost N: about how long N comparisons of PAIRS pairs take.
pairs_cost() { echo $(($1 * PAIRS * 2 * (${DURATION%s} + 1))); }
# retry_undecided RESERVE: run each undecided comparison once more while
# that leaves RESERVE seconds, the estimated rest of the run, in the budget.
retry_undecided() {
	local name cost reserve=$1
	cost=$(pairs_cost 1)
	for name in "${UNDECIDED[@]}"; do
		if [ $(($(date +%s) - START + cost + reserve)) -lt "$BUDGET" ]; then
			compare "$name" 2
		else
			echo "bench.sh: $name is too spread to decide, and a rerun would exceed the ${BUDGET}s budget" >&2
		fi
	done
	UNDECIDED=()
}

q() { printf '%q' "$1"; }

# The references that run throughout: the Gin baseline and the
# presign-only service, with serve's GOGC.
BPORT=$("$BT" port)
GOGC=400 "$BIN/baseline" -listen "127.0.0.1:$BPORT" >"$TMP/baseline.log" 2>&1 &
PIDS+=("$!")
"$BT" wait "http://127.0.0.1:$BPORT/" 30
BASE=$(q "http://127.0.0.1:$BPORT/")
warm "$CONNS" "$THREADS" "http://127.0.0.1:$BPORT/"

# --- portal, local store -----------------------------------------------------
log "portal serve, local store"
start_portal "$BIN/portal"
API=http://127.0.0.1:$PORT
UPGRADE="$API/v1/products/$PRODUCT/upgrade?current=$OLDEST&platform=linux&arch=amd64"
FEED="$API/feeds/$PRODUCT/electron/latest-linux.yml"
GRANT="$API/v1/products/$PRODUCT/releases/latest/download?platform=linux&arch=amd64"
[ "$(must -H "Authorization: License $KEY" "$UPGRADE" | "$BT" json version)" = "$LATEST" ] || die "upgrade check did not offer $LATEST"

# nginx: the exact bytes of the upgrade answer and of the feed as static
# files, and the blob's object directory, on a private prefix.
NPORT=$("$BT" port)
mkdir -p "$TMP/nginx/static"
must -H "Authorization: License $KEY" -H 'Accept: application/json' -o "$TMP/nginx/static/upgrade.json" "$UPGRADE" >/dev/null
must -H "Authorization: License $KEY" -o "$TMP/nginx/static/latest-linux.yml" "$FEED" >/dev/null
cp "$TMP/nginx/static/upgrade.json" "$TMP/nginx/static/latest-linux.yml" "$RES/"
cat >"$TMP/nginx/nginx.conf" <<EOF
daemon off;
worker_processes auto;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    default_type application/octet-stream;
    types { application/json json; text/yaml yml; }
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    server {
        listen 127.0.0.1:$NPORT;
        location /static/ { alias $TMP/nginx/static/; }
        location / { root $DATA/objects; }
    }
}
EOF
# Run as root, nginx would switch its workers to "nobody", who cannot read
# the private temporary directory; as another user it stays that user.
if [ "$(id -u)" -eq 0 ]; then
	sed -i '1a user root;' "$TMP/nginx/nginx.conf"
fi
"$NGINX" -e "$TMP/nginx/error.log" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" &
PIDS+=("$!")
"$BT" wait "http://127.0.0.1:$NPORT/static/upgrade.json" 30
NGINX_UPGRADE="http://127.0.0.1:$NPORT/static/upgrade.json"
NGINX_FEED="http://127.0.0.1:$NPORT/static/latest-linux.yml"
cmp -s <(must "$NGINX_UPGRADE") "$TMP/nginx/static/upgrade.json" || die "nginx does not serve the upgrade answer's bytes"
cmp -s <(must "$NGINX_FEED") "$TMP/nginx/static/latest-linux.yml" || die "nginx does not serve the feed's bytes"

LINK=$(must -X POST -H "Authorization: License $KEY" -H 'Content-Type: application/json' \
	-d "{\"product\":\"$PRODUCT\",\"version\":\"$LATEST\",\"filename\":\"$BLOB_FILE\",\"ttl\":3600}" \
	"$API/v1/links" | "$BT" json url)
case $LINK in "$API"/d/*) ;; *) die "unexpected share link $LINK" ;; esac
BLOB_URL=$(must -H "Authorization: License $KEY" -H 'Accept: application/json' "$GRANT" | "$BT" json url)
case $BLOB_URL in "$API"/blobs/*) ;; *) die "unexpected blob URL $BLOB_URL" ;; esac
NGINX_BLOB="http://127.0.0.1:$NPORT/$BLOB_KEY"
must -o /dev/null -r 0-0 "$NGINX_BLOB"
must -o /dev/null -r 0-0 "$BLOB_URL"

warm "$CONNS" "$THREADS" "${LUA[@]}" "$UPGRADE"
warm "$CONNS" "$THREADS" "${LUA[@]}" "$GRANT"
warm "$CONNS" "$THREADS" "$NGINX_UPGRADE"
REF_ARGS[upgrade]="-s $(q "$TMP/license.lua") $BASE"
RUN_ARGS[upgrade]="-s $(q "$TMP/license.lua") $(q "$UPGRADE")"
REF_ARGS[upgrade-nginx]="-s $(q "$TMP/license.lua") $(q "$NGINX_UPGRADE")"
RUN_ARGS[upgrade-nginx]=${RUN_ARGS[upgrade]}
REF_ARGS[feed-nginx]="-s $(q "$TMP/license.lua") -H $(q 'Accept: */*') $(q "$NGINX_FEED")"
RUN_ARGS[feed-nginx]="-s $(q "$TMP/license.lua") -H $(q 'Accept: */*') $(q "$FEED")"
REF_ARGS[grant-local]="-s $(q "$TMP/license.lua") $BASE"
RUN_ARGS[grant-local]="-s $(q "$TMP/license.lua") $(q "$GRANT")"
REF_ARGS[share]=$BASE
RUN_ARGS[share]=$(q "$LINK")
REF_ARGS[blob]=$(q "$NGINX_BLOB")
RUN_ARGS[blob]=$(q "$BLOB_URL")
CONN_OF[blob]=$BLOB_CONNS
for name in upgrade upgrade-nginx feed-nginx grant-local share blob; do
	compare "$name"
done
# The rest: the S3 and etcd comparisons, their start-up and seeding, the report.
retry_undecided $(($(pairs_cost 4) + 40))
stop_portal

# --- portal, S3 store (same catalog; the grant only presigns) ---------------
log "portal serve, S3 store; the presign-only service"
start_portal "$BIN/portal" PORTAL_OBJECTS_BACKEND=s3 PORTAL_OBJECTS_S3_BUCKET="$PORTAL_TEST_S3_BUCKET" \
	PORTAL_OBJECTS_S3_ENDPOINT="$PORTAL_TEST_S3_ENDPOINT" PORTAL_OBJECTS_S3_ACCESS_KEY="$PORTAL_TEST_S3_ACCESS_KEY" \
	PORTAL_OBJECTS_S3_SECRET_KEY="$PORTAL_TEST_S3_SECRET_KEY" PORTAL_OBJECTS_S3_REGION="$PORTAL_TEST_S3_REGION" \
	PORTAL_OBJECTS_S3_PATH_STYLE=true
API=http://127.0.0.1:$PORT
GRANT="$API/v1/products/$PRODUCT/releases/latest/download?platform=linux&arch=amd64"
S3_URL=$(must -H "Authorization: License $KEY" -H 'Accept: application/json' "$GRANT" | "$BT" json url)
case $S3_URL in "$PORTAL_TEST_S3_ENDPOINT"/*X-Amz-Signature=*) ;; *) die "unexpected S3 URL $S3_URL" ;; esac
SPORT=$("$BT" port)
GOGC=400 "$BIN/presignonly" -listen "127.0.0.1:$SPORT" -key "$BLOB_KEY" >"$TMP/presignonly.log" 2>&1 &
PIDS+=("$!")
"$BT" wait "http://127.0.0.1:$SPORT/" 30
P_URL=$(must "http://127.0.0.1:$SPORT/" | "$BT" json url)
case $P_URL in "$PORTAL_TEST_S3_ENDPOINT"/*X-Amz-Signature=*) ;; *) die "unexpected presign-only URL $P_URL" ;; esac
warm "$CONNS" "$THREADS" "${LUA[@]}" "$GRANT"
warm "$CONNS" "$THREADS" "http://127.0.0.1:$SPORT/"
REF_ARGS[grant-s3]="-s $(q "$TMP/license.lua") $BASE"
RUN_ARGS[grant-s3]="-s $(q "$TMP/license.lua") $(q "$GRANT")"
REF_ARGS[grant-s3-presign]="-s $(q "$TMP/license.lua") $(q "http://127.0.0.1:$SPORT/")"
RUN_ARGS[grant-s3-presign]=${RUN_ARGS[grant-s3]}
for name in grant-s3 grant-s3-presign; do
	compare "$name"
done
retry_undecided $(($(pairs_cost 2) + 30))
stop_portal

# --- portal on an etcd cluster ----------------------------------------------
# The upgrade check and the grant with store.backend=etcd: a 3-member
# cluster on 127.0.0.1 (bench/etcdcluster: etcd's own server embedded
# through internal/etcdtest, no fsync), a smaller catalog seeded into it,
# objects local with objects.local.shared (one machine). The etcd revision
# before and after the grant's pairs counts the store's write transactions.
ETCD_NOTE=
if [ -x "$BIN/etcdcluster" ]; then
	log "etcd: a 3-member cluster, $ETCD_RELEASES releases x 4 builds and $ETCD_LICENSES licenses seeded into it"
	"$BIN/etcdcluster" -dir "$TMP/etcd" >"$TMP/etcd.endpoints" 2>"$TMP/etcd.log" &
	PIDS+=("$!")
	for _ in $(seq 1 300); do
		[ -s "$TMP/etcd.endpoints" ] && break
		sleep 0.1
	done
	EP=$(head -n1 "$TMP/etcd.endpoints")
	[ -n "$EP" ] || { cat "$TMP/etcd.log" >&2; die "the etcd cluster did not start"; }
	ETCD_ENV=(PORTAL_STORE_BACKEND=etcd PORTAL_STORE_ETCD_ENDPOINTS="$EP" PORTAL_OBJECTS_LOCAL_SHARED=true)
	env "${ETCD_ENV[@]}" "$BIN/seed" -data-dir "$TMP/etcd-data" -out "$TMP/etcd-seed" \
		-releases "$ETCD_RELEASES" -licenses "$ETCD_LICENSES" -blob-size 1048576 2>&1 | tail -n1 >&2
	cp "$TMP/etcd-seed/seed.json" "$RES/etcd-seed.json"
	DATA_SAVED=$DATA
	DATA=$TMP/etcd-data
	start_portal "$BIN/portal" "${ETCD_ENV[@]}"
	DATA=$DATA_SAVED
	API=http://127.0.0.1:$PORT
	EOLDEST=$("$BT" json oldest <"$TMP/etcd-seed/seed.json")
	ELATEST=$("$BT" json latest <"$TMP/etcd-seed/seed.json")
	EKEY=$(head -n1 "$TMP/etcd-seed/keys")
	UPGRADE="$API/v1/products/$PRODUCT/upgrade?current=$EOLDEST&platform=linux&arch=amd64"
	GRANT="$API/v1/products/$PRODUCT/releases/latest/download?platform=linux&arch=amd64"
	[ "$(must -H "Authorization: License $EKEY" "$UPGRADE" | "$BT" json version)" = "$ELATEST" ] || die "etcd: upgrade check did not offer $ELATEST"
	must -o /dev/null -H "Authorization: License $EKEY" -H 'Accept: application/json' "$GRANT"
	WRK_KEYS=$TMP/etcd-seed/keys warm "$CONNS" "$THREADS" "${LUA[@]}" "$UPGRADE"
	WRK_KEYS=$TMP/etcd-seed/keys warm "$CONNS" "$THREADS" "${LUA[@]}" "$GRANT"
	REF_ARGS[etcd-upgrade]="-s $(q "$TMP/license.lua") $BASE"
	RUN_ARGS[etcd-upgrade]="-s $(q "$TMP/license.lua") $(q "$UPGRADE")"
	REF_ARGS[etcd-grant]="-s $(q "$TMP/license.lua") $BASE"
	RUN_ARGS[etcd-grant]="-s $(q "$TMP/license.lua") $(q "$GRANT")"
	revision() { curl -s -X POST "${EP%%,*}/v3/kv/range" -d '{"key":"AA=="}' | sed -n 's/.*"revision":"\([0-9]*\)".*/\1/p'; }
	export WRK_KEYS=$TMP/etcd-seed/keys
	compare etcd-upgrade
	sleep 1
	REV0=$(revision)
	T0=$(date +%s)
	compare etcd-grant
	sleep 2 # the last flush
	REV1=$(revision)
	T1=$(date +%s)
	retry_undecided 10
	export WRK_KEYS=$SEED/keys
	stop_portal
	GRANTS=$(cat "$RES"/wrk/etcd-grant.1.*.run.wrk | awk '/requests in/ {n += $1} END {print n + 0}')
	if [ -n "$REV0" ] && [ -n "$REV1" ] && [ "$GRANTS" -gt 0 ]; then
		ETCD_NOTE="3-member etcd cluster on 127.0.0.1 (bench/etcdcluster: etcd v3.7 embedded through internal/etcdtest, no fsync), catalog of $ETCD_RELEASES releases x 4 builds and $ETCD_LICENSES licenses seeded into it (1,000 of their keys in turn), local objects with objects.local.shared=true. During the grant's pairs ($((T1 - T0)) s, $GRANTS grants in the scenario runs) the store's revision went from $REV0 to $REV1: $((REV1 - REV0)) write transactions, $(awk -v r=$((REV1 - REV0)) -v g="$GRANTS" 'BEGIN {printf "%.4f", r / g}') a grant ($(awk -v r=$((REV1 - REV0)) -v t=$((T1 - T0)) 'BEGIN {printf "%.1f", r / t}') a second): the ledger batches grants, quota counts and rollups into transactions of up to 128 keys."
	fi
else
	ETCD_NOTE="bench/etcdcluster was not built (no store/etcd or internal/etcdtest in this tree)."
fi

# --- report ------------------------------------------------------------------
log "report"
LOAD_AFTER=$(cat /proc/loadavg)
{
	echo "DATE=$(date -u +%Y-%m-%dT%H:%MZ)"
	echo "COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
	echo "CORES=$(nproc)"
	echo "MEM=$(free -h | awk '/^Mem:/ {print $2}')"
	echo "CPU=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
	echo "GO=$(go version)"
	echo "WRK=$(wrk -v 2>&1 | head -n1 | awk '{print $1, $2}')"
	echo "NGINX=$("$NGINX" -v 2>&1)"
	echo "WRK_ARGS=-t$THREADS -c$CONNS -d$DURATION --latency (servers warmed up once for $WARMUP)"
	echo "BLOB_WRK_ARGS=-t1 -c$BLOB_CONNS -d$DURATION --latency"
	echo "PAIRS=$PAIRS"
	echo "GOGC=400"
	echo "PORTAL_ENV=$PORTAL_ENV_NOTE"
	echo "LOAD_BEFORE=$LOAD_BEFORE"
	echo "LOAD_AFTER=$LOAD_AFTER"
	echo "SEED_CACHE=$SEED_NOTE"
	echo "LEDGER_OLD=$LEDGER_OLD"
	echo "ETCD=$ETCD_NOTE"
	echo "RAW=$RAW"
	echo "COMMAND=$(env | grep -E '^BENCH_' | sort | tr '\n' ' ')scripts/bench.sh"
	echo "SECONDS=$(($(date +%s) - START))"
} >"$RES/machine.env"
[ -f bench/findings.md ] && cp bench/findings.md "$RES/findings.md"
rm -rf "$RAW"
mkdir -p "$RAW" "$(dirname "$OUT_MD")"
cp -a "$RES/." "$RAW/"
"$BT" report "$RAW" "$OUT_MD" >/dev/null
echo "bench.sh: wrote $OUT_MD and $RAW in $(($(date +%s) - START)) s" >&2
