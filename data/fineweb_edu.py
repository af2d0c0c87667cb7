"""Prepare FineWeb-Edu (or any text dataset) as token shards for train.py.

Streams the Hugging Face dataset (the disk holds only the shards) or reads local files
(data/sources.py), tokenises every document with --tokenizer's `encode_ordinary` (tokenizer.py:
tiktoken gpt2 by default, or any tiktoken / Hugging Face BPE tokenizer), puts its end-of-text or
BOS token (GPT-2: <|endoftext|> = 50256) BEFORE every document, and writes shards in llm.c's .bin
format through data/shards.py (uint16 ids up to 65,536 ids, else uint32): first `val_000000.bin` (the first --val-tokens tokens of the stream),
then `train_000001.bin`, ... of --shard-tokens each (documents run across shard boundaries; the
last one may be short), plus manifest.json. Rerunning the same command resumes after the last
complete shard, byte-identically; Ctrl-C stops at once and a rerun resumes.

A bad record (text null, missing or not a string, invalid UTF-8 or JSON, an empty, truncated or
misnamed file) stops the run with one line naming the file and line (--bad-records=error), or is
dropped, counted and listed in the manifest (--bad-records=skip).

    python data/fineweb_edu.py                                    # 100M val + 2.6B train tokens
    python data/fineweb_edu.py --data-files ../shared/data/fineweb_edu_sample/sample.jsonl \
        --out data/sample --val-tokens 20_000 --shard-tokens 1e5 --train-tokens all
"""
import argparse
import errno
import itertools
import multiprocessing as mp
import os
import re
import shlex
import signal
import sys
from collections import deque
from contextlib import closing, contextmanager
from pathlib import Path

if __package__ in (None, ""):  # run as `python data/fineweb_edu.py`: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from tqdm import tqdm

from atomic import atomic_write_text
from data.shards import LEGACY_TOKENIZER, MANIFEST, MAX_SHARD_TOKENS, manifest_json, \
    read_manifest, scan_shard, shard_bytes, write_shard
from data.sources import fingerprint, hub_revision, records
from errors import UserError, run_main
from tokenizer import DEFAULT_TOKENIZER, GPT2_VOCAB, get_tokenizer

FORMATS = {".json": "json", ".jsonl": "json", ".parquet": "parquet"}
SHARD_NAME = re.compile(r"(val|train)_\d{6}\.bin|manifest\.json")
BAD_RECORDS_LISTED = 100  # the manifest names this many bad records; it counts all of them
CHUNK_DOCS = 64  # documents per task sent to a tokeniser process


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
    p.add_argument("--tokenizer", default=DEFAULT_TOKENIZER,
                   help="tiktoken name (gpt2, cl100k_base, o200k_base, ...), *.tiktoken ranks file, "
                        "tokenizer.json path or Hugging Face hub name (see tokenizer.py)")
    p.add_argument("--val-tokens", type=token_count, default=100_000_000,
                   help="the first tokens of the stream, written as val_000000.bin")
    p.add_argument("--shard-tokens", type=token_count, default=100_000_000,
                   help="tokens per train shard")
    p.add_argument("--train-tokens", type=lambda a: token_count(a, allow_all=True),
                   default=2_600_000_000, help="train tokens to write, or 'all'")
    p.add_argument("--bad-records", choices=("error", "skip"), default="error",
                   help="a record without usable text: stop and name it, or drop and count it")
    p.add_argument("--workers", type=int, default=os.cpu_count(), help="tokeniser processes")
    p.add_argument("--overwrite", action="store_true",
                   help="discard the shards and manifest in --out and start over")
    p.add_argument("--stop-after-shards", type=int, help=argparse.SUPPRESS)  # tests: fake a crash
    args = p.parse_args(argv)
    if args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    for flag in ("val_tokens", "shard_tokens"):  # each is one shard; its header holds an int32
        if getattr(args, flag) > MAX_SHARD_TOKENS:
            raise UserError(f"--{flag.replace('_', '-')} {getattr(args, flag):,} is more than one "
                            f"shard can hold ({MAX_SHARD_TOKENS:,} tokens); give at most that, "
                            f"e.g. 1e8")
    return args


