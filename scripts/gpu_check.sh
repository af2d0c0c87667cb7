#!/usr/bin/env bash
# One-GPU check, v2: every question of issue 23 answered on one H100/H200, offline, in at most
# 6 minutes (a 15-minute device window then holds a rerun). docs/performance.md#gpu-check says what
# each phase answers and how to run it with the device tool.
#
# Needs python3 (or $PYTHON) with torch, numpy and tiktoken, and data/gpu_check/ made here by
# scripts/gpu_check_prepare.sh (git-ignored: carry it). Phases in order of importance, each under
# `timeout -k 5` with its budget (seconds on a GPU) cut to what is left before the 345 s deadline, so
# a hung phase costs its budget and no more and the script ends within 6 minutes (the summary takes
# the last seconds); a phase with under 5 s left is skipped and named:
#   layer          20  bench_embedding.py: nn.Embedding vs every Kronecker mode at the 124M micro-batch
#                      (64 x 1024 tokens) and the frontier shape: fwd+bwd, memory, repeat-identical grads
#   ratio_124m    100  bench_train.py, GPT-2 124M, micro-batch 64, bf16, compiled: bpe vs kronecker in
#                      every mode, alternated: step ratio, MFU, memory; 2 profiled steps per arm (top
#                      CUDA kernels, the input side's share)
#   train_a        50  train.py at the 124M shape (kronecker, 64 x 1024 tokens = one micro-step per step,
#                      constant lr after 5 warm-up steps), 30 steps
#   train_b        25  the same to 20 steps (its checkpoint at 20)
#   checkpoint_io  10  bench_checkpoint.py: writing and reading b's checkpoint on this disk
#   resume_b       22  b resumed to 30 steps; the summary compares a and b (determinism: steps 1-20;
#                      resume: steps 21-30) within stated tolerances
#   nccl_probe     20  gpu_check_nccl.py: a 2-rank NCCL all-reduce on the one GPU, plain (NCCL refuses:
#                      Duplicate GPU) and as two NCCL "hosts" (NCCL_HOSTID each, sockets on lo)
#   two_process    35  train.py on 2 processes of 32 sequences (a's 65,536 tokens per step), 10 steps:
#                      NCCL as two hosts if the probe passed, else one torchrun with gloo on CUDA tensors
#   paper_shape    35  bench_train.py at the paper's V 131,072, pos_dim 32 (config/kronecker_frontier_124m.py's
#                      model, micro-batch 16): kronecker vs bpe step ratio, input-side memory
#   microbatch     28  bench_train.py 124M kronecker at micro-batch 32 and 128: tok/s, max_memory_allocated
# On a cold machine (nothing compiled yet) the last phases may not fit: they are then named as
# skipped, and `--only=paper_shape,microbatch` answers them in a second run of the same window.
# gpu_check_summary.py then judges the run and writes one JSON: $OUT/gpu_check.json when $OUT is set,
# else results/gpu/<date>_<device>.json. Every phase's stdout, stderr, log.jsonl, bench JSON and
# profiler table are packed after each phase into $OUT/gpu_check_logs.tar.gz (the device tool
# brings back at most 8 files; without $OUT the pack stays in the work folder, whose path is
# printed). Exit code 1 if a check failed, 2 for bad usage.
#
#   scripts/gpu_check_prepare.sh && scripts/gpu_check.sh
#   scripts/gpu_check.sh --only=train,two_process   # a rerun of some groups: layer, ratio_124m, train
#                                                   # (train_a..resume_b), two_process, paper_shape, microbatch
#   OUT=/tmp/check scripts/gpu_check.sh --cpu-tiny  # every phase on CPU at toy sizes (gloo for NCCL;
#                                                   # train.py eager: CPU_TINY_COMPILE=true for inductor)
set -uo pipefail
cd "$(dirname "$0")/.."
MODE=gpu ONLY=all
for arg in "$@"; do
  case $arg in
    --cpu-tiny) MODE=cpu-tiny ;;
    --only=*) ONLY=${arg#--only=} ;;
    *) echo "error: unknown argument '$arg'; usage: scripts/gpu_check.sh [--cpu-tiny] [--only=GROUP,...]" >&2
       exit 2 ;;
  esac
