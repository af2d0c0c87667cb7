"""Steps to target: how many steps an arm needs to reach the baseline's final validation loss.

For each seed, the target is the baseline arm's final validation loss (its last eval point). The
result is the first step at which the other arm's validation curve reaches the target (linear
interpolation between eval points) and the ratio baseline final step / arm step (the paper reports
about 1.43x for kronecker vs bpe). Prints one table per arm and what is missing. An arm run at
several learning rates is taken at its best (eval/learning_rates.py), with a note.

    python -m eval.steps_to_target                                   # every arm vs bpe, results/runs
    python -m eval.steps_to_target --runs DIR --baseline bpe --arm kronecker --arm bpe_untied
"""
import argparse
import math
from dataclasses import dataclass

from errors import run_main
from eval.learning_rates import at_best_lrs
from eval.log_values import load_numeric_runs
from eval.runs import (DEFAULT_RUNS_DIR, by_arm, compared_arms, fmt_mean_std, markdown_table,
                       missing_notes, notes_text, paired)


@dataclass
class SeedResult:
    seed: int
    target: float          # baseline's final val loss
    baseline_step: int     # step of that final eval
    arm_step: float | None  # interpolated step where the arm reaches the target; None if never
    ratio: float | None    # baseline_step / arm_step
    note: str


def crossing_step(steps, values, target):
    """First step where the curve is <= target, linearly interpolated between points; None if never."""
    for i, value in enumerate(values):
        if value <= target:
            if i == 0:
                return float(steps[0])
            s0, v0 = steps[i - 1], values[i - 1]
            return s0 + (v0 - target) / (v0 - value) * (steps[i] - s0)
    return None


def seed_result(seed, base, arm):
    target, base_step = base.final_val_loss, base.final_step
    step = crossing_step(arm.eval_steps, arm.val_loss, target)
    notes = [] if base.finished else [f"baseline unfinished: target is its eval at step {base_step}"]
    if step is None:
        best = min(arm.val_loss)
        verdict = "never reached" if arm.finished else "not reached yet (run unfinished)"
        notes.append(f"{verdict}: best {best:.4f} at step {arm.eval_steps[arm.val_loss.index(best)]}")
        return SeedResult(seed, target, base_step, None, None, "; ".join(notes))
    ratio = base_step / step if step > 0 else math.inf
    return SeedResult(seed, target, base_step, step, ratio, "; ".join(notes))


def compare(runs, baseline, arm):
    """One SeedResult per seed that has both arms."""
    return [seed_result(seed, b, a) for seed, b, a in paired(runs, baseline, arm)]


def ratio_text(results):
    """'mean ± std x (k of n seeds reached)' over the seeds that reached the target."""
    ratios = [r.ratio for r in results if r.ratio is not None]
    if not results:
        return "n/a (no seed has both arms)"
    if not ratios:
        return f"never reached (0 of {len(results)} seeds)"
    return f"{fmt_mean_std(ratios, 2, 'x')} ({len(ratios)} of {len(results)} seeds reached)"


def results_table(results):
    rows = [(r.seed, f"{r.target:.4f}", r.baseline_step,
             "never" if r.arm_step is None else f"{r.arm_step:.1f}",
             "n/a" if r.ratio is None else f"{r.ratio:.2f}x", r.note) for r in results]
    return markdown_table(["seed", "target (baseline final val loss)", "baseline step", "arm step",
                           "ratio", "note"], rows)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", default=DEFAULT_RUNS_DIR, help="folder of run folders (default: %(default)s)")
    p.add_argument("--baseline", default="bpe", help="baseline arm, config.json 'embedding' (default: %(default)s)")
    p.add_argument("--arm", action="append",
                   help="arm to compare with the baseline; repeat for several (default: every other arm found)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    runs, lr_notes = at_best_lrs(load_numeric_runs(args.runs))
    arms = compared_arms(runs, args.baseline, args.arm)
    if not arms:
        print(f"nothing to compare with the baseline arm {args.baseline} (see below)")
    for arm in arms:
        results = compare(runs, args.baseline, arm)
        print(f"\n## {arm} vs {args.baseline}: steps to the baseline's final val loss\n")
        if results:
            print(results_table(results) + "\n")
        print(f"ratio baseline steps / {arm} steps: {ratio_text(results)}")
    notes = lr_notes + missing_notes(runs, [args.baseline, *(args.arm or by_arm(runs))])
    if notes:
        print("\n" + notes_text(notes))


if __name__ == "__main__":
    run_main(main)
