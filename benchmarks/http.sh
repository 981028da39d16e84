#!/usr/bin/env bash
# Loads bench_server with wrk over loopback and prints a markdown table of requests/s, p50 and
# p99 latency, and each case's ratio to the plain handler measured next to it.
#
# Usage: benchmarks/http.sh [options]
#   --stores LIST       stores to measure, space-separated: moka redis (default: both)
#   --cases LIST        cases to measure (default: new replay none)
#                       new, replay, none: the trivial JSON handler with a new key per request,
#                         one key for all requests, or no key
#                       cpu-new, cpu-replay: a handler that spins 1 ms on the CPU
#                       sleep-new, sleep-replay: a handler that sleeps 1 ms
#   --duration SECONDS  length of each wrk run (default: 5)
#   --rounds N          baseline/case pairs per case (default: 6)
#   --threads N         wrk threads (default: 2)
#   --connections N     wrk connections (default: 64)
#   --no-pin            do not pin the server to CPU 0 and wrk to CPU 1
#   --port PORT         the server's port on 127.0.0.1 (default: 38517)
#   --out FILE          where the raw results go (default: target/http-bench/results-TIME.tsv)
#   --server BINARY     a bench_server binary to run instead of building this workspace's
#   --quiet-wait SECONDS  before each pair, wait up to this long for a second in which less
#                       than 10% of the machine's CPU time is busy (default: 0, no wait)
#
# Each round runs the plain handler and the annotated one back to back, in alternating order
# (plain first in odd rounds, annotated first in even rounds), so that a slow drift of the
# machine's speed affects both sides alike. The ratio of a pair is annotated requests/s over
# plain requests/s; the table gives the median of the pairs and their range. The server's CPU
# time per request is summed over its threads from /proc/PID/task/*/schedstat, and depends
# less on other load on the machine than requests/s does. The CPU ratio is plain CPU per
# request over annotated CPU per request: the throughput ratio to expect when the server is
# CPU-bound.
#
# Requirements: wrk and taskset on PATH; for the Redis store, redis-cli and a Redis server on
# 127.0.0.1:6379. All traffic stays on 127.0.0.1. The Redis keys are written under a prefix
# unique to this run, and are deleted after each Redis case and when the script exits.
set -euo pipefail

stores="moka redis"
cases="new replay none"
duration=5
rounds=6
threads=2
connections=64
pin=1
port=38517
out=""
server=""
quiet_wait=0

while [ $# -gt 0 ]; do
  case "$1" in
    --stores) stores="$2"; shift 2 ;;
    --cases) cases="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --connections) connections="$2"; shift 2 ;;
    --no-pin) pin=0; shift ;;
    --port) port="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --server) server="$2"; shift 2 ;;
    --quiet-wait) quiet_wait="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/.."
root=$(pwd)
script="$root/benchmarks/wrk/post.lua"
base_url="http://127.0.0.1:$port"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=${out:-"$root/target/http-bench/results-$stamp.tsv"}
mkdir -p "$(dirname "$out")"
log_dir=$(mktemp -d)
redis_prefix="idempotent-bench-$stamp-$$:"

for tool in wrk taskset curl python3; do
  command -v "$tool" >/dev/null || { echo "$tool not found on PATH" >&2; exit 1; }
done

# Prints the plain path, the annotated path and the key mode of a case.
case_spec() {
  case "$1" in
    new) echo "/plain /idempotent new" ;;
    replay) echo "/plain /idempotent replay" ;;
    none) echo "/plain /idempotent none" ;;
    cpu-new) echo "/plain/cpu /idempotent/cpu new" ;;
    cpu-replay) echo "/plain/cpu /idempotent/cpu replay" ;;
    sleep-new) echo "/plain/sleep /idempotent/sleep new" ;;
    sleep-replay) echo "/plain/sleep /idempotent/sleep replay" ;;
    *) echo "unknown case: $1" >&2; return 1 ;;
  esac
}
for case_name in $cases; do case_spec "$case_name" >/dev/null; done

server_pid=""

delete_redis_keys() {
  command -v redis-cli >/dev/null || return 0
  redis-cli -h 127.0.0.1 -p 6379 --scan --pattern "${redis_prefix}*" \
    | awk '{ print "UNLINK " $0 }' \
    | redis-cli -h 127.0.0.1 -p 6379 --pipe >/dev/null
}

stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}

cleanup() {
  stop_server
  if [[ " $stores " == *" redis "* ]]; then delete_redis_keys || true; fi
  rm -rf "$log_dir"
}
trap cleanup EXIT

