#!/usr/bin/env bash
# Counts the instructions bench_server executes per request under callgrind, for the plain
# handler and each annotated case, and prints a markdown table. Instruction counts do not
# depend on other load on the machine, so they compare the cases where requests/s from
# http.sh are too noisy to.
#
# Usage: benchmarks/callgrind.sh [options]
#   --store moka|redis  the store behind the annotated routes (default: moka)
#   --seconds N         length of the wrk load per case (default: 8)
#   --server BINARY     a bench_server binary to profile instead of building this workspace's
#   --keep DIR          keep the callgrind output files in DIR for callgrind_annotate
#
# The server is built in release mode with debug symbols into target/callgrind. Each case
# runs in its own server process under `valgrind --tool=callgrind`, loaded by one wrk thread
# with 16 connections. Instructions per request is the process's total divided by the
# requests wrk completed, so start-up (about 0.6 million instructions) is included and
# negligible.
#
# NOTE: valgrind 3.19 hides the CPU's SHA extensions, so sha2 falls back to its software
# SHA-256 here, at about 3,500 instructions per 64-byte block. A native run uses the SHA
# instructions instead, so the table also gives each count without sha2's block function.
set -euo pipefail

store=moka
seconds=8
server=""
keep=""

while [ $# -gt 0 ]; do
  case "$1" in
    --store) store="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --server) server="$2"; shift 2 ;;
    --keep) keep="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/.."
root=$(pwd)
for tool in valgrind wrk; do
  command -v "$tool" >/dev/null || { echo "$tool not found on PATH" >&2; exit 1; }
done

if [ -z "$server" ]; then
  echo "building bench_server with debug symbols" >&2
  CARGO_TARGET_DIR="$root/target/callgrind" CARGO_PROFILE_RELEASE_DEBUG=true \
    cargo build --release --quiet -p idempotent-benchmarks --features redis --bin bench_server
  server="$root/target/callgrind/release/bench_server"
fi

work_dir=${keep:-$(mktemp -d)}
mkdir -p "$work_dir"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
redis_prefix="idempotent-callgrind-$stamp-$$:"
port=38618
server_pid=""

cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  if [ "$store" = redis ] && command -v redis-cli >/dev/null; then
    redis-cli -h 127.0.0.1 -p 6379 --scan --pattern "${redis_prefix}*" \
      | awk '{ print "UNLINK " $0 }' \
      | redis-cli -h 127.0.0.1 -p 6379 --pipe >/dev/null || true
  fi
  if [ -z "$keep" ]; then rm -rf "$work_dir"; fi
}
trap cleanup EXIT

# Profiles one case; prints its name, requests, instructions per request and those spent in
# sha2's block function per request, tab-separated.
profile() {
  local name=$1 path=$2 mode=$3 output="$work_dir/callgrind.$1"
  valgrind --tool=callgrind --callgrind-out-file="$output" "$server" \
    --addr "127.0.0.1:$port" --store "$store" --redis-prefix "$redis_prefix" \
    >"$output.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 300); do
    grep -q '^listening on' "$output.log" && break
    sleep 0.1
  done
  grep -q '^listening on' "$output.log" || {
    echo "bench_server did not start under valgrind:" >&2
    cat "$output.log" >&2
    exit 1
  }
  KEY_MODE=$mode RUN_ID="callgrind-$stamp-$name" wrk -t1 -c16 -d"${seconds}s" \
    -s "$root/benchmarks/wrk/post.lua" "http://127.0.0.1:$port$path" >"$output.wrk" 2>&1
  kill -TERM "$server_pid"
  wait "$server_pid" || true
  server_pid=""
  local requests instructions sha
  requests=$(grep -o 'requests=[0-9]*' "$output.wrk" | cut -d= -f2)
  instructions=$(grep -o '^summary: [0-9]*' "$output" | cut -d' ' -f2)
  sha=$(callgrind_annotate --inclusive=yes "$output" 2>/dev/null \
    | awk '/sha2::sha256::compress256 \[/ { gsub(",", "", $1); print $1; exit }')
  printf '%s\t%s\t%s\t%s\n' "$name" "$requests" $((instructions / requests)) \
    $((${sha:-0} / requests))
}

results=$(
  profile plain /plain none
  profile no-key /idempotent none
  profile replay /idempotent replay
  profile new-key /idempotent new
)

echo "| case ($store store) | requests | instructions/request | plain / case" \
  "| without SHA-256 | plain / case without SHA-256 |"
echo "| --- | --- | --- | --- | --- | --- |"
awk -F'\t' '
  $1 == "plain" { plain = $3; plain_without = $3 - $4 }
  { printf "| %s | %d | %d | %.3f | %d | %.3f |\n", $1, $2, $3, plain / $3, $3 - $4,
      plain_without / ($3 - $4) }
' <<<"$results"
