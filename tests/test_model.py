"""model.py: the Kronecker codec, its three modes, the reference oracle, the three arms."""
import math

import pytest
import torch

from errors import UserError
from model import (GPT, KRONECKER_MODES, GPTConfig, KroneckerEmbedding, _scatter_positions, _scatter_prefixes,
                   sample_next, sparse_embed)
from tokenizer import EOT_ID, GPT2_VOCAB, gpt2_token_bytes, truncate_utf8

TINY = dict(block_size=16, vocab_size=50304, n_layer=2, n_head=2, n_embd=32)


@pytest.fixture(scope="module")
def gpt2_bytes():
    return gpt2_token_bytes(50304)


def rel_err(a, b):
    return ((a - b).norm() / b.norm()).item()


# ----------------------------------------------------------------------------- token bytes

def test_token_bytes_are_exact_for_special_padding_and_fragment_ids(gpt2_bytes):
    assert len(gpt2_bytes) == 50304
    assert gpt2_bytes[EOT_ID] == b"<|endoftext|>"
    assert all(b == b"" for b in gpt2_bytes[GPT2_VOCAB:])
    assert gpt2_bytes[0] == b"!"
    fragments = [b for b in gpt2_bytes[:EOT_ID] if not _is_utf8(b)]
    assert fragments, "GPT-2 has tokens that are partial UTF-8 characters"
    assert all(b"\xef\xbf\xbd" not in b for b in fragments), "fragments stay raw, never U+FFFD"


def _is_utf8(b):
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def test_truncation_never_splits_a_utf8_character():
    assert truncate_utf8(b"abcdef", 4) == b"abcd"
    assert truncate_utf8(b"abc", 4) == b"abc"
    euro = "€".encode()  # 3 bytes
    assert truncate_utf8(b"ab" + euro, 4) == b"ab"
    assert truncate_utf8(b"a" + euro + b"x", 4) == b"a" + euro
    invalid = b"\xe2\x82" * 3  # not valid UTF-8: cut at exactly max_bytes
    assert truncate_utf8(invalid, 5) == invalid[:5]


# ----------------------------------------------------------------------------- codec

def test_codec_of_hi_matches_the_hand_computation():
    emb = KroneckerEmbedding([b"", b"hi"], n_embd=8, pos_dim=4)
    z = emb.codec(torch.tensor([1]))[0].double()
    D = 1024
    mean = math.sqrt(2) / D
    std = math.sqrt((1 - 2 / D) / (D - 1))  # unbiased std of kappa
    expected = torch.full((D,), -mean / (std + 1e-6), dtype=torch.float64)
    for position, byte in enumerate(b"hi"):
        expected[byte * 4 + position] = (1 / math.sqrt(2) - mean) / (std + 1e-6)
    assert torch.allclose(z, expected, rtol=1e-5, atol=1e-6)


def test_codec_is_z_normalised_and_empty_tokens_give_zero():
    emb = KroneckerEmbedding([b"", b"a", b"hello", b"x" * 16], n_embd=8, pos_dim=16)
    z = emb.codec(torch.arange(4))
    assert torch.equal(z[0], torch.zeros(emb.D))
    assert torch.allclose(z[1:].mean(1), torch.zeros(3), atol=1e-6)
    assert torch.allclose(z[1:].std(1), torch.ones(3), atol=1e-4)  # 1 - eps/std(kappa): eps = 1e-6


def test_long_and_multibyte_tokens_are_truncated_before_encoding():
    word = "naïveté".encode()  # 9 bytes, multi-byte characters at 2-3 and 7-8
    emb = KroneckerEmbedding([word, word[:7], b"abcdefgh", b"abcd"], n_embd=8, pos_dim=4)
    assert emb.byte_lengths.tolist() == [4, 4, 4, 4]
    assert torch.equal(emb.codec(torch.tensor([0])), KroneckerEmbedding([b"na\xc3\xaf"], 8, 4).codec(torch.tensor([0])))
    assert torch.equal(emb.codec(torch.tensor([2])), emb.codec(torch.tensor([3])))


def test_byte_table_is_a_small_persistent_buffer(gpt2_bytes):
    emb = KroneckerEmbedding(gpt2_bytes, n_embd=8, pos_dim=16)
    state = emb.state_dict()
    assert set(state) == {"byte_table", "byte_lengths", "projection.weight"}
    nbytes = sum(state[k].numel() * state[k].element_size() for k in ("byte_table", "byte_lengths"))
    assert nbytes < 0.9e6


@pytest.mark.parametrize("mode", KRONECKER_MODES)
def test_derived_buffers_stay_out_of_checkpoints_and_move_with_the_module(mode):
    emb = KroneckerEmbedding([b"", b"a", b"hello"], n_embd=8, pos_dim=4, mode=mode)
    assert set(emb.state_dict()) == {"byte_table", "byte_lengths", "projection.weight"}  # as before: old checkpoints load
    derived = {name for name, _ in emb.named_buffers()} - {"byte_table", "byte_lengths"}
    assert {"length_scale", "mean_shift"} <= derived  # no float64 CPU tensors built per forward
    assert ("byte_columns" in derived) == (mode == "sparse") and ("codec_table" in derived) == (mode == "cached")
    assert all(b.device.type == "meta" for b in emb.to("meta").buffers())


