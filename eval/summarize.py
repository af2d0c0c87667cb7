"""Summarize a sweep: the paper's main table from the run logs, next to the paper's values.

Reads every run under --runs and writes summary.md and summary.csv into --out (default: the runs
folder's parent, e.g. results/ for results/runs). What was measured first: model size, tokens,
tokens per parameter and the unigram baseline on the same val tokens (eval/unigram.py). Per arm:
seeds, final validation loss and perplexity (mean ± sample std over seeds), how far below the
unigram baseline it ends, parameters and tokens per parameter, input-side trainable parameters,
the drift of the input-embedding row norm, and HellaSwag accuracy when the runs logged it. Per
arm against each baseline (bpe, and bpe_untied when it has runs; or --baseline, repeatable): the
final validation-loss gap in nats and in percent of the baseline (arm - baseline, paired by seed)
with its 95% t interval (n - 1 df), a percentile bootstrap interval when n >= 5 seeds, the paired
t-test p-value and its Holm adjustment over all of the table's comparisons, the smallest gap n
seeds can detect and the seeds the observed gap needs (80% power, eval/stats.py), and
steps-to-target (see eval/steps_to_target.py). Next to each, the
paper's value from results/paper_reference.json; rows whose runs differ from the paper's setting
(fewer seeds, fewer tokens, smaller model) are marked.
An lr sweep (runs of one arm at several max_lr, eval/learning_rates.py) adds a table of every lr
of every arm, and the comparisons come twice: each arm at its own best lr, and every arm at one
shared lr (--shared-lr; default the first baseline's best lr among those every arm has).
Partial results are fine: what is missing is listed at the end. When lm-evaluation-harness
results exist (--lm-eval, default <out>/lm_eval, written by scripts/lm_eval.sh), summary.md also
gets the downstream table of eval/downstream.py.

    python -m eval.summarize                            # results/runs -> results/summary.{md,csv}
    python -m eval.summarize --runs DIR --out DIR --baseline bpe --baseline bpe_untied
    python -m eval.summarize --shared-lr 6e-4           # an lr sweep: the shared lr to compare at
"""
import argparse
import csv
import io
import math
from pathlib import Path

from errors import UserError, run_main
from eval.downstream import downstream_section
from eval.learning_rates import at_lrs, best_lrs, default_shared_lr, fmt_lr, lr_groups, several_lrs, shared_lrs
from eval.log_values import load_numeric_runs
from eval.norm_drift import arm_drifts
from eval.outputs import write_text
from eval.runs import (DEFAULT_RUNS_DIR, by_arm, change_notes, compared_arms, default_out_dir, fmt_mean_std,
                       fmt_tokens, markdown_table, mean_std, missing_notes, notes_text, paired, paper_reference,
                       setting_differences, setting_label)
from eval.stats import ALPHA, POWER, fmt_interval, fmt_p, holm, paired_gap
from eval.steps_to_target import compare, ratio_text
from eval.unigram import run_unigram_losses

DEFAULT_BASELINES = ("bpe", "bpe_untied")
GAP_FIELDS = ["t_low", "t_high", "boot_low", "boot_high", "p", "p_holm", "detectable", "seeds_needed", "note"]
CSV_FIELDS = ["table", "arm", "lr", "metric", "seeds", "mean", "std", "ours", "paper", "differs_from_paper",
              *GAP_FIELDS]
NORM_FIELD = "emb_row_norm"
HELLASWAG_METRICS = (("hellaswag_acc_norm", "HellaSwag acc_norm (final)"), ("hellaswag_acc", "HellaSwag acc (final)"))


def row(arm, metric, values, text, paper, runs, ref, gap=None, lr=""):
    """One table row; `gap` (paired gaps only) adds the intervals, p, power and note of
    eval.stats.paired_gap; lr is the learning rate text (set per arm; 'a vs b' for a gap)."""
    mean, std = mean_std(values)
    gap = {k: (gap or {}).get(k) for k in GAP_FIELDS}
    return {"table": "", "arm": arm, "lr": lr, "metric": metric, "seeds": len({r.seed for r in runs}), "mean": mean,
            "std": std, "ours": text, "paper": paper,
            "differs_from_paper": "; ".join(setting_differences(runs, ref["setting"])), **gap}


