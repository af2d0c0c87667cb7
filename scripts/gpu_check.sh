#!/usr/bin/env bash
# One-GPU check, offline, in under 8 minutes: benchmarks on CUDA, then train.py's paper path
# (DDP + torch.compile + bf16) with a checkpoint and a resume, on gloo and on nccl.
#
# Needs python3 (or $PYTHON) with torch, numpy and tiktoken, and the folder data/gpu_check/
# made by scripts/gpu_check_prepare.sh (git-ignored: carry it). Phases, each under `timeout`
# with its budget (seconds; they add up to 420, so the script ends within 8 minutes):
#   bench_embedding   45  bench_embedding.py on CUDA, both shapes
#   bench_train      150  bench_train.py at 124M, bpe vs kronecker, bf16, compile (fullgraph),
#                         2 warm-up steps excluded, tok/s, MFU against the device's peak
#   gloo_train        90  torchrun --nproc_per_node=2 train.py on the one GPU, dist_backend=gloo
#                         (CUDA tensors over gloo: DDP + compile + bf16 together), 20 steps of
#                         a small Kronecker GPT (4 x 256, 17M parameters, checkpoints ~0.2 GB)
#   gloo_resume       45  the same command extended to 30 steps: resumes from step 20's checkpoint
#   nccl_train        45  the same on 1 process with dist_backend=nccl (DDP over NCCL)
#   nccl_resume       45  ... and its resume to 30 steps
# every train.py launch runs with TORCH_LOGS=recompiles; train.py marks the steps that compiled
# ("compile_step" in log.jsonl). gpu_check_summary.py then judges the run and writes one JSON:
# $OUT/gpu_check.json when $OUT is set, else results/gpu/<date>_<device>.json; it names any phase
# that ran out of time. Exit code 1 if a check failed.
#
#   scripts/gpu_check_prepare.sh && scripts/gpu_check.sh
#   OUT=/tmp/check scripts/gpu_check.sh --cpu-tiny   # the same phases on CPU at toy sizes, compile
#                                                    # and bf16 on; the "nccl" phases use gloo there
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
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true

record() {  # record NAME EXIT_CODE START_SECONDS BUDGET: one line of phases.tsv
  [ "$2" -eq 124 ] && echo "=== $1 ran out of time (budget ${4}s)"
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$((SECONDS - $3))" "$4" >> "$WORK/phases.tsv"
}

phase() {  # phase NAME BUDGET COMMAND...: run under timeout and record it
  local name=$1 limit=$2 start=$SECONDS
  shift 2
  echo "=== $name (budget ${limit}s)"
  timeout "$limit" "$@"
  record "$name" $? "$start" "$limit"
}

if [ "${1:-}" = "--cpu-tiny" ]; then  # toy sizes on CPU, to rehearse this script: budgets x 4
  MODE=cpu-tiny SCALE=4 NCCL=gloo MIN_DROP=0.3 MAX_SECONDS=1680
  EMB=(--device cpu --shapes tiny --repeats 2 --warmup 1)
  TRAIN=(--device cpu --preset tiny --steps 2 --warmup 2 --compile true --dtype bfloat16)
  MODEL=(--n_layer=1 --n_head=2 --n_embd=32 --block_size=32 --micro_batch_size=2 --total_batch_tokens=128
         --max_lr=1e-2 --min_lr=1e-3 --warmup_steps=2 --val_tokens=1024 --device=cpu)
  STEPS=(6 9)
else
  MODE=gpu SCALE=1 NCCL=nccl MIN_DROP=1.0 MAX_SECONDS=480
  EMB=(--device cuda --repeats 20)
  TRAIN=(--device cuda --preset 124m --batch-size 32 --steps 10 --warmup 2 --compile true --dtype bfloat16)
  MODEL=(--n_layer=4 --n_head=4 --n_embd=256 --micro_batch_size=16 --total_batch_tokens=65536
         --max_lr=1e-3 --min_lr=1e-4 --warmup_steps=5 --val_tokens=65536 --device=cuda)
  STEPS=(20 30)
fi

train_phase() {  # train_phase PHASE RUN_NAME NPROC BACKEND MAX_STEPS BUDGET: one torchrun launch
  local limit=$((SCALE * $6)) start=$SECONDS
  echo "=== $1 (budget ${limit}s)"
  TORCH_LOGS=recompiles timeout "$limit" "$PYTHON" -m torch.distributed.run --standalone \
    --nproc_per_node="$3" train.py config/kronecker_124m.py "${MODEL[@]}" --compile=true \
    --dtype=bfloat16 --dist_backend="$4" --max_steps="$5" --eval_interval=$((STEPS[0] / 2)) \
    --ckpt_interval=$((STEPS[0] / 2)) \
    --log_interval=5 --keep_checkpoints=1 --allow_change=max_steps --data_dir="$DATA" --run_name="$2" \
    --log_dir="$WORK/runs" --out_dir="$WORK/out" > "$WORK/$1.stdout" 2> "$WORK/$1.stderr"
  record "$1" $? "$start" "$limit"
  tail -n 2 "$WORK/$1.stdout"
}

phase bench_embedding $((SCALE * 45)) "$PYTHON" scripts/bench_embedding.py "${EMB[@]}" \
  --tokens-file "$DATA/train_000001.bin" --json "$WORK/bench_embedding.json"
phase bench_train $((SCALE * 150)) "$PYTHON" scripts/bench_train.py "${TRAIN[@]}" --arms bpe kronecker \
  --tokens-file "$DATA/train_000001.bin" --json "$WORK/bench_train.json"
train_phase gloo_train gloo 2 gloo "${STEPS[0]}" 90
train_phase gloo_resume gloo 2 gloo "${STEPS[1]}" 45   # extends the finished run: resumes
train_phase nccl_train nccl 1 "$NCCL" "${STEPS[0]}" 45
train_phase nccl_resume nccl 1 "$NCCL" "${STEPS[1]}" 45

"$PYTHON" scripts/gpu_check_summary.py "$WORK" "$DEST" --mode "$MODE" --min-loss-drop "$MIN_DROP" \
  --max-seconds "$MAX_SECONDS" --resume-steps "${STEPS[0]}" "${STEPS[1]}"
rc=$?
rm -rf "$WORK/out"  # the checkpoints; the logs stay in the work folder
echo "work folder: $WORK"
exit $rc
