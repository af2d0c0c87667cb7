"""Fault drill: run the entry points through faults a cluster really produces; print a table.

    bash scripts/fault_drill.sh                  # all cases, about 10 minutes on a 2-core CPU
    python scripts/fault_drill.py -k resume      # only the cases whose name contains "resume"

Each case runs one command (a fresh subprocess) in its own folder under a temp dir, on a tiny
model and a tiny shard folder made here from the shared FineWeb-Edu sample, and is classified:
  clear error  exit 2, one "error: ..." line, no traceback      ok       exit 0
  stopped      exit 75 after "stopped by SIG... checkpoint ..."  hang     ran past the timeout
  interrupted  exit 130 after one line (Ctrl-C)                  traceback  a Python traceback
A progress bar (a stderr line holding "\r", tqdm's) is not counted as a line of the message.
A case's `check` then looks at what is left on disk: "data loss" (records changed or gone),
"silent" (the command said nothing wrong but the result is wrong), "vague error" (one line that
does not name what the issue asks it to name), "wrong fix" (the suggested fix fails) or
"orphans" (processes left behind) override the class.
Cases: train.py's run folders, stop signals and config values (§1, §2, §5 of issue 10); rewinds,
changed settings, data identity, disks that fill, runs longer than their data (issue 21) and
checkpoints written in the background under a slow write and a signal (issue 23); the data
preparer's bad records, files, manifests, offline starts and Ctrl-C, train.py on bad data (§3-4),
the eval scripts' bad inputs (§6), and issue 21's (§7): the sweep's skip check crashing and a run
another sweep trains, W&B across a resume, an error only rank 1 meets, a bad value offline, bool
spellings, train.py from another directory or without TIKTOKEN_CACHE_DIR, piped stdout and MFU on
the CPU, lone surrogates in records. Shared inputs (a tiny shard folder, a prepared folder, a
tiny checkpoint, a reference preparation) are made once in the temp dir, on first use.
To add rows: append Case(name, expected, run[, check]) to CASES; `run(work)` returns the argv
(or a Result, for multi-step cases), `check(work, result)` returns None when all is well or the
outcome that replaces the class.
"""
import argparse
import dataclasses
import hashlib
import json
import gzip
import os
import re
import shutil
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
GZ_SAMPLE = REPO.parent / "shared" / "data" / "fineweb_sample" / "train.jsonl.gz"
TIMEOUT_S = 120
TINY = dict(n_layer=1, n_head=2, n_embd=32, block_size=32, micro_batch_size=4, total_batch_tokens=256,
            max_steps=6, warmup_steps=2, max_lr=1e-2, min_lr=1e-3, eval_interval=3, ckpt_interval=3,
            val_tokens=1024, device="cpu", compile=False, run_name="run")
EXTEND = dict(allow_change="max_steps")  # a resume to a larger max_steps: the change is recorded


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


def text(output):
    """Captured bytes as text, keeping "\r" (text=True would turn a progress bar's into lines)."""
    return (output or b"").decode(errors="replace")


def execute(argv, timeout=TIMEOUT_S, env=None, cwd=REPO, unset=()):
    """Run argv in cwd (the repo), env added to ours minus the names in unset; its Result."""
    env = {k: v for k, v in dict(os.environ, OMP_NUM_THREADS="1", **(env or {})).items() if k not in unset}
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, timeout=timeout, env=env)
        return Result(done.returncode, text(done.stderr), text(done.stdout))
    except subprocess.TimeoutExpired as err:
        return Result(None, text(err.stderr))


def must(argv):
    """Run a setup command that has to succeed."""
    result = execute(argv)
    if result.rc != 0:
        raise RuntimeError(f"setup failed: {' '.join(map(str, argv))}\n{result.stderr[-2000:]}")
    return result


def message_lines(stderr):
    """stderr's lines without tqdm's progress-bar lines (they redraw with "\r")."""
    return [line for line in stderr.strip("\n").split("\n") if "\r" not in line]


def classify(result):
    lines = message_lines(result.stderr)
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
    return train_argv(work, max_steps=6, keep_checkpoints=1, **EXTEND)


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
    return train_argv(work, max_steps=6, **EXTEND)


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
    named = re.search(r" is (\S+?);", result.stderr)
    return None if named and (named[1] == "none" or Path(named[1]).exists()) else "silent"


def val_tokens_changed(work):
    finished_run(work, max_steps=3)
    return train_argv(work, max_steps=6, val_tokens=2048, **EXTEND)


# ----------------------------------------------------------------------------- §2 stop signals

LONG = dict(max_steps=60, eval_interval=30, ckpt_interval=30)  # long enough for a signal to land mid-run


def signalled(sig, at_step=2, ready=lambda work: True, **overrides):
    """Start a run, send `sig` once ready(work) and its log shows step >= at_step; the Result of the run."""
    def run(work):
        proc = subprocess.Popen(train_argv(work, **{**LONG, **overrides}), cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=dict(os.environ, OMP_NUM_THREADS="1"))
        log, deadline = work / "runs" / "run" / "log.jsonl", time.time() + TIMEOUT_S
        while time.time() < deadline and proc.poll() is None:
            if ready(work) and log.exists() and log.read_text().count('"train_loss"') >= at_step:
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
    if len(ckpts) != 1 or ckpts[0].name == "ckpt_000060.pt":
        return "silent"
    resumed = execute(train_argv(work, **LONG), timeout=3 * TIMEOUT_S)
    straight = execute(train_argv(work, run_name="straight", **LONG), timeout=3 * TIMEOUT_S)
    if resumed.rc != 0 or straight.rc != 0:
        return "silent"
    return None if curves(work) == curves(work, "straight") else "silent"


