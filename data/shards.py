"""Token shards in llm.c's .bin format: the only code that knows the format.

A shard is a header of 256 int32 (magic, version, token count, the rest zero) followed by that
many token ids: llm.c's GPT-2 format (magic 20240520, version 1, uint16 ids) for vocabularies of
up to 65,536 ids, and llm.c's Llama-3 format (magic 20240801, version 7, uint32 ids) above
(cl100k_base, o200k_base, Llama 3, ...). The manifest states the dtype; the reader accepts both
and checks a shard's header against it. data/fineweb_edu.py writes shards through
write_shard; train.py and the eval scripts read them through load_split / open_shard.
manifest.json, written beside the shards by the preparer, is the contract between preparer and
trainer: read_manifest reads it for everyone, check_data_dir checks a folder against it before
training, and data_identity names the data by its content (not its path) for run_folder.py.

    from data.shards import check_data_dir, load_split
    notes = check_data_dir("data/fineweb_edu", vocab_size=50304, val_tokens=10_485_760)
    train = load_split("data/fineweb_edu", "train")   # validated np.memmap[uint16 or uint32]
"""
import hashlib
import json
import shlex
from pathlib import Path

import numpy as np

from atomic import atomic_open
from data.sources import file_fingerprint
from errors import UserError, not_found
from tokenizer import GPT2_VOCAB

MAGIC, VERSION = 20240520, 1  # llm.c's GPT-2 shards: uint16 ids
FORMATS = {"uint16": (MAGIC, VERSION), "uint32": (20240801, 7)}  # llm.c's Llama-3 shards: uint32
DTYPES = {header: dtype for dtype, header in FORMATS.items()}
# Manifests written before the tokenizer was recorded in them are GPT-2's (tokenizer.py identity()).
LEGACY_TOKENIZER = "tiktoken gpt2 encode_ordinary"
GPT2_VOCAB_SHA256 = "a5623714bcf19049eb0fd78df19b6daa1e61ac435b86a5deae767768e7fcdc3d"
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
MAX_SHARD_TOKENS = 2**31 - 1  # the header holds the count as an int32
SPLITS = ("train", "val")
MANIFEST = "manifest.json"
SHARD_KEYS = {"file": str, "tokens": int, "sha256": str, "end_doc": int, "end_pos": int}
FIX = "rerun `python data/fineweb_edu.py --out {dir}` with the settings it was prepared with"


def write_shard(path, tokens):
    """Write tokens (1-D uint16 or uint32 array) as a shard of that format, atomically.

    Returns the file's sha256 hex."""
    tokens = np.ascontiguousarray(tokens)
    assert tokens.dtype.name in FORMATS and tokens.ndim == 1 and 0 < len(tokens) <= MAX_SHARD_TOKENS
    tokens = tokens.astype(tokens.dtype.newbyteorder("<"), copy=False)
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[:3] = *FORMATS[tokens.dtype.name], len(tokens)
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
    return shard_info(path)[0]


def shard_info(path):
    """Validate a shard's header and file size; return (token count, dtype name)."""
    path = Path(path)
    size = path.stat().st_size
    if size < HEADER_BYTES:
        raise _bad(path, f"truncated ({size} bytes, smaller than the {HEADER_BYTES}-byte header)")
    header = np.fromfile(path, dtype="<i4", count=HEADER_INTS)
    magics = {magic for magic, _ in DTYPES}
    if header[0] not in magics:
        raise _bad(path, f"wrong magic number {header[0]} (expected {' or '.join(map(str, sorted(magics)))}): "
                         f"not a token shard")
    dtype = DTYPES.get((int(header[0]), int(header[1])))
    if dtype is None:
        expected = next(v for m, v in DTYPES if m == header[0])
        raise _bad(path, f"unsupported shard version {header[1]} (expected {expected})")
    n = int(header[2])
    expected = HEADER_BYTES + np.dtype(dtype).itemsize * n
    if n <= 0 or size != expected:
        kind = "truncated" if size < expected else "oversized"
        raise _bad(path, f"{kind}: {size} bytes but its header says {n} tokens ({expected} bytes)")
    return n, dtype


def open_shard(path):
    """Return a validated shard's tokens as a read-only np.memmap[uint16 or uint32]."""
    n, dtype = shard_info(path)
    return np.memmap(path, dtype=np.dtype(dtype).newbyteorder("<"), mode="r", offset=HEADER_BYTES,
                     shape=(n,))


def list_shards(data_dir, split, required=True):
    """Sorted paths of a folder's shards of one split ('train' or 'val'); UserError if none
    (unless not required)."""
    assert split in SPLITS, split
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise not_found("data folder", data_dir,
                        f"prepare it with `python data/fineweb_edu.py --out {data_dir}`")
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
    dtype = np.dtype(shard_info(path)[1]).newbyteorder("<")
    with open(path, "rb") as f:
        sha.update(f.read(HEADER_BYTES))
        while chunk := f.read(1 << 24):  # 2**24 bytes: whole uint16 or uint32 tokens
            sha.update(chunk)
            top = max(top, int(np.frombuffer(chunk, dtype=dtype).max()))
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


