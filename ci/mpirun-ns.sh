#!/bin/sh
# mpirun across the fake hosts of ci/netns-up.sh, e.g.
#   ci/mpirun-ns.sh --host hostA,hostB,hostC -np 3 ./app
# `ci/mpirun-ns.sh --print-args` prints the options it adds, one per line;
# after `--` they make `mfubench run` use the fake hosts:
#   mfubench run CONFIG --hosts hostA:1,hostB:1,hostC:1 -- $(ci/mpirun-ns.sh --print-args)
here=$(cd "$(dirname "$0")" && pwd)
# rsh agent = nsexec.sh; TCP only over the bridge (vader = shared memory
# between ranks of one fake host); yield, since the hosts share the cores.
set -- --mca plm_rsh_agent "$here/nsexec.sh" \
  --mca btl tcp,self,vader --mca btl_tcp_if_include 10.77.0.0/24 \
  --mca oob_tcp_if_include 10.77.0.0/24 --mca mpi_yield_when_idle 1 "$@"
last=; for a in "$@"; do last=$a; done
if [ "$last" = "--print-args" ]; then
  n=$(($# - 1)); i=0
  for a in "$@"; do i=$((i + 1)); [ "$i" -le "$n" ] && printf '%s\n' "$a"; done
  exit 0
fi
exec mpirun --allow-run-as-root "$@"