def input_params(run):
    return run.config.get("param_counts", {}).get("input_trainable")


def total_params(run):
    return run.config.get("param_counts", {}).get("total")


def trained_tokens(run):
    """Tokens the run has trained on: its last eval step x total_batch_tokens (max_steps x it when done)."""
    return (run.final_step or 0) * run.config.get("total_batch_tokens", 0)


def lr_text(runs):
    """The learning rate(s) of these runs as run names spell them."""
    return ", ".join(fmt_lr(lr) for lr in sorted({r.lr for r in runs}, key=lambda lr: lr or 0.0))


def arm_rows(arm, arm_runs, ref, unigrams):
    """Final val loss, perplexity, distance below the unigram baseline, parameters and tokens per
    parameter, input-side params, norm drift and (when logged) HellaSwag of one arm; unigrams:
    run name -> the unigram baseline's loss on that run's val tokens (None where unknown)."""
    vals = ref["values"]
    done = [r for r in arm_runs if r.eval_steps]
    losses = [r.final_val_loss for r in done]
    ppl = [math.exp(v) for v in losses]
    below = [unigrams[r.name] - r.final_val_loss for r in done if unigrams.get(r.name) is not None]
    params = [p for p in map(input_params, arm_runs) if p is not None]
    totals = [(trained_tokens(r), total_params(r)) for r in done if total_params(r)]
    per_param = [tokens / total for tokens, total in totals]
    drifts = arm_drifts(done, NORM_FIELD)
    ratio = [d["final_over_initial"] for d in drifts]
    change = [d["max_rel_change"] for d in drifts]
    paper_params = vals["input_trainable_params"].get(arm)
    lr = lr_text(arm_runs)
    rows = [
        row(arm, "final val loss", losses, fmt_mean_std(losses), "", done, ref, lr=lr),
        row(arm, "final perplexity", ppl, fmt_mean_std(ppl, 2), "", done, ref, lr=lr),
        row(arm, "final val loss below the unigram (nats)", below, fmt_mean_std(below) if below else "n/a", "", done,
            ref, lr=lr),
        row(arm, "tokens per parameter", per_param, per_param_text(totals), "", done, ref, lr=lr),
        row(arm, "input-side trainable params", params, f"{params[0] / 1e6:.2f}M" if params else "n/a",
            f"{paper_params / 1e6:.1f}M" if paper_params else "", arm_runs, ref, lr=lr),
        row(arm, f"{NORM_FIELD} final/initial", ratio, fmt_mean_std(ratio, 3),
            vals["norm_drift"].get(arm, ""), done, ref, lr=lr),
        row(arm, f"{NORM_FIELD} largest rel. change", change, fmt_mean_std(change, 3), "", done, ref, lr=lr),
    ]
    return rows + hellaswag_rows(arm, done, ref, lr)


def per_param_text(totals):
    """'0.179 (614K tokens / 3.43M params)' from [(tokens, params)] of an arm's runs; a range when they differ."""
    if not totals:
        return "n/a"
    ratios = sorted(t / p for t, p in totals)
    value = f"{ratios[0]:.3f}" if ratios[0] == ratios[-1] else f"{ratios[0]:.3f}-{ratios[-1]:.3f}"
    return f"{value} ({fmt_tokens(totals[0][0])} tokens / {totals[0][1] / 1e6:.2f}M params)"


def hellaswag_rows(arm, runs, ref, lr):
    """HellaSwag accuracy (percent) at each run's last HellaSwag line; no rows when no run logged one."""
    logged = [r for r in runs if r.final_hellaswag]
    if not logged:
        return []
    examples = sorted({int(r.final_hellaswag.get("hellaswag_n", 0)) for r in logged})
    rows = []
    for field, metric in HELLASWAG_METRICS:
        values = [100 * r.final_hellaswag[field] for r in logged if field in r.final_hellaswag]
        text = f"{fmt_mean_std(values, 2, ' %')} ({'/'.join(f'{n:,}' for n in examples)} examples)"
        rows.append(row(arm, metric, values, text, "", logged, ref, lr=lr))
    return rows


