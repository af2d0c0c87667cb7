"""Run folders (issue 10 §1): a run's records are never lost or mixed with another attempt's, nor
with another run of the same name (issue 14 §2), nor with an abandoned branch; changes on resume
are allowed by name and recorded; data is identified by content; a full disk is one line (issue 21)."""
import dataclasses
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import atomic
import run_folder
import train
from checkpoint import checkpoint_attempt, load_checkpoint
from conftest import REPO_ROOT, FillingDisk
from data.shards import read_header, write_shard
from errors import Preempted, UserError
from run_folder import (IN_USE_EXIT_CODE, LAUNCH_EXIT_CODE, NOT_RUN_DEFINING, SKIP_EXIT_CODE, RunFolder,
                        cut_torn_tail, lr_tag, lr_tags, run_differences, strict_record)
from test_signals import signal_at_step
from test_train import crash_train_step_at, random_data, read_log, tiny_args  # noqa: F401 (random_data is a fixture)
from train_config import CHANGEABLE, FIELD_DEFAULTS, load_config


def snapshot(folder):
    """{file name: bytes} of a folder (the lock file excluded)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and p.name != ".lock"}


def ckpts(tmp_path, run="run"):
    return sorted(p.name for p in (tmp_path / "out" / run).glob("ckpt_*.pt"))


def test_a_finished_run_without_checkpoints_is_left_byte_identical(tmp_path, random_data, capsys):
    train.main(tiny_args(tmp_path, random_data))
    records = snapshot(tmp_path / "runs" / "run")
    for p in (tmp_path / "out" / "run").glob("ckpt_*.pt"):
        p.unlink()  # a fresh clone: logs in git, checkpoints not
    train.main(tiny_args(tmp_path, random_data))  # the same command: nothing to do
    assert "is already finished at step 6" in capsys.readouterr().out
    with pytest.raises(UserError, match=r"run run is finished \(.*summary.json\) and .* holds no "
                                        r"checkpoint of it to continue from; to train it again use "
                                        r"--resume=never \(the old records are kept, moved aside\)"):
        train.main(tiny_args(tmp_path, random_data, max_steps=9, allow_change="max_steps"))  # more: refused
    assert snapshot(tmp_path / "runs" / "run") == records


def test_an_unfinished_log_without_a_checkpoint_is_refused_not_replaced(tmp_path, random_data, monkeypatch):
    monkeypatch.setattr(train, "train_step", lambda step, *a: (_ for _ in ()).throw(RuntimeError("oom")))
    with pytest.raises(RuntimeError):  # crashed before its first checkpoint
        train.main(tiny_args(tmp_path, random_data))
    monkeypatch.undo()
    records = snapshot(tmp_path / "runs" / "run")
    with pytest.raises(UserError, match="has an unfinished log .* holds no checkpoint of it"):
        train.main(tiny_args(tmp_path, random_data))
    assert snapshot(tmp_path / "runs" / "run") == records


def test_resume_never_moves_old_records_and_checkpoints_aside(tmp_path, random_data, capsys):
    train.main(tiny_args(tmp_path, random_data))
    old_log = (tmp_path / "runs" / "run" / "log.jsonl").read_bytes()
    train.main(tiny_args(tmp_path, random_data, resume="never", max_steps=3))
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if l.startswith("--resume=never: moved"))
    assert "log.jsonl -> log." in line and "summary.json -> summary." in line and "2 checkpoint(s)" in line
    run = tmp_path / "runs" / "run"
    assert [p.read_bytes() for p in run.glob("log.*.jsonl")] == [old_log]
    assert len(list(run.glob("summary.*.json"))) == 1 and len(list(run.glob("config.*.json"))) == 1
    old = next((tmp_path / "out" / "run").glob("old.*"))
    assert sorted(p.name for p in old.iterdir()) == ["ckpt_000003.pt", "ckpt_000006.pt"]
    assert ckpts(tmp_path) == ["ckpt_000003.pt"]


def test_a_new_attempt_never_resumes_keeps_or_scores_another_attempts_checkpoint(tmp_path, random_data):
    """Issue example: A to step 6; B --resume=never to 3; B continued to 6 with keep_checkpoints=1."""
    train.main(tiny_args(tmp_path, random_data, run_name="A"))
    a_final = load_checkpoint(tmp_path / "out" / "A" / "ckpt_000006.pt")
    args = dict(run_name="A", keep_checkpoints=1)
    train.main(tiny_args(tmp_path, random_data, resume="never", max_steps=3, **args))   # B
    b_attempt = json.loads((tmp_path / "runs" / "A" / "config.json").read_text())["attempt"]
    assert b_attempt != a_final["attempt"]
    train.main(tiny_args(tmp_path, random_data, max_steps=6, allow_change="max_steps", **args))  # B continued
    log = (tmp_path / "runs" / "A" / "log.jsonl").read_text().splitlines()
    assert [json.loads(l)["step"] for l in log if "train_loss" in l] == [1, 2, 3, 4, 5, 6]
    assert ckpts(tmp_path, "A") == ["ckpt_000006.pt"]  # pruning kept B's newest, not A's
    b_final = tmp_path / "out" / "A" / "ckpt_000006.pt"
    assert checkpoint_attempt(b_final) == b_attempt
    folder = RunFolder(tmp_path / "runs", tmp_path / "out", "A")
    assert folder.latest_checkpoint() == b_final and folder.finished()
    assert sorted(p.name for p in next((tmp_path / "out" / "A").glob("old.*")).iterdir()) == \
        ["ckpt_000003.pt", "ckpt_000006.pt"]  # A's, kept aside


def test_another_attempts_checkpoints_found_at_a_new_start_are_moved_aside(tmp_path, random_data, capsys):
    train.main(tiny_args(tmp_path, random_data))
    train.main(tiny_args(tmp_path, random_data, log_dir=tmp_path / "other_runs"))  # same out_dir
    assert "a new attempt: moved run run's earlier records aside" in capsys.readouterr().out
    assert len(list((tmp_path / "out" / "run").glob("old.*/ckpt_*.pt"))) == 2


def test_extending_a_finished_run_retires_its_summary_at_start(tmp_path, random_data, monkeypatch):
    train.main(tiny_args(tmp_path, random_data))
    monkeypatch.setattr(train, "train_step", lambda step, *a: (_ for _ in ()).throw(RuntimeError("crash")))
    with pytest.raises(RuntimeError):
        train.main(tiny_args(tmp_path, random_data, max_steps=9, allow_change="max_steps"))
    run = tmp_path / "runs" / "run"
    assert not (run / "summary.json").exists() and len(list(run.glob("summary.*.json"))) == 1
    assert not RunFolder(tmp_path / "runs", tmp_path / "out", "run").finished()


def test_a_second_process_on_the_same_run_is_refused_and_a_killed_one_leaves_no_lock(tmp_path, random_data):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from run_folder import RunFolder; "
                               f"RunFolder({str(tmp_path / 'runs')!r}, {str(tmp_path / 'out')!r}, 'run').lock(); "
                               "print('locked', flush=True); time.sleep(60)"],
                              cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "locked\n"
    with pytest.raises(UserError, match=rf"run run is in use by another process \(pid {holder.pid}, lock "):
        train.main(tiny_args(tmp_path, random_data))
    holder.kill()  # kill -9: the kernel drops the lock
    holder.wait()
    train.main(tiny_args(tmp_path, random_data, max_steps=2))


def test_a_torn_last_line_is_cut_before_the_next_append(tmp_path, random_data, capsys):
    train.main(tiny_args(tmp_path, random_data, max_steps=3))
    log = tmp_path / "runs" / "run" / "log.jsonl"
    complete = log.read_text()
    torn = '{"step": 4, "train_lo'  # disk full mid-write
    log.write_text(complete + torn)
    train.main(tiny_args(tmp_path, random_data, max_steps=6, allow_change="max_steps"))
    assert f"ended in a partial line ({len(torn)} bytes, from a crash); cut it" in capsys.readouterr().out
    text = log.read_text()
    assert text.startswith(complete) and all(json.loads(l) for l in text.splitlines())
    assert read_log(tmp_path)[(6, "eval")]


def test_cut_torn_tail_keeps_complete_lines_across_chunks(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"step": 1}\n' + "x" * 100)
    cut_torn_tail(path, chunk=7)
    assert path.read_text() == '{"step": 1}\n'
    path.write_text("no newline at all")
    cut_torn_tail(path, chunk=4)
    assert path.read_text() == ""


def test_non_finite_values_are_logged_as_null_and_listed():
    rec = strict_record({"step": 1, "train_loss": math.nan, "grad_norm": math.inf, "lr": 0.1})
    assert rec == {"step": 1, "train_loss": None, "grad_norm": None, "lr": 0.1,
                   "nonfinite": ["train_loss", "grad_norm"]}
    json.dumps(rec, allow_nan=False)


def test_non_finite_weights_are_never_checkpointed(tmp_path, random_data, monkeypatch):
    """Finite loss, non-finite weights (float32 cannot overflow in one AdamW step once max_lr <= 1,
    so the weight is poisoned by hand): the step-3 checkpoint is refused and none is called good."""
    real_step = train.train_step

    def step_then_overflow(step, model, raw_model, *args):
        result = real_step(step, model, raw_model, *args)
        if step == 2:
            next(raw_model.parameters()).data[0] = math.inf
        return result

    monkeypatch.setattr(train, "train_step", step_then_overflow)
    with pytest.raises(UserError, match=r"the weights became non-finite by step 3 .* not checkpointing "
                                        r"them; the last checkpoint \(finite weights\) is none"):
        train.main(tiny_args(tmp_path, random_data))
    assert ckpts(tmp_path) == []
    last = json.loads((tmp_path / "runs" / "run" / "log.jsonl").read_text().splitlines()[-1])
    assert last["step"] == 3 and last["val_loss"] is None and "val_loss" in last["nonfinite"]
    json.dumps(last, allow_nan=False)


def test_resuming_with_another_val_tokens_is_refused(tmp_path, random_data):
    train.main(tiny_args(tmp_path, random_data, max_steps=3))
    with pytest.raises(UserError, match=r"holds a different run \(recorded != now: val_tokens 256 != 512\)"):
        train.main(tiny_args(tmp_path, random_data, max_steps=6, allow_change="max_steps",
                             val_tokens=512))  # one log, two val sets: not a change one may allow
    assert RunFolder(tmp_path / "runs", tmp_path / "out", "run").finished()  # a refusal changes nothing


# ----------------------------------------------------------------------------- another run, same name

def sweep_config(tmp_path, config, *extra, arm="bpe", seed=1337):
    """The TrainConfig scripts/sweep.sh would launch for arm and seed (its argv, in its order)."""
    return load_config([config, f"--arm={arm}", f"--seed={seed}", f"--run_name={arm}_s{seed}",
                        f"--log_dir={tmp_path / 'runs'}", f"--out_dir={tmp_path / 'out'}", "--resume=auto",
                        *extra])


def record(cfg, finished=True):
    """A run's records as train.py leaves them: config.json (the config and an attempt), summary.json."""
    folder = RunFolder(cfg.log_dir, cfg.out_dir, cfg.run_name)
    folder.log_dir.mkdir(parents=True, exist_ok=True)
    (folder.log_dir / "config.json").write_text(json.dumps(dict(dataclasses.asdict(cfg), attempt="a")))
    (folder.log_dir / "summary.json").write_text(json.dumps(dict(final_step=cfg.max_steps, finished=finished)))
    return folder