done
KNOWN_GROUPS="layer ratio_124m train two_process paper_shape microbatch"
for group in ${ONLY//,/ }; do
  if [ "$ONLY" != all ] && [[ " $KNOWN_GROUPS " != *" $group "* ]]; then
    echo "error: --only: unknown group '$group'; choose from: ${KNOWN_GROUPS// /, }" >&2
    exit 2
  fi
done
DATA=data/gpu_check
if [ ! -f "$DATA/val_000000.bin" ]; then
  echo "error: $DATA/val_000000.bin not found; run scripts/gpu_check_prepare.sh first (and carry $DATA)" >&2
  exit 2
fi
export TIKTOKEN_CACHE_DIR="$PWD/$DATA/tiktoken_cache"  # GPT-2's BPE files, read offline
export PYTHONUNBUFFERED=1
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c "import tiktoken, numpy, torch" 2>/dev/null; then
  echo "error: $PYTHON lacks torch, numpy or tiktoken; install them or carry them as wheels" >&2
  exit 2
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
DEST=${OUT:+$OUT/gpu_check.json}
DEST=${DEST:-results/gpu}
LOGS=${OUT:+$OUT/gpu_check_logs.tar.gz}
LOGS=${LOGS:-$WORK/gpu_check_logs.tar.gz}
TOKENS=$DATA/train_000001.bin
PORT=$((20000 + $$ % 20000))  # torchrun's rendezvous; two_process uses PORT + 1
if command -v nvidia-smi > /dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee "$WORK/nvidia-smi.txt"
fi

if [ "$MODE" = cpu-tiny ]; then  # toy sizes on CPU, budgets x 10; the benches trace (aot_eager), train.py
  SCALE=10 BACKEND=gloo DEVICE=cpu A=6 B=4 PAIR=3 HALF=2 COMPILE=${CPU_TINY_COMPILE:-false}  # runs eager
  EMB=(--shapes tiny --repeats 2 --warmup 1)
  BENCH=(--preset tiny --pos-dim 4 --steps 2 --warmup 1 --compile true --compile-backend aot_eager --dtype bfloat16)
  RATIO=(--batch-sizes 2 --profile 1) PAPER=(--batch-sizes 2 --steps 2) MICRO=(--batch-sizes 1 4)
  MODEL=(--n_layer=1 --n_head=2 --n_embd=32 --block_size=32 --micro_batch_size=4 --total_batch_tokens=128
         --max_lr=1e-2 --min_lr=1e-2 --warmup_steps=2 --val_tokens=512)
  MIN_DROP=0.3
else
  SCALE=1 BACKEND=nccl DEVICE=cuda A=30 B=20 PAIR=10 HALF=32 COMPILE=true
  EMB=(--shapes 124m frontier --batch 64 --repeats 20 --warmup 3)
  BENCH=(--preset 124m --steps 15 --warmup 3)
  RATIO=(--batch-sizes 64 --profile 2) PAPER=(--batch-sizes 16 --steps 10 --warmup 2)
  MICRO=(--batch-sizes 32 128 --steps 6 --warmup 2)
  MODEL=(--micro_batch_size=64 --total_batch_tokens=65536 --max_lr=1e-3 --min_lr=1e-3 --warmup_steps=5
         --val_tokens=131072)
  MIN_DROP=1.0
fi
DEADLINE=$((SCALE * 345)) KILL_AFTER=5 MIN_PHASE=5
# min_lr = max_lr: the lr after warm-up does not depend on max_steps, so a (30 steps) and b (20,
# then resumed to 30) train the same schedule; evals only at step 0 and the last step
TRAIN=("$PYTHON" train.py config/kronecker_124m.py "${MODEL[@]}" --device="$DEVICE" --compile="$COMPILE"
       --dtype=bfloat16 --eval_interval=1000 --log_interval=10 --keep_checkpoints=1 --allow_change=max_steps
       --data_dir="$DATA"
       --log_dir="$WORK/runs" --out_dir="$WORK/out")

wants() {  # wants GROUP: whether --only (default all) names it
  [ "$ONLY" = all ] || [[ ",$ONLY," == *",$1,"* ]]
}

bundle() {  # pack every phase's records so far into $LOGS (checkpoints left out)
  tar -czf "$LOGS.tmp" -C "$WORK" --exclude=./out --exclude="./$(basename "$LOGS")*" . 2>/dev/null \
    && mv "$LOGS.tmp" "$LOGS"
}

phase() {  # phase NAME BUDGET COMMAND...: run under timeout -k, outputs to NAME.stdout/.stderr, record
  local name=$1 budget=$((SCALE * $2)) start=$SECONDS left=$((DEADLINE - SECONDS)) rc
  shift 2
  if [ "$left" -lt "$MIN_PHASE" ]; then
    echo "=== $name skipped: ${left}s left of the ${DEADLINE}s deadline"
    printf '%s\tskipped\t0\t%s\n' "$name" "$budget" >> "$WORK/phases.tsv"
    return
  fi
  [ "$budget" -gt "$left" ] && budget=$left
  echo "=== $name (budget ${budget}s)"
  timeout -k "$KILL_AFTER" "$budget" "$@" > "$WORK/$name.stdout" 2> "$WORK/$name.stderr"
  rc=$?
  case $rc in 124|137) echo "=== $name ran out of time (budget ${budget}s)" ;; esac
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - start))" "$budget" >> "$WORK/phases.tsv"
  tail -n 4 "$WORK/$name.stdout"
  [ "$rc" -eq 0 ] || tail -n 8 "$WORK/$name.stderr"
  bundle
}