def manifest_dtype(manifest):
    """The token dtype name a manifest states ("uint16" before it was recorded)."""
    return manifest["settings"].get("dtype", "uint16")


def shard_bytes(manifest, tokens):
    """The file size of a shard of `tokens` tokens in the manifest's format."""
    return HEADER_BYTES + np.dtype(manifest_dtype(manifest)).itemsize * tokens


def manifest_tokenizer(manifest):
    """(the tokenizer's name, its vocab_sha256, its EOT id) as the manifest records them;
    manifests from before tokenizers were recorded are GPT-2's."""
    settings = manifest["settings"]
    name = settings.get("tokenizer", LEGACY_TOKENIZER)
    if name == LEGACY_TOKENIZER:
        return "gpt2", settings.get("vocab_sha256", GPT2_VOCAB_SHA256), settings.get("eot_id", 50256)
    return name, settings.get("vocab_sha256"), settings.get("eot_id")


def check_tokenizer(data_dir, manifest, tokenizer):
    """UserError (one line) if the folder was tokenised by another tokenizer than `tokenizer`
    (tokenizer.Tokenizer.identity(): compared by vocab_sha256 and eot_id, not by name)."""
    name, sha, eot_id = manifest_tokenizer(manifest)
    if (sha, eot_id) != (tokenizer["vocab_sha256"], tokenizer["eot_id"]):
        raise UserError(f"{data_dir} was tokenised with {name} (vocab sha256 {str(sha)[:12]}, EOT "
                        f"{eot_id}), but this run's tokenizer is {tokenizer['name']} (vocab sha256 "
                        f"{tokenizer['vocab_sha256'][:12]}, EOT {tokenizer['eot_id']}); set "
                        f"tokenizer={name} or prepare the data with --tokenizer {tokenizer['name']}")


def check_manifest(data_dir, manifest, vocab_size, tokenizer=None):
    """check_data_dir's checks against a manifest; returns notes for what it cannot check."""
    rerun = f"rerun `{preparer_command(manifest, data_dir)}`"
    if not manifest.get("complete"):
        raise UserError(f"{data_dir} is only partly prepared (manifest.json says complete: false: "
                        f"the preparation was stopped or failed); {rerun} to finish it")
    if tokenizer is not None:
        check_tokenizer(data_dir, manifest, tokenizer)
    shards, dtype = manifest["shards"], manifest_dtype(manifest)
    for entry in shards:
        path, expected = data_dir / entry["file"], shard_bytes(manifest, entry["tokens"])
        if not path.is_file():
            raise UserError(f"{path} is listed in manifest.json but missing; {rerun} to write it again")
        if path.stat().st_size != expected:
            raise UserError(f"{path} is {path.stat().st_size:,} bytes but manifest.json lists "
                            f"{entry['tokens']:,} tokens ({expected:,} bytes); {rerun} to write it "
                            f"again")
        if shard_info(path)[1] != dtype:
            raise UserError(f"{path} holds {shard_info(path)[1]} tokens but manifest.json says "
                            f"{dtype}; {rerun} to write it again")
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
                        f"{vocab_size}; set vocab_size above {max_id} (or leave it unset) or prepare "
                        f"the data with the model's tokenizer")
    name = manifest["settings"].get("tokenizer", "")
    n_vocab = manifest.get("n_vocab", GPT2_VOCAB if name.startswith("tiktoken gpt2") else None)
    if n_vocab is not None and max_id >= n_vocab:  # GPT-2's padding ids 50257..50303 are no tokens
        raise UserError(f"{where} holds token id {max_id}, but the tokenizer ({name}) has "
                        f"only {n_vocab} ids (the ones above are padding): the shard is damaged or "
                        f"from another tokenizer; prepare the folder again with --overwrite")
    return notes


def check_data_dir(data_dir, vocab_size, val_tokens, block_size=None, tokenizer=None):
    """Check a shard folder before training: is it what its manifest.json says, and enough?

    Cheap at any data size: reads the manifest and the files' sizes and headers, never the
    tokens (the largest token id of each shard is recorded in the manifest by the preparer).
    Returns notes (one line each) for what cannot be checked: a folder without a manifest
    (someone else's shards: used unchecked), or a manifest written before max_token_id.
    Raises UserError (one line) for: a missing folder or val shard, an unreadable manifest,
    `complete: false`, a listed shard missing or of another size, a shard not listed, a token id
    >= vocab_size or >= the tokenizer's vocabulary (GPT-2: 50257; its padding ids
    50257..vocab_size-1 never occur in real data), a shard whose dtype (uint16/uint32) is not the
    manifest's, a tokenizer (tokenizer.Tokenizer.identity(), if given) other than the
    manifest's, and a val shard shorter than val_tokens.
    """
    data_dir = Path(data_dir)
    val = list_shards(data_dir, "val")[0]
    manifest = read_manifest(data_dir, fix=f"prepare the folder again with data/fineweb_edu.py "
                                           f"--out {data_dir} --overwrite")
    if manifest is None:
        notes = [f"note: {data_dir} has no manifest.json (not made by data/fineweb_edu.py): its "
                 f"shards are used unchecked (completeness, token ids < {vocab_size})"]
    else:
        notes = check_manifest(data_dir, manifest, vocab_size, tokenizer)
    n_val = read_header(val)
    if n_val < val_tokens:
        raise val_too_short(data_dir, n_val, val_tokens, block_size)
    return notes


