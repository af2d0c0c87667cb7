"""Summarize a sweep: the paper's main table from the run logs, next to the paper's values.

Reads every run under --runs and writes summary.md and summary.csv into --out (default: the runs
folder's parent, e.g. results/ for results/runs). Per arm: seeds, final validation loss and
perplexity (mean ± sample std over seeds), input-side trainable parameters and the drift of the
input-embedding row norm. Per arm against each baseline (bpe, and bpe_untied when it has runs; or
--baseline, repeatable): the final validation-loss gap in nats and in percent of the baseline
(arm - baseline, paired by seed) with its 95% t interval (n - 1 df), a percentile bootstrap
interval when n >= 5 seeds, the paired t-test p-value and what n allows one to conclude (see
eval/stats.py), and steps-to-target (see eval/steps_to_target.py). Next to each, the paper's value from results/paper_reference.json; rows
whose runs differ from the paper's setting (fewer seeds, fewer tokens, smaller model) are marked.
Partial results are fine: what is missing is listed at the end.

    python -m eval.summarize                            # results/runs -> results/summary.{md,csv}
    python -m eval.summarize --runs DIR --out DIR --baseline bpe --baseline bpe_untied
"""
import argparse
import csv
import io
import math
from pathlib import Path

from errors import run_main
from eval.log_values import load_numeric_runs
from eval.norm_drift import arm_drifts
from eval.outputs import write_text
from eval.runs import (DEFAULT_RUNS_DIR, by_arm, change_notes, compared_arms, default_out_dir, fmt_mean_std,
                       fmt_tokens, markdown_table, mean_std, missing_notes, notes_text, paired, paper_reference,
                       setting_differences, setting_label)
from eval.stats import fmt_interval, fmt_p, paired_gap
from eval.steps_to_target import compare, ratio_text

DEFAULT_BASELINES = ("bpe", "bpe_untied")
GAP_FIELDS = ["t_low", "t_high", "boot_low", "boot_high", "p", "note"]
CSV_FIELDS = ["arm", "metric", "seeds", "mean", "std", "ours", "paper", "differs_from_paper", *GAP_FIELDS]
NORM_FIELD = "emb_row_norm"


def row(arm, metric, values, text, paper, runs, ref, gap=None):
    """One table row; `gap` (paired gaps only) adds the intervals, p and note of eval.stats.paired_gap."""
    mean, std = mean_std(values)
    gap = {k: (gap or {}).get(k) for k in GAP_FIELDS}
    return {"arm": arm, "metric": metric, "seeds": len({r.seed for r in runs}), "mean": mean, "std": std, "ours": text,
            "paper": paper, "differs_from_paper": "; ".join(setting_differences(runs, ref["setting"])), **gap}


def input_params(run):
    return run.config.get("param_counts", {}).get("input_trainable")


def arm_rows(arm, arm_runs, ref):
    """Final val loss, perplexity, input-side params and norm drift of one arm."""
    vals = ref["values"]
    done = [r for r in arm_runs if r.eval_steps]
    losses = [r.final_val_loss for r in done]
    ppl = [math.exp(v) for v in losses]
    params = [p for p in map(input_params, arm_runs) if p is not None]
    drifts = arm_drifts(done, NORM_FIELD)
    ratio = [d["final_over_initial"] for d in drifts]
    change = [d["max_rel_change"] for d in drifts]
    paper_params = vals["input_trainable_params"].get(arm)
    return [
        row(arm, "final val loss", losses, fmt_mean_std(losses), "", done, ref),
        row(arm, "final perplexity", ppl, fmt_mean_std(ppl, 2), "", done, ref),
        row(arm, "input-side trainable params", params, f"{params[0] / 1e6:.2f}M" if params else "n/a",
            f"{paper_params / 1e6:.1f}M" if paper_params else "", arm_runs, ref),
        row(arm, f"{NORM_FIELD} final/initial", ratio, fmt_mean_std(ratio, 3),
            vals["norm_drift"].get(arm, ""), done, ref),
        row(arm, f"{NORM_FIELD} largest rel. change", change, fmt_mean_std(change, 3), "", done, ref),
    ]


def gap_rows(runs, baseline, arm, ref):
    """Paired final val-loss gaps (nats, %) and steps-to-target of arm vs baseline."""
    pairs = paired(runs, baseline, arm)
    used = [r for _, b, a in pairs for r in (b, a)]
    nats = [a.final_val_loss - b.final_val_loss for _, b, a in pairs]
    pct = [100 * (a.final_val_loss - b.final_val_loss) / b.final_val_loss for _, b, a in pairs]
    results = compare(runs, baseline, arm)
    ratios = [r.ratio for r in results if r.ratio is not None]
    is_paper = ref["comparison"] == {"arm": arm, "baseline": baseline}
    v = ref["values"]
    paper = {
        "nats": f"{v['val_loss_gap_nats']['mean']} ± {v['val_loss_gap_nats']['std']}",
        "pct": f"{v['val_loss_gap_pct']['mean']} ± {v['val_loss_gap_pct']['std']} %",
        "ratio": f"~{v['steps_to_target_ratio']['mean']}x",
    } if is_paper else {"nats": "", "pct": "", "ratio": ""}
    label = f"{arm} vs {baseline}"
    return [
        row(label, "val loss gap (nats)", nats, fmt_mean_std(nats), paper["nats"], used, ref, paired_gap(nats)),
        row(label, "val loss gap (% of baseline)", pct, fmt_mean_std(pct, 2, " %"), paper["pct"], used, ref,
            paired_gap(pct)),
        row(label, "steps-to-target ratio", ratios, ratio_text(results), paper["ratio"], used, ref),
    ]


