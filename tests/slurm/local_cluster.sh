#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for `make test-slurm` (Debian/Ubuntu, as root,
# no systemd needed): installs slurmctld, slurmd, slurm-client and munge (8 packages, ~13 MB),
# writes /etc/slurm/slurm.conf for this host's CPUs, starts munged, slurmctld and slurmd, and waits
# until the node is idle. Idempotent: if the daemons are up with the same config, it does nothing.
# Refuses to replace a slurm.conf it did not write. `local_cluster.sh stop` stops the daemons.
#
# Tunables (environment):
#   SLURM_CRED_EXPIRE     AuthInfo=cred_expire (s, minimum 5; Slurm's default 120): also how long a
#                         requeued job waits before it may start again (BeginTime=now+cred_expire+1).
#   SLURM_SCHED_INTERVAL  sched_interval (s; Slurm's default 60): how often pending jobs are checked.
#   SLURM_BF_INTERVAL     bf_interval (s; Slurm's default 30).
#   SLURM_WAIT            seconds to wait for the node to become idle.
set -euo pipefail

if [ "${1:-}" = "stop" ]; then
    for pf in /run/slurmd.pid /run/slurmctld.pid /run/munge/munged.pid; do
        if [ -s "$pf" ] && kill -0 "$(cat "$pf")" 2>/dev/null; then
            pid="$(cat "$pf")"; kill "$pid"
            for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        fi
        rm -f "$pf"
    done
    exit 0
fi

CRED_EXPIRE="${SLURM_CRED_EXPIRE:-5}"
SCHED_INTERVAL="${SLURM_SCHED_INTERVAL:-2}"
BF_INTERVAL="${SLURM_BF_INTERVAL:-5}"
WAIT_S="${SLURM_WAIT:-60}"

CONF=/etc/slurm/slurm.conf
LOGDIR=/var/log/slurm
CTLD_SPOOL=/var/spool/slurmctld
SLURMD_SPOOL=/var/spool/slurmd
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
MUNGE_SOCK=/run/munge/munge.socket.2
MUNGE_PID=/run/munge/munged.pid

log() { echo "[local_cluster] $*" >&2; }
hint="where SLURM already runs: pytest --slurm --basetemp=<dir on the shared filesystem>"
[ "$(id -u)" -eq 0 ] || { log "must run as root ($hint)"; exit 1; }
command -v apt-get >/dev/null || { log "needs Debian/Ubuntu's apt-get ($hint)"; exit 1; }

pid_alive() { # pidfile
    [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

# ---------------------------------------------------------------- packages
need=()
for p in munge slurmctld slurmd slurm-client; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
    log "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # --no-install-recommends: 8 packages (~13 MB) instead of ~42.
    apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi

# ---------------------------------------------------------------- munge
if [ ! -s /etc/munge/munge.key ]; then
    log "creating munge key"
    install -d -o munge -g munge -m 0700 /etc/munge
    if command -v mungekey >/dev/null; then
        mungekey --create --keyfile=/etc/munge/munge.key --force
    else
        dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
    fi
fi
# munged insists on: key owned by the user it runs as, mode 0400/0600, and
# /etc/munge not writable by others.
chown munge:munge /etc/munge /etc/munge/munge.key
chmod 0700 /etc/munge
chmod 0600 /etc/munge/munge.key
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge

if ! { pid_alive "$MUNGE_PID" && munge -n </dev/null >/dev/null 2>&1; }; then
    log "starting munged"
    rm -f "$MUNGE_SOCK" "$MUNGE_SOCK.lock" 2>/dev/null || true
    runuser -u munge -- /usr/sbin/munged --pid-file="$MUNGE_PID"
    for _ in $(seq 50); do munge -n </dev/null >/dev/null 2>&1 && break; sleep 0.1; done
fi
munge -n </dev/null | unmunge >/dev/null || { log "munge not working"; exit 1; }

# ---------------------------------------------------------------- config
HOST="$(hostname -s)"
if ! getent hosts "$HOST" >/dev/null; then
    log "adding $HOST to /etc/hosts"
    echo "127.0.0.1 $HOST" >> /etc/hosts
fi
# e.g. "NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105"
NODELINE="$(slurmd -C | head -n1)"
case "$NODELINE" in NodeName=*) ;; *) log "slurmd -C failed: $NODELINE"; exit 1;; esac

