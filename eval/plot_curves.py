"""Plot the training curves of a sweep: one colour per arm, mean line over seeds, min-max band from 2 seeds.

Reads every run under --runs and writes four PNGs into --out (default: the runs folder's parent,
e.g. results/ for results/runs, next to summary.md):
  val_loss.png         validation loss vs step: all steps, and the last half of training with its
                       own y axis (the step-0 loss, ~10.9 nats, would hide a final gap of ~0.1)
  train_loss.png       the same for the training loss, smoothed with an exponential moving average
  gap_to_baseline.png  each arm's validation loss minus the baseline's, in % of the baseline,
                       paired by seed (the paper says the gap widens, then stabilises)
  norm_drift.png       input-embedding row norm vs step relative to its first eval (comparable
                       across arms) and absolute (not comparable: table rows have n_embd entries,
                       the Kronecker projection's rows D)
Titles say how many seeds each curve averages; with one seed there is no band. Curves are averaged
over the steps every seed of an arm has reached (an unfinished run shortens its arm's curve); what
is missing is printed. An arm run at several learning rates is drawn at its best
(eval/learning_rates.py), with a note.

    python -m eval.plot_curves                          # results/runs -> results/*.png
    python -m eval.plot_curves --runs DIR --out DIR --baseline bpe --smooth 0.9
"""
import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (the backend must be chosen first)
import numpy as np  # noqa: E402

from errors import UserError, run_main  # noqa: E402
from eval.learning_rates import at_best_lrs  # noqa: E402
from eval.log_values import load_numeric_runs  # noqa: E402
from eval.outputs import cannot_write, report_file  # noqa: E402
from eval.runs import (DEFAULT_RUNS_DIR, by_arm, compared_arms, default_out_dir,  # noqa: E402
                       missing_notes, notes_text, paired, setting_label)

ARM_COLORS = {"bpe": "tab:blue", "kronecker": "tab:orange", "bpe_untied": "tab:green"}
NORM_FIELD = "emb_row_norm"
TAIL_FRACTION = 0.5  # the zoomed panel shows the last half of training, where the arms separate


def arm_color(arm, arms):
    return ARM_COLORS.get(arm, plt.cm.tab10(3 + sorted(arms).index(arm) % 7))


def ema(values, alpha):
    """Exponential moving average (alpha = weight of the past; 0 = no smoothing)."""
    out, avg = [], values[0]
    for v in values:
        avg = alpha * avg + (1 - alpha) * v
        out.append(avg)
    return out


def band(curves):
    """(steps, mean, min, max) over the steps every (steps, values) curve has."""
    common = sorted(set.intersection(*(set(s) for s, _ in curves)))
    table = np.array([[dict(zip(s, v))[step] for step in common] for s, v in curves]).reshape(len(curves), -1)
    return np.array(common), table.mean(0), table.min(0), table.max(0)


def plot_band(ax, curves, label, color):
    """Mean line of the (steps, values) curves, and their min-max band when there are >= 2."""
    steps, mean, lo, hi = band(curves)
    n = len(curves)
    if not len(steps):
        return
    cut = f", cut at step {steps[-1]} by the shortest run" if steps[-1] < max(s[-1] for s, _ in curves) else ""
    ax.plot(steps, mean, color=color, label=f"{label} ({n} seed{'s' * (n != 1)}{cut})")
    if n > 1:
        ax.fill_between(steps, lo, hi, color=color, alpha=0.25, linewidth=0)


def seeds_text(counts):
    """What the curves show, for a title, from the number of seeds behind each curve."""
    lo, hi = min(counts), max(counts)
    if hi == 1:
        return "1 seed, no spread shown"
    n = str(lo) if lo == hi else f"{lo}-{hi}"
    return f"mean of {n} seeds, min-max band" + ("" if lo > 1 else " where >= 2")


def style(ax, xlabel, ylabel, title=None):
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()


def new_figure(title, runs, ncols=1, width_ratios=None):
    fig, axes = plt.subplots(1, ncols, figsize=(7 * ncols, 4.8), squeeze=False,
                             gridspec_kw={"width_ratios": width_ratios})
    fig.suptitle(f"{title}\n{setting_label(runs)}", fontsize=11)
    return fig, list(axes[0])


def tail(curve, start):
    """The (steps, values) curve from step `start` on."""
    kept = [(s, v) for s, v in zip(*curve) if s >= start]
    return [s for s, _ in kept], [v for _, v in kept]


def tail_start(series):
    """First step of the tail panel: the last TAIL_FRACTION of the longest plotted (all-seed) curve."""
    ends = [band(curves)[0] for _, _, curves in series]
    return (1 - TAIL_FRACTION) * max((steps[-1] for steps in ends if len(steps)), default=0)


def plot_full_and_tail(title, runs, series, ylabel):
    """Two panels of the same (label, color, curves) series: every step, and the tail zoomed in.

    At step 0 every arm is at ln(50257) ~ 10.8 nats; on one axis with that, the final gaps
    (tenths of a nat) are a few pixels. The tail panel autoscales to the steps it shows.
    """
    series = [(label, color, curves) for label, color, curves in series if curves]
    fig, (ax_all, ax_tail) = new_figure(f"{title} ({seeds_text([len(c) for _, _, c in series])})", runs, ncols=2)
    if not series:
        return fig
    start = tail_start(series)
    for label, color, curves in series:
        plot_band(ax_all, curves, label, color)
        plot_band(ax_tail, [tail(c, start) for c in curves], label, color)
    style(ax_all, "step", ylabel, "all steps")
    style(ax_tail, "step", ylabel, f"last {TAIL_FRACTION:.0%} of training (step >= {start:g}), y axis zoomed")
    return fig


