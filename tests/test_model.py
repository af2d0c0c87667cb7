"""model.py: the arms (parameter counts, tying, init), training a tiny model, checkpoints (also
from before a field was removed), forward variants, sampling and the effective input table of
every arm."""
import pytest
import torch

from errors import UserError
from model import GPT, INPUT_KINDS, GPTConfig, TiedHead, sample_next
from tokenizer import gpt2_token_bytes

TINY = dict(block_size=16, vocab_size=50304, n_layer=2, n_head=2, n_embd=32)


@pytest.fixture(scope="module")
def gpt2_bytes():
    return gpt2_token_bytes(50304)


# ----------------------------------------------------------------------------- the three arms

@pytest.mark.parametrize("embedding", ["bpe", "kronecker", "trigram_hash"])
def test_token_embeddings_are_float32_under_autocast_in_every_arm(embedding):
    model = GPT(GPTConfig(**TINY, embedding=embedding))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model.token_embedding(torch.tensor([[1, 2]])).dtype == torch.float32


def test_parameter_counts_of_the_124m_arms():
    with torch.device("meta"):
        bpe = GPT(GPTConfig(embedding="bpe")).param_counts()
        kron = GPT(GPTConfig(embedding="kronecker"), token_bytes=[b""] * 50304).param_counts()
        untied = GPT(GPTConfig(embedding="bpe_untied")).param_counts()
        trigram = GPT(GPTConfig(embedding="trigram_hash"), token_bytes=[b""] * 50304).param_counts()
    assert bpe["total"] == 124_475_904
    assert bpe["input_trainable"] == 38_633_472 and bpe["output_head"] == 0
    assert kron["input_trainable"] == 3_145_728
    assert kron["total"] == 127_621_632
    assert untied["total"] == 124_475_904 + 38_633_472
    assert trigram == kron  # 4,096 x 768 buckets: the projection's 3,145,728 parameters, untied head
    for counts in (bpe, kron, untied, trigram):
        assert counts["input_trainable"] + counts["output_head"] + counts["position"] + counts["body"] == counts["total"]


@pytest.mark.parametrize("embedding", list(INPUT_KINDS))
def test_the_head_is_tied_to_the_input_table_exactly_where_the_arm_table_says(embedding, gpt2_bytes):
    model = GPT(GPTConfig(**TINY, embedding=embedding), token_bytes=gpt2_bytes)
    assert model.tied_head == INPUT_KINDS[embedding].tied == (embedding in ("bpe", "kronecker_tied"))
    input_params = list(model.transformer.wte.parameters())
    if embedding == "bpe":  # the table is a parameter: the head is that parameter
        assert model.lm_head.weight is model.transformer.wte.weight
    elif model.tied_head:  # a computed table: no parameter of its own
        assert isinstance(model.lm_head, TiedHead) and not list(model.lm_head.parameters())
    else:
        assert not any(model.lm_head.weight is p for p in input_params)


def test_kronecker_projection_keeps_the_paper_init():
    model = GPT(GPTConfig(**TINY, embedding="kronecker"))
    assert model.embedding_norms()["emb_row_norm"] == pytest.approx(1.0, abs=0.05)
    assert model.lm_head.weight.std().item() == pytest.approx(0.02, rel=0.05)


@pytest.mark.parametrize("embedding", ["bpe", "bpe_untied", "bpe_factorized", "kronecker", "kronecker_tied",
                                       "trigram_hash"])
