#!/usr/bin/env bash
# The paper's sweep: every seed x arm through torchrun, one run after another.
#
#   bash scripts/sweep.sh                                  # seeds 1337 42 2024 x arms bpe kronecker
#   ARMS="bpe kronecker bpe_untied" NGPU=8 bash scripts/sweep.sh
#   ARMS="bpe bpe_untied bpe_untied_scaled kronecker kronecker_shuffled" bash scripts/sweep.sh   # + controls
#   CONFIG=config/cpu_tiny.py SEEDS=1337 NGPU=1 bash scripts/sweep.sh --max_steps=50   # small sweep
#
# Environment: SEEDS (default "1337 42 2024"), ARMS (default "bpe kronecker"; an arm is a name with
# a config/<arm>_124m.py, see train_config.ARMS), NGPU (default: the number of GPUs, 1 without
# any), CONFIG (one config for every arm, with --arm=<arm> appended; default config/<arm>_124m.py),
# LOG_DIR (default results/runs), OUT_DIR (default out), LAUNCH (the launcher; default "torchrun
# --standalone --nproc_per_node=$NGPU"; scripts/sweep.sbatch sets a multi-node one). Extra
# --key=value arguments go to every run. Each run is <LOG_DIR>/<arm>_s<seed>: runs with a
# summary.json are skipped, interrupted ones resume from their latest checkpoint (--resume=auto).
# Failed runs are listed at the end.
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
failed=()
for seed in $SEEDS; do
  for arm in $ARMS; do
    run="${arm}_s${seed}"
    if [ -f "$LOG_DIR/$run/summary.json" ]; then
      echo "== $run: finished, skipping"
      continue
    fi
    if [ -n "${CONFIG:-}" ]; then config=("$CONFIG" "--arm=$arm"); else config=("config/${arm}_124m.py"); fi
    echo "== $run: $LAUNCH train.py ${config[*]} $*"
    # shellcheck disable=SC2086  # LAUNCH is a command line
    $LAUNCH train.py "${config[@]}" --seed="$seed" --run_name="$run" --log_dir="$LOG_DIR" \
      --out_dir="$OUT_DIR" --resume=auto "$@" || failed+=("$run")
  done
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed runs: ${failed[*]} (rerun this command to resume them)" >&2
  exit 1
fi
echo "all runs finished; logs in $LOG_DIR"
