#!/bin/bash
# Interleaved A/B of two hub binaries on the fake-CLI scenario at 16 clients: the two runs of a
# round follow each other, so both see the same machine. Prints one line per run.
#
# Usage: tests/bench/ab.sh ROUNDS HUB_A HUB_B [extra hub-bench arguments…]
# Needs: cargo build --release -p bench (hub-bench and fake-claude in target/release).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
rounds=$1 a=$2 b=$3
shift 3
for ((i = 1; i <= rounds; i++)); do
  for hub in "$a" "$b"; do
    out=$("$root/target/release/hub-bench" --hub "$hub" --skip ttft,real,cpu,router,tools \
      --levels 16 --measure-secs 8 "$@" 2>&1)
    direct=$(sed -n 's/.*direct fake-claude: .* \([0-9]*\) turns\/s.*/\1/p' <<< "$out")
    line=$(grep -E '^\| 16 ' <<< "$out")
    cpu=$(sed -n 's/.* \([0-9]*\) µs hub CPU.*/\1/p' <<< "$out")
    awk -F'|' -v hub="$hub" -v d="$direct" -v cpu="$cpu" '{
      gsub(/ /, "", $6); gsub(/ /, "", $10); gsub(/ /, "", $11)
      printf "%s: %s req/s vs %s direct (%.3f), added p50 %s p99 %s, hub CPU %s µs/request\n",
        hub, $6, d, $6 / d, $10, $11, cpu }' <<< "$line"
  done
done
