"""Learning rates of a sweep: every lr of each arm, each arm's best, and the runs at a chosen lr.

An lr sweep (`LRS="3e-4 6e-4 1.2e-3" bash scripts/sweep.sh`) trains every arm and seed at
several peak learning rates; its runs are told apart by `Run.lr` (config.json `max_lr`). An
arm's *best* lr is the one with the lowest mean final validation loss over its seeds (a run
without eval points is left out, a diverged one (NaN) counts as +inf, a tie goes to the smaller
lr). A *shared* lr is one at which every arm has runs. Comparisons then take each arm at its own
best lr, or every arm at one shared lr; `at_lrs` selects those runs. The best lr is chosen on
the same validation loss it is then compared on, so with few lrs and seeds it flatters the arms
slightly (a winner's curse); the shared-lr comparison selects nothing.
Not a script; import it: `from eval.learning_rates import best_lrs, at_lrs`.
"""
import math

from eval.runs import by_arm, mean_std
from run_folder import lr_tag


def lr_groups(runs):
    """arm -> {lr: [runs sorted by seed]}, arms and lrs sorted (runs without max_lr under None)."""
    groups = {}
    for arm, arm_runs in by_arm(runs).items():
        lrs = groups.setdefault(arm, {})
        for run in arm_runs:
            lrs.setdefault(run.lr, []).append(run)
        groups[arm] = dict(sorted(lrs.items(), key=lambda kv: (kv[0] is None, kv[0] or 0.0)))
    return groups


def final_losses(runs):
    """Final validation losses (floats) of the runs with eval points; NaN (diverged) becomes +inf."""
    return [math.inf if math.isnan(r.final_val_loss) else r.final_val_loss for r in runs if r.eval_steps]


def best_lrs(runs):
    """arm -> its best lr: the lowest mean final val loss over its seeds (ties: the smaller lr).
    Arms whose runs have no eval point yet are left out."""
    best = {}
    for arm, lrs in lr_groups(runs).items():
        scored = [(mean_std(final_losses(lr_runs))[0], lr) for lr, lr_runs in lrs.items() if final_losses(lr_runs)]
        if scored:  # lrs are in increasing order and min() keeps the first of equals
            best[arm] = min(scored, key=lambda s: s[0])[1]
    return best


def several_lrs(runs):
    """True when some arm has runs at more than one lr (an lr sweep)."""
    return any(len(lrs) > 1 for lrs in lr_groups(runs).values())


def shared_lrs(runs):
    """The lrs (sorted) at which every arm has runs with eval points."""
    per_arm = [{lr for lr, lr_runs in lrs.items() if final_losses(lr_runs)} for lrs in lr_groups(runs).values()]
    return sorted(set.intersection(*per_arm) - {None}) if per_arm else []


def default_shared_lr(runs, baseline):
    """The shared lr comparisons use unless one is asked for: the baseline arm's best among the
    shared lrs (the recipe tuned for the baseline, as a paper that tunes only its baseline has it);
    without baseline runs, the smallest shared lr. None when no lr is shared by every arm."""
    shared = shared_lrs(runs)
    if not shared:
        return None
    at_shared = [r for r in runs if r.lr in shared]
    return best_lrs(at_shared).get(baseline, shared[0])


def at_lrs(runs, lrs):
    """The runs of each arm at its lr in `lrs` (arm -> lr); arms not in lrs are left out."""
    return [r for r in runs if r.arm in lrs and r.lr == lrs[r.arm]]


def at_best_lrs(runs):
    """(runs, notes) for a report with one curve or row per arm: each arm at its best lr, with a
    note per arm that was run at several lrs (eval.summarize lists them all)."""
    groups, best = lr_groups(runs), best_lrs(runs)
    notes = [f"arm {arm}: runs at {len(lrs)} learning rates ({', '.join(fmt_lr(lr) for lr in lrs)}); "
             f"showing its best, {fmt_lr(best[arm])} (eval.summarize lists every lr)"
             for arm, lrs in groups.items() if len(lrs) > 1 and arm in best]
    if not notes:
        return runs, notes
    return at_lrs(runs, best) + [r for r in runs if r.arm not in best], notes


def fmt_lr(lr):
    """An lr as run names spell it (6e-4, 1.2e-3); 'n/a' for None."""
    return "n/a" if lr is None else lr_tag(lr)
