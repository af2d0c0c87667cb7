"""The log-reading eval scripts on small synthetic run folders with hand-computed answers.

The sweep written by `sweep()`: evals at steps 0, 100, 200, 300, 400.
  bpe seed 0 final 3.0, seed 1 final 3.2 (the targets);
  kronecker seed 0 crosses 3.0 between step 200 (3.4) and 300 (2.8): step 266.67, ratio 1.5;
  kronecker seed 1 hits 3.2 exactly at step 200: ratio 2.0;
  bpe_untied (seed 0 only) never gets below 3.5, so it never reaches its target.
"""
import csv
import json
import math
import os

import numpy as np
import pytest

from data.shards import write_shard
from errors import UserError, run_main
from eval import learning_rates, norm_drift, plot_curves, steps_to_target, summarize, unigram
from eval.runs import load_runs, mean_std, paper_reference, read_json
from run_folder import lr_tag

STEPS = [0, 100, 200, 300, 400]
BPE_NORMS = [0.55, 0.6, 0.7, 0.8, 1.1]
KRON_NORMS = [1.0, 1.01, 1.02, 1.0, 0.99]


def write_run(runs_dir, arm, seed, val_losses, norms=None, finished=True, extra_lines=(), name=None, **config):
    """A run folder as train.py writes it: config.json, log.jsonl (train + eval lines), summary.json."""
    folder = runs_dir / (name or f"{arm}_s{seed}")
    folder.mkdir(parents=True)
    cfg = {"embedding": arm, "seed": seed, "n_layer": 2, "n_embd": 64, "max_steps": 400, "max_lr": 1e-3,
           "total_batch_tokens": 1024, "param_counts": {"input_trainable": 3_145_728 if arm == "kronecker"
                                                        else 38_633_472}, **config}
    (folder / "config.json").write_text(json.dumps(cfg))
    norms = norms or (KRON_NORMS if arm == "kronecker" else BPE_NORMS)
    lines = []
    for i, (step, loss) in enumerate(zip(STEPS, val_losses)):
        lines.append({"step": step, "tokens": step * 1024, "train_loss": loss + 0.1, "lr": 1e-3})
        lines.append({"step": step, "tokens": step * 1024, "val_loss": loss, "emb_row_norm": norms[i],
                      "emb_token_norm": norms[i], "emb_fro_norm": 10 * norms[i]})
    lines += extra_lines
    (folder / "log.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    if finished:
        (folder / "summary.json").write_text(json.dumps({"final_step": 400, "finished": True}))
    return folder


@pytest.fixture
def sweep(tmp_path):
    runs = tmp_path / "runs"
    write_run(runs, "bpe", 0, [10, 5, 4, 3.5, 3.0])
    write_run(runs, "bpe", 1, [10, 5.2, 4.1, 3.6, 3.2])
    write_run(runs, "kronecker", 0, [10, 4.0, 3.4, 2.8, 2.7])
    write_run(runs, "kronecker", 1, [10, 4.2, 3.2, 3.0, 2.95])
    write_run(runs, "bpe_untied", 0, [10, 6, 5, 4, 3.5])
    return runs


def exit_with_error(main, argv, capsys):
    """Run main through errors.run_main; return (exit code, stderr)."""
    with pytest.raises(SystemExit) as exc:
        run_main(lambda: main(argv))
    return exc.value.code, capsys.readouterr().err


# ----------------------------------------------------------------------------- loader

def test_load_runs_reads_arm_seed_curves_and_finished(sweep):
    runs = {(r.arm, r.seed): r for r in load_runs(sweep)}
    kron = runs[("kronecker", 0)]
    assert kron.eval_steps == STEPS and kron.val_loss == [10, 4.0, 3.4, 2.8, 2.7]
    assert kron.train_loss == pytest.approx([10.1, 4.1, 3.5, 2.9, 2.8])
    assert kron.norms["emb_row_norm"] == KRON_NORMS
    assert kron.finished and kron.final_step == 400 and kron.final_val_loss == 2.7


def test_later_line_for_the_same_step_wins(tmp_path):
    resumed = [{"step": 400, "tokens": 0, "val_loss": 2.5, "emb_row_norm": 9.0, "emb_token_norm": 9.0,
                "emb_fro_norm": 9.0}]
    write_run(tmp_path, "bpe", 0, [10, 5, 4, 3.5, 3.0], extra_lines=resumed)
    (run,) = load_runs(tmp_path)
    assert run.eval_steps == STEPS
    assert run.final_val_loss == 2.5 and run.norms["emb_row_norm"][-1] == 9.0


def test_a_resumed_run_drops_the_old_lines_it_is_retracing(tmp_path):
    resumed = [{"step": 300, "tokens": 0, "train_loss": 1.0},
               {"step": 300, "tokens": 0, "val_loss": 1.5, "emb_row_norm": 1.0, "emb_token_norm": 1.0,
                "emb_fro_norm": 1.0}]
    write_run(tmp_path, "bpe", 0, [10, 5, 4, 3.5, 3.0], extra_lines=resumed, finished=False)
    (run,) = load_runs(tmp_path)
    assert run.eval_steps == [0, 100, 200, 300] and run.final_val_loss == 1.5
    assert run.train_steps == [0, 100, 200, 300] and run.train_loss[-1] == 1.0


def test_corrupt_log_line_names_file_and_line(tmp_path, capsys):
    folder = write_run(tmp_path, "bpe", 0, [10, 5, 4, 3.5, 3.0])
    lines = (folder / "log.jsonl").read_text().splitlines()
    lines[2] = '{"step": 100, "val_'
    (folder / "log.jsonl").write_text("\n".join(lines) + "\n")
    code, err = exit_with_error(summarize.main, ["--runs", str(tmp_path)], capsys)
    assert code == 2 and "log.jsonl line 3 is not valid JSON" in err


def test_unterminated_last_line_of_a_running_log_is_skipped(tmp_path):
    folder = write_run(tmp_path, "bpe", 0, [10, 5, 4, 3.5, 3.0], finished=False)
    with open(folder / "log.jsonl", "a") as f:
        f.write('{"step": 500, "val_lo')
    (run,) = load_runs(tmp_path)
    assert run.final_step == 400 and not run.finished


def test_two_runs_with_the_same_arm_and_seed_are_refused(sweep, capsys):
    write_run(sweep, "bpe", 0, [10, 5, 4, 3.5, 3.0], name="bpe_rerun")  # config.json decides, not the name
    code, err = exit_with_error(summarize.main, ["--runs", str(sweep)], capsys)
    assert code == 2 and "are both arm bpe seed 0" in err


def test_runs_of_one_arm_and_seed_at_two_learning_rates_are_two_runs(sweep):
    write_run(sweep, "bpe", 0, [10, 5, 4, 3.5, 3.2], name="bpe_lr3e-4_s0", max_lr=3e-4)
    assert sorted((r.arm, r.lr, r.seed) for r in load_runs(sweep) if r.arm == "bpe") == [
        ("bpe", 3e-4, 0), ("bpe", 1e-3, 0), ("bpe", 1e-3, 1)]


def test_mean_std_is_the_sample_std_and_needs_two_values():
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert mean_std([4.0]) == (4.0, None)
    assert mean_std([]) == (None, None)


# ----------------------------------------------------------------------------- steps to target

def test_crossing_step_interpolates_between_eval_points():
    assert steps_to_target.crossing_step([200, 300], [3.4, 2.8], 3.0) == pytest.approx(266.6667, abs=1e-3)
    assert steps_to_target.crossing_step([0, 100], [3.0, 2.0], 3.0) == 0.0
    assert steps_to_target.crossing_step([0, 100], [4.0, 3.5], 3.0) is None


def test_steps_to_target_per_seed_and_ratio(sweep):
    results = steps_to_target.compare(load_runs(sweep), "bpe", "kronecker")
    assert [(r.seed, r.target, r.baseline_step) for r in results] == [(0, 3.0, 400), (1, 3.2, 400)]
    assert [r.arm_step for r in results] == pytest.approx([800 / 3, 200])
    assert [r.ratio for r in results] == pytest.approx([1.5, 2.0])
    assert steps_to_target.ratio_text(results) == "1.75x ± 0.35x (2 of 2 seeds reached)"


def test_an_arm_that_never_reaches_the_target_says_so(sweep, capsys):
    (result,) = steps_to_target.compare(load_runs(sweep), "bpe", "bpe_untied")
    assert result.arm_step is None and result.ratio is None
    assert result.note == "never reached: best 3.5000 at step 400"
    steps_to_target.main(["--runs", str(sweep), "--arm", "bpe_untied"])
    out = capsys.readouterr().out
    assert "never reached (0 of 1 seeds)" in out and "seed 1: no run for bpe_untied" in out


def test_steps_to_target_with_a_missing_arm_lists_it(sweep, capsys):
    steps_to_target.main(["--runs", str(sweep), "--arm", "kronecker", "--arm", "dense"])
    out = capsys.readouterr().out
    assert "1.75x ± 0.35x" in out and "arm dense: no runs" in out


# ----------------------------------------------------------------------------- norm drift

def test_norm_drift_initial_final_ratio_and_largest_change():
    assert norm_drift.drift(BPE_NORMS) == pytest.approx(
        {"initial": 0.55, "final": 1.1, "final_over_initial": 2.0, "max_rel_change": 1.0})
    assert norm_drift.drift(KRON_NORMS)["max_rel_change"] == pytest.approx(0.02)


def test_norm_drift_prints_one_row_per_arm_and_field(sweep, capsys):
    norm_drift.main(["--runs", str(sweep)])
    out = capsys.readouterr().out
    assert ("| kronecker | emb_row_norm | 2 | 1.0000 ± 0.0000 | 0.9900 ± 0.0000 | 0.9900 ± 0.0000 "
            "| 0.0200 ± 0.0000 |") in out
    assert "| bpe_untied | emb_fro_norm | 1 | 5.5000 ± n/a |" in out


# ----------------------------------------------------------------------------- summarize

def read_csv_rows(path):
    with open(path) as f:
        return {(r["arm"], r["metric"]): r for r in csv.DictReader(f)}


def test_summarize_writes_paired_gaps_and_stats(sweep):
    summarize.main(["--runs", str(sweep)])
    rows = read_csv_rows(sweep.parent / "summary.csv")
    loss = rows[("bpe", "final val loss")]
    assert float(loss["mean"]) == pytest.approx(3.1) and float(loss["std"]) == pytest.approx(math.sqrt(0.02))
    nats = rows[("kronecker vs bpe", "val loss gap (nats)")]
    assert float(nats["mean"]) == pytest.approx(-0.275) and float(nats["std"]) == pytest.approx(0.025 * math.sqrt(2))
    pct = rows[("kronecker vs bpe", "val loss gap (% of baseline)")]
    assert float(pct["mean"]) == pytest.approx((-10 - 7.8125) / 2)
    assert pct["paper"] == "-2.5 ± 0.2 %"
    assert float(rows[("kronecker vs bpe", "steps-to-target ratio")]["mean"]) == pytest.approx(1.75)
    assert rows[("kronecker", "input-side trainable params")]["ours"] == "3.15M"
    assert rows[("kronecker", "input-side trainable params")]["paper"] == "3.1M"
    assert rows[("bpe", "emb_row_norm final/initial")]["ours"] == "2.000 ± 0.000"


def test_summarize_gives_every_gap_a_t_interval_and_a_paired_t_test(sweep):
    summarize.main(["--runs", str(sweep)])
    rows = read_csv_rows(sweep.parent / "summary.csv")
    nats = rows[("kronecker vs bpe", "val loss gap (nats)")]
    # gaps -0.3 and -0.25: mean -0.275, sem 0.025, t(0.975, 1 df) = 12.7062 from a t table
    assert (float(nats["t_low"]), float(nats["t_high"])) == pytest.approx((-0.275 - 12.7062 * 0.025,
                                                                            -0.275 + 12.7062 * 0.025), abs=1e-4)
    # t = -11 with 1 df (a Cauchy): two-sided p = 1 - (2 / pi) atan(11)
    assert float(nats["p"]) == pytest.approx(1 - 2 / math.pi * math.atan(11), rel=1e-9)
    assert nats["boot_low"] == "" and nats["note"] == "t interval with 1 df; wide, and it assumes normal gaps"
    md = (sweep.parent / "summary.md").read_text()
    # sd of the gaps 0.025 sqrt 2 = 0.0354; 2 seeds detect 11.55 sd (statsmodels, tests/test_stats.py) = 0.4084;
    # the mean gap is 7.78 sd: 2 seeds are not enough (11.55), 3 are (3.26)
    # the only gap with a test in its family: the Holm p is the plain p
    assert ("| kronecker vs bpe | val loss gap (nats) | 2 | -0.2750 | [-0.5927, 0.0427] | n/a | 0.0577 | 0.0577 | "
            "0.4084 | 3 | t interval with 1 df; wide, and it assumes normal gaps |") in md


def test_summarize_adjusts_each_gap_for_the_comparisons_its_table_makes(tmp_path):
    """Three arms against bpe over 3 seeds: each unit's (nats, %) gaps form one Holm family."""
    runs = tmp_path / "runs"
    gaps = {"arm_a": [-0.10, -0.11, -0.12], "arm_b": [-0.10, -0.20, -0.15], "arm_c": [0.05, -0.05, 0.02]}
    for seed in range(3):
        write_run(runs, "bpe", seed, [10, 5, 4, 3.5, 3.0])
        for arm, arm_gaps in gaps.items():
            write_run(runs, arm, seed, [10, 5, 4, 3.5, 3.0 + arm_gaps[seed]])
    summarize.main(["--runs", str(runs), "--baseline", "bpe"])
    rows = read_csv_rows(tmp_path / "summary.csv")
    for metric in ("val loss gap (nats)", "val loss gap (% of baseline)"):
        family = [rows[(f"{arm} vs bpe", metric)] for arm in gaps]
        p = [float(r["p"]) for r in family]
        assert p[0] < p[1] < p[2]  # a has the tightest gaps, c straddles zero
        holm = [float(r["p_holm"]) for r in family]  # by hand: 3 p_(1), max(that, 2 p_(2)), max(that, p_(3))
        assert holm[0] == pytest.approx(3 * p[0])
        assert holm[1] == pytest.approx(max(3 * p[0], 2 * p[1]))
        assert holm[2] == pytest.approx(max(holm[1], p[2]))
    assert rows[("arm_a vs bpe", "steps-to-target ratio")]["p_holm"] == ""  # not a test


def test_a_comparison_read_both_ways_is_one_member_of_the_holm_family(tmp_path):
    """With two baselines, "arm_a vs arm_b" and "arm_b vs arm_a" are the same test: counted once."""
    runs = tmp_path / "runs"
    for seed, (a, b) in enumerate([(3.0, 3.1), (3.2, 3.25), (3.1, 3.3)]):
        write_run(runs, "arm_a", seed, [10, 5, 4, 3.5, a])
        write_run(runs, "arm_b", seed, [10, 5, 4, 3.5, b])
    summarize.main(["--runs", str(runs), "--baseline", "arm_a", "--baseline", "arm_b"])
    rows = read_csv_rows(tmp_path / "summary.csv")
    one_way, other_way = (rows[(name, "val loss gap (nats)")] for name in ("arm_b vs arm_a", "arm_a vs arm_b"))
    assert float(one_way["p"]) == pytest.approx(float(other_way["p"]))
    assert float(one_way["p_holm"]) == float(other_way["p_holm"]) == pytest.approx(float(one_way["p"]))
    # in % the two directions divide by different baselines: their p differ, and the pair takes the larger
    pct = [rows[(name, "val loss gap (% of baseline)")] for name in ("arm_b vs arm_a", "arm_a vs arm_b")]
    assert float(pct[0]["p"]) != pytest.approx(float(pct[1]["p"]), rel=1e-6)
    assert float(pct[0]["p_holm"]) == float(pct[1]["p_holm"]) == max(float(r["p"]) for r in pct)


def test_summarize_reports_every_arm_against_bpe_and_bpe_untied_and_says_when_n_is_one(sweep):
    summarize.main(["--runs", str(sweep)])
    rows = read_csv_rows(sweep.parent / "summary.csv")
    compared = sorted({arm for arm, _ in rows if " vs " in arm})
    assert compared == ["bpe vs bpe_untied", "bpe_untied vs bpe", "kronecker vs bpe", "kronecker vs bpe_untied"]
    one_seed = rows[("kronecker vs bpe_untied", "val loss gap (nats)")]
    assert float(one_seed["mean"]) == pytest.approx(2.7 - 3.5) and one_seed["t_low"] == one_seed["p"] == ""
    assert one_seed["note"] == "one seed: no interval, no test; nothing can be concluded"


def test_summarize_adds_a_bootstrap_interval_from_five_seeds_on(tmp_path):
    runs = tmp_path / "runs"
    for seed, gap in enumerate([-0.1, -0.2, -0.15, -0.3, -0.25]):
        write_run(runs, "bpe", seed, [10, 5, 4, 3.5, 3.0])
        write_run(runs, "new_arm", seed, [10, 5, 4, 3.5, 3.0 + gap])
    summarize.main(["--runs", str(runs), "--baseline", "bpe"])
    nats = read_csv_rows(tmp_path / "summary.csv")[("new_arm vs bpe", "val loss gap (nats)")]
    assert float(nats["boot_low"]) < -0.2 < float(nats["boot_high"])
    assert float(nats["t_low"]) < float(nats["boot_low"])  # the bootstrap runs narrow at n = 5
    assert nats["note"] == "t interval with 4 df; bootstrap over 5 seeds"


def test_summarize_marks_rows_that_differ_from_the_paper(sweep):
    summarize.main(["--runs", str(sweep)])
    rows = read_csv_rows(sweep.parent / "summary.csv")
    differs = rows[("kronecker vs bpe", "val loss gap (nats)")]["differs_from_paper"]
    assert differs == "2 seeds < 3; 410K tokens < 2.5B; n_layer 2 < 12; n_embd 64 < 768"
    md = (sweep.parent / "summary.md").read_text()
    assert ("| bpe_untied vs bpe | 1e-3 vs 1e-3 | steps-to-target ratio | 1 | never reached (0 of 1 seeds) |  | [2] |"
            in md)
    assert "| bpe vs bpe_untied | 1e-3 vs 1e-3 | steps-to-target ratio | 1 | n/a (no seed has both arms) |" not in md
    assert "[2] differs from the paper's setting: 1 seed < 3; 410K tokens < 2.5B;" in md


def test_summarize_with_one_seed_shows_std_as_na_and_lists_what_is_missing(tmp_path, capsys):
    write_run(tmp_path / "runs", "kronecker", 0, [10, 4.0, 3.4, 2.8, 2.7], finished=False)
    summarize.main(["--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "report")])
    md = (tmp_path / "report" / "summary.md").read_text()
    assert "| kronecker | 1e-3 | final val loss | 1 | 2.7000 ± n/a |" in md
    assert "- arm bpe: no runs" in md
    assert "- kronecker_s0: unfinished (no summary.json); using its last eval, step 400 of 400" in md
    assert "vs bpe" not in md


# ----------------------------------------------------------------------------- learning rates

# An lr sweep, 2 seeds, final val losses (the last of each curve; seed 0, seed 1):
#   lr      bpe          kronecker
#   3e-4    3.40, 3.50   3.30, 3.40
#   6e-4    3.00, 3.20   3.30, 3.20   <- bpe's best (mean 3.10); kronecker ties with 3e-4 (3.25, 3.35)
#   1.2e-3  3.30, nan    3.00, 3.10   <- kronecker's best (3.05); bpe's diverged seed counts as +inf
LR_SWEEP = {("bpe", 3e-4): (3.4, 3.5), ("bpe", 6e-4): (3.0, 3.2), ("bpe", 1.2e-3): (3.3, math.nan),
            ("kronecker", 3e-4): (3.3, 3.4), ("kronecker", 6e-4): (3.3, 3.2), ("kronecker", 1.2e-3): (3.0, 3.1)}


@pytest.fixture
def lr_sweep(tmp_path):
    for (arm, lr), finals in LR_SWEEP.items():
        for seed, final in enumerate(finals):
            write_run(tmp_path / "runs", arm, seed, [10, 6, 5, 4, final], name=f"{arm}_lr{lr_tag(lr)}_s{seed}",
                      max_lr=lr)
    return tmp_path / "runs"


def test_best_lr_is_the_lowest_mean_final_val_loss_over_seeds(lr_sweep):
    runs = load_runs(lr_sweep)
    assert learning_rates.best_lrs(runs) == {"bpe": 6e-4, "kronecker": 1.2e-3}
    assert learning_rates.shared_lrs(runs) == [3e-4, 6e-4, 1.2e-3]
    assert learning_rates.default_shared_lr(runs, "bpe") == 6e-4  # tuned for the baseline
    assert learning_rates.default_shared_lr(runs, "kronecker") == 1.2e-3
    # kronecker without its 1.2e-3 runs: 3e-4 (mean 3.35) loses to 6e-4 (3.25); made equal, the smaller lr wins
    kronecker = [r for r in runs if r.arm == "kronecker" and r.lr != 1.2e-3]
    assert learning_rates.best_lrs(kronecker) == {"kronecker": 6e-4}
    for run in kronecker:
        run.val_loss[-1] = 3.5
    assert learning_rates.best_lrs(kronecker[::-1]) == {"kronecker": 3e-4}


def test_summarize_lists_every_lr_and_compares_at_the_best_and_at_a_shared_lr(lr_sweep):
    summarize.main(["--runs", str(lr_sweep)])
    with open(lr_sweep.parent / "summary.csv") as f:
        rows = {(r["table"], r["arm"], r["lr"], r["metric"]): r for r in csv.DictReader(f)}
    every = {(arm, lr): r for (table, arm, lr, metric), r in rows.items() if table == "every lr"}
    assert len(every) == 6 and float(every[("bpe", "6e-4")]["mean"]) == pytest.approx(3.1)
    best_marked = [k for k, r in every.items() if r["note"] == "best lr of the arm"]
    assert best_marked == [("bpe", "6e-4"), ("kronecker", "1.2e-3")]
    best = rows[("own best lr", "kronecker vs bpe", "1.2e-3 vs 6e-4", "val loss gap (nats)")]
    assert float(best["mean"]) == pytest.approx(((3.0 - 3.0) + (3.1 - 3.2)) / 2)
    shared = rows[("shared lr 6e-4", "kronecker vs bpe", "6e-4 vs 6e-4", "val loss gap (nats)")]
    assert float(shared["mean"]) == pytest.approx(((3.3 - 3.0) + (3.2 - 3.2)) / 2)
    md = (lr_sweep.parent / "summary.md").read_text()
    assert "## Every learning rate of every arm" in md and "| kronecker | 1.2e-3 | 2 | 3.0500 ± 0.0707 | best |" in md
    assert "## Each arm at its own best learning rate" in md and "bpe 6e-4, kronecker 1.2e-3" in md
    assert "## Every arm at one shared learning rate, 6e-4" in md
    assert "6e-4 is the best lr of bpe among those every arm has" in md
    summarize.main(["--runs", str(lr_sweep), "--shared-lr", "3e-4"])
    assert "## Every arm at one shared learning rate, 3e-4" in (lr_sweep.parent / "summary.md").read_text()


def test_a_shared_lr_that_not_every_arm_has_is_one_line(lr_sweep, capsys):
    code, err = exit_with_error(summarize.main, ["--runs", str(lr_sweep), "--shared-lr", "5e-4"], capsys)
    assert code == 2
    assert "--shared-lr 5e-4: not every arm has runs at it; the lrs every arm has: 3e-4, 6e-4, 1.2e-3" in err


def test_the_one_curve_per_arm_reports_take_each_arm_at_its_best_lr(lr_sweep, capsys):
    steps_to_target.main(["--runs", str(lr_sweep), "--arm", "kronecker"])
    out = capsys.readouterr().out
    assert "arm kronecker: runs at 3 learning rates (3e-4, 6e-4, 1.2e-3); showing its best, 1.2e-3" in out
    assert "arm bpe: runs at 3 learning rates (3e-4, 6e-4, 1.2e-3); showing its best, 6e-4" in out


# ----------------------------------------------------------------------------- unigram, HellaSwag, scale

def test_the_unigram_baseline_is_add_one_smoothed_train_counts_scored_on_the_val_targets(tmp_path):
    """Train tokens 0 0 0 1 1 2 with 4 ids: add-one p = (4, 3, 2, 1) / 10. Val 3 0 1 2 0 ...,
    val_tokens 4 in blocks of 2: the targets are tokens 1-4, i.e. 0 1 2 0."""
    data = tmp_path / "data"
    data.mkdir()
    write_shard(data / "train_000001.bin", np.array([0, 0, 0, 1, 1, 2], dtype=np.uint16))
    write_shard(data / "val_000000.bin", np.array([3, 0, 1, 2, 0, 3, 3], dtype=np.uint16))
    u = unigram.unigram_val_loss(str(data), 4, 2, 4)
    by_hand = -(math.log(0.4) + math.log(0.3) + math.log(0.2) + math.log(0.4)) / 4
    assert u == dict(loss=pytest.approx(by_hand), train_tokens=6, val_targets=4, n_vocab=4,
                     vocab_from="the run's vocab_size")
    write_run(tmp_path / "runs", "bpe", 0, [10, 5, 4, 3.5, 1.0], data_dir=str(data), val_tokens=4, block_size=2,
              vocab_size=4, param_counts={"total": 2048})
    summarize.main(["--runs", str(tmp_path / "runs")])
    rows = read_csv_rows(tmp_path / "summary.csv")
    assert float(rows[("bpe", "final val loss below the unigram (nats)")]["mean"]) == pytest.approx(by_hand - 1.0)
    assert rows[("bpe", "tokens per parameter")]["ours"] == "200.000 (410K tokens / 0.00M params)"  # 400 x 1024 / 2048
    md = (tmp_path / "summary.md").read_text()
    assert f"Unigram baseline (eval/unigram.py): {by_hand:.4f} nats on the 4 val tokens" in md


def test_without_its_data_the_unigram_baseline_is_unknown_and_says_why(sweep):
    summarize.main(["--runs", str(sweep)])
    md = (sweep.parent / "summary.md").read_text()
    assert "Unigram baseline (eval/unigram.py): unknown for runs on None (their config.json lacks data_dir" in md
    rows = read_csv_rows(sweep.parent / "summary.csv")
    assert rows[("bpe", "final val loss below the unigram (nats)")]["ours"] == "n/a"


def test_summarize_lists_hellaswag_accuracy_when_the_runs_logged_it(sweep):
    for seed, acc_norm in ((0, 0.30), (1, 0.32)):
        line = {"step": 400, "tokens": 400 * 1024, "hellaswag_acc_norm": acc_norm, "hellaswag_acc": 0.25,
                "hellaswag_completion_loss": 3.0, "hellaswag_n": 100, "hellaswag_n_cut": 0}
        with open(sweep / f"kronecker_s{seed}" / "log.jsonl", "a") as f:
            f.write(json.dumps(line) + "\n")
    summarize.main(["--runs", str(sweep)])
    rows = read_csv_rows(sweep.parent / "summary.csv")
    assert rows[("kronecker", "HellaSwag acc_norm (final)")]["ours"] == "31.00 % ± 1.41 % (100 examples)"
    assert rows[("kronecker", "HellaSwag acc (final)")]["ours"] == "25.00 % ± 0.00 % (100 examples)"
    assert ("bpe", "HellaSwag acc_norm (final)") not in rows  # bpe logged none
    kronecker = next(r for r in load_runs(sweep) if r.name == "kronecker_s0")
    assert kronecker.final_val_loss == 2.7 and kronecker.final_hellaswag["hellaswag_n"] == 100  # not an eval point


def test_every_paper_number_names_where_it_comes_from():
    ref = paper_reference()
    assert set(ref["sources"]) == {"abstract", "package_readme"}
    for name, entry in {"setting": ref["setting"], **ref["values"]}.items():
        assert entry["source"] in ref["sources"] and entry["note"], name
    # 38.6M -> 3.1M is the authors' package README's, not the abstract's (issue 22)
    assert ref["values"]["input_trainable_params"]["source"] == "package_readme"


def test_summarize_names_runs_whose_settings_changed_on_resume(sweep, tmp_path):
    """Issue 21 item 2: a run continued with --allow_change is a mixed schedule, and says so."""
    change = {"step": 200, "config_change": {"max_lr": [0.0006, 0.0003]}, "next_lr": [5e-4, 2.5e-4]}
    write_run(sweep, "kronecker", 2, [10, 4.1, 3.3, 2.9, 2.8], config_changes=[change],
              extra_lines=[{**change, "tokens": 200 * 1024}])
    summarize.main(["--runs", str(sweep), "--out", str(tmp_path / "report")])
    md = (tmp_path / "report" / "summary.md").read_text()
    assert "changed on resume (a mixed schedule):\n- kronecker_s2: max_lr 0.0006 -> 0.0003 at step 200" in md


# ----------------------------------------------------------------------------- plots

def test_plot_curves_writes_non_empty_pngs(sweep, tmp_path):
    plot_curves.main(["--runs", str(sweep), "--out", str(tmp_path / "plots")])
    for name in ("val_loss.png", "train_loss.png", "gap_to_baseline.png", "norm_drift.png"):
        data = (tmp_path / "plots" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


# ----------------------------------------------------------------------------- no runs

@pytest.mark.parametrize("script", [steps_to_target, norm_drift, summarize, plot_curves])
def test_no_runs_exits_2_with_one_line(script, tmp_path, capsys):
    (tmp_path / "runs").mkdir()
    code, err = exit_with_error(script.main, ["--runs", str(tmp_path / "runs")], capsys)
    assert code == 2
    assert err.count("\n") == 1 and "no runs in" in err


# ----------------------------------------------------------------------------- hand-edited logs, unwritable --out

LOG_SCRIPTS = [steps_to_target, norm_drift, summarize, plot_curves]


@pytest.mark.parametrize("script", LOG_SCRIPTS)
@pytest.mark.parametrize("field, value", [("val_loss", "3.1x"), ("emb_row_norm", [1]), ("train_loss", True)])
def test_a_hand_edited_non_numeric_log_value_is_one_line_naming_file_step_and_field(script, field, value,
                                                                                     tmp_path, capsys):
    folder = write_run(tmp_path / "runs", "bpe", 0, [10, 5, 4, 3.5, 3.0])
    lines = [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]
    line = next(x for x in lines if x["step"] == 200 and field in x)
    line[field] = value
    (folder / "log.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    code, err = exit_with_error(script.main, ["--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "o")]
                                if script in (summarize, plot_curves) else ["--runs", str(tmp_path / "runs")], capsys)
    assert code == 2 and err.count("\n") == 1
    assert f"log.jsonl step 200: {field} is {value!r}, not a number" in err


def test_a_hand_edited_hellaswag_score_is_one_line_too(tmp_path, capsys):
    line = {"step": 400, "tokens": 0, "hellaswag_acc_norm": "30%", "hellaswag_n": 100}
    write_run(tmp_path / "runs", "bpe", 0, [10, 5, 4, 3.5, 3.0], extra_lines=[line])
    code, err = exit_with_error(summarize.main, ["--runs", str(tmp_path / "runs")], capsys)
    assert code == 2 and "log.jsonl step 400: hellaswag_acc_norm is '30%', not a number" in err


def test_a_null_log_value_is_a_non_finite_number_not_an_error(tmp_path, capsys):
    diverged = [{"step": 500, "tokens": 0, "val_loss": None, "emb_row_norm": 1.0, "emb_token_norm": 1.0,
                 "emb_fro_norm": 1.0}]  # train.py writes a NaN loss as null
    write_run(tmp_path / "runs", "bpe", 0, [10, 5, 4, 3.5, 3.0], extra_lines=diverged)
    steps_to_target.main(["--runs", str(tmp_path / "runs")])
    summarize.main(["--runs", str(tmp_path / "runs"), "--out", str(tmp_path)])
    assert "| bpe | 1e-3 | final val loss | 1 | nan ± n/a |" in (tmp_path / "summary.md").read_text()


@pytest.mark.parametrize("script", [summarize, plot_curves])
def test_an_out_that_cannot_be_written_is_one_line(script, sweep, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    code, err = exit_with_error(script.main, ["--runs", str(sweep), "--out", str(blocker / "report")], capsys)
    assert code == 2 and err.count("\n") == 1 and "cannot write" in err and "--out" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_out_is_one_line(sweep, tmp_path, capsys):
    out = tmp_path / "ro"
    out.mkdir(mode=0o500)
    code, err = exit_with_error(summarize.main, ["--runs", str(sweep), "--out", str(out)], capsys)
    assert code == 2 and "cannot write" in err


def test_read_json_is_one_line_for_a_bad_file_and_none_for_a_missing_one_when_allowed(tmp_path):
    assert read_json(tmp_path / "absent.json", missing_ok=True) is None
    (tmp_path / "torn.json").write_text('{"step": ')
    for path in (tmp_path / "absent.json", tmp_path / "torn.json"):
        with pytest.raises(UserError, match=rf"cannot read {path}: .*; rerun what wrote it, or move it away"):
            read_json(path)


def test_the_cpu_mini_report_commands_in_the_docs_are_the_scripts_own():
    """Issue 21 §9: the committed results/cpu_mini/summary.md was made with --baseline flags the
    docs did not show; docs/results.md shows scripts/cpu_mini.sh's report commands verbatim."""
    from conftest import REPO_ROOT
    script = (REPO_ROOT / "scripts" / "cpu_mini.sh").read_text().splitlines()
    shown = {line.strip() for line in (REPO_ROOT / "docs" / "results.md").read_text().splitlines()}
    tables = [line for line in script if line.startswith("python -m eval.") and "--runs" in line]
    assert len(tables) == 4 and "--baseline bpe_untied_scaled" in tables[0]
    for line in tables:  # with the script's default R=results/cpu_mini
        assert line.replace('"$R', "results/cpu_mini").replace('"', "") in shown, line
