#!/usr/bin/env bash
# scripts/sweep.sbatch through a real SLURM started on this machine, end to end, then torn down.
#
#   bash scripts/slurm_drill.sh                                    # as root
#   PYTHON=.venv/bin/python bash scripts/slurm_drill.sh --report=results/slurm/drill.txt
#
# Starts munged, slurmctld and two slurmd ("nodes" n1 and n2 on 127.0.0.1, each with its own
# port) from a temporary folder (config, munge key, state, logs), installing the Debian packages
# first if they are missing. Then, with a tiny CPU config (gloo), through the real sbatch:
#   1. a plain `python train.py` run: the reference;
#   2. sbatch --nodes=1 scripts/sweep.sbatch: its losses must equal the reference's (1e-5);
#   3. sbatch --nodes=2: one torchrun per node via srun, c10d rendezvous across them (1e-5);
#   4. preemption: sbatch --nodes=2, then `scancel --batch --signal=USR1` mid-run (the signal
#      sweep.sbatch asks for before its time limit): a checkpoint at the step it was at, the job
#      requeues itself, resumes there and finishes with the losses of run 3 exactly.
# It prints a table of the checks, stops every daemon it started (by PID, also when a step fails
# or it is interrupted) and deletes the temporary folder. PYTHON: the interpreter for train.py
# (default: `python` on PATH, i.e. the active venv); its folder goes first on the jobs' PATH.
# --report=FILE also writes the table, the machine and the command to FILE, and each run's
# output (plain.out, one-node.out, two-nodes.out, preempt.out) to FILE's folder.
# Exit codes: 0 every check passed, 1 a check failed, 2 bad usage or no usable PYTHON,
# 3 SLURM cannot be started here (not root, or the packages are absent and cannot be installed).
set -uo pipefail  # no -e: a failed step is recorded as FAIL and the remaining steps still run
REPO=$(cd "$(dirname "$0")/.." && pwd)
COMMAND="bash scripts/slurm_drill.sh $*"
REPORT=""
for arg in "$@"; do
  case $arg in
    --report=*) REPORT=$(realpath -m "${arg#--report=}") ;;
    *) echo "usage: bash scripts/slurm_drill.sh [--report=FILE]" >&2; exit 2 ;;
  esac
done
cannot() { echo "slurm drill: cannot start SLURM here: $*" >&2; exit 3; }
PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin  # the daemons live there; a non-login root shell may lack them
[ "$(id -u)" = 0 ] || cannot "it needs root (it starts munged, slurmctld and slurmd)"
PYTHON=$(command -v "${PYTHON:-python}") || { echo "error: no python on PATH; set PYTHON" >&2; exit 2; }
VENV=$(cd "$(dirname "$PYTHON")/.." && pwd)  # the environment's prefix, for redact
"$PYTHON" -c "import torch" 2>/dev/null || { echo "error: $PYTHON cannot import torch; set PYTHON" >&2; exit 2; }
MAX_STEPS=100         # a few seconds of training per run on one CPU core
STOP_AFTER_STEP=5     # the preemption signal goes out once this step is logged
JOB_TIMEOUT=600       # seconds any one job may take
# 2 layers, width 64, 32-token context, 256-token vocabulary, 1,024 tokens per step
TRAIN_ARGS=(--vocab_size=256 --n_layer=2 --n_head=2 --n_embd=64 --block_size=32
  --total_batch_tokens=1024 --micro_batch_size=8 --max_steps=$MAX_STEPS --warmup_steps=2
  --eval_interval=25 --val_tokens=512 --log_interval=10 --keep_checkpoints=1000 --compile=false)
RUN=bpe_s1337  # the run sweep.sh makes of ARMS=bpe SEEDS=1337
T0=$SECONDS

rows=()  # "PASS|FAIL|SKIP <tab> check <tab> detail"
record() { rows+=("$1"$'\t'"$2"$'\t'"$3"); }

