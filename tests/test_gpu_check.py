"""scripts/gpu_check.sh v2: its GPU budgets fit 6 minutes under a deadline the script enforces, and
gpu_check_summary.py judges a work folder as the script leaves it (phases, bench JSONs, train.py
logs, NCCL probe answers): a phase out of time or skipped, a recompile after warm-up, a run that did
not resume, runs that disagree beyond the stated tolerance fail it; the 8-GPU estimate is arithmetic
on the measured step. The whole --cpu-tiny rehearsal takes minutes on 2 cores (docs/performance.md)."""
import json
import re
import subprocess
import sys

import pytest
import torch

from conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import bench_checkpoint  # noqa: E402
import gpu_check_summary  # noqa: E402
from checkpoint import save_checkpoint  # noqa: E402

SCRIPT = REPO_ROOT / "scripts" / "gpu_check.sh"
BUDGETS = dict(layer=20, ratio_124m=100, train_a=50, train_b=25, checkpoint_io=10, resume_b=22, nccl_probe=20,
               two_process=35, paper_shape=35, microbatch=28)  # in the order they run
DEADLINE, WINDOW = 345, 360  # the phases' deadline; the script's own time with the summary (6 minutes)


def test_the_phases_run_under_timeout_with_a_kill_delay_and_fit_six_minutes():
    text = SCRIPT.read_text()
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0
    budgets = {name: int(budget) for name, budget in re.findall(r"^\s*phase (\w+) (\d+) ", text, re.M)}
    assert list(budgets.items()) == list(BUDGETS.items()) and sum(budgets.values()) <= DEADLINE
    assert re.search(r"^DEADLINE=\$\(\(SCALE \* 345\)\) KILL_AFTER=5", text, re.M)
    assert 'timeout -k "$KILL_AFTER" "$budget" "$@"' in text  # every phase: SIGTERM, then SIGKILL 5 s on
    assert WINDOW - DEADLINE >= 15  # the summary (one python start) and the last phase's kill delay fit


@pytest.mark.parametrize("args, message", [
    (["--fast"], "error: unknown argument '--fast'; usage: scripts/gpu_check.sh [--cpu-tiny] [--only=GROUP,...]"),
    (["--only=train,speed"], "error: --only: unknown group 'speed'; choose from: layer, ratio_124m, train, "
                             "two_process, paper_shape, microbatch"),
])
def test_bad_usage_is_one_line_and_exit_2(args, message):
    result = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [message]


def bench(rows):
    return dict(rows=rows, peak_flops=989e12)


def bench_row(arm, mode=None, batch=64, ms=150.0, vs_bpe=None, **extra):
    label = f"{arm}[{mode}]" if mode else arm
    return dict(arm=arm, kronecker_mode=mode, label=label, batch_size=batch, step_ms=ms,
                tokens_per_s=batch * 1024 / ms * 1e3, vs_bpe=vs_bpe, mfu=0.42, max_memory_allocated_gib=30.0,
                param_counts=dict(total=127_621_632 if mode else 124_475_904), recompiles_during_timed_steps=0,
                input_side_bytes=dict(weights=1, buffers=0, training=4), **extra)


def write_run(run, steps, loss=lambda s: 11.0 - s / 10, compile_steps=(1,), finished=None, world_size=1,
              backend="auto"):
    """A train.py run folder: log.jsonl (train lines; later lines win), summary.json, config.json."""
    run.mkdir(parents=True, exist_ok=True)
    lines = [dict(step=0, tokens=0, val_loss=11.0)]
    for s in steps:
        line = dict(step=s, tokens=s, train_loss=loss(s), grad_norm=1.0 + s / 100, grad_norm_input=0.5,
                    grad_norm_head=0.5, grad_norm_body=0.5, step_ms=150.0, tok_per_s=4e5, mfu=0.4)
        if s in compile_steps:
            line.update(compile_step=True, step_ms=30000.0)
        lines.append(line)
    with open(run / "log.jsonl", "a") as f:
        f.writelines(json.dumps(line) + "\n" for line in lines)
    (run / "summary.json").write_text(json.dumps(dict(finished=True, final_step=finished or steps[-1])))
    (run / "config.json").write_text(json.dumps(dict(world_size=world_size, dist_backend=backend)))


