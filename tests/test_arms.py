"""The control arms and the authors' conventions as knobs (issues 12 and 22): kronecker_shuffled,
bpe_untied_scaled (wte_scale) and that its table learns, bpe_factorized (the parameter-matched
learned input), kronecker_tied (the head tied to the Kronecker table), projection_weight_decay,
named arms in configs, run folders and summaries, the in-loop HellaSwag eval, and a log line whose
step is not a step count."""
import dataclasses
import json
import math
import os
import re
import subprocess
from collections import Counter

import numpy as np
import pytest
import torch

import train
from checkpoint import save_checkpoint
from conftest import REPO_ROOT
from data.shards import write_shard
from embeddings import shuffled_byte_sources
from errors import UserError
from eval import hellaswag, summarize
from eval.runs import load_runs
from model import GPT, GPTConfig, TiedHead
from test_eval import read_csv_rows, write_run
from test_hellaswag import EXAMPLES, write_fixture
from test_train import crash_train_step_at, random_data, read_log, tiny_args  # noqa: F401 (a fixture)
from tokenizer import EOT_ID, GPT2_VOCAB, gpt2_token_bytes
from train_config import ARMS, load_config

# a small vocabulary with GPT-2's traits: multi-byte and partial-UTF-8 tokens, a long one that the
# codec cuts, and empty padding ids at the end
TOKEN_BYTES = [bytes([i]) for i in range(256)] + [b" the", b" Kronecker", "é".encode(), b"\xe2\x80",
                                                  b"x" * 40, b"ab"] + [b""] * 10
SMALL = dict(vocab_size=len(TOKEN_BYTES), block_size=8, n_layer=1, n_head=2, n_embd=16)


def small_gpt(embedding, seed=0, **overrides):
    torch.manual_seed(seed)
    return GPT(GPTConfig(embedding=embedding, **{**SMALL, **overrides}), token_bytes=TOKEN_BYTES)


# ----------------------------------------------------------------------------- kronecker_shuffled

def test_shuffled_permutes_the_real_ids_and_leaves_padding_empty():
    sources = shuffled_byte_sources(TOKEN_BYTES, seed=0)
    n_real = len(TOKEN_BYTES) - 10
    assert sorted(sources[:n_real].tolist()) == list(range(n_real))  # a permutation of the real ids
    assert sources[n_real:].tolist() == list(range(n_real, len(TOKEN_BYTES)))  # padding keeps b""
    assert (sources[:n_real] != torch.arange(n_real)).sum() > n_real - 5  # almost every id moves
    assert torch.equal(shuffled_byte_sources(TOKEN_BYTES, 0), sources)  # seeded: the same every time
    assert not torch.equal(shuffled_byte_sources(TOKEN_BYTES, 1), sources)


def test_shuffled_has_kroneckers_lengths_sparsity_norms_and_parameters():
    kron, shuffled = small_gpt("kronecker"), small_gpt("kronecker_shuffled")
    sources = shuffled_byte_sources(TOKEN_BYTES, seed=0)
    k, s = kron.transformer.wte, shuffled.transformer.wte
    assert Counter(k.byte_lengths.tolist()) == Counter(s.byte_lengths.tolist())
    assert torch.equal(s.byte_table, k.byte_table[sources]) and torch.equal(s.byte_lengths, k.byte_lengths[sources])
    assert kron.param_counts() == shuffled.param_counts()
    assert torch.equal(k.projection.weight, s.projection.weight)  # same seed, same init draws
    ids = torch.arange(len(TOKEN_BYTES))
    assert torch.equal(s.codec(ids), k.codec(sources))  # each token has its partner's codec vector
    assert torch.equal((s.codec(ids) != 0).sum(), (k.codec(ids) != 0).sum())  # same sparsity
    assert torch.allclose(shuffled.token_embedding(ids), kron.token_embedding(sources), atol=1e-6)
    assert shuffled.embedding_norms() == pytest.approx(kron.embedding_norms(), rel=1e-5)
    assert shuffled.lm_head.weight is not s.projection.weight  # untied head, as kronecker


def test_on_gpt2_every_real_id_eot_included_is_shuffled_and_padding_is_not():
    sources = shuffled_byte_sources(gpt2_token_bytes(50304), seed=0)
    assert sorted(sources[:GPT2_VOCAB].tolist()) == list(range(GPT2_VOCAB))
    assert sources[GPT2_VOCAB:].tolist() == list(range(GPT2_VOCAB, 50304))
    assert sources[EOT_ID] != EOT_ID  # <|endoftext|> gets another token's bytes too


