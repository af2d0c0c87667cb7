#!/usr/bin/env bash
# Fault drill: train.py (and, as rows are added, the preparer and eval scripts) through the faults
# a cluster produces, on a tiny model; prints case | expected | got, then counts. A few minutes.
#
#   bash scripts/fault_drill.sh                   # all cases
#   bash scripts/fault_drill.sh -k SIGTERM        # cases whose name contains SIGTERM
#
# The cases live in scripts/fault_drill.py (CASES); results/fault_drill.txt is its last output.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${TIKTOKEN_CACHE_DIR:-}" ] && [ -d ../shared/tiktoken_cache ]; then
  export TIKTOKEN_CACHE_DIR="$PWD/../shared/tiktoken_cache"  # offline: GPT-2's tokenizer files
fi
exec python scripts/fault_drill.py "$@"
