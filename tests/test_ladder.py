"""The GPT-2 size ladder: configs load, follow the stated recipe rules, have the parameter counts a
closed form gives, and fit an 80 GB GPU by scripts/estimate_memory.py, whose per-token bytes
are re-measured here on CPU at toy sizes. Models are built on the meta device (nothing allocated)."""
import dataclasses
import json
import sys

import pytest
import torch

from conftest import REPO_ROOT
from model import GPT, GPTConfig
from train_config import load_config, read_config_file

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import estimate_memory as mem  # noqa: E402
import ladder  # noqa: E402
from ladder import ARMS  # noqa: E402
from bench_common import AllocationTracker  # noqa: E402

# GPT-2 (Radford et al. 2019) shapes and the GPT-3 Table 2.1 size each takes its LR and batch from
SIZES = {"350m": dict(n_layer=24, n_embd=1024, n_head=16, max_lr=3.0e-4, batch=2**19),
         "774m": dict(n_layer=36, n_embd=1280, n_head=20, max_lr=2.5e-4, batch=2**19),
         "1558m": dict(n_layer=48, n_embd=1600, n_head=25, max_lr=2.0e-4, batch=2**20)}
LADDER = [(size, arm) for size in SIZES for arm in ARMS]
FRONTIER = REPO_ROOT / "config" / "kronecker_frontier_124m.py"


def closed_form(embedding, n_layer, n_embd, vocab_size, pos_dim=16, block_size=1024):
    """GPT-2 parameters by part, from the shapes alone (biases and LayerNorms included)."""
    d = n_embd
    block = (3 * d * d + 3 * d) + (d * d + d) + (4 * d * d + 4 * d) + (4 * d * d + d) + 2 * (2 * d)
    body = n_layer * block + 2 * d  # blocks + ln_f
    rank = round(256 * pos_dim * d / (vocab_size + d))  # bpe_factorized: the parameter-matched rank
    input_side = {"kronecker": 256 * pos_dim * d, "kronecker_tied": 256 * pos_dim * d,
                  "trigram_hash": 256 * pos_dim * d,  # 256 * pos_dim buckets of width d
                  "bpe_factorized": rank * (vocab_size + d)}.get(embedding, vocab_size * d)
    head = 0 if embedding in ("bpe", "kronecker_tied") else vocab_size * d
    position = block_size * d
    return dict(input_trainable=input_side, output_head=head, body=body, position=position,
                total=input_side + head + body + position)


def load(size, arm, *extra):
    return load_config([str(REPO_ROOT / "config" / f"{arm}_{size}.py"), *extra])


@pytest.mark.parametrize("size, arm", LADDER)
def test_every_ladder_config_loads_with_gpt2s_shape_and_the_gpt3_recipe(size, arm):
    cfg, want = load(size, arm), SIZES[size]
    assert (cfg.embedding, cfg.n_layer, cfg.n_embd, cfg.n_head) == \
        (arm, want["n_layer"], want["n_embd"], want["n_head"])
    assert (cfg.max_lr, cfg.total_batch_tokens) == (want["max_lr"], want["batch"])
    assert cfg.min_lr == pytest.approx(cfg.max_lr / 10)
    assert cfg.warmup_steps == 375_000_000 // cfg.total_batch_tokens  # GPT-3's 375M warmup tokens
    assert cfg.vocab_size == 50_304 and cfg.pos_dim == 16 and cfg.block_size == 1024


@pytest.mark.parametrize("size", SIZES)
def test_tokens_are_20_per_parameter_of_the_tied_bpe_model_for_every_arm(size):
    tied = closed_form("bpe", SIZES[size]["n_layer"], SIZES[size]["n_embd"], 50_304)["total"]
    for arm in ARMS:
        cfg = load(size, arm)
        assert cfg.max_steps == 20 * tied // cfg.total_batch_tokens
        assert 0 <= 20 * tied - cfg.max_steps * cfg.total_batch_tokens < cfg.total_batch_tokens


@pytest.mark.parametrize("size", SIZES)
def test_the_arms_of_a_size_differ_only_in_embedding(size):
    files = {arm: read_config_file(REPO_ROOT / "config" / f"{arm}_{size}.py") for arm in ARMS}
    assert {arm: values.pop("embedding") for arm, values in files.items()} == {a: a for a in ARMS}
    assert all(values == files["bpe"] for values in files.values())


