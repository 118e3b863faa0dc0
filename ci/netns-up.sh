#!/bin/bash
# Fake hosts for multi-host tests: N network namespaces hostA, hostB, ... on
# the bridge mpibr0, addresses 10.77.0.1.. (the root namespace is 10.77.0.254
# on the bridge, where mpirun listens). Traffic stays on the bridge: no route
# or NAT to anything else is set up. Run as root.
#   ci/netns-up.sh [N] [RAILS]   (N default 3, at most 6; RAILS 1 or 2)
#   undo: ci/netns-down.sh
# RAILS=2 gives every host a second NIC, eth1, on a second bridge mpibr1
# (10.78.0.0/24): a second rail for `mfubench accept --rails eth0,eth1`.
# Launch with ci/mpirun-ns.sh (or mpirun with --mca plm_rsh_agent ci/nsexec.sh).
set -euo pipefail
N=${1:-3}
RAILS=${2:-1}
BR=mpibr0
if [ "$N" -lt 1 ] || [ "$N" -gt 6 ]; then echo "netns-up: N must be 1..6" >&2; exit 2; fi
if [ "$RAILS" != 1 ] && [ "$RAILS" != 2 ]; then echo "netns-up: RAILS must be 1 or 2" >&2; exit 2; fi
if ip link show "$BR" >/dev/null 2>&1; then
  echo "netns-up: $BR exists already (run ci/netns-down.sh first)" >&2; exit 1
fi
ip link add "$BR" type bridge
ip addr add 10.77.0.254/24 dev "$BR"
ip link set "$BR" up
for i in $(seq 1 "$N"); do
  ns=host$(echo ABCDEF | cut -c"$i")
  ip netns add "$ns"
  ip link add "v-$ns" type veth peer name eth0 netns "$ns"
  ip link set "v-$ns" master "$BR" up
  ip -n "$ns" addr add "10.77.0.$i/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
done
if [ "$RAILS" = 2 ]; then
  ip link add mpibr1 type bridge
  ip addr add 10.78.0.254/24 dev mpibr1
  ip link set mpibr1 up
  for i in $(seq 1 "$N"); do
    ns=host$(echo ABCDEF | cut -c"$i")
    ip link add "w-$ns" type veth peer name eth1 netns "$ns"
    ip link set "w-$ns" master mpibr1 up
    ip -n "$ns" addr add "10.78.0.$i/24" dev eth1
    ip -n "$ns" link set eth1 up
  done
  echo "netns-up: $N host(s) on $BR (10.77.0.0/24) and mpibr1 (10.78.0.0/24)"
else
  echo "netns-up: $N host(s) on $BR (10.77.0.0/24)"
fi
