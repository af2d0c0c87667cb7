#!/usr/bin/env bash
# Standard benchmarks with lm-evaluation-harness on exported checkpoints (export_hf.py), the
# tasks GPT-2 124M is compared on, 0-shot; one results JSON per export under $OUT/<name>/.
#
#   bash scripts/lm_eval.sh out/hf/bpe_s1337 out/hf/kronecker_s1337      # then: python -m eval.downstream
#   bash scripts/lm_eval.sh openai-community/gpt2                        # a same-harness GPT-2 reference (online)
#   TASKS=hellaswag LIMIT=500 DEVICE=cuda bash scripts/lm_eval.sh out/hf/kronecker_s1337
#
# Environment: TASKS (default hellaswag,arc_easy,arc_challenge,piqa,winogrande,lambada_openai),
# OUT (default results/lm_eval), DEVICE (default cuda when torch sees one, else cpu), BATCH_SIZE
# (default auto), DTYPE (default float32, as the export check), NUM_FEWSHOT (default 0), LIMIT
# (examples per task; default all), INCLUDE_PATH (a folder of extra task YAMLs, e.g. local tasks).
# The tasks' data come from the Hugging Face hub (cached by datasets). An export made with
# --kronecker-native is run with trust_remote_code=True. The export's export_hf.json is copied
# next to its results, so that eval/downstream.py knows its arm and seed.
set -euo pipefail
cd "$(dirname "$0")/.."
TASKS=${TASKS:-hellaswag,arc_easy,arc_challenge,piqa,winogrande,lambada_openai}
OUT=${OUT:-results/lm_eval}
DEVICE=${DEVICE:-$(python -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')}
BATCH_SIZE=${BATCH_SIZE:-auto}
DTYPE=${DTYPE:-float32}
NUM_FEWSHOT=${NUM_FEWSHOT:-0}
if [ $# -eq 0 ]; then
  echo "error: give export folders (python export_hf.py --out ...) or hub model names; see the top of $0" >&2; exit 2
fi
if ! command -v lm_eval >/dev/null; then
  echo "error: lm_eval is not installed; pip install -r requirements-eval.txt" >&2; exit 2
fi
for model in "$@"; do
  if [ -e "$model" ] && [ ! -f "$model/config.json" ]; then
    echo "error: $model has no config.json: not an export folder (python export_hf.py --ckpt ... --out $model)" >&2; exit 2
  fi
  if [ ! -e "$model" ] && [[ ! "$model" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$ ]]; then
    echo "error: $model not found (not a folder, nor a hub name owner/name)" >&2; exit 2
  fi
done
for model in "$@"; do
  args="pretrained=$model,dtype=$DTYPE"
  if [ -f "$model/config.json" ] && grep -q '"auto_map"' "$model/config.json"; then
    args="$args,trust_remote_code=True"   # an export made with --kronecker-native
  fi
  name=$(basename "$model")
  [ -e "$model" ] || name=${model//\//__}   # a hub name
  dest="$OUT/$name"
  mkdir -p "$dest"
  # shellcheck disable=SC2086  # the optional flags are word lists
  lm_eval --model hf --model_args "$args" --tasks "$TASKS" --num_fewshot "$NUM_FEWSHOT" --device "$DEVICE" \
    --batch_size "$BATCH_SIZE" --output_path "$dest" ${LIMIT:+--limit $LIMIT} ${INCLUDE_PATH:+--include_path $INCLUDE_PATH}
  if [ -f "$model/export_hf.json" ]; then cp "$model/export_hf.json" "$dest/export_hf.json"; fi
  echo "lm-eval results for $model in $dest"
done
echo "table: python -m eval.downstream --lm-eval $OUT"
