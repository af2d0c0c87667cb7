"""Gather the figures of one scripts/gpu_check.sh run into a single JSON file, and judge it.

Reads, from the work folder gpu_check.sh filled: phases.tsv (phase, exit code, seconds, budget),
bench_embedding.json, bench_train.json, and per train.py phase <phase>.stdout / <phase>.stderr
(TORCH_LOGS=recompiles) and the runs' log.jsonl / summary.json under runs/ ("gloo": 2 processes,
"nccl": 1 process; each trained to the first of --resume-steps, then resumed to the second).

Checks (exit code 1 if one fails): every phase exited 0 (a phase stopped by its budget is named
as out of time); the phases took under --max-seconds; each run finished at its last step after a
resume, and its loss fell by at least --min-loss-drop (mean of its first vs last few steps);
no step after a launch's first compiled anything ("compile_step" in log.jsonl) and bench_train
saw no recompile in its timed steps. Targets (reported, not checked): kronecker/bpe step time
<= 1.005 and bpe MFU >= 40% at 124M. Speed figures leave out the steps that compiled.

    python scripts/gpu_check_summary.py WORK_DIR OUT   # OUT: a .json path, or a folder for
                                                       # <date>_<device>.json
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
from devices import peak_flops
from errors import run_main
from eval.runs import read_json

RECOMPILE = "Recompiling function"
RUNS = {"gloo": ("gloo_train", "gloo_resume"), "nccl": ("nccl_train", "nccl_resume")}
TARGET_RATIO, TARGET_MFU = 1.005, 0.40


def read_text(path):
    return path.read_text(errors="replace") if path.is_file() else ""


def phases(work):
    """{phase: {exit_code, seconds, budget_s, out_of_time}} in the order they ran."""
    rows = [line.split("\t") for line in read_text(work / "phases.tsv").splitlines()]
    return {name: dict(exit_code=int(rc), seconds=float(sec), budget_s=float(budget),
                       out_of_time=int(rc) in (124, 137))
            for name, rc, sec, budget in rows}


def recompiles(stderr):
    """(number of "Recompiling function" lines, the first recompile log lines) of one launch."""
    logged = [line.strip() for line in stderr.splitlines() if "__recompiles" in line or RECOMPILE in line]
    return sum(RECOMPILE in line for line in logged), logged[:20]


def run_figures(run_dir, first_step, final_step):
    """Losses, compile steps and steady speed of one train.py run (a launch and its resume)."""
    by_step = {}
    for line in read_text(run_dir / "log.jsonl").splitlines():
        record = json.loads(line)
        key = (record["step"], "val_loss" in record)
        by_step[key] = {**by_step.get(key, {}), **record}  # later lines for a step win
    train = [r for (s, is_eval), r in sorted(by_step.items()) if not is_eval]
    if not train:
        return None
    n = max(1, min(5, len(train) // 3))
    steady = [r for r in train if not r.get("compile_step")]
    compile_steps = [r["step"] for r in train if r.get("compile_step")]
    summary = read_json(run_dir / "summary.json", missing_ok=True) or {}
    return dict(
        steps=len(train), first_loss=statistics.mean(r["train_loss"] for r in train[:n]),
        last_loss=statistics.mean(r["train_loss"] for r in train[-n:]),
        val_loss={s: r["val_loss"] for (s, is_eval), r in sorted(by_step.items()) if is_eval},
        compile_steps=compile_steps,
        recompiled_after_warmup=[s for s in compile_steps if s not in (1, first_step + 1)],
        steady_steps=len(steady),
        step_ms=statistics.median(r["step_ms"] for r in steady) if steady else None,
        tok_per_s=statistics.median(r["tok_per_s"] for r in steady) if steady else None,
        mfu=statistics.median(r["mfu"] for r in steady) if steady and steady[0]["mfu"] is not None else None,
        finished_at_last_step=bool(summary.get("finished")) and summary.get("final_step") == final_step)


def bench_train_figures(bench):
    """kronecker/bpe ratio, bpe MFU and recompiles of the timed steps, from bench_train.json."""
    if not bench:
        return None
    rows = {r["arm"]: r for r in bench["rows"]}
    bpe, kron = rows.get("bpe", {}), rows.get("kronecker", {})
    return dict(bpe_tok_per_s=bpe.get("tokens_per_s"), kronecker_tok_per_s=kron.get("tokens_per_s"),
                kronecker_vs_bpe=kron.get("vs_bpe"), bpe_mfu=bpe.get("mfu"), kronecker_mfu=kron.get("mfu"),
                peak_flops=bench.get("peak_flops"),
                recompiles_during_timed_steps=sum(r.get("recompiles_during_timed_steps", 0) for r in rows.values()))


def device_name():
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def output_path(out, device, date):
    out = Path(out)
    if out.suffix == ".json":
        return out
    slug = re.sub(r"[^a-z0-9]+", "-", device.lower()).strip("-")
    return out / f"{date}_{slug}.json"


def judge(ran, runs, bench, args):
    """(checks, targets): checks decide the exit code; targets are the issue's speed goals."""
    checks = dict(
        all_phases_ok=bool(ran) and all(v["exit_code"] == 0 for v in ran.values()),
        under_time=sum(v["seconds"] for v in ran.values()) < args.max_seconds,
        runs_resumed_and_finished=all(r is not None and r["finished_at_last_step"] for r in runs.values()),
        loss_falls=all(r is not None and r["first_loss"] - r["last_loss"] >= args.min_loss_drop
                       for r in runs.values()),
        no_recompiles_after_warmup=all(r is not None and not r["recompiled_after_warmup"] for r in runs.values())
        and bench is not None and bench["recompiles_during_timed_steps"] == 0)
    ratio, mfu = (bench or {}).get("kronecker_vs_bpe"), (bench or {}).get("bpe_mfu")
    targets = {f"kronecker_vs_bpe_le_{TARGET_RATIO}": ratio is not None and ratio <= TARGET_RATIO,
               f"bpe_mfu_ge_{TARGET_MFU:.0%}": mfu is not None and mfu >= TARGET_MFU}
    return checks, targets


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("work", type=Path)
    p.add_argument("out")
    p.add_argument("--mode", default="gpu", choices=("gpu", "cpu-tiny"))
    p.add_argument("--min-loss-drop", type=float, default=1.0)
    p.add_argument("--max-seconds", type=float, default=480, help="the phases' total (8 minutes on a GPU)")
    p.add_argument("--resume-steps", type=int, nargs=2, default=(20, 30), metavar=("FIRST", "FINAL"))
    args = p.parse_args(argv)
    date, device = datetime.date.today().isoformat(), device_name()
    ran = phases(args.work)
    first, final = args.resume_steps
    runs = {name: run_figures(args.work / "runs" / name, first, final) for name in RUNS}
    recompile_logs = {}
    for name, launches in RUNS.items():
        for phase in launches:
            count, lines = recompiles(read_text(args.work / f"{phase}.stderr"))
            recompile_logs[phase] = dict(count=count, lines=lines)
    bench = bench_train_figures(read_json(args.work / "bench_train.json", missing_ok=True))
    checks, targets = judge(ran, runs, bench, args)
    result = dict(date=date, device=device, mode=args.mode, torch=torch.__version__, cuda=torch.version.cuda,
                  device_peak_flops=peak_flops("cuda") if torch.cuda.is_available() else None,
                  checks=checks, targets=targets, phases=ran, total_seconds=sum(v["seconds"] for v in ran.values()),
                  out_of_time=[name for name, v in ran.items() if v["out_of_time"]],
                  bench_train=bench, runs=runs, recompiles=recompile_logs,
                  bench_embedding=read_json(args.work / "bench_embedding.json", missing_ok=True),
                  bench_train_rows=read_json(args.work / "bench_train.json", missing_ok=True))
    path = output_path(args.out, device, date)
    atomic_write_json(path, result)
    print(f"gpu_check ({args.mode}) on {device}: "
          + ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in checks.items()))
    for name, v in ran.items():
        print(f"  {name:16s} {v['seconds']:5.0f} s of {v['budget_s']:4.0f} s"
              + ("  OUT OF TIME" if v["out_of_time"] else "" if v["exit_code"] == 0 else f"  exit {v['exit_code']}"))
    print(f"  total            {result['total_seconds']:5.0f} s (limit {args.max_seconds:.0f} s)")
    if bench:
        print(f"bench_train: kronecker/bpe {bench['kronecker_vs_bpe']}, bpe mfu {bench['bpe_mfu']}; targets: "
              + ", ".join(f"{k} {'met' if v else 'missed'}" for k, v in targets.items()))
    for name, r in runs.items():
        if r:
            print(f"train.py {name}: loss {r['first_loss']:.3f} -> {r['last_loss']:.3f} over {r['steps']} steps, "
                  f"compile steps {r['compile_steps']}, steady {r['tok_per_s'] or 0:,.0f} tok/s")
    print(f"figures: {path}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(run_main(main))
