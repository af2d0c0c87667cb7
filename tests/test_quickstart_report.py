"""The quickstart's closing message is computed from its runs: tokens, steps, seeds, model size and
the paper's setting, and each final loss next to the committed reference only when the settings match."""
import dataclasses
import json

import pytest
from conftest import REPO_ROOT
from test_eval import write_run

from eval import quickstart_report
from eval.log_values import load_numeric_runs
from run_folder import config_differences
from train_config import load_config

PAPER = {"params": "124M", "tokens": 2.5e9, "seeds": 3}


def quickstart_runs(folder, **config):
    """bpe and kronecker at seed 1337, final val loss 3.0 and 2.7 at step 400 (unless config says otherwise)."""
    write_run(folder, "bpe", 1337, [10.8, 5, 4, 3.5, 3.0], **config)
    write_run(folder, "kronecker", 1337, [10.8, 4.0, 3.4, 2.8, 2.7], **config)
    return load_numeric_runs(folder)


def test_the_token_count_model_and_seeds_come_from_the_runs(tmp_path):
    runs = quickstart_runs(tmp_path / "runs", max_steps=10, total_batch_tokens=2048, n_layer=3, n_embd=96)
    text = quickstart_report.closing_message(runs, "out/quickstart", paper_setting=PAPER)
    flat = " ".join(text.split())
    assert "A 3-layer, 96-wide model trained on 20.5K tokens per arm with 1 seed cannot tell" in flat
    assert "about 124M models on 2.5B tokens over 3 seeds" in flat
    assert "Results in out/quickstart/:" in text and "runs/<arm>_s1337/log.jsonl" in text
    assert "100K" not in text and "reference" not in text


def test_the_paper_setting_is_read_not_typed_in(tmp_path):
    text = quickstart_report.closing_message(quickstart_runs(tmp_path / "runs"), "out",
                                             paper_setting={"params": "1B", "tokens": 4e10, "seeds": 5})
    assert "about 1B models on 40B tokens over 5 seeds" in " ".join(text.split())


def test_final_losses_sit_next_to_the_reference_at_the_same_settings(tmp_path):
    runs = quickstart_runs(tmp_path / "runs", data_dir="data/quickstart", log_dir="out/quickstart/runs",
                           attempt="20261130T1200Z-ab12", git_commit="f00", hostname="laptop")
    reference = quickstart_runs(tmp_path / "reference", data_dir="elsewhere", log_dir="results/quickstart/runs",
                                attempt="20261101T0900Z-cd34", git_commit="ba7", hostname="ci")
    text = quickstart_report.closing_message(runs, "out", reference, paper_setting=PAPER)
    assert "Final validation loss (nats/token) at step 400:" in text
    assert "  bpe          seed 1337  3.0000   reference: 3.0000" in text
    assert "  kronecker    seed 1337  2.7000   reference: 2.7000" in text


def test_other_settings_are_named_instead_of_a_misleading_reference(tmp_path):
    runs = quickstart_runs(tmp_path / "runs", max_steps=10)
    reference = quickstart_runs(tmp_path / "reference")
    text = quickstart_report.closing_message(runs, "out", reference, paper_setting=PAPER)
    assert "2.7000   reference: other settings (max_steps)" in text
    assert "reference: 2.7" not in text


def test_the_reference_runs_themselves_are_not_compared_with_themselves(tmp_path, capsys):
    runs_dir = tmp_path / "results" / "runs"
    quickstart_runs(runs_dir)
    assert quickstart_report.load_reference(runs_dir, runs_dir) is None
    assert quickstart_report.load_reference(runs_dir, tmp_path / "no_reference") is None
    quickstart_report.main(["--runs", str(runs_dir), "--out", str(tmp_path), "--reference", str(runs_dir)])
    assert "reference:" not in capsys.readouterr().out


def test_a_reference_made_before_a_knob_existed_matches_a_run_at_the_knobs_default(tmp_path):
    """Keys added to TrainConfig after the reference was made count as their defaults; paths,
    provenance and speed settings (kronecker_mode, dist_timeout, peak_flops) never count."""
    runs = quickstart_runs(tmp_path / "runs", wte_scale=1.0, projection="linear", kronecker_mode="vocab",
                           dist_timeout=1800, peak_flops=989e12)
    reference = quickstart_runs(tmp_path / "reference", kronecker_mode="sparse")  # older: no such keys
    text = quickstart_report.closing_message(runs, "out", reference, paper_setting=PAPER)
    assert "  bpe          seed 1337  3.0000   reference: 3.0000" in text
    changed = quickstart_runs(tmp_path / "changed", wte_scale=2.0)
    text = quickstart_report.closing_message(changed, "out", reference, paper_setting=PAPER)
    assert "reference: other settings (wte_scale)" in text


@pytest.mark.parametrize("arm", ["bpe", "kronecker"])
def test_the_default_quickstart_matches_its_committed_reference(arm):
    """What scripts/quickstart.sh trains by default is the run results/quickstart/ holds, so its
    closing message prints the reference's loss, not "other settings"."""
    cfg = load_config(["config/quickstart.py", f"--embedding={arm}", "--seed=1337", "--data_dir=data/quickstart"])
    recorded = json.loads((REPO_ROOT / "results" / "quickstart" / "runs" / f"{arm}_s1337" / "config.json").read_text())
    assert config_differences(recorded, dataclasses.asdict(cfg)) == []  # config.json is asdict(cfg)