def source_of(args):
    """The source part of the settings: a hub dataset, or local files of one format."""
    if not args.data_files:
        return {"dataset": args.dataset, "name": args.name, "split": "train",
                "text_field": args.text_field}
    files = [str(Path(f).resolve()) for f in args.data_files]
    formats = {FORMATS.get(Path(f.removesuffix(".gz")).suffix) for f in files}
    if len(formats) != 1 or None in formats or any(f.endswith(".parquet.gz") for f in files):
        raise UserError(f"--data-files must all be .json, .jsonl or .parquet files (the JSON ones "
                        f"optionally .gz), of one format; got {' '.join(args.data_files)}")
    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        raise UserError(f"--data-files: {missing[0]} not found")
    return {"data_files": files, "format": formats.pop(), "split": "train",
            "text_field": args.text_field}


def tokenizer_settings(name):
    """The settings' tokenizer fields: name (a file as its absolute path; GPT-2 as manifests
    always named it, so older preparations resume), vocab_sha256, EOT id and shard dtype."""
    tok = get_tokenizer(name)  # loaded here, once: the tokeniser processes fork with it
    if name == DEFAULT_TOKENIZER:
        shown = LEGACY_TOKENIZER
    else:
        shown = str(Path(name).resolve()) if Path(name).exists() else name
    return tok, {"tokenizer": shown, "vocab_sha256": tok.identity()["vocab_sha256"],
                 "eot_id": tok.eot_id, "eot_text": tok.eot_text,
                 "eot_placement": "before every document", "dtype": tok.dtype}


def encode(tokenizer, text):
    """One document's tokens: the EOT/BOS id first, then the text's ordinary tokens."""
    tok = get_tokenizer(tokenizer)
    return np.array([tok.eot_id] + tok.encode_ordinary(text), dtype=tok.dtype)


def encode_chunk(tokenizer, texts):
    """encode each text of a chunk; None (a bad record) stays None."""
    return [None if text is None else encode(tokenizer, text) for text in texts]


def ignore_sigint():
    # Ctrl-C reaches the whole process group. A worker interrupted while it holds the pool's
    # task-queue lock leaves it locked and Pool.terminate() waits forever: only the main
    # process handles Ctrl-C, and terminates the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def tokenized(items, workers, tokenizer):
    """Yield (tokens or None, problem) for each (text or None, problem) of items, in order.

    Tokenises in `workers` processes (forked) with at most 2 * workers chunks of CHUNK_DOCS
    documents in flight, so memory stays bounded whatever the dataset's size; the records
    are read here, in the main process, so a bad record is met in order. Close the generator
    to stop the workers.
    """
    if workers == 1:
        for text, problem in items:
            yield (None if text is None else encode(tokenizer, text)), problem
        return
    pool = mp.Pool(workers, initializer=ignore_sigint)
    try:
        pending = deque()
        while chunk := list(itertools.islice(items, CHUNK_DOCS)):
            texts, problems = zip(*chunk)
            pending.append((pool.apply_async(encode_chunk, (tokenizer, texts)), problems))
            if len(pending) == 2 * workers:
                result, problems = pending.popleft()
                yield from zip(result.get(), problems)
        for result, problems in pending:
            yield from zip(result.get(), problems)
    finally:
        pool.terminate()
        pool.join()


@contextmanager
def writing(path):
    """Turn an OSError while writing path into one line: disk full, or not writable."""
    try:
        yield
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise UserError(f"disk full while writing {path}; free space and rerun the same command "
                            f"(it resumes after the shards already written)") from None
        raise UserError(f"cannot write {path} ({err.strerror or err}); choose a writable --out") from None


def make_out(out):
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder; give a folder")
    with writing(out):
        out.mkdir(parents=True, exist_ok=True)


def write_manifest(out, manifest):
    with writing(out / MANIFEST):
        atomic_write_text(out / MANIFEST, manifest_json(manifest))


def clean(out, keep=()):
    """Remove temp files, and shard files (and a manifest) that are not in keep."""
    with writing(out):
        for p in out.iterdir():
            if p.name.endswith(".tmp") or (SHARD_NAME.fullmatch(p.name) and p.name not in keep):
                p.unlink()


def shard_ok(out, manifest, entry):
    """True if a listed shard has its size and sha256; records its max token id if missing."""
    path = out / entry["file"]
    if not (path.is_file() and path.stat().st_size == shard_bytes(manifest, entry["tokens"])):
        return False
    sha, max_id = scan_shard(path)
    entry.setdefault("max_token_id", max_id)  # manifests written before it was recorded
    return sha == entry["sha256"]


