#!/bin/sh
# rsh agent for mpirun over the fake hosts of ci/netns-up.sh:
#   nsexec.sh [-l USER] HOST CMD...
# runs CMD (parsed by sh, as ssh would) in HOST's network namespace and in a
# new UTS namespace whose host name is HOST. HOST is hostA.. or 10.77.0.N.
if [ "$1" = "-l" ]; then shift 2; fi   # ssh-style user option: same user here
h=$1; shift
case "$h" in
  10.77.0.*) ns=host$(echo ABCDEF | cut -c"${h##*.}") ;;
  *) ns=$h ;;
esac
[ -e "/run/netns/$ns" ] || { echo "nsexec: no namespace for host $h" >&2; exit 255; }
# nsenter, not "ip netns exec": the latter remounts /sys, which is not needed here.
# env -i: a fresh login environment, as ssh gives on a real remote host, so
# that only what mpirun forwards (-x NAME) reaches the ranks.
exec env -i HOME="${HOME:-/root}" USER="${USER:-root}" LOGNAME="${LOGNAME:-root}" \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  nsenter --net="/run/netns/$ns" unshare --uts sh -c "hostname $ns && $*"