def check_no_checkpoint(work, result):
    return None if not list((work / "out" / "run").glob("ckpt_*.pt")) else "silent"


def torchrun_sigterm(work):
    """SIGTERM to the torchrun agent (what SLURM signals): its 2 gloo workers must checkpoint."""
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            *train_argv(work, **LONG)[1:]]
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
    return train_argv(work, max_steps=6, **EXTEND)


def check_not_resaved(work, result):
    evals = [r for r in log_lines(work) if r["step"] == 3 and "val_loss" in r]
    ckpt = work / "out" / "run" / "ckpt_000003.pt"  # kept: keep_checkpoints is 2
    saved_once = ckpt.stat().st_mtime_ns == int((work / "mtime").read_text())
    return None if saved_once and len(evals) == 1 else "silent"


def bad(**overrides):
    return lambda work: train_argv(work, **overrides)


# ----------------------------------------------------------------------------- issue 21: rewinds, changes, data, disks

def rewind_then_sigterm(work):
    """Issue example: to the end with save_steps=2; --resume=<ckpt 2> and SIGTERM mid-run."""
    finished_run(work, save_steps=2, **LONG)
    rewound = lambda work: any((work / "runs" / "run").glob("log.*.jsonl"))  # the old log moved aside
    return signalled(signal.SIGTERM, at_step=3, ready=rewound, save_steps=2,
                     resume=work / "out" / "run" / "ckpt_000002.pt")(work)


def check_branch_kept_and_rerun_consistent(work, result):
    named = re.search(r"checkpoint (\S+); rerun with --resume=auto", result.stderr)
    abandoned = sorted(p.name for p in (work / "out" / "run").glob("old.*/ckpt_*.pt"))
    if not named or not Path(named[1]).exists() or abandoned != ["ckpt_000030.pt", "ckpt_000060.pt"]:
        return "data loss"
    if execute(train_argv(work, save_steps=2, **LONG), timeout=3 * TIMEOUT_S).rc != 0:
        return "silent"
    steps = [r["step"] for r in log_lines(work) if "train_loss" in r]
    final = json.loads((work / "runs" / "run" / "summary.json").read_text())["final_step"]
    return None if steps == list(range(1, 61)) and final == steps[-1] else "silent"


def check_advice_works(work, result):
    """The run's one-line advice, followed literally, continues it with the change recorded."""
    advice = re.search(r"rerun with (.*?) \(the change", result.stderr)
    if not advice:
        return "wrong fix"
    rerun = execute(train_argv(work) + advice[1].split())
    changes = json.loads((work / "runs" / "run" / "config.json").read_text()).get("config_changes", [])
    return None if rerun.rc == 0 and [c["config_change"] for c in changes] == [{"max_lr": [0.01, 0.005]}] \
        else "wrong fix"


def max_steps_raised(extra):
    def run(work):
        finished_run(work)
        save_digest(work)
        return train_argv(work, max_steps=9, **extra)
    return run


def sweep_skip(work, **overrides):
    """`run_folder.py skip` (the sweep's question) on the same train.py arguments: its exit code."""
    return execute([sys.executable, "run_folder.py", "skip", "--", *train_argv(work, **overrides)[2:]]).rc


def check_refused_alike(work, result):
    if unchanged("before.json")(work, result) or "--allow_change=max_steps" not in result.stderr:
        return "vague error"
    return None if sweep_skip(work, max_steps=9) == 2 else "silent"


def check_change_recorded(work, result):
    changes = [r for r in log_lines(work) if "config_change" in r]
    recorded = [c["config_change"] for c in changes] == [{"max_steps": [6, 9]}]
    return None if recorded and sweep_skip(work, max_steps=9, **EXTEND) == 0 else "silent"


def same_sizes_other_tokens(src, dst):
    """dst: src's shards with their tokens reversed (other data, the same shard sizes)."""
    from data.shards import open_shard, write_shard
    dst.mkdir()
    for path in sorted(src.glob("*.bin")):
        write_shard(dst / path.name, open_shard(path)[::-1].copy())
    return dst


def resume_on(data_of):
    """Finish 3 steps on the drill's data, then extend the run on data_of(work)."""
    def run(work):
        finished_run(work, max_steps=3)
        return train_argv(work, data_dir=data_of(work), max_steps=6, **EXTEND)
    return run


def linked_data(work):
    (work / "link").symlink_to(work.parent / "data")
    return f"{work / 'link'}/"


def truncated_newest(work):
    must(train_argv(work))
    newest = work / "out" / "run" / "ckpt_000006.pt"
    newest.write_bytes(newest.read_bytes()[:4096])
    return train_argv(work, max_steps=9, **EXTEND)


def check_named_truncated(work, result):
    said = "ckpt_000006.pt cannot be read (truncated" in result.stdout and "another attempt" not in result.stdout
    return None if said and "ckpt_000003.pt at step 3" in result.stdout else "vague error"


def short_data(work):
    """The drill's data with a 2,000-token train shard: 62 blocks of 32, 8 per step."""
    from data.shards import open_shard, write_shard
    (work / "short").mkdir()
    shutil.copy(work.parent / "data" / "val_000000.bin", work / "short")
    write_shard(work / "short" / "train_000001.bin", open_shard(work.parent / "data" / "train_000001.bin")[:2000].copy())
    return work / "short"


