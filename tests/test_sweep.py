"""scripts/sweep.sh and scripts/sweep.sbatch: one run per seed x arm, finished runs skipped (only
when they are the run asked for), extra arguments passed through, stop signals turned into a
checkpoint and exit code 75 (and a requeue)."""
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO_ROOT
from data.shards import write_shard
from run_folder import RunFolder
from test_run_folder import record, sweep_config


@pytest.mark.slow
def test_sweep_runs_each_seed_and_arm_once(tmp_path):
    rng = np.random.default_rng(0)
    write_shard(tmp_path / "val_000000.bin", rng.integers(0, 256, 600).astype(np.uint16))
    write_shard(tmp_path / "train_000001.bin", rng.integers(0, 256, 3000).astype(np.uint16))
    env = dict(os.environ, SEEDS="7", ARMS="bpe bpe_untied", CONFIG="config/cpu_tiny.py",
               LAUNCH="python", LOG_DIR=str(tmp_path / "runs"), OUT_DIR=str(tmp_path / "out"))
    args = [f"--data_dir={tmp_path}", "--vocab_size=256", "--n_embd=16", "--block_size=16",
            "--total_batch_tokens=64", "--micro_batch_size=4", "--max_steps=1", "--warmup_steps=0",
            "--val_tokens=100"]
    cmd = ["bash", "scripts/sweep.sh", *args]
    first = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    for run in ("bpe_s7", "bpe_untied_s7"):
        assert (tmp_path / "runs" / run / "summary.json").exists()
        assert (tmp_path / "out" / run / "ckpt_000001.pt").exists()
    again = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert again.stdout.count("finished, skipping") == 2


def test_a_folder_holding_a_different_run_stops_the_sweep_before_any_launch(tmp_path):
    """Issue 14 §2: bpe_s7 holds this sweep's run, finished: skipped. kronecker_s7 holds a toy run
    of that name (4 layers): one line names it, nothing is launched or skipped silently, exit 2."""
    record(sweep_config(tmp_path, "config/cpu_tiny.py", arm="bpe", seed=7))
    record(sweep_config(tmp_path, "config/cpu_tiny.py", "--n_layer=4", arm="kronecker", seed=7))
    (tmp_path / "launcher.sh").write_text('echo "$@" >> "$SWEEP_TMP/launched"\n')
    runs, out = tmp_path / "runs", tmp_path / "out"
    env = dict(os.environ, SEEDS="7", ARMS="bpe kronecker", CONFIG="config/cpu_tiny.py", LOG_DIR=str(runs),
               OUT_DIR=str(out), LAUNCH=f"bash {tmp_path / 'launcher.sh'}", SWEEP_TMP=str(tmp_path))
    sweep = subprocess.run(["bash", "scripts/sweep.sh"], cwd=REPO_ROOT, env=env, capture_output=True,
                           text=True, timeout=120)
    assert sweep.returncode == 2, sweep.stderr
    assert sweep.stdout == "== bpe_s7: finished, skipping\n"
    assert sweep.stderr.splitlines() == [
        f"error: kronecker_s7: {runs}/kronecker_s7 holds a different run (recorded != now: n_layer 4 != 2); "
        f"give this sweep its own LOG_DIR and OUT_DIR to keep both, or move {runs}/kronecker_s7 and "
        f"{out}/kronecker_s7 aside",
        "error: nothing launched (the lines above say why); rerun this command once they are resolved"]
    assert not (tmp_path / "launched").exists()


