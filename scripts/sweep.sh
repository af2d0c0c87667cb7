#!/usr/bin/env bash
# The paper's sweep: every seed x arm through torchrun, one run after another.
#
#   bash scripts/sweep.sh                                  # seeds 1337 42 2024 x arms bpe kronecker
#   ARMS="bpe kronecker bpe_untied" NGPU=8 bash scripts/sweep.sh
#   ARMS="bpe bpe_untied bpe_untied_scaled kronecker kronecker_shuffled" bash scripts/sweep.sh   # + controls
#   CONFIG=config/cpu_tiny.py SEEDS=1337 NGPU=1 LOG_DIR=out/toy/runs OUT_DIR=out/toy/ckpt \
#     bash scripts/sweep.sh --max_steps=50        # a toy sweep: its own folders
#   LRS="3e-4 6e-4 1.2e-3" bash scripts/sweep.sh  # every seed x arm x learning rate
#
# Environment: SEEDS (default "1337 42 2024"), ARMS (default "bpe kronecker"), NGPU (default: the
# number of GPUs, 1 without any), CONFIG (one config for every arm, with --arm=<arm> appended;
# default config/<arm>_124m.py per arm; an arm is a name with a config/<arm>_124m.py, see
# train_config.ARMS), LOG_DIR and OUT_DIR (default: the config's log_dir and out_dir, i.e.
# results/runs and out for the paper configs, out/toy/... for config/cpu_tiny.py), LAUNCH (the
# launcher; default "torchrun --standalone --nproc_per_node=$NGPU"; scripts/sweep.sbatch sets a
# multi-node one), LRS (peak learning rates, e.g. "3e-4 6e-4 1.2e-3"; default: the config's
# max_lr). Extra --key=value arguments go to every run.
# Each run is <LOG_DIR>/<arm>_s<seed>; with LRS, <LOG_DIR>/<arm>_lr<lr>_s<seed> with the lr spelled
# one way (run_folder.py lr_tag: 0.0006 -> 6e-4), trained at --max_lr=<lr> --min_lr=<lr>/10 (the
# cosine ends at a tenth of the peak, as in every config here, so one schedule shape for each
# lr). Before launching anything, run_folder.py compares every
# run's recorded config (config.json) with the one this sweep would launch: a run finished with
# the same config is skipped, an interrupted one resumes from its latest checkpoint
# (--resume=auto), and a folder that holds a different run (a toy run of the same name, another
# size of the ladder) is never skipped nor resumed: one line per such run names the differing
# keys and the sweep stops before any launch (exit 2); give it its own LOG_DIR and OUT_DIR, or
# move those runs aside. PYTHON (default python) answers the "skip?" question (`run_folder.py
# skip`, exit 0 skip, 10 launch, 11 in use, 2 a different run); any other answer (a crash: a
# wrong interpreter, a bug) stops the sweep with its message, exit 2, nothing launched over it.
# A run another process is training (a second sweep over the same runs) is left for later: after
# the other runs the sweep waits until it is free, then skips it if it is finished ("finished
# by another process") or resumes it. Failed runs are listed at the end (exit 1).
# Stopping: SIGTERM, SIGUSR1 or Ctrl-C to this script stop the running run after its current
# optimiser step with a checkpoint (the launcher gets SIGTERM, which torchrun forwards to its
# workers; STOP_RUN, if set, is the command that signals it instead) and end the sweep with exit
# code 75, as does a run that exits 75 itself; rerun the same command to resume.
set -uo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-"1337 42 2024"}
ARMS=${ARMS:-"bpe kronecker"}
if [ -z "${NGPU:-}" ]; then
  NGPU=$(nvidia-smi -L 2>/dev/null | wc -l)
  [ "$NGPU" -gt 0 ] || NGPU=1
fi
LAUNCH=${LAUNCH:-"torchrun --standalone --nproc_per_node=$NGPU"}
LRS=${LRS:-}
SKIP=0 LAUNCH_IT=10 IN_USE=11  # run_folder.py skip's answers (SKIP_EXIT_CODE etc. there)
for arm in $ARMS; do  # a typo stops here (with CONFIG, --arm=<typo> would label a bpe run)
  if [ ! -f "config/${arm}_124m.py" ]; then
    echo "error: unknown arm '$arm' in ARMS (no config/${arm}_124m.py); arms:" \
      "$(cd config && ls ./*_124m.py | sed 's|^\./||; s|_124m\.py$||' | tr '\n' ' ')" >&2
    exit 2
  fi
done
# variants: one "arm" per arm, or with LRS one "arm@lr" per arm and learning rate
variants=$ARMS
if [ -n "$LRS" ]; then
  for arg in "$@"; do
    if [[ $arg == --max_lr=* ]]; then
      echo "error: $arg and LRS both set the learning rate; drop one" >&2
      exit 2
    fi
  done
  # shellcheck disable=SC2086  # LRS is a list
  lr_tags=$("${PYTHON:-python}" run_folder.py lr_tag $LRS) || exit 2
  variants=""
  for arm in $ARMS; do for lr in $lr_tags; do variants+="$arm@$lr "; done; done
