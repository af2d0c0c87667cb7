"""Fault drill: run the entry points through faults a cluster really produces; print a table.

    bash scripts/fault_drill.sh                  # all cases, a few minutes on a 2-core CPU
    python scripts/fault_drill.py -k resume      # only the cases whose name contains "resume"

Each case runs one command (a fresh subprocess) in its own folder under a temp dir, on a tiny
model and a tiny shard folder made here from the shared FineWeb-Edu sample, and is classified:
  clear error  exit 2, one "error: ..." line, no traceback      ok       exit 0
  stopped      exit 75 after "stopped by SIG... checkpoint ..."  hang     ran past the timeout
  interrupted  exit 130 after one line (Ctrl-C)                  traceback  a Python traceback
A case's `check` then looks at what is left on disk: "data loss" (records changed or gone) or
"silent" (the command said nothing wrong but the result is wrong) override the class.
To add rows (data preparer, eval scripts): append Case(name, expected, run[, check]) to CASES;
`run(work)` returns the argv (or a Result, for multi-step cases), `check(work, result)` returns
None when all is well or the outcome that replaces the class.
"""
import argparse
import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SAMPLE = REPO.parent / "shared" / "data" / "fineweb_edu_sample" / "sample.jsonl"
TIMEOUT_S = 120
TINY = dict(n_layer=1, n_head=2, n_embd=32, block_size=32, micro_batch_size=4, total_batch_tokens=256,
            max_steps=6, warmup_steps=2, max_lr=1e-2, min_lr=1e-3, eval_interval=3, val_tokens=1024,
            device="cpu", compile=False, run_name="run")


@dataclasses.dataclass
class Result:
    rc: Optional[int]
    stderr: str
    stdout: str = ""


@dataclasses.dataclass
class Case:
    name: str
    expected: str
    run: Callable
    check: Optional[Callable] = None


# ----------------------------------------------------------------------------- helpers

def train_argv(work, config_file=None, **overrides):
    args = dict(TINY, data_dir=work.parent / "data", out_dir=work / "out", log_dir=work / "runs")
    args.update(overrides)
    return [sys.executable, "train.py", *([str(config_file)] if config_file else []),
            *[f"--{k}={v}" for k, v in args.items()]]


def execute(argv, timeout=TIMEOUT_S, env=None):
    try:
        done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                              env=dict(os.environ, OMP_NUM_THREADS="1", **(env or {})))
        return Result(done.returncode, done.stderr, done.stdout)
    except subprocess.TimeoutExpired as err:
        return Result(None, (err.stderr or b"").decode(errors="replace") if isinstance(err.stderr, bytes)
                      else (err.stderr or ""))


def must(argv):
    """Run a setup command that has to succeed."""
    result = execute(argv)
    if result.rc != 0:
        raise RuntimeError(f"setup failed: {' '.join(map(str, argv))}\n{result.stderr[-2000:]}")
    return result


def classify(result):
    lines = result.stderr.strip().splitlines()
    if result.rc is None:
        return "hang"
    if "Traceback (most recent call last)" in result.stderr:
        return "traceback"
    if result.rc == 2 and len(lines) == 1 and lines[0].startswith("error: "):
        return "clear error"
    if result.rc == 75 and lines and lines[-1].startswith("stopped by SIG"):
        return "stopped"
    if result.rc == 130 and lines and lines[-1].startswith("interrupted"):
        return "interrupted"
    return "ok" if result.rc == 0 else f"exit {result.rc}"


def digest(folder):
    """{relative path: sha256} of every file under folder (lock files excluded)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file() and p.name != ".lock"}


def log_lines(work, run="run"):
    return [json.loads(line, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
            for line in (work / "runs" / run / "log.jsonl").read_text().splitlines()]


def curves(work, run="run"):
    """{(step, kind): (train_loss or val_loss)}; later lines win, as every reader does."""
    out = {}
    for rec in log_lines(work, run):
        for key in ("train_loss", "val_loss"):
            if key in rec:
                out[(rec["step"], key)] = rec[key]
    return out


def unchanged(before_key):
    """A check: the run's records are byte-identical to those saved in work/<before_key>."""
    def check(work, result):
        before = json.loads((work / before_key).read_text())
        return None if digest(work / "runs") == before else "data loss"
    return check


