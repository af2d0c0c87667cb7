"""Installing and launching: the requirement files' routes, the optional wandb, and one error line
per torchrun launch (not one per rank)."""
import os
import re
import select
import socket
import subprocess
import sys

import numpy as np
import pytest

import errors
from conftest import REPO_ROOT
from data.shards import write_shard
from errors import USER_ERROR_EXIT_CODE, UserError, run_main
from train_config import load_config


def requirement_lines(name):
    """The non-comment lines of a requirements file, markers and options included."""
    text = (REPO_ROOT / name).read_text()
    return [line.split(" #")[0].strip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_wandb_is_an_optional_extra_not_a_runtime_requirement():
    assert not any(line.startswith("wandb") for line in requirement_lines("requirements.txt"))
    assert [line for line in requirement_lines("requirements-wandb.txt")] == ["wandb>=0.16"]


def test_the_cpu_route_takes_pytorchs_cpu_wheel_of_the_ci_torch_then_the_rest():
    lines = requirement_lines("requirements-cpu.txt")
    ci_torch = re.search(r"pip install -q torch==(\S+)", (REPO_ROOT / ".ci/run").read_text())[1]
    # PyTorch's index and torch alone (the version CI measures): installed --no-deps, pip asks
    # that index about torch only, so where it is unreachable the retries cost one lookup, not
    # one per package (issue 21 §9); everything else comes from requirements.txt, from PyPI
    assert lines == ["--extra-index-url https://download.pytorch.org/whl/cpu",
                     f'torch=={ci_torch}+cpu; sys_platform != "darwin"', f'torch=={ci_torch}; sys_platform == "darwin"']
    readme = (REPO_ROOT / "README.md").read_text()
    assert "pip install --no-deps -r requirements-cpu.txt && pip install -r requirements.txt" in readme


def test_wandb_log_without_wandb_installed_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # makes `import wandb` fail as if not installed
    with pytest.raises(UserError, match=r"^wandb_log=True needs the wandb package, which is not "
                                        r"installed; pip install -r requirements-wandb.txt"):
        load_config(["--wandb_log=True", "--vocab_size=256"])
    assert not load_config(["--vocab_size=256"]).wandb_log  # the default run never needs it


def fail(message):
    def main():
        raise UserError(message)
    return main


def test_a_user_error_prints_one_line_on_rank_0(monkeypatch, capsys):
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(SystemExit) as exited:
        run_main(fail("bad thing; fix it"))
    assert exited.value.code == USER_ERROR_EXIT_CODE
    assert capsys.readouterr().err == "error: bad thing; fix it\n"


def test_other_ranks_wait_silently_for_torchrun_to_end_them(monkeypatch, capsys):
    # Rank 0 meets the same error and prints it; torchrun then SIGTERMs the waiting ranks.
    monkeypatch.setenv("RANK", "1")

    def ended_by_torchrun(seconds):
        assert seconds == errors.OTHER_RANK_WAIT_S
        raise SystemExit(-15)
    monkeypatch.setattr(errors.time, "sleep", ended_by_torchrun)
    with pytest.raises(SystemExit):
        run_main(fail("bad thing; fix it"))
    assert capsys.readouterr().err == ""


def test_an_error_rank_0_did_not_meet_is_printed_after_the_wait_with_its_rank(monkeypatch, capsys):
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setattr(errors.time, "sleep", lambda seconds: None)  # torchrun did not end us
    with pytest.raises(SystemExit) as exited:
        run_main(fail("local rank 3 has no GPU of its own"))
    assert exited.value.code == USER_ERROR_EXIT_CODE
    assert capsys.readouterr().err == "error (rank 3): local rank 3 has no GPU of its own\n"


def test_ctrl_c_is_worded_by_rank_0_only(monkeypatch, capsys):
    def interrupted():
        raise KeyboardInterrupt
    for rank, printed in (("0", True), ("1", False)):
        monkeypatch.setenv("RANK", rank)
        with pytest.raises(SystemExit) as exited:
            run_main(interrupted)
        assert exited.value.code == errors.INTERRUPTED_EXIT_CODE
        assert ("interrupted (Ctrl-C)" in capsys.readouterr().err) is printed


@pytest.mark.slow
def test_torchrun_with_a_bad_config_key_prints_the_error_once(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO_ROOT))
    line = "error: unknown config key 'bogus_key' (from --bogus_key=1); `python train.py --help` lists the keys"
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc_per_node=2", "train.py", "--device=cpu", "--dist_backend=gloo",
                          "--bogus_key=1"], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode != 0
    assert run.stderr.splitlines().count(line) == 1, run.stderr[-3000:]
    assert "error (rank" not in run.stderr  # rank 1 was ended while it waited


