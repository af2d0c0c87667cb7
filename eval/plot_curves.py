"""Plot the training curves of a sweep: one colour per arm, mean line and min-max band over seeds.

Reads every run under --runs and writes four PNGs into --out (default: the runs folder's parent,
e.g. results/ for results/runs, next to summary.md):
  val_loss.png         validation loss vs step
  train_loss.png       training loss vs step, smoothed with an exponential moving average
  gap_to_baseline.png  each arm's validation loss minus the baseline's, in % of the baseline,
                       paired by seed (the paper says the gap widens, then stabilises)
  norm_drift.png       input-embedding row norm vs step, absolute and relative to its first eval
Curves are averaged over the steps every seed of an arm has reached (an unfinished run shortens
its arm's curve); what is missing is printed.

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
from eval.log_values import load_numeric_runs  # noqa: E402
from eval.outputs import cannot_write, report_file  # noqa: E402
from eval.runs import (DEFAULT_RUNS_DIR, by_arm, compared_arms, default_out_dir,  # noqa: E402
                       missing_notes, notes_text, paired, setting_label)

ARM_COLORS = {"bpe": "tab:blue", "kronecker": "tab:orange", "bpe_untied": "tab:green"}
NORM_FIELD = "emb_row_norm"


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
    steps, mean, lo, hi = band(curves)
    n = len(curves)
    if not len(steps):
        return
    cut = f", cut at step {steps[-1]} by the shortest run" if steps[-1] < max(s[-1] for s, _ in curves) else ""
    ax.plot(steps, mean, color=color, label=f"{label} ({n} seed{'s' * (n != 1)}{cut})")
    if n > 1:
        ax.fill_between(steps, lo, hi, color=color, alpha=0.25, linewidth=0)


def style(ax, xlabel, ylabel):
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()


def new_figure(title, runs, ncols=1):
    fig, axes = plt.subplots(1, ncols, figsize=(7 * ncols, 4.8), squeeze=False)
    fig.suptitle(f"{title}\n{setting_label(runs)}", fontsize=11)
    return fig, list(axes[0])


def plot_val_loss(runs, _args):
    fig, (ax,) = new_figure("Validation loss (mean, min-max band over seeds)", runs)
    groups = by_arm(runs)
    for arm, arm_runs in groups.items():
        curves = [(r.eval_steps, r.val_loss) for r in arm_runs if r.eval_steps]
        if curves:
            plot_band(ax, curves, arm, arm_color(arm, groups))
    style(ax, "step", "validation loss (nats/token)")
    return fig


def plot_train_loss(runs, args):
    fig, (ax,) = new_figure(f"Training loss (EMA {args.smooth}; mean, min-max band over seeds)", runs)
    groups = by_arm(runs)
    for arm, arm_runs in groups.items():
        curves = [(r.train_steps, ema(r.train_loss, args.smooth)) for r in arm_runs if r.train_steps]
        if curves:
            plot_band(ax, curves, arm, arm_color(arm, groups))
    style(ax, "step", "training loss, smoothed (nats/token)")
    return fig


def gap_curve(base, arm):
    """(steps, 100 * (arm - base) / base) at the eval steps both runs have."""
    base_at = dict(zip(base.eval_steps, base.val_loss))
    points = [(s, 100 * (v - base_at[s]) / base_at[s]) for s, v in zip(arm.eval_steps, arm.val_loss) if s in base_at]
    return [s for s, _ in points], [g for _, g in points]


def plot_gap(runs, args):
    arms = [a for a in compared_arms(runs, args.baseline) if paired(runs, args.baseline, a)]
    if not arms:
        return None
    fig, (ax,) = new_figure(f"Validation-loss gap to {args.baseline}, paired by seed (below 0: arm is better)", runs)
    ax.axhline(0, color="black", linewidth=0.8)
    for arm in arms:
        curves = [gap_curve(b, a) for _, b, a in paired(runs, args.baseline, arm)]
        plot_band(ax, curves, f"{arm} - {args.baseline}", arm_color(arm, by_arm(runs)))
    style(ax, "step", f"val loss gap (% of {args.baseline})")
    return fig


def plot_norm_drift(runs, _args):
    groups = {arm: [r for r in rs if NORM_FIELD in r.norms] for arm, rs in by_arm(runs).items()}
    groups = {arm: rs for arm, rs in groups.items() if rs}
    if not groups:
        return None
    fig, (ax_abs, ax_rel) = new_figure("Input-embedding row norm (mean, min-max band over seeds)", runs, ncols=2)
    for arm, arm_runs in groups.items():
        color = arm_color(arm, groups)
        plot_band(ax_abs, [(r.eval_steps, r.norms[NORM_FIELD]) for r in arm_runs], arm, color)
        rel = [(r.eval_steps, [v / r.norms[NORM_FIELD][0] for v in r.norms[NORM_FIELD]]) for r in arm_runs]
        plot_band(ax_rel, rel, arm, color)
    style(ax_abs, "step", f"{NORM_FIELD} (mean row L2 norm)")
    style(ax_rel, "step", f"{NORM_FIELD} / its value at the first eval")
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
    runs = load_numeric_runs(args.runs)
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
    notes = missing_notes(runs, [args.baseline, *by_arm(runs)])
    if notes:
        print(notes_text(notes))


if __name__ == "__main__":
    run_main(main)