def data_identity(data_dir):
    """What a shard folder's data is, whatever its path (moved, reached through a symlink, spelled
    with a trailing slash): a dict of JSON values that run_folder.py records in config.json and
    checkpoints and compares with data_differences.

    Keys: "shards" {file: tokens} (from the headers), "sample_sha256" (sha256 over each shard's
    name and data.sources.file_fingerprint: size, first and last MiB; cheap at any size), and from
    the manifest, None without one: "tokenizer" (name), "vocab_sha256", "source" (the dataset and
    its revision, or the local files' names), "source_sha256" (sha256 of the manifest's
    source_fingerprint: file sizes and head/tail hashes, or the hub commit) and "content_sha256"
    (sha256 over the shards' full-file sha256s as the preparer wrote them). Raises UserError for
    a missing folder, no shards, or an unreadable manifest (as check_data_dir).
    """
    data_dir = Path(data_dir)
    paths = [p for split in SPLITS for p in list_shards(data_dir, split)]
    manifest = read_manifest(data_dir, fix=f"prepare the folder again with data/fineweb_edu.py "
                                           f"--out {data_dir} --overwrite")
    sample = hashlib.sha256()
    for path in paths:
        sample.update(json.dumps([path.name, file_fingerprint(path)]).encode())
    identity = dict(shards={p.name: shard_info(p)[0] for p in paths}, sample_sha256=sample.hexdigest(),
                    tokenizer=None, vocab_sha256=None, source=None, source_sha256=None,
                    content_sha256=None)
    if manifest is not None:
        name, vocab_sha, _ = manifest_tokenizer(manifest)
        listed = sorted((e["file"], e["tokens"], e["sha256"]) for e in manifest["shards"])
        identity.update(tokenizer=name, vocab_sha256=vocab_sha, source=source_text(manifest),
                        source_sha256=_sha256_json(manifest.get("source_fingerprint")),
                        content_sha256=_sha256_json(listed))
    return identity


def _sha256_json(value):
    return None if value is None else hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def source_text(manifest):
    """The manifest's source in words: "HuggingFaceFW/fineweb-edu sample-10BT @ 3c4d5e6f7a8b" or
    "local files sample.jsonl"."""
    source = manifest["settings"].get("source", {})
    if "data_files" in source:
        return "local files " + ", ".join(Path(f).name for f in source["data_files"])
    revision = (manifest.get("source_fingerprint") or {}).get("revision")
    return " ".join(filter(None, [source.get("dataset"), source.get("name")])) + \
        (f" @ {revision[:12]}" if revision else "")


def data_differences(recorded, now):
    """["what differs", ...] between two data_identity dicts ([] when they are the same data):
    the tokenizer, the source, the shard sizes, the content. Where one side has no manifest (or
    predates a field), only what both record is compared; the sample digest always is."""
    differences = []
    if None not in (recorded.get("vocab_sha256"), now["vocab_sha256"]) and recorded["vocab_sha256"] != now["vocab_sha256"]:
        differences.append(f"tokenizer {recorded.get('tokenizer')} != {now['tokenizer']}")
    if None not in (recorded.get("source_sha256"), now["source_sha256"]) and recorded["source_sha256"] != now["source_sha256"]:
        same_words = recorded.get("source") == now["source"]
        differences.append(f"source {recorded.get('source')} != {now['source']}"
                           + (" (same names, other content)" if same_words else ""))
    theirs, mine = recorded.get("shards", {}), now["shards"]
    if theirs != mine:
        changed = [f"{f} {theirs.get(f, 'absent')} != {mine.get(f, 'absent')} tokens"
                   for f in sorted(set(theirs) | set(mine)) if theirs.get(f) != mine.get(f)]
        differences.append(f"shards ({'; '.join(changed[:3])}{'; ...' if len(changed) > 3 else ''})")
    content = [k for k in ("content_sha256", "sample_sha256")
               if None not in (recorded.get(k), now[k]) and recorded[k] != now[k]]
    if content and theirs == mine:
        differences.append("content (same shard sizes, other tokens: "
                           f"{' and '.join(k.replace('_sha256', ' sha256') for k in content)} differ)")
    return differences