def rerun_command(argv):
    """The command line that finishes or repairs this preparation (without --overwrite)."""
    argv = [a for a in argv if a != "--overwrite"]
    for i, a in enumerate(argv):  # tests' fake crash: --stop-after-shards N
        if a == "--stop-after-shards":
            argv = argv[:i] + argv[i + 2:]
            break
    return shlex.join(["python", "data/fineweb_edu.py", *argv])


def check_source(out, old, now):
    """Stop if the source changed since `old` was written (a note if old did not record it)."""
    was = old.get("source_fingerprint")
    if was is None:
        print(f"note: {out}/{MANIFEST} predates source fingerprints: the source is not checked "
              f"for changes since the shards were written")
    elif "revision" in now and was != now:
        raise UserError(f"the hub dataset is now at revision {now['revision']}, but {out} was "
                        f"prepared from revision {was.get('revision')}; use another --out or add "
                        f"--overwrite to start over from the new revision")
    elif was != now:
        files = old["settings"]["source"]["data_files"]
        changed = next(f for f, a, b in zip(files, was["files"], now["files"]) if a != b)
        raise UserError(f"{changed} changed since {out} was prepared from it (size or content); "
                        f"restore it, or use another --out or add --overwrite to start over")


def resume_point(out, settings, now, overwrite):
    """(the old manifest or None, the prefix of its shards that check out) for this --out."""
    if overwrite:
        clean(out)
    old = read_manifest(out, fix="use another --out or add --overwrite to start over")
    if old is None:
        if any(SHARD_NAME.fullmatch(p.name) for p in out.iterdir()):
            raise UserError(f"{out} holds shards but no manifest.json; use another --out or add "
                            f"--overwrite to replace them")
        return None, []
    if not old["shards"]:  # a start that failed before any shard (offline, too little data)
        return None, []
    if old["settings"].get("tokenizer") == settings["tokenizer"] == LEGACY_TOKENIZER:
        old["settings"] = {**settings, **old["settings"]}  # GPT-2 before vocab_sha256, eot_text
    if old["settings"] != settings:
        diff = [k for k in settings if old["settings"].get(k) != settings[k]]
        raise UserError(f"{out} was prepared with different settings ({', '.join(diff)}); "
                        f"use another --out or add --overwrite to replace it")
    check_source(out, old, now)
    kept = list(itertools.takewhile(lambda e: shard_ok(out, old, e), old["shards"]))
    if len(kept) < len(old["shards"]):
        print(f"{out}: {len(kept)} of {len(old['shards'])} shards check out; resuming after them")
    return old, kept