def check_passes_said(work, result):
    said = "1.29 passes over the train set" in result.stdout and "pass 2 over the train set begins" in result.stdout
    config = json.loads((work / "runs" / "run" / "config.json").read_text())
    logged = [r["step"] for r in log_lines(work) if "data_pass" in r] == [7]
    return None if said and logged and config["data_passes"] == 80 / 62 else "silent"


FILL_AFTER_CKPT_3 = """
import os, shutil, sys, time
import train
from errors import run_main
real_step, out = train.train_step, sys.argv[sys.argv.index("--fill") + 1]
def fill_after_checkpoint_3(step, *args):
    if step == 4:  # ckpt 3 is written in the background: wait for it, then fill the disk but 1 MB
        deadline = time.time() + 60
        while not os.path.exists(os.path.join(out, "run", "ckpt_000003.pt")) and time.time() < deadline:
            time.sleep(0.01)
        with open(os.path.join(out, "filler"), "wb") as f:
            f.write(bytes(shutil.disk_usage(out).free - 2**20))
    return real_step(step, *args)
train.train_step = fill_after_checkpoint_3
args = sys.argv[1:sys.argv.index("--fill")]
run_main(lambda: train.main(args))
"""
# Where no tmpfs can be mounted (not root), a small disk is simulated: shutil.disk_usage reports
# --size MB free, and with --fill atomic.py's writes of the step-6 checkpoint fail with ENOSPC after
# 1 MB (the path a real disk takes).
SIMULATED_DISK = """
import collections, errno, shutil, sys
import atomic, train
from errors import run_main
size = int(sys.argv[sys.argv.index("--size") + 1]) * 10**6
shutil.disk_usage = lambda path: collections.namedtuple("usage", "total used free")(size, 0, size)
real_open = open
class Filling:
    def __init__(self, f): self.f, self.room = f, 2**20
    def write(self, data):
        n = memoryview(data).nbytes
        if n > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= n
        return self.f.write(data)
    def __getattr__(self, name): return getattr(self.f, name)
    def __enter__(self): return self
    def __exit__(self, *exc): self.f.close()
if "--fill" in sys.argv:
    atomic.open = lambda path, *a, **k: Filling(real_open(path, *a, **k)) if "ckpt_000006" in str(path) \
        else real_open(path, *a, **k)
args = sys.argv[1:sys.argv.index("--size")]
run_main(lambda: train.main(args))
"""


def on_tmpfs(work, size_mb, script=None):
    """train.py (or `script`, given --fill OUT_DIR) with out_dir on a size_mb MB tmpfs (root), its
    files then copied back to work/out and the tmpfs unmounted; without root, in a plain folder
    under SIMULATED_DISK."""
    mount = work / "tmpfs"
    mount.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(mount)], capture_output=True).returncode == 0
    args, fill = train_argv(work, out_dir=mount)[2:], (["--fill", str(mount)] if script else [])
    if not mounted:
        argv = [sys.executable, "-c", SIMULATED_DISK, *args, "--size", str(size_mb), *fill]
    else:
        argv = [sys.executable, *(["-c", script] if script else ["train.py"]), *args, *fill]
    try:
        return execute(argv)
    finally:
        shutil.copytree(mount, work / "out", dirs_exist_ok=True, ignore=shutil.ignore_patterns("filler"))
        if mounted:
            subprocess.run(["umount", str(mount)], check=True)


def check_records_intact(work, result):
    import torch
    out, ckpts = work / "out" / "run", sorted(p.name for p in (work / "out" / "run").glob("ckpt_*"))
    steps = [r["step"] for r in log_lines(work) if "train_loss" in r]
    if ckpts != ["ckpt_000003.pt"] or torch.load(out / ckpts[0], weights_only=True)["step"] != 3 or \
            steps != [1, 2, 3, 4, 5, 6] or (work / "runs" / "run" / "summary.json").exists():
        return "data loss"
    return None if "disk full" in result.stderr else "vague error"


SLOW_WRITE_THEN_SIGTERM = """
import os, signal, sys, time
import checkpoint, train
from errors import run_main
done, real_step, real_save = [0], train.train_step, checkpoint.save_checkpoint
def counting_step(step, *args):
    result = real_step(step, *args)
    done[0] = step + 1
    return result
def slow_save(state, ckpt_dir):
    if state["step"] == 3:  # written only after 2 more steps on every rank; a SIGTERM meanwhile
        deadline = time.time() + 100
        while done[0] < 5:
            if time.time() > deadline:
                raise RuntimeError("the ranks waited for the checkpoint write")
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.5)
    return real_save(state, ckpt_dir)
train.train_step, checkpoint.save_checkpoint = counting_step, slow_save
run_main(lambda: train.main(sys.argv[1:]))
"""


def slow_write_two_ranks(work):
    """2 gloo ranks as plain processes (torchrun would hide their exit codes); rank 0's result."""
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, OMP_NUM_THREADS="1", WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    argv = [sys.executable, "-c", SLOW_WRITE_THEN_SIGTERM, *train_argv(work, max_steps=9)[2:]]
    procs = [subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=dict(env, RANK=str(r), LOCAL_RANK=str(r))) for r in range(2)]
    try:
        outs = [p.communicate(timeout=2 * TIMEOUT_S) for p in procs]
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        return Result(None, "")
    rc = procs[0].returncode if procs[1].returncode == procs[0].returncode else f"{procs[0].returncode}/{procs[1].returncode}"
    return Result(rc, text(outs[1][1]) + text(outs[0][1]), text(outs[0][0]))  # rank 0's last