# ---- packages ------------------------------------------------------------------------------
missing() { for c in sbatch srun scontrol slurmctld slurmd munged; do command -v $c >/dev/null || return 0; done; return 1; }
if missing; then
  command -v apt-get >/dev/null || cannot "SLURM is not installed and there is no apt-get to install it"
  t=$SECONDS
  policy=""  # keep the packages from starting their own services on a host with an init system
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && policy=1
  fi
  install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurmctld slurmd slurm-client munge >/tmp/slurm-drill-apt.log 2>&1; }
  install || { apt-get update -q >/dev/null 2>&1 && install; }
  ok=$?
  [ -z "$policy" ] || rm -f /usr/sbin/policy-rc.d
  [ $ok = 0 ] || cannot "apt-get install slurmctld slurmd slurm-client munge failed (log: /tmp/slurm-drill-apt.log)"
  rm -f /tmp/slurm-drill-apt.log
  record PASS packages "slurmctld slurmd slurm-client munge installed in $((SECONDS - t)) s"
else
  record PASS packages "already installed"
fi
VERSIONS="$(slurmctld -V), $(munged --version 2>&1 | awk '{print $1; exit}'), torch $("$PYTHON" -c 'import torch; print(torch.__version__)')"

# ---- the cluster: everything in one temporary folder ---------------------------------------
WORK=$(mktemp -d /tmp/slurm-drill.XXXXXX)
chmod 755 "$WORK"
CONF=$WORK/slurm.conf
daemons=()  # "name:pid" of every daemon started, stopped in reverse order
slurm() { SLURM_CONF=$CONF "$@"; }