def gap_rows(runs, baseline, arm, ref):
    """Paired final val-loss gaps (nats, %) and steps-to-target of arm vs baseline."""
    pairs = paired(runs, baseline, arm)
    used = [r for _, b, a in pairs for r in (b, a)]
    lr = f"{lr_text([a for _, _, a in pairs])} vs {lr_text([b for _, b, _ in pairs])}" if pairs else ""
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
        row(label, "val loss gap (nats)", nats, fmt_mean_std(nats), paper["nats"], used, ref, paired_gap(nats), lr),
        row(label, "val loss gap (% of baseline)", pct, fmt_mean_std(pct, 2, " %"), paper["pct"], used, ref,
            paired_gap(pct), lr),
        row(label, "steps-to-target ratio", ratios, ratio_text(results), paper["ratio"], used, ref, lr=lr),
    ]


def summary_rows(runs, baselines, ref, unigrams, table=""):
    """The rows of one comparison table (`table` names it in the CSV): every arm, then every arm
    against each baseline. runs must hold one lr per arm (see comparison_tables)."""
    rows = [r for arm, arm_runs in by_arm(runs).items() for r in arm_rows(arm, arm_runs, ref, unigrams)]
    for baseline in baselines:
        for arm in compared_arms(runs, baseline):
            rows += gap_rows(runs, baseline, arm, ref)
    return [{**r, "table": table} for r in with_holm(rows)]


def with_holm(rows):
    """rows with p_holm set on every paired gap: Holm-adjusted over the table's family, i.e. its
    distinct comparisons in one unit (nats, or % of baseline: the same comparisons in other units).
    "a vs b" and "b vs a" are one comparison, counted once, with the larger of their two p: in nats
    the two are the same test with the same p; in % they divide by different baselines, so their p
    differ slightly, and the larger keeps the adjustment conservative and independent of row order."""
    families = {}  # metric -> {arm, baseline} -> the rows of that comparison
    for r in rows:
        if r["note"] is not None:  # a paired gap (gap_rows labels it "arm vs baseline")
            families.setdefault(r["metric"], {}).setdefault(frozenset(r["arm"].split(" vs ")), []).append(r)
    for family in families.values():
        groups = list(family.values())
        pair_p = [max((r["p"] for r in group if r["p"] is not None), default=None) for group in groups]
        for group, adjusted in zip(groups, holm(pair_p)):
            for r in group:
                r["p_holm"] = adjusted
    return rows


# ----------------------------------------------------------------------------- learning rates

def comparison_tables(runs, baselines, shared_lr=None):
    """[(table name, heading text, its runs)]: one table of all runs when every arm has one lr;
    for an lr sweep, every arm at its own best lr and every arm at one shared lr (shared_lr, or
    learning_rates.default_shared_lr for the first baseline; none when no lr is shared by all).
    Raises UserError for a shared_lr at which some arm has no runs."""
    if not several_lrs(runs):
        return [("", "", runs)]
    best = best_lrs(runs)
    tables = [("own best lr", "## Each arm at its own best learning rate\n\nEvery arm at the lr with its lowest "
               "mean final validation loss (" + ", ".join(f"{a} {fmt_lr(lr)}" for a, lr in best.items()) + "): "
               "each arm tuned, the best lr chosen on the loss it is compared on.", at_lrs(runs, best))]
    shared = shared_lrs(runs)
    if shared_lr is not None and shared_lr not in shared:
        raise UserError(f"--shared-lr {fmt_lr(shared_lr)}: not every arm has runs at it; the lrs every arm has: "
                        f"{', '.join(map(fmt_lr, shared)) or 'none'}")
    lr = default_shared_lr(runs, baselines[0]) if shared_lr is None else shared_lr
    if lr is not None:
        how = ("asked for with --shared-lr" if shared_lr is not None
               else f"the best lr of {baselines[0]} among those every arm has")
        tables.append((f"shared lr {fmt_lr(lr)}", f"## Every arm at one shared learning rate, {fmt_lr(lr)}\n\n"
                       f"{fmt_lr(lr)} is {how}: one recipe for every arm, none tuned for itself.",
                       at_lrs(runs, {arm: lr for arm in by_arm(runs)})))
    return tables


