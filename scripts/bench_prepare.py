"""Throughput of data/fineweb_edu.py (tokens/s) against a naive one-process baseline.

All methods run one after another in this one process on the same local file, read by the
same reader (data/sources.py); the table gives tokens/s and the ratio to the naive baseline (one
process, encode and append per document). "read only" streams the texts without encoding:
the floor set by the reader. The preparer's bytes are checked against the baseline's.

    python scripts/bench_prepare.py                      # the 4M-token FineWeb sample
    python scripts/bench_prepare.py --workers 1 2 4 --data-files my.jsonl.gz
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as `python scripts/bench_prepare.py`: import from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from data import fineweb_edu
from data.shards import load_split
from data.sources import records
from errors import run_main
from tokenizer import EOT_ID, get_encoding

SAMPLE = Path(__file__).resolve().parent.parent.parent / "shared/data/fineweb_sample/train.jsonl.gz"


def texts(source):
    return (text for text, _ in records(source))


def read_only(source):
    for _ in texts(source):
        pass


def naive(source):
    enc, tokens = get_encoding(), []
    for text in texts(source):
        tokens.append(EOT_ID)
        tokens.extend(enc.encode_ordinary(text))
    return np.array(tokens, dtype=np.uint16)


def preparer(data_files, workers, tmp):
    out = Path(tmp) / f"w{workers}"
    fineweb_edu.main(["--data-files", *data_files, "--out", str(out), "--val-tokens", "1e5",
                      "--shard-tokens", "1e6", "--train-tokens", "all", "--workers", str(workers)])
    return np.concatenate(load_split(out, "val") + load_split(out, "train"))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-files", nargs="+", default=[str(SAMPLE)])
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = p.parse_args()
    source = fineweb_edu.source_of(argparse.Namespace(data_files=args.data_files,
                                                      text_field="text"))
    next(texts(source)), get_encoding()  # warm up: imports, reader, BPE ranks
    timings, reference = {}, None
    with tempfile.TemporaryDirectory() as tmp:
        runs = {"naive: 1 process, append per doc": lambda: naive(source)}
        for w in args.workers:
            runs[f"data/fineweb_edu.py --workers {w}"] = (
                lambda w=w: preparer(args.data_files, w, tmp))
        runs["read only, no encoding (ceiling)"] = lambda: read_only(source)
        for name, run in runs.items():
            t0 = time.perf_counter()
            tokens = run()
            timings[name] = time.perf_counter() - t0
            if tokens is not None:
                reference = tokens if reference is None else reference
                assert np.array_equal(tokens, reference), f"{name} wrote different tokens"
    n = len(reference)
    base = n / next(iter(timings.values()))
    print(f"\n{n:,} tokens from {' '.join(args.data_files)}")
    print(f"{'method':36s} {'seconds':>8s} {'tokens/s':>10s} {'vs naive':>8s}")
    for name, dt in timings.items():
        print(f"{name:36s} {dt:>8.2f} {n / dt:>10,.0f} {n / dt / base:>7.2f}x")


if __name__ == "__main__":
    run_main(main)