@pytest.mark.slow
def test_an_lr_sweep_runs_every_arm_at_every_lr_under_names_that_carry_the_lr(tmp_path):
    """Issue 22 §5: LRS="3e-4 0.0006": runs <arm>_lr<lr>_s<seed>, the lr spelled one way (0.0006 is
    6e-4), at --max_lr=lr --min_lr=lr/10; the finished 6e-4 run is skipped, the 3e-4 one launched."""
    lr_args = ["--run_name=bpe_lr6e-4_s7", "--max_lr=6e-4", "--min_lr=6e-5"]
    record(sweep_config(tmp_path, "config/cpu_tiny.py", *lr_args, arm="bpe", seed=7))
    env = lr_sweep_env(tmp_path, LRS="3e-4 0.0006")
    sweep = subprocess.run(["bash", "scripts/sweep.sh"], cwd=REPO_ROOT, env=env, capture_output=True,
                           text=True, timeout=120)
    assert sweep.returncode == 0, sweep.stderr
    assert "== bpe_lr6e-4_s7: finished, skipping" in sweep.stdout
    launched = (tmp_path / "launched").read_text().split()
    assert "--run_name=bpe_lr3e-4_s7" in launched and launched.count("--seed=7") == 1
    assert launched[launched.index("--max_lr=3e-4") + 1] == "--min_lr=3e-5"
    bad = subprocess.run(["bash", "scripts/sweep.sh"], cwd=REPO_ROOT, env={**env, "LRS": "3e-4 fast"},
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.startswith("error: LRS: 'fast' is not a learning rate")
    assert len((tmp_path / "launched").read_text().splitlines()) == 1  # the bad sweep launched nothing


def test_lrs_and_a_max_lr_argument_together_are_refused_before_anything_runs(tmp_path):
    both = subprocess.run(["bash", "scripts/sweep.sh", "--max_lr=1e-3"], cwd=REPO_ROOT,
                          env=lr_sweep_env(tmp_path, LRS="3e-4"), capture_output=True, text=True, timeout=60)
    assert both.returncode == 2
    assert both.stderr == "error: --max_lr=1e-3 and LRS both set the learning rate; drop one\n"
    assert not (tmp_path / "launched").exists()


def lr_sweep_env(tmp_path, **env):
    """sweep.sh over arm bpe, seed 7, with a launcher that only records its arguments."""
    (tmp_path / "launcher.sh").write_text('echo "$@" >> "$SWEEP_TMP/launched"\n')
    return dict(os.environ, SEEDS="7", ARMS="bpe", CONFIG="config/cpu_tiny.py", LOG_DIR=str(tmp_path / "runs"),
                OUT_DIR=str(tmp_path / "out"), LAUNCH=f"bash {tmp_path / 'launcher.sh'}", SWEEP_TMP=str(tmp_path),
                **env)
def test_a_skip_check_that_crashes_stops_the_sweep_and_launches_nothing(tmp_path):
    """Issue 21 §6: a `run_folder.py skip` that fails (here a PYTHON without torch) is not "launch"."""
    python = tmp_path / "python"
    python.write_text("#!/bin/sh\necho \"ModuleNotFoundError: No module named 'torch'\" >&2\nexit 1\n")
    python.chmod(0o755)
    (tmp_path / "launcher.sh").write_text('echo "$@" >> "$SWEEP_TMP/launched"\n')
    env = dict(os.environ, SEEDS="7", ARMS="bpe kronecker", CONFIG="config/cpu_tiny.py", PYTHON=str(python),
               LOG_DIR=str(tmp_path / "runs"), LAUNCH=f"bash {tmp_path / 'launcher.sh'}", SWEEP_TMP=str(tmp_path))
    sweep = subprocess.run(["bash", "scripts/sweep.sh"], cwd=REPO_ROOT, env=env, capture_output=True,
                           text=True, timeout=60)
    assert sweep.returncode == 2 and sweep.stdout == ""
    assert sweep.stderr.splitlines() == [
        "ModuleNotFoundError: No module named 'torch'",
        f"error: cannot tell whether bpe_s7 is finished: `{python} run_folder.py skip` exited 1 (its output "
        "above); nothing launched for it; fix that and rerun this command"]
    assert not (tmp_path / "launched").exists()


REFUSED_WHILE_IN_USE = """\
echo "$@" >> "$SWEEP_TMP/launched"
case "$*" in  # what train.py says while another process holds the run
  *--run_name=bpe_s7*) echo "error: run bpe_s7 is in use by another process" >&2; exit 2 ;;
esac
"""


@pytest.mark.slow
def test_a_run_another_sweep_trains_is_waited_for_and_reported_finished_not_failed(tmp_path):
    """Issue 21 §6: two sweeps over the same runs. This one finds bpe_s7 in use by the other, trains
    kronecker_s7, waits for bpe_s7 to be free, and reports it finished by the other: exit 0."""
    other = RunFolder(tmp_path / "runs", tmp_path / "out", "bpe_s7")
    other.lock()  # the other sweep's train.py
    (tmp_path / "launcher.sh").write_text(REFUSED_WHILE_IN_USE)
    env = dict(os.environ, SEEDS="7", ARMS="bpe kronecker", CONFIG="config/cpu_tiny.py",
               LAUNCH=f"bash {tmp_path / 'launcher.sh'}", LOG_DIR=str(tmp_path / "runs"),
               OUT_DIR=str(tmp_path / "out"), SWEEP_TMP=str(tmp_path))
    sweep = start_sweep("scripts/sweep.sh", env)
    log = tmp_path / "sweep.log"
    deadline = time.monotonic() + 180
    while "bpe_s7: waiting for the other process" not in log.read_text():
        assert sweep.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    record(sweep_config(tmp_path, "config/cpu_tiny.py", arm="bpe", seed=7))  # the other one finished it
    other.unlock()
    assert sweep.wait(timeout=120) == 0, log.read_text()
    lines = [line for line in log.read_text().splitlines() if line.startswith(("==", "all", "failed"))]
    launch = f"bash {tmp_path / 'launcher.sh'} train.py config/cpu_tiny.py"
    assert lines == [
        f"== bpe_s7: {launch} --arm=bpe",
        "== bpe_s7: being trained by another process; back to it after the other runs",
        f"== kronecker_s7: {launch} --arm=kronecker",
        "== bpe_s7: waiting for the other process training it",
        "== bpe_s7: finished by another process",
        f"all runs finished; logs in {tmp_path / 'runs'}"]
    assert [line.split("--run_name=")[1].split()[0] for line in (tmp_path / "launched").read_text().splitlines()] \
        == ["bpe_s7", "kronecker_s7"]


def start_sweep(script, env, *args):
    """scripts/sweep.sh or scripts/sweep.sbatch in the background, output to files."""
    out = open(Path(env["SWEEP_TMP"]) / "sweep.log", "w")
    return subprocess.Popen(["bash", script, *args], cwd=REPO_ROOT, env=env, stdout=out,
                            stderr=subprocess.STDOUT, text=True)


def wait_for(path, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, (Path(proc.args[-1]), "ended before", path)
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


FAKE_LAUNCHER = """\
echo "$@" >> "$SWEEP_TMP/launched"
trap 'echo TERM >> "$SWEEP_TMP/launcher_signals"; exit 75' TERM
touch "$SWEEP_TMP/started"
while true; do sleep 0.05; done
"""


@pytest.fixture
def fake_launcher_env(tmp_path):
    """sweep.sh with a launcher that runs until SIGTERM, then exits 75 as a stopped train.py does."""
    (tmp_path / "launcher.sh").write_text(FAKE_LAUNCHER)
    return dict(os.environ, SEEDS="7", ARMS="bpe kronecker", CONFIG="config/cpu_tiny.py",
                LAUNCH=f"bash {tmp_path / 'launcher.sh'}", LOG_DIR=str(tmp_path / "runs"),
                OUT_DIR=str(tmp_path / "out"), SWEEP_TMP=str(tmp_path))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1, signal.SIGINT])