def check_both_checkpoints_good(work, result):
    import torch
    named = re.search(r"at step (\d+); checkpoint (\S+);", result.stderr)
    out = work / "out" / "run"
    try:
        good = named and torch.load(named[2], weights_only=True)["step"] == int(named[1]) and \
            torch.load(out / "ckpt_000003.pt", weights_only=True)["step"] == 3
    except Exception:
        good = False
    return None if good and not list(out.glob("*.tmp")) else "data loss"


# ----------------------------------------------------------------------------- §3-4 data preparer

PREP = ["--val-tokens", "100", "--shard-tokens", "1000", "--train-tokens", "all", "--workers", "1"]
CTRL_C = ["--val-tokens", "5e4", "--shard-tokens", "1e5", "--train-tokens", "8e5"]  # 9 shards
GOOD = SAMPLE.read_bytes().splitlines()[:10] if SAMPLE.exists() else []  # 10 documents, ~8k tokens


def prep_argv(work, *files, out="out", flags=(), settings=PREP):
    return [sys.executable, "data/fineweb_edu.py", "--data-files", *map(str, files),
            "--out", str(work / out), *settings, *flags]


def write_lines(path, lines):
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def bad_record(line, flags=()):
    """A JSONL file whose line 2 is `line`, the other 10 good documents."""
    def run(work):
        return prep_argv(work, write_lines(work / "docs.jsonl", GOOD[:1] + [line] + GOOD[1:]),
                         flags=flags)
    return run


def names(*parts):
    """A check: the one-line error names every part (str.format'ed with work)."""
    def check(work, result):
        wanted = [part.format(work=work) for part in parts]
        return None if all(w in result.stderr for w in wanted) else "vague error"
    return check


def check_one_bad_record_counted(work, result):
    manifest = json.loads((work / "out" / "manifest.json").read_text())
    return None if manifest["complete"] and manifest["bad_records"]["count"] == 1 else "silent"


def bad_file(name, content):
    def run(work):
        (work / name).write_bytes(content)
        return prep_argv(work, work / name)
    return run


def broken_manifest(content):
    def run(work):
        src = write_lines(work / "docs.jsonl", GOOD)
        must(prep_argv(work, src))
        (work / "out" / "manifest.json").write_text(content(work))
        return prep_argv(work, src)
    return run


def with_env(argv_of, **env):
    """A run whose command gets extra environment variables (str.format'ed with work)."""
    def run(work):
        return execute(argv_of(work), env={k: v.format(work=work) for k, v in env.items()})
    return run


def empty_tiktoken_cache(work):
    (work / "empty").mkdir()
    return execute(prep_argv(work, write_lines(work / "docs.jsonl", GOOD)),
                   env={"TIKTOKEN_CACHE_DIR": str(work / "empty")})


def source_changed(work):
    src = write_lines(work / "docs.jsonl", GOOD)
    must(prep_argv(work, src, flags=["--stop-after-shards", "1"]))
    with open(src, "ab") as f:
        f.write(GOOD[0] + b"\n")
    return prep_argv(work, src)


def failed_start_then_retry(work):
    settings = ["--shard-tokens", "1e5", "--train-tokens", "all", "--workers", "1"]
    failed = execute(prep_argv(work, SAMPLE, settings=["--val-tokens", "1e9", *settings]))
    if classify(failed) != "clear error":
        return failed
    return prep_argv(work, SAMPLE, settings=["--val-tokens", "2e4", *settings])


def shard_hashes(out):
    return [(e["file"], e["sha256"]) for e in json.loads((out / "manifest.json").read_text())["shards"]]


def ctrl_c_reference(tmp):
    """The uninterrupted 1-worker preparation of the gzip sample (made once)."""
    ref = tmp / "ctrl_c_reference"
    if not ref.exists():
        must([sys.executable, "data/fineweb_edu.py", "--data-files", str(GZ_SAMPLE), *CTRL_C,
              "--out", str(ref), "--workers", "1"])
    return ref


def ctrl_c(shard):
    """Ctrl-C (SIGINT to the process group) on a 2-worker preparation once `shard` is written."""
    def run(work):
        ctrl_c_reference(work.parent)
        argv = [sys.executable, "data/fineweb_edu.py", "--data-files", str(GZ_SAMPLE), *CTRL_C,
                "--out", str(work / "out"), "--workers", "2"]
        proc = subprocess.Popen(argv, cwd=REPO, start_new_session=True, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        (work / "pgid").write_text(str(proc.pid))
        deadline = time.time() + TIMEOUT_S
        while not (work / "out" / shard).exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=20)
            return Result(proc.returncode, text(err), text(out))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return Result(None, "")
    return run


def check_ctrl_c(work, result):
    pgid = int((work / "pgid").read_text())
    deadline = time.time() + 5  # the killed workers are reaped by init
    while time.time() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.killpg(pgid, signal.SIGKILL)
        return "orphans"
    out = work / "out"
    if list(out.glob("*.tmp")):
        return "silent"
    rerun = execute([sys.executable, "data/fineweb_edu.py", "--data-files", str(GZ_SAMPLE), *CTRL_C,
                     "--out", str(out), "--workers", "2"])
    same = rerun.rc == 0 and shard_hashes(out) == shard_hashes(ctrl_c_reference(work.parent))
    return None if same else "silent"


# ----------------------------------------------------------------------------- §3 train.py on bad data