# Prints the time that all threads of the server have run on a CPU and have waited for one
# (runnable but not running, because other processes held the CPU), in nanoseconds.
server_schedstat() {
  cat /proc/"$server_pid"/task/*/schedstat \
    | awk '{ run += $1; wait += $2 } END { printf "%d %d\n", run, wait }'
}

if [ -z "$server" ]; then
  echo "building bench_server" >&2
  cargo build --release --quiet -p idempotent-benchmarks --features redis --bin bench_server
  server="$root/target/release/bench_server"
fi

if [ "$pin" = 1 ]; then
  server_cmd=(taskset -c 0 "$server")
  wrk_cmd=(taskset -c 1 wrk)
else
  server_cmd=("$server")
  wrk_cmd=(wrk)
fi

start_server() {
  local store=$1
  "${server_cmd[@]}" --addr "127.0.0.1:$port" --store "$store" --redis-prefix "$redis_prefix" \
    >"$log_dir/server-$store.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 100); do
    grep -q '^listening on' "$log_dir/server-$store.log" && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "bench_server --store $store did not start:" >&2
  cat "$log_dir/server-$store.log" >&2
  exit 1
}

# Checks that the annotated route stores and replays, so that a broken build does not produce
# numbers.
check_replay() {
  local key="check-$stamp-$1" body='{"sku":"sku-000123","quantity":2}' first second
  first=$(curl -sS -i -X POST -H 'content-type: application/json' -H "idempotency-key: $key" \
    -d "$body" "$base_url/idempotent")
  second=$(curl -sS -i -X POST -H 'content-type: application/json' -H "idempotency-key: $key" \
    -d "$body" "$base_url/idempotent")
  if ! grep -qi '^idempotent-replayed: true' <<<"$second" || [ "$(tail -1 <<<"$first")" != "$(tail -1 <<<"$second")" ]; then
    echo "the $1 store did not replay a stored response; first and second response:" >&2
    printf '%s\n\n%s\n' "$first" "$second" >&2
    exit 1
  fi
}

# Prints the share of all CPUs' time that was busy during one second, from /proc/stat.
machine_busy() {
  local before after
  before=$(head -1 /proc/stat)
  sleep 1
  after=$(head -1 /proc/stat)
  awk -v before="$before" -v after="$after" 'BEGIN {
    split(before, b, " ")
    split(after, a, " ")
    for (i = 2; i <= 9; i++) total += a[i] - b[i]
    idle = a[5] - b[5] + a[6] - b[6]
    printf "%.2f\n", (total - idle) / total
  }'
}

# Waits up to --quiet-wait seconds for the other processes on the machine to go quiet.
wait_for_quiet() {
  [ "$quiet_wait" -gt 0 ] || return 0
  local deadline=$((SECONDS + quiet_wait)) busy
  while [ "$SECONDS" -lt "$deadline" ]; do
    busy=$(machine_busy)
    if awk -v busy="$busy" 'BEGIN { exit !(busy < 0.10) }'; then return 0; fi
  done
  echo "the machine is still $busy busy after ${quiet_wait}s; measuring anyway" >&2
}

# Runs wrk once and prints one tab-separated line of results. The fields are requests/s, p50 µs,
# p99 µs, errors, non-2xx, server CPU (cores busy), server CPU µs per request, the share of the
# run the server waited for a CPU, and wrk CPU (cores busy).
run_wrk() {
  local path=$1 mode=$2 seconds=$3
  local before after output result
  before=$(server_schedstat)
  # Runs happen in subshells, so a counter would not survive between them: the clock makes
  # each run's keys unique instead.
  output=$(KEY_MODE=$mode RUN_ID="$stamp-$$-$(date +%s%N)" /usr/bin/time -f 'TIME %e %U %S' \
    "${wrk_cmd[@]}" -t "$threads" -c "$connections" -d "${seconds}s" -s "$script" \
    "$base_url$path" 2>&1)
  after=$(server_schedstat)
  result=$(grep '^RESULT' <<<"$output") || { echo "wrk failed:" >&2; echo "$output" >&2; exit 1; }
  local time_line
  time_line=$(grep '^TIME' <<<"$output")
  awk -v result="$result" -v time_line="$time_line" -v before="$before" -v after="$after" 'BEGIN {
      split(before, b, " ")
      split(after, a, " ")
      cpu_ns = a[1] - b[1]
      wait_ns = a[2] - b[2]
      n = split(result, fields, /[ =]/)
      for (i = 2; i < n; i += 2) value[fields[i]] = fields[i + 1]
      split(time_line, t, " ")
      seconds = value["duration_us"] / 1e6
      printf "%.0f\t%d\t%d\t%d\t%d\t%.2f\t%.2f\t%.3f\t%.2f\n", value["requests"] / seconds,
        value["p50_us"], value["p99_us"], value["errors"], value["non2xx"],
        cpu_ns / 1e9 / seconds, cpu_ns / 1e3 / value["requests"], wait_ns / 1e9 / seconds,
        (t[3] + t[4]) / t[2]
    }'
}

printf 'store\tcase\tround\tside\trequests_per_s\tp50_us\tp99_us\terrors\tnon2xx\tserver_cpu\tserver_cpu_us_per_request\tserver_wait\twrk_cpu\n' >"$out"

for store in $stores; do
  start_server "$store"
  check_replay "$store"
  echo "warming up the $store store" >&2
  run_wrk /idempotent new 5 >/dev/null
  run_wrk /plain none 2 >/dev/null
  for case_name in $cases; do
    read -r plain_path annotated_path mode < <(case_spec "$case_name")
    for round in $(seq 1 "$rounds"); do
      if [ $((round % 2)) = 1 ]; then order="plain annotated"; else order="annotated plain"; fi
      wait_for_quiet
      for side in $order; do
        if [ "$side" = plain ]; then path=$plain_path; else path=$annotated_path; fi
        line=$(run_wrk "$path" "$mode" "$duration")
        printf '%s\t%s\t%s\t%s\t%s\n' "$store" "$case_name" "$round" "$side" "$line" >>"$out"
        echo "$store $case_name round $round $side: $(cut -f1 <<<"$line") req/s" >&2
      done
    done
    if [ "$store" = redis ]; then delete_redis_keys; fi
  done
  grep -h '^VmHWM' "/proc/$server_pid/status" | sed "s/^/$store server /" >&2
  stop_server
done

echo "raw results: $out" >&2
python3 - "$out" "$pin" "$threads" "$connections" "$duration" <<'PYTHON'
import csv
import statistics
import sys

# A run counts as quiet when the server waited for a CPU during less than this share of it.
QUIET_WAIT = 0.05

path, pin, threads, connections, duration = sys.argv[1:]
rows = list(csv.DictReader(open(path), delimiter="\t"))


def spread(values, digits=0):
    """Formats the median and the range of values, or a dash when there are none."""
    if not values:
        return "–"
    values = sorted(values)
    form = f"{{:.{digits}f}}"
    median = form.format(statistics.median(values))
    return f"{median} ({form.format(values[0])}–{form.format(values[-1])})"


def pairs(group):
    """Returns the rounds that have both sides, as {side: row}."""
    by_round = {}
    for row in group:
        by_round.setdefault(row["round"], {})[row["side"]] = row
    return [pair for pair in by_round.values() if len(pair) == 2]


def ratio(pair, field):
    return float(pair["annotated"][field]) / float(pair["plain"][field])


def is_quiet(pair):
    return all(float(row["server_wait"]) < QUIET_WAIT for row in pair.values())


print(f"wrk -t{threads} -c{connections} -d{duration}s, "
      + ("server on CPU 0, wrk on CPU 1" if pin == "1" else "server and wrk unpinned")
      + "; median of the rounds (min–max). Quiet pairs: both runs had the server wait for a "
      + f"CPU less than {QUIET_WAIT:.0%} of the time.\n")
print("| store | case | plain req/s | annotated req/s | ratio, all pairs | ratio, quiet pairs "
      "| p50 µs plain / annotated | p99 µs plain / annotated "
      "| server CPU µs/request plain / annotated | CPU ratio | non-2xx |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
cases = []
for row in rows:
    if (row["store"], row["case"]) not in cases:
        cases.append((row["store"], row["case"]))
for store, case in cases:
    group = [row for row in rows if row["store"] == store and row["case"] == case]
    rounds = pairs(group)
    quiet = [pair for pair in rounds if is_quiet(pair)]

    def values(side, field):
        return [float(row[field]) for row in group if row["side"] == side]

    def medians(field, digits=0):
        plain = statistics.median(values("plain", field))
        annotated = statistics.median(values("annotated", field))
        return f"{plain:.{digits}f} / {annotated:.{digits}f}"

    throughput = [ratio(pair, "requests_per_s") for pair in rounds]
    quiet_throughput = [ratio(pair, "requests_per_s") for pair in quiet]
    cpu = [1 / ratio(pair, "server_cpu_us_per_request") for pair in rounds]
    failed = sum(int(row["non2xx"]) + int(row["errors"]) for row in group)
    print(f"| {store} | {case} | {spread(values('plain', 'requests_per_s'))} "
          f"| {spread(values('annotated', 'requests_per_s'))} "
          f"| {spread(throughput, 3)} | {spread(quiet_throughput, 3)}, n = {len(quiet)} "
          f"| {medians('p50_us')} | {medians('p99_us')} "
          f"| {medians('server_cpu_us_per_request', 1)} | {spread(cpu, 3)} | {failed} |")
PYTHON