def test_frontier_config_is_the_papers_4_5_mb_setting():
    cfg = load_config([str(FRONTIER)])
    assert (cfg.embedding, cfg.pos_dim, cfg.vocab_size, cfg.tokenizer) == ("kronecker", 32, 131_072, "cl100k_base")
    assert cfg.vocab_size * (cfg.pos_dim + 2) == 4_456_448  # the paper's 4.5 MB byte buffer
    for arm in ARMS:  # the sweep runs it with --embedding=<arm>
        assert load_config([str(FRONTIER), f"--embedding={arm}"]).embedding == arm


def test_committed_ladder_table_has_the_closed_form_counts_of_every_config():
    rows = json.loads((REPO_ROOT / "results" / "ladder.json").read_text())["rows"]
    assert len(rows) == len(ARMS) * (len(SIZES) + 2)  # 124M, the ladder, the frontier
    for r in rows:
        want = closed_form(r["embedding"], r["n_layer"], r["n_embd"], r["vocab_size"],
                           pos_dim=32 if "frontier" in r["label"] else 16)
        assert (r["input_side"], r["head"], r["body"], r["position"], r["total"]) == \
            (want["input_trainable"], want["output_head"], want["body"], want["position"], want["total"])
        assert r["fits"]


def test_the_factorised_arm_has_kroneckers_parameter_count_within_1_percent_at_every_size():
    rows = {r["label"]: r for r in json.loads((REPO_ROOT / "results" / "ladder.json").read_text())["rows"]}
    factorised = [label for label in rows if label.endswith(" bpe_factorized")]
    assert len(factorised) == len(SIZES) + 2
    for label in factorised:
        kronecker = rows[label.removesuffix("bpe_factorized") + "kronecker"]
        assert abs(rows[label]["total"] / kronecker["total"] - 1) < 0.01, label


def test_checkpoints_take_under_2_percent_of_a_124m_run_and_each_size_gets_a_signal_lead():
    """Issue 23 part 2: the default ckpt_interval's cost, and the preemption lead time per size."""
    rows = json.loads((REPO_ROOT / "results" / "ladder.json").read_text())["rows"]
    for r in rows:
        assert r["checkpoint_bytes"] == 12 * r["total"]  # fp32 weights + AdamW's two moments
        assert r["stop_s"] == pytest.approx(r["step_s"] + 2 * r["write_s"][0])
        assert r["signal_lead_s"] >= 1.5 * r["stop_s"] and r["signal_lead_s"] % 60 == 0
        assert r["signal_lead_s"] <= 300  # scripts/sweep.sbatch's --signal=B:USR1@300 covers every size
    assert all(r["checkpoint_share"] < 0.02 for r in rows if r["label"].startswith("124M"))
    assert [r["fits_grace"] for r in rows if r["label"] == "124M bpe"] == [True]


@pytest.mark.parametrize("size, arm", [("350m", a) for a in ARMS] + [("1558m", "bpe_untied")])
def test_meta_device_model_counts_equal_the_closed_form(size, arm):
    cfg = load(size, arm)
    counts = mem.meta_model(cfg).param_counts()
    assert counts == closed_form(arm, cfg.n_layer, cfg.n_embd, cfg.vocab_size)
    assert next(mem.meta_model(cfg).parameters()).device.type == "meta"


@pytest.mark.parametrize("size", SIZES)
def test_each_ladder_micro_batch_is_the_largest_that_fits_80_gb(size):
    # bpe_untied has the most parameters of the three arms (its activations are the same), so
    # its choice holds for the others; the committed table records every arm's estimate
    cfg = load(size, "bpe_untied")
    assert mem.estimate(cfg)["fits"]
    per_gpu = cfg.total_batch_tokens // (cfg.block_size * 8)
    if 2 * cfg.micro_batch_size <= per_gpu:
        assert not mem.estimate(dataclasses.replace(cfg, micro_batch_size=2 * cfg.micro_batch_size))["fits"]
    assert not cfg.activation_checkpointing  # not needed up to 1558M


def test_activation_checkpointing_keeps_only_block_inputs():
    cfg = load("1558m", "bpe")
    plain = mem.activation_bytes_per_token(cfg)
    ckpt = mem.activation_bytes_per_token(dataclasses.replace(cfg, activation_checkpointing=True))
    assert plain - ckpt == (cfg.n_layer - 1) * mem.block_bytes_per_token(cfg) - cfg.n_layer * 4 * cfg.n_embd


