#!/bin/bash
# Fake hosts for multi-host tests: N network namespaces hostA, hostB, ... on
# the bridge mpibr0, addresses 10.77.0.1.. (the root namespace is 10.77.0.254
# on the bridge, where mpirun listens). Traffic stays on the bridge: no route
# or NAT to anything else is set up. Run as root.
#   ci/netns-up.sh [N]      (default 3, at most 6)      undo: ci/netns-down.sh
# Launch with ci/mpirun-ns.sh (or mpirun with --mca plm_rsh_agent ci/nsexec.sh).
set -euo pipefail
N=${1:-3}
BR=mpibr0
if [ "$N" -lt 1 ] || [ "$N" -gt 6 ]; then echo "netns-up: N must be 1..6" >&2; exit 2; fi
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
echo "netns-up: $N host(s) on $BR (10.77.0.0/24)"
