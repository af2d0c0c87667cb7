"""Installing and launching: the requirement files' routes, the optional wandb, and one error line
per torchrun launch (not one per rank)."""
import os
import re
import subprocess
import sys

import pytest

import errors
from conftest import REPO_ROOT
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
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    assert "-r requirements.txt" in lines
    ci_torch = re.search(r"pip install -q torch==(\S+)", (REPO_ROOT / ".ci/run").read_text())[1]
    assert f'torch=={ci_torch}+cpu; sys_platform != "darwin"' in lines  # the version CI measures


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
