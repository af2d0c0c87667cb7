"""Gather the figures of one scripts/gpu_check.sh run into a single JSON file, and judge it.

Reads, from the work folder gpu_check.sh filled: bench_embedding.json, bench_train.json,
phases.tsv (phase, exit code, seconds), train.stderr (TORCH_LOGS=recompiles output) and the
train run's log.jsonl / summary.json. Checks: every phase exited 0, the training loss fell by at
least --min-loss-drop, and torch.compile recompiled at most --max-recompiles times in the whole
run (a recompile per step would show as hundreds). Prints the verdict; exit code 1 if a check fails.

    python scripts/gpu_check_summary.py WORK_DIR OUT   # OUT: a .json path, or a folder for
                                                       # gpu_check_<date>_<device>.json
"""
import argparse
import datetime
import json
import re
import statistics
import sys
from pathlib import Path

import bench_common  # noqa: F401 (first: it puts the repo root on sys.path)

import torch

from atomic import atomic_write_json
from errors import run_main

RECOMPILE = "Recompiling function"


def read_json(path):
    return json.loads(path.read_text()) if path.is_file() else None


def phases(work):
    path = work / "phases.tsv"
    rows = [line.split("\t") for line in path.read_text().splitlines()] if path.is_file() else []
    return {name: dict(exit_code=int(rc), seconds=float(sec)) for name, rc, sec in rows}


def recompiles(work):
    path = work / "train.stderr"
    lines = path.read_text(errors="replace").splitlines() if path.is_file() else []
    logged = [line.strip() for line in lines if "__recompiles" in line or RECOMPILE in line]
    return sum(RECOMPILE in line for line in logged), logged[:40]


def train_figures(run_dir, skip_steps=10):
    """Losses and speed of the train.py run; speed medians skip the first (compiling) steps."""
    path = run_dir / "log.jsonl"
    if not path.is_file():
        return None
    by_step = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        by_step.setdefault(record["step"], {}).update(record)  # later lines for a step win
    train = [r for _, r in sorted(by_step.items()) if "train_loss" in r]
    steady = train[skip_steps:] or train
    first, last = train[:10], train[-10:]
    return dict(
        steps=len(train), first_loss=statistics.mean(r["train_loss"] for r in first),
        last_loss=statistics.mean(r["train_loss"] for r in last),
        val_loss={s: r["val_loss"] for s, r in sorted(by_step.items()) if "val_loss" in r},
        step_ms=statistics.median(r["step_ms"] for r in steady),
        tok_per_s=statistics.median(r["tok_per_s"] for r in steady),
        mfu=statistics.median(r["mfu"] for r in steady),
        summary=read_json(run_dir / "summary.json"))


def device_name():
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def output_path(out, device, date):
    out = Path(out)
    if out.suffix == ".json":
        return out
    slug = re.sub(r"[^a-z0-9]+", "-", device.lower()).strip("-")
    return out / f"gpu_check_{date}_{slug}.json"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("work", type=Path)
    p.add_argument("out")
    p.add_argument("--run-name", default="gpu_check")
    p.add_argument("--min-loss-drop", type=float, default=1.0)
    p.add_argument("--max-recompiles", type=int, default=4, help="eval mode and a short last eval batch may each add one")
    args = p.parse_args(argv)
    date, device = datetime.date.today().isoformat(), device_name()
    ran = phases(args.work)
    n_recompiles, recompile_log = recompiles(args.work)
    train = train_figures(args.work / "runs" / args.run_name)
    checks = dict(
        all_phases_ok=bool(ran) and all(v["exit_code"] == 0 for v in ran.values()),
        loss_falls=train is not None and train["first_loss"] - train["last_loss"] >= args.min_loss_drop,
        no_recompiles_per_step=train is not None and n_recompiles <= args.max_recompiles,
        under_8_minutes=sum(v["seconds"] for v in ran.values()) < 480)
    result = dict(date=date, device=device, torch=torch.__version__, checks=checks, phases=ran,
                  train=train, recompiles=n_recompiles, recompile_log=recompile_log,
                  bench_embedding=read_json(args.work / "bench_embedding.json"),
                  bench_train=read_json(args.work / "bench_train.json"))
    path = output_path(args.out, device, date)
    atomic_write_json(path, result)
    print(f"gpu_check on {device}: " + ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in checks.items()))
    if train:
        print(f"train.py: loss {train['first_loss']:.3f} -> {train['last_loss']:.3f} over {train['steps']} steps, "
              f"{train['tok_per_s']:,.0f} tok/s, mfu {train['mfu']:.1%}, {n_recompiles} recompiles")
    print(f"figures: {path}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(run_main(main))
