#!/usr/bin/env bash
# Run the three checkpoint probes (robustness, generation, neighbors) on one seed's runs.
#
#   bash scripts/probes.sh                                   # out/<arm>_s1337, reports in results/probes
#   CKPT_DIR=out/cpu_mini SEED=1337 PROBE_OUT=results/cpu_mini/probes bash scripts/probes.sh
#
# Environment: CKPT_DIR (train.py's out_dir, default out), SEED (default 1337), ARMS (default
# "bpe bpe_untied kronecker", the first is the reference arm; arms without checkpoints are
# left out with a note), PROBE_OUT (default results/probes), LAYERS (default "0 1").
# Each arm's latest checkpoint in <CKPT_DIR>/<arm>_s<SEED>/ is used.
set -euo pipefail
cd "$(dirname "$0")/.."
CKPT_DIR=${CKPT_DIR:-out}
SEED=${SEED:-1337}
ARMS=${ARMS:-"bpe bpe_untied kronecker"}
PROBE_OUT=${PROBE_OUT:-results/probes}
LAYERS=${LAYERS:-"0 1"}
ckpts=()
for arm in $ARMS; do
  latest=$(ls "$CKPT_DIR/${arm}_s$SEED"/ckpt_*.pt 2>/dev/null | tail -n 1 || true)
  if [ -z "$latest" ]; then echo "note: no checkpoint for $arm in $CKPT_DIR/${arm}_s$SEED, left out" >&2; continue; fi
  ckpts+=(--ckpt "$arm=$latest")
done
if [ ${#ckpts[@]} -eq 0 ]; then echo "error: no checkpoints under $CKPT_DIR for seed $SEED; train first" >&2; exit 2; fi
python -m eval.robustness "${ckpts[@]}" --out "$PROBE_OUT"
python -m eval.generation "${ckpts[@]}" --out "$PROBE_OUT"
# shellcheck disable=SC2086  # LAYERS is a list
python -m eval.neighbors "${ckpts[@]}" --layers $LAYERS --out "$PROBE_OUT"
echo "probe reports in $PROBE_OUT: robustness, generation, neighbors (.md and .json)"