def test_a_stop_signal_to_the_sweep_stops_the_running_run_and_exits_75(tmp_path, fake_launcher_env, sig):
    sweep = start_sweep("scripts/sweep.sh", fake_launcher_env)
    wait_for(tmp_path / "started", sweep)
    sweep.send_signal(sig)
    assert sweep.wait(timeout=60) == 75
    assert (tmp_path / "launcher_signals").read_text() == "TERM\n"  # what torchrun passes on
    assert len((tmp_path / "launched").read_text().splitlines()) == 1  # the next arm never started
    assert "bpe_s7: stopped by" in (tmp_path / "sweep.log").read_text()


def test_a_run_that_exits_75_by_itself_stops_the_sweep(tmp_path, fake_launcher_env):
    (tmp_path / "launcher.sh").write_text('echo "$@" >> "$SWEEP_TMP/launched"; exit 75\n')
    sweep = start_sweep("scripts/sweep.sh", fake_launcher_env)
    assert sweep.wait(timeout=60) == 75
    assert len((tmp_path / "launched").read_text().splitlines()) == 1


@pytest.mark.slow
def test_sigterm_to_the_sweep_leaves_a_checkpoint_at_the_step_train_py_was_at(tmp_path):
    rng = np.random.default_rng(0)
    write_shard(tmp_path / "val_000000.bin", rng.integers(0, 256, 600).astype(np.uint16))
    write_shard(tmp_path / "train_000001.bin", rng.integers(0, 256, 3000).astype(np.uint16))
    env = dict(os.environ, SEEDS="7", ARMS="bpe kronecker", CONFIG="config/cpu_tiny.py", LAUNCH="python",
               LOG_DIR=str(tmp_path / "runs"), OUT_DIR=str(tmp_path / "out"), SWEEP_TMP=str(tmp_path))
    sweep = start_sweep("scripts/sweep.sh", env, f"--data_dir={tmp_path}", "--vocab_size=256",
                        "--n_embd=16", "--block_size=16", "--total_batch_tokens=64",
                        "--micro_batch_size=4", "--max_steps=100000", "--eval_interval=100000",
                        "--val_tokens=100")
    log = tmp_path / "runs" / "bpe_s7" / "log.jsonl"
    deadline = time.monotonic() + 120
    while not (log.exists() and log.read_text().count('"train_loss"') >= 3):
        assert sweep.poll() is None and time.monotonic() < deadline, (tmp_path / "sweep.log").read_text()
        time.sleep(0.05)
    sweep.send_signal(signal.SIGTERM)
    assert sweep.wait(timeout=120) == 75, (tmp_path / "sweep.log").read_text()
    last_step = [json.loads(line) for line in log.read_text().splitlines()][-1]["step"]
    assert sorted(p.name for p in (tmp_path / "out" / "bpe_s7").glob("ckpt_*.pt")) == [f"ckpt_{last_step:06d}.pt"]
    assert not (tmp_path / "runs" / "kronecker_s7").exists()
    assert f"stopped by SIGTERM at step {last_step}" in (tmp_path / "sweep.log").read_text()


