#!/bin/bash
# A real 3-node Slurm on this machine: slurmctld in the root namespace
# (10.77.0.254 on the bridge mpibr0), one slurmd in each of the network
# namespaces hostA, hostB, hostC of ci/netns-up.sh, each in its own UTS
# namespace whose host name is the node name. All state under DIR. Root only.
#   ci/netns-up.sh 3 && ci/slurm-multi-up.sh [DIR]    (default /tmp/mfubench-slurm-multi)
#   export SLURM_CONF=DIR/slurm.conf; sbatch -N 3 ...; ci/slurm-multi-down.sh [DIR]; ci/netns-down.sh
# Needs: slurm-wlm and munge; MPI steps use pmix (srun --mpi=pmix). Open MPI
# must use the bridge between the nodes (each namespace also has a loopback
# it would otherwise offer its peers): export
# OMPI_MCA_btl_tcp_if_include=10.77.0.0/24 before sbatch (srun passes it on).
# KILL_WAIT: slurm.conf's KillWait (default 5 s, for fast tests; Slurm's own
# default is 30). An aborted step's srun waits KillWait + 2 s for every node
# to report its tasks gone before it gives up by itself.
set -euo pipefail
D=${1:-/tmp/mfubench-slurm-multi}
KILL_WAIT=${KILL_WAIT:-5}
case $KILL_WAIT in ""|*[!0-9]*) echo "slurm-multi-up: KILL_WAIT=$KILL_WAIT: want whole seconds" >&2; exit 2;; esac
NODES="hostA hostB hostC"
for b in munged slurmctld slurmd sinfo nsenter unshare; do
  command -v "$b" >/dev/null || [ -x "/usr/sbin/$b" ] || { echo "slurm-multi-up: $b not found (apt-get install slurm-wlm munge util-linux)" >&2; exit 1; }
done
for n in $NODES; do
  [ -e "/run/netns/$n" ] || { echo "slurm-multi-up: network namespace $n missing: run ci/netns-up.sh 3 first" >&2; exit 1; }
done
mkdir -p "$D"/{state,munge}
for n in $NODES; do mkdir -p "$D/spool-$n" "$D/tmp-$n"; done
chown munge:munge "$D/munge"; chmod 755 "$D/munge"   # munged insists on o+x on the socket dir
if [ ! -s /etc/munge/munge.key ]; then
  mkdir -p /etc/munge
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
fi
cat > "$D/slurm.conf" <<CONF
ClusterName=mfubench-ns
SlurmctldHost=$(hostname -s)(10.77.0.254)
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$D/munge/munge.socket
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool-%n
TmpFS=$D/tmp-%n
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd-%n.pid
SlurmctldLogFile=$D/slurmctld.log
SlurmdLogFile=$D/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$D/jobcomp.txt
MpiDefault=pmix
MailProg=/bin/true
ReturnToService=2
KillWait=$KILL_WAIT
NodeName=hostA NodeAddr=10.77.0.1 CPUs=$(nproc) RealMemory=4000
NodeName=hostB NodeAddr=10.77.0.2 CPUs=$(nproc) RealMemory=4000
NodeName=hostC NodeAddr=10.77.0.3 CPUs=$(nproc) RealMemory=4000
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
runuser -u munge -- /usr/sbin/munged --socket="$D/munge/munge.socket" \
  --pid-file="$D/munge/munged.pid" --log-file="$D/munge/munged.log" --seed-file="$D/munge/seed"
slurmctld -i -f "$D/slurm.conf"
for n in $NODES; do
  # nsenter, not `ip netns exec`: the latter remounts /sys, and slurmd then
  # fails on /sys/fs/cgroup. unshare --uts: the node's own host name.
  nsenter --net="/run/netns/$n" unshare --uts sh -c "hostname $n && exec slurmd -f $D/slurm.conf"
done
export SLURM_CONF=$D/slurm.conf
for _ in $(seq 1 120); do
  [ "$(sinfo -h -o %T 2>/dev/null | sort -u)" = idle ] && {
    echo "export SLURM_CONF=$D/slurm.conf OMPI_MCA_btl_tcp_if_include=10.77.0.0/24"; exit 0; }
  sleep 0.5
done
echo "slurm-multi-up: Slurm did not come up" >&2; sinfo >&2 || true; tail -n 20 "$D"/*.log >&2; exit 1