@pytest.mark.parametrize("mode", KRONECKER_MODES)
def test_every_mode_loads_a_checkpoint_with_another_byte_table_and_follows_training(mode):
    source = KroneckerEmbedding([b"", b"ab", b"\xe2\x82\xac", b"x" * 9], n_embd=8, pos_dim=4, mode="dense")
    emb = KroneckerEmbedding([b""] * 4, n_embd=8, pos_dim=4, mode=mode)  # placeholder bytes, as from_checkpoint
    emb.load_state_dict(source.state_dict())
    ids = torch.tensor([[0, 1, 2, 3, 2]])
    assert rel_err(emb(ids), source(ids)) <= 1e-6
    optimizer = torch.optim.SGD([*emb.parameters(), *source.parameters()], lr=0.1)
    for model in (emb, source):
        model(ids).pow(2).sum().backward()
    optimizer.step()  # the projection changes; the cached codec table must not go stale
    assert rel_err(emb(ids), source(ids)) <= 1e-6


@pytest.mark.slow
def test_sparse_embed_op_passes_torchs_custom_op_checks_and_gradcheck():
    g = torch.Generator().manual_seed(0)
    W = torch.randn(8, 512, dtype=torch.float64, generator=g, requires_grad=True)
    columns = torch.tensor([[3, 4 + 1, 512], [512, 512, 512], [7, 512, 100], [9, 9, 9]], dtype=torch.int32)
    scale, shift = torch.rand(4, dtype=torch.float64, generator=g), torch.rand(4, dtype=torch.float64, generator=g)
    result = torch.library.opcheck(sparse_embed, (W, columns, scale, shift))
    assert set(result.values()) == {"SUCCESS"}, result  # schema, fake tensor, autograd registration, aot
    assert torch.autograd.gradcheck(lambda w: sparse_embed(w, columns, scale, shift), (W,))


def test_both_scatters_agree_with_padding_anywhere_and_repeated_columns():
    g = torch.Generator().manual_seed(0)
    D, N, P = 64, 50, 5
    columns = torch.randint(0, D + 1, (N, P), generator=g)  # D (padding) at any position, not only at the end
    columns[:3] = D
    columns[3] = 7  # one column several times in one token
    grad, scale = torch.randn(N, 6, generator=g), torch.rand(N, generator=g)
    expected = torch.zeros(D + 1, 6)
    for n in range(N):
        for k in range(P):
            expected[columns[n, k]] += scale[n] * grad[n]
    for scatter in (_scatter_positions, _scatter_prefixes):
        grad_t = torch.zeros(D + 1, 6)
        scatter(grad_t, grad, columns, scale)
        torch.testing.assert_close(grad_t[:D], expected[:D], rtol=1e-5, atol=1e-6, msg=scatter.__name__)


# ----------------------------------------------------------------------------- modes and oracle

@pytest.fixture(scope="module")
def small_vocab(gpt2_bytes):
    """1,000 GPT-2 tokens plus the edge cases: <|endoftext|>, padding (b"") and tokens > 32 bytes."""
    long_tokens = [b for b in gpt2_bytes if len(b) > 32][:8]
    return gpt2_bytes[:1000] + [gpt2_bytes[EOT_ID], b"", b""] + long_tokens


def _ids_with_edge_cases(vocab, n_random=301):
    g = torch.Generator().manual_seed(0)
    edge_cases = torch.arange(1000, len(vocab))
    return torch.cat([torch.randint(0, len(vocab), (n_random,), generator=g), edge_cases]).view(2, -1)


def _embeddings_sharing_one_projection(token_bytes, pos_dim, n_embd=48):
    torch.manual_seed(0)
    embs = {mode: KroneckerEmbedding(token_bytes, n_embd, pos_dim, mode) for mode in KRONECKER_MODES}
    for emb in embs.values():
        emb.load_state_dict(embs["dense"].state_dict())
    return embs


def test_sparse_dense_and_cached_agree_on_outputs_and_gradients(small_vocab):
    ids = _ids_with_edge_cases(small_vocab)
    results = {}
    for mode, emb in _embeddings_sharing_one_projection(small_vocab, pos_dim=16).items():
        out = emb(ids)
        (out.pow(2).sum() + out.sum()).backward()
        results[mode] = (out.detach(), emb.projection.weight.grad)
    ref_out, ref_grad = results["dense"]
    for mode in ("sparse", "cached"):
        out, grad = results[mode]
        assert out.shape == (2, ids.size(1), 48)
        assert rel_err(out, ref_out) <= 1e-5, mode
        assert rel_err(grad, ref_grad) <= 1e-5, mode