def plot_val_loss(runs, _args):
    groups = by_arm(runs)
    series = [(arm, arm_color(arm, groups), [(r.eval_steps, r.val_loss) for r in arm_runs if r.eval_steps])
              for arm, arm_runs in groups.items()]
    return plot_full_and_tail("Validation loss", runs, series, "validation loss (nats/token)")


def plot_train_loss(runs, args):
    groups = by_arm(runs)
    series = [(arm, arm_color(arm, groups),
               [(r.train_steps, ema(r.train_loss, args.smooth)) for r in arm_runs if r.train_steps])
              for arm, arm_runs in groups.items()]
    return plot_full_and_tail(f"Training loss, EMA {args.smooth}", runs, series, "training loss, smoothed (nats/token)")


def gap_curve(base, arm):
    """(steps, 100 * (arm - base) / base) at the eval steps both runs have."""
    base_at = dict(zip(base.eval_steps, base.val_loss))
    points = [(s, 100 * (v - base_at[s]) / base_at[s]) for s, v in zip(arm.eval_steps, arm.val_loss) if s in base_at]
    return [s for s, _ in points], [g for _, g in points]


def plot_gap(runs, args):
    """One panel: the gap starts near 0 at step 0 (same initial loss), so nothing needs clipping."""
    arms = [a for a in compared_arms(runs, args.baseline) if paired(runs, args.baseline, a)]
    if not arms:
        return None
    pairs = {arm: paired(runs, args.baseline, arm) for arm in arms}
    fig, (ax,) = new_figure(f"Validation-loss gap to {args.baseline}, paired by seed "
                            f"({seeds_text([len(p) for p in pairs.values()])})", runs)
    ax.axhline(0, color="black", linewidth=0.8)
    for arm in arms:
        curves = [gap_curve(b, a) for _, b, a in pairs[arm]]
        plot_band(ax, curves, f"{arm} - {args.baseline}", arm_color(arm, by_arm(runs)))
    style(ax, "step", f"val loss gap (% of {args.baseline}; below 0: arm is better)")
    return fig


def plot_norm_drift(runs, _args):
    """Main panel: norm / norm at the first eval, comparable across arms. Side panel: absolute norms.

    The absolute values are not comparable across arms: a BPE table row has n_embd entries, a
    Kronecker projection row has D (about unit norm at init, see GPT.embedding_norms).
    """
    groups = {arm: [r for r in rs if NORM_FIELD in r.norms] for arm, rs in by_arm(runs).items()}
    groups = {arm: rs for arm, rs in groups.items() if rs}
    if not groups:
        return None
    fig, (ax_rel, ax_abs) = new_figure(f"Input-embedding row norm relative to its first eval "
                                       f"({seeds_text([len(rs) for rs in groups.values()])})", runs,
                                       ncols=2, width_ratios=[3, 2])
    for arm, arm_runs in groups.items():
        color = arm_color(arm, groups)
        rel = [(r.eval_steps, [v / r.norms[NORM_FIELD][0] for v in r.norms[NORM_FIELD]]) for r in arm_runs]
        plot_band(ax_rel, rel, arm, color)
        plot_band(ax_abs, [(r.eval_steps, r.norms[NORM_FIELD]) for r in arm_runs], arm, color)
    ax_rel.axhline(1, color="black", linewidth=0.8)
    style(ax_rel, "step", f"{NORM_FIELD} / its value at the first eval", "relative: comparable across arms")
    style(ax_abs, "step", f"{NORM_FIELD} (mean row L2 norm)",
          "absolute: NOT comparable across arms\n(BPE table rows: n_embd entries; Kronecker projection rows: D)")
    return fig


PLOTS = {"val_loss.png": plot_val_loss, "train_loss.png": plot_train_loss,
         "gap_to_baseline.png": plot_gap, "norm_drift.png": plot_norm_drift}
SKIP_REASONS = {"gap_to_baseline.png": "no seed has eval points for both the baseline and another arm",
                "norm_drift.png": f"no run logged {NORM_FIELD}"}


def save(fig, path):
    """Write the figure atomically as PNG."""
    fig.tight_layout()
    with report_file(path) as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", default=DEFAULT_RUNS_DIR, help="folder of run folders (default: %(default)s)")
    p.add_argument("--out", help="folder for the PNGs (default: the --runs folder's parent)")
    p.add_argument("--baseline", default="bpe", help="baseline arm for the gap plot (default: %(default)s)")
    p.add_argument("--smooth", type=float, default=0.9,
                   help="EMA weight of the past for the training loss, in [0, 1) (default: %(default)s)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if not 0 <= args.smooth < 1:
        raise UserError(f"--smooth must be in [0, 1), got {args.smooth}")
    runs, lr_notes = at_best_lrs(load_numeric_runs(args.runs))
    out = Path(args.out) if args.out else default_out_dir(args.runs)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise cannot_write(out, err) from None
    for name, plot in PLOTS.items():
        fig = plot(runs, args)
        if fig is None:
            print(f"skipped {name}: {SKIP_REASONS[name]}")
            continue
        save(fig, out / name)
        print(f"wrote {out / name}")
    notes = lr_notes + missing_notes(runs, [args.baseline, *by_arm(runs)])
    if notes:
        print(notes_text(notes))


if __name__ == "__main__":
    run_main(main)
