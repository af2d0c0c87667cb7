"""checkpoint.py: atomic save, listing, reading the attempt cheaply, pruning, clear errors, and the
background writer (a frozen CPU copy, one write at a time, failures handed back as one line)."""
import threading

import pytest
import torch

import atomic
import checkpoint
from checkpoint import (CheckpointWriter, checkpoint_attempt, list_checkpoints, load_checkpoint,
                        prune_checkpoints, save_checkpoint, to_cpu)
from conftest import FillingDisk
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
    assert list_checkpoints(tmp_path / "absent") == []


def test_prune_keeps_the_newest_and_the_save_steps(tmp_path):
    save_steps(tmp_path, [1, 2, 3, 4, 5])
    prune_checkpoints(list_checkpoints(tmp_path), keep=2, save_steps=(2,))
    assert [s for s, _ in list_checkpoints(tmp_path)] == [2, 4, 5]


def test_the_attempt_is_read_without_loading_the_weights(tmp_path):
    path = save_checkpoint({"step": 1, "model": {"w": torch.zeros(4)}, "attempt": "A"}, tmp_path)
    assert checkpoint_attempt(path) == "A"
    assert checkpoint_attempt(save_checkpoint({"step": 2}, tmp_path)) is None  # older checkpoints
    (tmp_path / "ckpt_000003.pt").write_bytes(b"torn")
    with pytest.raises(UserError, match="ckpt_000003.pt cannot be read"):
        checkpoint_attempt(tmp_path / "ckpt_000003.pt")


def test_a_failed_write_leaves_no_temp_file_and_a_full_disk_says_so(tmp_path):
    (tmp_path / "ckpt_000005.pt.tmp").symlink_to("/dev/full")  # every write: ENOSPC
    with pytest.raises(UserError, match=r"^disk full while writing \S+ckpt_000005.pt; free space"):
        save_checkpoint({"step": 5, "model": {"w": torch.zeros(1000)}}, tmp_path)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(Exception, match="pickle"):  # any other failure: the temp file goes too
        save_checkpoint({"step": 6, "model": lambda: 0}, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_corrupt_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "ckpt_000001.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="ckpt_000001.pt cannot be read"):
        load_checkpoint(tmp_path / "ckpt_000001.pt")


def test_a_disk_that_fills_mid_write_is_disk_full_and_leaves_no_file(tmp_path, monkeypatch):
    """torch.save wraps the OSError in RuntimeError ("[enforce fail at inline_container.cc]"):
    atomic.py still finds ENOSPC in the chain (issue 21 item 4)."""
    monkeypatch.setattr(atomic, "open", FillingDisk(room=5000, name_part="ckpt_"), raising=False)
    with pytest.raises(UserError, match=r"^disk full while writing \S+ckpt_000005.pt; free space"):
        save_checkpoint({"step": 5, "model": {"w": torch.zeros(100_000)}}, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_to_cpu_is_a_copy_that_training_cannot_change():
    weight = torch.ones(3)
    state = {"model": {"w": weight}, "optimizer": {"param_groups": [{"betas": (0.9, 0.95)}]}, "step": 4}
    frozen = to_cpu(state)
    weight.add_(1.0)  # the next optimiser step, in place
    assert torch.equal(frozen["model"]["w"], torch.ones(3)) and frozen["step"] == 4
    assert frozen["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.95)


def test_the_writer_writes_in_the_background_one_at_a_time(tmp_path, monkeypatch):
    release = threading.Event()
    real_save = checkpoint.save_checkpoint

    def held_save(state, ckpt_dir):
        assert release.wait(timeout=60), "the caller never got past submit()"
        return real_save(state, ckpt_dir)

    monkeypatch.setattr(checkpoint, "save_checkpoint", held_save)
    pruned, writer = [], CheckpointWriter(last_good="resumed.pt")
    writer.submit({"step": 3}, tmp_path, then=pruned.append)  # returns while the write waits
    assert writer.last_good == "resumed.pt" and list(tmp_path.iterdir()) == []
    release.set()
    writer.wait()
    assert writer.last_good == tmp_path / "ckpt_000003.pt" == pruned[0]
    writer.submit({"step": 6}, tmp_path)
    writer.submit({"step": 9}, tmp_path)  # waits for step 6's write first
    writer.wait()
    assert [s for s, _ in list_checkpoints(tmp_path)] == [3, 6, 9]


def test_a_failed_background_write_is_raised_once_and_keeps_the_last_good(tmp_path, monkeypatch):
    writer = CheckpointWriter()
    writer.submit({"step": 3, "model": {"w": torch.zeros(10)}}, tmp_path)
    writer.wait()
    monkeypatch.setattr(atomic, "open", FillingDisk(room=1000, name_part="ckpt_000006"), raising=False)
    writer.submit({"step": 6, "model": {"w": torch.zeros(100_000)}}, tmp_path)
    with pytest.raises(UserError, match=r"^disk full while writing \S+ckpt_000006.pt"):
        writer.wait()
    assert writer.last_good == tmp_path / "ckpt_000003.pt"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt_000003.pt"]
    writer.wait()  # raised once: the run may go on to write the next one
