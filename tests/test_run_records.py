"""Readers of train.py's records (eval/runs.py): torn last lines, nulls for non-finite values."""
import json
import math

from eval.runs import load_runs, read_log
from run_folder import strict_record


def test_nulls_written_for_non_finite_values_read_back_as_nan(tmp_path):
    path = tmp_path / "log.jsonl"
    lines = [{"step": 0, "val_loss": 5.0}, {"step": 1, "train_loss": math.inf, "lr": 0.1},
             {"step": 1, "val_loss": math.nan, "emb_fro_norm": 2.0}]
    path.write_text("".join(json.dumps(strict_record(r), allow_nan=False) + "\n" for r in lines))
    train, evals, _ = read_log(path)
    assert math.isinf(train[1]["train_loss"]) is False and math.isnan(train[1]["train_loss"])
    assert math.isnan(evals[1]["val_loss"]) and evals[1]["nonfinite"] == ["val_loss"]


def test_a_torn_last_line_is_skipped_and_a_summary_must_say_finished(tmp_path):
    run = tmp_path / "bpe_s1"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"embedding": "bpe", "seed": 1}))
    (run / "log.jsonl").write_text('{"step": 0, "val_loss": 5.0}\n{"step": 1, "train_l')
    (run / "summary.json").write_text(json.dumps({"finished": False}))
    (loaded,) = load_runs(tmp_path)
    assert loaded.eval_steps == [0] and not loaded.finished
