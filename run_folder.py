"""What a run is, and what of it may be resumed, pruned or scored: the one place that decides.

A run is a run_name with two folders: its records in <log_dir>/<run_name>/ (config.json,
log.jsonl, summary.json) and its checkpoints in <out_dir>/<run_name>/ckpt_<step>.pt. An
*attempt* is one start from scratch: a new id (UTC time + random hex) written to config.json
("attempt") and into every checkpoint ("attempt"). Resuming continues the attempt; starting over
makes a new one. Rules (docs/training.md, "Reliability"):

- resume="auto" continues the newest checkpoint of the attempt named in config.json; checkpoints
  of other attempts are never resumed, kept or pruned as this run's; a truncated or unreadable
  one is named as such in a note and skipped. A folder whose config.json (or a checkpoint whose
  train_config) records a different run is refused, naming what differs (run_differences: any
  key but NOT_RUN_DEFINING, and the data by its content, data.shards.data_identity, never by
  its path): a toy run and a paper run of one name never mix.
- Changed settings: the keys named in allow_change (at most train_config.CHANGEABLE: the
  optimiser and its schedule, max_steps too) may differ from the resumed checkpoint's; each
  change is recorded with its step (config_changes), in log.jsonl and in config.json's
  "config_changes" history, so the run reads as the mixed schedule it is. The sweep's question
  (skip) applies the same rule.
- Branches: resuming at step s (the newest checkpoint, or --resume=PATH of an older one: a
  rewind) continues the run from s; what lies past s is an abandoned future and moves aside
  before training (resume_at): checkpoints past s into <out_dir>/<run_name>/old.<UTC>/, the log
  lines past s out of log.jsonl (the whole previous file kept as log.<UTC>.jsonl). Those are
  never resumed again (a path inside old.* is refused) nor pruned.
- A finished run (summary.json, finished true) is never touched by resume="auto" unless it has
  a checkpoint to extend from (--max_steps=N --allow_change=max_steps): at its own max_steps
  there is nothing to do; with no checkpoint it is refused. An unfinished log with no checkpoint
  is refused too (never silently replaced): --resume=never or another run_name are the ways on.
- resume="never" moves the old records aside (log.jsonl -> log.<UTC>.jsonl, the same for
  summary.json and config.json) and the old checkpoints into <out_dir>/<run_name>/old.<UTC>/,
  saying so in one line. A new attempt that finds only another attempt's checkpoints (its
  records are gone) moves them aside the same way. Nothing is deleted.
- A resumed run moves an existing summary.json aside once its checks pass: a crash then leaves
  no stale "finished": true.
- Pruning keeps the newest keep_checkpoints of the current attempt at or before the step just
  written, and those of save_steps; never another attempt's, never a moved-aside one.
- One process per run: rank 0 holds an flock on <folder>/.lock in both folders (released by the
  kernel when a process dies, so kill -9 leaves nothing stuck).
- log.jsonl is strict JSON, one object per line: NaN / Infinity are written as null and listed in
  the record's "nonfinite" field; a torn last line (crash or full disk mid-write) is cut before
  the next append.

    python run_folder.py checkpoint --log_dir results/runs --out_dir out --run_name bpe_s1337
    python run_folder.py finished --log_dir results/runs --run_name bpe_s1337   # exit 0 if so
    python run_folder.py skip -- config/bpe_124m.py --seed=1337 ...   # the sweep: 0 skip, 10 launch
    python run_folder.py wait -- config/bpe_124m.py --seed=1337 ...   # until no process trains it
    python run_folder.py lr_tag 3e-4 0.0006 1.2e-3    # "3e-4 6e-4 1.2e-3": the lr sweep's spelling

An lr sweep (scripts/sweep.sh LRS=...) names its runs <arm>_lr<tag>_s<seed>, the tag spelling
max_lr one way (lr_tag), so 6e-4 and 0.0006 are one run; max_lr defines the run like every
optimiser key.
"""
import argparse
import dataclasses
import datetime
import fcntl
import json
import math
import os
import re
import secrets
import shutil
import sys
from pathlib import Path

from atomic import DISK_FULL_ERRNOS, atomic_write_json, atomic_write_text, disk_full_error
from checkpoint import checkpoint_attempt, list_checkpoints, prune_checkpoints
from data.shards import data_differences, data_identity
from errors import UserError
from train_config import CHANGEABLE, FIELD_DEFAULTS, MAX_LR, allowed_changes, load_config