def test_a_toy_run_under_a_paper_runs_name_is_never_skipped_as_the_paper_run(tmp_path):
    """Issue 14 example: the README's CPU sweep left a 4-layer bpe_s1337; the paper sweep names it."""
    toy = sweep_config(tmp_path, "config/cpu_tiny.py", "--n_layer=4", "--max_steps=150")
    folder = record(toy)
    records = snapshot(folder.log_dir)
    paper = sweep_config(tmp_path, "config/bpe_124m.py")
    with pytest.raises(UserError) as refusal:
        folder.skip(paper)
    assert str(refusal.value).startswith(f"bpe_s1337: {folder.log_dir} holds a different run (recorded != now: ")
    for difference in ("data_dir 'data/fineweb_edu_sample' != 'data/fineweb_edu'", "n_layer 4 != 12",
                       "n_embd 64 != 768", "max_steps 150 != 4768", "max_lr 0.003 != 0.0006"):
        assert difference in str(refusal.value)
    assert str(refusal.value).endswith(f"give this sweep its own LOG_DIR and OUT_DIR to keep both, or move "
                                       f"{folder.log_dir} and {folder.ckpt_dir} aside")
    assert "\n" not in str(refusal.value) and snapshot(folder.log_dir) == records


def test_the_sweep_skips_only_its_own_run_finished(tmp_path):
    cfg = sweep_config(tmp_path, "config/cpu_tiny.py", "--max_steps=50")
    folder = RunFolder(cfg.log_dir, cfg.out_dir, cfg.run_name)
    assert not folder.skip(cfg)                   # nothing recorded: launch
    record(cfg, finished=False)
    assert not folder.skip(cfg)                   # interrupted: launch, train.py resumes it
    (folder.log_dir / "summary.json").write_text(json.dumps(dict(final_step=50, finished=True)))
    assert folder.skip(cfg)
    # where it runs, how it starts and what it keeps on disk do not make another run
    assert folder.skip(sweep_config(tmp_path, "config/cpu_tiny.py", "--max_steps=50", "--compile=true",
                                    "--micro_batch_size=4", "--keep_checkpoints=5", "--device=auto"))
    with pytest.raises(UserError, match=r"\(recorded != now: max_steps 50 != 60\); .* or continue it with "
                                        r"the change recorded: --allow_change=max_steps$"):  # as train.py
        folder.skip(sweep_config(tmp_path, "config/cpu_tiny.py", "--max_steps=60"))
    # allowed, as train.py allows it: a run to extend, so launch it
    assert not folder.skip(sweep_config(tmp_path, "config/cpu_tiny.py", "--max_steps=60", "--allow_change=max_steps"))
    assert not folder.skip(sweep_config(tmp_path, "config/cpu_tiny.py", "--max_steps=60", "--resume=never"))