def finished_run(work, **overrides):
    must(train_argv(work, **overrides))
    return work


def save_digest(work, name="before.json"):
    (work / name).write_text(json.dumps(digest(work / "runs")))


# ----------------------------------------------------------------------------- §1 run folders

def rerun_finished_without_checkpoints(extra):
    def run(work):
        finished_run(work)
        for p in (work / "out" / "run").glob("ckpt_*.pt"):
            p.unlink()
        save_digest(work)
        return train_argv(work, **extra)
    return run


def unfinished_log_without_checkpoint(work):
    (work / "runs" / "run").mkdir(parents=True)
    (work / "runs" / "run" / "config.json").write_text(json.dumps({"embedding": "bpe", "seed": 1337}))
    (work / "runs" / "run" / "log.jsonl").write_text('{"step": 0, "val_loss": 10.9}\n')
    save_digest(work)
    return train_argv(work)


def resume_never_keeps_old(work):
    finished_run(work)
    (work / "old_log").write_bytes((work / "runs" / "run" / "log.jsonl").read_bytes())
    return train_argv(work, resume="never", max_steps=3)


def check_old_log_kept(work, result):
    old = [p.read_bytes() for p in (work / "runs" / "run").glob("log.*.jsonl")]
    kept = len(list((work / "out" / "run").glob("old.*/ckpt_*.pt"))) == 2
    return None if old == [(work / "old_log").read_bytes()] and kept else "data loss"


def attempts_a_b(work):
    """Issue example: A to 6; B --resume=never to 3; B continued to 6, keep_checkpoints=1."""
    finished_run(work)
    must(train_argv(work, resume="never", max_steps=3, keep_checkpoints=1))
    return train_argv(work, max_steps=6, keep_checkpoints=1)


def check_b_resumed_and_kept(work, result):
    from checkpoint import checkpoint_attempt
    attempt = json.loads((work / "runs" / "run" / "config.json").read_text())["attempt"]
    ckpts = sorted((work / "out" / "run").glob("ckpt_*.pt"))
    ok = ("resuming from" in result.stdout and "ckpt_000003.pt" in result.stdout
          and [p.name for p in ckpts] == ["ckpt_000006.pt"] and checkpoint_attempt(ckpts[0]) == attempt)
    return None if ok else "silent"


def second_process(work):
    holder = subprocess.Popen([sys.executable, "-c", "import time; from run_folder import RunFolder; "
                               f"RunFolder({str(work / 'runs')!r}, {str(work / 'out')!r}, 'run').lock(); "
                               "print('locked', flush=True); time.sleep(120)"],
                              cwd=REPO, stdout=subprocess.PIPE, text=True)
    holder.stdout.readline()
    try:
        return execute(train_argv(work))
    finally:
        holder.kill()
        holder.wait()


def after_kill_9(work):
    second_process(work)  # the holder was killed with SIGKILL
    return train_argv(work, max_steps=2)


def torn_last_line(work):
    finished_run(work, max_steps=3)
    log = work / "runs" / "run" / "log.jsonl"
    (work / "complete").write_bytes(log.read_bytes())
    with open(log, "a") as f:
        f.write('{"step": 4, "train_lo')
    return train_argv(work, max_steps=6)


def check_clean_append(work, result):
    text = (work / "runs" / "run" / "log.jsonl").read_bytes()
    try:
        log_lines(work)
    except ValueError:
        return "data loss"
    return None if text.startswith((work / "complete").read_bytes()) else "data loss"


