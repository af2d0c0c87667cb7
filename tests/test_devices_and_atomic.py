"""devices.py (device and precision choices) and atomic.py (crash-safe writes)."""
from contextlib import nullcontext

import pytest
import torch

from atomic import atomic_open, atomic_write_text
from devices import autocast_context, resolve_device, resolve_dtype
from errors import UserError


def test_auto_device_and_dtype_follow_cuda_availability():
    device = resolve_device("auto")
    assert device == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_dtype("auto", "cpu") == "float32"
    assert resolve_dtype("auto", "cuda:1") == "bfloat16"
    assert resolve_dtype("float32", "cuda") == "float32"


def test_bfloat16_on_a_gpu_without_it_fails_with_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    for dtype in ("auto", "bfloat16"):
        with pytest.raises(UserError, match="cuda:0 has no native bfloat16 .* pass --dtype=float32"):
            resolve_dtype(dtype, "cuda:0")
    assert resolve_dtype("float32", "cuda:0") == "float32"
    assert resolve_dtype("auto", "cpu") == "float32"


def test_bad_devices_fail_with_one_line():
    with pytest.raises(UserError, match="'gpu0' is not a torch device"):
        resolve_device("gpu0")
    with pytest.raises(UserError, match="device 'meta' is not supported; use auto, cpu, cuda or cuda:N"):
        resolve_device("meta")  # a torch device, but not one this repo trains or evaluates on
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="none is available; use cpu"):
            resolve_device("cuda:0")


def test_autocast_only_for_bfloat16():
    assert isinstance(autocast_context("cpu", "auto"), nullcontext)
    with autocast_context("cpu", "bfloat16"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16


def test_a_write_that_fails_midway_leaves_the_old_file(tmp_path):
    path = tmp_path / "sub" / "report.md"
    atomic_write_text(path, "old\n")
    with pytest.raises(RuntimeError):
        with atomic_open(path) as f:
            f.write(b"half of the new")
            raise RuntimeError("crash")
    assert path.read_text() == "old\n"
    atomic_write_text(path, "new\n")
    assert path.read_text() == "new\n" and not (tmp_path / "sub" / "report.md.tmp").exists()