def test_ladder_sizes_of_one_run_name_are_different_runs(tmp_path):
    """Run names are <arm>_s<seed> at every size: a 350M sweep into 124M's folders is refused."""
    folder = record(sweep_config(tmp_path, "config/bpe_124m.py"))
    with pytest.raises(UserError, match=r"bpe_s1337: .* holds a different run \(recorded != now: n_layer 12 != 24, "
                                        r"n_head 12 != 16, n_embd 768 != 1024, max_steps 4768 != 13537, max_lr .*, data_dir "):
        folder.skip(sweep_config(tmp_path, "config/bpe_350m.py"))


def test_every_excluded_key_is_a_config_key_and_records_older_than_a_key_take_its_default():
    assert set(NOT_RUN_DEFINING) | set(CHANGEABLE) <= set(FIELD_DEFAULTS)
    assert not set(NOT_RUN_DEFINING) & set(CHANGEABLE)  # a change one may allow is a change of the run
    cfg = load_config(["--vocab_size=256"])
    old = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("arm", "wte_scale")}
    assert run_differences(old, cfg) == []
    assert run_differences(old, dataclasses.replace(cfg, wte_scale=50.0)) == ["wte_scale 1.0 != 50.0"]
    assert run_differences(dict(old, save_steps=[3]), dataclasses.replace(cfg, save_steps=(3,))) == []


