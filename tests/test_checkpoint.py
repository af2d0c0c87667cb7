"""checkpoint.py: atomic save, finding the latest, pruning, resume resolution."""
import pytest
import torch

from checkpoint import (latest_checkpoint, list_checkpoints, load_checkpoint, prune_checkpoints,
                        resolve_resume, save_checkpoint)
from errors import UserError


def save_steps(ckpt_dir, steps):
    for step in steps:
        save_checkpoint({"step": step, "model": {"w": torch.full((2,), float(step))}}, ckpt_dir)


def test_save_load_round_trip_leaves_no_temp_file(tmp_path):
    path = save_checkpoint({"step": 7, "model": {"w": torch.arange(3.0)}, "rng": (1, [2, 3])}, tmp_path)
    assert path.name == "ckpt_000007.pt" and [p.name for p in tmp_path.iterdir()] == ["ckpt_000007.pt"]
    state = load_checkpoint(path)
    assert state["step"] == 7 and torch.equal(state["model"]["w"], torch.arange(3.0))


def test_latest_ignores_temp_files_and_sorts_by_step(tmp_path):
    save_steps(tmp_path, [250, 1000, 500])
    (tmp_path / "ckpt_001250.pt.tmp").write_bytes(b"half-written")
    assert [s for s, _ in list_checkpoints(tmp_path)] == [250, 500, 1000]
    assert latest_checkpoint(tmp_path).name == "ckpt_001000.pt"
    assert latest_checkpoint(tmp_path / "absent") is None


def test_prune_keeps_the_newest_and_the_save_steps(tmp_path):
    save_steps(tmp_path, [1, 2, 3, 4, 5])
    prune_checkpoints(tmp_path, keep=2, save_steps=(2,))
    assert [s for s, _ in list_checkpoints(tmp_path)] == [2, 4, 5]


def test_resume_auto_never_and_path(tmp_path):
    assert resolve_resume("auto", tmp_path) is None
    save_steps(tmp_path, [3, 6])
    assert resolve_resume("auto", tmp_path).name == "ckpt_000006.pt"
    assert resolve_resume("never", tmp_path) is None
    assert resolve_resume(str(tmp_path / "ckpt_000003.pt"), tmp_path).name == "ckpt_000003.pt"
    with pytest.raises(UserError, match="resume checkpoint .* not found"):
        resolve_resume(str(tmp_path / "nope.pt"), tmp_path)


def test_a_corrupt_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "ckpt_000001.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="ckpt_000001.pt cannot be read"):
        load_checkpoint(tmp_path / "ckpt_000001.pt")