def test_a_tiny_model_overfits_one_batch(embedding, gpt2_bytes):
    torch.manual_seed(0)
    config = GPTConfig(**{**TINY, "vocab_size": 256}, embedding=embedding)
    model = GPT(config, token_bytes=gpt2_bytes[:256])
    x = torch.randint(0, 256, (4, 17))
    optimizer = model.configure_optimizers(0.0, 1e-2, (0.9, 0.95), "cpu")
    losses = []
    for _ in range(30):
        _, loss = model(x[:, :-1], x[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0], losses


@pytest.mark.parametrize("embedding", ["bpe", "kronecker"])
def test_checkpoint_round_trip_gives_identical_logits(embedding, tmp_path):
    from dataclasses import asdict
    model = GPT(GPTConfig(**TINY, embedding=embedding)).eval()
    path = tmp_path / "ckpt.pt"
    torch.save({"model": model.state_dict(), "model_config": asdict(model.config)}, path)
    loaded = GPT.from_checkpoint(path)  # no tokenizer needed: the byte table is in the state
    x = torch.randint(0, 50304, (2, 16))
    assert torch.equal(model(x, x)[0], loaded(x, x)[0])


def test_a_checkpoint_written_with_the_removed_wte_init_std_still_loads(tmp_path):
    from dataclasses import asdict
    model = GPT(GPTConfig(**TINY, embedding="bpe_untied")).eval()
    path = tmp_path / "old.pt"  # an older model_config: its init std does not change a trained model
    torch.save({"model": model.state_dict(), "model_config": dict(asdict(model.config), wte_init_std=1.0)}, path)
    loaded = GPT.from_checkpoint(path)
    x = torch.randint(0, 50304, (2, 16))
    assert loaded.config.wte_scale == 1.0 and torch.equal(model(x, x)[0], loaded(x, x)[0])


def test_bad_checkpoints_and_configs_fail_with_one_line(tmp_path):
    with pytest.raises(UserError, match="checkpoint .*missing.pt not found"):
        GPT.from_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="junk.pt cannot be read"):
        GPT.from_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(UserError, match="embedding='table'"):
        GPTConfig(embedding="table")


def test_tok_emb_input_and_hidden_states_follow_the_token_path():
    model = GPT(GPTConfig(**TINY, embedding="kronecker")).eval()
    x = torch.randint(0, 50257, (2, 8))
    logits, _ = model(x)
    assert logits.shape == (2, 1, 50304)
    assert torch.equal(model(tok_emb=model.token_embedding(x))[0], logits)
    states = model.hidden_states(x)
    assert len(states) == TINY["n_layer"] + 2
    assert torch.allclose(model.lm_head(states[-1][:, [-1]]), logits)


def test_generate_and_sampling_filters():
    model = GPT(GPTConfig(**TINY, embedding="bpe")).eval()
    prompt = torch.tensor([[464, 3290]])
    greedy = model.generate(prompt, 5, temperature=0)
    assert greedy.shape == (1, 7) and torch.equal(greedy, model.generate(prompt, 5, temperature=0))
    logits = torch.tensor([[3.0, 2.0, 1.0, -5.0]])
    g = torch.Generator().manual_seed(0)
    assert {sample_next(logits, 1.0, top_k=1, generator=g).item() for _ in range(20)} == {0}
    top_p = {sample_next(logits, 1.0, top_p=0.8, generator=g).item() for _ in range(200)}
    assert top_p == {0, 1}  # p(0) = 0.66 < 0.8, so the nucleus needs token 1 too, and no more


@pytest.mark.parametrize("embedding, knobs", [(e, {}) for e in INPUT_KINDS] + [
    ("bpe_untied", dict(wte_scale=50.0)), ("kronecker", dict(projection="mlp")),
    ("kronecker_tied", dict(projection="mlp", projection_hidden=24))])
def test_input_table_row_i_is_what_id_i_embeds_to(embedding, knobs):
    config = GPTConfig(block_size=8, vocab_size=300, n_layer=1, n_head=2, n_embd=16, embedding=embedding, **knobs)
    torch.manual_seed(0)
    model = GPT(config, token_bytes=[bytes([i % 256]) * (1 + i % 5) for i in range(300)])
    ids = torch.tensor([[0, 7, 299, 42]])
    table = model.input_table()
    assert table.shape == (300, 16)
    torch.testing.assert_close(table[ids[0]], model.token_embedding(ids)[0], rtol=0, atol=1e-6)
    table.sum().backward()  # differentiable: the tied Kronecker head's logits = h E^T train through it
    assert all(p.grad is not None for p in model.transformer.wte.parameters())
