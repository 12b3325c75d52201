#!/bin/bash
# How a long-lived claude's memory grows over requests (the reason for `max_process_rss_mib`):
# one hub with one claude process that is never recycled, against the fake Anthropic server,
# sequential requests with 2 KB prompts, claude's RSS and scratch directory every 100.
# With RECYCLE=default the hub keeps its default recycling, and the processes it started and
# retired (by reason) are printed at the end.
#
# Needs: cargo build --release -p llm-mcp-hub && cargo build -p fake-models &&
#        npm ci --prefix tests/cli
# Usage: [RECYCLE=default] tests/bench/claude-memory.sh [REQUESTS]   (default 1000)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
requests=${1:-1000}
work=$(mktemp -d "$root/target/claude-memory.XXXXXX")
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"

# shellcheck source=tests/bench/real-claude-env.sh
source "$root/tests/bench/real-claude-env.sh"
port=$(free_port)
recycling=$'max_requests_per_process = 1000000\nmax_process_rss_mib = 0'
if [ "${RECYCLE:-}" = default ]; then recycling=""; fi
start_hub "$port" "warm_processes = 1
max_idle = 1
max_concurrency = 1
$recycling"
until curl -sf "http://127.0.0.1:$port/healthz" > /dev/null; do sleep 0.2; done

rss_mib() {
  local total=0 pid kib
  for pid in $(pgrep -f "$root/tests/cli/node_modules/.bin/claude" || true); do
    kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    total=$((total + kib))
  done
  echo $((total / 1024))
}
prompt=$(head -c 2000 /dev/zero | tr '\0' x)
ask() {
  curl -sf "http://127.0.0.1:$port/v1/chat/completions" -H 'content-type: application/json' \
    -d "{\"model\":\"claude\",\"messages\":[{\"role\":\"user\",\"content\":\"request $1 $prompt\"}]}" > /dev/null
}
# The first request waits for the process's start-up; memory is counted from after it.
ask 1
scratch_kib() { du -sk scratch | cut -f1; }
echo "after 1 request: claude RSS $(rss_mib) MiB, scratch $(scratch_kib) KiB"
for ((i = 2; i <= requests; i++)); do
  ask "$i"
  if ((i % 100 == 0)); then
    echo "after $i requests: claude RSS $(rss_mib) MiB, scratch $(scratch_kib) KiB"
  fi
done
curl -sf "http://127.0.0.1:$port/metrics" | grep -E '^llm_mcp_hub_process_(spawns|retired)_total' || true