POISON = """
import math, sys, train
from errors import run_main
real = train.train_step
def step(step, model, raw_model, *args):
    result = real(step, model, raw_model, *args)
    if step == {at}:
        next(raw_model.parameters()).data[0] = math.{value}
    return result
train.train_step = step
run_main(lambda: train.main(sys.argv[1:]))
"""


def poisoned(at, value, **overrides):
    def run(work):
        if overrides.pop("first", False):
            finished_run(work, max_steps=3)
        return [sys.executable, "-c", POISON.format(at=at, value=value), *train_argv(work, **overrides)[2:]]
    return run


def check_strict_log_and_no_bad_checkpoint(work, result):
    import torch
    try:
        log_lines(work)
    except ValueError:
        return "silent"
    for p in (work / "out" / "run").glob("ckpt_*.pt"):
        state = torch.load(p, weights_only=True)
        if not all(torch.isfinite(t).all() for t in state["model"].values()):
            return "silent"
    named = result.stderr.split("is ")[-1].split(" ")[0]
    return None if named == "none" or Path(named).exists() else "silent"


def val_tokens_changed(work):
    finished_run(work, max_steps=3)
    return train_argv(work, val_tokens=2048)


# ----------------------------------------------------------------------------- §2 stop signals

def signalled(sig, at_step=2, **overrides):
    """Start a run, send `sig` once its log shows step >= at_step; the Result of the run."""
    def run(work):
        proc = subprocess.Popen(train_argv(work, max_steps=400, eval_interval=200, **overrides), cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=dict(os.environ, OMP_NUM_THREADS="1"))
        log, deadline = work / "runs" / "run" / "log.jsonl", time.time() + TIMEOUT_S
        while time.time() < deadline and proc.poll() is None:
            if log.exists() and log.read_text().count('"train_loss"') >= at_step:
                proc.send_signal(sig)
                break
            time.sleep(0.05)
        try:
            out, err = proc.communicate(timeout=TIMEOUT_S)
            return Result(proc.returncode, err, out)
        except subprocess.TimeoutExpired:
            proc.kill()
            return Result(None, "")
    return run


def check_sigterm_resume_bit_exact(work, result):
    ckpts = list((work / "out" / "run").glob("ckpt_*.pt"))
    if len(ckpts) != 1 or ckpts[0].name == "ckpt_000400.pt":
        return "silent"
    resumed = execute(train_argv(work, max_steps=400, eval_interval=200))
    straight = execute(train_argv(work, max_steps=400, eval_interval=200, run_name="straight"))
    if resumed.rc != 0 or straight.rc != 0:
        return "silent"
    return None if curves(work) == curves(work, "straight") else "silent"


def check_no_checkpoint(work, result):
    return None if not list((work / "out" / "run").glob("ckpt_*.pt")) else "silent"


def torchrun_sigterm(work):
    """SIGTERM to the torchrun agent (what SLURM signals): its 2 gloo workers must checkpoint."""
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            *train_argv(work, max_steps=400, eval_interval=200)[1:]]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    log, deadline = work / "runs" / "run" / "log.jsonl", time.time() + TIMEOUT_S
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and log.read_text().count('"train_loss"') >= 2:
            proc.send_signal(signal.SIGTERM)
            break
        time.sleep(0.05)
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        return Result(None, "")
    stop_line = [line for line in err.splitlines() if line.startswith("stopped by SIGTERM")]
    if stop_line and list((work / "out" / "run").glob("ckpt_*.pt")):
        return Result(75, stop_line[0])  # torchrun itself reports the workers' exit as a failure
    return Result(proc.returncode, err, out)


# ----------------------------------------------------------------------------- §5 config and disks

def config_file(text_bytes):
    def run(work):
        path = work / "cfg.py"
        path.write_bytes(text_bytes)
        return train_argv(work, config_file=path)
    return run


