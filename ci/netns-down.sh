#!/bin/bash
# Undo ci/netns-up.sh: stop what still runs "on" the fake hosts, delete the
# namespaces and the bridge. Safe to run when nothing is set up.
for ns in $(ip netns list 2>/dev/null | awk '/^host[A-F]( |$)/{print $1}'); do
  ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
  ip link del "v-$ns" 2>/dev/null || true   # veth first: namespace teardown is asynchronous
  ip link del "w-$ns" 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
done
ip link del mpibr0 2>/dev/null || true
ip link del mpibr1 2>/dev/null || true
exit 0
