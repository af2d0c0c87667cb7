"""Checkpoint files of a run: out/<run_name>/ckpt_<step:06d>.pt, saved atomically, found, pruned.

A checkpoint is a torch.save dict with "model" (state_dict, never `_orig_mod.` prefixes),
"model_config", "train_config", "step" (optimiser steps done), "optimizer", "data_state",
"rng", "wall_time_s", "val_loss" (the last eval's, nats/token, at or before "step"), "attempt"
(run_folder.py: the start-from-scratch it belongs to) and "data_identity" (data.shards: what the
data was). It holds only tensors and plain Python values, so it loads with
torch.load(weights_only=True). Which checkpoint a run resumes from, keeps or is scored with is
run_folder.py's decision, not this module's.

CheckpointWriter writes them in a background thread from a CPU copy (to_cpu), so training goes
on while the file is written (docs/training.md, "Checkpoints and resume").

    from checkpoint import save_checkpoint, list_checkpoints, load_checkpoint
"""
import re
import threading
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


def to_cpu(obj):
    """A copy of obj (a state dict: nested dicts, lists, tuples of tensors and plain values) whose
    tensors are on the CPU and share no memory with obj's, so a background write reads a frozen
    state while training updates the live one. On CUDA this is the device-to-host copy."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


class CheckpointWriter:
    """Writes one checkpoint at a time in a background thread (as torch.distributed.checkpoint's
    async_save does), so the process (and the ranks waiting for it) trains on meanwhile.

    submit() waits for the previous write (raising its error), then starts this one; wait()
    blocks until the current write is done and raises its error (UserError "disk full ..." from
    atomic.py, or any other). A failed write leaves no file (atomic_open) and last_good
    unchanged: the newest checkpoint whose write completed (at first the resumed one, or None).
    close() waits without raising (for exit paths; a failure is printed as one note).
    """

    def __init__(self, last_good=None):
        self.last_good, self.thread, self.error = last_good, None, None

    def submit(self, state, ckpt_dir, then=None):
        """Write state (to_cpu'd: nothing may change it now) as ckpt_dir/ckpt_<state['step']>.pt in
        the background, then call then(path) (pruning) in the same thread."""
        self.wait()

        def write():
            try:
                path = save_checkpoint(state, ckpt_dir)
                self.last_good = path
                if then is not None:
                    then(path)
            except BaseException as err:  # handed to the main thread by wait()
                self.error = err

        self.thread = threading.Thread(target=write, name="checkpoint-writer", daemon=True)
        self.thread.start()

    def wait(self):
        """Block until the write in flight (if any) is done; raise its error."""
        if self.thread is not None:
            self.thread.join()
            self.thread = None
        if self.error is not None:
            err, self.error = self.error, None
            raise err

    def close(self):
        """wait(), printing a failure as one note instead of raising (the run is ending anyway)."""
        try:
            self.wait()
        except Exception as err:
            print(f"note: the last checkpoint was not written: {err}")