def lock_on_dev_full(work):
    (work / "runs" / "run").mkdir(parents=True)
    (work / "runs" / "run" / ".lock").symlink_to("/dev/full")
    return train_argv(work)


def checkpoint_on_dev_full(work):
    (work / "out" / "run").mkdir(parents=True)
    (work / "out" / "run" / "ckpt_000003.pt.tmp").symlink_to("/dev/full")
    return train_argv(work)


def check_no_temp_file(work, result):
    left = [p for p in (work / "out" / "run").iterdir() if p.name.endswith(".tmp")]
    return "silent" if left or "disk full" not in result.stderr else None


def resume_does_not_resave(work):
    finished_run(work, max_steps=3)
    ckpt = work / "out" / "run" / "ckpt_000003.pt"
    (work / "mtime").write_text(str(ckpt.stat().st_mtime_ns))
    return train_argv(work, max_steps=6)


def check_not_resaved(work, result):
    evals = [r for r in log_lines(work) if r["step"] == 3 and "val_loss" in r]
    ckpt = work / "out" / "run" / "ckpt_000003.pt"  # kept: keep_checkpoints is 2
    saved_once = ckpt.stat().st_mtime_ns == int((work / "mtime").read_text())
    return None if saved_once and len(evals) == 1 else "silent"


def bad(**overrides):
    return lambda work: train_argv(work, **overrides)


CASES = [
    # §1 run folders
    Case("finished run, no checkpoint, same command", "ok", rerun_finished_without_checkpoints({}),
         unchanged("before.json")),
    Case("finished run, no checkpoint, more steps", "clear error",
         rerun_finished_without_checkpoints({"max_steps": 9}), unchanged("before.json")),
    Case("unfinished log, no checkpoint", "clear error", unfinished_log_without_checkpoint,
         unchanged("before.json")),
    Case("--resume=never keeps the old records", "ok", resume_never_keeps_old, check_old_log_kept),
    Case("A to 6, B never to 3, B to 6, keep 1", "ok", attempts_a_b, check_b_resumed_and_kept),
    Case("second process, same run_name", "clear error", second_process),
    Case("rerun after the lock holder got kill -9", "ok", after_kill_9),
    Case("torn last log line, then resume", "ok", torn_last_line, check_clean_append),
    Case("non-finite weights after a finite-loss step", "clear error", poisoned(2, "inf"),
         check_strict_log_and_no_bad_checkpoint),
    Case("NaN loss after a good checkpoint", "clear error", poisoned(3, "nan", first=True, max_steps=6),
         check_strict_log_and_no_bad_checkpoint),
    Case("resume with another val_tokens", "clear error", val_tokens_changed),
    # §2 stop signals
    Case("SIGTERM mid-run, rerun bit-exact", "stopped", signalled(signal.SIGTERM),
         check_sigterm_resume_bit_exact),
    Case("SIGUSR1 mid-run", "stopped", signalled(signal.SIGUSR1)),
    Case("Ctrl-C (SIGINT) mid-run", "interrupted", signalled(signal.SIGINT, eval_interval=1000),
         check_no_checkpoint),
    Case("SIGTERM to torchrun, 2 gloo ranks", "stopped", torchrun_sigterm),
    # §5 config values and disks
    Case("dropout=1", "clear error", bad(dropout=1)),
    Case("beta1=1.5", "clear error", bad(beta1=1.5)),
    Case("beta2=-0.1", "clear error", bad(beta2=-0.1)),
    Case("seed=-1", "clear error", bad(seed=-1)),
    Case("data_seed=-1", "clear error", bad(data_seed=-1)),
    Case("pos_dim=100000", "clear error", bad(pos_dim=100000, embedding="kronecker")),
    Case("run_name empty", "clear error", bad(run_name="")),
    Case("run_name=../escape", "clear error", bad(run_name="../escape")),
    Case("run_name=a/b", "clear error", bad(run_name="a/b")),
    Case("max_lr=1e400 (inf)", "clear error", bad(max_lr="1e400")),
    Case("max_lr=0", "clear error", bad(max_lr=0, min_lr=0)),
    Case("max_lr=1e39", "clear error", bad(max_lr=1e39, min_lr=0)),
    Case("warmup_steps > max_steps", "clear error", bad(warmup_steps=20)),
    Case("config file not UTF-8", "clear error", config_file(b"max_steps = 6  # caf\xe9\n")),
    Case("config 9 ** 9 ** 9", "clear error", config_file(b"max_steps = 9 ** 9 ** 9\n")),
    Case('config "a" * 10**9', "clear error", config_file(b'run_name = "a" * 10**9\n')),
    Case("out_dir read-only (/proc)", "clear error", bad(out_dir="/proc/kronecker_drill")),
    Case("out_dir is a file", "clear error",
         lambda work: (work.joinpath("f").write_text(""), train_argv(work, out_dir=work / "f"))[1]),
    Case("log_dir full (/dev/full)", "clear error", lock_on_dev_full),
    Case("disk full during a checkpoint", "clear error", checkpoint_on_dev_full, check_no_temp_file),
    Case("resume never re-saves or re-evaluates", "ok", resume_does_not_resave, check_not_resaved),
]