def test_train_py_names_a_different_run_in_its_folder_or_checkpoint_and_how_to_keep_both(tmp_path, random_data):
    train.main(tiny_args(tmp_path, random_data, run_name="A", max_steps=3))
    records = snapshot(tmp_path / "runs" / "A")
    # a bigger model under the same name
    with pytest.raises(UserError, match=r"^run A: \S+/runs/A holds a different run \(recorded != now: n_layer 1 "
                                        r"!= 2\); to keep both, name this one \(--run_name=NAME, or --log_dir "
                                        r"and --out_dir\), or start over with --resume=never \(the old records "
                                        r"and checkpoints are moved aside, not deleted\)$"):
        train.main(tiny_args(tmp_path, random_data, run_name="A", max_steps=3, n_layer=2))
    assert snapshot(tmp_path / "runs" / "A") == records
    ckpt = tmp_path / "out" / "A" / "ckpt_000003.pt"
    with pytest.raises(UserError, match=rf"^checkpoint {ckpt} holds a different run \(recorded != now: n_layer "
                                        r"1 != 2\)"):
        train.main(tiny_args(tmp_path, random_data, run_name="B", max_steps=3, n_layer=2, resume=ckpt))


def test_a_resume_path_of_another_attempt_is_refused(tmp_path, random_data):
    train.main(tiny_args(tmp_path, random_data, run_name="A", max_steps=3))
    train.main(tiny_args(tmp_path, random_data, run_name="B", max_steps=3))
    with pytest.raises(UserError, match="belongs to attempt .* holds the records of attempt"):
        train.main(tiny_args(tmp_path, random_data, run_name="B", max_steps=3,
                             resume=tmp_path / "out" / "A" / "ckpt_000003.pt"))


