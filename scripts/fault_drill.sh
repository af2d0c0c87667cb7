#!/usr/bin/env bash
# Fault drill: train.py, the data preparer and the eval scripts through the faults a cluster (or a
# user) produces, on a tiny model and tiny data; prints case | expected | got, then counts.
# About 10 minutes on a shared 2-core CPU; exit 1 if any case did not get its expected outcome.
#
#   bash scripts/fault_drill.sh                   # all cases
#   bash scripts/fault_drill.sh -k SIGTERM        # cases whose name contains SIGTERM
#
# The cases live in scripts/fault_drill.py (CASES); results/fault_drill.txt is its last output.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python scripts/fault_drill.py "$@"
