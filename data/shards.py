"""Token shards in llm.c's .bin format: the only code that knows the format.

A shard is a header of 256 int32 (magic 20240520, version 1, token count, the rest zero)
followed by that many uint16 GPT-2 token ids. data/fineweb_edu.py writes shards through
write_shard; train.py and the eval scripts read them through load_split / open_shard.
manifest.json, written beside the shards by the preparer, is the contract between preparer and
trainer: read_manifest reads it for everyone, check_data_dir checks a folder against it before
training.

    from data.shards import check_data_dir, load_split
    notes = check_data_dir("data/fineweb_edu", vocab_size=50304, val_tokens=10_485_760)
    train = load_split("data/fineweb_edu", "train")   # list of validated np.memmap[uint16]
"""
import hashlib
import json
import shlex
from pathlib import Path

import numpy as np

from atomic import atomic_open
from errors import UserError
from tokenizer import GPT2_VOCAB

MAGIC, VERSION = 20240520, 1
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
MAX_SHARD_TOKENS = 2**31 - 1  # the header holds the count as an int32
SPLITS = ("train", "val")
MANIFEST = "manifest.json"
SHARD_KEYS = {"file": str, "tokens": int, "sha256": str, "end_doc": int, "end_pos": int}
FIX = "rerun `python data/fineweb_edu.py --out {dir}` with the settings it was prepared with"


def write_shard(path, tokens):
    """Write tokens (1-D uint16 array) as a shard, atomically. Returns the file's sha256 hex."""
    tokens = np.ascontiguousarray(tokens)
    assert tokens.dtype == np.uint16 and tokens.ndim == 1 and 0 < len(tokens) <= MAX_SHARD_TOKENS
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


def list_shards(data_dir, split, required=True):
    """Sorted paths of a folder's shards of one split ('train' or 'val'); UserError if none
    (unless not required)."""
    assert split in SPLITS, split
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise UserError(f"data folder {data_dir} not found; prepare it with "
                        f"`python data/fineweb_edu.py --out {data_dir}`")
    paths = sorted(data_dir.glob(f"{split}_[0-9][0-9][0-9][0-9][0-9][0-9].bin"))
    if not paths and required:
        raise UserError(f"no {split} shards ({split}_*.bin) in {data_dir}; prepare them with "
                        f"`python data/fineweb_edu.py --out {data_dir}`")
    return paths


def load_split(data_dir, split):
    """Validated memmaps of all shards of one split, in order."""
    return [open_shard(p) for p in list_shards(data_dir, split)]


def scan_shard(path):
    """(sha256 hex of the whole file, the largest token id) of a shard whose size checks out."""
    sha, top = hashlib.sha256(), 0
    with open(path, "rb") as f:
        sha.update(f.read(HEADER_BYTES))
        while chunk := f.read(1 << 24):  # even-sized chunks: whole uint16 tokens
            sha.update(chunk)
            top = max(top, int(np.frombuffer(chunk, dtype="<u2").max()))
    return sha.hexdigest(), top


def manifest_json(manifest):
    """The manifest's text as data/fineweb_edu.py writes it."""
    return json.dumps(manifest, indent=1) + "\n"


def read_manifest(data_dir, fix):
    """data_dir's manifest.json as a dict, or None if there is none.

    Raises UserError (ending in `fix`) if it cannot be read, is not JSON (truncated) or lacks
    its settings or a valid shard list.
    """
    path = Path(data_dir) / MANIFEST
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read {path} ({err}); {fix}") from None
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"{path} is not valid JSON ({err.msg}: line {err.lineno} column "
                        f"{err.colno}; truncated or edited?); {fix}") from None
    if not (isinstance(manifest, dict) and isinstance(manifest.get("settings"), dict)):
        raise UserError(f"{path} has no settings: it was not written by data/fineweb_edu.py or "
                        f"is damaged; {fix}")
    shards = manifest.get("shards")
    if not (isinstance(shards, list) and all(isinstance(e, dict) and all(
            isinstance(e.get(k), t) for k, t in SHARD_KEYS.items()) for e in shards)):
        raise UserError(f"{path} has no valid shard list (each entry needs "
                        f"{', '.join(SHARD_KEYS)}); {fix}")
    return manifest


def val_too_short(data_dir, n_val, val_tokens, block_size=None):
    """The error for a val shard of n_val tokens when val_tokens are asked for: a fix that works."""
    larger = (f"prepare a larger validation set (data/fineweb_edu.py --val-tokens {val_tokens} "
              f"--out NEW_DIR)")
    problem = f"the val shard of {data_dir} holds {n_val:,} tokens, fewer than val_tokens={val_tokens:,}"
    if block_size is not None and n_val < block_size + 1:  # lowering val_tokens cannot help
        return UserError(f"{problem} and than one block of {block_size + 1}; {larger}")
    return UserError(f"{problem}; lower val_tokens to at most {n_val} (--val_tokens={n_val}) or {larger}")


