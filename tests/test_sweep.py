"""scripts/sweep.sh: one run per seed x arm, finished runs skipped, extra arguments passed through."""
import os
import subprocess

import numpy as np
import pytest

from conftest import REPO_ROOT
from data.shards import write_shard


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