def test_the_sweeps_question_is_answered_skip_launch_or_in_use_by_exit_code(tmp_path):
    """Issue 21 §6: "launch" is its own exit code (10), never 1 (an uncaught exception's) nor 2 (a
    UserError's), so a check that crashes cannot launch over a finished run; a run another process
    trains is "in use" (11), without touching its lock."""
    argv = ["skip", "--", "config/cpu_tiny.py", "--arm=bpe", "--seed=1337", "--run_name=bpe_s1337",
            f"--log_dir={tmp_path / 'runs'}", f"--out_dir={tmp_path / 'out'}", "--resume=auto"]
    assert run_folder.main(argv) == LAUNCH_EXIT_CODE == 10  # nothing recorded
    folder = record(sweep_config(tmp_path, "config/cpu_tiny.py"))
    assert run_folder.main(argv) == SKIP_EXIT_CODE == 0
    trainer = RunFolder(folder.log_dir.parent, folder.ckpt_dir.parent, folder.name)
    trainer.lock()  # as train.py holds it (another open file: flock tells them apart)
    try:
        assert run_folder.main(argv) == IN_USE_EXIT_CODE == 11 and folder.in_use()
    finally:
        trainer.unlock()
    assert not folder.in_use() and run_folder.main(["wait", *argv[1:]]) == 0


def test_the_command_line_answers_checkpoint_and_finished(tmp_path, random_data):
    train.main(tiny_args(tmp_path, random_data, max_steps=3))
    cmd = [sys.executable, "run_folder.py", "--log_dir", str(tmp_path / "runs"), "--out_dir",
           str(tmp_path / "out"), "--run_name", "run"]
    found = subprocess.run(cmd[:2] + ["checkpoint"] + cmd[2:], cwd=REPO_ROOT, capture_output=True, text=True)
    assert found.stdout.strip() == str(tmp_path / "out" / "run" / "ckpt_000003.pt")
    assert subprocess.run(cmd[:2] + ["finished"] + cmd[2:], cwd=REPO_ROOT).returncode == 0


def test_an_unwritable_or_full_folder_is_found_before_the_data(tmp_path, monkeypatch):
    monkeypatch.setattr(train, "TrainBatches", lambda *a, **k: pytest.fail("data read first"))
    (tmp_path / "a_file").write_text("")
    with pytest.raises(UserError, match=r"cannot write to .*a_file/run \(Not a directory\); choose a "
                                        r"writable --out_dir / --log_dir"):
        train.main(tiny_args(tmp_path, tmp_path / "data", out_dir=tmp_path / "a_file"))
    with pytest.raises(UserError, match="cannot write to /proc/"):
        train.main(tiny_args(tmp_path, tmp_path / "data", log_dir="/proc/kronecker_runs"))
    (tmp_path / "runs" / "run" / ".lock").unlink()  # left by the first case (it locks log_dir first)
    (tmp_path / "runs" / "run" / ".lock").symlink_to("/dev/full")  # every write: ENOSPC
    with pytest.raises(UserError, match=r"^disk full while writing .*\.lock; free space"):
        train.main(tiny_args(tmp_path, tmp_path / "data"))


def test_no_room_for_a_checkpoint_is_found_before_training(tmp_path, random_data, monkeypatch):
    monkeypatch.setattr("shutil.disk_usage", lambda path: type("U", (), {"free": 1000})())
    with pytest.raises(UserError, match=r"has 1 KB free, but 3 more checkpoints of about \S+ KB must fit "
                                        r"\(keep_checkpoints=2 and the one being written\); free space, lower "
                                        r"keep_checkpoints, or choose another --out_dir"):
        train.main(tiny_args(tmp_path, random_data))
    assert not (tmp_path / "runs" / "run" / "log.jsonl").exists()


def test_a_full_disk_during_a_checkpoint_says_so_and_leaves_no_temp_file(tmp_path, random_data):
    (tmp_path / "out" / "run").mkdir(parents=True)
    (tmp_path / "out" / "run" / "ckpt_000003.pt.tmp").symlink_to("/dev/full")
    with pytest.raises(UserError, match=r"^disk full while writing \S+ckpt_000003.pt; free space"):
        train.main(tiny_args(tmp_path, random_data))
    assert sorted(p.name for p in (tmp_path / "out" / "run").iterdir()) == [".lock"]