install -d -m 0755 /etc/slurm "$LOGDIR" "$CTLD_SPOOL" "$SLURMD_SPOOL"

NEWCONF="$(cat <<EOF
# Written by mtl_cli tests/slurm/local_cluster.sh -- single-node local cluster
ClusterName=local
SlurmctldHost=${HOST}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire is also how long a requeued job waits (BeginTime=now+cred_expire+1)
AuthInfo=cred_expire=${CRED_EXPIRE}
StateSaveLocation=${CTLD_SPOOL}
SlurmdSpoolDir=${SLURMD_SPOOL}
SlurmctldPidFile=${CTLD_PID}
SlurmdPidFile=${SLURMD_PID}
SlurmctldLogFile=${LOGDIR}/slurmctld.log
SlurmdLogFile=${LOGDIR}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
SlurmctldPort=6817
SlurmdPort=6818
MpiDefault=none
MailProg=/bin/true
# no cgroups
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=${SCHED_INTERVAL},bf_interval=${BF_INTERVAL}
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobRequeue=1
MinJobAge=30
KillWait=5
InactiveLimit=0
Waittime=0
${NODELINE} State=UNKNOWN
PartitionName=debug Nodes=${HOST} Default=YES MaxTime=INFINITE State=UP
EOF
)"

conf_changed=0
if [ -f "$CONF" ] && ! grep -q "^# Written by mtl_cli tests/slurm/local_cluster.sh" "$CONF"; then
    log "$CONF exists and was not written by this script; not touching a real cluster's config"
    exit 1
fi
if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$NEWCONF" ]; then
    printf '%s\n' "$NEWCONF" > "$CONF.tmp" && mv "$CONF.tmp" "$CONF"
    conf_changed=1
    log "wrote $CONF"
fi

node_ready() {
    local st
    st="$(sinfo -h -n "$HOST" -o '%T' 2>/dev/null | head -n1)"
    case "$st" in idle|mixed|allocated|completing) return 0;; *) return 1;; esac
}

if [ "$conf_changed" = 0 ] && pid_alive "$CTLD_PID" && pid_alive "$SLURMD_PID" \
        && scontrol ping 2>/dev/null | grep -q UP && node_ready; then
    log "already up: $(sinfo -h -o '%P %D %T %N')"
    exit 0
fi

# ---------------------------------------------------------------- daemons
if [ "$conf_changed" = 1 ]; then
    # config changed: restart whatever is running so it is re-read
    for pf in "$SLURMD_PID" "$CTLD_PID"; do
        if pid_alive "$pf"; then
            pid="$(cat "$pf")"; kill "$pid"
            for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
    done
fi

if ! pid_alive "$CTLD_PID"; then
    log "starting slurmctld"
    # -R: recover state (keeps queued jobs across restarts); harmless on first start
    slurmctld -R
fi
for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.2; done
slurmd_t0=0
if ! pid_alive "$SLURMD_PID"; then
    log "starting slurmd"
    slurmd_t0=$(( $(date +%s) - 1 ))
    slurmd
fi
# After a controller restart the recovered node state can read "idle" before
# slurmd has re-registered; wait for a registration newer than our slurmd start.
slurmd_registered() {
    local t
    t="$(scontrol show node -o "$HOST" 2>/dev/null | grep -o 'SlurmdStartTime=[^ ]*' | cut -d= -f2)"
    case "$t" in ""|None|Unknown) return 1;; esac
    [ "$(date -d "$t" +%s 2>/dev/null || echo 0)" -ge "$slurmd_t0" ]
}

for _ in $(seq $((WAIT_S * 2))); do
    slurmd_registered && node_ready && break
    st="$(sinfo -h -n "$HOST" -o '%T' 2>/dev/null | head -n1)"
    case "$st" in down*|drain*|fail*)
        scontrol update NodeName="$HOST" State=RESUME 2>/dev/null || true;;
    esac
    sleep 0.5
done
if slurmd_registered && node_ready; then
    log "up: $(sinfo -h -o '%P %D %T %N')"
else
    log "node not ready: $(sinfo -h -N -o '%N %T %E' 2>&1)"
    log "see $LOGDIR/slurmctld.log and $LOGDIR/slurmd.log"
    exit 1
fi
