#!/bin/bash
# Stop the Slurm of ci/slurm-up.sh [DIR] (or of ci/slurm-multi-up.sh, whose
# down script calls this one) and remove its state. Safe to run when nothing
# is up. The Slurm daemons are stopped together (SIGTERM, then SIGKILL after
# 5 s), then munged: one after another, a 3-node Slurm took 10 s to stop.
D=${1:-/tmp/mfubench-slurm}

# Stops the processes of the pid files given: SIGTERM to all, SIGKILL to
# any still there 5 s later.
stop() {
  local p pids=()
  for p in "$@"; do
    [ -s "$p" ] && pids+=("$(cat "$p")")
  done
  [ ${#pids[@]} -gt 0 ] || return 0
  kill "${pids[@]}" 2>/dev/null
  for _ in $(seq 1 50); do
    kill -0 "${pids[@]}" 2>/dev/null || break
    sleep 0.1
  done
  # kill -0 of several PIDs succeeds while any is alive: SIGKILL the rest.
  kill -9 "${pids[@]}" 2>/dev/null
  return 0
}

stop "$D"/slurmd*.pid "$D/slurmctld.pid"
stop "$D/munge/munged.pid"
case "$D" in /tmp/*) rm -rf "$D" ;; esac
exit 0
