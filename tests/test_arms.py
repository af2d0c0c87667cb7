"""The control arms and the authors' conventions as knobs (issue 12 §1-2): kronecker_shuffled,
bpe_untied_scaled (wte_init_std), projection_weight_decay, named arms in configs, run folders and
summaries, the in-loop HellaSwag eval, and a log line whose step is not a step count."""
import dataclasses
import json
import math
import os
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
from model import GPT, GPTConfig
from test_eval import read_csv_rows, write_run
from test_hellaswag import EXAMPLES, write_fixture
from test_train import tiny_args
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

def test_wte_init_std_draws_only_the_token_table_differently():
    for embedding in ("bpe_untied", "bpe"):
        default, scaled = small_gpt(embedding), small_gpt(embedding, wte_init_std=1.0)
        wte = scaled.transformer.wte.weight
        assert wte.std().item() == pytest.approx(1.0, rel=0.05)
        changed = [name for (name, a), b in zip(default.state_dict().items(), scaled.state_dict().values())
                   if not torch.equal(a, b)]
        assert changed == (["transformer.wte.weight"] if embedding == "bpe_untied"
                           else ["transformer.wte.weight", "lm_head.weight"])  # the tied head is the table


@pytest.mark.slow
def test_wte_init_std_1_matches_the_kronecker_input_scale_at_124m_width():
    """Mean token-embedding norm at init over the real ids at n_embd 768: Kronecker with GPT-2's
    byte table; the BPE tables on a 4,096-id vocabulary (a row's norm does not depend on V)."""
    shape = dict(n_layer=1, n_head=12, n_embd=768, block_size=8)
    norms = {}
    for name, extra in [("kronecker", {}), ("bpe_untied_scaled", dict(wte_init_std=1.0, vocab_size=4096)),
                        ("bpe_untied", dict(vocab_size=4096))]:
        torch.manual_seed(0)
        model = GPT(GPTConfig(embedding=name.replace("_scaled", ""), **shape, **extra))
        norms[name] = model.embedding_norms()["emb_token_norm"]
    assert norms["kronecker"] == pytest.approx(math.sqrt(768), rel=0.02)  # 27.7: unit variance per coordinate
    assert norms["bpe_untied_scaled"] == pytest.approx(norms["kronecker"], rel=0.10)
    assert norms["bpe_untied"] == pytest.approx(0.02 * math.sqrt(768), rel=0.02)  # 0.55, 50x smaller


# ----------------------------------------------------------------------------- weight decay

@pytest.mark.parametrize("embedding", ["kronecker", "kronecker_shuffled"])
def test_projection_weight_decay_puts_the_projection_in_the_chosen_group(embedding):
    for decayed in (True, False):
        model = small_gpt(embedding, projection_weight_decay=decayed)
        groups = model.configure_optimizers(0.1, 1e-3, (0.9, 0.95), "cpu").param_groups
        projection = model.transformer.wte.projection.weight
        assert [any(p is projection for p in g["params"]) for g in groups] == [decayed, not decayed]
        assert groups[0]["weight_decay"] == 0.1 and groups[1]["weight_decay"] == 0.0
        assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
        assert any(p is model.lm_head.weight for p in groups[0]["params"])  # the rest as before


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


@pytest.mark.parametrize("argv, arm, settings", [
    ([], "bpe", dict(embedding="bpe", wte_init_std=0.02)),
    (["--embedding=bpe_untied", "--wte_init_std=1"], "bpe_untied_scaled", dict(wte_init_std=1.0)),
    (["--arm=bpe_untied_scaled"], "bpe_untied_scaled", dict(embedding="bpe_untied", wte_init_std=1.0)),
    (["config/kronecker_124m.py", "--arm=kronecker_shuffled"], "kronecker_shuffled",
     dict(embedding="kronecker_shuffled")),  # a named arm overrides the file, as sweep.sh's CONFIG needs
    (["--arm=kronecker_nodecay", "--embedding=kronecker", "--projection_weight_decay=false"], "kronecker_nodecay",
     dict(embedding="kronecker", projection_weight_decay=False)),
])
def test_the_arm_is_named_from_the_settings_or_sets_them(argv, arm, settings):
    cfg = load_config(argv)
    assert cfg.arm == arm and cfg.run_name == f"{arm}_s1337"
    assert {k: getattr(cfg, k) for k in settings} == settings


@pytest.mark.parametrize("argv, message", [
    (["--embedding=kronecker", "--projection_weight_decay=false"],
     "embedding=kronecker, wte_init_std=0.02, projection_weight_decay=False, token_bytes=exact is none of the named arms .*--arm=NAME"),
    (["--arm=bpe_untied_scaled", "--wte_init_std=0.5"],
     r"wte_init_std=0.5 \(from --wte_init_std=0.5\) contradicts arm=bpe_untied_scaled, which means wte_init_std=1.0"),
    (["--arm=kronecker", "--embedding=bpe"], "embedding=bpe .*contradicts arm=kronecker"),
    (["--embedding=kronecker_shuffled", "--wte_init_std=1"], "'wte_init_std' sets the BPE token table's init"),
    (["--embedding=bpe", "--projection_weight_decay=false"], "'projection_weight_decay' is about the Kronecker"),
    (["--arm=my arm"], "'arm' 'my arm' must be letters, digits"),
    (["--wte_init_std=0"], "'wte_init_std' must be positive"),
    (["--shuffle_seed=-1"], r"'shuffle_seed' must be in \[0, 2\*\*32 - 1\]"),
    (["--embedding=kronecker", "--trigram_k=4"], "'trigram_k' sets the trigram hash; embedding=kronecker has none"),
    (["--arm=trigram_hash", "--trigram_buckets=8"], r"need 0 <= trigram_lowercase_k <= trigram_k <= trigram buckets, "
                                                    r"got 2, 10, 8"),
    (["--arm=trigram_hash", "--trigram_buckets=0"], r"'trigram_buckets' must be in 1\.\.16777216 or None"),
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
    old_fields = {k: v for k, v in dataclasses.asdict(model_config).items()
                  if k not in ("wte_init_std", "shuffle_seed", "projection_weight_decay")}
    ckpt = dict(model=model.state_dict(), model_config=old_fields, train_config={})
    resumed, _ = train.build_model(cfg, ckpt, "old.pt")
    assert torch.equal(resumed.transformer.wte.projection.weight, model.transformer.wte.projection.weight)