def prepare(args):
    """Stream, tokenise and write the shards (resuming a previous run); return the manifest."""
    out = Path(args.out)
    source = source_of(args)
    tok, tokenizer = tokenizer_settings(args.tokenizer)
    settings = {"source": source, **tokenizer, "val_tokens": args.val_tokens,
                "shard_tokens": args.shard_tokens, "train_tokens": args.train_tokens}
    revision = None if "data_files" in source else hub_revision(source["dataset"])
    now = fingerprint(source, revision)
    make_out(out)
    old, shards = resume_point(out, settings, now, args.overwrite)
    if old and old["complete"] and len(shards) == len(old["shards"]):
        old.setdefault("n_vocab", GPT2_VOCAB)  # older manifests are GPT-2's
        if manifest_json(old) != (out / MANIFEST).read_text():  # record what the check added
            write_manifest(out, old)
        print(f"{out} is already prepared ({old['total_tokens']:,} tokens in {len(shards)} shards)")
        return old
    source_records = records(source, revision)  # a hub dataset is opened now: no network stops here
    doc, pos = (shards[-1]["end_doc"], shards[-1]["end_pos"]) if shards else (0, 0)
    listed = [r for r in (old or {}).get("bad_records", {}).get("listed", []) if r["record"] < doc]
    bad = {"policy": args.bad_records, "count": sum(e.get("bad_records", 0) for e in shards),
           "listed": listed}
    manifest = {"settings": settings, "shards": shards, "complete": False,
                "command": rerun_command(args.argv),
                "n_vocab": tok.n_vocab, "source_fingerprint": now, "bad_records": bad}
    limit = None if args.train_tokens is None else args.val_tokens + args.train_tokens
    write_manifest(out, manifest)  # settings first, so a rerun can always check them
    written = sum(e["tokens"] for e in shards)
    bad_in_shard = 0

    def new_buffer():  # the next shard: val first, then train; the last one stops at the limit
        size = args.shard_tokens if shards else args.val_tokens
        size = size if limit is None else min(size, limit - written)
        try:
            return np.empty(size, dtype=tok.dtype)
        except MemoryError:
            raise UserError(f"not enough memory for a shard of {size:,} tokens ({shard_bytes(manifest, size):,} "
                            f"bytes); lower --shard-tokens or --val-tokens") from None

    def flush(tokens):
        nonlocal written, bad_in_shard
        name = f"{'train' if shards else 'val'}_{len(shards):06d}.bin"
        with writing(out / name):
            sha = write_shard(out / name, tokens)
        shards.append({"file": name, "tokens": len(tokens), "docs": int((tokens == tok.eot_id).sum()),
                       "max_token_id": int(tokens.max()), "bad_records": bad_in_shard,
                       "sha256": sha, "end_doc": doc, "end_pos": pos})
        written, bad_in_shard = written + len(tokens), 0
        write_manifest(out, manifest)

    def skip_or_stop(problem):
        nonlocal bad_in_shard
        if args.bad_records == "error":
            raise UserError(f"bad record: {problem}; fix or remove it, or rerun with "
                            f"--bad-records=skip to drop and count such records")
        bad["count"] += 1
        bad_in_shard += 1
        if len(bad["listed"]) < BAD_RECORDS_LISTED:
            bad["listed"].append({"record": doc, "where": problem})

    buf, fill = new_buffer(), 0
    items = itertools.islice(source_records, doc, None)  # resume: skip, no encoding
    with closing(tokenized(items, args.workers, args.tokenizer)) as stream, \
            tqdm(total=limit, initial=written, unit="tok", unit_scale=True, desc=str(out)) as bar:
        resume_pos = pos
        for doc, (toks, problem) in enumerate(stream, start=doc):
            pos, resume_pos = resume_pos, 0
            if problem:
                skip_or_stop(problem)
                continue
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
            if not shards:
                raise ran_out(fill, args.val_tokens, bad)
            if fill:
                flush(buf[:fill])
    return finish(out, manifest, limit)


def ran_out(tokens, val_tokens, bad):
    """The error for a source shorter than the validation shard (nothing is written)."""
    skipped = f"; {bad['count']:,} bad records were skipped" if bad["count"] else ""
    if tokens == 0:
        return UserError(f"the source holds no usable documents{skipped}" +
                         (f", the first: {bad['listed'][0]['where']}" if bad["listed"] else ""))
    return UserError(f"the source ran out after {tokens:,} tokens, before the validation shard "
                     f"(--val-tokens {val_tokens:,}) was full{skipped}; lower --val-tokens to at "
                     f"most {tokens:,}")


def finish(out, manifest, limit):
    """Check the totals, write the final manifest and remove stale files."""
    shards, bad = manifest["shards"], manifest["bad_records"]
    val, total = shards[0]["tokens"], sum(e["tokens"] for e in shards)
    manifest.update(complete=True, source_exhausted=total != limit, val_tokens=val,
                    train_tokens=total - val, total_tokens=total,
                    docs=sum(e["docs"] for e in shards), train_shards=len(shards) - 1)
    write_manifest(out, manifest)
    clean(out, keep={MANIFEST, *(e["file"] for e in shards)})
    print(f"wrote {out}: {val:,} val + {total - val:,} train tokens in {len(shards)} shards, "
          f"{manifest['docs']:,} documents")
    if bad["count"]:
        print(f"skipped {bad['count']:,} bad records (--bad-records=skip); manifest.json "
              f"bad_records lists the first {len(bad['listed'])}")
    if limit is not None and total < limit:
        print(f"note: the source ran out before --train-tokens {limit - val:,}; "
              f"manifest.json records source_exhausted: true")
    return manifest


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = get_args(argv)
    args.argv = argv
    try:
        return prepare(args)
    except KeyboardInterrupt:  # the workers are stopped and no temp file is left: say how to go on
        print("\ninterrupted; rerun the same command to resume after the shards already written",
              file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    run_main(main)
