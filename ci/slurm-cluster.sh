#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, for tests/test_slurm.py (as root).
#   ci/slurm-cluster.sh start    install Debian's packages if missing, configure, start
#   ci/slurm-cluster.sh status   sinfo and squeue
#   ci/slurm-cluster.sh stop     stop every daemon that `start` started, nothing else
# No accounting database (no slurmdbd, so sacct fails): finished jobs stay in squeue for
# MinJobAge (1 h) and are appended to $LOG/jobcomp.log; Snakemake must poll with
# --slurm-status-command squeue (the slurm profile does). No systemd: the daemons fork
# themselves and are tracked by their pid files. Jobs' processes are tracked through /proc,
# not cgroups (memory limits are not enforced).
set -euo pipefail

LOG=/var/log/slurm
MARK='# written by ci/slurm-cluster.sh'
STARTED=/run/ldnn-slurm.started   # pid files of the daemons this script started
HOST=$(hostname -s)

alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_until() {  # wait_until SECONDS COMMAND...: poll every 0.5 s
  local tries=$(($1 * 2)); shift
  until "$@" >/dev/null 2>&1; do
    ((tries-- > 0)) || { echo "slurm-cluster: timed out: $*" >&2; return 1; }
    sleep 0.5
  done
}

launch() {  # launch PIDFILE COMMAND...: start a self-forking daemon unless it runs
  local pidfile=$1; shift
  alive "$pidfile" && return
  "$@"
  wait_until 20 alive "$pidfile"
  echo "$pidfile" >>"$STARTED"
}

node_up() { sinfo -h -n "$HOST" -o %T | grep -Eq '^(idle|mixed|allocated)'; }

start() {
  [[ $EUID -eq 0 ]] || { echo "slurm-cluster: run as root" >&2; exit 1; }
  if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
      || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      munge slurmctld slurmd slurm-client >/dev/null
  fi
  if [[ -e /etc/slurm/slurm.conf ]] && ! grep -q "^$MARK" /etc/slurm/slurm.conf; then
    echo "slurm-cluster: /etc/slurm/slurm.conf is not ours; leaving this machine alone" >&2
    exit 1
  fi
  install -d -m 0755 /etc/slurm "$LOG" /var/lib/slurm/ctld /var/lib/slurm/d
  install -d -o munge -g munge -m 0755 /run/munge
  if [[ ! -s /etc/munge/munge.key ]]; then
    install -d -o munge -g munge -m 0700 /etc/munge
    (umask 077; head -c 1024 /dev/urandom >/etc/munge/munge.key)
    chown munge:munge /etc/munge/munge.key
  fi
  local mem conf
  mem=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
  conf=$(mktemp)
  cat >"$conf" <<EOF
$MARK: one node, daemons and jobs run as root
ClusterName=ldnn
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/lib/slurm/ctld
SlurmdSpoolDir=/var/lib/slurm/d
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=1000
ReturnToService=2
MinJobAge=3600
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG/jobcomp.log
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$((mem - 1024)) State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
  if ! cmp -s "$conf" /etc/slurm/slurm.conf; then   # a running cluster rereads it
    install -m 0644 "$conf" /etc/slurm/slurm.conf
    if alive /run/slurmctld.pid; then scontrol reconfigure; fi
  fi
  rm -f "$conf"
  launch /run/munge/munged.pid runuser -u munge -- /usr/sbin/munged
  launch /run/slurmctld.pid /usr/sbin/slurmctld
  launch /run/slurmd.pid /usr/sbin/slurmd
  wait_until 30 node_up || { scontrol update nodename="$HOST" state=resume; wait_until 30 node_up; }
  sinfo
}

stop() {
  [[ -s $STARTED ]] || return 0
  local pidfile pid
  for pidfile in $(tac "$STARTED"); do   # slurmd, slurmctld, then munged
    alive "$pidfile" || continue
    pid=$(cat "$pidfile")
    kill "$pid"
    wait_until 30 bash -c "! kill -0 $pid" || kill -9 "$pid"
  done
  rm -f "$STARTED"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) sinfo && squeue ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