def lr_rows(runs, ref):
    """The 'every lr' table: per arm and lr, the seeds and final val loss; the best lr marked in note."""
    best, rows = best_lrs(runs), []
    for arm, lrs in lr_groups(runs).items():
        for lr, lr_runs in lrs.items():
            done = [r for r in lr_runs if r.eval_steps]
            losses = [r.final_val_loss for r in done]
            rows.append({**row(arm, "final val loss", losses, fmt_mean_std(losses), "", done, ref, lr=fmt_lr(lr)),
                         "table": "every lr", "note": "best lr of the arm" if best.get(arm) == lr else ""})
    return rows


def lr_markdown(rows):
    if not rows:
        return ""
    return "## Every learning rate of every arm\n\n" + markdown_table(
        ["arm", "lr", "seeds", "final val loss (mean ± std)", "best"],
        [(r["arm"], r["lr"], r["seeds"], r["ours"], "best" if r["note"] else "") for r in rows])


def baselines_to_report(runs, asked):
    """The --baseline values; by default bpe, and bpe_untied when it has runs."""
    found = by_arm(runs)
    return asked or [b for b in DEFAULT_BASELINES if b in found] or [DEFAULT_BASELINES[0]]


def gap_digits(row_):
    return 2 if "%" in row_["metric"] else 4


def gaps_markdown(rows):
    """The paired-gap rows with their 95% intervals, paired t-test p, power and what n allows."""
    gaps = [r for r in rows if r["note"] is not None and r["table"] != "every lr"]
    if not gaps:
        return ""
    return "### Paired gaps: 95% intervals, paired t-test and power\n\n" + markdown_table(
        ["comparison", "metric", "seeds (n)", "mean gap", "95% t interval", "95% bootstrap (n >= 5)",
         "paired t-test p", "Holm p (the table's gaps)", "smallest gap n seeds detect", "seeds the mean gap needs",
         "what n allows"],
        [(r["arm"], r["metric"], r["seeds"], "n/a" if r["mean"] is None else f"{r['mean']:.{gap_digits(r)}f}",
          fmt_interval(r["t_low"], r["t_high"], gap_digits(r)),
          fmt_interval(r["boot_low"], r["boot_high"], gap_digits(r)), fmt_p(r["p"]), fmt_p(r["p_holm"]),
          "n/a" if r["detectable"] is None else f"{r['detectable']:.{gap_digits(r)}f}",
          "n/a" if r["seeds_needed"] is None else r["seeds_needed"], r["note"]) for r in gaps])


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


def table_markdown(rows, marks):
    return markdown_table(["arm", "lr", "metric", "seeds", "ours (mean ± std)", "paper", "setting"],
                          [(r["arm"], r["lr"], r["metric"], r["seeds"], r["ours"], r["paper"], setting_mark(r, marks))
                           for r in rows])