def fake_work(work, rc=None, skipped=(), b_loss=None, pair_loss=None, resumed_to=30, hosts_ok=True,
              recompile_at=None):
    """A work folder as gpu_check.sh leaves it after a GPU run of every phase."""
    rc = rc or {}
    (work / "phases.tsv").write_text("".join(
        f"{name}\tskipped\t0\t{budget}\n" if name in skipped else f"{name}\t{rc.get(name, 0)}\t{budget - 5}\t{budget}\n"
        for name, budget in BUDGETS.items()))
    kron = [bench_row("kronecker", m, vs_bpe=1.002, profile=dict(input_side_share=0.01)) for m in ("sparse", "dense")]
    (work / "ratio_124m.json").write_text(json.dumps(dict(bench([bench_row("bpe", vs_bpe=1.0), *kron]),
                                                          block_size=1024)))
    (work / "paper_shape.json").write_text(json.dumps(bench([bench_row("bpe", batch=16, vs_bpe=1.0),
                                                             bench_row("kronecker", "sparse", batch=16, vs_bpe=1.03)])))
    (work / "microbatch.json").write_text(json.dumps(bench([bench_row("kronecker", "sparse", batch=b)
                                                            for b in (32, 128)])))
    modes = [dict(mode="nn.Embedding", ms=1.0, vs_embedding=1.0, repeat_identical_grad=True),
             dict(mode="sparse", ms=1.2, vs_embedding=1.2, repeat_identical_grad=False)]
    (work / "layer.json").write_text(json.dumps(dict(results=[dict(shape="124m", batch=64, seq=1024, rows=modes)])))
    (work / "checkpoint_io.json").write_text(json.dumps(dict(bytes=1.5e9, write_s=3.0, read_s=1.0)))
    (work / "nccl_plain.rank0.json").write_text(json.dumps(dict(ok=False, backend="nccl", error="Duplicate GPU "
                                                                "detected : rank 0 and rank 1 both on CUDA device 18000")))
    (work / "nccl_hosts.rank0.json").write_text(json.dumps(dict(ok=hosts_ok, backend="nccl",
                                                                error=None if hosts_ok else "boom")))
    runs = work / "runs"
    write_run(runs / "a", range(1, 31), compile_steps=(1, recompile_at))
    write_run(runs / "b", range(1, 21), loss=b_loss or (lambda s: 11.0 - s / 10), finished=20)
    write_run(runs / "b", range(21, resumed_to + 1), compile_steps=(21,), finished=resumed_to)  # the resume
    write_run(runs / "pair", range(1, 11), loss=pair_loss or (lambda s: 11.0 - s / 10 + 1e-3), world_size=2,
              backend="nccl" if hosts_ok else "gloo")
    for phase in ("train_a", "train_b", "resume_b", "two_process"):
        (work / f"{phase}.stderr").write_text("[__recompiles] Recompiling function forward in model.py\n")


def summarize(work, capsys, *extra):
    out = work / "gpu_check.json"
    code = gpu_check_summary.main([str(work), str(out), *extra])
    return code, json.loads(out.read_text()), capsys.readouterr().out


def test_a_good_run_passes_and_its_json_answers_every_question(tmp_path, capsys):
    fake_work(tmp_path)
    code, result, printed = summarize(tmp_path, capsys)
    assert code == 0 and all(result["checks"].values()), result["checks"]
    assert {"date", "device", "torch", "cuda", "nccl", "phases", "total_seconds", "layer", "ratio_124m",
            "paper_shape", "microbatch", "train", "two_process", "estimate_8gpu", "targets"} <= set(result)
    train = result["train"]
    assert train["determinism"]["bit_identical"] and train["determinism"]["steps"] == [1, 20]
    assert train["resume"]["ok"] and train["resume"]["steps"] == [21, 30]
    assert train["two_process_vs_one"]["max_abs_loss_diff"] == pytest.approx(1e-3)
    assert train["runs"]["b"]["compile_steps"] == [1, 21] and train["runs"]["b"]["recompiled_after_warmup"] == []
    assert train["runs"]["a"]["step_ms"] == 150.0  # the compile steps are left out of the speed
    assert train["checkpoint_io"]["write_s"] == 3.0 and train["recompiles"]["train_a"]["count"] == 1
    assert result["targets"]["kronecker_vs_bpe_124m_le_1.005"] == {"kronecker[sparse]": True, "kronecker[dense]": True}
    assert result["targets"]["paper_shape_kronecker_vs_bpe_le_1.0024"] == {"kronecker[sparse]": False}
    assert result["targets"]["layer_repeat_identical_grad"] == {"nn.Embedding": True, "sparse": False}
    assert result["two_process"]["backend"] == "nccl" and "Duplicate GPU detected" in result["two_process"]["reason"]
    assert set(result["estimate_8gpu"]["arms"]) == {"bpe", "kronecker[sparse]", "kronecker[dense]"}
    assert re.search(r"total +295 s \(deadline 345 s\)", printed) and "determinism: steps 1-20" in printed


def test_without_nccl_for_two_ranks_the_json_says_gloo_and_why(tmp_path, capsys):
    fake_work(tmp_path, hosts_ok=False)
    code, result, _ = summarize(tmp_path, capsys)
    two = result["two_process"]
    assert code == 0 and two["backend"] == "gloo"
    assert "nccl could not run 2 ranks on one device" in two["reason"] and "boom" in two["reason"]