def test_a_shuffled_checkpoint_rebuilds_its_permuted_byte_table(tmp_path):
    model = small_gpt("kronecker_shuffled", shuffle_seed=5)
    state = dict(model=model.state_dict(), model_config=dataclasses.asdict(model.config), step=1)
    path = save_checkpoint(state, tmp_path)
    loaded = GPT.from_checkpoint(path)  # no token bytes given: the byte table comes from the file
    assert loaded.config.embedding == "kronecker_shuffled" and loaded.config.shuffle_seed == 5
    assert torch.equal(loaded.transformer.wte.byte_table, model.transformer.wte.byte_table)
    ids = torch.arange(len(TOKEN_BYTES)).view(2, -1)[:, :8]
    assert torch.equal(loaded(ids)[0], model.eval()(ids)[0])


# ----------------------------------------------------------------------------- input scale

def test_wte_scale_multiplies_every_input_vector_and_draws_nothing_else():
    plain, scaled = small_gpt("bpe_untied"), small_gpt("bpe_untied", wte_scale=50.0)
    for (name, a), b in zip(plain.state_dict().items(), scaled.state_dict().values()):
        assert torch.equal(a, b), name  # a forward-time constant: the same init, no new parameter
    ids = torch.tensor([[1, 5, 260]])
    torch.testing.assert_close(scaled.token_embedding(ids), 50 * plain.token_embedding(ids))
    torch.testing.assert_close(scaled.input_table(), 50 * plain.input_table())  # what the export reads
    torch.testing.assert_close(scaled.hidden_states(ids)[0] - scaled.transformer.wpe.weight[:3],
                               50 * plain.token_embedding(ids))
    plain_norms, scaled_norms = plain.embedding_norms(), scaled.embedding_norms()
    assert scaled_norms["emb_row_norm"] == plain_norms["emb_row_norm"]  # the learned table itself
    assert scaled_norms["emb_token_norm"] == pytest.approx(50 * plain_norms["emb_token_norm"], rel=1e-5)


@pytest.mark.parametrize("embedding", ["bpe", "kronecker_tied"])
def test_wte_scale_is_refused_where_the_head_is_the_input_table(embedding):
    with pytest.raises(UserError, match="would scale embedding=.* tied head too"):
        GPTConfig(embedding=embedding, wte_scale=50.0)


@pytest.mark.slow
def test_the_scaled_table_and_the_factorised_input_start_at_their_targets_at_124m_width():
    """Mean token-embedding norm at init over the real ids at n_embd 768: Kronecker with GPT-2's
    byte table; the tables on a 4,096-id vocabulary (a row's norm does not depend on V)."""
    shape = dict(n_layer=1, n_head=12, n_embd=768, block_size=8)
    norms = {}
    for arm, embedding, extra in [("kronecker", "kronecker", {}), ("bpe_untied", "bpe_untied", {}),
                                  ("bpe_untied_scaled", "bpe_untied", dict(wte_scale=50.0)),
                                  ("bpe_factorized", "bpe_factorized", {})]:
        torch.manual_seed(0)
        vocab = {} if embedding == "kronecker" else dict(vocab_size=4096)
        norms[arm] = GPT(GPTConfig(embedding=embedding, **shape, **vocab, **extra)).embedding_norms()["emb_token_norm"]
    assert norms["kronecker"] == pytest.approx(math.sqrt(768), rel=0.02)  # 27.7: unit variance per coordinate
    assert norms["bpe_untied"] == pytest.approx(0.02 * math.sqrt(768), rel=0.02)  # 0.55, 50x smaller
    assert norms["bpe_untied_scaled"] == pytest.approx(norms["kronecker"], rel=0.02)
    assert norms["bpe_factorized"] == pytest.approx(norms["bpe_untied"], rel=0.05)  # N(0, 1/r) projection


