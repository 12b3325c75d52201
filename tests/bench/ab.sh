#!/bin/bash
# Interleaved A/B of two hub binaries on the fake-CLI scenario at 16 clients: the two runs of a
# round follow each other, so both see the same machine. Prints one line per run and pause
# (closed loop, then the paced run at 16 clients; `--paced-levels` alone leaves that out).
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
    cpu=$(sed -n 's/.* 0 ms pause, hub: .* \([0-9]*\) µs hub CPU.*/\1/p' <<< "$out")
    # One line per table row: the closed loop (pause 0 ms), then any paced run.
    grep -E '^\| 16 \| [0-9]+ ms ' <<< "$out" | awk -F'|' -v hub="$hub" -v cpu="$cpu" '{
      for (i = 2; i <= 12; i++) gsub(/ /, "", $i)
      if ($3 == "0ms") extra = sprintf(", hub CPU %s µs/request", cpu); else extra = ""
      printf "%s, pause %s: %s req/s vs %s direct (%.3f), added p50 %s p99 %s%s\n",
        hub, $3, $7, $10, $7 / $10, $11, $12, extra }'
  done
done
