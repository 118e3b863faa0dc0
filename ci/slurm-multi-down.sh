#!/bin/bash
# Stop the Slurm of ci/slurm-multi-up.sh [DIR] and remove its state. Safe to
# run when nothing is up. (The namespaces: ci/netns-down.sh.)
D=${1:-/tmp/mfubench-slurm-multi}
for p in "$D"/slurmd-host*.pid "$D/slurmctld.pid" "$D/munge/munged.pid"; do
  if [ -s "$p" ]; then
    pid=$(cat "$p")
    kill "$pid" 2>/dev/null || continue
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
done
case "$D" in /tmp/*) rm -rf "$D" ;; esac
exit 0
