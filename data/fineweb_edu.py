"""Prepare FineWeb-Edu (or any text dataset) as GPT-2 token shards for train.py.

Streams the Hugging Face dataset (the disk holds only the shards), tokenises every document
with tiktoken gpt2 `encode_ordinary`, puts <|endoftext|> (50256) BEFORE every document, and
writes uint16 shards in llm.c's .bin format through data/shards.py: first `val_000000.bin`
(the first --val-tokens tokens of the stream), then `train_000001.bin`, ... of --shard-tokens
each (documents run across shard boundaries; the last one may be short), plus manifest.json.
Rerunning the same command resumes after the last complete shard, byte-identically.

    python data/fineweb_edu.py                                    # 100M val + 2.6B train tokens
    python data/fineweb_edu.py --data-files ../shared/data/fineweb_edu_sample/sample.jsonl \
        --out data/sample --val-tokens 20_000 --shard-tokens 1e5 --train-tokens all
"""
import argparse
import hashlib
import itertools
import json
import multiprocessing as mp
import os
import re
import shlex
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as `python data/fineweb_edu.py`: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from tqdm import tqdm

from atomic import atomic_open
from data.shards import HEADER_BYTES, write_shard
from errors import UserError, run_main
from tokenizer import EOT_ID, get_encoding

FORMATS = {".json": "json", ".jsonl": "json", ".parquet": "parquet"}
SHARD_NAME = re.compile(r"(val|train)_\d{6}\.bin|manifest\.json")


def token_count(arg, allow_all=False):
    """Parse a token count such as 1e8, 100_000_000 or 2600000000 (or 'all' where allowed)."""
    if allow_all and arg == "all":
        return None
    try:
        n = int(arg) if re.fullmatch(r"[0-9_]+", arg) else float(arg)
    except ValueError:
        n = 0
    if not (n >= 1 and float(n).is_integer()):
        raise UserError(f"bad token count {arg!r}: give a positive whole number such as 1e8 or "
                        f"100_000_000" + (" (or 'all')" if allow_all else ""))
    return int(n)


def get_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", default="HuggingFaceFW/fineweb-edu", help="Hugging Face dataset")
    p.add_argument("--name", default="sample-10BT",
                   help="dataset config: sample-10BT, sample-100BT, sample-350BT, default, ...")
    p.add_argument("--text-field", default="text", help="column holding the document text")
    p.add_argument("--data-files", nargs="+", metavar="PATH",
                   help="local .json/.jsonl/.parquet files (optionally .gz) instead of the hub")
    p.add_argument("--out", default="data/fineweb_edu", help="output folder")
    p.add_argument("--val-tokens", type=token_count, default=100_000_000,
                   help="the first tokens of the stream, written as val_000000.bin")
    p.add_argument("--shard-tokens", type=token_count, default=100_000_000,
                   help="tokens per train shard")
    p.add_argument("--train-tokens", type=lambda a: token_count(a, allow_all=True),
                   default=2_600_000_000, help="train tokens to write, or 'all'")
    p.add_argument("--workers", type=int, default=os.cpu_count(), help="tokeniser processes")
    p.add_argument("--overwrite", action="store_true",
                   help="discard the shards and manifest in --out and start over")
    p.add_argument("--stop-after-shards", type=int, help=argparse.SUPPRESS)  # tests: fake a crash
    args = p.parse_args(argv)
    if args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    return args


def source_of(args):
    """The source part of the settings: a hub dataset, or local files of one format."""
    if not args.data_files:
        return {"dataset": args.dataset, "name": args.name, "split": "train",
                "text_field": args.text_field}
    files = [str(Path(f).resolve()) for f in args.data_files]
    formats = {FORMATS.get(Path(f.removesuffix(".gz")).suffix) for f in files}
    if len(formats) != 1 or None in formats:
        raise UserError(f"--data-files must all be .json, .jsonl or .parquet (optionally .gz), "
                        f"of one format; got {' '.join(args.data_files)}")
    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        raise UserError(f"--data-files: {missing[0]} not found")
    return {"data_files": files, "format": formats.pop(), "split": "train",
            "text_field": args.text_field}


def documents(source):
    """Yield the source's document texts in order, streamed."""
    import datasets  # slow to import; only the main process needs it
    if "data_files" in source:
        ds = datasets.load_dataset(source["format"], data_files=source["data_files"],
                                   split="train", streaming=True)
    else:
        ds = datasets.load_dataset(source["dataset"], name=source["name"], split="train",
                                   streaming=True)
    field = source["text_field"]
    if ds.features is not None and field not in ds.features:
        raise UserError(f"the source has no {field!r} field (it has {', '.join(ds.features)}); "
                        f"set --text-field")
    for row in ds.select_columns([field]):
        yield row[field]


def encode(text):
    """One document's tokens: <|endoftext|> first, then the text's ordinary GPT-2 tokens."""
    return np.array([EOT_ID] + get_encoding().encode_ordinary(text), dtype=np.uint16)


def file_sha256(path):
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            sha.update(chunk)
    return sha.hexdigest()


def shard_ok(out, entry):
    path = out / entry["file"]
    return (path.is_file() and path.stat().st_size == HEADER_BYTES + 2 * entry["tokens"]
            and file_sha256(path) == entry["sha256"])


def clean(out, keep=()):
    """Remove temp files, and shard files (and a manifest) that are not in keep."""
    for p in out.iterdir():
        if p.name.endswith(".tmp") or (SHARD_NAME.fullmatch(p.name) and p.name not in keep):
            p.unlink()


