"""The quickstart's closing message, computed from its runs: where the results are, each arm's
final validation loss next to the committed reference (results/quickstart/) when the settings
match, and what a run of this size can and cannot show, against the paper's setting
(results/paper_reference.json). Nothing in it is typed in by hand, so it stays true for any
--max_steps or model size passed to scripts/quickstart.sh.

    python -m eval.quickstart_report --runs out/quickstart/runs --out out/quickstart
"""
import argparse
import textwrap
from pathlib import Path

from errors import run_main
from eval.log_values import load_numeric_runs
from eval.runs import fmt_tokens, paper_reference, tokens_per_run
from run_folder import config_differences

REFERENCE_RUNS_DIR = "results/quickstart/runs"


def setting_differences(run, ref_run):
    """The run-defining config keys whose values differ between a run and its reference, sorted:
    run_folder.config_differences, the rule resume and the sweep use for "the same run" (a key
    one config lacks counts as its default, so a reference made before a knob existed still
    matches a run at that knob's default; paths, provenance and speed settings never count)."""
    return sorted(key for key, _, _ in config_differences(ref_run.config, run.config))


def reference_note(run, ref):
    """What to print after a run's loss about its reference run (None: no reference run exists)."""
    if ref is None or ref.final_val_loss is None:
        return "reference: no run of this arm and seed"
    differences = setting_differences(run, ref)
    if differences:
        return f"reference: other settings ({', '.join(differences[:4])}{', ...' * (len(differences) > 4)})"
    return f"reference: {ref.final_val_loss:.4f}"


def loss_lines(runs, reference):
    """One line per run: arm, seed, final val loss (nats/token) and, unless reference is None, the
    reference's loss or why there is none to compare with."""
    ref_by_key = {(r.arm, r.seed): r for r in reference or []}
    lines = []
    for run in sorted(runs, key=lambda r: (r.arm, r.seed)):
        line = f"  {run.arm:<12} seed {run.seed}  {run.final_val_loss:.4f}"
        if reference is not None:
            line += "   " + reference_note(run, ref_by_key.get((run.arm, run.seed)))
        lines.append(line)
    return lines


def shape_text(runs):
    """The model sizes of these runs in words: 'A 4-layer, 128-wide model'."""
    shapes = sorted({(r.config.get("n_layer"), r.config.get("n_embd")) for r in runs}, key=str)
    return "A " + " and a ".join(f"{n_layer}-layer, {n_embd}-wide model" for n_layer, n_embd in shapes)


def closing_message(runs, out_dir, reference=None, reference_dir=REFERENCE_RUNS_DIR, paper_setting=None):
    """The text the quickstart prints last (str, several lines).

    runs: the quickstart's runs (eval.runs.Run); reference: the committed reference runs, or None
    to leave the comparison out; paper_setting: the "setting" of results/paper_reference.json
    (read from there when None).
    """
    s = paper_setting or paper_reference()["setting"]
    done = [r for r in runs if r.eval_steps]
    steps = "/".join(str(step) for step in sorted({r.final_step for r in done}))
    tokens = " / ".join(sorted({fmt_tokens(tokens_per_run(r.config)) for r in runs}))
    seeds = sorted({r.seed for r in runs})
    lines = [f"Done. Results in {out_dir}/: summary.md, summary.csv, *.png, val_loss.json, "
             f"runs/<arm>_s{'/'.join(map(str, seeds))}/log.jsonl",
             "", f"Final validation loss (nats/token) at step {steps}:", *loss_lines(done, reference)]
    if reference is not None:
        lines.append(textwrap.fill(
            f"The reference is the committed output of the default settings ({reference_dir}); it is "
            "comparable only at the same settings, and the data source, hardware and torch version can "
            "move it too.", width=100))
    lines += ["", textwrap.fill(
        f"What this shows: the pipeline runs end to end. {shape_text(runs)} trained on {tokens} tokens per "
        f"arm with {len(seeds)} seed{'s' * (len(seeds) != 1)} cannot tell which embedding is better; the "
        f"paper's claim is about {s['params']} models on {fmt_tokens(s['tokens'])} tokens over {s['seeds']} "
        "seeds (docs/results.md: the CPU mini-study; README: the paper runs).", width=100)]
    return "\n".join(lines)


def load_reference(runs_dir, reference_dir):
    """The reference runs, or None when there are none or they are the runs themselves."""
    reference_dir = Path(reference_dir)
    if not reference_dir.is_dir() or reference_dir.resolve() == Path(runs_dir).resolve():
        return None
    return load_numeric_runs(reference_dir)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", required=True, help="the quickstart's runs folder, e.g. out/quickstart/runs")
    p.add_argument("--out", required=True, help="the quickstart's output folder, named in the message")
    p.add_argument("--reference", default=REFERENCE_RUNS_DIR,
                   help="committed reference runs to compare with (default: %(default)s)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    runs = load_numeric_runs(args.runs)
    print(closing_message(runs, args.out, load_reference(args.runs, args.reference), args.reference))


if __name__ == "__main__":
    run_main(main)
