"""How long one train.py checkpoint takes to write and to read on a file system.

Loads a checkpoint with train.py's load_checkpoint onto --device (CUDA by default where present,
so the write includes the copy off the GPU, as in training), then writes it with train.py's
save_checkpoint (torch.save into a temp file, fsync, rename: checkpoint.py, atomic.py) into a
fresh folder under --dir, --repeats times, and reads each copy back. Reports the file's bytes and
the median seconds and MB/s of writing and reading (reading right after writing: the page cache
is warm, so a cold read on a shared file system is slower). The folder and its copies are this
script's own and are removed at the end; the checkpoint itself is only read.

    python scripts/bench_checkpoint.py out/kronecker_s1337/ckpt_000250.pt --json ckpt.json
    python scripts/bench_checkpoint.py CKPT --dir /scratch/$USER   # the file system runs write to
"""
import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import bench_common  # noqa: F401 (first: it puts the repo root on sys.path)
from bench_common import synchronize

from atomic import atomic_write_json
from checkpoint import load_checkpoint, save_checkpoint
from devices import resolve_device
from errors import UserError, run_main

MB = 1e6  # decimal, as file systems and disks quote rates


def measure(path, folder, device, repeats):
    """{bytes, load_s, write_s, read_s, write_mb_per_s, read_mb_per_s}: medians over repeats."""
    t0 = time.perf_counter()
    state = load_checkpoint(path, map_location=device)
    synchronize(device)
    load_s = time.perf_counter() - t0
    writes, reads = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        copy = save_checkpoint(state, folder)
        writes.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        load_checkpoint(copy)
        reads.append(time.perf_counter() - t0)
        copy.unlink()
    size = Path(path).stat().st_size
    write_s, read_s = statistics.median(writes), statistics.median(reads)
    return dict(checkpoint=str(path), bytes=size, device=device, repeats=repeats, load_s=load_s,
                write_s=write_s, read_s=read_s, write_mb_per_s=size / MB / write_s, read_mb_per_s=size / MB / read_s)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--dir", type=Path, help="where the copies are written (default: beside the checkpoint)")
    p.add_argument("--device", default="auto", help="load the state onto this device first (auto: cuda if present)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--json", help="also write the figures here")
    args = p.parse_args(argv)
    if args.repeats < 1:
        raise UserError(f"--repeats {args.repeats}: give 1 or more")
    parent = args.dir or args.checkpoint.parent
    if not parent.is_dir():
        raise UserError(f"--dir {parent} is not a folder; give an existing folder to write the copies in")
    folder = Path(tempfile.mkdtemp(prefix="bench_checkpoint.", dir=parent))
    try:
        result = measure(args.checkpoint, folder, resolve_device(args.device), args.repeats)
    finally:
        shutil.rmtree(folder)
    print(f"checkpoint {args.checkpoint}: {result['bytes'] / MB:,.0f} MB; load onto {result['device']} "
          f"{result['load_s']:.2f} s; write {result['write_s']:.2f} s ({result['write_mb_per_s']:,.0f} MB/s, "
          f"fsync included); read back {result['read_s']:.2f} s ({result['read_mb_per_s']:,.0f} MB/s, warm cache)")
    if args.json:
        atomic_write_json(args.json, result)
    return result


if __name__ == "__main__":
    run_main(main)