def resume_point(out, settings, overwrite):
    """(the old manifest or None, the prefix of its shards that check out) for this --out."""
    path = out / "manifest.json"
    if overwrite:
        clean(out)
    if not path.exists():
        if any(SHARD_NAME.fullmatch(p.name) for p in out.iterdir()):
            raise UserError(f"{out} holds shards but no manifest.json; use another --out or add "
                            f"--overwrite to replace them")
        return None, []
    old = json.loads(path.read_text())
    if old["settings"] != settings:
        diff = [k for k in settings if old["settings"].get(k) != settings[k]]
        raise UserError(f"{out} was prepared with different settings ({', '.join(diff)}); "
                        f"use another --out or add --overwrite to replace it")
    kept = list(itertools.takewhile(lambda e: shard_ok(out, e), old["shards"]))
    if len(kept) < len(old["shards"]):
        print(f"{out}: {len(kept)} of {len(old['shards'])} shards check out; resuming after them")
    return old, kept


def write_manifest(out, manifest):
    with atomic_open(out / "manifest.json") as f:
        f.write((json.dumps(manifest, indent=1) + "\n").encode())


def prepare(args):
    """Stream, tokenise and write the shards (resuming a previous run); return the manifest."""
    out = Path(args.out)
    settings = {"source": source_of(args), "tokenizer": "tiktoken gpt2 encode_ordinary",
                "eot_id": EOT_ID, "eot_placement": "before every document", "dtype": "uint16",
                "val_tokens": args.val_tokens, "shard_tokens": args.shard_tokens,
                "train_tokens": args.train_tokens}
    out.mkdir(parents=True, exist_ok=True)
    old, shards = resume_point(out, settings, args.overwrite)
    if old and old["complete"] and len(shards) == len(old["shards"]):
        print(f"{out} is already prepared ({old['total_tokens']:,} tokens in {len(shards)} shards)")
        return old
    manifest = {"settings": settings, "shards": shards, "complete": False,
                "command": shlex.join(["python", "data/fineweb_edu.py", *args.argv])}
    limit = None if args.train_tokens is None else args.val_tokens + args.train_tokens
    write_manifest(out, manifest)  # settings first, so a rerun can always check them
    written = sum(e["tokens"] for e in shards)
    # where the stream stands: document `doc` has had its first `pos` tokens written
    doc, pos = (shards[-1]["end_doc"], shards[-1]["end_pos"]) if shards else (0, 0)

    def new_buffer():  # the next shard: val first, then train; the last one stops at the limit
        size = args.shard_tokens if shards else args.val_tokens
        return np.empty(size if limit is None else min(size, limit - written), dtype=np.uint16)

    def flush(tokens):
        nonlocal written
        name = f"{'train' if shards else 'val'}_{len(shards):06d}.bin"
        shards.append({"file": name, "tokens": len(tokens), "docs": int((tokens == EOT_ID).sum()),
                       "sha256": write_shard(out / name, tokens), "end_doc": doc, "end_pos": pos})
        written += len(tokens)
        write_manifest(out, manifest)

    buf, fill = new_buffer(), 0
    texts = itertools.islice(documents(settings["source"]), doc, None)  # resume: skip, no encoding
    pool = mp.Pool(args.workers) if args.workers > 1 else None
    docs_tokens = pool.imap(encode, texts, chunksize=16) if pool else map(encode, texts)
    bar = tqdm(total=limit, initial=written, unit="tok", unit_scale=True, desc=str(out))
    try:
        resume_pos = pos
        for doc, toks in enumerate(docs_tokens, start=doc):
            pos, resume_pos = resume_pos, 0
            while pos < len(toks) and written != limit:
                n = min(len(buf) - fill, len(toks) - pos)
                buf[fill:fill + n] = toks[pos:pos + n]
                fill, pos = fill + n, pos + n
                bar.update(n)
                if fill == len(buf):
                    flush(buf)
                    if len(shards) == args.stop_after_shards:
                        return manifest
                    buf, fill = new_buffer(), 0
            bar.set_postfix(docs=f"{doc + 1:,}", refresh=False)
            if written == limit:
                break
        else:  # the source ran out
            if fill:
                flush(buf[:fill])
    finally:
        bar.close()
        if pool:
            pool.terminate()
    return finish(out, manifest, limit)


def finish(out, manifest, limit):
    """Check the totals, write the final manifest and remove stale files."""
    shards = manifest["shards"]
    val, total = shards[0]["tokens"] if shards else 0, sum(e["tokens"] for e in shards)
    if val < manifest["settings"]["val_tokens"]:
        raise UserError(f"the source ran out after {total:,} tokens, before the validation shard "
                        f"(--val-tokens {manifest['settings']['val_tokens']:,}) was full; "
                        f"lower --val-tokens")
    manifest.update(complete=True, source_exhausted=total != limit, val_tokens=val,
                    train_tokens=total - val, total_tokens=total,
                    docs=sum(e["docs"] for e in shards), train_shards=len(shards) - 1)
    write_manifest(out, manifest)
    clean(out, keep={"manifest.json", *(e["file"] for e in shards)})
    print(f"wrote {out}: {val:,} val + {total - val:,} train tokens in {len(shards)} shards, "
          f"{manifest['docs']:,} documents")
    if limit is not None and total < limit:
        print(f"note: the source ran out before --train-tokens {limit - val:,}; "
              f"manifest.json records source_exhausted: true")
    return manifest


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = get_args(argv)
    args.argv = argv
    return prepare(args)


if __name__ == "__main__":
    run_main(main)