PREPARED = ["--val-tokens", "4096", "--shard-tokens", "8192", "--train-tokens", "32768", "--workers", "1"]


def prepared_copy(work):
    """A private copy of a folder prepared by data/fineweb_edu.py (made once): 4 train shards."""
    prepared = work.parent / "prepared"
    if not prepared.exists():
        must([sys.executable, "data/fineweb_edu.py", "--data-files", str(SAMPLE), *PREPARED,
              "--out", str(prepared)])
    return shutil.copytree(prepared, work / "data")


def incomplete_preparation(work):
    must([sys.executable, "data/fineweb_edu.py", "--data-files", str(SAMPLE), *PREPARED,
          "--out", str(work / "data"), "--stop-after-shards", "2"])
    return train_argv(work, data_dir=work / "data")


def on_prepared(change=lambda data: None, **overrides):
    def run(work):
        change(prepared_copy(work))
        return train_argv(work, data_dir=work / "data", **overrides)
    return run


def check_val_fix_works(work, result):
    if "raise val_tokens" in result.stderr or "--val_tokens=" not in result.stderr:
        return "wrong fix"
    fix = result.stderr.split("--val_tokens=")[1].split(")")[0]
    rerun = execute(train_argv(work, data_dir=work / "data", val_tokens=fix))
    return None if rerun.rc == 0 else "wrong fix"


def check_one_note(work, result):
    notes = [line for line in result.stdout.splitlines() if line.startswith("note:")]
    return None if len(notes) == 1 and "manifest" in notes[0] else "silent"


# ----------------------------------------------------------------------------- §6 eval and probes

def tiny_checkpoint(work):
    """A tiny bpe run to step 3 (made once): (its checkpoint, its runs folder)."""
    tiny = work.parent / "tiny"
    if not tiny.exists():
        tiny.mkdir()
        must(train_argv(tiny, max_steps=3))
    return tiny / "out" / "run" / "ckpt_000003.pt", tiny / "runs"


def eval_argv(module, *args):
    return [sys.executable, "-m", f"eval.{module}", *map(str, args)]


def val_loss_with(*flags):
    return lambda work: eval_argv("val_loss", tiny_checkpoint(work)[0], "--device", "cpu", *flags)


def pairs_file(content):
    """eval.robustness on a pairs file holding `content` (bytes, or a function of work)."""
    def run(work):
        (work / "pairs.jsonl").write_bytes(content)
        return eval_argv("robustness", "--ckpt", f"bpe={tiny_checkpoint(work)[0]}", "--pairs",
                         work / "pairs.jsonl", "--out", work / "probes", "--device", "cpu")
    return run


LONG_PAIRS = b"".join(json.dumps({"category": "long", "clean": "the cat sat on the mat " * 20 + word,
                                  "typo": "the cat sat on the mat " * 20 + typo}).encode() + b"\n"
                      for word, typo in [("house", "hosue"), ("garden", "gardne"), ("river", "rvier")])


def check_cut_note(work, result):
    report = (work / "probes" / "robustness.md")
    said = "cut to their last" in result.stdout + (report.read_text() if report.exists() else "")
    return None if said else "silent"


def report_into_a_file(module):
    def run(work):
        (work / "f").write_text("")
        return eval_argv(module, "--runs", tiny_checkpoint(work)[1], "--out", work / "f" / "x")
    return run


def edited_log(module, key, value):
    """eval.<module> on a copy of the tiny run whose first `key` in log.jsonl is `value`."""
    def run(work):
        runs = shutil.copytree(tiny_checkpoint(work)[1], work / "runs")
        log = runs / "run" / "log.jsonl"
        lines = log.read_text().splitlines()
        at = next(i for i, line in enumerate(lines) if f'"{key}"' in line)
        lines[at] = json.dumps({**json.loads(lines[at]), key: value})
        log.write_text("\n".join(lines) + "\n")
        extra = ["--out", work / "summary"] if module == "summarize" else []
        return eval_argv(module, "--runs", runs, *extra)
    return run


def hellaswag_offline(work):
    (work / "hellaswag").mkdir()
    return eval_argv("hellaswag", tiny_checkpoint(work)[0], "--cache-dir", work / "hellaswag",
                     "--limit", "10", "--device", "cpu")


# ----------------------------------------------------------------------------- §7 issue 21

SWEEP_ENV = dict(SEEDS="7", ARMS="bpe kronecker", CONFIG="config/cpu_tiny.py")


def sweep_with_a_broken_python(work):
    """PYTHON an interpreter that cannot run run_folder.py (here: one without torch)."""
    python = work / "python"
    python.write_text("#!/bin/sh\necho \"ModuleNotFoundError: No module named 'torch'\" >&2\nexit 1\n")
    python.chmod(0o755)
    (work / "launcher.sh").write_text(f'echo "$@" >> {work}/launched\n')
    done = execute(["bash", "scripts/sweep.sh"], env=dict(SWEEP_ENV, PYTHON=str(python), LOG_DIR=str(work / "runs"),
                                                          LAUNCH=f"bash {work / 'launcher.sh'}"))
    # the sweep's own words, without the interpreter's
    return Result(done.rc, done.stderr.replace("ModuleNotFoundError: No module named 'torch'\n", ""), done.stdout)


def check_nothing_launched(work, result):
    return "silent" if (work / "launched").exists() else None


