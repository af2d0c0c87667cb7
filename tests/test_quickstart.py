"""scripts/quickstart.sh: every step (prepare, train both arms, eval, plots) at a minimal size."""
import json
import os
import subprocess

import pytest
from conftest import FINEWEB_EDU_SAMPLE, REPO_ROOT

pytestmark = pytest.mark.slow


@pytest.mark.skipif(not FINEWEB_EDU_SAMPLE.is_file(), reason="needs the shared FineWeb-Edu sample (offline)")
def test_quickstart_runs_end_to_end_at_a_minimal_size(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path / "results"), DATA_DIR=str(tmp_path / "data"),
               CKPT_DIR=str(tmp_path / "out"), DATA_FILES=str(FINEWEB_EDU_SAMPLE))
    tiny = ["--max_steps=3", "--warmup_steps=1", "--eval_interval=1", "--n_layer=1", "--n_head=2", "--n_embd=32",
            "--block_size=32", "--micro_batch_size=4", "--total_batch_tokens=128", "--val_tokens=1024"]
    done = subprocess.run(["bash", "scripts/quickstart.sh", *tiny], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    results = tmp_path / "results"
    assert "Results in" in done.stdout and "cannot tell which embedding is better" in done.stdout
    assert "trained on 384 tokens per arm" in " ".join(done.stdout.split())  # 3 steps x 128 tokens, computed
    for name in ("summary.md", "summary.csv", "val_loss.png", "steps_to_target.txt", "val_loss.json"):
        assert (results / name).stat().st_size > 0, name
    rescored = {r["embedding"]: r for r in json.loads((results / "val_loss.json").read_text())}
    for arm in ("bpe", "kronecker"):
        summary = json.loads((results / "runs" / f"{arm}_s1337" / "summary.json").read_text())
        assert summary["final_step"] == 3
        # eval.val_loss scores the final checkpoint on the same fixed set train.py used
        assert rescored[arm]["val_loss"] == pytest.approx(summary["final_val_loss"], abs=1e-5)


def test_its_default_outputs_are_ignored_by_git_so_a_fresh_clone_trains_and_stays_clean():
    script = (REPO_ROOT / "scripts" / "quickstart.sh").read_text()
    defaults = dict(line.split("=", 1) for line in script.splitlines()
                    if line.startswith(("OUT=", "CKPT_DIR=")))
    paths = [defaults["OUT"].removeprefix("${OUT:-").rstrip("}") + "/runs/bpe_s1337/summary.json",
             defaults["CKPT_DIR"].removeprefix("${CKPT_DIR:-").rstrip("}") + "/bpe_s1337/ckpt_000060.pt"]
    tracked = subprocess.run(["git", "ls-files", "--", *paths], cwd=REPO_ROOT, capture_output=True, text=True)
    ignored = [subprocess.run(["git", "check-ignore", "-q", "--no-index", p], cwd=REPO_ROOT).returncode == 0
               for p in paths]
    assert tracked.stdout == "" and all(ignored), paths