fi
# The launcher runs in the background so that a signal to this script is handled at once (bash
# defers a trap while a foreground command runs); in the background it ignores Ctrl-C, so Ctrl-C
# takes the same checkpointing path as SIGTERM.
stop_signal="" launcher="" waiting=""
stop_run() {
  stop_signal=$1
  [ -n "$launcher" ] || return 0
  if [ -n "${STOP_RUN:-}" ] && [ -z "$waiting" ]; then $STOP_RUN; else kill -TERM "$launcher" 2>/dev/null; fi || true
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
run_args() {  # run_args ARM[@LR] SEED [--key=value ...]: sets run, config and args (train.py's arguments)
  local arm=${1%@*} lr_args=()
  run="${arm}_s$2"
  if [[ $1 == *@* ]]; then  # min_lr = lr / 10: the tag's exponent minus one (6e-4 -> 6e-5), exact
    local lr=${1#*@}
    run="${arm}_lr${lr}_s$2"
    lr_args=(--max_lr="$lr" --min_lr="${lr%e*}e$((${lr#*e} - 1))")
  fi
  if [ -n "${CONFIG:-}" ]; then config=("$CONFIG" "--arm=$arm"); else config=("config/${arm}_124m.py"); fi
  args=("${config[@]}" --seed="$2" --run_name="$run" ${LOG_DIR:+"--log_dir=$LOG_DIR"}
        ${OUT_DIR:+"--out_dir=$OUT_DIR"} --resume=auto
        ${lr_args[@]+"${lr_args[@]}"} "${@:3}")  # (an empty array is "unbound" to bash < 4.4)
}
ask() {  # ask: run_folder.py skip's answer for the current args in $answer
  answer=0
  "${PYTHON:-python}" run_folder.py skip -- "${args[@]}" || answer=$?
}
stop_if_signalled() {  # stop_if_signalled WHERE: exit 75 if a stop signal came
  if [ -n "$stop_signal" ]; then
    echo "== stopped by $stop_signal $1; rerun this command to resume" >&2
    exit 75
  fi
}
broken_answer() {  # the check itself failed: say so and stop, launching nothing over the run
  stop_if_signalled "before $run"  # e.g. Ctrl-C, which also ends the check it interrupted
  echo "error: cannot tell whether $run is finished: \`${PYTHON:-python} run_folder.py skip\`" \
    "exited $answer (its output above); nothing launched for it; fix that and rerun this command" >&2
  exit 2
}
# Every run is checked before any is launched, so a clash stops the sweep with nothing started
# (rather than after hours of other runs) and a bad --key=value is found here too.
skip=" " clash=0
for seed in $SEEDS; do
  for variant in $variants; do
    run_args "$variant" "$seed" "$@"
    ask
    case $answer in
      "$SKIP") skip+="$run "; echo "== $run: finished, skipping" ;;
      "$LAUNCH_IT"|"$IN_USE") ;;
      2) clash=1 ;;  # run_folder.py said why, in one line
      *) broken_answer ;;
    esac
  done
done
stop_if_signalled "before any run"
if [ "$clash" -ne 0 ]; then
  echo "error: nothing launched (the lines above say why); rerun this command once they are resolved" >&2
  exit 2
fi
# launch ARM SEED: train the run; one in use by another process is put off (later); one that
# fails is asked about again: another process may have finished it, or be training it
failed=() later=()
launch() {
  run_args "$@"
  stop_if_signalled "before $run"
  echo "== $run: $LAUNCH train.py ${config[*]}${3:+ ${*:3}}"
  # shellcheck disable=SC2086  # LAUNCH is a command line
  run_launcher $LAUNCH train.py "${args[@]}"
  if [ "$rc" -eq 75 ] || [ -n "$stop_signal" ]; then
    echo "== $run: stopped by ${stop_signal:-a stop signal} at a checkpoint (exit $rc);" \
      "rerun this command to resume" >&2
    exit 75
  fi
  [ "$rc" -ne 0 ] || return 0
  ask
  case $answer in
    "$SKIP") echo "== $run: finished by another process" ;;
    "$IN_USE") later+=("$1 $2"); echo "== $run: being trained by another process; back to it after the other runs" ;;
    "$LAUNCH_IT") failed+=("$run") ;;
    *) broken_answer ;;
  esac
}
for seed in $SEEDS; do
  for variant in $variants; do
    run_args "$variant" "$seed" "$@"
    [[ "$skip" != *" $run "* ]] || continue
    launch "$variant" "$seed" "$@"
  done
done
# The runs another process was training: wait until it is done with each, then skip or resume it
while [ ${#later[@]} -gt 0 ]; do
  read -r variant seed <<< "${later[0]}"
  later=("${later[@]:1}")
  run_args "$variant" "$seed" "$@"
  echo "== $run: waiting for the other process training it"
  waiting=1
  run_launcher "${PYTHON:-python}" run_folder.py wait -- "${args[@]}"
  waiting=""
  stop_if_signalled "while waiting for $run"
  ask
  case $answer in
    "$SKIP") echo "== $run: finished by another process" ;;
    "$LAUNCH_IT") launch "$variant" "$seed" "$@" ;;  # the other stopped before the end: resume it
    "$IN_USE") later+=("$variant $seed") ;;  # taken again meanwhile
    *) broken_answer ;;
  esac
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed runs: ${failed[*]} (rerun this command to resume them)" >&2
  exit 1
fi
echo "all runs finished; logs in ${LOG_DIR:-the log_dir of the config}"
