"""scripts/gpu_check.sh: its GPU budgets fit 8 minutes, and gpu_check_summary.py judges a work
folder as the script leaves it (phases, bench JSON, train.py logs, recompile logs): a phase out
of time, a recompile after warm-up or a run that did not resume fails it; compile steps are left
out of the speed figures. (The whole --cpu-tiny rehearsal takes minutes on 2 cores: docs/performance.md.)"""
import json
import re
import subprocess
import sys

import pytest

from conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import gpu_check_summary  # noqa: E402

SCRIPT = REPO_ROOT / "scripts" / "gpu_check.sh"
PHASES = dict(bench_embedding=45, bench_train=150, gloo_train=90, gloo_resume=45, nccl_train=45, nccl_resume=45)


def test_the_gpu_phase_budgets_add_up_to_under_8_minutes():
    text = SCRIPT.read_text()
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0
    budgets = {m[0]: int(m[1]) for m in re.findall(r"^phase (\w+) \$\(\(SCALE \* (\d+)\)\)", text, re.M)}
    budgets |= {m[0]: int(m[1]) for m in re.findall(r"^train_phase (\w+) .* (\d+)(?:\s+#.*)?$", text, re.M)}
    assert budgets == PHASES
    assert sum(budgets.values()) <= 480 - 30  # the summary and start-up fit in what is left


def fake_work(work, compile_steps=(1, 21), rc=None, finished=30):
    """A work folder as gpu_check.sh leaves it after the GPU phases."""
    rc = rc or {}
    (work / "phases.tsv").write_text("".join(f"{name}\t{rc.get(name, 0)}\t{budget - 5}\t{budget}\n"
                                             for name, budget in PHASES.items()))
    rows = [dict(arm="bpe", tokens_per_s=1e6, vs_bpe=1.0, mfu=0.42, recompiles_during_timed_steps=0),
            dict(arm="kronecker", tokens_per_s=0.998e6, vs_bpe=1.002, mfu=0.41, recompiles_during_timed_steps=0)]
    (work / "bench_train.json").write_text(json.dumps(dict(rows=rows, peak_flops=989e12)))
    (work / "bench_embedding.json").write_text(json.dumps(dict(results=[])))
    for name in ("gloo", "nccl"):
        run = work / "runs" / name
        run.mkdir(parents=True)
        lines = [dict(step=0, tokens=0, val_loss=11.0)]
        for s in range(1, 31):
            line = dict(step=s, tokens=s, train_loss=11.0 - s / 10, step_ms=50.0, tok_per_s=1e6, mfu=0.4)
            if s in compile_steps:
                line.update(compile_step=True, step_ms=30000.0, tok_per_s=2.0, mfu=0.001)
            lines.append(line)
        (run / "log.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
        (run / "summary.json").write_text(json.dumps(dict(finished=True, final_step=finished)))
    for phase in ("gloo_train", "gloo_resume", "nccl_train", "nccl_resume"):
        (work / f"{phase}.stderr").write_text("[__recompiles] Recompiling function forward in model.py\n"
                                              "[__recompiles]     - 0/0: GLOBAL_STATE changed: grad_mode\n")


def summarize(work, capsys):
    out = work / "gpu_check.json"
    code = gpu_check_summary.main([str(work), str(out)])
    return code, json.loads(out.read_text()), capsys.readouterr().out


def test_a_good_run_passes_and_its_json_holds_every_figure(tmp_path, capsys):
    fake_work(tmp_path)
    code, result, printed = summarize(tmp_path, capsys)
    assert code == 0 and all(result["checks"].values()) and result["out_of_time"] == []
    assert result["targets"] == {"kronecker_vs_bpe_le_1.005": True, "bpe_mfu_ge_40%": True}
    assert result["bench_train"]["kronecker_vs_bpe"] == 1.002 and result["bench_train"]["peak_flops"] == 989e12
    gloo = result["runs"]["gloo"]
    assert gloo["compile_steps"] == [1, 21] and gloo["steady_steps"] == 28
    assert gloo["tok_per_s"] == 1e6 and gloo["mfu"] == 0.4  # the compile steps are left out
    assert result["recompiles"]["gloo_train"]["count"] == 1  # entering eval: the one expected
    assert set(result) >= {"device", "date", "torch", "phases", "total_seconds", "bench_embedding"}
    assert result["phases"]["bench_train"] == dict(exit_code=0, seconds=145.0, budget_s=150.0, out_of_time=False)
    assert re.search(r"total +390 s \(limit 480 s\)", printed)


@pytest.mark.parametrize("fault, failed_check", [
    (dict(compile_steps=(1, 12, 21)), "no_recompiles_after_warmup"),  # a recompile mid-run
    (dict(finished=20), "runs_resumed_and_finished"),  # the resume did not reach step 30
    (dict(rc={"nccl_train": 124}), "all_phases_ok"),  # a phase ran out of its budget
])
def test_a_faulty_run_fails_the_check_that_names_it(tmp_path, capsys, fault, failed_check):
    fake_work(tmp_path, **fault)
    code, result, printed = summarize(tmp_path, capsys)
    assert code == 1 and [k for k, ok in result["checks"].items() if not ok] == [failed_check]
    if "rc" in fault:
        assert result["out_of_time"] == ["nccl_train"] and "nccl_train" in printed and "OUT OF TIME" in printed


def test_missed_speed_targets_are_reported_but_do_not_fail_the_check(tmp_path, capsys):
    fake_work(tmp_path)
    bench = json.loads((tmp_path / "bench_train.json").read_text())
    bench["rows"][1]["vs_bpe"], bench["rows"][0]["mfu"] = 1.03, 0.3
    (tmp_path / "bench_train.json").write_text(json.dumps(bench))
    code, result, printed = summarize(tmp_path, capsys)
    assert code == 0 and not any(result["targets"].values()) and "missed" in printed


def test_a_real_run_is_named_by_date_and_device(tmp_path):
    path = gpu_check_summary.output_path(tmp_path, "NVIDIA H200", "2026-12-01")
    assert path == tmp_path / "2026-12-01_nvidia-h200.json"