def preparer_command(manifest, data_dir):
    """The manifest's preparer command line, writing to data_dir (the folder may have moved)."""
    argv = shlex.split(manifest.get("command") or "python data/fineweb_edu.py")
    if "--out" in argv[:-1]:
        del argv[argv.index("--out"):argv.index("--out") + 2]
    return shlex.join(argv + ["--out", str(data_dir)])


def check_manifest(data_dir, manifest, vocab_size):
    """check_data_dir's checks against a manifest; returns notes for what it cannot check."""
    rerun = f"rerun `{preparer_command(manifest, data_dir)}`"
    if not manifest.get("complete"):
        raise UserError(f"{data_dir} is only partly prepared (manifest.json says complete: false: "
                        f"the preparation was stopped or failed); {rerun} to finish it")
    shards = manifest["shards"]
    for entry in shards:
        path, expected = data_dir / entry["file"], HEADER_BYTES + 2 * entry["tokens"]
        if not path.is_file():
            raise UserError(f"{path} is listed in manifest.json but missing; {rerun} to write it again")
        if path.stat().st_size != expected:
            raise UserError(f"{path} is {path.stat().st_size:,} bytes but manifest.json lists "
                            f"{entry['tokens']:,} tokens ({expected:,} bytes); {rerun} to write it again")
    listed = {entry["file"] for entry in shards}
    unlisted = [p for split in SPLITS for p in list_shards(data_dir, split, required=False)
                if p.name not in listed]
    if unlisted:
        raise UserError(f"{unlisted[0]} is not listed in {data_dir}/manifest.json (left from "
                        f"another preparation?) but would be trained on; move it out of {data_dir}")
    known = [entry for entry in shards if "max_token_id" in entry]
    notes = [] if len(known) == len(shards) else [
        f"note: {data_dir}/manifest.json predates max_token_id: token ids are not checked "
        f"against vocab_size; {rerun} to record them"]
    if not known:
        return notes
    top = max(known, key=lambda entry: entry["max_token_id"])
    where, max_id = data_dir / top["file"], top["max_token_id"]
    if max_id >= vocab_size:
        raise UserError(f"{where} holds token id {max_id}, but the model's vocab_size is "
                        f"{vocab_size}; set vocab_size above {max_id} (GPT-2: 50304) or prepare "
                        f"the data with the model's tokenizer")
    tokenizer = manifest["settings"].get("tokenizer", "")
    n_vocab = manifest.get("n_vocab", GPT2_VOCAB if tokenizer.startswith("tiktoken gpt2") else None)
    if n_vocab is not None and max_id >= n_vocab:  # GPT-2's padding ids 50257..50303 are no tokens
        raise UserError(f"{where} holds token id {max_id}, but the tokenizer ({tokenizer}) has "
                        f"only {n_vocab} ids (the ones above are padding): the shard is damaged or "
                        f"from another tokenizer; prepare the folder again with --overwrite")
    return notes


def check_data_dir(data_dir, vocab_size, val_tokens, block_size=None):
    """Check a shard folder before training: is it what its manifest.json says, and enough?

    Cheap at any data size: reads the manifest and the files' sizes and headers, never the
    tokens (the largest token id of each shard is recorded in the manifest by the preparer).
    Returns notes (one line each) for what cannot be checked: a folder without a manifest
    (someone else's shards: used unchecked), or a manifest written before max_token_id.
    Raises UserError (one line) for: a missing folder or val shard, an unreadable manifest,
    `complete: false`, a listed shard missing or of another size, a shard not listed, a token id
    >= vocab_size or >= the tokenizer's vocabulary (GPT-2: 50257; its padding ids
    50257..vocab_size-1 never occur in real data), and a val shard shorter than val_tokens.
    """
    data_dir = Path(data_dir)
    val = list_shards(data_dir, "val")[0]
    manifest = read_manifest(data_dir, fix=f"prepare the folder again with data/fineweb_edu.py "
                                           f"--out {data_dir} --overwrite")
    if manifest is None:
        notes = [f"note: {data_dir} has no manifest.json (not made by data/fineweb_edu.py): its "
                 f"shards are used unchecked (completeness, token ids < {vocab_size})"]
    else:
        notes = check_manifest(data_dir, manifest, vocab_size)
    n_val = read_header(val)
    if n_val < val_tokens:
        raise val_too_short(data_dir, n_val, val_tokens, block_size)
    return notes