def sweep_beside_another(work):
    """Another sweep's train.py holds bpe_s7 (its lock) and finishes it while this sweep waits."""
    from run_folder import RunFolder
    from train_config import load_config
    other = RunFolder(work / "runs", work / "out", "bpe_s7")
    other.lock()
    (work / "launcher.sh").write_text(f'echo "$@" >> {work}/launched\n'
                                      'case "$*" in *--run_name=bpe_s7*) echo "error: in use" >&2; exit 2 ;; esac\n')
    env = dict(os.environ, **SWEEP_ENV, LOG_DIR=str(work / "runs"), OUT_DIR=str(work / "out"),
               LAUNCH=f"bash {work / 'launcher.sh'}")
    proc = subprocess.Popen(["bash", "scripts/sweep.sh"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    out, deadline = "", time.time() + TIMEOUT_S
    while "waiting for the other process" not in out and time.time() < deadline and proc.poll() is None:
        out += proc.stdout.readline()
    cfg = load_config(["config/cpu_tiny.py", "--arm=bpe", "--seed=7", "--run_name=bpe_s7",
                       f"--log_dir={work / 'runs'}", f"--out_dir={work / 'out'}", "--resume=auto"])
    (other.log_dir / "config.json").write_text(json.dumps(dict(dataclasses.asdict(cfg), attempt="a")))
    (other.log_dir / "summary.json").write_text(json.dumps(dict(final_step=cfg.max_steps, finished=True)))
    other.unlock()  # the other one finished it
    try:
        rest, err = proc.communicate(timeout=TIMEOUT_S)
        return Result(proc.returncode, err, out + rest)
    except subprocess.TimeoutExpired:
        proc.kill()
        return Result(None, "")


def check_finished_by_the_other(work, result):
    said = "== bpe_s7: finished by another process" in result.stdout and "failed" not in result.stderr
    return None if said else "silent"


def wandb_resumed(work):
    env = dict(WANDB_MODE="offline", WANDB_DIR=str(work), WANDB_SILENT="true")
    first = execute(train_argv(work, wandb_log=True, max_steps=3), env=env, timeout=3 * TIMEOUT_S)
    if first.rc != 0:  # (wandb starts a service process: slow on a busy machine)
        return first
    return execute(train_argv(work, wandb_log=True, max_steps=6), env=env, timeout=3 * TIMEOUT_S)


def check_one_wandb_run(work, result):
    wandb_id = json.loads((work / "runs" / "run" / "config.json").read_text())["wandb_run_id"]
    launches = list((work / "wandb").glob("offline-run-*"))
    return None if len(launches) == 2 and all(p.name.endswith(wandb_id) for p in launches) else "silent"


RANK_1_ALONE = """
import os, sys
import errors, train
if os.environ["RANK"] == "1":
    os.chdir(sys.argv.pop(1))  # its node: no data folder where it runs
else:
    sys.argv.pop(1)
errors.OTHER_RANK_WAIT_S = 3600  # the old path (rank 1 waits, then prints) would hang the case
errors.run_main(lambda: train.main(sys.argv[1:]))
"""


def rank_1_alone(work):
    """2 gloo ranks; the data folder (relative) is missing on rank 1 only: rank 0 prints it at once."""
    shutil.copytree(work.parent / "data", work / "shards")
    (work / "rank_1_alone.py").write_text(RANK_1_ALONE)
    (work / "elsewhere").mkdir()
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            "rank_1_alone.py", str(work / "elsewhere"), *train_argv(work, data_dir="shards")[2:]]
    done = execute(argv, cwd=work, env=dict(PYTHONPATH=str(REPO)))
    mine = [line for line in done.stderr.splitlines() if line.startswith("error")]
    if done.rc is not None and len(mine) == 1:
        return Result(2, mine[0])  # torchrun reports the failed workers after it (as for SIGTERM)
    return done


def from_another_directory(work):
    argv = train_argv(work, data_dir="data/fineweb_edu_drill")  # relative: to the current directory
    return execute([argv[0], str(REPO / "train.py"), *argv[2:]], cwd=work)


def without_tiktoken_cache_dir(work):
    """vocab_size unset loads GPT-2's tokenizer: found in ../shared/tiktoken_cache by tokenizer.py."""
    return execute(train_argv(work, vocab_size="None", max_steps=2), unset=("TIKTOKEN_CACHE_DIR",))


def piped_stdout(work):
    """train.py | tee: its first line must come while it runs, not at exit."""
    proc = subprocess.Popen(train_argv(work, **LONG), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    first = proc.stdout.readline()
    (work / "early").write_text(f"{proc.poll() is None}\n{first}")
    out, err = proc.communicate(timeout=TIMEOUT_S)
    return Result(proc.returncode, err, first + out)


def check_lines_came_early(work, result):
    running, first = (work / "early").read_text().split("\n", 1)
    return None if running == "True" and first.strip() and "mfu n/a" in result.stdout else "silent"


CASES = [
    # §1 run folders
    Case("finished run, no checkpoint, same command", "ok", rerun_finished_without_checkpoints({}),
         unchanged("before.json")),
    Case("finished run, no checkpoint, more steps", "clear error",
         rerun_finished_without_checkpoints({"max_steps": 9, **EXTEND}), unchanged("before.json")),
    Case("unfinished log, no checkpoint", "clear error", unfinished_log_without_checkpoint,
         unchanged("before.json")),
    Case("--resume=never keeps the old records", "ok", resume_never_keeps_old, check_old_log_kept),
    Case("A to 6, B never to 3, B to 6, keep 1", "ok", attempts_a_b, check_b_resumed_and_kept),
    Case("second process, same run_name", "clear error", second_process),
    Case("rerun after the lock holder got kill -9", "ok", after_kill_9),
    Case("torn last log line, then resume", "ok", torn_last_line, check_clean_append),
    Case("non-finite weights after a finite-loss step", "clear error", poisoned(2, "inf"),
         check_strict_log_and_no_bad_checkpoint),
    Case("NaN loss after a good checkpoint", "clear error", poisoned(3, "nan", first=True, max_steps=6, **EXTEND),
         check_strict_log_and_no_bad_checkpoint),
    Case("resume with another val_tokens", "clear error", val_tokens_changed),
    # §2 stop signals
    Case("SIGTERM mid-run, rerun bit-exact", "stopped", signalled(signal.SIGTERM),
         check_sigterm_resume_bit_exact),
    Case("SIGUSR1 mid-run", "stopped", signalled(signal.SIGUSR1)),
    Case("Ctrl-C (SIGINT) mid-run", "interrupted", signalled(signal.SIGINT, eval_interval=1000, ckpt_interval=1000,
                                                       max_steps=1000),
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
    # issue 21 / 23: rewinds, changed settings, data identity, disks, long runs, background writes
    Case("rewind to ckpt 2, SIGTERM, plain rerun", "stopped", rewind_then_sigterm,
         check_branch_kept_and_rerun_consistent),
    Case("NaN loss: the advice followed literally", "clear error", poisoned(4, "nan"), check_advice_works),
    Case("max_steps raised without --allow_change", "clear error", max_steps_raised({}), check_refused_alike),
    Case("max_steps raised, --allow_change=max_steps", "ok", max_steps_raised(EXTEND), check_change_recorded),
    Case("resume on other data, same shard sizes", "clear error",
         resume_on(lambda work: same_sizes_other_tokens(work.parent / "data", work / "other")),
         names("data: content (same shard sizes")),
    Case("resume via a symlink and a trailing slash", "ok", resume_on(linked_data)),
    Case("truncated newest checkpoint", "ok", truncated_newest, check_named_truncated),
    Case("run longer than its data", "ok", lambda work: train_argv(work, data_dir=short_data(work), max_steps=10),
         check_passes_said),
    Case("run longer than its data, max_epochs=1", "clear error",
         lambda work: train_argv(work, data_dir=short_data(work), max_steps=10, max_epochs=1), names("max_epochs=1")),
    Case("out_dir on a 50 MB tmpfs, keep_checkpoints=2", "clear error", lambda work: on_tmpfs(work, 50),
         names("keep_checkpoints=2")),
    Case("disk fills mid-checkpoint (80 MB tmpfs)", "clear error",
         lambda work: on_tmpfs(work, 80, FILL_AFTER_CKPT_3), check_records_intact),
    Case("slow write, SIGTERM during it, 2 gloo ranks", "stopped", slow_write_two_ranks,
         check_both_checkpoints_good),
    # §4 the data preparer: bad records, files, manifests, offline, Ctrl-C
    Case("prepare: text null on line 2", "clear error", bad_record(b'{"text": null}'),
         names("{work}/docs.jsonl, line 2")),
    Case("prepare: text missing on line 2", "clear error", bad_record(b'{"body": "x"}'),
         names("{work}/docs.jsonl, line 2")),
    Case("prepare: text a number on line 2", "clear error", bad_record(b'{"text": 42}'),
         names("{work}/docs.jsonl, line 2")),
    Case("prepare: invalid UTF-8 on line 2", "clear error", bad_record(b'{"text": "caf\xe9"}'),
         names("{work}/docs.jsonl, line 2")),
    Case("prepare: malformed JSON on line 2", "clear error", bad_record(b'{"text": "unterminated'),
         names("{work}/docs.jsonl, line 2")),
    Case("prepare: --bad-records=skip, text null", "ok",
         bad_record(b'{"text": null}', flags=["--bad-records=skip"]), check_one_bad_record_counted),
    Case("prepare: empty file", "clear error", bad_file("docs.jsonl", b""), names("{work}/docs.jsonl")),
    Case("prepare: truncated gzip", "clear error",
         bad_file("docs.jsonl.gz", gzip.compress(b"\n".join(GOOD))[:-40]), names("{work}/docs.jsonl.gz")),
    Case("prepare: .gz that is not gzip", "clear error", bad_file("docs.jsonl.gz", b"\n".join(GOOD)),
         names("{work}/docs.jsonl.gz")),
    Case("prepare: .parquet that is JSONL", "clear error", bad_file("docs.parquet", b"\n".join(GOOD)),
         names("{work}/docs.parquet")),
    Case("prepare: --out is a file", "clear error",
         lambda work: (work.joinpath("f").write_text(""), prep_argv(work, SAMPLE, out="f"))[1]),
    Case("prepare: --val-tokens 1e12", "clear error",
         lambda work: prep_argv(work, SAMPLE, flags=["--val-tokens", "1e12"])),
    Case("prepare: truncated manifest, rerun", "clear error",
         broken_manifest(lambda work: (work / "out" / "manifest.json").read_text()[:100])),
    Case("prepare: manifest without settings, rerun", "clear error",
         broken_manifest(lambda work: json.dumps({"shards": []}))),
    Case("prepare: hub offline, no --data-files", "clear error",
         with_env(lambda work: [sys.executable, "data/fineweb_edu.py", "--out", str(work / "o")],
                  HF_HUB_OFFLINE="1"), names("--data-files")),
    Case("prepare: offline, empty TIKTOKEN_CACHE_DIR", "clear error", empty_tiktoken_cache,
         names("TIKTOKEN_CACHE_DIR={work}/empty")),
    Case("prepare: source changed, rerun", "clear error", source_changed,
         names("{work}/docs.jsonl changed since")),
    Case("prepare: failed start, retry other settings", "ok", failed_start_then_retry),
    Case("prepare: Ctrl-C, 2 workers, after val shard", "interrupted", ctrl_c("val_000000.bin"),
         check_ctrl_c),
    Case("prepare: Ctrl-C, 2 workers, after train 1", "interrupted", ctrl_c("train_000001.bin"),
         check_ctrl_c),
    Case("prepare: Ctrl-C, 2 workers, after train 2", "interrupted", ctrl_c("train_000002.bin"),
         check_ctrl_c),
    # §3 train.py on bad data
    Case("train: preparation incomplete", "clear error", incomplete_preparation,
         names("only partly prepared")),
    Case("train: token ids >= vocab_size=256", "clear error", on_prepared(vocab_size=256)),
    Case("train: val shard < val_tokens=100000", "clear error", on_prepared(val_tokens=100000),
         check_val_fix_works),
    Case("train: a listed train shard deleted", "clear error",
         on_prepared(lambda data: (data / "train_000002.bin").unlink()), names("train_000002.bin")),
    Case("train: no manifest.json", "ok", on_prepared(lambda data: (data / "manifest.json").unlink()),
         check_one_note),
    # §6 eval scripts and probes
    Case("robustness: prompts longer than the context", "ok", pairs_file(LONG_PAIRS), check_cut_note),
    Case("val_loss --val-tokens 0", "clear error", val_loss_with("--val-tokens", "0")),
    Case("val_loss --val-tokens -5", "clear error", val_loss_with("--val-tokens", "-5")),
    Case("val_loss --batch-size 0", "clear error", val_loss_with("--batch-size", "0")),
    Case("neighbors --codec-pos-dim 0", "clear error",
         lambda work: eval_argv("neighbors", "--ckpt", f"x={tiny_checkpoint(work)[0]}", "--codec-pos-dim",
                                "0", "--out", work / "probes", "--device", "cpu")),
    Case("robustness: binary pairs file", "clear error", pairs_file(bytes(range(256)) * 4),
         names("{work}/pairs.jsonl")),
    Case("robustness: latin-1 pairs file", "clear error",
         pairs_file('{"clean": "un café", "typo": "un cafe"}\n'.encode("latin-1")), names("{work}/pairs.jsonl")),
    Case("summarize --out <a file>/x", "clear error", report_into_a_file("summarize")),
    Case("plot_curves --out <a file>/x", "clear error", report_into_a_file("plot_curves")),
    Case('summarize: log "val_loss": "3.1x"', "clear error", edited_log("summarize", "val_loss", "3.1x")),
    Case('steps_to_target: log "val_loss": "3.1x"', "clear error",
         edited_log("steps_to_target", "val_loss", "3.1x")),
    Case('summarize: log "step": "x"', "clear error", edited_log("summarize", "step", "x")),
    Case('steps_to_target: log "step": "x"', "clear error", edited_log("steps_to_target", "step", "x")),
    Case("hellaswag offline, no cached file", "clear error", hellaswag_offline,
         names("{work}/hellaswag/hellaswag_val.jsonl")),
    # §7 issue 21: the sweep's own failures, W&B on resume, one rank's error, a newcomer's frictions
    Case("sweep: the skip check crashes", "clear error", sweep_with_a_broken_python, check_nothing_launched),
    Case("sweep: a run another sweep trains", "ok", sweep_beside_another, check_finished_by_the_other),
    Case("W&B offline, preempted and resumed", "ok", wandb_resumed, check_one_wandb_run),
    Case("torchrun: only rank 1 lacks the data", "clear error", rank_1_alone, names("error: rank 1 (")),
    Case("dropout=1.5 offline, no tokenizer files", "clear error",
         with_env(lambda work: train_argv(work, dropout=1.5, vocab_size="None"), TIKTOKEN_CACHE_DIR="{work}"),
         names("'dropout' must be in [0, 1)")),
    Case("compile=yes", "clear error", bad(compile="yes"), names("expected True or False")),
    Case("train.py from another directory", "clear error", from_another_directory,
         names("relative to the current directory, {work}")),
    Case("no TIKTOKEN_CACHE_DIR, ../shared beside the repo", "ok", without_tiktoken_cache_dir),
    Case("stdout piped: lines while training, mfu n/a", "ok", piped_stdout, check_lines_came_early),
    Case("prepare: lone surrogate on line 2", "clear error", bad_record(b'{"text": "a \\ud83d b"}'),
         names("{work}/docs.jsonl, line 2: invalid text")),
    Case("prepare: --bad-records=skip, lone surrogate", "ok",
         bad_record(b'{"text": "a \\ud83d b"}', flags=["--bad-records=skip"]), check_one_bad_record_counted),
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
    # Started in the background (`... &`, nohup, a CI runner), this process and every child would
    # ignore SIGINT, and the Ctrl-C cases would test nothing: the default again, for the children
    signal.signal(signal.SIGINT, signal.default_int_handler)
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
            detail = (message_lines(result.stderr) or [""])[-1].replace(str(work), "<case>")
            detail = detail.replace(tmp, "<tmp>").replace(str(REPO.parent), "..")[:100]
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