def test_ddp_stops_fitting_between_gpt3_2_7b_and_6_7b():
    limit = mem.USABLE_FRACTION * mem.GPU_GIB * mem.GIB / 22
    assert 3.0e9 < limit < 3.5e9
    assert [row["fits"] for row in ladder.ddp_limit_rows()] == [True, False]


# ----------------------------------------------------------------------------- the memory model
# Toy GPTs on CPU under bf16 autocast (train.py's dtype on CUDA); differences between batch sizes
# and depths isolate the per-token bytes of one block and of everything outside the blocks.

def toy(n_layer, n_embd=128, vocab_size=512, n_head=4, block_size=64):
    torch.manual_seed(0)
    return GPT(GPTConfig(block_size=block_size, vocab_size=vocab_size, n_layer=n_layer, n_head=n_head,
                         n_embd=n_embd, embedding="bpe_untied"))


def saved_bytes(model, batch):
    """Bytes of the distinct storages autograd saves for backward in one forward."""
    storages = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t
    x = torch.randint(0, model.config.vocab_size, (batch, model.config.block_size))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
            torch.autocast("cpu", dtype=torch.bfloat16):
        model(x, x)
    return sum(storages.values())


def peak_bytes(model, batch):
    """The most bytes new tensors hold at once in forward + backward (AllocationTracker)."""
    x = torch.randint(0, model.config.vocab_size, (batch, model.config.block_size))
    with AllocationTracker(exclude=[*model.parameters(), *model.buffers(), x]) as tracker:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            _, loss = model(x, x)
        loss.backward()
    return tracker.peak_bytes


def per_token(measure, n_embd, vocab_size):
    """(bytes per token of one block, bytes per token outside the blocks) from four toy runs."""
    T = 64
    one = (measure(toy(1, n_embd, vocab_size), 2) - measure(toy(1, n_embd, vocab_size), 1)) / T
    two = (measure(toy(2, n_embd, vocab_size), 2) - measure(toy(2, n_embd, vocab_size), 1)) / T
    return two - one, 2 * one - two


@pytest.mark.parametrize("n_embd, vocab_size", [(128, 512), (256, 512)])
def test_saved_activation_bytes_per_token_are_the_formulas(n_embd, vocab_size):
    block, outside = per_token(saved_bytes, n_embd, vocab_size)
    cfg = dataclasses.replace(load_config([]), n_embd=n_embd, n_head=4, vocab_size=vocab_size)
    assert block == mem.block_bytes_per_token(cfg)  # 36 d + 4 n_head + 16
    # outside the blocks: 6 d + 16, plus log_softmax's fp32 output (4 V) kept for backward
    assert outside == mem.OUTSIDE_BYTES_PER_D * n_embd + mem.OUTSIDE_BYTES_FIXED + 4 * vocab_size


def test_peak_of_forward_and_backward_at_a_large_vocabulary_is_the_formula():
    # the loss's backward is the peak when V is large: its 14 V bytes per token are measured here
    T, n_embd, vocab_size = 64, 128, 1024
    model = toy(1, n_embd, vocab_size)
    measured = (peak_bytes(model, 4) - peak_bytes(model, 2)) / (2 * T)
    cfg = dataclasses.replace(load_config([]), n_layer=1, n_embd=n_embd, n_head=4, vocab_size=vocab_size)
    assert measured == pytest.approx(mem.activation_bytes_per_token(cfg), rel=0.01)


def test_estimate_memory_cli_prints_the_largest_micro_batch(capsys):
    mem.main([str(REPO_ROOT / "config" / "bpe_350m.py"), "--world-size", "8"])
    out = capsys.readouterr().out
    assert "fits" in out and "largest micro_batch_size that fits on 8 GPU(s): 32" in out


@pytest.mark.slow
def test_committed_ladder_report_is_what_the_script_writes(tmp_path):
    ladder.main(["--out", str(tmp_path)])
    assert (tmp_path / "ladder.md").read_text() == (REPO_ROOT / "results" / "ladder.md").read_text()
    docs = (REPO_ROOT / "docs" / "ladder.md").read_text()
    table = [line for line in (tmp_path / "ladder.md").read_text().splitlines() if line.startswith("| ")]
    assert all(line in docs for line in table)  # docs/ladder.md's copy of the table is current