@pytest.mark.parametrize("fault, failed", [
    (dict(recompile_at=12), ["no_recompiles_after_warmup"]),  # a recompile mid-run
    (dict(resumed_to=25), ["runs_finished", "resume_within_tolerance"]),  # the resume stopped at 25
    (dict(rc={"paper_shape": 124}), ["all_phases_ok", "paper_shape_measured"]),  # out of its budget...
    (dict(skipped=("microbatch",)), ["all_phases_ran", "microbatch_measured"]),  # ... or of the deadline
    (dict(b_loss=lambda s: 11.0 - s / 10 + (0.01 if s > 10 else 0)), ["determinism_within_tolerance"]),
    (dict(pair_loss=lambda s: 11.0 - s / 10 + 0.05), ["two_process_vs_one_within_tolerance"]),
])
def test_a_faulty_run_fails_the_checks_that_name_it(tmp_path, capsys, fault, failed):
    fake_work(tmp_path, **fault)
    if "rc" in fault:
        (tmp_path / "paper_shape.json").unlink()  # a killed bench leaves no JSON
    if "skipped" in fault:
        (tmp_path / "microbatch.json").unlink()
    code, result, printed = summarize(tmp_path, capsys)
    assert code == 1 and sorted(k for k, ok in result["checks"].items() if not ok) == sorted(failed)
    if "rc" in fault:
        assert result["out_of_time"] == ["paper_shape"] and "OUT OF TIME" in printed
    if "skipped" in fault:
        assert result["skipped"] == ["microbatch"] and "skipped (no time left)" in printed


def test_a_rerun_of_some_phases_is_judged_on_those_alone(tmp_path, capsys):
    """--only=layer: no train.py run is expected, so none is missed."""
    fake_work(tmp_path)
    (tmp_path / "phases.tsv").write_text("layer\t0\t12\t20\n")
    code, result, _ = summarize(tmp_path, capsys)
    assert code == 0 and set(result["checks"]) == {"all_phases_ran", "all_phases_ok", "under_deadline",
                                                    "layer_measured"}


def test_the_8_gpu_estimate_adds_the_gradient_all_reduce_to_the_measured_step():
    row = bench_row("kronecker", "sparse", ms=200.0)  # 127,621,632 float32 gradients
    est = gpu_check_summary.estimate_8gpu([row], block_size=1024, busbw=400e9)["arms"]["kronecker[sparse]"]
    grad = 4 * 127_621_632
    assert est["allreduce_bytes"] == grad and est["allreduce_s"] == pytest.approx(1.75 * grad / 400e9)
    last_bucket = 1.75 * 25 * 2**20 / 400e9
    assert est["step_s_range"] == pytest.approx([0.2 + last_bucket, 0.2 + 1.75 * grad / 400e9])
    assert est["tok_per_s_range"][1] == pytest.approx(8 * 64 * 1024 / (0.2 + last_bucket))
    assert est["run_hours_range"][0] == pytest.approx(4768 * (0.2 + last_bucket) / 3600)  # 4,768 steps of 2**19


def test_a_real_run_is_named_by_date_and_device(tmp_path):
    path = gpu_check_summary.output_path(tmp_path, "NVIDIA H200", "2026-12-01")
    assert path == tmp_path / "2026-12-01_nvidia-h200.json"


def test_bench_checkpoint_times_a_write_and_a_read_and_leaves_only_the_original(tmp_path, capsys):
    state = dict(step=3, model={"w": torch.randn(1000, 100)}, optimizer={})
    original = save_checkpoint(state, tmp_path / "run")
    before = original.read_bytes()
    result = bench_checkpoint.main([str(original), "--dir", str(tmp_path), "--device", "cpu", "--repeats", "2",
                                    "--json", str(tmp_path / "io.json")])
    assert result["bytes"] == len(before) and result["write_s"] > 0 and result["read_s"] > 0
    assert json.loads((tmp_path / "io.json").read_text())["repeats"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["io.json", "run"]  # its copies are gone
    assert original.read_bytes() == before and "write" in capsys.readouterr().out


def test_the_nccl_probe_answers_with_a_result_or_the_reason(tmp_path, monkeypatch):
    """One rank of gloo all-reduces and checks the sum; NCCL without a GPU answers why, in the JSON."""
    from test_signals import free_port
    import gpu_check_nccl
    for key, value in dict(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
                           MASTER_PORT=str(free_port())).items():
        monkeypatch.setenv(key, value)
    assert gpu_check_nccl.main(["--backend", "gloo", "--mb", "1", "--json", str(tmp_path / "probe.json")]) == 0
    result = json.loads((tmp_path / "probe.rank0.json").read_text())
    assert result["ok"] and result["world_size"] == 1 and result["algbw_gb_per_s"] > 0
    if not torch.cuda.is_available():
        assert gpu_check_nccl.main(["--backend", "nccl", "--json", str(tmp_path / "nccl.json")]) == 1
        assert json.loads((tmp_path / "nccl.rank0.json").read_text())["error"] == "no CUDA device: NCCL needs GPUs"
