#!/bin/bash
# Health-probe latency while the CLIs keep the CPU busy (the reason for `process_nice`): one hub
# with N long-lived claude processes against the fake Anthropic server, kept busy by N clients
# sending requests back to back; meanwhile `GET /healthz` every 50 ms, timed by curl. The hub
# runs once per given `process_nice` in each round, rounds interleaved. Prints one line per run:
# the probes' p50 / p99 / max and the chat requests answered per second.
#
# Needs: cargo build --release -p llm-mcp-hub && cargo build -p fake-models &&
#        npm ci --prefix tests/cli
# Usage: tests/bench/probe-under-load.sh [ROUNDS] [N] [NICE...]   (default: 3 rounds, N=8, nice 0 5)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
rounds=${1:-3}
n=${2:-8}
shift 2 2>/dev/null || shift $#
nices=("$@")
[ ${#nices[@]} -gt 0 ] || nices=(0 5)
work=$(mktemp -d "$root/target/probe-under-load.XXXXXX")
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"

# shellcheck source=tests/bench/real-claude-env.sh
source "$root/tests/bench/real-claude-env.sh"

idle() {
  curl -sf "http://127.0.0.1:$1/v1/providers" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["pool"]["idle"])' 2>/dev/null ||
    echo 0
}

run() {
  local nice=$1 port hub clients=() i
  port=$(free_port)
  start_hub "$port" "warm_processes = $n
max_idle = $n
max_concurrency = $n
process_nice = $nice"
  hub=$hub_pid
  until [ "$(idle "$port")" -ge "$n" ]; do sleep 0.5; done
  rm -f answered.*
  for ((i = 0; i < n; i++)); do
    (while :; do
      curl -sf "http://127.0.0.1:$port/v1/chat/completions" -H 'content-type: application/json' \
        -d "{\"model\":\"claude\",\"messages\":[{\"role\":\"user\",\"content\":\"client $i\"}]}" \
        > /dev/null && echo >> "answered.$i"
    done) &
    clients+=($!)
  done
  sleep 3
  local before after
  before=$(cat answered.* 2>/dev/null | wc -l || true)
  local start=$SECONDS
  for ((i = 0; i < 200; i++)); do
    curl -sf -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$port/healthz" >> probes.txt
    sleep 0.05
  done
  after=$(cat answered.* | wc -l)
  local secs=$((SECONDS - start))
  kill "${clients[@]}" 2>/dev/null || true
  wait "${clients[@]}" 2>/dev/null || true
  kill "$hub"
  wait "$hub" 2>/dev/null || true
  python3 - "$nice" "$((after - before))" "$secs" <<'PY'
import sys
nice, answered, secs = sys.argv[1], int(sys.argv[2]), max(int(sys.argv[3]), 1)
t = sorted(float(x) * 1e3 for x in open("probes.txt"))
q = lambda p: t[min(len(t) - 1, int(p * len(t)))]
print(f"process_nice {nice}: /healthz p50 {q(0.5):.2f} ms p99 {q(0.99):.2f} ms max {t[-1]:.2f} ms "
      f"({len(t)} probes); chat {answered / secs:.1f} req/s")
PY
  rm -f probes.txt
}

for ((r = 1; r <= rounds; r++)); do
  for nice in "${nices[@]}"; do
    run "$nice"
  done
done