def table_after_training(tmp_path, data, run_name, arm="bpe_untied_scaled", **overrides):
    """(initial table, final table, logged lr of each step) of a tiny 10-step run of `arm` at
    config/cpu_mini.py's learning rates."""
    args = tiny_args(tmp_path, data, run_name=run_name, arm=arm, max_steps=10, warmup_steps=2,
                     max_lr=3e-3, min_lr=3e-4, eval_interval=10, total_batch_tokens=32, **overrides)
    initial, _ = train.build_model(load_config(args), None, None)  # seeded as train.py seeds it
    train.main(args)
    final = GPT.from_checkpoint(tmp_path / "out" / run_name / "ckpt_000010.pt")
    lrs = [rec["lr"] for (step, kind), rec in sorted(read_log(tmp_path, run_name).items()) if kind == "train"]
    return initial.transformer.wte.weight.detach(), final.transformer.wte.weight.detach(), lrs


def test_the_scaled_controls_table_learns_far_beyond_what_weight_decay_alone_moves_it(
        tmp_path, random_data, monkeypatch):
    """Issue 22: a table drawn at N(0, 1) moved about as much as AdamW's decay alone predicts
    (a frozen random table). Decay alone multiplies the table by prod(1 - lr_t wd) over the
    logged lr, a relative change of 1 - prod; the N(0, 0.02) table behind wte_scale 50 must move
    far more. The same run with a table drawn at N(0, 1) and no scale (the old control, built
    by hand) stays near that bound: the test tells the two apart."""
    def decay_alone(lrs, weight_decay=0.1):  # TrainConfig's weight_decay
        return 1 - math.prod(1 - lr * weight_decay for lr in lrs)

    W0, W, lrs = table_after_training(tmp_path, random_data, "scaled")
    assert len(lrs) == 10
    assert ((W - W0).norm() / W0.norm()).item() > 20 * decay_alone(lrs)

    def unit_table_gpt(*args, **kwargs):  # the removed wte_init_std=1.0
        model = GPT(*args, **kwargs)
        with torch.no_grad():
            model.transformer.wte.weight.normal_(0.0, 1.0)
        return model
    monkeypatch.setattr(train, "GPT", unit_table_gpt)
    W0, W, lrs = table_after_training(tmp_path, random_data, "old", arm="old_control", embedding="bpe_untied")
    assert ((W - W0).norm() / W0.norm()).item() < 5 * decay_alone(lrs)


# ----------------------------------------------------------------------------- bpe_factorized

def meta_counts(embedding, n_layer=12, n_embd=768, n_head=12, **overrides):
    with torch.device("meta"):
        config = GPTConfig(embedding=embedding, n_layer=n_layer, n_embd=n_embd, n_head=n_head, **overrides)
        return GPT(config, token_bytes=[b""] * config.vocab_size).param_counts(), config


def test_factorized_matches_the_kronecker_projections_parameters_at_124m():
    counts, config = meta_counts("bpe_factorized")
    assert config.table_rank == 62  # 4096 * 768 / (50304 + 768) = 61.6
    assert counts == dict(total=127_642_368, input_trainable=62 * (50_304 + 768), output_head=38_633_472,
                          position=786_432, body=85_056_000)
    kron, _ = meta_counts("kronecker")
    assert counts["input_trainable"] - kron["input_trainable"] == 20_736  # +0.7% of 3,145,728
    assert abs(counts["total"] / kron["total"] - 1) < 0.0002


@pytest.mark.parametrize("n_embd", [768, 1024, 1280, 1600])  # 124M .. 1558M; whole models: tests/test_ladder.py
def test_the_rank_rule_gives_the_nearest_parameter_match_at_every_ladder_width(n_embd):
    counts, config = meta_counts("bpe_factorized", n_layer=1, n_embd=n_embd, n_head=1)
    r, per_rank, target = config.table_rank, 50_304 + n_embd, 4096 * n_embd
    assert counts["input_trainable"] == r * per_rank
    assert all(abs(r * per_rank - target) < abs(other * per_rank - target) for other in (r - 1, r + 1))


def test_factor_rank_sets_the_rank_and_the_input_is_table_then_projection():
    model = small_gpt("bpe_factorized", factor_rank=3)
    wte = model.transformer.wte
    assert wte.table.weight.shape == (len(TOKEN_BYTES), 3) and wte.projection.weight.shape == (16, 3)
    ids = torch.tensor([[4, 260, 261]])
    torch.testing.assert_close(model.token_embedding(ids), wte.table.weight[ids] @ wte.projection.weight.t())
    assert model.lm_head.weight.shape == (len(TOKEN_BYTES), 16) and not model.tied_head