def test_lr_tag_spells_each_learning_rate_one_way():
    assert [lr_tag(lr) for lr in (6e-4, 0.0006, 0.0012, 3e-3, 1.0, 1.25e-5)] == [
        "6e-4", "6e-4", "1.2e-3", "3e-3", "1e0", "1.25e-5"]
    assert lr_tags(["3e-4", "0.0006", "1.2e-3"]) == ["3e-4", "6e-4", "1.2e-3"]
    for bad in (["0"], ["-1e-3"], ["2"], ["nan"], ["lr"], ["6e-4", "0.0006"]):
        with pytest.raises(UserError):
            lr_tags(bad)


# ----------------------------------------------------------------------------- rewinds (issue 21 item 1)

def log_steps(tmp_path, kind, run="run"):
    """The steps of log.jsonl's train or eval lines, in file order."""
    field = "train_loss" if kind == "train" else "val_loss"
    return [json.loads(l)["step"] for l in (tmp_path / "runs" / run / "log.jsonl").read_text().splitlines()
            if f'"{field}"' in l]


def test_a_rewind_starts_a_branch_and_moves_the_abandoned_future_aside(tmp_path, random_data, monkeypatch,
                                                                       capsys):
    """Issue example: to step 6 with save_steps=2 (checkpoints 2, 3, 6), then --resume=<ckpt 2> and
    SIGTERM at step 4, then a plain rerun."""
    train.main(tiny_args(tmp_path, random_data, save_steps=2))
    first_log = (tmp_path / "runs" / "run" / "log.jsonl").read_text()
    ckpt_2 = tmp_path / "out" / "run" / "ckpt_000002.pt"
    real_step = signal_at_step(monkeypatch, signal.SIGTERM, at_step=3)  # stops after step 4
    with pytest.raises(Preempted, match=r"stopped by SIGTERM at step 4; checkpoint (\S+); rerun with "
                                        r"--resume=auto to resume") as stopped:
        train.main(tiny_args(tmp_path, random_data, save_steps=2, resume=ckpt_2))
    named = Path(str(stopped.value).split("checkpoint ")[1].split(";")[0])
    assert named.name == "ckpt_000004.pt" and load_checkpoint(named)["step"] == 4  # it exists
    moved = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("resuming at step 2: moved"))
    assert "2 checkpoint(s) past step 2 -> " in moved and "log line(s) past step 2" in moved
    assert ckpts(tmp_path) == ["ckpt_000002.pt", "ckpt_000003.pt", "ckpt_000004.pt"]  # the branch's, kept
    old = next((tmp_path / "out" / "run").glob("old.*"))
    assert sorted(p.name for p in old.iterdir()) == ["ckpt_000003.pt", "ckpt_000006.pt"]  # the abandoned future
    assert [p.read_text() for p in (tmp_path / "runs" / "run").glob("log.*.jsonl")] == [first_log]
    with pytest.raises(UserError, match=r"was moved aside from run run .* never resumed into it; to continue "
                                        r"from it, give it a run of its own: --resume=\S+ --run_name=NEW_NAME"):
        train.main(tiny_args(tmp_path, random_data, resume=old / "ckpt_000006.pt"))
    monkeypatch.setattr(train, "train_step", real_step)
    train.main(tiny_args(tmp_path, random_data, save_steps=2))  # plain rerun: the branch, not step 6
    assert "resuming from " + str(named) in capsys.readouterr().out
    assert log_steps(tmp_path, "train") == [1, 2, 3, 4, 5, 6] and log_steps(tmp_path, "eval") == [0, 3, 6]
    summary = json.loads((tmp_path / "runs" / "run" / "summary.json").read_text())
    assert summary["final_step"] == 6 == log_steps(tmp_path, "train")[-1]
    # the same settings from the same checkpoint: the branch retraces the abandoned future exactly
    abandoned = {(json.loads(l)["step"], "val_loss" in l): l for l in first_log.splitlines()}
    for line in (tmp_path / "runs" / "run" / "log.jsonl").read_text().splitlines():
        rec = json.loads(line)
        key = "val_loss" if "val_loss" in rec else "train_loss"
        assert rec[key] == json.loads(abandoned[(rec["step"], key == "val_loss")])[key]


