"""The checks of scripts/slurm_drill.sh: tiny random shards, and runs compared with a reference.

Each check prints one table row, "PASS|FAIL <tab> check <tab> detail", and exits 0 or 1.

    python scripts/slurm_drill_check.py data DIR
    python scripts/slurm_drill_check.py same-losses NAME REF_RUN RUN WORLD_SIZE TOL
    python scripts/slurm_drill_check.py preempted NAME REF_RUN RUN CKPT_DIR JOB_OUTPUT MAX_STEPS

A run is a <log_dir>/<run_name> folder of train.py (config.json, log.jsonl, summary.json);
losses are compared per step for train_loss and val_loss (nats per token).
"""
import json
import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from checkpoint import checkpoint_path, load_checkpoint  # noqa: E402
from data.shards import write_shard  # noqa: E402


def make_data(folder):
    """Random byte-valued tokens: a 4,000-token val shard and a 40,000-token train shard."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    write_shard(folder / "val_000000.bin", rng.integers(0, 256, 4000).astype(np.uint16))
    write_shard(folder / "train_000001.bin", rng.integers(0, 256, 40000).astype(np.uint16))


def read_records(run):
    """[(step, kind, record)] of the train_loss ("train") and val_loss ("eval") lines, in file order
    (log.jsonl's other lines, a new pass over the data or a change on resume, are left out)."""
    out = []
    for line in (Path(run) / "log.jsonl").read_text().splitlines():
        rec = json.loads(line)
        for key, kind in (("train_loss", "train"), ("val_loss", "eval")):
            if key in rec:
                out.append((rec["step"], kind, rec))
    return out


def losses(run):
    """{(step, kind): loss}; later lines for the same step win, as for every reader of log.jsonl."""
    return {(step, kind): rec["val_loss" if kind == "eval" else "train_loss"]
            for step, kind, rec in read_records(run)}


def compare(ref, run):
    """Max |difference| of the losses, or a string saying why they cannot be compared."""
    a, b = losses(ref), losses(run)
    if a.keys() != b.keys():
        return f"logged steps differ ({len(a)} vs {len(b)} records)"
    return max(abs(a[k] - b[k]) for k in a)


def finished(run):
    path = Path(run) / "summary.json"
    return path.is_file() and json.loads(path.read_text()).get("finished") is True


def same_losses(ref, run, world_size, tol):
    """The run finished with the given world size and the reference's losses within tol."""
    config = json.loads((Path(run) / "config.json").read_text())
    if config["world_size"] != world_size:
        return False, f"world size {config['world_size']}, expected {world_size}"
    if not finished(run):
        return False, "no finished summary.json"
    diff = compare(ref, run)
    if isinstance(diff, str):
        return False, diff
    return diff <= tol, f"world size {world_size}, {len(losses(run))} losses, max |diff| {diff:.1e} (tol {tol:g})"


def preempted(ref, run, ckpt_dir, job_output, max_steps):
    """Stopped mid-run with a checkpoint at the step it was at, resumed there once, no step lost
    or repeated, finished with exactly the reference's losses."""
    text = Path(job_output).read_text()
    stops = re.findall(r"stopped by (SIG\w+) at step (\d+); checkpoint (\S+);", text)
    resumes = re.findall(r"resuming from (\S+) at step (\d+)", text)
    if len(stops) != 1 or len(resumes) != 1:
        return False, f"{len(stops)} stop line(s) and {len(resumes)} resume line(s) in the job output, expected 1 each"
    (signal_name, stop_step, stop_ckpt), (resume_ckpt, resume_step) = stops[0], resumes[0]
    stop_step = int(stop_step)
    if not 0 < stop_step < max_steps:
        return False, f"stopped at step {stop_step}, not mid-run (max_steps {max_steps}): signal sooner"
    train_steps = [step for step, kind, _ in read_records(run) if kind == "train"]
    before_stop = [s for s in train_steps if s <= stop_step]
    if before_stop[-1:] != [stop_step]:
        return False, f"the last step logged before the stop is {before_stop[-1:]}, not the stop step {stop_step}"
    if Path(stop_ckpt) != checkpoint_path(ckpt_dir, stop_step) or int(resume_step) != stop_step \
            or Path(resume_ckpt) != Path(stop_ckpt):
        return False, f"stop checkpoint {stop_ckpt}, resumed from {resume_ckpt} at step {resume_step}"
    if load_checkpoint(stop_ckpt)["step"] != stop_step:
        return False, f"{stop_ckpt} does not hold step {stop_step}"
    if train_steps != list(range(1, max_steps + 1)):
        return False, "train steps lost or repeated across the requeue"
    if not finished(run):
        return False, "no finished summary.json after the requeue"
    diff = compare(ref, run)
    if isinstance(diff, str) or diff != 0.0:
        return False, f"losses differ from the uninterrupted run: {diff}"
    return True, (f"train.py stopped by {signal_name} at step {stop_step}/{max_steps}, checkpoint "
                  f"{Path(stop_ckpt).name}, resumed there, {len(losses(run))} losses identical to the "
                  "uninterrupted 2-node run")


def main(argv):
    command, *args = argv
    if command == "data":
        make_data(args[0])
        return 0
    name = args[0]
    try:
        if command == "same-losses":
            ok, detail = same_losses(args[1], args[2], int(args[3]), float(args[4]))
        elif command == "preempted":
            ok, detail = preempted(args[1], args[2], args[3], args[4], int(args[5]))
        else:
            raise SystemExit(f"unknown command {command!r}")
    except FileNotFoundError as err:  # a run that never wrote its records
        ok, detail = False, f"missing {err.filename}"
    print(f"{'PASS' if ok else 'FAIL'}\t{name}\t{detail}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
