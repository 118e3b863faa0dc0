#!/bin/bash
# Stop the Slurm of ci/slurm-multi-up.sh [DIR] and remove its state (as
# ci/slurm-down.sh does for one node). Safe to run when nothing is up. (The
# namespaces: ci/netns-down.sh.)
exec "$(dirname "$0")/slurm-down.sh" "${1:-/tmp/mfubench-slurm-multi}"