def test_a_truncated_newest_checkpoint_is_named_as_such_and_moved_aside(tmp_path, random_data, monkeypatch,
                                                                        capsys):
    """Issue 21 item 7: not "another attempt's"; the run resumes from the one before."""
    crash_train_step_at(7, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        train.main(tiny_args(tmp_path, random_data, max_steps=9))
    monkeypatch.undo()
    newest = tmp_path / "out" / "run" / "ckpt_000006.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # a copy cut short
    train.main(tiny_args(tmp_path, random_data, max_steps=9))
    out = capsys.readouterr().out
    assert f"note: checkpoint {newest} cannot be read (truncated, or not a train.py checkpoint); skipped" in out
    assert "another attempt" not in out and "resuming from " + str(newest.with_name("ckpt_000003.pt")) in out
    assert len(list((tmp_path / "out" / "run").glob("old.*/ckpt_000006.pt"))) == 1  # kept, aside
    assert log_steps(tmp_path, "train") == list(range(1, 10))


# ----------------------------------------------------------------------------- changes (issue 21 item 2)

def test_a_changed_max_steps_is_refused_by_train_and_sweep_alike_unless_allowed_then_recorded(
        tmp_path, random_data, capsys):
    """Issue example: raising max_steps made the cosine jump without a word in train.py while the
    sweep refused it; now both refuse, and --allow_change=max_steps continues with the change recorded."""
    train.main(tiny_args(tmp_path, random_data))
    records = snapshot(tmp_path / "runs" / "run")
    folder = RunFolder(tmp_path / "runs", tmp_path / "out", "run")
    longer = tiny_args(tmp_path, random_data, max_steps=12)
    advice = r"\(recorded != now: max_steps 6 != 12\); .*--allow_change=max_steps"
    with pytest.raises(UserError, match=advice):
        train.main(longer)
    with pytest.raises(UserError, match=advice):
        folder.skip(load_config(longer))
    assert snapshot(tmp_path / "runs" / "run") == records
    allowed = longer + ["--allow_change=max_steps"]
    assert not folder.skip(load_config(allowed))  # the sweep would launch it: work to do
    train.main(allowed)
    assert "changed from step 6 on (recorded in log.jsonl and config.json): max_steps 6 -> 12" in capsys.readouterr().out
    log = read_log(tmp_path)
    six, twelve = load_config(tiny_args(tmp_path, random_data)), load_config(allowed)
    assert log[(6, "train")]["lr"] == pytest.approx(train.get_lr(5, six))
    assert log[(7, "train")]["lr"] == pytest.approx(train.get_lr(6, twelve))  # the new cosine, recorded:
    change = json.loads((tmp_path / "runs" / "run" / "config.json").read_text())["config_changes"]
    assert [(c["step"], c["config_change"]) for c in change] == [(6, {"max_steps": [6, 12]})]
    assert change[0]["next_lr"] == [pytest.approx(train.get_lr(6, six)), pytest.approx(train.get_lr(6, twelve))]
    assert folder.skip(load_config(allowed)) and folder.skip(load_config(longer))  # finished at 12
    with pytest.raises(UserError, match=r"'allow_change' names n_layer, which a resumed run may not change"):
        load_config(allowed[:-1] + ["--allow_change=max_lr,n_layer"])


# ----------------------------------------------------------------------------- data identity (item 3)

def test_data_is_the_same_run_moved_or_linked_and_another_run_when_its_content_differs(tmp_path, random_data):
    train.main(tiny_args(tmp_path, random_data, max_steps=3))
    moved = random_data.rename(tmp_path / "moved")
    (tmp_path / "link").symlink_to(moved)
    folder = RunFolder(tmp_path / "runs", tmp_path / "out", "run")
    for spelling in (moved, f"{tmp_path / 'link'}/"):  # moved; through a symlink with a trailing slash
        assert folder.skip(load_config(tiny_args(tmp_path, spelling, max_steps=3)))
    train.main(tiny_args(tmp_path, f"{tmp_path / 'link'}/", max_steps=6, allow_change="max_steps"))
    assert folder.finished() and read_log(tmp_path)[(6, "eval")]
    other = tmp_path / "other"  # the same shard sizes, other tokens (FineWeb for FineWeb-Edu)
    other.mkdir()
    rng = np.random.default_rng(1)
    for path in moved.iterdir():
        write_shard(other / path.name, rng.integers(0, 256, read_header(path)).astype(np.uint16))
    refusal = r"holds a different run \(recorded != now: data: content \(same shard sizes, other tokens: sample sha256 differ\)\)"
    with pytest.raises(UserError, match=refusal):
        train.main(tiny_args(tmp_path, other, max_steps=9, allow_change="max_steps"))
    with pytest.raises(UserError, match=refusal):
        folder.skip(load_config(tiny_args(tmp_path, other, max_steps=6)))
    with pytest.raises(UserError, match=r"^checkpoint \S+ckpt_000006.pt holds a different run \(recorded != now: data: "):
        train.main(tiny_args(tmp_path, other, run_name="fresh", max_steps=9, allow_change="max_steps",
                             resume=tmp_path / "out" / "run" / "ckpt_000006.pt"))


# ----------------------------------------------------------------------------- disks (item 4)

def check_records_intact_after_disk_full(tmp_path, random_data):
    """After a step-6 save that failed mid-write: no temp file, ckpt 3 good, the log holds every step
    (no summary: unfinished), and the rerun finishes from ckpt 3."""
    assert ckpts(tmp_path) == ["ckpt_000003.pt"] and load_checkpoint(tmp_path / "out" / "run" / "ckpt_000003.pt")
    assert not list((tmp_path / "out" / "run").glob("*.tmp"))
    assert log_steps(tmp_path, "train") == [1, 2, 3, 4, 5, 6] and log_steps(tmp_path, "eval") == [0, 3, 6]
    assert not (tmp_path / "runs" / "run" / "summary.json").exists()


def test_a_disk_that_fills_during_a_background_checkpoint_write_is_one_line(tmp_path, random_data, monkeypatch):
    monkeypatch.setattr(atomic, "open", FillingDisk(room=50_000, name_part="ckpt_000006"), raising=False)
    with pytest.raises(UserError, match=r"^disk full while writing \S+ckpt_000006.pt; free space"):
        train.main(tiny_args(tmp_path, random_data))
    monkeypatch.undo()
    check_records_intact_after_disk_full(tmp_path, random_data)
    train.main(tiny_args(tmp_path, random_data))
    assert RunFolder(tmp_path / "runs", tmp_path / "out", "run").finished()


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 2 MB tmpfs (root only; skipped elsewhere): a real disk that fills."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root (test_a_disk_that_fills_during_... simulates it)")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_real_disk_that_fills_mid_checkpoint_is_one_line_with_the_records_intact(tmp_path, random_data,
                                                                                   small_tmpfs, monkeypatch):
    real_step = train.train_step

    def fill_the_disk_after_checkpoint_3(step, *args):
        if step == 4:  # ckpt 3 is written (in the background): fill the tmpfs but 20 KB
            deadline = time.time() + 60
            while not (small_tmpfs / "run" / "ckpt_000003.pt").exists() and time.time() < deadline:
                time.sleep(0.01)
            with open(small_tmpfs / "filler", "wb") as f:
                f.write(b"\0" * (shutil.disk_usage(small_tmpfs).free - 20_000))
        return real_step(step, *args)

    monkeypatch.setattr(train, "train_step", fill_the_disk_after_checkpoint_3)
    with pytest.raises(UserError, match=r"^disk full while writing \S+ckpt_000006.pt; free space"):
        train.main(tiny_args(tmp_path, random_data, out_dir=small_tmpfs))
    (small_tmpfs / "filler").unlink()
    shutil.copytree(small_tmpfs, tmp_path / "out")
    check_records_intact_after_disk_full(tmp_path, random_data)


KILLED_MID_WRITE = """
import os, signal, sys
import checkpoint, train
from errors import run_main
real_save = checkpoint.save_checkpoint
def save_then_die(state, ckpt_dir):
    if state["step"] == 6:  # half a file written, then the process is killed (kill -9)
        with open(checkpoint.checkpoint_path(ckpt_dir, 6).with_suffix(".pt.tmp"), "wb") as f:
            f.write(b"half a checkpoint")
        os.kill(os.getpid(), signal.SIGKILL)
    return real_save(state, ckpt_dir)
checkpoint.save_checkpoint = save_then_die
run_main(lambda: train.main(sys.argv[1:]))
"""


def test_kill_9_during_a_background_write_leaves_the_last_good_checkpoint(tmp_path, random_data):
    killed = subprocess.run([sys.executable, "-c", KILLED_MID_WRITE, *tiny_args(tmp_path, random_data)],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert ckpts(tmp_path) == ["ckpt_000003.pt"] and load_checkpoint(tmp_path / "out" / "run" / "ckpt_000003.pt")
    train.main(tiny_args(tmp_path, random_data))  # resumes from ckpt 3 and finishes
    assert log_steps(tmp_path, "train") == [1, 2, 3, 4, 5, 6]