cleanup() {
  local rc=$? pid name left=() stray=()
  trap - EXIT INT TERM
  [ $rc -ne 130 ] || record FAIL interrupted "the drill was stopped by a signal"
  if [ ${#daemons[@]} -gt 1 ]; then  # slurmctld is up: end the jobs before their nodes
    slurm scancel --full $(slurm squeue -h -o %i 2>/dev/null) 2>/dev/null
    for _ in $(seq 60); do [ -z "$(slurm squeue -h 2>/dev/null)" ] && break; sleep 0.5; done
  fi
  for ((i = ${#daemons[@]} - 1; i >= 0; i--)); do
    name=${daemons[i]%%:*} pid=${daemons[i]##*:}
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null; left+=("$name"); fi
  done
  # anything else started here (slurmstepd, job steps) carries SLURM_DRILL=<this folder>
  for env in /proc/[0-9]*/environ; do
    pid=${env#/proc/} pid=${pid%/environ}
    if { tr '\0' '\n' < "$env"; } 2>/dev/null | grep -qx "SLURM_DRILL=$WORK"; then
      kill -KILL "$pid" 2>/dev/null && stray+=("$pid")
    fi
  done
  if [ -n "$REPORT" ]; then  # the jobs' own output goes next to the report, without this machine's paths
    for out in "$WORK"/*.out; do [ -e "$out" ] && redact < "$out" > "$(dirname "$REPORT")/$(basename "$out")"; done
  fi
  rm -rf "$WORK"
  if [ ${#daemons[@]} -gt 0 ]; then
    if [ ${#left[@]} -eq 0 ] && [ ${#stray[@]} -eq 0 ] && [ ! -e "$WORK" ]; then
      record PASS cleanup "${#daemons[@]} daemons stopped by PID (SIGTERM), no process or file left behind"
    else
      record FAIL cleanup "killed: daemons [${left[*]}] and stray PIDs [${stray[*]}]"
    fi
  fi
  report
  if [ $rc -eq 0 ] && printf '%s\n' "${rows[@]}" | grep -q '^FAIL'; then rc=1; fi
  exit $rc
}

# A committed report names no folder of the machine it ran on: the drill's temporary folder
# becomes $WORK, the interpreter's environment <venv> and the checkout <repo>.
redact() {
  local args=()
  [ -z "${WORK:-}" ] || args+=(-e "s|$WORK|\$WORK|g")
  [ ! -f "$VENV/pyvenv.cfg" ] || args+=(-e "s|$VENV|<venv>|g")  # a virtual environment, not /usr
  sed "${args[@]}" -e "s|$REPO|<repo>|g"
}

report() {
  {
    echo "SLURM drill: scripts/sweep.sbatch on a single-machine SLURM ($(date -u '+%Y-%m-%d %H:%M UTC'))"
    echo "machine: $(uname -srm), $(nproc) CPU(s) $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)," \
      "$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)"
    echo "software: $VERSIONS, repo at $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)"
    echo "command: $COMMAND  (PYTHON=$PYTHON), $((SECONDS - T0)) s in all" | redact
    echo
    printf '%-6s %-18s %s\n' result check detail
    for row in "${rows[@]}"; do IFS=$'\t' read -r r c d <<< "$row"; printf '%-6s %-18s %s\n' "$r" "$c" "$d"; done
  } | if [ -n "$REPORT" ]; then mkdir -p "$(dirname "$REPORT")" && tee "$REPORT"; else cat; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_ports() {  # three free TCP ports on 127.0.0.1
  "$PYTHON" -c "
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(('127.0.0.1', 0))
print(*(s.getsockname()[1] for s in socks))"
}

wait_for_file() {  # wait_for_file PATH SECONDS
  for _ in $(seq $(($2 * 4))); do [ -s "$1" ] && return 0; sleep 0.25; done
  return 1
}

start_cluster() {
  local t=$SECONDS host ctld_port n1_port n2_port pid
  host=$(hostname -s)
  read -r ctld_port n1_port n2_port < <(free_ports)
  mkdir -p "$WORK/munge-key" "$WORK/munge" "$WORK/state" "$WORK/spool/n1" "$WORK/spool/n2"
  chmod 700 "$WORK/munge-key"
  head -c 1024 /dev/urandom > "$WORK/munge-key/munge.key" && chmod 400 "$WORK/munge-key/munge.key"
  SLURM_DRILL=$WORK munged --force --key-file="$WORK/munge-key/munge.key" --socket="$WORK/munge/socket" \
    --pid-file="$WORK/munge/munged.pid" --log-file="$WORK/munge/munged.log" --seed-file="$WORK/munge/munged.seed" \
    && wait_for_file "$WORK/munge/munged.pid" 10 || { echo "munged did not start" >&2; return 1; }
  daemons+=("munged:$(cat "$WORK/munge/munged.pid")")
  # no cgroups (proctrack/linuxproc, task/none), root runs everything, two nodes on one address;
  # cred_expire (default 120 s) is also how long SLURM holds a requeued job before it may start
  cat > "$CONF" <<EOF
ClusterName=drill
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$WORK/munge/socket,cred_expire=10
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
JobRequeue=0
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool/%n
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd-%n.pid
SlurmctldLogFile=$WORK/slurmctld.log
SlurmdLogFile=$WORK/slurmd-%n.log
SlurmdParameters=config_overrides
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
NodeName=n1 NodeHostname=$host NodeAddr=127.0.0.1 Port=$n1_port CPUs=1 RealMemory=1000 State=UNKNOWN
NodeName=n2 NodeHostname=$host NodeAddr=127.0.0.1 Port=$n2_port CPUs=1 RealMemory=1000 State=UNKNOWN
PartitionName=drill Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP
EOF
  SLURM_DRILL=$WORK slurmctld -c -f "$CONF" && wait_for_file "$WORK/slurmctld.pid" 20 \
    || { echo "slurmctld did not start: $(tail -n 3 "$WORK/slurmctld.log" 2>/dev/null)" >&2; return 1; }
  daemons+=("slurmctld:$(cat "$WORK/slurmctld.pid")")
  for node in n1 n2; do
    SLURM_DRILL=$WORK slurmd -f "$CONF" -N $node && wait_for_file "$WORK/slurmd-$node.pid" 20 \
      || { echo "slurmd $node did not start: $(tail -n 3 "$WORK/slurmd-$node.log" 2>/dev/null)" >&2; return 1; }
    daemons+=("slurmd-$node:$(cat "$WORK/slurmd-$node.pid")")
  done
  for _ in $(seq 120); do
    [ "$(slurm sinfo -h -N -o '%N %T' 2>/dev/null | sort | tr '\n' ' ')" = "n1 idle n2 idle " ] && break
    sleep 0.5
  done
  local nodes
  nodes=$(slurm sinfo -h -N -o '%N %T' 2>/dev/null | sort | tr '\n' ' ')
  [ "$nodes" = "n1 idle n2 idle " ] || { echo "nodes not idle: $nodes" >&2; return 1; }
  record PASS cluster "munged, slurmctld, slurmd n1 + n2 (both NodeAddr 127.0.0.1) idle in $((SECONDS - t)) s"
}

# submit PHASE NODES [sbatch options]: scripts/sweep.sbatch as a user would submit it, with the
# tiny config and this phase's folders; prints the job id
submit() {
  local phase=$1 nodes=$2
  shift 2
  (cd "$REPO" && SLURM_DRILL=$WORK SLURM_CONF=$CONF PATH="$(dirname "$PYTHON"):$PATH" OMP_NUM_THREADS=1 \
    CONFIG=config/cpu_tiny.py ARMS=bpe SEEDS=1337 LOG_DIR="$WORK/$phase/runs" OUT_DIR="$WORK/$phase/out" \
    sbatch --parsable --nodes="$nodes" --cpus-per-task=1 --job-name="drill-$phase" \
    --output="$WORK/$phase.out" "$@" scripts/sweep.sbatch --data_dir="$WORK/data" "${TRAIN_ARGS[@]}")
}

job_field() {  # job_field JOB FIELD: e.g. JobState, ExitCode, Restarts
  slurm scontrol show job -o "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p"
}

# wait_job JOB: until the job has ended (sbatch --wait backs off to ~30 s between polls); its
# final state in $job_state. It runs in this shell, not in $(...), so that an interrupt is
# handled within a poll.
wait_job() {
  local end=$((SECONDS + JOB_TIMEOUT))
  while [ $SECONDS -lt $end ]; do
    job_state=$(job_field "$1" JobState)
    case $job_state in
      COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED) return ;;
    esac
    sleep 0.25
  done
  job_state="still $job_state after $JOB_TIMEOUT s"
}

show_failure() {  # the end of a job's output and the controller's log, for whoever reads the log of a failed drill
  echo "---- last lines of $1 ----" >&2
  tail -n 25 "$1" >&2 2>/dev/null
  echo "---- last lines of slurmctld.log ----" >&2
  tail -n 15 "$WORK/slurmctld.log" >&2 2>/dev/null
}

check() {  # check ARGS...: one row from scripts/slurm_drill_check.py
  local line
  line=$("$PYTHON" "$REPO/scripts/slurm_drill_check.py" "$@" 2>&1 | tail -n 1)
  IFS=$'\t' read -r r c d <<< "$line"
  case $r in PASS|FAIL) record "$r" "$c" "$d" ;; *) record FAIL "$2" "checker error: $line" ;; esac
  [ "$r" = PASS ]
}

reference_run() {
  local t=$SECONDS
  "$PYTHON" "$REPO/scripts/slurm_drill_check.py" data "$WORK/data" || return 1
  if (cd "$REPO" && OMP_NUM_THREADS=1 timeout $JOB_TIMEOUT "$PYTHON" train.py config/cpu_tiny.py --embedding=bpe \
      --data_dir="$WORK/data" "${TRAIN_ARGS[@]}" --seed=1337 --run_name=$RUN \
      --log_dir="$WORK/plain/runs" --out_dir="$WORK/plain/out" > "$WORK/plain.out" 2>&1); then
    record PASS "plain run" "python train.py config/cpu_tiny.py, $MAX_STEPS steps on 1 process in $((SECONDS - t)) s"
  else
    record FAIL "plain run" "exit $?"; show_failure "$WORK/plain.out"; return 1
  fi
}

sweep_job() {  # sweep_job PHASE NODES: one sbatch job to its end, its losses against the plain run
  local phase=$1 nodes=$2 t=$SECONDS job state rdzv
  job=$(submit "$phase" "$nodes") || { record FAIL "$phase" "sbatch failed"; return 1; }
  wait_job "$job"
  state=$job_state
  rdzv=$(sed -n 's/.*rendezvous \(.*\)$/\1/p' "$WORK/$phase.out" 2>/dev/null | head -n 1)
  if [ "$state" != COMPLETED ]; then
    record FAIL "$phase" "job $job: $state, exit code $(job_field "$job" ExitCode) after $((SECONDS - t)) s (rendezvous ${rdzv:-none})"
    show_failure "$WORK/$phase.out"; return 1
  fi
  check same-losses "$phase" "$WORK/plain/runs/$RUN" "$WORK/$phase/runs/$RUN" "$nodes" 1e-5 \
    || { show_failure "$WORK/$phase.out"; return 1; }
  rows[-1]+="; job $job exit 0 in $((SECONDS - t)) s, rendezvous $rdzv"
}

preempt_job() {  # sbatch --nodes=2, USR1 to the batch shell mid-run, requeue, resume, finish
  local phase=preempt t=$SECONDS job log steps state restarts
  job=$(submit $phase 2) || { record FAIL $phase "sbatch failed"; return 1; }
  log=$WORK/$phase/runs/$RUN/log.jsonl
  local end=$((SECONDS + JOB_TIMEOUT))
  while [ $SECONDS -lt $end ]; do
    steps=$(grep -c '"train_loss"' "$log" 2>/dev/null)
    [ "${steps:-0}" -ge $STOP_AFTER_STEP ] && break
    case $(job_field "$job" JobState) in RUNNING|PENDING|CONFIGURING) ;; *) break ;; esac
    sleep 0.1
  done
  if [ "${steps:-0}" -lt $STOP_AFTER_STEP ]; then
    record FAIL $phase "job $job: $(job_field "$job" JobState) before step $STOP_AFTER_STEP was logged"
    show_failure "$WORK/$phase.out"; return 1
  fi
  slurm scancel --batch --signal=USR1 "$job" || { record FAIL $phase "scancel --batch --signal=USR1 failed"; return 1; }
  # the first attempt ends by requeueing itself: the job goes back to PENDING, not to an end state
  end=$((SECONDS + JOB_TIMEOUT))
  while [ $SECONDS -lt $end ]; do
    [ "$(job_field "$job" Restarts)" -ge 1 ] 2>/dev/null && break
    case $(job_field "$job" JobState) in RUNNING|PENDING|CONFIGURING|COMPLETING|REQUEUED) ;; *) break ;; esac
    sleep 0.25
  done
  wait_job "$job"
  state=$job_state restarts=$(job_field "$job" Restarts)
  if [ "$state" != COMPLETED ] || [ "${restarts:-0}" != 1 ]; then
    record FAIL $phase "job $job: state $state after $restarts restart(s), expected COMPLETED after 1"
    show_failure "$WORK/$phase.out"; return 1
  fi
  check preempted $phase "$WORK/two-nodes/runs/$RUN" "$WORK/$phase/runs/$RUN" "$WORK/$phase/out/$RUN" \
    "$WORK/$phase.out" $MAX_STEPS || { show_failure "$WORK/$phase.out"; return 1; }
  rows[-1]+="; scancel --batch --signal=USR1 job $job, requeued once, $((SECONDS - t)) s"
}

start_cluster || { record FAIL cluster "see the messages above"; exit 1; }
reference_run || exit 1
sweep_job one-node 1
sweep_job two-nodes 2
preempt_job