def test_help_piped_into_a_reader_that_stops_early_ends_without_a_traceback():
    """`python train.py --help | head -3`: the pipe closes while the help is still being written."""
    script = "import errors; errors.run_main(lambda: [print('key') for _ in range(100_000)])"
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.read(4)
    proc.stdout.close()  # what head does after its lines
    assert proc.wait(timeout=60) == 1
    assert proc.stderr.read() == b""


def test_piped_stdout_is_written_line_by_line_while_the_entry_point_runs():
    """`python train.py ... | tee log` shows each line as it is printed, not in blocks at exit."""
    script = "import errors, sys; errors.run_main(lambda: (print('step 1'), sys.stdin.read()))"
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)  # block-buffered: nothing until exit
        assert ready and proc.stdout.readline() == b"step 1\n"
    finally:
        proc.stdin.close()  # lets it end
        assert proc.wait(timeout=60) == 0


RANK_1_ALONE = """
import os, sys
import errors, train, train_config
from errors import UserError
if os.environ["RANK"] == "1":
    if sys.argv[1] == "tokenizer":  # its node has no tokenizer files (load_config, before the group)
        def offline(name):
            raise UserError("cannot load the GPT-2 tokenizer on this node")
        train_config.get_tokenizer = offline
    else:  # its node's working directory holds no data folder (after the group exists)
        os.chdir(sys.argv[2])
errors.OTHER_RANK_WAIT_S = 3600  # the old path would wait this long: the test's timeout catches it
errors.run_main(lambda: train.main(sys.argv[3:]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("where, error", [
    ("tokenizer", "cannot load the GPT-2 tokenizer on this node"),
    ("data", "data folder shards not found (a relative path: relative to the current directory, {elsewhere}); "
             "prepare it with `python data/fineweb_edu.py --out shards`"),
])
def test_an_error_only_rank_1_meets_is_printed_by_rank_0_at_once(tmp_path, where, error):
    """Issue 21 §7: rank 0 prints it (naming rank and host), not rank 1 after OTHER_RANK_WAIT_S."""
    rng = np.random.default_rng(0)
    (tmp_path / "shards").mkdir()
    write_shard(tmp_path / "shards" / "val_000000.bin", rng.integers(0, 256, 600).astype(np.uint16))
    write_shard(tmp_path / "shards" / "train_000001.bin", rng.integers(0, 256, 3000).astype(np.uint16))
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "rank_1_alone.py").write_text(RANK_1_ALONE)
    vocab = [] if where == "tokenizer" else ["--vocab_size=256"]
    args = ["--device=cpu", "--data_dir=shards", f"--log_dir={tmp_path / 'runs'}", f"--out_dir={tmp_path / 'out'}",
            "--n_layer=1", "--n_head=2", "--n_embd=16", "--block_size=16", "--total_batch_tokens=64",
            "--micro_batch_size=2", "--max_steps=2", "--warmup_steps=1", "--val_tokens=100", *vocab]
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "rank_1_alone.py", where, str(tmp_path / "elsewhere"), *args], cwd=tmp_path,
                         env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO_ROOT)),
                         capture_output=True, text=True, timeout=300)
    line = f"error: rank 1 ({socket.gethostname()}): " + error.format(elsewhere=tmp_path / "elsewhere")
    assert run.returncode != 0
    assert [text for text in run.stderr.splitlines() if text.startswith("error")] == [line], run.stderr[-3000:]
    assert not list(tmp_path.glob("runs/*/config.json"))  # stopped before any run started
