"""Shared pieces of the benchmarks (bench_embedding.py, bench_train.py): token ids of real text,
timing, an allocation tracker and the hardware name. Not a script; importing it puts the repo
root on sys.path.

Token ids come from a prepared file (`--tokens-file`: a .bin shard of data/fineweb_edu.py or a
.npy array; needs only numpy) or, by default, from tokenising the shared FineWeb sample with
tiktoken. Every `--tokens-file` path works offline on a machine without tiktoken.
"""
import gzip
import json
import math
import os
import random
import subprocess
import sys
import time
import weakref
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as `python scripts/<bench>.py`: import from the repo root
    sys.path.insert(0, str(REPO))

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from data.shards import open_shard
from errors import UserError

FINEWEB_SAMPLE = REPO.parent / "shared" / "data" / "fineweb_sample" / "train.jsonl.gz"
MB = 2**20


def token_ids(n, tokens_file=None, minimum=None):
    """The first n GPT-2 token ids of real text (at least `minimum`, default n), int64 tensor."""
    if tokens_file is not None:
        ids = _read_tokens_file(Path(tokens_file))
    else:
        ids = _tokenize_sample(n)
    minimum = n if minimum is None else minimum
    if len(ids) < minimum:
        raise UserError(f"{tokens_file or FINEWEB_SAMPLE} holds {len(ids):,} tokens, fewer than the "
                        f"{minimum:,} needed; pass a larger --tokens-file or a smaller shape")
    return torch.from_numpy(np.asarray(ids[:n], dtype=np.int64))


def _read_tokens_file(path):
    if not path.is_file():
        raise UserError(f"--tokens-file {path} not found; prepare one with "
                        "`python data/fineweb_edu.py --out DIR ...` (a .bin shard) or pass a .npy")
    if path.suffix == ".bin":
        return open_shard(path)
    if path.suffix == ".npy":
        return np.load(path, mmap_mode="r").reshape(-1)
    raise UserError(f"--tokens-file {path}: expected a .bin shard or a .npy array of token ids")


def _tokenize_sample(n):
    """<|endoftext|> + encode_ordinary(text) per document, as data/fineweb_edu.py does."""
    if not FINEWEB_SAMPLE.is_file():
        raise UserError(f"no token ids: {FINEWEB_SAMPLE} not found; pass --tokens-file with a .bin "
                        "shard (python data/fineweb_edu.py --out DIR ...) or a .npy of token ids")
    from tokenizer import EOT_ID, get_encoding
    enc, ids = get_encoding(), []
    with gzip.open(FINEWEB_SAMPLE, "rt") as f:
        for line in f:
            ids.append(EOT_ID)
            ids.extend(enc.encode_ordinary(json.loads(line)["text"]))
            if len(ids) >= n:
                break
    return ids


def token_bytes(vocab, seed=0):
    """V byte strings for a Kronecker codec of `vocab` ids: GPT-2's (tokenizer.gpt2_token_bytes),
    then, past GPT-2's 50,304 ids, random strings whose lengths are drawn from GPT-2's real
    tokens (seeded): a frontier-sized vocabulary (e.g. 131,072) with GPT-2-like lengths, so its
    codec has the sparsity of a real one."""
    from tokenizer import GPT2_VOCAB, gpt2_token_bytes
    table = gpt2_token_bytes(min(vocab, 50304))
    real = [b for b in table[:GPT2_VOCAB] if b]
    rng = random.Random(seed)
    while len(table) < vocab:
        table.append(bytes(rng.randrange(256) for _ in range(len(rng.choice(real)))))
    return table


def synchronize(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device):
    """Seconds one call of fn takes, the device's queue drained before and after."""
    synchronize(device)
    t0 = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - t0


@contextmanager
def busy_cores(n):
    """n other processes that each keep one core busy while the block runs (a loaded node)."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(0.5)  # let them start before anything is timed
        yield spinners
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def load_average():
    """The 1-minute load average (runnable processes, all cores together), or None where unknown."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def hardware(device):
    """A short description of where the numbers were measured."""
    if device.startswith("cuda"):
        name = torch.cuda.get_device_name(device)
    else:
        name = f"{torch.get_num_threads()}-thread CPU"
    return f"{name}, torch {torch.__version__}"


class AllocationTracker(TorchDispatchMode):
    """Counts the storages that aten ops create while it is active (forward and backward).

    `peak_bytes`: the most bytes those storages held at once; `largest`: (numel, shape) of the
    biggest one; `shapes`: the shapes of all of them. A storage is counted from the op that creates it until it is freed (a weakref
    on the storage, so tensors kept alive by autograd count until backward releases them);
    views, in-place results and storages that existed before (`exclude`: parameters, buffers,
    inputs) are not new allocations. Scratch buffers inside one kernel are not seen.
    """

    def __init__(self, exclude=()):
        super().__init__()
        self.known = {t.untyped_storage().data_ptr() for t in exclude}
        self.live, self.current, self.peak_bytes, self.largest, self.shapes = {}, 0, 0, (0, ()), set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self._track(t)
        return out

    def _track(self, tensor):
        storage = tensor.untyped_storage()
        key, nbytes = storage.data_ptr(), storage.nbytes()
        if nbytes == 0 or key in self.known or key in self.live:
            return
        self.live[key] = nbytes
        weakref.finalize(storage, self._free, key)
        self.current += nbytes
        self.peak_bytes = max(self.peak_bytes, self.current)
        self.shapes.add(tuple(tensor.shape))
        numel = nbytes // tensor.element_size()
        if numel > self.largest[0]:
            self.largest = (numel, tuple(tensor.shape))

    def _free(self, key):
        self.current -= self.live.pop(key, 0)

    def made_matrix(self, rows, width):
        """Whether some new tensor is a (rows, width) matrix, possibly with its rows split (B, T, width)."""
        return any(s and s[-1] == width and math.prod(s[:-1]) == rows for s in self.shapes)