def to_markdown(tables, lr_table, runs, runs_dir, baselines, ref, unigram_lines):
    """summary.md: what was measured, the lr table (an lr sweep), then each comparison table
    (tables: [(name, heading, rows)]) with its paired gaps, the legend and what is missing."""
    s = ref["setting"]
    marks, footnotes = setting_footnotes([r for _, _, rows in tables for r in rows])
    notes = "\n\n".join(filter(None, [notes_text(missing_notes(runs, [*baselines, *by_arm(runs)])),
                                       notes_text(change_notes(runs), "changed on resume (a mixed schedule)")]))
    baseline = " or ".join(baselines)
    body = []
    for _, heading, rows in tables:
        body += [heading, table_markdown(rows, marks), gaps_markdown(rows)]
    return "\n\n".join(filter(None, [
        f"# Summary of {len(runs)} runs in {runs_dir}",
        f"Runs: {setting_label(runs)}.  \nUnigram baseline (eval/unigram.py): " + "; ".join(unigram_lines) + ".  \n"
        f"Paper: {s['params']} model ({s['n_layer']}L x {s['n_embd']}d), "
        f"{fmt_tokens(s['tokens'])} {s['dataset']} tokens, {s['seeds']} seeds; its values are from "
        f"results/paper_reference.json ({ref['paper']}; each value names its source).",
        lr_markdown(lr_table),
        *body,
        "  \n".join(footnotes),
        f"Gaps are arm - baseline ({baseline}) final validation loss, paired by seed (negative: the arm is "
        "better). ± is the sample standard deviation over seeds (n/a with one seed). The 95% t interval has "
        "n - 1 degrees of freedom (none with one seed; wide with 2-4); the bootstrap resamples the n paired "
        "gaps (percentile, 9,999 resamples, seeded), only from 5 seeds on; p is the two-sided paired t-test "
        "of a zero mean gap; the Holm p adjusts it for the number of comparisons the table makes (Holm's "
        "step-down over the table's distinct comparisons in the same unit, a vs b and b vs a counted once, "
        "with the larger of their p in %): a gap whose Holm p is under 0.05 survives the whole table at a 5% "
        "family-wise error rate, one whose plain p alone is under 0.05 may be one of the chance findings that "
        f"many comparisons make. Power: the two-sided paired t-test at {ALPHA:.0%} with {POWER:.0%} power, computed "
        "exactly from the noncentral t distribution (scipy.stats.nct, not a normal approximation), taking the "
        "observed std of the per-seed gaps as the true one: the smallest gap n seeds detect is the true mean "
        "gap the test finds in 80% of n-seed sweeps; the seeds the mean gap needs, the fewest seeds that find "
        "the observed mean gap 80% of the time. With 2-4 seeds the observed std is itself rough, so both are "
        "estimates. Final val loss below the unigram: the unigram baseline's loss minus the arm's, on the same "
        "val tokens (positive: the arm beats a context-free model); tokens per parameter: tokens trained / all "
        "parameters. Steps-to-target ratio: the baseline run's final step / the step at which the "
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
    p.add_argument("--shared-lr", type=float,
                   help="an lr sweep: the lr at which every arm is compared (default: the first baseline's best "
                        "among the lrs every arm has)")
    p.add_argument("--lm-eval", help="folder of lm-eval results for the downstream table (default: <out>/lm_eval)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    runs = load_numeric_runs(args.runs)
    ref = paper_reference()
    baselines = baselines_to_report(runs, args.baseline)
    unigrams, unigram_lines = run_unigram_losses(runs)
    lr_table = lr_rows(runs, ref) if several_lrs(runs) else []
    tables = [(name, heading, summary_rows(table_runs, baselines, ref, unigrams, name))
              for name, heading, table_runs in comparison_tables(runs, baselines, args.shared_lr)]
    rows = lr_table + [r for _, _, table_rows in tables for r in table_rows]
    out = Path(args.out) if args.out else default_out_dir(args.runs)
    markdown = to_markdown(tables, lr_table, runs, args.runs, baselines, ref, unigram_lines)
    if args.lm_eval and not Path(args.lm_eval).is_dir():
        raise UserError(f"--lm-eval {args.lm_eval} is not a folder; give the OUT of scripts/lm_eval.sh "
                        f"(default results/lm_eval)")
    downstream = downstream_section(args.lm_eval or out / "lm_eval")
    markdown += "\n" + downstream if downstream else ""
    write_text(out / "summary.md", markdown)
    write_text(out / "summary.csv", to_csv(rows))
    print(markdown)
    print(f"wrote {out / 'summary.md'} and {out / 'summary.csv'}")


if __name__ == "__main__":
    run_main(main)