# scripts/sweep.sbatch with stand-ins for the SLURM commands it calls (the real thing is
# exercised by scripts/slurm_drill.sh, tests/test_slurm.py)
FAKE_SLURM = {
    "scontrol": """\
echo "scontrol $*" >> "$SWEEP_TMP/slurm_calls"
case "$1 $2" in
  "show hostnames") printf 'gpu-a\\ngpu-b\\n' ;;
  "show node") echo "NodeName=gpu-a Arch=x86_64 CoresPerSocket=8 NodeAddr=10.0.0.7 NodeHostName=gpu-a" ;;
esac
""",
    "srun": """\
echo "srun $*" >> "$SWEEP_TMP/slurm_calls"
touch "$SWEEP_TMP/started"
while [ -n "${FAKE_SRUN_RUNS_UNTIL_SCANCEL:-}" ] && [ ! -e "$SWEEP_TMP/scancelled" ]; do sleep 0.05; done
[ -z "${FAKE_SRUN_RUNS_UNTIL_SCANCEL:-}" ]  # exit 1 when stopped, as torchrun does after SIGTERM
""",
    "scancel": """\
echo "scancel $*" >> "$SWEEP_TMP/slurm_calls"
touch "$SWEEP_TMP/scancelled"
""",
}


@pytest.fixture
def fake_slurm_env(tmp_path):
    """The environment of a 2-node job 1234 (4 GPUs, 16 CPUs per node) with fake SLURM commands."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in FAKE_SLURM.items():
        (bin_dir / name).write_text("#!/usr/bin/env bash\n" + body)
        (bin_dir / name).chmod(0o755)
    return dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", SWEEP_TMP=str(tmp_path),
                SLURM_JOB_ID="1234", SLURM_JOB_NODELIST="gpu-[a-b]", SLURM_NNODES="2",
                SLURM_GPUS_PER_NODE="h100:4", SLURM_CPUS_PER_TASK="16", SLURM_SUBMIT_DIR=str(REPO_ROOT),
                SEEDS="7", ARMS="bpe", CONFIG="config/cpu_tiny.py", LOG_DIR=str(tmp_path / "runs"))


def slurm_calls(tmp_path):
    return (tmp_path / "slurm_calls").read_text().splitlines()


def test_sbatch_meets_at_the_head_nodes_address_with_one_worker_per_gpu(tmp_path, fake_slurm_env):
    sbatch = start_sweep("scripts/sweep.sbatch", fake_slurm_env, "--max_steps=20")
    assert sbatch.wait(timeout=60) == 0, (tmp_path / "sweep.log").read_text()
    [launch] = [call for call in slurm_calls(tmp_path) if call.startswith("srun")]
    # 29500 + 1234 % 2000: the node *name* gpu-a need not resolve, its NodeAddr does
    assert "--rdzv_endpoint=10.0.0.7:30734 --rdzv_id=1234" in launch
    assert "--ntasks-per-node=1 --kill-on-bad-exit=1 --cpus-per-task=16 torchrun --nnodes=2 --nproc_per_node=4" in launch
    assert launch.endswith("--max_steps=20")


def test_sbatch_on_a_cpu_partition_starts_one_worker_per_node(tmp_path, fake_slurm_env):
    del fake_slurm_env["SLURM_GPUS_PER_NODE"]
    sbatch = start_sweep("scripts/sweep.sbatch", fake_slurm_env)
    assert sbatch.wait(timeout=60) == 0, (tmp_path / "sweep.log").read_text()
    assert "--nproc_per_node=1 " in [c for c in slurm_calls(tmp_path) if c.startswith("srun")][0]


@pytest.mark.parametrize("sig, requeued", [(signal.SIGUSR1, True), (signal.SIGTERM, False)])
def test_a_signal_to_the_batch_shell_stops_the_step_through_slurm(tmp_path, fake_slurm_env, sig, requeued):
    """USR1 (the time-limit warning) requeues the job, SIGTERM (scancel, preemption) does not."""
    sbatch = start_sweep("scripts/sweep.sbatch", dict(fake_slurm_env, FAKE_SRUN_RUNS_UNTIL_SCANCEL="1"))
    wait_for(tmp_path / "started", sbatch)
    sbatch.send_signal(sig)
    assert sbatch.wait(timeout=60) == 75, (tmp_path / "sweep.log").read_text()
    calls = slurm_calls(tmp_path)
    assert "scancel --signal=TERM 1234" in calls  # srun would turn a SIGTERM into SIGKILL
    assert ("scontrol requeue 1234" in calls) == requeued


def test_sbatch_outside_the_repo_says_where_to_submit_from(tmp_path, fake_slurm_env):
    sbatch = start_sweep("scripts/sweep.sbatch", dict(fake_slurm_env, SLURM_SUBMIT_DIR=str(tmp_path)))
    assert sbatch.wait(timeout=60) == 2
    assert "submit from it or set REPO=" in (tmp_path / "sweep.log").read_text()