# ----------------------------------------------------------------------------- kronecker_tied

def test_kronecker_tied_has_no_vocabulary_sized_parameter_at_124m():
    counts, _ = meta_counts("kronecker_tied")
    assert counts == dict(total=88_988_160, input_trainable=3_145_728, output_head=0, position=786_432,
                          body=85_056_000)  # 3.1M input + output parameters, against kronecker's 41.8M
    with torch.device("meta"):
        model = GPT(GPTConfig(embedding="kronecker_tied"), token_bytes=[b""] * 50304)
    assert not any(50304 in p.shape for p in model.parameters())
    assert "lm_head.weight" not in model.state_dict() and model.tied_head


def test_kronecker_tied_logits_are_h_times_the_input_table_times_its_scale():
    model = small_gpt("kronecker_tied").eval()
    ids = torch.tensor([[4, 260, 261, 262, 0]])
    logits, _ = model(ids, ids)
    h, table = model.hidden_states(ids)[-1], model.input_table()
    torch.testing.assert_close(logits, 0.02 * h @ table.t())
    torch.testing.assert_close(model.lm_head.weight, 0.02 * table)  # what the export reads
    torch.testing.assert_close(model.lm_head(h), logits)  # the probes' path, E computed by the head
    assert isinstance(model.lm_head, TiedHead) and not list(model.lm_head.parameters())


def test_kronecker_tied_computes_the_table_once_per_forward_for_both_ends():
    model = small_gpt("kronecker_tied", kronecker_mode="sparse")
    calls = []
    model.transformer.wte.vocab_matrix.register_forward_hook(lambda *args: calls.append(1))
    ids = torch.tensor([[4, 260, 261, 262]])
    _, loss = model(ids, ids)
    loss.backward()
    assert len(calls) == 1  # the lookup reads E too, not the sparse per-token path
    reference = small_gpt("kronecker_tied", kronecker_mode="dense")  # the input through the dense codec
    _, reference_loss = reference(ids, ids)
    reference_loss.backward()
    torch.testing.assert_close(loss, reference_loss)
    W, W_ref = model.transformer.wte.projection.weight, reference.transformer.wte.projection.weight
    torch.testing.assert_close(W.grad, W_ref.grad, rtol=1e-5, atol=1e-7)  # both ends' gradients reach W


def test_kronecker_tied_starts_from_kroneckers_weights_with_a_head_at_a_tables_scale():
    tied, untied = small_gpt("kronecker_tied"), small_gpt("kronecker")
    untied_state = untied.state_dict()
    assert set(untied_state) - set(tied.state_dict()) == {"lm_head.weight"}
    for name, tensor in tied.state_dict().items():
        assert torch.equal(tensor, untied_state[name]), name  # one seed, one init: a paired design
    stds = {}
    for scale in (0.02, 1.0):  # the default, and h E^T unscaled
        torch.manual_seed(0)
        wide = GPT(GPTConfig(embedding="kronecker_tied", n_layer=1, n_head=12, n_embd=768, block_size=8,
                             vocab_size=4096, tied_head_scale=scale), token_bytes=gpt2_token_bytes(4096))
        head_rows = wide.lm_head.weight.norm(dim=1).mean().item()
        assert head_rows == pytest.approx(scale * math.sqrt(768), rel=0.02)  # 0.02: 0.55, a N(0, 0.02) row
        with torch.no_grad():
            stds[scale] = wide(torch.randint(0, 4096, (2, 8), generator=torch.Generator().manual_seed(0)))[0].std()
    assert stds[0.02] < 2.5 and stds[1.0] > 40  # a nearly one-hot softmax at init without the scale


