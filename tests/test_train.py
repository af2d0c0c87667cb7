"""train.py end to end on CPU with tiny models: learning, exact resume, DDP equivalence, errors."""
import datetime
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import errors
import train
from conftest import FINEWEB_EDU_SAMPLE, REPO_ROOT
from data.shards import list_shards, write_shard
from errors import UserError
from ranks import StartupSync
from tokenizer import get_encoding


def tiny_args(tmp_path, data_dir, **overrides):
    """A 1-layer, 16-token-context model on a 256-token vocabulary: a step takes milliseconds."""
    args = dict(data_dir=data_dir, out_dir=tmp_path / "out", log_dir=tmp_path / "runs", run_name="run",
                n_layer=1, n_head=2, n_embd=32, block_size=16, vocab_size=256, micro_batch_size=2,
                total_batch_tokens=128, max_steps=6, warmup_steps=2, max_lr=1e-2, min_lr=1e-3,
                eval_interval=3, ckpt_interval=3, val_tokens=256, device="cpu", compile=False)
    args.update(overrides)
    return [f"--{k}={v}" for k, v in args.items()]


def read_log(tmp_path, run_name="run"):
    """{(step, 'train' | 'eval'): record} of the train_loss and val_loss lines; later lines for the
    same step win."""
    records = {}
    for line in (tmp_path / "runs" / run_name / "log.jsonl").read_text().splitlines():
        rec = json.loads(line)
        for key, kind in (("train_loss", "train"), ("val_loss", "eval")):
            if key in rec:
                records[(rec["step"], kind)] = rec
    return records


def crash_train_step_at(crash_step, monkeypatch):
    """Make train.train_step die like a killed process (KeyboardInterrupt) when it reaches crash_step."""
    real_step = train.train_step

    def crashing(step, *args):
        if step == crash_step:
            raise KeyboardInterrupt("killed")
        return real_step(step, *args)

    monkeypatch.setattr(train, "train_step", crashing)


