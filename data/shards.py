"""Token shards in llm.c's .bin format: the only code that knows the format.

A shard is a header of 256 int32 (magic 20240520, version 1, token count, the rest zero)
followed by that many uint16 GPT-2 token ids. data/fineweb_edu.py writes shards through
write_shard; train.py and the eval scripts read them through load_split / open_shard:

    from data.shards import load_split
    train = load_split("data/fineweb_edu", "train")   # list of validated np.memmap[uint16]
"""
import hashlib
from pathlib import Path

import numpy as np

from atomic import atomic_open
from errors import UserError

MAGIC, VERSION = 20240520, 1
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
SPLITS = ("train", "val")
FIX = "rerun `python data/fineweb_edu.py --out {dir}` with the settings it was prepared with"


def write_shard(path, tokens):
    """Write tokens (1-D uint16 array) as a shard, atomically. Returns the file's sha256 hex."""
    tokens = np.ascontiguousarray(tokens)
    assert tokens.dtype == np.uint16 and tokens.ndim == 1 and 0 < len(tokens) < 2**31
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[:3] = MAGIC, VERSION, len(tokens)
    sha = hashlib.sha256()
    with atomic_open(path) as f:
        for part in (header.tobytes(), memoryview(tokens).cast("B")):
            f.write(part)
            sha.update(part)
    return sha.hexdigest()


def _bad(path, problem):
    return UserError(f"{path}: {problem}; {FIX.format(dir=Path(path).parent)}")


def read_header(path):
    """Validate a shard's header and file size; return its token count."""
    path = Path(path)
    size = path.stat().st_size
    if size < HEADER_BYTES:
        raise _bad(path, f"truncated ({size} bytes, smaller than the {HEADER_BYTES}-byte header)")
    header = np.fromfile(path, dtype="<i4", count=HEADER_INTS)
    if header[0] != MAGIC:
        raise _bad(path, f"wrong magic number {header[0]} (expected {MAGIC}): not a token shard")
    if header[1] != VERSION:
        raise _bad(path, f"unsupported shard version {header[1]} (expected {VERSION})")
    n = int(header[2])
    expected = HEADER_BYTES + 2 * n
    if n <= 0 or size != expected:
        kind = "truncated" if size < expected else "oversized"
        raise _bad(path, f"{kind}: {size} bytes but its header says {n} tokens ({expected} bytes)")
    return n


def open_shard(path):
    """Return a validated shard's tokens as a read-only np.memmap[uint16]."""
    n = read_header(path)
    return np.memmap(path, dtype=np.uint16, mode="r", offset=HEADER_BYTES, shape=(n,))


def list_shards(data_dir, split):
    """Sorted paths of a folder's shards of one split ('train' or 'val')."""
    assert split in SPLITS, split
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise UserError(f"data folder {data_dir} not found; prepare it with "
                        f"`python data/fineweb_edu.py --out {data_dir}`")
    paths = sorted(data_dir.glob(f"{split}_[0-9][0-9][0-9][0-9][0-9][0-9].bin"))
    if not paths:
        raise UserError(f"no {split} shards ({split}_*.bin) in {data_dir}; prepare them with "
                        f"`python data/fineweb_edu.py --out {data_dir}`")
    return paths


def load_split(data_dir, split):
    """Validated memmaps of all shards of one split, in order."""
    return [open_shard(p) for p in list_shards(data_dir, split)]
