#!/bin/bash
# A real one-node Slurm on this machine (munged + slurmctld + slurmd), all
# state under DIR, for tests and for trying launch/mfubench.sbatch. Root only.
#   ci/slurm-up.sh [DIR]          (default /tmp/mfubench-slurm)
#   export SLURM_CONF=DIR/slurm.conf; sbatch ...; ci/slurm-down.sh [DIR]
# Needs: slurm-wlm (slurmctld, slurmd, client) and munge. MPI steps use pmix
# (srun --mpi=pmix), as pmi2 fails with Debian's Open MPI.
set -euo pipefail
D=${1:-/tmp/mfubench-slurm}
H=$(hostname -s)   # node name; addresses are 127.0.0.1, so it need not resolve
for b in munged slurmctld slurmd sinfo; do
  command -v "$b" >/dev/null || [ -x "/usr/sbin/$b" ] || { echo "slurm-up: $b not found (apt-get install slurm-wlm munge)" >&2; exit 1; }
done
mkdir -p "$D"/{state,spool,tmp,munge}
chown munge:munge "$D/munge"; chmod 755 "$D/munge"   # munged insists on o+x on the socket dir
# A munge key of our own if the machine has none (fresh CI machines).
if [ ! -s /etc/munge/munge.key ]; then
  mkdir -p /etc/munge
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
fi
cat > "$D/slurm.conf" <<CONF
ClusterName=mfubench-ci
SlurmctldHost=$H(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$D/munge/munge.socket
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
TmpFS=$D/tmp
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/slurmctld.log
SlurmdLogFile=$D/slurmd.log
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
KillWait=5
$(slurmd -C | head -1) NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
runuser -u munge -- /usr/sbin/munged --socket="$D/munge/munge.socket" \
  --pid-file="$D/munge/munged.pid" --log-file="$D/munge/munged.log" --seed-file="$D/munge/seed"
slurmctld -i -f "$D/slurm.conf"      # both daemonize; pid files above
slurmd -f "$D/slurm.conf"
export SLURM_CONF=$D/slurm.conf
for _ in $(seq 1 120); do
  [ "$(sinfo -h -o %T 2>/dev/null)" = idle ] && { echo "export SLURM_CONF=$D/slurm.conf"; exit 0; }
  sleep 0.5
done
echo "slurm-up: Slurm did not come up" >&2; sinfo >&2 || true; tail -n 20 "$D"/*.log >&2; exit 1