@pytest.fixture
def random_data(tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    data.mkdir()
    write_shard(data / "val_000000.bin", rng.integers(0, 256, 2000).astype(np.uint16))
    write_shard(data / "train_000001.bin", rng.integers(0, 256, 6000).astype(np.uint16))
    write_shard(data / "train_000002.bin", rng.integers(0, 256, 3000).astype(np.uint16))
    return data


def test_lr_warms_up_linearly_then_decays_to_min_lr():
    cfg = train.load_config(["--warmup_steps=10", "--max_steps=100", "--max_lr=1.0", "--min_lr=0.1"])
    assert train.get_lr(0, cfg) == pytest.approx(0.1) and train.get_lr(9, cfg) == pytest.approx(1.0)
    assert train.get_lr(10, cfg) == pytest.approx(1.0) and train.get_lr(55, cfg) == pytest.approx(0.55)
    assert train.get_lr(100, cfg) == pytest.approx(0.1)


def test_a_run_writes_config_log_summary_and_checkpoints(tmp_path, random_data):
    train.main(tiny_args(tmp_path, random_data, keep_checkpoints=1, save_steps="3"))
    run = tmp_path / "runs" / "run"
    config = json.loads((run / "config.json").read_text())
    assert config["embedding"] == "bpe" and config["seed"] == 1337 and config["data_seed"] == 1337
    assert config["world_size"] == 1 and config["grad_accum_steps"] == 4
    assert config["param_counts"]["total"] > 0 and config["device_names"] == ["cpu"]
    log = read_log(tmp_path)
    assert sorted(s for s, kind in log if kind == "eval") == [0, 3, 6]
    assert sorted(s for s, kind in log if kind == "train") == [1, 2, 3, 4, 5, 6]
    assert set(log[(6, "train")]) == {"step", "tokens", "train_loss", "lr", "grad_norm", "grad_norm_input",
                                      "grad_norm_body", "step_ms", "tok_per_s", "mfu"}  # tied: no head
    assert set(log[(3, "eval")]) == {"step", "tokens", "val_loss", "emb_row_norm", "emb_token_norm",
                                     "emb_fro_norm"}
    assert log[(6, "train")]["tokens"] == 6 * 128
    summary = json.loads((run / "summary.json").read_text())
    assert summary["finished"] and summary["final_step"] == 6
    assert summary["final_val_loss"] == log[(6, "eval")]["val_loss"]
    assert sorted(p.name for p in (tmp_path / "out" / "run").glob("ckpt_*")) == ["ckpt_000003.pt", "ckpt_000006.pt"]
    state = train.load_checkpoint(tmp_path / "out" / "run" / "ckpt_000006.pt")
    assert state["step"] == 6 and not any(k.startswith("_orig_mod.") for k in state["model"])
    assert set(state) >= {"model", "model_config", "train_config", "optimizer", "data_state", "rng"}


# trigram_hash: its incidence is model state; it reads the tokenizer's bytes, so GPT-2's full vocabulary
@pytest.mark.parametrize("arm", [dict(embedding="bpe"), pytest.param(dict(embedding="trigram_hash", vocab_size=50304),
                                                                      marks=pytest.mark.slow)],
                         ids=["bpe", "trigram_hash"])
def test_kill_and_resume_reproduces_the_uninterrupted_losses_exactly(tmp_path, random_data, monkeypatch, arm):
    train.main(tiny_args(tmp_path, random_data, run_name="straight", **arm))
    crash_train_step_at(4, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        train.main(tiny_args(tmp_path, random_data, run_name="killed", **arm))
    monkeypatch.undo()
    assert not (tmp_path / "runs" / "killed" / "summary.json").exists()
    train.main(tiny_args(tmp_path, random_data, run_name="killed", resume="auto", **arm))
    straight, resumed = read_log(tmp_path, "straight"), read_log(tmp_path, "killed")
    assert straight.keys() == resumed.keys()
    for key, rec in straight.items():
        for field in ("train_loss", "grad_norm", "lr", "val_loss", "emb_fro_norm"):
            assert rec.get(field) == resumed[key].get(field), (key, field)  # bit-exact


@pytest.mark.slow
def test_two_gloo_processes_equal_one_with_twice_the_accumulation(tmp_path, random_data):
    train.main(tiny_args(tmp_path, random_data, run_name="one"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "train.py", *tiny_args(tmp_path, random_data, run_name="two")]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    config = json.loads((tmp_path / "runs" / "two" / "config.json").read_text())
    assert config["world_size"] == 2 and config["grad_accum_steps"] == 2
    one, two = read_log(tmp_path, "one"), read_log(tmp_path, "two")
    assert one.keys() == two.keys()
    for key, rec in one.items():
        for field in ("train_loss", "val_loss", "grad_norm", "grad_norm_input", "grad_norm_body"):
            if field in rec:  # the gradient norms: of the all-reduced gradient, on every rank
                assert two[key][field] == pytest.approx(rec[field], rel=1e-5, abs=1e-5), (key, field)


@pytest.mark.slow
@pytest.mark.skipif(not FINEWEB_EDU_SAMPLE.exists(), reason="shared FineWeb-Edu sample absent")
def test_loss_falls_on_real_text_with_the_kronecker_embedding(tmp_path):
    enc = get_encoding()
    docs = [json.loads(line)["text"] for line in FINEWEB_EDU_SAMPLE.read_text().splitlines()[:60]]
    tokens = np.array([t for doc in docs for t in [50256] + enc.encode_ordinary(doc)], dtype=np.uint16)
    data = tmp_path / "data"
    data.mkdir()
    write_shard(data / "val_000000.bin", tokens[:4096])
    write_shard(data / "train_000001.bin", tokens[4096:])
    train.main(tiny_args(tmp_path, data, embedding="kronecker", vocab_size=50304, block_size=32,
                         total_batch_tokens=256, micro_batch_size=8, max_steps=25, warmup_steps=5,
                         max_lr=1e-2, min_lr=1e-3, eval_interval=25, val_tokens=2048))
    log = read_log(tmp_path)
    assert log[(0, "eval")]["val_loss"] > 10.5  # ln(50304) = 10.83 at init
    assert log[(25, "eval")]["val_loss"] < log[(0, "eval")]["val_loss"] - 1.0
    assert log[(25, "train")]["train_loss"] < log[(1, "train")]["train_loss"] - 1.0


def test_indivisible_batch_stops_before_training(tmp_path, random_data):
    with pytest.raises(UserError, match=r"total_batch_tokens \(128\) is not divisible by micro_batch_size"
                                        r" \* block_size \* world_size \(3 \* 16 \* 1 = 48\)"):
        train.main(tiny_args(tmp_path, random_data, micro_batch_size=3))


def test_missing_data_stops_before_any_model_is_built(tmp_path, monkeypatch):
    monkeypatch.setattr(train, "GPT", lambda *a, **k: pytest.fail("a model was built"))
    with pytest.raises(UserError, match="data folder .*nowhere not found"):
        train.main(tiny_args(tmp_path, tmp_path / "nowhere"))


def test_a_relative_data_dir_from_another_directory_names_that_directory_and_the_repos(tmp_path, monkeypatch):
    """Issue 21 §9: run from elsewhere, data/fineweb_edu is not the repo's; the line says which it is."""
    repo = tmp_path / "repo"
    (repo / "data" / "fineweb_edu").mkdir(parents=True)
    monkeypatch.setattr(errors, "REPO", repo)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as err:
        list_shards("data/fineweb_edu", "val")
    assert str(err.value) == (f"data folder data/fineweb_edu not found (a relative path: relative to the "
                              f"current directory, {tmp_path}); the repo has {repo / 'data/fineweb_edu'}: "
                              f"run from {repo}, or give that path")
    with pytest.raises(UserError, match=r"data folder data/elsewhere not found \(a relative path: relative "
                                        rf"to the current directory, {tmp_path}\); prepare it with"):
        list_shards("data/elsewhere", "val")


def test_mfu_is_null_and_printed_n_a_where_no_peak_is_known(tmp_path, random_data, capsys):
    """Issue 21 §9: on the CPU no peak FLOP/s is known; `mfu 0.0%` said nothing true."""
    train.main(tiny_args(tmp_path, random_data, max_steps=2, log_interval=1))
    assert "| mfu n/a" in capsys.readouterr().out
    assert read_log(tmp_path)[(2, "train")]["mfu"] is None
    config = json.loads((tmp_path / "runs" / "run" / "config.json").read_text())
    assert config["peak_flops"] is None and config["resolved_peak_flops"] is None
    train.main(tiny_args(tmp_path, random_data, max_steps=2, log_interval=1, run_name="given", peak_flops=1e9))
    assert 0 < read_log(tmp_path, "given")[(2, "train")]["mfu"] and "| mfu n/a" not in capsys.readouterr().out


class FakeWandb:
    """The wandb calls RunLog makes, recorded: init's keywords, each log's record and step."""
    def __init__(self):
        self.inits, self.logs = [], []

    def init(self, **kwargs):
        self.inits.append(kwargs)
        return self

    def log(self, record, step=None):
        self.logs.append((record["step"], step))

    summary = {}

    def finish(self):
        pass


def test_a_resumed_run_continues_its_wandb_run_at_explicit_steps(tmp_path, random_data, monkeypatch):
    """Issue 21 §5: a preempted run is one W&B run (its id kept in config.json), steps explicit."""
    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    train.main(tiny_args(tmp_path, random_data, wandb_log=True, max_steps=3))
    train.main(tiny_args(tmp_path, random_data, wandb_log=True, max_steps=6,
                          allow_change="max_steps"))  # resumes at step 3
    config = json.loads((tmp_path / "runs" / "run" / "config.json").read_text())
    assert config["wandb_run_id"] == f"run-{config['attempt']}"
    assert [(i["id"], i["resume"]) for i in fake.inits] == [(config["wandb_run_id"], "allow")] * 2
    assert all(record_step == step for record_step, step in fake.logs)
    assert sorted({step for step, _ in fake.logs}) == list(range(7))  # 0..6, steps 4-6 from the resume
    train.main(tiny_args(tmp_path, random_data, wandb_log=True, max_steps=3, resume="never"))
    assert fake.inits[-1]["id"] != config["wandb_run_id"]  # a new attempt is a new W&B run


@pytest.mark.slow
def test_command_line_errors_exit_2_with_one_line(tmp_path):
    result = subprocess.run([sys.executable, "train.py", "--max_step=3"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr == "error: unknown config key 'max_step' (from --max_step=3); " \
                            "did you mean max_steps, save_steps, max_epochs?\n"


def test_non_finite_loss_stops_keeps_the_last_good_checkpoint_and_its_advice_works(tmp_path, random_data,
                                                                                   monkeypatch):
    """Issue 21 item 2: the advice after a divergence is a command that continues the run, with the
    lower learning rate recorded as a change at the checkpoint's step."""
    real_step = train.train_step

    def poisoned(step, model, raw_model, *args):
        if step == 4:  # a NaN weight: the loss of step 5 is NaN, its update is skipped
            next(raw_model.parameters()).data[0] = math.nan
        return real_step(step, model, raw_model, *args)

    monkeypatch.setattr(train, "train_step", poisoned)
    with pytest.raises(UserError, match=r"non-finite training loss nan .* at step 5; stopped without "
                                        r"updating; the last good checkpoint is .*ckpt_000003.pt; to continue "
                                        r"from it with a lower learning rate, rerun with (.*) \(the change") as err:
        train.main(tiny_args(tmp_path, random_data, max_steps=10))
    ckpt_dir = tmp_path / "out" / "run"
    assert [p.name for p in ckpt_dir.glob("ckpt_*")] == ["ckpt_000003.pt"]
    assert train.load_checkpoint(ckpt_dir / "ckpt_000003.pt")["step"] == 3
    advice = str(err.value).split("rerun with ")[1].split(" (the change")[0].split()
    assert advice == ["--max_lr=0.005", "--allow_change=max_lr", "--resume=auto"]
    monkeypatch.undo()
    train.main(tiny_args(tmp_path, random_data, max_steps=10) + advice)  # the advice, followed literally
    change = dict(step=3, tokens=3 * 128, config_change={"max_lr": [0.01, 0.005]})
    changes = [json.loads(l) for l in (tmp_path / "runs" / "run" / "log.jsonl").read_text().splitlines()
               if "config_change" in l]
    assert [{k: c[k] for k in change} for c in changes] == [change]
    assert changes[0]["next_lr"] == [pytest.approx(train.get_lr(3, train.load_config(tiny_args(tmp_path, random_data, max_steps=10)))),
                                     pytest.approx(train.get_lr(3, train.load_config(tiny_args(tmp_path, random_data, max_steps=10) + advice)))]
    for name in ("config.json", "summary.json"):
        recorded = json.loads((tmp_path / "runs" / "run" / name).read_text())["config_changes"]
        assert recorded == changes
    log = read_log(tmp_path)
    assert log[(4, "train")]["lr"] == pytest.approx(train.get_lr(3, train.load_config(
        tiny_args(tmp_path, random_data, max_steps=10, max_lr=0.005))))  # the new schedule from step 4


@pytest.mark.slow
def test_wandb_logging_works_offline(tmp_path, random_data, monkeypatch):
    pytest.importorskip("wandb", reason="optional: pip install -r requirements-wandb.txt")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    train.main(tiny_args(tmp_path, random_data, wandb_log=True, max_steps=2))
    train.main(tiny_args(tmp_path, random_data, wandb_log=True, max_steps=4,
                          allow_change="max_steps"))  # a second launch, resumed
    assert json.loads((tmp_path / "runs" / "run" / "summary.json").read_text())["finished"]
    wandb_id = json.loads((tmp_path / "runs" / "run" / "config.json").read_text())["wandb_run_id"]
    launches = sorted((tmp_path / "wandb").glob("offline-run-*"))
    assert len(launches) == 2 and all(p.name.endswith(f"-{wandb_id}") for p in launches)  # one W&B run


@pytest.mark.parametrize("env, overrides, message", [
    ({"WORLD_SIZE": "2"}, dict(device="cuda:1"), r"device=cuda:1 names one GPU but 2 processes run; use --device=cuda"),
    ({}, dict(dist_backend="nccl"), r"dist_backend=nccl needs CUDA; use --dist_backend=gloo \(or auto\) on CPU"),
    ({}, dict(device="mps"), r"device 'mps' is not supported; use auto, cpu, cuda or cuda:N"),  # devices.py's
])
def test_device_and_backend_mistakes_stop_before_any_process_group(tmp_path, random_data, monkeypatch,
                                                                   env, overrides, message):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(train.dist, "init_process_group", lambda *a, **k: pytest.fail("group started"))
    with pytest.raises(UserError, match=message):
        train.main(tiny_args(tmp_path, random_data, **overrides))


def test_more_ranks_per_node_than_gpus_is_refused_on_rank_0_too(tmp_path, random_data, monkeypatch):
    """nccl needs a GPU per process. Rank 0 prints user errors (errors.run_main), so it must see
    this one as well, not only the ranks past the last GPU."""
    for key, value in dict(WORLD_SIZE="4", RANK="0", LOCAL_RANK="0", LOCAL_WORLD_SIZE="4").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(train.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(train.torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(train.dist, "init_process_group", lambda *a, **k: pytest.fail("group started"))
    with pytest.raises(UserError, match=r"^4 processes per node but 2 GPUs visible, and nccl needs one"):
        train.main(tiny_args(tmp_path, random_data, device="cuda", dist_backend="nccl"))


def test_config_json_records_provenance(tmp_path, random_data, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    train.main(tiny_args(tmp_path, random_data, max_steps=2, eval_interval=2))
    config = json.loads((tmp_path / "runs" / "run" / "config.json").read_text())
    assert config["torch_version"] == train.torch.__version__ and config["slurm_job_id"] == "4242"
    assert config["hostname"] and isinstance(config["git_dirty"], (bool, type(None)))
    assert {"cuda_version", "cudnn_version", "nccl_version", "git_commit"} <= set(config)
    assert config["device_names"] == ["cpu"] and config["dist_backend"] == "auto"


def test_buffered_log_records_survive_a_crash_between_flushes(tmp_path, random_data, monkeypatch):
    crash_train_step_at(5, monkeypatch)
    with pytest.raises(KeyboardInterrupt):  # log_interval 100: no periodic flush would come
        train.main(tiny_args(tmp_path, random_data, max_steps=8, eval_interval=8, log_interval=100))
    assert sorted(read_log(tmp_path)) == [(0, "eval")] + [(s, "train") for s in range(1, 6)]


@pytest.mark.parametrize("embedding, groups", [("bpe", ["input", "body"]),
                                               ("bpe_untied", ["input", "head", "body"])])
def test_gradient_norms_per_group_are_logged_every_step_and_make_up_the_total(tmp_path, random_data, embedding,
                                                                              groups):
    """Issue 22: whether clipping acts on one part more than another. The tied table (input and head
    at once) is counted once, under input; the groups' norms add up (in squares) to grad_norm."""
    train.main(tiny_args(tmp_path, random_data, embedding=embedding, max_steps=3))
    for step in (1, 2, 3):
        rec = read_log(tmp_path)[(step, "train")]
        norms = [rec[f"grad_norm_{g}"] for g in groups]
        assert "grad_norm_head" in rec if "head" in groups else "grad_norm_head" not in rec
        assert math.sqrt(sum(n * n for n in norms)) == pytest.approx(rec["grad_norm"], rel=1e-5)
        assert all(n > 0 for n in norms)


def test_gradient_groups_hold_every_trainable_tensor_once():
    for embedding in ("bpe", "bpe_untied", "bpe_factorized", "kronecker", "kronecker_tied"):
        vocab = [] if embedding.startswith("kronecker") else ["--vocab_size=256"]  # kronecker: GPT-2's bytes
        cfg = train.load_config(["--n_layer=1", "--n_head=2", "--n_embd=32", "--block_size=16",
                                 f"--embedding={embedding}", *vocab])
        model, _ = train.build_model(cfg, None, None)
        groups = train.gradient_groups(model)
        ids = [id(p) for params in groups.values() for p in params]
        assert sorted(ids) == sorted(id(p) for p in model.parameters()) and len(set(ids)) == len(ids)
        assert groups["input"] == list(model.transformer.wte.parameters())
        assert model.transformer.wpe.weight in groups["body"]
        assert ("head" in groups) == (embedding not in ("bpe", "kronecker_tied"))  # tied: W gets both roles


def test_the_next_steps_batch_is_read_ahead_and_taken_without_a_second_read(random_data):
    """One micro-step per step (the 8-GPU case): while step s computes, step s + 1's batch is read."""
    cfg = train.load_config([f"--data_dir={random_data}", "--vocab_size=256", "--block_size=16",
                             "--micro_batch_size=2", "--total_batch_tokens=32", "--max_steps=3", "--warmup_steps=1"])
    batches = train.TrainBatches(cfg.data_dir, cfg.block_size, cfg.total_batch_tokens, cfg.data_seed)
    reads = []
    read = batches.micro_batch
    batches.micro_batch = lambda step, micro, *rest: reads.append((step, micro)) or read(step, micro, *rest)
    feed = train.DeviceBatches(batches, cfg, train.DistContext(0, 0, 1, "cpu", False, StartupSync()), grad_accum=1)
    feed.take(0, 0)
    feed.read_ahead(0, 0)
    assert reads == [(0, 0), (1, 0)]
    x, y = feed.take(1, 0)
    assert reads == [(0, 0), (1, 0)]  # the batch read ahead, not read again
    assert torch.equal(x, read(1, 0, 0, 1, 2)[0]) and torch.equal(y, read(1, 0, 0, 1, 2)[1])
    feed.read_ahead(1, 0)
    feed.read_ahead(2, 0)  # step 3 would be past max_steps: nothing read
    assert reads == [(0, 0), (1, 0), (2, 0)]
    feed.take(0, 0)  # not the one read ahead: read now
    assert reads[-1] == (0, 0)


def test_reading_ahead_changes_no_loss(tmp_path, random_data, monkeypatch):
    train.main(tiny_args(tmp_path, random_data, run_name="ahead", total_batch_tokens=32, max_steps=3))
    monkeypatch.setattr(train.DeviceBatches, "read_ahead", lambda self, step, micro: None)
    train.main(tiny_args(tmp_path, random_data, run_name="plain", total_batch_tokens=32, max_steps=3))
    ahead, plain = read_log(tmp_path, "ahead"), read_log(tmp_path, "plain")
    assert ahead.keys() == plain.keys()
    for key, rec in ahead.items():
        assert rec.get("train_loss") == plain[key].get("train_loss") and rec.get("val_loss") == plain[key].get("val_loss")


def test_dist_timeout_reaches_the_process_group(monkeypatch):
    for key, value in dict(WORLD_SIZE="1", RANK="0", LOCAL_RANK="0").items():
        monkeypatch.setenv(key, value)
    started = {}
    monkeypatch.setattr(train.dist, "init_process_group", lambda **kwargs: started.update(kwargs))
    train.setup_distributed(train.load_config(["--device=cpu", "--dist_timeout=42"]), StartupSync())
    assert started["timeout"] == datetime.timedelta(seconds=42) and started["backend"] == "gloo"
    assert train.load_config(["--device=cpu"]).dist_timeout == 1800
    with pytest.raises(UserError, match="'dist_timeout' must be positive, got 0"):
        train.load_config(["--dist_timeout=0"])


def test_a_run_longer_than_its_data_says_so_logs_each_new_pass_and_max_epochs_refuses_it(
        tmp_path, random_data, monkeypatch, capsys):
    """Issue 21 item 8: 6 steps of 8 blocks on a 37-block train set are 1.3 passes."""
    short = tmp_path / "short"
    short.mkdir()
    (short / "val_000000.bin").write_bytes((random_data / "val_000000.bin").read_bytes())
    write_shard(short / "train_000001.bin", np.arange(600, dtype=np.uint16) % 256)  # 37 blocks of 16
    train.main(tiny_args(tmp_path, short))
    out = capsys.readouterr().out
    assert ("data: 6 steps x 128 tokens = 768 tokens, 1.3 passes over the train set (592 tokens): it repeats, "
            "in a new order each pass; pass 2 begins after step 4 (max_epochs=1 would refuse this)") in out
    assert "step      4 | pass 2 over the train set begins (a new order)" in out
    config = json.loads((tmp_path / "runs" / "run" / "config.json").read_text())
    assert (config["train_tokens_read"], config["train_set_tokens"], config["data_passes"]) == (768, 592, 48 / 37)
    passes = [json.loads(l) for l in (tmp_path / "runs" / "run" / "log.jsonl").read_text().splitlines()
              if "data_pass" in l]
    assert passes == [dict(step=4, tokens=512, data_pass=2)]
    monkeypatch.setattr(train, "GPT", lambda *a, **k: pytest.fail("a model was built"))
    with pytest.raises(UserError, match=r"1.3 passes over the train set \(592 tokens\), more than max_epochs=1"):
        train.main(tiny_args(tmp_path, short, run_name="once", max_epochs=1))