def make_data(folder):
    """Shards of the first 60 documents of the shared sample: 4,096 val tokens, the rest train."""
    import numpy as np

    from data.shards import write_shard
    from tokenizer import EOT_ID, get_encoding
    enc = get_encoding()
    docs = [json.loads(line)["text"] for line in SAMPLE.read_text().splitlines()[:60]]
    tokens = np.array([t for doc in docs for t in [EOT_ID] + enc.encode_ordinary(doc)], dtype=np.uint16)
    folder.mkdir()
    write_shard(folder / "val_000000.bin", tokens[:4096])
    write_shard(folder / "train_000001.bin", tokens[4096:])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-k", default="", help="run only cases whose name contains this text")
    args = p.parse_args(argv)
    if not SAMPLE.exists():
        sys.exit(f"error: the shared sample {SAMPLE} is missing")
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(REPO.parent / "shared" / "tiktoken_cache"))
    cases = [c for c in CASES if args.k in c.name]
    rows, t0 = [], time.time()
    with tempfile.TemporaryDirectory(prefix="fault_drill_") as tmp:
        make_data(Path(tmp) / "data")
        for i, case in enumerate(cases):
            work = Path(tmp) / f"case{i:02d}"
            work.mkdir()
            try:
                made = case.run(work)
                result = made if isinstance(made, Result) else execute(made)
                got = classify(result)
                if case.check is not None and got in (case.expected, "ok", "clear error", "stopped"):
                    got = case.check(work, result) or got
            except Exception as err:  # the drill's own setup failed: show it, keep going
                result, got = Result(None, f"{type(err).__name__}: {err}"), "drill error"
            detail = (result.stderr.strip().splitlines() or [""])[-1].replace(str(work), "<case>")[:100]
            rows.append((case.name, case.expected, got, detail))
            print(f"{'PASS' if got == case.expected else 'FAIL'} {case.name}: {got}", file=sys.stderr)
    width = max(len(r[0]) for r in rows)
    print(f"{'case':<{width}} | {'expected':<11} | {'got':<11} | last line of stderr")
    print(f"{'-' * width}-|-{'-' * 11}-|-{'-' * 11}-|-{'-' * 20}")
    for name, expected, got, detail in rows:
        print(f"{name:<{width}} | {expected:<11} | {got:<11} | {detail}")
    counts = {}
    for _, _, got, _ in rows:
        counts[got] = counts.get(got, 0) + 1
    passed = sum(got == expected for _, expected, got, _ in rows)
    print(f"\n{len(rows)} cases, {passed} as expected; " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
          + f"; {time.time() - t0:.0f} s")
    return 0 if passed == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
