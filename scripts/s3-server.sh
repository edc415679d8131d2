#!/usr/bin/env bash
# A throwaway S3-compatible server (versitygw over a local directory) for the
# S3 backend tests.
#
#   scripts/s3-server.sh start DIR   start it; stdout is ONLY `export` lines
#                                    (PORTAL_TEST_S3_*), meant for eval
#   scripts/s3-server.sh stop DIR    stop the server started with DIR
#
# DIR holds the data (DIR/root), the log (DIR/log) and the PID (DIR/pid).
# The server listens on a free 127.0.0.1 port with random credentials.
set -euo pipefail

VERSITYGW_VERSION=v1.8.0
BUCKET=portal-test
REGION=us-east-1

die() { echo "s3-server.sh: $*" >&2; exit 1; }

usage() { die "usage: $0 start|stop DIR"; }

free_port() {
	# Ask the kernel for a free port; the tiny race until versitygw binds it
	# is acceptable for a test server.
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()' 2>/dev/null && return
	local p
	for _ in $(seq 1 50); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
	done
	die "no free port found"
}

rand_hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }

start() {
	local dir=$1
	command -v curl >/dev/null || die "curl is required"
	mkdir -p "$dir/root"
	dir=$(cd "$dir" && pwd)
	if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
		die "a server is already running for $dir (pid $(cat "$dir/pid"))"
	fi

	local gobin
	gobin="$(go env GOPATH)/bin"
	export PATH="$gobin:$PATH"
	if ! command -v versitygw >/dev/null; then
		echo "s3-server.sh: installing versitygw $VERSITYGW_VERSION (first run takes a while)" >&2
		GOFLAGS= go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION" >&2 \
			|| die "go install versitygw failed"
	fi

	local port access secret endpoint
	port=$(free_port)
	access="portal$(rand_hex 8)"
	secret=$(rand_hex 24)
	endpoint="http://127.0.0.1:$port"

	ROOT_ACCESS_KEY=$access ROOT_SECRET_KEY=$secret \
		nohup versitygw --port "127.0.0.1:$port" --health /health posix "$dir/root" \
		>"$dir/log" 2>&1 </dev/null &
	echo $! >"$dir/pid"

	local ok=
	for _ in $(seq 1 300); do # 30 s
		if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
			tail -n 20 "$dir/log" >&2 || true
			die "versitygw exited during start-up (log: $dir/log)"
		fi
		if curl -fsS -o /dev/null "$endpoint/health" 2>/dev/null; then ok=1; break; fi
		sleep 0.1
	done
	if [ -z "$ok" ]; then
		stop "$dir"
		die "versitygw did not answer $endpoint/health within 30 s (log: $dir/log)"
	fi

	# Create the bucket with a SigV4-signed request (curl >= 7.75).
	local code
	code=$(curl -sS -o "$dir/mb.out" -w '%{http_code}' -X PUT \
		--aws-sigv4 "aws:amz:$REGION:s3" --user "$access:$secret" \
		-H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
		"$endpoint/$BUCKET") || code=000
	case $code in
	200 | 409) rm -f "$dir/mb.out" ;;
	*)
		cat "$dir/mb.out" >&2 || true
		stop "$dir"
		die "creating bucket $BUCKET failed (HTTP $code)"
		;;
	esac

	cat <<EOF
export PORTAL_TEST_S3_ENDPOINT=$endpoint
export PORTAL_TEST_S3_ACCESS_KEY=$access
export PORTAL_TEST_S3_SECRET_KEY=$secret
export PORTAL_TEST_S3_BUCKET=$BUCKET
export PORTAL_TEST_S3_REGION=$REGION
EOF
}

stop() {
	local dir=$1 pid
	[ -f "$dir/pid" ] || return 0
	pid=$(cat "$dir/pid")
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 1 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$dir/pid"
}

[ $# -eq 2 ] || usage
case $1 in
start) start "$2" ;;
stop) stop "$2" ;;
*) usage ;;
esac
