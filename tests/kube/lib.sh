# Shared by plane.sh and cluster.sh (sourced, not run): free ports, the parts they start in the
# background (their output in $D/NAME.log, "pid NAME START" lines in a pids file, START being the
# process's start time, so that a pid the system has given to another process since is never
# signalled), waiting for them and stopping them.

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The start time of process PID (in clock ticks since boot), empty when there is none.
proc_start() { awk '{ print $22 }' "/proc/$1/stat" 2>/dev/null; }

# start_part PIDS NAME COMMAND...: runs COMMAND in the background, its output in $D/NAME.log.
start_part() {
  local pids="$1" name="$2"; shift 2
  "$@" >"$D/$name.log" 2>&1 &
  echo "$! $name $(proc_start $!)" >>"$pids"
}

# stop_parts PIDS: in reverse order of start, TERM, then KILL after 5 s, each process of PIDS
# that is still the one started.
stop_parts() {
  local pids=() pid name start
  while read -r pid name start; do
    [ -n "$start" ] && [ "$(proc_start "$pid")" = "$start" ] && pids=("$pid" "${pids[@]}")
  done <"$1"
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || continue
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
}

# wait_part PIDS WHAT SECONDS COMMAND...: until COMMAND succeeds. Fails, with the logs under $D,
# when SECONDS have passed, and at once when a part in PIDS has died (it will not come up).
wait_part() {
  local pids="$1" what="$2" secs="$3"; shift 3
  local deadline=$((SECONDS + secs)) f pid name
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "timed out after ${secs}s waiting for $what; logs:"
      for f in "$D"/*.log "$D"/*/*.log; do
        [ -f "$f" ] && { printf -- '--- %s (last 30 lines)\n' "$f" >&2; tail -n 30 "$f" >&2; }
      done
      return 1
    fi
    while read -r pid name _; do
      kill -0 "$pid" 2>/dev/null || { log "$name exited; its log:"; tail -n 40 "$D/$name.log" >&2; return 1; }
    done <"$pids"
    sleep 0.5
  done
}