def summary_rows(runs, baselines, ref):
    rows = [r for arm, arm_runs in by_arm(runs).items() for r in arm_rows(arm, arm_runs, ref)]
    for baseline in baselines:
        for arm in compared_arms(runs, baseline):
            rows += gap_rows(runs, baseline, arm, ref)
    return rows


def baselines_to_report(runs, asked):
    """The --baseline values; by default bpe, and bpe_untied when it has runs."""
    found = by_arm(runs)
    return asked or [b for b in DEFAULT_BASELINES if b in found] or [DEFAULT_BASELINES[0]]


def gap_digits(row_):
    return 2 if "%" in row_["metric"] else 4


def gaps_markdown(rows):
    """The paired-gap rows with their 95% intervals, paired t-test p and what n allows."""
    gaps = [r for r in rows if r["note"] is not None]
    if not gaps:
        return ""
    return "## Paired gaps: 95% intervals and paired t-test\n\n" + markdown_table(
        ["comparison", "metric", "seeds (n)", "mean gap", "95% t interval", "95% bootstrap (n >= 5)",
         "paired t-test p", "what n allows"],
        [(r["arm"], r["metric"], r["seeds"], "n/a" if r["mean"] is None else f"{r['mean']:.{gap_digits(r)}f}",
          fmt_interval(r["t_low"], r["t_high"], gap_digits(r)), fmt_interval(r["boot_low"], r["boot_high"], gap_digits(r)),
          fmt_p(r["p"]), r["note"]) for r in gaps])


def setting_footnotes(rows):
    """Markers like [1] for each distinct 'differs from the paper' text, and their footnote lines."""
    texts = list(dict.fromkeys(r["differs_from_paper"] for r in rows if r["differs_from_paper"]))
    marks = {t: f"[{i}]" for i, t in enumerate(texts, start=1)}
    return marks, [f"{marks[t]} differs from the paper's setting: {t}" for t in texts]


def setting_mark(row_, marks):
    """The row's footnote marker; 'as paper' when its runs match the paper's setting; '' with no runs."""
    if not row_["seeds"]:
        return ""
    return marks.get(row_["differs_from_paper"], "as paper")


def to_markdown(rows, runs, runs_dir, baselines, ref):
    s = ref["setting"]
    marks, footnotes = setting_footnotes(rows)
    table = markdown_table(["arm", "metric", "seeds", "ours (mean ± std)", "paper", "setting"],
                           [(r["arm"], r["metric"], r["seeds"], r["ours"], r["paper"],
                             setting_mark(r, marks)) for r in rows])
    notes = "\n\n".join(filter(None, [notes_text(missing_notes(runs, [*baselines, *by_arm(runs)])),
                                       notes_text(change_notes(runs), "changed on resume (a mixed schedule)")]))
    baseline = " or ".join(baselines)
    return "\n\n".join(filter(None, [
        f"# Summary of {len(runs)} runs in {runs_dir}",
        f"Runs: {setting_label(runs)}.  \nPaper: {s['params']} model ({s['n_layer']}L x {s['n_embd']}d), "
        f"{fmt_tokens(s['tokens'])} {s['dataset']} tokens, {s['seeds']} seeds; its values are from "
        f"results/paper_reference.json ({ref['paper']}, abstract/claims).",
        table,
        "  \n".join(footnotes),
        gaps_markdown(rows),
        f"Gaps are arm - baseline ({baseline}) final validation loss, paired by seed (negative: the arm is "
        "better). ± is the sample standard deviation over seeds (n/a with one seed). The 95% t interval has "
        "n - 1 degrees of freedom (none with one seed; wide with 2-4); the bootstrap resamples the n paired "
        "gaps (percentile, 9,999 resamples, seeded), only from 5 seeds on; p is the two-sided paired t-test "
        "of a zero mean gap. Steps-to-target ratio: the baseline run's final step / the step at which the "
        "arm first reaches the baseline run's final validation loss (interpolated between evals), over the "
        "seeds that reached it.",
        notes,
    ])) + "\n"


def to_csv(rows):
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
    return buf.getvalue()


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", default=DEFAULT_RUNS_DIR, help="folder of run folders (default: %(default)s)")
    p.add_argument("--out", help="folder for summary.md and summary.csv (default: the --runs folder's parent)")
    p.add_argument("--baseline", action="append",
                   help="baseline arm for the gaps; repeat for several (default: bpe, and bpe_untied when present)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    runs = load_numeric_runs(args.runs)
    ref = paper_reference()
    baselines = baselines_to_report(runs, args.baseline)
    rows = summary_rows(runs, baselines, ref)
    out = Path(args.out) if args.out else default_out_dir(args.runs)
    markdown = to_markdown(rows, runs, args.runs, baselines, ref)
    write_text(out / "summary.md", markdown)
    write_text(out / "summary.csv", to_csv(rows))
    print(markdown)
    print(f"wrote {out / 'summary.md'} and {out / 'summary.csv'}")


if __name__ == "__main__":
    run_main(main)
