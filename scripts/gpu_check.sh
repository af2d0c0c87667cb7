#!/usr/bin/env bash
# One-GPU check, offline: benchmarks on CUDA, then a short compiled bf16 run of train.py.
#
# Needs python3 (or $PYTHON) with torch, numpy and tiktoken, and the folder data/gpu_check/
# made by scripts/gpu_check_prepare.sh (git-ignored: carry it). Phases,
# each under its own time limit so the whole script ends within 8 minutes:
#   1. bench_embedding.py on CUDA, both shapes;
#   2. bench_train.py on CUDA at 124M (bpe vs kronecker, bf16, torch.compile, MFU);
#   3. torchrun --nproc_per_node=1 train.py config/kronecker_124m.py, 300 steps of 131k tokens,
#      compile and bf16, with TORCH_LOGS=recompiles;
#   4. gpu_check_summary.py: loss falls, no per-step recompiles, timing; writes one JSON.
# Output: $OUT/gpu_check.json when $OUT is set, else results/gpu/gpu_check_<date>_<device>.json.
#
#   scripts/gpu_check_prepare.sh && scripts/gpu_check.sh
#   OUT=/tmp/check scripts/gpu_check.sh --cpu-tiny      # the same phases at toy sizes on CPU (~2 min)
set -uo pipefail
cd "$(dirname "$0")/.."
DATA=data/gpu_check
WORK=$(mktemp -d)
DEST=${OUT:+$OUT/gpu_check.json}
DEST=${DEST:-results/gpu}
if [ ! -f "$DATA/val_000000.bin" ]; then
  echo "error: $DATA/val_000000.bin not found; run scripts/gpu_check_prepare.sh first (and carry $DATA)" >&2
  exit 2
fi
export TIKTOKEN_CACHE_DIR="$PWD/$DATA/tiktoken_cache"  # GPT-2's BPE files, read offline
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c "import tiktoken, numpy, torch" 2>/dev/null; then
  echo "error: $PYTHON lacks torch, numpy or tiktoken; install them or carry them as wheels" >&2
  exit 2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

phase() {  # phase NAME SECONDS COMMAND...: run with a time limit, record exit code and seconds
  local name=$1 limit=$2 start=$SECONDS
  shift 2
  echo "=== $name (limit ${limit}s)"
  timeout "$limit" "$@"
  local rc=$?
  printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - start))" >> "$WORK/phases.tsv"
}

if [ "${1:-}" = "--cpu-tiny" ]; then  # the same phases at toy sizes on CPU, to test this script
  EMB=(--device cpu --shapes tiny --repeats 2 --warmup 1)
  TRAIN=(--device cpu --preset tiny --steps 2 --warmup 1 --compile true --compile-backend aot_eager)
  RUN=(config/cpu_tiny.py --max_steps=30 --warmup_steps=3 --eval_interval=15 --val_tokens=8192
       --compile=false --dtype=float32)
  MIN_DROP=0.5
else
  EMB=(--device cuda --repeats 20)
  TRAIN=(--device cuda --preset 124m --batch-size 64 --steps 15 --warmup 3)
  RUN=(config/kronecker_124m.py --max_steps=300 --warmup_steps=30 --total_batch_tokens=131072
       --micro_batch_size=64 --eval_interval=100 --val_tokens=131072 --log_interval=25
       --compile=true --dtype=bfloat16)
  MIN_DROP=1.0
fi

phase bench_embedding 75 "$PYTHON" scripts/bench_embedding.py "${EMB[@]}" \
  --tokens-file "$DATA/train_000001.bin" --json "$WORK/bench_embedding.json"
phase bench_train 195 "$PYTHON" scripts/bench_train.py "${TRAIN[@]}" --arms bpe kronecker \
  --tokens-file "$DATA/train_000001.bin" --json "$WORK/bench_train.json"
phase train 180 env TORCH_LOGS=recompiles "$PYTHON" -m torch.distributed.run --standalone --nproc_per_node=1 train.py \
  "${RUN[@]}" --embedding=kronecker --data_dir="$DATA" --keep_checkpoints=1 --resume=never \
  --run_name=gpu_check --log_dir="$WORK/runs" --out_dir="$WORK/out" 2> "$WORK/train.stderr"
tail -n 20 "$WORK/train.stderr"
"$PYTHON" scripts/gpu_check_summary.py "$WORK" "$DEST" --min-loss-drop "$MIN_DROP"
rc=$?
rm -rf "$WORK/out"
echo "work folder: $WORK"
exit $rc
