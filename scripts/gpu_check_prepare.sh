#!/usr/bin/env bash
# Prepare data/gpu_check/ for scripts/gpu_check.sh, here (it reads the
# shared FineWeb sample and uses this venv): val/train token shards (data/fineweb_edu.py) and a
# copy of the tiktoken cache (GPT-2's BPE files, read offline). About 10 MB (9.8 MB measured: docs/performance.md); the folder is
# git-ignored, so carry it to the GPU machine.
#
#   scripts/gpu_check_prepare.sh [SAMPLE.jsonl.gz]     # default ../shared/data/fineweb_sample/train.jsonl.gz
set -euo pipefail
cd "$(dirname "$0")/.."
SAMPLE=${1:-../shared/data/fineweb_sample/train.jsonl.gz}
DATA=data/gpu_check
python data/fineweb_edu.py --data-files "$SAMPLE" --out "$DATA" --val-tokens 262144 \
    --shard-tokens 1e7 --train-tokens all --workers 1
CACHE=${TIKTOKEN_CACHE_DIR:-../shared/tiktoken_cache}
mkdir -p "$DATA/tiktoken_cache"
cp "$CACHE"/* "$DATA/tiktoken_cache/"
du -sh "$DATA"