def test_kronecker_tied_generates_groups_its_parameters_once_and_counts_the_head_matmul():
    model = small_gpt("kronecker_tied").eval()
    prompt = torch.tensor([[4, 260]])
    out = model.generate(prompt, 3, temperature=0)
    ids = prompt
    for _ in range(3):  # greedy by hand through forward
        ids = torch.cat([ids, model(ids)[0][:, -1, :GPT2_VOCAB].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(out, ids)
    groups = model.configure_optimizers(0.1, 1e-3, (0.9, 0.95), "cpu").param_groups
    grouped = [p for g in groups for p in g["params"]]
    assert len(grouped) == len(list(model.parameters())) == len({id(p) for p in grouped})
    assert any(p is model.transformer.wte.projection.weight for p in groups[0]["params"])
    assert model.flops_per_token() == small_gpt("kronecker").flops_per_token()  # V d head matmul either way


@pytest.mark.slow
def test_kronecker_tied_checkpoints_load_and_a_killed_run_resumes_exactly(tmp_path, gpt2_ids_data, monkeypatch):
    model = small_gpt("kronecker_tied")
    path = save_checkpoint(dict(model=model.state_dict(), model_config=dataclasses.asdict(model.config), step=1),
                           tmp_path)
    ids = torch.tensor([[4, 260, 261]])
    assert torch.equal(GPT.from_checkpoint(path)(ids)[0], model.eval()(ids)[0])
    args = dict(embedding="kronecker_tied", vocab_size=50304, total_batch_tokens=32)
    train.main(tiny_args(tmp_path, gpt2_ids_data, run_name="straight", **args))
    crash_train_step_at(4, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        train.main(tiny_args(tmp_path, gpt2_ids_data, run_name="killed", **args))
    monkeypatch.undo()
    train.main(tiny_args(tmp_path, gpt2_ids_data, run_name="killed", **args))
    straight, resumed = read_log(tmp_path, "straight"), read_log(tmp_path, "killed")
    assert straight.keys() == resumed.keys()
    for key, rec in straight.items():
        for field in ("train_loss", "grad_norm", "val_loss", "emb_token_norm"):
            assert rec.get(field) == resumed[key].get(field), (key, field)  # bit-exact


# ----------------------------------------------------------------------------- weight decay

@pytest.mark.parametrize("embedding", ["kronecker", "kronecker_shuffled", "kronecker_tied"])
def test_projection_weight_decay_puts_the_projection_in_the_chosen_group(embedding):
    for decayed in (True, False):
        model = small_gpt(embedding, projection_weight_decay=decayed)
        groups = model.configure_optimizers(0.1, 1e-3, (0.9, 0.95), "cpu").param_groups
        projection = model.transformer.wte.projection.weight
        assert [any(p is projection for p in g["params"]) for g in groups] == [decayed, not decayed]
        assert groups[0]["weight_decay"] == 0.1 and groups[1]["weight_decay"] == 0.0
        assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
        assert any(p is model.transformer.h[0].mlp.c_fc.weight for p in groups[0]["params"])  # the rest as before


def test_the_bpe_table_is_always_decayed():
    model = small_gpt("bpe_untied")
    decayed = model.configure_optimizers(0.1, 1e-3, (0.9, 0.95), "cpu").param_groups[0]["params"]
    assert any(p is model.transformer.wte.weight for p in decayed)


# ----------------------------------------------------------------------------- named arms

@pytest.mark.parametrize("arm", list(ARMS))
def test_every_named_arm_has_a_124m_config_that_names_it(arm):
    cfg = load_config([f"config/{arm}_124m.py", "--seed=7"])
    assert cfg.arm == arm and cfg.run_name == f"{arm}_s7"
    assert {k: getattr(cfg, k) for k in ARMS[arm]} == ARMS[arm]
    assert (cfg.n_layer, cfg.n_embd, cfg.max_steps) == (12, 768, 4768)


def test_the_cpu_mini_study_runs_named_arms_covering_the_2x2_and_compares_against_its_own_arms():
    script = (REPO_ROOT / "scripts" / "cpu_mini.sh").read_text()
    arms = re.search(r'^ARMS="([^"]*)"$', script, re.MULTILINE).group(1).split()
    assert set(arms) <= set(ARMS) and len(arms) == len(set(arms))
    assert {"bpe", "bpe_untied", "bpe_factorized", "bpe_untied_scaled", "kronecker", "kronecker_tied",
            "kronecker_shuffled"} <= set(arms)  # issue 22: each factor isolated by a pair of these
    commands = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("#"))
    baselines = re.findall(r"--baseline (\S+)", commands)
    assert baselines and set(baselines) <= set(arms)


@pytest.mark.parametrize("argv, arm, settings", [
    ([], "bpe", dict(embedding="bpe", wte_scale=1.0)),
    (["--embedding=bpe_untied", "--wte_scale=50"], "bpe_untied_scaled", dict(wte_scale=50.0)),
    (["--arm=bpe_untied_scaled"], "bpe_untied_scaled", dict(embedding="bpe_untied", wte_scale=50.0)),
    (["--embedding=kronecker_tied"], "kronecker_tied", dict(embedding="kronecker_tied")),
    (["--arm=bpe_factorized"], "bpe_factorized", dict(embedding="bpe_factorized", factor_rank=0)),
    (["--arm=kronecker_mlp", "--embedding=kronecker", "--projection=mlp"], "kronecker_mlp",
     dict(embedding="kronecker", projection="mlp", projection_hidden=0)),
    (["config/kronecker_124m.py", "--arm=kronecker_shuffled"], "kronecker_shuffled",
     dict(embedding="kronecker_shuffled")),  # a named arm overrides the file, as sweep.sh's CONFIG needs
    (["--arm=kronecker_nodecay", "--embedding=kronecker", "--projection_weight_decay=false"], "kronecker_nodecay",
     dict(embedding="kronecker", projection_weight_decay=False)),
    # the hash's seed is a seed, like shuffle_seed: the same arm; its sizes are not
    (["--embedding=trigram_hash", "--trigram_seed=7"], "trigram_hash", dict(trigram_seed=7, trigram_buckets=None)),
    (["--arm=trigram_mean", "--embedding=trigram_hash", "--trigram_aggregation=mean"], "trigram_mean",
     dict(trigram_aggregation="mean", trigram_k=10)),
])
def test_the_arm_is_named_from_the_settings_or_sets_them(argv, arm, settings):
    cfg = load_config(argv)
    assert cfg.arm == arm and cfg.run_name == f"{arm}_s1337"
    assert {k: getattr(cfg, k) for k in settings} == settings


@pytest.mark.parametrize("argv, message", [
    (["--embedding=kronecker", "--projection_weight_decay=false"],
     "embedding=kronecker, projection_weight_decay=False is none of the named arms .*--arm=NAME"),
    (["--arm=bpe_untied_scaled", "--wte_scale=10"],
     r"wte_scale=10.0 \(from --wte_scale=10\) contradicts arm=bpe_untied_scaled, which means wte_scale=50.0"),
    (["--arm=kronecker", "--embedding=bpe"], "embedding=bpe .*contradicts arm=kronecker"),
    (["--embedding=bpe", "--projection_weight_decay=false"],
     "'projection_weight_decay' acts on embedding kronecker, kronecker_tied, kronecker_shuffled only; "
     "embedding=bpe does not read it"),
    (["--embedding=kronecker", "--factor_rank=8"], "'factor_rank' acts on embedding bpe_factorized only"),
    (["--embedding=bpe_factorized", "--projection=mlp"], "'projection' acts on embedding kronecker, "),
    (["--embedding=kronecker", "--shuffle_seed=3"], "'shuffle_seed' acts on embedding kronecker_shuffled only"),
    (["--embedding=kronecker", "--projection_hidden=64"], "'projection_hidden' is the width of projection=mlp"),
    (["--embedding=kronecker_tied", "--wte_scale=50"], "would scale embedding=kronecker_tied's tied head"),
    (["--embedding=kronecker", "--tied_head_scale=1"], "'tied_head_scale' acts on embedding kronecker_tied only"),
    (["--wte_init_std=1"], "config key 'wte_init_std' .* was removed: .*wte_scale"),
    (["--arm=my arm"], "'arm' 'my arm' must be letters, digits"),
    (["--wte_scale=0"], "'wte_scale' must be positive"),
    (["--factor_rank=-1"], "'factor_rank' must be >= 0"),
    (["--shuffle_seed=-1"], r"'shuffle_seed' must be in \[0, 2\*\*32 - 1\]"),
    (["--embedding=kronecker", "--trigram_k=4"], "'trigram_k' acts on embedding trigram_hash only; "
                                                 "embedding=kronecker does not read it"),
    (["--arm=trigram_hash", "--trigram_k=4"], "trigram_k=4 .*contradicts arm=trigram_hash"),
    (["--arm=trigram_small", "--embedding=trigram_hash", "--trigram_buckets=8"],
     r"need 0 <= trigram_lowercase_k <= trigram_k <= trigram buckets, got 2, 10, 8"),
    (["--arm=trigram_small", "--embedding=trigram_hash", "--trigram_buckets=0"],
     r"'trigram_buckets' must be in 1\.\.16777216 or None"),
    (["--hellaswag_interval=-1"], "'hellaswag_interval' must be >= 0"),
])
def test_arm_knobs_that_cannot_apply_are_one_line_errors(argv, message):
    with pytest.raises(UserError, match=message) as err:
        load_config(argv)
    assert "\n" not in str(err.value)


def test_sweep_refuses_an_unknown_arm_before_any_run():
    env = dict(os.environ, ARMS="bpe kroneker", LAUNCH="false", LOG_DIR="/nonexistent", CONFIG="config/cpu_tiny.py")
    result = subprocess.run(["bash", "scripts/sweep.sh"], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2 and "==" not in result.stdout
    assert "unknown arm 'kroneker' in ARMS (no config/kroneker_124m.py)" in result.stderr
    assert "bpe_untied_scaled" in result.stderr and "kronecker_shuffled" in result.stderr


# ----------------------------------------------------------------------------- runs and summaries

def test_runs_are_grouped_by_arm_and_summarize_compares_every_arm_with_both_baselines(tmp_path):
    runs = tmp_path / "runs"
    finals = dict(bpe=3.0, bpe_untied=2.9, bpe_untied_scaled=2.8, kronecker=2.7, kronecker_shuffled=2.85)
    for seed in (0, 1):
        for arm, final in finals.items():
            embedding = "bpe_untied" if arm == "bpe_untied_scaled" else arm
            folder = write_run(runs, embedding, seed, [10, 5, 4, 3.5, final + 0.01 * seed], name=f"{arm}_s{seed}")
            if arm != "bpe":  # bpe as written before runs had an "arm": grouped by its embedding
                config = json.loads((folder / "config.json").read_text())
                (folder / "config.json").write_text(json.dumps(dict(config, arm=arm)))
    assert {r.name: r.arm for r in load_runs(runs)} == {f"{a}_s{s}": a for a in finals for s in (0, 1)}
    summarize.main(["--runs", str(runs)])
    rows = read_csv_rows(tmp_path / "summary.csv")
    for arm in finals:
        for baseline in ("bpe", "bpe_untied"):
            if arm != baseline:
                gap = rows[(f"{arm} vs {baseline}", "val loss gap (nats)")]
                assert float(gap["mean"]) == pytest.approx(finals[arm] - finals[baseline]) and gap["seeds"] == "2"
    assert float(rows[("bpe_untied_scaled", "final val loss")]["mean"]) == pytest.approx(2.805)


@pytest.mark.parametrize("step", ['"x"', "null", "1.5", "true", "-1", "[3]"])
def test_a_log_line_whose_step_is_not_a_step_count_is_one_line_naming_file_and_line(tmp_path, step):
    folder = write_run(tmp_path, "bpe", 0, [10, 5, 4, 3.5, 3.0])
    with open(folder / "log.jsonl", "a") as f:
        f.write(f'{{"step": {step}, "train_loss": 3.0}}\n{{"step": 401, "train_loss": 2.9}}\n')
    with pytest.raises(UserError, match=r"log.jsonl line 11: 'step' is .*, not a whole number >= 0") as err:
        load_runs(tmp_path)
    assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------- in-loop HellaSwag

@pytest.fixture
def gpt2_ids_data(tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    data.mkdir()
    write_shard(data / "val_000000.bin", rng.integers(0, 50257, 1000).astype(np.uint16))
    write_shard(data / "train_000001.bin", rng.integers(0, 50257, 4000).astype(np.uint16))
    return data


@pytest.mark.slow
def test_in_loop_hellaswag_logs_acc_norm_at_its_interval_and_at_the_end(tmp_path, gpt2_ids_data):
    write_fixture(tmp_path / "hs")
    args = tiny_args(tmp_path, gpt2_ids_data, vocab_size=50304, max_steps=3, eval_interval=3,
                     hellaswag_interval=2, hellaswag_dir=tmp_path / "hs")
    train.main(args)
    lines = [json.loads(line) for line in (tmp_path / "runs" / "run" / "log.jsonl").read_text().splitlines()]
    scored = {rec["step"]: rec for rec in lines if "hellaswag_acc_norm" in rec}
    assert sorted(scored) == [0, 2, 3]
    final = GPT.from_checkpoint(tmp_path / "out" / "run" / "ckpt_000003.pt")
    expected = hellaswag.hellaswag_accuracy(final, EXAMPLES, "cpu")
    assert scored[3] == dict(step=3, tokens=3 * 128, **{f"hellaswag_{k}": pytest.approx(v) for k, v in expected.items()})
    plain = tmp_path / "plain"  # the eval draws no random numbers: the training losses are unchanged
    train.main(tiny_args(plain, gpt2_ids_data, vocab_size=50304, max_steps=3, eval_interval=3))
    plain_lines = [json.loads(line) for line in (plain / "runs" / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["train_loss"] for r in lines if "train_loss" in r] == \
        [r["train_loss"] for r in plain_lines if "train_loss" in r]


def test_sharded_hellaswag_scores_equal_one_process():
    model = small_gpt("bpe", vocab_size=50304, block_size=32)
    whole = hellaswag.hellaswag_accuracy(model, EXAMPLES, "cpu")
    parts = [hellaswag.hellaswag_accuracy(model, EXAMPLES[r::2], "cpu") for r in range(2)] + [dict(n=0)]
    combined = train.combine_hellaswag(parts)  # two ranks and one with no example
    assert combined == {f"hellaswag_{k}": pytest.approx(v) for k, v in whole.items()}
    assert combined["hellaswag_acc_norm"] == whole["acc_norm"]  # counts add exactly


def test_a_missing_hellaswag_file_stops_before_any_model_is_built(tmp_path, gpt2_ids_data, monkeypatch):
    offline = hellaswag.ensure_data
    monkeypatch.setattr(hellaswag, "ensure_data", lambda d: offline(d, url="http://127.0.0.1:9/hellaswag_val.jsonl"))
    monkeypatch.setattr(train, "GPT", lambda *a, **k: pytest.fail("a model was built"))
    missing = tmp_path / "nowhere" / "hellaswag_val.jsonl"
    with pytest.raises(UserError, match=f"cannot download HellaSwag .*put it at {missing}") as err:
        train.main(tiny_args(tmp_path, gpt2_ids_data, vocab_size=50304, hellaswag_interval=2,
                             hellaswag_dir=tmp_path / "nowhere"))
    assert "\n" not in str(err.value)


def small_cfg(embedding, **overrides):
    args = dict(embedding=embedding, n_layer=1, n_head=2, n_embd=16, block_size=16, device="cpu",
                **overrides)
    return load_config([f"--{k}={v}" for k, v in args.items()])


def test_shuffled_arm_takes_its_bytes_from_the_runs_tokenizer_and_token_bytes_mode():
    exact, _ = train.build_model(small_cfg("kronecker_shuffled"), None, None)
    reference, _ = train.build_model(small_cfg("kronecker_shuffled", token_bytes="reference",
                                               arm="kronecker_shuffled_reference"), None, None)
    assert not torch.equal(exact.transformer.wte.byte_table, reference.transformer.wte.byte_table)


def test_trigram_arm_takes_its_bytes_from_the_runs_tokenizer_and_token_bytes_mode():
    exact, _ = train.build_model(small_cfg("trigram_hash"), None, None)
    reference, _ = train.build_model(small_cfg("trigram_hash", token_bytes="reference", arm="trigram_reference"),
                                     None, None)
    wte = exact.transformer.wte
    assert torch.equal(wte.token_offsets.diff()[:5], torch.tensor([1, 1, 1, 1, 1]))  # ids 0-4: one byte each
    assert wte.token_offsets.diff()[EOT_ID] == 13  # the literal <|endoftext|>, 13 bytes: 13 trigrams
    assert len(wte.trigram_codes) != len(reference.transformer.wte.trigram_codes)  # U+FFFD for fragments


def test_a_checkpoint_from_before_the_arm_knobs_still_resumes():
    cfg = small_cfg("kronecker")
    model, model_config = train.build_model(cfg, None, None)
    new_knobs = ("shuffle_seed", "projection_weight_decay", "wte_scale", "factor_rank", "projection",
                 "projection_hidden", "tied_head_scale")
    old_fields = {k: v for k, v in dataclasses.asdict(model_config).items() if k not in new_knobs}
    ckpt = dict(model=model.state_dict(), model_config=dict(old_fields, wte_init_std=0.02), train_config={})
    resumed, _ = train.build_model(cfg, ckpt, "old.pt")
    assert torch.equal(resumed.transformer.wte.projection.weight, model.transformer.wte.projection.weight)
