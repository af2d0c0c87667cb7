"""Gather one scripts/gpu_check.sh run into a single JSON file, and judge it.

Reads the work folder gpu_check.sh filled: phases.tsv (phase, exit code or "skipped", seconds,
budget), nvidia-smi.txt, the bench JSONs (layer, ratio_124m, paper_shape, microbatch: of
bench_embedding.py / bench_train.py; checkpoint_io: bench_checkpoint.py), the NCCL probe's
nccl_{plain,hosts}.rank<R>.json, and the train.py runs under runs/ (a: 30 steps; b: 20, then
resumed to 30; pair: 2 processes, 10 steps; on a GPU) with each launch's stderr
(TORCH_LOGS=recompiles). What a phase did not leave is reported as missing.

Checks (exit code 1 if one fails; each only for the phases that were run): every phase ran
(none skipped for want of time) and exited 0; the phases took at most --deadline seconds; the
runs finished at their last step, b through its resume; a's and b's loss fell by --min-loss-drop; no
step after a launch's first compiled anything and the benches recompiled nothing in timed steps;
a and b agree on steps 1..B (determinism), b's resumed steps on a's (resume) within
--tolerance nats, and the 2-process run on a's steps within --pair-tolerance. Targets (issue 23,
reported, not checked): kronecker/bpe step time <= 1.005 at 124M in every mode; the layer's
fwd+bwd <= nn.Embedding's at the training shape; bit-identical layer gradients on a repeat; the
paper's overhead claim (kronecker/bpe <= 1.0024 at V 131,072); bpe MFU >= 40%. Also: an 8-GPU
estimate from the measured 124M step and the gradient all-reduce's volume.

    python scripts/gpu_check_summary.py WORK_DIR OUT   # OUT: a .json path, or a folder for
                                                       # <date>_<device>.json
"""
import argparse
import datetime
import json
import platform
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
TARGET_RATIO, TARGET_MFU = 1.005, 0.40
PAPER_OVERHEAD = 1.0024  # the paper's 0.01-0.24% train-step overhead, its upper end
# 8-GPU estimate: NCCL all-reduce bus bandwidth over NVLink 4 (H100/H200 SXM, 8 GPUs). NVIDIA's
# nccl-tests report about 450 GB/s for large messages; 360 (80%) is our assumption, not a measurement.
ASSUMED_BUSBW = 360e9
DDP_BUCKET_BYTES = 25 * 2**20  # DDP's default bucket_cap_mb: the last bucket's all-reduce is exposed
TRAIN_PHASES = ("train_a", "train_b", "resume_b")
RUN_TOKENS = 4768 * 2**19  # the paper's 124M run: 2.5B tokens


def read_text(path):
    return path.read_text(errors="replace") if path.is_file() else ""


def phases(work):
    """{phase: {exit_code (None if skipped), seconds, budget_s, out_of_time, skipped}} in run order."""
    out = {}
    for line in read_text(work / "phases.tsv").splitlines():
        name, rc, seconds, budget = line.split("\t")
        skipped = rc == "skipped"
        out[name] = dict(exit_code=None if skipped else int(rc), seconds=float(seconds), budget_s=float(budget),
                         out_of_time=not skipped and int(rc) in (124, 137), skipped=skipped)
    return out


def recompiles(stderr):
    """(number of "Recompiling function" lines, the first recompile log lines) of one launch."""
    logged = [line.strip() for line in stderr.splitlines() if "__recompiles" in line or RECOMPILE in line]
    return sum(RECOMPILE in line for line in logged), logged[:20]


def read_log(run_dir):
    """({step: train record}, {step: eval record}) of a run's log.jsonl; later lines win."""
    train, evals = {}, {}
    for line in read_text(run_dir / "log.jsonl").splitlines():
        record = json.loads(line)
        target = evals if "val_loss" in record else train
        target[record["step"]] = {**target.get(record["step"], {}), **record}
    return train, evals