RECORDS = ("log.jsonl", "summary.json", "config.json")
# log.jsonl lines train.py writes at a step after that step's checkpoint (a resume writes them again)
AFTER_CHECKPOINT = {"config_change", "data_pass"}
# TrainConfig keys that do not define a run, so records that differ only in them are the same
# run: where its files are (out_dir, log_dir, run_name, hellaswag_dir; data_dir: the data itself
# is compared by content, data_identity), how it starts (resume, allow_change), where and how
# fast it executes the same mathematics (device, compile, dist_backend, dist_timeout, kronecker_mode: one
# function three ways; micro_batch_size: the same total batch in other micro-steps;
# activation_checkpointing: recomputation), what is printed or kept on disk (log_interval:
# log.jsonl has every step either way; ckpt_interval, keep_checkpoints, save_steps), what it
# refuses (max_epochs) and reporting (peak_flops: MFU only; wandb_*). Every other key defines
# the run: model, tokenizer, seeds, data, optimiser, schedule (max_steps too: the cosine ends
# there), dtype, and what the recorded curve holds (eval_interval, val_tokens,
# hellaswag_interval). A key added to TrainConfig counts unless it is listed here.
NOT_RUN_DEFINING = ("out_dir", "log_dir", "run_name", "hellaswag_dir", "data_dir", "resume", "allow_change",
                    "device", "compile", "dist_backend", "dist_timeout", "kronecker_mode", "micro_batch_size",
                    "activation_checkpointing", "log_interval", "ckpt_interval", "keep_checkpoints",
                    "save_steps", "max_epochs", "peak_flops", "wandb_log", "wandb_project")
# `run_folder.py skip` answers the sweep by its exit code. "Launch" is not 1 (an uncaught
# exception's) nor 2 (a UserError's): a check that crashes (a wrong interpreter, a bug) must stop
# the sweep, never launch over a finished run. Any code but these three stops it.
SKIP_EXIT_CODE = 0      # finished with this config: skip it
LAUNCH_EXIT_CODE = 10   # train.py has work to do (nothing recorded, unfinished, --resume=never)
IN_USE_EXIT_CODE = 11   # another process is training it now: come back to it later


def config_differences(recorded, current, allowed=()):
    """[(key, recorded value, current value)]: the run-defining keys (every TrainConfig key but
    NOT_RUN_DEFINING and `allowed`) whose values differ between two configs (dicts: a config.json,
    a checkpoint's "train_config", or a TrainConfig's fields), in TrainConfig's order.

    A key a config lacks (written before the key existed) counts as its default, except keys
    whose default is None (arm, data_seed, vocab_size, run_name): load_config resolves those from
    other keys, which are compared themselves. Keys TrainConfig no longer has are not compared.
    The one rule for "the same run": resume, the sweep's skip and the quickstart's reference.
    """
    differences = []
    for key, default in FIELD_DEFAULTS.items():
        if key in NOT_RUN_DEFINING or key in allowed:
            continue
        if default is None and (key not in recorded or key not in current):
            continue
        theirs, mine = recorded.get(key, default), current.get(key, default)
        if as_json(theirs) != as_json(mine):
            differences.append((key, theirs, mine))
    return differences


def run_differences(recorded, cfg, allowed=(), data=None):
    """["what recorded != now", ...]: config_differences between `recorded` (a config.json or a
    checkpoint's "train_config": a dict) and cfg (a TrainConfig), then how the recorded data
    differs from `data` (this run's data_identity; compared when given and recorded: "data: ...").
    A record from before data identities compares data_dir as a resolved path.
    """
    differences = [f"{key} {theirs!r} != {mine!r}"
                   for key, theirs, mine in config_differences(recorded, dataclasses.asdict(cfg), allowed)]
    if recorded.get("data_identity"):
        if data is not None:
            differences += [f"data: {d}" for d in data_differences(recorded["data_identity"], data)]
    elif "data_dir" in recorded and Path(recorded["data_dir"]).resolve() != Path(cfg.data_dir).resolve():
        differences.append(f"data_dir {recorded['data_dir']!r} != {cfg.data_dir!r}")
    return differences


