#!/usr/bin/env bash
# Quickstart: the whole pipeline at toy scale, in about five minutes on a 2-core CPU.
#
#   bash scripts/quickstart.sh                 # FineWeb-Edu streamed from the Hugging Face hub
#   DATA_FILES="a.jsonl b.parquet" bash scripts/quickstart.sh      # local text files instead
#   bash scripts/quickstart.sh --max_steps=10  # extra --key=value arguments go to train.py
#
# Prepares a small FineWeb-Edu slice, trains config/quickstart.py for the bpe and kronecker arms,
# then runs the eval scripts. Tables, plots and run logs go to $OUT (default out/quickstart, which
# git ignores, so a rerun continues there and the tree stays clean), shards to $DATA_DIR (default
# data/quickstart), checkpoints to $CKPT_DIR (default out/quickstart/ckpt). results/quickstart/
# holds the committed reference output to compare with. Offline, when ../shared/ exists beside
# the repo, its FineWeb-Edu sample and tiktoken cache are used.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/quickstart}
DATA_DIR=${DATA_DIR:-data/quickstart}
CKPT_DIR=${CKPT_DIR:-out/quickstart/ckpt}
SEED=${SEED:-1337}
SHARED_SAMPLE=../shared/data/fineweb_edu_sample/sample.jsonl
if [ -z "${DATA_FILES:-}" ] && [ -f "$SHARED_SAMPLE" ]; then DATA_FILES=$SHARED_SAMPLE; fi
source_args=()
# shellcheck disable=SC2206  # DATA_FILES is a space-separated list of paths
if [ -n "${DATA_FILES:-}" ]; then source_args=(--data-files $DATA_FILES); fi

echo "== 1/4 preparing data in $DATA_DIR"
python data/fineweb_edu.py "${source_args[@]}" --out "$DATA_DIR" --val-tokens 16384 \
  --shard-tokens 1000000 --train-tokens 1000000

echo "== 2/4 training the bpe and kronecker arms"
for arm in bpe kronecker; do
  python train.py config/quickstart.py --embedding="$arm" --seed="$SEED" --data_dir="$DATA_DIR" \
    --log_dir="$OUT/runs" --out_dir="$CKPT_DIR" "$@"
done

echo "== 3/4 tables and plots"
python -m eval.summarize --runs "$OUT/runs" --out "$OUT"
python -m eval.plot_curves --runs "$OUT/runs" --out "$OUT"
python -m eval.steps_to_target --runs "$OUT/runs" --baseline bpe --arm kronecker | tee "$OUT/steps_to_target.txt"
python -m eval.norm_drift --runs "$OUT/runs" | tee "$OUT/norm_drift.txt"

echo "== 4/4 validation loss of the final checkpoints"
checkpoints=()
for arm in bpe kronecker; do
  checkpoints+=("$(ls "$CKPT_DIR/${arm}_s$SEED"/ckpt_*.pt | tail -n 1)")
done
python -m eval.val_loss "${checkpoints[@]}" --out "$OUT/val_loss.json"

echo
python -m eval.quickstart_report --runs "$OUT/runs" --out "$OUT"  # computed from the runs, vs results/quickstart/