def run_figures(run_dir, final_step, launch_starts):
    """Losses, compile steps, steady speed and config of one train.py run (all its launches);
    launch_starts: the step each launch began at (its first step may compile)."""
    train, evals = read_log(run_dir)
    if not train:
        return None
    steps = sorted(train)
    n = max(1, min(5, len(steps) // 3))
    steady = [train[s] for s in steps if not train[s].get("compile_step")]
    compile_steps = [s for s in steps if train[s].get("compile_step")]
    summary = read_json(run_dir / "summary.json", missing_ok=True) or {}
    config = read_json(run_dir / "config.json", missing_ok=True) or {}
    def median(key):  # None where no steady step logged it (mfu is null off the peak table)
        values = [r[key] for r in steady if r.get(key) is not None]
        return statistics.median(values) if values else None
    return dict(
        steps=len(steps), first_loss=statistics.mean(train[s]["train_loss"] for s in steps[:n]),
        last_loss=statistics.mean(train[s]["train_loss"] for s in steps[-n:]),
        val_loss={s: r["val_loss"] for s, r in sorted(evals.items())}, compile_steps=compile_steps,
        recompiled_after_warmup=[s for s in compile_steps if s - 1 not in launch_starts],
        steady_steps=len(steady), step_ms=median("step_ms"), tok_per_s=median("tok_per_s"), mfu=median("mfu"),
        grad_norm_groups={k: median(k) for k in ("grad_norm_input", "grad_norm_head", "grad_norm_body")
                          if steady and k in steady[0]},
        world_size=config.get("world_size"), dist_backend=config.get("dist_backend"),
        nccl_version=config.get("nccl_version"),
        finished_at_last_step=bool(summary.get("finished")) and summary.get("final_step") == final_step)


def compare(mine, theirs, steps, tolerance):
    """Train losses of two runs on `steps`: max |difference|, whether bit-identical, within tolerance."""
    common = [s for s in steps if s in mine and s in theirs]
    diffs = [abs(mine[s]["train_loss"] - theirs[s]["train_loss"]) for s in common]
    grad = [abs(mine[s]["grad_norm"] / theirs[s]["grad_norm"] - 1) for s in common if theirs[s]["grad_norm"]]
    return dict(steps=[steps[0], steps[-1]], compared=len(common), missing=[s for s in steps if s not in common],
                max_abs_loss_diff=max(diffs) if diffs else None, bit_identical=bool(diffs) and max(diffs) == 0.0
                and len(common) == len(steps), max_rel_grad_norm_diff=max(grad) if grad else None,
                tolerance=tolerance, ok=bool(diffs) and len(common) == len(steps) and max(diffs) <= tolerance)


def train_section(work, a_steps, b_steps, pair_steps, args):
    """The train.py runs: figures, determinism (a vs b), resume (b's resumed steps vs a), the
    2-process run vs a, recompiles per launch, and the checkpoint's write and read times."""
    runs_dir = work / "runs"
    runs = dict(a=run_figures(runs_dir / "a", a_steps, {0}), b=run_figures(runs_dir / "b", a_steps, {0, b_steps}),
                pair=run_figures(runs_dir / "pair", pair_steps, {0}))
    a, b, pair = (read_log(runs_dir / name)[0] for name in ("a", "b", "pair"))
    return dict(
        runs=runs,
        determinism=compare(b, a, list(range(1, b_steps + 1)), args.tolerance) if a and b else None,
        resume=compare(b, a, list(range(b_steps + 1, a_steps + 1)), args.tolerance) if a and b else None,
        two_process_vs_one=compare(pair, a, list(range(1, pair_steps + 1)), args.pair_tolerance) if a and pair else None,
        recompiles={p: dict(zip(("count", "lines"), recompiles(read_text(work / f"{p}.stderr"))))
                    for p in (*TRAIN_PHASES, "two_process") if (work / f"{p}.stderr").is_file()},
        checkpoint_io=read_json(work / "checkpoint_io.json", missing_ok=True))


def probe_result(work, name):
    """The NCCL probe's answer of one launch (rank 0's, else rank 1's), or None."""
    for rank in (0, 1):
        result = read_json(work / f"{name}.rank{rank}.json", missing_ok=True)
        if result:
            return result
    return None


def two_process_section(work, pair):
    """Which backend the 2-process phase used, and why: the NCCL probe's answers."""
    plain, hosts = probe_result(work, "nccl_plain"), probe_result(work, "nccl_hosts")
    said = lambda r: "no answer (see nccl_probe.stderr)" if r is None else "ran" if r["ok"] else r["error"]  # noqa: E731
    backend = (hosts or plain or {}).get("backend", "nccl")  # gloo in the --cpu-tiny rehearsal
    if hosts and hosts["ok"]:
        reason = (f"{backend} with 2 ranks of one host on one device: {said(plain)}; as two hosts (NCCL_HOSTID, "
                  f"sockets on lo) it ran, so the 2-process train.py phase used {backend} that way")
    else:
        reason = (f"{backend} could not run 2 ranks on one device (plain: {said(plain)}; as two hosts: "
                  f"{said(hosts)}), so the 2-process train.py phase used gloo (with CUDA tensors on a GPU)")
    return dict(backend=(pair or {}).get("dist_backend"), world_size=(pair or {}).get("world_size"),
                reason=reason, nccl_plain=plain, nccl_two_hosts=hosts)


def bench_rows(work, name):
    return (read_json(work / f"{name}.json", missing_ok=True) or {}).get("rows")


def ratios(rows):
    """{label: kronecker/bpe step time} of a bench_train run's Kronecker rows."""
    return {r["label"]: r["vs_bpe"] for r in rows or [] if r["kronecker_mode"] and r["vs_bpe"]}


def layer_section(work):
    """bench_embedding's rows per shape: time vs nn.Embedding, memory, repeat-identical gradient."""
    results = (read_json(work / "layer.json", missing_ok=True) or {}).get("results") or []
    keys = ("ms", "vs_embedding", "peak_mb", "params_mb", "buffers_mb", "repeat_identical_grad", "skipped")
    return {res["shape"]: dict(tokens=res["batch"] * res["seq"],
                               modes={r["mode"]: {k: r[k] for k in keys if k in r} for r in res["rows"]})
            for res in results}


def estimate_8gpu(rows, block_size, busbw):
    """Per arm of ratio_124m: its measured step (micro-batch 64 x 1024 tokens on a GPU) is one
    rank's step of the 8-GPU 124M run (2**19 tokens = 8 x 64 x 1024, one micro-step); add the
    all-reduce of the float32 gradient (ring: 2 (n - 1) / n of its bytes per GPU) at the assumed
    bus bandwidth, exposed in full (no overlap) or only its last DDP bucket (full overlap with the
    backward). Hours: the paper's 2.5B tokens (4,768 steps of 2**19) at those rates."""
    out = {}
    for r in rows or []:
        grad_bytes = 4 * r["param_counts"]["total"]
        comm_s = 2 * 7 / 8 * grad_bytes / busbw
        last_bucket_s = 2 * 7 / 8 * min(grad_bytes, DDP_BUCKET_BYTES) / busbw
        step_s = r["step_ms"] / 1000
        tokens = 8 * r["batch_size"] * block_size
        best, worst = step_s + last_bucket_s, step_s + comm_s
        out[r["label"]] = dict(step_s_one_gpu=step_s, allreduce_bytes=grad_bytes, allreduce_s=comm_s,
                               step_s_range=[best, worst], tok_per_s_range=[tokens / worst, tokens / best],
                               run_hours_range=[RUN_TOKENS * best / tokens / 3600, RUN_TOKENS * worst / tokens / 3600])
    return dict(assumed_busbw_gb_per_s=busbw / 1e9, gpus=8, arms=out,
                note="compute measured on one GPU; communication from the gradient bytes and an assumed "
                     "NVLink bus bandwidth (not measured here: one GPU)")


def environment(work):
    """Where this ran: device, driver, torch, CUDA, cuDNN, NCCL and Python versions."""
    cuda = torch.cuda.is_available()
    return dict(device=torch.cuda.get_device_name(0) if cuda else "cpu",
                nvidia_smi=read_text(work / "nvidia-smi.txt").strip() or None,
                torch=torch.__version__, cuda=torch.version.cuda,
                cudnn=torch.backends.cudnn.version() if cuda else None,
                nccl=".".join(map(str, torch.cuda.nccl.version())) if cuda else None,
                python=platform.python_version(), device_peak_flops=peak_flops("cuda") if cuda else None)


def output_path(out, device, date):
    out = Path(out)
    if out.suffix == ".json":
        return out
    slug = re.sub(r"[^a-z0-9]+", "-", device.lower()).strip("-")
    return out / f"{date}_{slug}.json"


def judge(ran, result, args):
    """(checks, targets): checks decide the exit code, each only where its phases ran; targets are
    issue 23's speed and determinism goals, reported."""
    train, bench_phases = result["train"], ("layer", "ratio_124m", "paper_shape", "microbatch")
    checks = dict(all_phases_ran=not any(v["skipped"] for v in ran.values()),
                  all_phases_ok=bool(ran) and all(v["exit_code"] == 0 for v in ran.values() if not v["skipped"]),
                  under_deadline=sum(v["seconds"] for v in ran.values()) <= args.deadline)
    runs = {name: train["runs"][name] for name, phase in (("a", "train_a"), ("b", "resume_b"), ("pair", "two_process"))
            if phase in ran}
    if runs:
        checks["runs_finished"] = all(r is not None and r["finished_at_last_step"] for r in runs.values())
        long_runs = [r for name, r in runs.items() if name != "pair"]  # pair: 10 steps, compared to a instead
        checks["loss_falls"] = all(r is not None and r["first_loss"] - r["last_loss"] >= args.min_loss_drop
                                   for r in long_runs)
    timed = [r for p in bench_phases if p in ran and p != "layer" for r in result[p] or []]
    if runs or timed:
        checks["no_recompiles_after_warmup"] = all(r is not None and not r["recompiled_after_warmup"]
                                                   for r in runs.values()) \
            and all(r.get("recompiles_during_timed_steps", 0) == 0 for r in timed)
    for key, phase in (("determinism", "resume_b"), ("resume", "resume_b"), ("two_process_vs_one", "two_process")):
        if phase in ran and (key != "two_process_vs_one" or "train_a" in ran):
            checks[f"{key}_within_tolerance"] = bool(train[key] and train[key]["ok"])
    for phase in bench_phases:
        if phase in ran:
            checks[f"{phase}_measured"] = bool(result[phase])
    ratio, paper = ratios(result["ratio_124m"]), ratios(result["paper_shape"])
    bpe = next((r for r in result["ratio_124m"] or [] if r["arm"] == "bpe"), {})
    layer = result["layer"].get("124m", {}).get("modes", {})
    targets = {f"kronecker_vs_bpe_124m_le_{TARGET_RATIO}": {k: v <= TARGET_RATIO for k, v in ratio.items()},
               "layer_fwd_bwd_le_nn_embedding_124m": {m: r["vs_embedding"] <= 1.0 for m, r in layer.items()
                                                      if m != "nn.Embedding" and r.get("vs_embedding")},
               "layer_repeat_identical_grad": {m: r["repeat_identical_grad"] for m, r in layer.items()
                                               if "repeat_identical_grad" in r},
               f"paper_shape_kronecker_vs_bpe_le_{PAPER_OVERHEAD}": {k: v <= PAPER_OVERHEAD for k, v in paper.items()},
               f"bpe_mfu_ge_{TARGET_MFU:.0%}": bpe["mfu"] >= TARGET_MFU if bpe.get("mfu") is not None else None}
    return checks, targets


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("work", type=Path)
    p.add_argument("out")
    p.add_argument("--mode", default="gpu", choices=("gpu", "cpu-tiny"))
    p.add_argument("--steps", type=int, nargs=3, default=(30, 20, 10), metavar=("A", "B", "PAIR"),
                   help="steps of run a, of run b before its resume, of the 2-process run")
    p.add_argument("--min-loss-drop", type=float, default=1.0, help="nats, mean of the first vs last few steps")
    p.add_argument("--tolerance", type=float, default=5e-3,
                   help="nats: |train loss| difference allowed between identical runs and after a resume on CUDA "
                        "(bit-exact is not promised there: docs/training.md)")
    p.add_argument("--pair-tolerance", type=float, default=2e-2,
                   help="nats: 2 processes x 32 sequences vs 1 x 64 (other kernels' shapes and summation order)")
    p.add_argument("--deadline", type=float, default=345, help="seconds the phases may take together")
    p.add_argument("--busbw", type=float, default=ASSUMED_BUSBW, help="assumed 8-GPU all-reduce bus bandwidth, B/s")
    args = p.parse_args(argv)
    a_steps, b_steps, pair_steps = args.steps
    ran, env = phases(args.work), environment(args.work)
    date = datetime.datetime.now(datetime.timezone.utc)
    result = dict(date=date.isoformat(timespec="seconds"), mode=args.mode, **env, phases=ran,
                  total_seconds=sum(v["seconds"] for v in ran.values()), deadline_s=args.deadline,
                  out_of_time=[n for n, v in ran.items() if v["out_of_time"]],
                  skipped=[n for n, v in ran.items() if v["skipped"]],
                  failed=[n for n, v in ran.items() if v["exit_code"] not in (0, None)],
                  layer=layer_section(args.work), ratio_124m=bench_rows(args.work, "ratio_124m"),
                  paper_shape=bench_rows(args.work, "paper_shape"), microbatch=bench_rows(args.work, "microbatch"),
                  train=train_section(args.work, a_steps, b_steps, pair_steps, args))
    result["two_process"] = two_process_section(args.work, result["train"]["runs"]["pair"])
    ratio = read_json(args.work / "ratio_124m.json", missing_ok=True) or {}
    result["estimate_8gpu"] = estimate_8gpu(ratio.get("rows"), ratio.get("block_size"), args.busbw)
    result["checks"], result["targets"] = judge(ran, result, args)
    path = output_path(args.out, env["device"], date.date().isoformat())
    atomic_write_json(path, result)
    report(result, path)
    return 0 if all(result["checks"].values()) else 1


def report(result, path):
    """The console's summary: checks, phase times, the answers."""
    print(f"gpu_check ({result['mode']}) on {result['device']}, torch {result['torch']}, CUDA {result['cuda']}: "
          + ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in result["checks"].items()))
    for name, v in result["phases"].items():
        state = "skipped (no time left)" if v["skipped"] else "OUT OF TIME" if v["out_of_time"] else \
            "" if v["exit_code"] == 0 else f"exit {v['exit_code']}"
        print(f"  {name:14s} {v['seconds']:5.0f} s of {v['budget_s']:4.0f} s  {state}")
    print(f"  total          {result['total_seconds']:5.0f} s (deadline {result['deadline_s']:.0f} s)")
    for phase in ("ratio_124m", "paper_shape", "microbatch"):
        for r in result[phase] or []:
            mem = r["max_memory_allocated_gib"]
            print(f"{phase} b{r['batch_size']} {r['label']}: {r['step_ms']:.1f} ms, {r['tokens_per_s']:,.0f} tok/s"
                  + (f", vs bpe {r['vs_bpe']:.4f}" if r["vs_bpe"] else "") + (f", {mem:.1f} GiB" if mem else "")
                  + (f", input side {r['profile']['input_side_share']:.1%} of kernel time" if "profile" in r else ""))
    train = result["train"]
    for key in ("determinism", "resume", "two_process_vs_one"):
        c = train[key]
        if c:
            print(f"{key}: steps {c['steps'][0]}-{c['steps'][1]}, max |loss diff| {c['max_abs_loss_diff']}, "
                  f"bit-identical {c['bit_identical']} (tolerance {c['tolerance']})")
    if train["checkpoint_io"]:
        io = train["checkpoint_io"]
        print(f"checkpoint: {io['bytes'] / 1e6:,.0f} MB, write {io['write_s']:.2f} s, read {io['read_s']:.2f} s")
    print(f"two processes: {result['two_process']['reason']}")
    print("targets: " + json.dumps(result["targets"]))
    print(f"figures: {path}")


if __name__ == "__main__":
    sys.exit(run_main(main))