def lr_tag(lr):
    """max_lr (a float) as run names spell it: mantissa without trailing zeros, 'e', exponent:
    6e-4 -> '6e-4', 0.0012 -> '1.2e-3', 3e-3 -> '3e-3', 1.0 -> '1e0'."""
    mantissa, exponent = f"{lr:.6e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def lr_tags(texts):
    """The lr_tag of each learning rate given as text (the sweep's LRS), in order. Raises UserError
    for text that is not a number in (0, MAX_LR], or for two spellings of one lr."""
    tags = []
    for text in texts:
        try:
            lr = float(text)
        except ValueError:
            lr = math.nan
        if not 0 < lr <= MAX_LR:  # also NaN and inf
            raise UserError(f"LRS: {text!r} is not a learning rate in (0, {MAX_LR}]; write e.g. "
                            'LRS="3e-4 6e-4 1.2e-3"')
        if lr_tag(lr) in tags:
            raise UserError(f"LRS: {text!r} is {lr_tag(lr)}, listed twice; list each learning rate once")
        tags.append(lr_tag(lr))
    return tags


def changed_keys(recorded, cfg):
    """The CHANGEABLE keys whose value in `recorded` differs from cfg's."""
    return [k for k in CHANGEABLE if as_json(recorded.get(k, FIELD_DEFAULTS[k])) != as_json(getattr(cfg, k))]


def config_changes(recorded, cfg):
    """{key: [recorded value, cfg's value]} of the keys cfg.allow_change names that differ: what a
    resume changes (recorded: the resumed checkpoint's train_config)."""
    allowed = allowed_changes(cfg)
    return {k: [recorded.get(k, FIELD_DEFAULTS[k]), getattr(cfg, k)]
            for k in changed_keys(recorded, cfg) if k in allowed}


def as_json(value):
    """value as config.json holds it (a tuple is a list there)."""
    return list(value) if isinstance(value, tuple) else value


def different_run(what, differences, advice):
    """The one-line UserError for `what` (a folder or checkpoint) recording another run."""
    return UserError(f"{what} holds a different run (recorded != now: {', '.join(differences)}); {advice}")


def utc_stamp():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def new_attempt_id():
    """A fresh attempt id, e.g. "20260101T120000Z-3fa2c1": readable and unique."""
    return f"{utc_stamp()}-{secrets.token_hex(3)}"