def test_modes_agree_under_bf16_autocast_and_stay_float32(small_vocab):
    ids = _ids_with_edge_cases(small_vocab)
    results = {}
    for mode, emb in _embeddings_sharing_one_projection(small_vocab, pos_dim=16).items():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = emb(ids)
        (out.pow(2).sum() + out.sum()).backward()
        results[mode] = (out.detach(), emb.projection.weight.grad)
        assert out.dtype == torch.float32, mode  # as nn.Embedding in the BPE arms: no bf16 rounding here
    for mode in ("sparse", "cached"):
        assert rel_err(results[mode][0], results["dense"][0]) <= 1e-5, mode
        assert rel_err(results[mode][1], results["dense"][1]) <= 1e-5, mode


@pytest.mark.parametrize("embedding", ["bpe", "kronecker"])
def test_token_embeddings_are_float32_under_autocast_in_every_arm(embedding):
    model = GPT(GPTConfig(**TINY, embedding=embedding))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model.token_embedding(torch.tensor([[1, 2]])).dtype == torch.float32


@pytest.mark.parametrize("pos_dim", [16, 32])
def test_matches_the_papers_reference_implementation(small_vocab, pos_dim):
    reference = pytest.importorskip("kronecker_embeddings", reason="test-only oracle: pip install --no-deps kronecker-embeddings==0.1.1")
    ids = _ids_with_edge_cases(small_vocab)
    ours = KroneckerEmbedding(small_vocab, 64, pos_dim, "sparse")
    theirs = reference.KroneckerEmbedding(len(small_vocab), 64, byte_buffer=ours.byte_table,
                                          length_buffer=ours.byte_lengths.to(torch.int16), pos_dim=pos_dim)
    theirs.projection.weight.data.copy_(ours.projection.weight.data)
    assert rel_err(ours(ids), theirs(ids)) <= 1e-5
    assert rel_err(ours.codec(ids).view(-1, ours.D), reference.kronecker_codec(
        ours.byte_table[ids.view(-1)], ours.byte_lengths[ids.view(-1)], pos_dim=pos_dim)) <= 1e-5


def test_embed_bytes_equals_the_token_path_for_in_vocabulary_words(small_vocab):
    for mode, emb in _embeddings_sharing_one_projection(small_vocab, pos_dim=16).items():
        ids = torch.tensor([262, 617, 1000])  # " the", " so", <|endoftext|>
        by_bytes = emb.embed_bytes([small_vocab[i] for i in ids])
        assert rel_err(by_bytes, emb(ids)) <= 1e-6, mode
        assert emb.embed_bytes([b"flibbertigibbet"]).shape == (1, 48)


# ----------------------------------------------------------------------------- the three arms

def test_parameter_counts_of_the_124m_arms():
    with torch.device("meta"):
        bpe = GPT(GPTConfig(embedding="bpe")).param_counts()
        kron = GPT(GPTConfig(embedding="kronecker"), token_bytes=[b""] * 50304).param_counts()
        untied = GPT(GPTConfig(embedding="bpe_untied")).param_counts()
    assert bpe["total"] == 124_475_904
    assert bpe["input_trainable"] == 38_633_472 and bpe["output_head"] == 0
    assert kron["input_trainable"] == 3_145_728
    assert kron["total"] == 127_621_632
    assert untied["total"] == 124_475_904 + 38_633_472
    for counts in (bpe, kron, untied):
        assert counts["input_trainable"] + counts["output_head"] + counts["position"] + counts["body"] == counts["total"]


def test_only_the_bpe_arm_ties_its_head_to_the_input_table():
    for embedding, tied in (("bpe", True), ("bpe_untied", False), ("kronecker", False)):
        model = GPT(GPTConfig(**TINY, embedding=embedding))
        head = model.lm_head.weight
        shares = any(p.data_ptr() == head.data_ptr() for p in model.transformer.wte.parameters())
        assert shares == tied, embedding


def test_kronecker_projection_keeps_the_paper_init():
    model = GPT(GPTConfig(**TINY, embedding="kronecker"))
    assert model.embedding_norms()["emb_row_norm"] == pytest.approx(1.0, abs=0.05)
    assert model.lm_head.weight.std().item() == pytest.approx(0.02, rel=0.05)


@pytest.mark.parametrize("embedding", ["bpe", "bpe_untied", "kronecker"])
def test_a_tiny_model_overfits_one_batch(embedding, gpt2_bytes):
    torch.manual_seed(0)
    config = GPTConfig(**{**TINY, "vocab_size": 256}, embedding=embedding)
    model = GPT(config, token_bytes=gpt2_bytes[:256] if embedding == "kronecker" else None)
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


@pytest.mark.parametrize("embedding", ["bpe", "bpe_untied", "kronecker", "kronecker_shuffled"])
def test_input_table_row_i_is_what_id_i_embeds_to(embedding):
    config = GPTConfig(block_size=8, vocab_size=300, n_layer=1, n_head=2, n_embd=16, embedding=embedding)
    torch.manual_seed(0)
    model = GPT(config, token_bytes=[bytes([i % 256]) * (1 + i % 5) for i in range(300)])
    ids = torch.tensor([[0, 7, 299, 42]])
    table = model.input_table(chunk=64)
    assert table.shape == (300, 16)
    torch.testing.assert_close(table[ids[0]], model.token_embedding(ids)[0], rtol=0, atol=1e-6)
