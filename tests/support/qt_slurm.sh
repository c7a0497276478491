#!/bin/sh
# qt_slurm.sh: a throwaway single-node Slurm for the tests, in a directory of
# its own (tests/support/qt_slurm.c drives it; by hand it is handy too).
#
#   qt_slurm.sh start DIR CTLD_PORT SLURMD_PORT
#   qt_slurm.sh stop DIR
#
# start writes DIR/munge.key (1024 random bytes) and DIR/slurm.conf, then
# starts munged on its own socket DIR/munge.sock (so a munged the machine
# already runs, and /run/munge, are left alone), slurmctld and slurmd (one
# node: this host at 127.0.0.1 with the CPUs `slurmd -C` reports, partition
# "qn"), and waits until the node is idle. Every client command then needs
# SLURM_CONF=DIR/slurm.conf in its environment. It prints nothing and exits 0
# when the cluster is up; else it stops what it started, prints one line
# saying why (and the tail of the daemons' logs after it) and exits 3 when
# this machine cannot run Slurm at all (a program missing, not root), 1 when
# a daemon did not come up.
#
# Facts this rests on (Debian 12's slurm-wlm 22.05 in a container): the
# daemons run as root (SlurmUser=root); proctrack/linuxproc and task/none need
# no cgroups; select/cons_tres hands out CPUs; without slurmdbd there is no
# accounting, so `sacct` says "accounting storage is disabled" and a
# finished job is seen with `squeue -t all` for MinJobAge seconds. TmpFS is
# the cluster's own: the PMIx plugin makes a directory per step there named by
# job and step id only, and a cluster's job ids start at 1 again, so a step
# of an earlier cluster left in /tmp would make this one's fail.
#
# stop cancels every job of the cluster, waits for them to end (so no
# slurmstepd outlives it), stops slurmd, slurmctld and munged by the pids in
# their pid files (SIGTERM, SIGKILL after 5 s), and leaves DIR to the caller.
set -u

die() { # die CODE WHY: stops what started, says why, exits CODE
    code=$1; shift
    echo "$*"
    for log in slurmctld.log slurmd.log munged.log; do
        [ -s "$DIR/$log" ] && { echo "--- $log"; tail -n 8 "$DIR/$log"; }
    done
    stop_all
    exit "$code"
}

alive() { # alive PID: the process exists and is not a zombie (a daemon's
    # parent is init, which may reap it late)
    [ -r "/proc/$1/stat" ] && ! grep -q '^[0-9]* (.*) Z ' "/proc/$1/stat" 2>/dev/null
}

pid_of() { # pid_of NAME: the pid in DIR/NAME.pid, if that process lives
    p=$(cat "$DIR/$1.pid" 2>/dev/null) || return 1
    [ -n "$p" ] && alive "$p" && echo "$p"
}

stop_daemon() { # stop_daemon NAME: SIGTERM, then SIGKILL after 5 s
    p=$(pid_of "$1") || return 0
    kill "$p" 2>/dev/null
    i=0
    while alive "$p" && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    alive "$p" && kill -9 "$p" 2>/dev/null
    return 0
}

cancel_jobs() { # cancels every job and waits up to 10 s for them to leave
    pid_of slurmctld >/dev/null || return 0
    jobs=$(squeue -h -o %i 2>/dev/null)
    [ -z "$jobs" ] && return 0
    scancel $jobs 2>/dev/null
    i=0
    while [ -n "$(squeue -h -o %i 2>/dev/null)" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
}

stop_all() {
    cancel_jobs
    stop_daemon slurmd
    stop_daemon slurmctld
    stop_daemon munged
}

write_conf() { # write_conf CTLD_PORT SLURMD_PORT NODE_LINE
    cat > "$DIR/slurm.conf" <<EOF
# Written by tests/support/qt_slurm.sh for one test run.
ClusterName=qntest
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$1
SlurmdPort=$2
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge.sock
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/slurmd
TmpFS=$DIR/tmp
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=30
$3 NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=qn Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
}

start() { # start CTLD_PORT SLURMD_PORT
    for p in munged slurmctld slurmd sbatch srun squeue scancel sinfo; do
        command -v $p >/dev/null 2>&1 || die 3 "$p is not installed (Debian: slurm-wlm munge; make deps-test)"
    done
    [ "$(id -u)" = 0 ] || die 3 "not root: this single-node Slurm runs its daemons as root"
    mkdir -p "$DIR/state" "$DIR/slurmd" "$DIR/tmp" || die 1 "cannot create $DIR/state"
    export SLURM_CONF="$DIR/slurm.conf"
    # The node as slurmd sees it (CPUs, sockets, cores, memory), less its uptime.
    line=$(slurmd -C 2>/dev/null | head -n 1 | sed 's/ *UpTime=.*//')
    case "$line" in NodeName=*) ;; *) die 1 "slurmd -C printed no node line";; esac
    NODE=${line#NodeName=}
    NODE=${NODE%% *}
    # Memory as a limit would only refuse jobs: leave it at Slurm's default.
    line=$(echo "$line" | sed 's/ RealMemory=[0-9]*//')
    write_conf "$1" "$2" "$line"
    head -c 1024 /dev/urandom > "$DIR/munge.key" && chmod 400 "$DIR/munge.key" ||
        die 1 "cannot write $DIR/munge.key"
    munged --force --socket="$DIR/munge.sock" --key-file="$DIR/munge.key" \
        --pid-file="$DIR/munged.pid" --seed-file="$DIR/munged.seed" \
        --log-file="$DIR/munged.log" >"$DIR/munged.out" 2>&1 ||
        die 1 "munged did not start: $(tail -n 1 "$DIR/munged.out")"
    slurmctld -f "$SLURM_CONF" >"$DIR/slurmctld.out" 2>&1 ||
        die 1 "slurmctld did not start: $(tail -n 1 "$DIR/slurmctld.out")"
    slurmd -f "$SLURM_CONF" -N "$NODE" >"$DIR/slurmd.out" 2>&1 ||
        die 1 "slurmd did not start: $(tail -n 1 "$DIR/slurmd.out")"
    i=0
    until [ "$(sinfo -h -n "$NODE" -o %T 2>/dev/null)" = idle ]; do
        [ $i -ge 300 ] && die 1 "node $NODE not idle after 30 s: $(sinfo -h -n "$NODE" -o '%T %E' 2>&1)"
        pid_of slurmctld >/dev/null || die 1 "slurmctld exited"
        pid_of slurmd >/dev/null || die 1 "slurmd exited"
        sleep 0.1
        i=$((i + 1))
    done
}

[ $# -ge 2 ] || { echo "usage: $0 start DIR CTLD_PORT SLURMD_PORT | stop DIR"; exit 2; }
DIR=$2
case "$1" in
start)
    [ $# -eq 4 ] || { echo "usage: $0 start DIR CTLD_PORT SLURMD_PORT"; exit 2; }
    start "$3" "$4"
    ;;
stop)
    export SLURM_CONF="$DIR/slurm.conf"
    stop_all
    ;;
*)
    echo "usage: $0 start DIR CTLD_PORT SLURMD_PORT | stop DIR"
    exit 2
    ;;
esac
exit 0