two_hosts() {  # two_hosts PORT ARGS...: torchrun ARGS as two single-process "nodes" of this machine,
  local port=$1 rc=0 pids=() node  # each its own NCCL host (NCCL_HOSTID), joined over sockets on lo
  shift
  for node in 0 1; do
    NCCL_HOSTID="gpu-check-host-$node" NCCL_NET=Socket NCCL_SOCKET_IFNAME=lo NCCL_IB_DISABLE=1 NCCL_DEBUG=WARN \
      "$PYTHON" -m torch.distributed.run --nnodes=2 --nproc_per_node=1 --node_rank="$node" \
      --master_addr=127.0.0.1 --master_port="$port" "$@" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || rc=$?; done
  return "$rc"
}

nccl_probe() {  # the plain 2-rank attempt (its answer, not its exit code, is the point), then two hosts
  timeout -k 2 $((SCALE * 12)) "$PYTHON" -m torch.distributed.run --standalone --nproc_per_node=2 scripts/gpu_check_nccl.py \
    --backend "$BACKEND" --json "$WORK/nccl_plain.json"
  two_hosts "$PORT" scripts/gpu_check_nccl.py --backend "$BACKEND" --json "$WORK/nccl_hosts.json"
  test -f "$WORK/nccl_hosts.rank0.json"  # the probe answered (yes or no)
}

two_process() {  # two_process TRAIN_ARGS...: train.py on 2 processes: NCCL as two hosts if the probe
  local args=("$@" --run_name=pair --max_steps="$PAIR" --micro_batch_size="$HALF")  # passed, else gloo
  if grep -qs '"ok": true' "$WORK/nccl_hosts.rank0.json"; then
    TORCH_LOGS=recompiles two_hosts "$((PORT + 1))" "${args[@]}" --dist_backend="$BACKEND"
  else
    TORCH_LOGS=recompiles "$PYTHON" -m torch.distributed.run --standalone --nproc_per_node=2 "${args[@]}" \
      --dist_backend=gloo
  fi
}
export -f two_hosts nccl_probe two_process  # phase runs them through bash -c
export PYTHON BACKEND WORK PORT PAIR HALF SCALE

if wants layer; then
  phase layer 20 "$PYTHON" scripts/bench_embedding.py --device "$DEVICE" "${EMB[@]}" --tokens-file "$TOKENS" \
    --json "$WORK/layer.json"
fi
if wants ratio_124m; then
  phase ratio_124m 100 "$PYTHON" scripts/bench_train.py --device "$DEVICE" "${BENCH[@]}" "${RATIO[@]}" \
    --arms bpe kronecker --kronecker-modes all --profile-dir "$WORK" --tokens-file "$TOKENS" \
    --json "$WORK/ratio_124m.json"
fi
if wants train; then
  phase train_a 50 env TORCH_LOGS=recompiles "${TRAIN[@]}" --run_name=a --max_steps="$A"
  phase train_b 25 env TORCH_LOGS=recompiles "${TRAIN[@]}" --run_name=b --max_steps="$B"
  phase checkpoint_io 10 "$PYTHON" scripts/bench_checkpoint.py "$(printf '%s/out/b/ckpt_%06d.pt' "$WORK" "$B")" \
    --dir "$WORK" --device "$DEVICE" --json "$WORK/checkpoint_io.json"
  phase resume_b 22 env TORCH_LOGS=recompiles "${TRAIN[@]}" --run_name=b --max_steps="$A"  # resumes at B
fi
if wants two_process; then
  phase nccl_probe 20 bash -c nccl_probe
  phase two_process 35 bash -c 'two_process "$@"' two_process "${TRAIN[@]:1}"
fi
if wants paper_shape; then
  phase paper_shape 35 "$PYTHON" scripts/bench_train.py --device "$DEVICE" "${BENCH[@]}" "${PAPER[@]}" \
    --vocab-size 131072 --pos-dim 32 --arms bpe kronecker --tokens-file "$TOKENS" --json "$WORK/paper_shape.json"
fi
if wants microbatch; then
  phase microbatch 28 "$PYTHON" scripts/bench_train.py --device "$DEVICE" "${BENCH[@]}" "${MICRO[@]}" \
    --arms kronecker --tokens-file "$TOKENS" --json "$WORK/microbatch.json"
fi

"$PYTHON" scripts/gpu_check_summary.py "$WORK" "$DEST" --mode "$MODE" --steps "$A" "$B" "$PAIR" \
  --min-loss-drop "$MIN_DROP" --deadline "$DEADLINE"
rc=$?
bundle
rm -rf "$WORK/out"  # this script's checkpoints; the records stay in the work folder
echo "records: $LOGS (work folder $WORK)"
exit $rc
