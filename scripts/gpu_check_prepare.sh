#!/usr/bin/env bash
# Prepare data/gpu_check/ for scripts/gpu_check.sh, here (it reads the
# shared FineWeb sample and uses this venv): val/train token shards (data/fineweb_edu.py), a copy of
# the tiktoken cache (GPT-2's BPE file, read offline), and a copy of the tiktoken and regex
# packages, used by gpu_check.sh only when the GPU machine's python lacks tiktoken (same python
# version needed). About 15 MB; the folder is git-ignored, so carry it to the GPU machine.
#
#   scripts/gpu_check_prepare.sh [SAMPLE.jsonl.gz]     # default ../shared/data/fineweb_sample/train.jsonl.gz
set -euo pipefail
cd "$(dirname "$0")/.."
SAMPLE=${1:-../shared/data/fineweb_sample/train.jsonl.gz}
DATA=data/gpu_check
python data/fineweb_edu.py --data-files "$SAMPLE" --out "$DATA" --val-tokens 262144 \
    --shard-tokens 1e7 --train-tokens all --workers 1
CACHE=${TIKTOKEN_CACHE_DIR:-../shared/tiktoken_cache}
mkdir -p "$DATA/tiktoken_cache" "$DATA/pylib"
cp "$CACHE"/* "$DATA/tiktoken_cache/"
for pkg in $(python -c 'import tiktoken, tiktoken_ext, regex
print(" ".join(list(m.__path__)[0] for m in (tiktoken, tiktoken_ext, regex)))'); do
  rm -rf "$DATA/pylib/$(basename "$pkg")"
  cp -r "$pkg" "$DATA/pylib/"
done
python -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")' > "$DATA/pylib/PYTHON_VERSION"
du -sh "$DATA"