def fmt_bytes(n):
    """A size in words: 1.49 GB, 312 KB."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f} bytes"


@dataclasses.dataclass
class Start:
    """How a run starts: the checkpoint to resume (None: from scratch), its attempt, and
    nothing_to_do when the run is already finished at the requested max_steps."""
    checkpoint: Path = None
    attempt: str = None
    nothing_to_do: bool = False


class RunFolder:
    """The records and checkpoints of one run_name; see the module docstring for the rules."""

    def __init__(self, log_dir, out_dir, run_name):
        self.name = run_name
        self.log_dir = Path(log_dir) / run_name
        self.ckpt_dir = Path(out_dir) / run_name
        self.lock_fds = []

    # ------------------------------------------------------------------ reading

    def summary(self):
        """summary.json as a dict, or None when absent."""
        path = self.log_dir / "summary.json"
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise UserError(f"cannot read {path} ({err}); move it away to resume the run") from None

    def finished(self):
        summary = self.summary()
        return bool(summary and summary.get("finished"))

    def recorded_config(self):
        """config.json as a dict (the config of the run's latest start), or None when absent."""
        path = self.log_dir / "config.json"
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise UserError(f"cannot read {path} ({err}); move it away or use --resume=never") from None

    def attempt(self):
        """(has config.json, its attempt id or None for runs older than attempts)."""
        recorded = self.recorded_config()
        return recorded is not None, (recorded or {}).get("attempt")

    def scan(self, attempt):
        """The checkpoint folder's top-level checkpoints, oldest first, as three lists of
        (step, path): the attempt's, other attempts', and those that cannot be read (truncated,
        or not train.py's)."""
        mine, others, unreadable = [], [], []
        for step, path in list_checkpoints(self.ckpt_dir):
            try:
                (mine if checkpoint_attempt(path) == attempt else others).append((step, path))
            except UserError:
                unreadable.append((step, path))
        return mine, others, unreadable

    def checkpoints(self, attempt):
        """[(step, path)] of the attempt's readable checkpoints, oldest first."""
        return self.scan(attempt)[0]

    def latest_checkpoint(self):
        """The current attempt's newest checkpoint (what eval scores as "the run"), or None."""
        has_config, attempt = self.attempt()
        mine = self.checkpoints(attempt) if has_config else []
        return mine[-1][1] if mine else None

    def has_log(self):
        path = self.log_dir / "log.jsonl"
        return path.exists() and path.stat().st_size > 0

    def change_history(self, before_step):
        """config.json's "config_changes" records (config_change_record) at steps before
        `before_step`: the changes of the branch a resume at that step continues."""
        recorded = self.recorded_config() or {}
        return [c for c in recorded.get("config_changes", []) if c["step"] < before_step]

    # ------------------------------------------------------------------ starting

    def lock(self):
        """Take an exclusive flock on .lock in both folders (created and write-probed here), so
        a second process training this run is refused; unlock() (or process death) releases it.

        Raises UserError when another process holds it, or a folder is read-only or full.
        """
        for folder in dict.fromkeys(p.resolve() for p in (self.log_dir, self.ckpt_dir)):
            self.lock_fds.append(lock(folder, self.name))

    def unlock(self):
        while self.lock_fds:
            os.close(self.lock_fds.pop())

    def lock_files(self):
        """The .lock files of the run's folders that exist (lock() creates them)."""
        paths = dict.fromkeys(p.resolve() / ".lock" for p in (self.log_dir, self.ckpt_dir))
        return [p for p in paths if p.is_file()]

    def in_use(self, wait=False):
        """Whether another process holds the run's lock (lock()), without taking it or writing
        anything; wait=True first waits until none does (the sweep, deferring a run that another
        sweep is training). A shared flock, held only for the probe: it conflicts with lock()'s
        exclusive one."""
        for path in self.lock_files():
            fd = os.open(path, os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                return True
            except OSError:  # a file system without flock: lock() goes without it too
                pass
            finally:
                os.close(fd)
        return False

    def start(self, cfg, data=None):
        """Decide how the run of cfg (a TrainConfig; its resume, max_steps, allow_change) on
        `data` (its data_identity) starts (see the rules) and move records aside where they say
        so (resume="never", a new attempt). What lies past the resumed step moves aside later,
        in resume_at, once train.py's checks of the checkpoint have passed.

        Rank 0 only. Raises UserError for records of a different run, a finished run that
        cannot be extended, an unfinished log without a checkpoint, a resume path of another
        attempt or moved aside, or a missing resume path.
        """
        resume, max_steps = cfg.resume, cfg.max_steps
        if resume == "never":
            self.move_aside("--resume=never", checkpoints=list_checkpoints(self.ckpt_dir))
            return Start(None, new_attempt_id())
        if resume != "auto":
            return self.start_from_path(Path(resume))
        summary, recorded = self.summary(), self.recorded_config()
        has_config, attempt = recorded is not None, (recorded or {}).get("attempt")
        if has_config and (summary or self.has_log()):
            self.check_same_run(recorded, cfg, f"run {self.name}: {self.log_dir}", data)
        if summary and summary.get("finished"):
            final = summary.get("final_step")
            if final == max_steps:
                return Start(nothing_to_do=True)
            if final is not None and final > max_steps:
                raise UserError(f"run {self.name} is finished at step {final}, past max_steps "
                                f"({max_steps}); to extend it raise max_steps (with "
                                "--allow_change=max_steps), or --resume=never to train it again (the "
                                "old records are kept, moved aside)")
        mine, others, unreadable = self.scan(attempt) if has_config else ([], [], [])
        for _, path in unreadable:
            print(f"note: checkpoint {path} cannot be read (truncated, or not a train.py checkpoint); "
                  "skipped: the run resumes from its newest readable checkpoint")
        if mine:
            if others:
                print(f"note: {len(others)} checkpoint(s) in {self.ckpt_dir} belong to another attempt "
                      f"of run {self.name}; ignored")
            return Start(mine[-1][1], attempt)
        if summary or self.has_log():
            what = (f"is finished ({self.log_dir / 'summary.json'})" if summary and summary.get("finished")
                    else f"has an unfinished log ({self.log_dir / 'log.jsonl'})")
            raise UserError(f"run {self.name} {what} and {self.ckpt_dir} holds no checkpoint of it to "
                            "continue from; to train it again use --resume=never (the old records are "
                            "kept, moved aside), or choose another run_name")
        self.move_aside("a new attempt", checkpoints=list_checkpoints(self.ckpt_dir), records=())
        return Start(None, new_attempt_id())

    def start_from_path(self, path):
        if not path.is_file():
            raise UserError(f"resume checkpoint {path} not found; use --resume=auto or --resume=never")
        home = self.ckpt_dir.resolve()
        if home in path.resolve().parents and path.resolve().parent != home:
            raise UserError(f"checkpoint {path} was moved aside from run {self.name} (an abandoned branch "
                            "or an earlier attempt) and is never resumed into it; to continue from it, "
                            f"give it a run of its own: --resume={path} --run_name=NEW_NAME")
        theirs = checkpoint_attempt(path)
        has_config, attempt = self.attempt()
        if (self.has_log() or self.summary()) and has_config and theirs != attempt:
            raise UserError(f"checkpoint {path} belongs to attempt {theirs}, but {self.log_dir} holds "
                            f"the records of attempt {attempt}; use another run_name, or "
                            "--resume=never to start over")
        return Start(path, theirs)

    def resume_at(self, step, ckpt_path):
        """Continue the run's branch at `step`, the step of the resumed checkpoint ckpt_path: what
        lies past it is an abandoned future (a rewind to an older checkpoint, or steps a crash
        lost) and moves aside, in one line: the checkpoints in ckpt_dir past step (and any other
        file of step itself) into old.<UTC>/, the log lines past step (and those of step that
        train.py writes anew, AFTER_CHECKPOINT) out of log.jsonl (the whole previous file kept as
        log.<UTC>.jsonl), and summary.json (a resumed run is unfinished until it finishes).

        Rank 0, called by train.py once every resume check has passed. Raises UserError,
        moving nothing, when a line of log.jsonl is not JSON.
        """
        log = self.log_dir / "log.jsonl"
        cut_torn_tail(log)
        lines = log.read_text().splitlines(keepends=True) if log.exists() else []
        kept = [line for n, line in enumerate(lines, start=1) if on_branch(log, n, line, step)]
        resumed = Path(ckpt_path).resolve()
        future = [(s, p) for s, p in list_checkpoints(self.ckpt_dir)
                  if s > step or (s == step and p.resolve() != resumed)]
        summary = self.log_dir / "summary.json"
        stamp = self.free_stamp(["log.jsonl", "summary.json"])
        moved = []
        if future:
            folder = self.ckpt_dir / f"old.{stamp}"
            folder.mkdir()
            for _, path in future:  # first the checkpoints: a crash now resumes at `step` anyway
                path.rename(folder / path.name)
            moved.append(f"{len(future)} checkpoint(s) past step {step} -> {folder}")
        if len(kept) < len(lines):
            aside = aside_name(log, stamp)
            atomic_write_text(aside, "".join(lines))
            atomic_write_text(log, "".join(kept))
            moved.append(f"{len(lines) - len(kept)} log line(s) past step {step}: log.jsonl -> "
                         f"{aside.name} (whole; log.jsonl keeps the steps up to {step})")
        if summary.exists():
            summary.rename(aside_name(summary, stamp))
            moved.append(f"summary.json -> {aside_name(summary, stamp).name}")
        if moved:
            print(f"resuming at step {step}: moved run {self.name}'s records past it aside (nothing "
                  "deleted): " + ", ".join(moved))

    def free_stamp(self, records):
        """A UTC stamp under which none of `records` (names in log_dir) nor old.<stamp>/ exists."""
        stamp, n = utc_stamp(), 0
        while any(aside_name(self.log_dir / r, stamp).exists() for r in records) or \
                (self.ckpt_dir / f"old.{stamp}").exists():
            n += 1  # a second move within the same second
            stamp = f"{utc_stamp()}-{n}"
        return stamp

    def move_aside(self, why, checkpoints=(), records=RECORDS):
        """Rename records to <stem>.<UTC>.<suffix> and checkpoints into old.<UTC>/; one line."""
        records = [self.log_dir / name for name in records if (self.log_dir / name).exists()]
        if not records and not checkpoints:
            return
        stamp, moved = self.free_stamp([p.name for p in records]), []
        for path in records:
            path.rename(aside_name(path, stamp))
            moved.append(f"{path.name} -> {aside_name(path, stamp).name}")
        if checkpoints:
            folder = self.ckpt_dir / f"old.{stamp}"
            folder.mkdir()
            for _, path in checkpoints:
                path.rename(folder / path.name)
            moved.append(f"{len(checkpoints)} checkpoint(s) -> {folder}")
        print(f"{why}: moved run {self.name}'s earlier records aside (nothing deleted): "
              + ", ".join(moved))

    def check_same_run(self, recorded, cfg, where, data=None):
        """Refuse to resume from `where` (words naming this run's folder, or a checkpoint file)
        when its recorded config (config.json, or the checkpoint's "train_config" with its
        "data_identity"; None for checkpoints that predate it: not checked) is of a different
        run than cfg (a TrainConfig) on `data` (its data_identity): run_differences, allowing
        the keys of cfg.allow_change. Raises UserError naming what differs and the ways on: when
        only CHANGEABLE keys differ, --allow_change with them."""
        allowed = allowed_changes(cfg)
        differences = run_differences(recorded, cfg, allowed, data) if recorded else []
        if not differences:
            return
        keep_both = ("to keep both, name this one (--run_name=NAME, or --log_dir and --out_dir), or "
                     "start over with --resume=never (the old records and checkpoints are moved aside, "
                     "not deleted)")
        changeable = [k for k in changed_keys(recorded, cfg) if k not in allowed]
        if len(changeable) == len(differences):  # only optimiser settings differ
            keys = ",".join(dict.fromkeys([*allowed, *changeable]))
            keep_both = (f"to continue this run with the change, recorded from its step on, add "
                         f"--allow_change={keys} (docs/training.md); " + keep_both)
        raise different_run(where, differences, keep_both)

    def skip(self, cfg):
        """The sweep's question: True when this folder holds cfg's run finished at cfg's max_steps
        (skip it), False when train.py has work to do (nothing recorded, cfg's run unfinished or
        to be extended, or resume="never").

        The same rule as train.py's: a recorded run that differs from cfg in anything but the
        keys cfg.allow_change names, or in its data (data_identity: by content), raises UserError
        (one line, naming what differs).
        """
        recorded = self.recorded_config()
        if recorded is None:
            if self.summary() or self.has_log():
                raise UserError(f"{self.name}: {self.log_dir} holds records without a config.json, so "
                                "which run they are cannot be told; move them aside")
            return False
        if cfg.resume == "never":  # the user asked to move them aside
            return False
        allowed = allowed_changes(cfg)
        data = data_identity(cfg.data_dir) if recorded.get("data_identity") else None
        differences = run_differences(recorded, cfg, allowed, data)
        if differences:
            changeable = [k for k in changed_keys(recorded, cfg) if k not in allowed]
            change = (", or continue it with the change recorded: --allow_change="
                      + ",".join(dict.fromkeys([*allowed, *changeable]))) if len(changeable) == len(differences) else ""
            raise different_run(f"{self.name}: {self.log_dir}", differences,
                                "give this sweep its own LOG_DIR and OUT_DIR to keep both, or move "
                                f"{self.log_dir} and {self.ckpt_dir} aside" + change)
        summary = self.summary() or {}
        return bool(summary.get("finished")) and summary.get("final_step") == cfg.max_steps

    def check_space(self, checkpoint_bytes, keep, save_steps, step):
        """Refuse to start when out_dir cannot hold what a save at step > `step` needs: the newest
        `keep` checkpoints plus the one being written (its temp file), and one per save_steps
        step still to come, less the current attempt's checkpoints already there (each of about
        checkpoint_bytes bytes). Rank 0; UserError naming the sizes and the ways on."""
        has_config, attempt = self.attempt()
        prunable = [s for s, _ in (self.checkpoints(attempt) if has_config else [])
                    if s <= step and s not in save_steps]
        later = len([s for s in set(save_steps) if s > step])
        needed = max(keep + 1 - min(len(prunable), keep), 1) + later
        free = shutil.disk_usage(self.ckpt_dir).free
        if free < needed * checkpoint_bytes:
            extra = f", plus {later} for save_steps" if later else ""
            raise UserError(f"{self.ckpt_dir} has {fmt_bytes(free)} free, but {needed} more checkpoints of "
                            f"about {fmt_bytes(checkpoint_bytes)} must fit (keep_checkpoints={keep} and the "
                            f"one being written{extra}); free space, lower keep_checkpoints, or choose "
                            "another --out_dir")

    def prune(self, attempt, keep, save_steps, step):
        """Delete the attempt's checkpoints older than the newest `keep` at or before `step` (the
        one just written): never another attempt's, never a moved-aside one, never save_steps."""
        prune_checkpoints([(s, p) for s, p in self.checkpoints(attempt) if s <= step], keep, save_steps)


def aside_name(path, stamp):
    """path renamed aside: log.jsonl -> log.<stamp>.jsonl."""
    return path.with_name(f"{path.stem}.{stamp}{path.suffix}")


def on_branch(log, lineno, line, step):
    """Whether log.jsonl line `lineno` belongs to the branch that resumes at `step`: its step is
    at most `step`, and it is not one of the lines train.py writes after the checkpoint of `step`
    and so writes anew when it resumes there (AFTER_CHECKPOINT)."""
    try:
        rec = json.loads(line)
        at = rec["step"]
    except (ValueError, TypeError, KeyError):
        raise UserError(f"{log} line {lineno} is not a JSON object with a step; fix or delete that "
                        "line, then rerun") from None
    return at < step or (at == step and not AFTER_CHECKPOINT & set(rec))


def lock(folder, name):
    """Create folder, take an exclusive flock on folder/.lock, write our pid into it; the fd."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise UserError(f"cannot write to {folder} ({err.strerror}); choose a writable "
                        "--out_dir / --log_dir") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise UserError(f"run {name} is in use by another process (pid {holder}, lock {folder / '.lock'});"
                        " wait for it to end or choose another run_name") from None
    except OSError as err:  # a file system without flock (e.g. Lustre mounted without -o flock)
        print(f"note: cannot lock {folder / '.lock'} ({err.strerror}); make sure no other process "
              f"trains run {name}")
    try:  # also the write probe: a read-only or full folder is found now, not at the first checkpoint
        os.pwrite(fd, f"{os.getpid():<15}\n".encode(), 0)  # fixed width: overwrites an old pid
        os.fsync(fd)
    except OSError as err:
        os.close(fd)
        if err.errno in DISK_FULL_ERRNOS:
            raise disk_full_error(folder / ".lock") from None
        raise UserError(f"cannot write to {folder} ({err.strerror}); choose a writable "
                        "--out_dir / --log_dir") from None
    return fd


def strict_record(record):
    """record with NaN / +-Infinity floats replaced by None and their keys listed in "nonfinite"."""
    bad = [k for k, v in record.items() if isinstance(v, float) and not math.isfinite(v)]
    if not bad:
        return record
    return {**{k: (None if k in bad else v) for k, v in record.items()}, "nonfinite": bad}


class RunLog:
    """<log_dir>/<run_name>/: config.json, log.jsonl (appended, one strict-JSON object per line),
    summary.json. Only rank 0 writes (enabled). wandb is imported only when cfg.wandb_log.

    W&B: one W&B run per attempt, however many launches it takes. Its id, recorded in
    config.json as wandb_run_id, is <run_name>-<attempt> (characters W&B refuses as "_"); every
    launch of the attempt (a resume after a preemption) passes it with resume="allow", and every
    record is logged at its own `step`, so the W&B run continues where it was. Steps W&B already
    has (recomputed after a crash since the last checkpoint, with the same values) are dropped by
    W&B with a warning; log.jsonl has them.

    write() only buffers a record (no file I/O on the training step's path); flush() appends the
    buffered lines in one write. train.py flushes every log_interval steps, after each eval,
    before each checkpoint (so a checkpoint's steps are on disk before it exists: a kill -9
    loses only steps that the resume recomputes), at a stop signal and on any exit; finish()
    flushes too.
    """

    def __init__(self, folder, cfg, run_config, enabled):
        self.dir, self.enabled, self.wandb, self.pending = folder.log_dir, enabled, None, []
        if not enabled:
            return
        self.path = self.dir / "log.jsonl"
        cut_torn_tail(self.path)
        if cfg.wandb_log:
            # W&B refuses some characters in ids (: ; , # ? / '): a run_name may hold them
            wandb_id = re.sub(r"[^\w.-]", "_", f"{cfg.run_name}-{run_config['attempt']}")
            run_config = dict(run_config, wandb_run_id=wandb_id)
        atomic_write_json(self.dir / "config.json", run_config)
        if cfg.wandb_log:
            import wandb
            self.wandb = wandb.init(project=cfg.wandb_project, name=cfg.run_name, config=run_config,
                                    id=run_config["wandb_run_id"], resume="allow")

    def write(self, record):
        """Buffer one record (a dict of JSON values; NaN / Infinity become null); see flush()."""
        if not self.enabled:
            return
        self.pending.append(json.dumps(strict_record(record), allow_nan=False) + "\n")
        if self.wandb is not None:
            self.wandb.log(record, step=record["step"])

    def flush(self):
        """Append the buffered records to log.jsonl. Raises UserError on a full disk (the lines
        of this flush are dropped then; a torn last line is cut at the next start)."""
        if not self.enabled or not self.pending:
            return
        lines, self.pending = "".join(self.pending), []
        try:
            with open(self.path, "a") as f:
                f.write(lines)
        except OSError as err:
            if err.errno in DISK_FULL_ERRNOS:
                raise disk_full_error(self.path) from None
            raise

    def finish(self, summary):
        self.flush()
        if not self.enabled:
            return
        atomic_write_json(self.dir / "summary.json", strict_record(summary))
        if self.wandb is not None:
            self.wandb.summary.update(summary)
            self.wandb.finish()


def cut_torn_tail(path, chunk=1 << 16):
    """If path does not end in a newline (a crash mid-append), cut the partial last line so the
    next record starts on a clean line; earlier complete lines are kept. Says so in one line."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        keep = size
        while keep > 0:  # scan back for the last newline, one chunk at a time
            start = max(keep - chunk, 0)
            f.seek(start)
            found = f.read(keep - start).rfind(b"\n")
            keep = start + found + 1 if found >= 0 else start
            if found >= 0:
                break
        f.truncate(keep)
    print(f"note: {path} ended in a partial line ({size - keep} bytes, from a crash); cut it")


def main(argv=None):
    p = argparse.ArgumentParser(description="Ask a run folder what train.py would decide.")
    p.add_argument("question", choices=("checkpoint", "finished", "skip", "wait", "lr_tag"),
                   help="checkpoint: print the current attempt's newest checkpoint (exit 1 if none); "
                        "finished: exit 0 if summary.json says finished, else 1; "
                        f"skip -- TRAIN_ARGS: exit {SKIP_EXIT_CODE} if the run of `train.py TRAIN_ARGS` "
                        f"is recorded finished with that config, {LAUNCH_EXIT_CODE} if it has work to "
                        f"do, {IN_USE_EXIT_CODE} if another process trains it now, 2 (one line) if its "
                        "folder holds a different run; wait -- TRAIN_ARGS: return once no process "
                        "trains that run; lr_tag LR...: print the learning rates as run names spell "
                        "them (exit 2 for a bad one)")
    p.add_argument("--log_dir", default="results/runs")
    p.add_argument("--out_dir", default="out")
    p.add_argument("--run_name", help="(checkpoint, finished)")
    p.add_argument("train_args", nargs="*", help="(skip) train.py's arguments, after --; (lr_tag) the "
                                                 "learning rates")
    args = p.parse_args(argv)
    if args.question == "lr_tag":
        print(" ".join(lr_tags(args.train_args)))
        return 0
    if args.question in ("skip", "wait"):  # the config train.py would run: the same folders and keys
        cfg = load_config(args.train_args)
        folder = RunFolder(cfg.log_dir, cfg.out_dir, cfg.run_name)
        if args.question == "wait":
            return int(folder.in_use(wait=True))
        if folder.in_use():  # its records may be mid-rewrite: judged once it is free
            return IN_USE_EXIT_CODE
        return SKIP_EXIT_CODE if folder.skip(cfg) else LAUNCH_EXIT_CODE
    if args.run_name is None or args.train_args:
        p.error(f"{args.question} takes --run_name (and --log_dir, --out_dir), no train.py arguments")
    folder = RunFolder(args.log_dir, args.out_dir, args.run_name)
    if args.question == "finished":
        return 0 if folder.finished() else 1
    path = folder.latest_checkpoint()
    if path is None:
        print(f"error: run {args.run_name} has no checkpoint of its current attempt in {folder.ckpt_dir}",
              file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    from errors import run_main
    sys.exit(run_main(main))
