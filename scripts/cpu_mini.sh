#!/usr/bin/env bash
# The CPU mini-study, end to end: the arms below x 3 seeds of config/cpu_mini.py (60 steps) on the
# ~4M-token FineWeb sample, then the tables, plots and probes committed in results/cpu_mini/.
# Run times as measured are in docs/results.md.
#
#   bash scripts/cpu_mini.sh                  # everything; a rerun skips finished runs
#   STEP=report bash scripts/cpu_mini.sh      # only tables, plots and probes from existing runs
#   STEP=tables bash scripts/cpu_mini.sh      # only the tables and plots: from the logs, no checkpoint
#
# Environment: R (report folder, default results/cpu_mini; run logs go to $R/runs), CKPT_DIR
# (checkpoints, default out/cpu_mini), DATA_DIR (default data/fineweb_sample), SAMPLE (the
# FineWeb sample, default ../shared/data/fineweb_sample/train.jsonl.gz), STEP (all, report or
# tables), SEEDS (default "1337 42 2024"; the probes read these seeds' checkpoints, the tables
# every run under $R/runs). The data are prepared (seconds) whenever missing: the summary's
# unigram baseline reads them.
set -euo pipefail
cd "$(dirname "$0")/.."
R=${R:-results/cpu_mini}
CKPT_DIR=${CKPT_DIR:-out/cpu_mini}
DATA_DIR=${DATA_DIR:-data/fineweb_sample}
SAMPLE=${SAMPLE:-../shared/data/fineweb_sample/train.jsonl.gz}
STEP=${STEP:-all}
case $STEP in
  all | report | tables) ;;
  *) echo "error: STEP=$STEP is none of all, report, tables" >&2; exit 2 ;;
esac
# The arms (train_config.ARMS; docs/embedding.md#the-arms says what each isolates). A new arm is
# one more name here, and a --baseline below if others are compared against it.
ARMS="bpe bpe_untied bpe_factorized bpe_untied_scaled kronecker kronecker_tied kronecker_shuffled trigram_hash"
SEEDS=${SEEDS:-"1337 42 2024"}

if [ ! -f "$DATA_DIR/manifest.json" ]; then
  python data/fineweb_edu.py --data-files "$SAMPLE" --out "$DATA_DIR" --val-tokens 262144 \
    --shard-tokens 1000000 --train-tokens all
fi
if [ "$STEP" = all ]; then
  CONFIG=config/cpu_mini.py ARMS="$ARMS" SEEDS="$SEEDS" LOG_DIR="$R/runs" OUT_DIR="$CKPT_DIR" \
    LAUNCH=python bash scripts/sweep.sh --data_dir="$DATA_DIR"
fi

# Tables and curves: every arm against each arm it controls for (bpe, bpe_untied, the matched
# parameter count, the matched input scale, the tied Kronecker head, the shuffled bytes, and
# kronecker for trigram_hash), with t intervals, p-values and the seeds each gap needs.
# (docs/results.md shows these four commands as they run with the default R; a test keeps them equal)
python -m eval.summarize --runs "$R/runs" --out "$R" --baseline bpe --baseline bpe_untied --baseline bpe_factorized --baseline bpe_untied_scaled --baseline kronecker_tied --baseline kronecker_shuffled --baseline kronecker
python -m eval.plot_curves --runs "$R/runs" --out "$R"
python -m eval.steps_to_target --runs "$R/runs" --baseline bpe > "$R/steps_to_target.txt"
python -m eval.norm_drift --runs "$R/runs" > "$R/norm_drift.txt"
if [ "$STEP" = tables ]; then
  echo "tables and plots in $R (STEP=tables: no probes)"
  exit 0
fi

# Probes. Spelling robustness on every seed's final checkpoint (an arm's values are averaged over
# its seeds; McNemar's test pairs arms by seed); generation, neighbours and the cross-model probe
# (each arm's input table vs a random table vs the codec) on seed 1337.
latest() { ls "$CKPT_DIR/$1"/ckpt_*.pt 2>/dev/null | tail -n 1; }
every_seed=() seed_1337=() models_1337=()
for arm in $ARMS; do
  for seed in $SEEDS; do
    if [ -z "$(latest "${arm}_s$seed")" ]; then  # the committed runs keep their logs, not checkpoints
      echo "error: no checkpoint of ${arm}_s$seed in $CKPT_DIR; set CKPT_DIR to where the runs'" \
        "checkpoints are, or train afresh into a new folder (R=results/cpu_mini_rerun)" >&2
      exit 2
    fi
  done
done
for arm in $ARMS; do
  for seed in $SEEDS; do every_seed+=(--ckpt "$arm=$(latest "${arm}_s$seed")"); done
  seed_1337+=(--ckpt "$arm=$(latest "${arm}_s1337")")
  models_1337+=("$arm=$(latest "${arm}_s1337")")
done
python -m eval.robustness "${every_seed[@]}" --out "$R/probes"
python -m eval.generation "${seed_1337[@]}" --out "$R/probes"
python -m eval.neighbors "${seed_1337[@]}" --layers 0 1 --out "$R/probes"
python -m eval.cross_model --models "${models_1337[@]}" --out "$R/cross_model"
echo "tables and plots in $R, probe reports in $R/probes and $R/cross_model"
