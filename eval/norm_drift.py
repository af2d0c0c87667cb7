"""Norm drift: how far each arm's input-embedding norms move during training, from the logs.

For every arm and every norm field train.py logs at each eval (emb_row_norm: mean row norm of the
learned input matrix, i.e. the BPE table or the Kronecker projection; emb_token_norm: mean norm of
the produced token embeddings; emb_fro_norm: Frobenius norm of the learned matrix) it prints the
initial value (first eval), the final value (last eval), final/initial and the largest relative
change |value/initial - 1| along the way, as mean ± std over seeds. The paper reports that the
Kronecker projection's norm stays near 1.0 while the BPE table's norm drifts. The absolute values
of emb_row_norm and emb_fro_norm are not comparable across arms (a BPE table row has n_embd
entries, a Kronecker projection row D): compare those by the ratios. An arm run at several
learning rates is shown at its best (eval/learning_rates.py), with a note.

    python -m eval.norm_drift                 # runs in results/runs
    python -m eval.norm_drift --runs DIR
"""
import argparse

from errors import run_main
from eval.learning_rates import at_best_lrs
from eval.log_values import load_numeric_runs
from eval.runs import (DEFAULT_RUNS_DIR, NORM_FIELDS, by_arm, fmt_mean_std, markdown_table,
                       missing_notes, notes_text)

STATS = ("initial", "final", "final_over_initial", "max_rel_change")
ABSOLUTE_NOTE = ("initial and final of emb_row_norm and emb_fro_norm are not comparable across arms (they measure "
                 "the learned matrix: a BPE table row has n_embd entries, a Kronecker projection row D); compare "
                 "those by final/initial.")


def drift(values):
    """initial, final, final/initial and the largest |value/initial - 1| of one norm trajectory."""
    initial = values[0]
    return {"initial": initial, "final": values[-1], "final_over_initial": values[-1] / initial,
            "max_rel_change": max(abs(v / initial - 1) for v in values)}


def arm_drifts(arm_runs, field):
    """One drift dict per run of this arm that logged the field."""
    return [drift(r.norms[field]) for r in arm_runs if field in r.norms]


def drift_rows(runs):
    rows = []
    for arm, arm_runs in by_arm(runs).items():
        for field in NORM_FIELDS:
            drifts = arm_drifts(arm_runs, field)
            if drifts:
                rows.append((arm, field, len(drifts), *(fmt_mean_std([d[s] for d in drifts]) for s in STATS)))
    return rows


def no_norm_notes(runs):
    return [f"{r.name}: no norm fields in its eval lines (left out)" for r in runs if r.eval_steps and not r.norms]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", default=DEFAULT_RUNS_DIR, help="folder of run folders (default: %(default)s)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    runs, lr_notes = at_best_lrs(load_numeric_runs(args.runs))
    print(markdown_table(["arm", "norm", "seeds", "initial", "final", "final/initial", "largest rel. change"],
                         drift_rows(runs)))
    print(f"\n{ABSOLUTE_NOTE}")
    notes = lr_notes + missing_notes(runs) + no_norm_notes(runs)
    if notes:
        print("\n" + notes_text(notes))


if __name__ == "__main__":
    run_main(main)
