"""Checkpoint files of a run: out/<run_name>/ckpt_<step:06d>.pt, saved atomically, found, pruned.

A checkpoint is a torch.save dict with "model" (state_dict, never `_orig_mod.` prefixes),
"model_config", "train_config", "step" (optimiser steps done), "optimizer", "data_state",
"rng" and "wall_time_s". It holds only tensors and plain Python values, so it loads with
torch.load(weights_only=True).

    from checkpoint import save_checkpoint, latest_checkpoint, load_checkpoint
"""
import re
from pathlib import Path

import torch

from atomic import atomic_open
from errors import UserError

NAME = re.compile(r"ckpt_(\d{6,})\.pt")


def checkpoint_path(ckpt_dir, step):
    return Path(ckpt_dir) / f"ckpt_{step:06d}.pt"


def list_checkpoints(ckpt_dir):
    """[(step, path)] of the folder's complete checkpoints, oldest first."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in ckpt_dir.iterdir() if (m := NAME.fullmatch(p.name))]
    return sorted(found)


def latest_checkpoint(ckpt_dir):
    found = list_checkpoints(ckpt_dir)
    return found[-1][1] if found else None


def save_checkpoint(state, ckpt_dir):
    """Write state as ckpt_<state['step']>.pt: to a temp file first, then renamed into place."""
    path = checkpoint_path(ckpt_dir, state["step"])
    with atomic_open(path) as f:
        torch.save(state, f)
    return path


def load_checkpoint(path, map_location="cpu"):
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} not found (train.py writes out/<run_name>/ckpt_<step>.pt)")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # a truncated or foreign file: say which one
        raise UserError(f"checkpoint {path} cannot be read ({type(err).__name__}); "
                        "it is truncated or not a train.py checkpoint (to resume, delete it and train.py "
                        "falls back to the previous one)") from None


def prune_checkpoints(ckpt_dir, keep, save_steps=()):
    """Delete all but the newest `keep` checkpoints, never those whose step is in save_steps."""
    found = list_checkpoints(ckpt_dir)
    for step, path in found[:max(len(found) - keep, 0)]:
        if step not in save_steps:
            path.unlink()


def resolve_resume(resume, ckpt_dir):
    """The checkpoint to resume from, or None: resume is "auto", "never" or a path."""
    if resume == "never":
        return None
    if resume == "auto":
        return latest_checkpoint(ckpt_dir)
    if not Path(resume).is_file():
        raise UserError(f"resume checkpoint {resume} not found; use --resume=auto or --resume=never")
    return Path(resume)
