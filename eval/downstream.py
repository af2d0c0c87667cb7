"""Downstream benchmarks: a table from lm-evaluation-harness results (scripts/lm_eval.sh), per arm,
next to GPT-2 124M's published numbers and the paper's, each with its source.

    python -m eval.downstream                      # results/lm_eval -> the table, printed
    python -m eval.downstream --lm-eval DIR --out results/downstream.md
    python -m eval.summarize                       # adds the same table to summary.md when results/lm_eval exists

Reads every results_*.json under the folder (lm-eval's output). An export is identified by the
export_hf.json that scripts/lm_eval.sh copies next to its results: its arm and seed; results of
the same export in several files are merged, the newest file winning per task. Results without
it (e.g. openai-community/gpt2 run as a same-harness reference) get a column of their own,
named by lm-eval's model name. Rows: every (task, metric) found (stderr aside), the usual
GPT-2 comparisons first; cells: mean ± sample std over seeds, and the number of seeds. The
GPT-2 column comes from results/gpt2_lm_eval_reference.json, the paper's from the "downstream"
entry of results/paper_reference.json (it has none today: the paper reports no downstream
benchmark).
"""
import argparse
import re
from pathlib import Path

from errors import run_main
from eval.outputs import write_text
from eval.runs import fmt_mean_std, markdown_table, paper_reference, read_json

DEFAULT_DIR = "results/lm_eval"
GPT2_REFERENCE = Path(__file__).resolve().parent.parent / "results" / "gpt2_lm_eval_reference.json"
EXPORT_INFO = "export_hf.json"  # export_hf.py's facts of an export (arm, seed, ...)
# the metrics people compare GPT-2 124M on, in this order; other (task, metric) pairs follow
USUAL = [("hellaswag", "acc_norm"), ("hellaswag", "acc"), ("arc_easy", "acc"), ("arc_easy", "acc_norm"),
         ("arc_challenge", "acc_norm"), ("arc_challenge", "acc"), ("piqa", "acc"), ("piqa", "acc_norm"),
         ("winogrande", "acc"), ("lambada_openai", "acc"), ("lambada_openai", "perplexity")]
STAMP = re.compile(r"results_(.*)\.json")


def task_metrics(results):
    """{task: {metric: value}} of one lm-eval results JSON ("acc,none" -> "acc"; stderr left out)."""
    out = {}
    for task, values in results.get("results", {}).items():
        for key, value in values.items():  # "acc,none": metric "acc" under filter "none"; also "alias", "sample_len"
            metric, comma, _ = key.partition(",")
            if comma and isinstance(value, (int, float)) and not isinstance(value, bool) and "stderr" not in metric:
                out.setdefault(task, {})[metric] = float(value)
    return out


def export_info(results_file, root):
    """The export_hf.json nearest above a results file (inside root), or None."""
    for folder in results_file.parents:
        if (folder / EXPORT_INFO).is_file():
            return read_json(folder / EXPORT_INFO)
        if folder == root:
            return None
    return None


def load_results(root):
    """[dict(column, seed, export, tasks={task: {metric: value}})], one per export (export=True) or
    other model (a reference run)."""
    root = Path(root)
    merged = {}
    for path in sorted(root.rglob("results_*.json"), key=lambda p: (STAMP.fullmatch(p.name).group(1), str(p))):
        results = read_json(path)
        info = export_info(path, root)
        if info:
            key = (info.get("arm") or info.get("embedding"), info.get("seed"), info.get("checkpoint"))
            column, seed = key[0], key[1]
        else:
            column = results.get("model_name") or results.get("config", {}).get("model_args", path.parent.name)
            key, seed = (column, None, None), None
        entry = merged.setdefault(key, dict(column=column, seed=seed, export=bool(info), tasks={}))
        for task, metrics in task_metrics(results).items():
            entry["tasks"][task] = metrics  # newer files come later and win
    return list(merged.values())


def row_keys(entries):
    found = {(t, m) for e in entries for t, metrics in e["tasks"].items() for m in metrics}
    return [k for k in USUAL if k in found] + sorted(found - set(USUAL))


def reference_cell(values, task, metric, marks):
    """'0.3114 [a]': a reference value with its source's marker, or '' when there is none."""
    entry = values.get(task) or {}
    if metric not in entry:
        return ""
    mark = marks.setdefault(entry["source"], f"[{chr(ord('a') + len(marks))}]")
    return f"{entry[metric]:.4f} {mark}"


def downstream_markdown(entries, gpt2=None, paper=None):
    """The table, its sources and notes, as markdown ('' when there are no results)."""
    if not entries:
        return ""
    gpt2 = gpt2 or read_json(GPT2_REFERENCE)
    paper = paper if paper is not None else paper_reference().get("values", {}).get("downstream", {})
    columns = sorted({e["column"] for e in entries if e["export"]}) + sorted({e["column"] for e in entries if not e["export"]})
    marks = {}
    rows = []
    for task, metric in row_keys(entries):
        cells = []
        for column in columns:
            values = [e["tasks"][task][metric] for e in entries
                      if e["column"] == column and metric in e["tasks"].get(task, {})]
            cells.append(f"{fmt_mean_std(values)} (n={len(values)})" if values else "")
        rows.append([task, metric, *cells, reference_cell(gpt2["values"], task, metric, marks),
                     reference_cell(paper, task, metric, marks) or "not reported"])
    sources = [f"{mark} {source}" for source, mark in marks.items()]
    return "\n\n".join(filter(None, [
        "## Downstream benchmarks (lm-evaluation-harness)",
        markdown_table(["task", "metric", *columns, gpt2["model"].split(" (")[0], "paper"], rows),
        "  \n".join(sources),
        f"Ours: mean ± sample std over the seeds of each arm (n = exports scored), from the lm-eval results "
        f"JSONs (scripts/lm_eval.sh). Accuracies are fractions; acc_norm is lm-eval's length-normalised "
        f"accuracy (log-likelihood per character), not eval/hellaswag.py's per-token one (docs/export.md). "
        f"{gpt2['model']}: {gpt2['setting']}, from results/gpt2_lm_eval_reference.json. {gpt2['note']} "
        f"Paper: results/paper_reference.json.",
    ])) + "\n"


def downstream_section(lm_eval_dir):
    """downstream_markdown of a folder, or '' when it does not exist or holds no results."""
    return downstream_markdown(load_results(lm_eval_dir)) if Path(lm_eval_dir).is_dir() else ""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lm-eval", default=DEFAULT_DIR, help="folder of lm-eval results (default: %(default)s)")
    p.add_argument("--out", help="also write the table to this markdown file")
    args = p.parse_args(argv)
    text = downstream_section(args.lm_eval) or f"no lm-eval results_*.json under {args.lm_eval}\n"
    print(text, end="")
    if args.out:
        write_text(args.out, text)


if __name__ == "__main__":
    run_main(main)
