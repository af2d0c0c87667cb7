"""Checkpoint files of a run: out/<run_name>/ckpt_<step:06d>.pt, saved atomically, found, pruned.

A checkpoint is a torch.save dict with "model" (state_dict, never `_orig_mod.` prefixes),
"model_config", "train_config", "step" (optimiser steps done), "optimizer", "data_state",
"rng", "wall_time_s", "val_loss" (the last eval's, nats/token, at or before "step") and
"attempt" (run_folder.py: the start-from-scratch it belongs to). It holds only tensors and
plain Python values, so it loads with torch.load(weights_only=True). Which checkpoint a run
resumes from, keeps or is scored with is run_folder.py's decision, not this module's.

    from checkpoint import save_checkpoint, list_checkpoints, load_checkpoint
"""
import re
from pathlib import Path

import torch

from atomic import atomic_open
from errors import UserError

NAME = re.compile(r"ckpt_(\d{6,})\.pt")


def checkpoint_path(ckpt_dir, step):
    """ckpt_dir/ckpt_<step:06d>.pt, the file of the checkpoint after `step` optimiser steps."""
    return Path(ckpt_dir) / f"ckpt_{step:06d}.pt"


def list_checkpoints(ckpt_dir):
    """[(step, path)] of the folder's complete checkpoints, oldest first."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in ckpt_dir.iterdir() if (m := NAME.fullmatch(p.name))]
    return sorted(found)


def checkpoint_attempt(path):
    """The "attempt" a checkpoint belongs to (None for checkpoints older than attempts), read
    without loading its tensors (mmap); raises UserError when the file cannot be read."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("attempt")
    except Exception as err:  # a truncated or foreign file
        raise unreadable(path, err) from None


def unreadable(path, err):
    """The UserError for a checkpoint file torch.load refused (err)."""
    return UserError(f"checkpoint {path} cannot be read ({type(err).__name__}); "
                     "it is truncated or not a train.py checkpoint (to resume, move it away and "
                     "train.py falls back to the previous one)")


def save_checkpoint(state, ckpt_dir):
    """Write state as ckpt_<state['step']>.pt: to a temp file first, then renamed into place."""
    path = checkpoint_path(ckpt_dir, state["step"])
    with atomic_open(path) as f:
        torch.save(state, f)
    return path


def load_checkpoint(path, map_location="cpu"):
    """The checkpoint dict at path (keys: the module docstring), tensors on map_location, loaded
    with torch.load(weights_only=True): tensors and plain values only, no code runs.

    Raises UserError when the file does not exist, or is truncated or not a train.py checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} not found (train.py writes out/<run_name>/ckpt_<step>.pt)")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # a truncated or foreign file: say which one
        raise unreadable(path, err) from None


def prune_checkpoints(checkpoints, keep, save_steps=()):
    """Delete all but the newest `keep` of checkpoints [(step, path)] (one attempt's, oldest
    first), never those whose step is in save_steps."""
    for step, path in checkpoints[:max(len(checkpoints) - keep, 0)]:
        if step not in save_steps:
            path.unlink()
