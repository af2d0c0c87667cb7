#!/usr/bin/env bash
# The paper's sweep: every seed x arm through torchrun, one run after another.
#
#   bash scripts/sweep.sh                                  # seeds 1337 42 2024 x arms bpe kronecker
#   ARMS="bpe kronecker bpe_untied" NGPU=8 bash scripts/sweep.sh
#   ARMS="bpe bpe_untied bpe_untied_scaled kronecker kronecker_shuffled" bash scripts/sweep.sh   # + controls
#   CONFIG=config/cpu_tiny.py SEEDS=1337 NGPU=1 bash scripts/sweep.sh --max_steps=50   # small sweep
#
# Environment: SEEDS (default "1337 42 2024"), ARMS (default "bpe kronecker"), NGPU (default: the
# number of GPUs, 1 without any), CONFIG (one config for every arm, with --arm=<arm> appended;
# default config/<arm>_124m.py per arm; an arm is a name with a config/<arm>_124m.py, see
# train_config.ARMS), LOG_DIR (default results/runs), OUT_DIR
# (default out), LAUNCH (the launcher; default "torchrun --standalone --nproc_per_node=$NGPU";
# scripts/sweep.sbatch sets a multi-node one). Extra --key=value arguments go to every run.
# Each run is <LOG_DIR>/<arm>_s<seed>: finished runs (run_folder.py decides) are skipped,
# interrupted ones resume from their latest checkpoint (--resume=auto). Failed runs are listed at
# the end (exit 1). PYTHON (default python) answers the "finished?" question.
# Stopping: SIGTERM, SIGUSR1 or Ctrl-C to this script stop the running run after its current
# optimiser step with a checkpoint (the launcher gets SIGTERM, which torchrun forwards to its
# workers; STOP_RUN, if set, is the command that signals it instead) and end the sweep with exit
# code 75, as does a run that exits 75 itself; rerun the same command to resume.
set -uo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-"1337 42 2024"}
ARMS=${ARMS:-"bpe kronecker"}
LOG_DIR=${LOG_DIR:-results/runs}
OUT_DIR=${OUT_DIR:-out}
if [ -z "${NGPU:-}" ]; then
  NGPU=$(nvidia-smi -L 2>/dev/null | wc -l)
  [ "$NGPU" -gt 0 ] || NGPU=1
fi
LAUNCH=${LAUNCH:-"torchrun --standalone --nproc_per_node=$NGPU"}
for arm in $ARMS; do  # a typo stops here (with CONFIG, --arm=<typo> would label a bpe run)
  if [ ! -f "config/${arm}_124m.py" ]; then
    echo "error: unknown arm '$arm' in ARMS (no config/${arm}_124m.py); arms:" \
      "$(cd config && ls ./*_124m.py | sed 's|^\./||; s|_124m\.py$||' | tr '\n' ' ')" >&2
    exit 2
  fi
done
# The launcher runs in the background so that a signal to this script is handled at once (bash
# defers a trap while a foreground command runs); in the background it ignores Ctrl-C, so Ctrl-C
# takes the same checkpointing path as SIGTERM.
stop_signal="" launcher=""
stop_run() {
  stop_signal=$1
  [ -n "$launcher" ] || return 0
  if [ -n "${STOP_RUN:-}" ]; then $STOP_RUN; else kill -TERM "$launcher" 2>/dev/null; fi || true
}
trap 'stop_run SIGTERM' TERM
trap 'stop_run SIGUSR1' USR1
trap 'stop_run SIGINT' INT
# run_launcher CMD...: run it to its end, passing stop signals on; its exit code in $rc
run_launcher() {
  "$@" &
  launcher=$!
  [ -z "$stop_signal" ] || stop_run "$stop_signal"  # a signal that came before the launch
  while true; do
    rc=0
    wait "$launcher" || rc=$?
    kill -0 "$launcher" 2>/dev/null || break  # else a trap interrupted the wait
  done
  launcher=""
}
failed=()
for seed in $SEEDS; do
  for arm in $ARMS; do
    run="${arm}_s${seed}"
    if "${PYTHON:-python}" run_folder.py finished --log_dir "$LOG_DIR" --run_name "$run"; then
      echo "== $run: finished, skipping"
      continue
    fi
    if [ -n "$stop_signal" ]; then
      echo "== stopped by $stop_signal before $run; rerun this command to resume" >&2
      exit 75
    fi
    if [ -n "${CONFIG:-}" ]; then config=("$CONFIG" "--arm=$arm"); else config=("config/${arm}_124m.py"); fi
    echo "== $run: $LAUNCH train.py ${config[*]} $*"
    # shellcheck disable=SC2086  # LAUNCH is a command line
    run_launcher $LAUNCH train.py "${config[@]}" --seed="$seed" --run_name="$run" \
      --log_dir="$LOG_DIR" --out_dir="$OUT_DIR" --resume=auto "$@"
    if [ "$rc" -eq 75 ] || [ -n "$stop_signal" ]; then
      echo "== $run: stopped by ${stop_signal:-a stop signal} at a checkpoint (exit $rc);" \
        "rerun this command to resume" >&2
      exit 75
    fi
    [ "$rc" -eq 0 ] || failed+=("$run")
  done
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed runs: ${failed[*]} (rerun this command to resume them)" >&2
  exit 1
fi
echo "all runs finished; logs in $LOG_DIR"
