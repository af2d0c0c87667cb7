"""embeddings.TrigramHashEmbedding, the trigram_hash arm (T-FREE's hashed byte trigrams on BPE
tokens): the trigram sets, the seeded hash, equality with a dense (V, buckets) reference in
forward, backward, autocast and the effective table, gradcheck and checkpoints (the
bit-identical repeated step on GPT-2's bytes is in test_embeddings.py)."""
import dataclasses

import pytest
import torch
from torch.nn import functional as F

from embeddings import (TRIGRAM_END, TRIGRAM_START, TRIGRAM_SYMBOLS, TrigramHashEmbedding, hash_trigrams,
                        trigram_incidence)
from errors import UserError
from model import GPT, GPTConfig
from tokenizer import EOT_ID, GPT2_VOCAB, gpt2_token_bytes

# GPT-2's traits at a small size: every single byte, spaces inside tokens, case variants, multi-byte
# and partial UTF-8 tokens, runs of one byte, a token longer than any pos_dim, padding at the end
TOKEN_BYTES = ([bytes([i]) for i in range(256)]
               + [b" the", b"The", b"the", b" The", b"THE", "é".encode(), b"\xe2\x80", b"aaaa", b"aaaaa",
                  b"abab", b"ababab", b"x" * 40, b"<|endoftext|>"] + [b""] * 3)
KNOBS = dict(buckets=64, k=4, lowercase_k=1, seed=3)


def code(trigram):
    """The code of three symbols (bytes, or TRIGRAM_START / TRIGRAM_END)."""
    a, b, c = trigram
    return (a * TRIGRAM_SYMBOLS + b) * TRIGRAM_SYMBOLS + c


def trigram_sets(byte_strings):
    codes, offsets, columns = trigram_incidence(byte_strings)
    return [set(codes[columns[offsets[i]:offsets[i + 1]]].tolist()) for i in range(len(byte_strings))]


def dense_incidence(token_bytes, buckets, k, lowercase_k, seed, aggregation="sum"):
    """M (V, buckets) float64 written out token by token: one count per (trigram, bucket) activation
    of the token's distinct marked trigrams, divided by all its activations for "mean"."""
    M = torch.zeros(len(token_bytes), buckets, dtype=torch.float64)
    for v, b in enumerate(token_bytes):
        s = (TRIGRAM_START, *b, TRIGRAM_END)
        trigrams = sorted({code(s[i:i + 3]) for i in range(len(s) - 2)})
        for row in hash_trigrams(trigrams, buckets, k, lowercase_k, seed).tolist() if trigrams else []:
            for bucket in row:
                M[v, bucket] += 1
        if aggregation == "mean" and trigrams:
            M[v] /= k * len(trigrams)
    return M


def rel_err(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def ids_with_edge_cases(n_random=200):
    g = torch.Generator().manual_seed(0)
    edge_cases = torch.arange(256, len(TOKEN_BYTES))
    return torch.cat([torch.randint(0, len(TOKEN_BYTES), (n_random,), generator=g), edge_cases]).view(2, -1)


# ----------------------------------------------------------------------------- trigrams and hash

def test_a_tokens_trigrams_are_its_marked_byte_windows_as_a_set():
    S, E = TRIGRAM_START, TRIGRAM_END
    sets = trigram_sets([b"", b"a", b" the", b"aaaa", b"aaaaa", b"abab", b"ababab"])
    assert sets[0] == set()  # padding: no trigram, so a zero input
    assert sets[1] == {code((S, 97, E))}
    assert sets[2] == {code((S, 32, 116)), code((32, 116, 104)), code((116, 104, 101)), code((104, 101, E))}
    assert sets[3] == sets[4] == {code((S, 97, 97)), code((97, 97, 97)), code((97, 97, E))}  # runs collide
    assert sets[5] == sets[6]  # so do repeats of one pair: a set keeps no count or order
    assert trigram_sets([b"\x00\x01"])[0] != trigram_sets([b"\x01"])[0]  # markers are no byte


def test_each_trigram_gets_k_distinct_seeded_buckets_and_case_variants_share_the_lowercase_ones():
    codes = torch.tensor([code(b"The"), code(b"the"), code(b"THE"), code(b"123")])
    buckets = hash_trigrams(codes, 4096, k=10, lowercase_k=2, seed=0)
    assert buckets.shape == (4, 10) and buckets.min() >= 0 and buckets.max() < 4096
    assert all(len(set(row)) == 10 for row in buckets.tolist())
    assert torch.equal(buckets[0, :2], buckets[1, :2]) and torch.equal(buckets[0, :2], buckets[2, :2])
    assert set(buckets[0, 2:].tolist()) != set(buckets[1, 2:].tolist())  # the case-sensitive 8 differ
    assert torch.equal(hash_trigrams(codes, 4096, 10, 2, seed=0), buckets)
    assert not torch.equal(hash_trigrams(codes, 4096, 10, 2, seed=1), buckets)
    assert torch.equal(hash_trigrams(codes[1:2], 4096, 10, 2, 0), buckets[1:2])  # a code's buckets are its own


def test_buckets_stay_distinct_when_nearly_every_bucket_is_taken():
    codes = torch.arange(200) * 7919
    buckets = hash_trigrams(codes, buckets=10, k=10, lowercase_k=3, seed=0)  # many draws repeat
    assert all(sorted(row) == list(range(10)) for row in buckets.tolist())


@pytest.mark.parametrize("knobs, message", [
    (dict(aggregation="max"), "trigram aggregation 'max' is not one of sum, mean"),
    (dict(buckets=8, k=9), "0 <= lowercase_k <= k <= buckets"),
    (dict(k=2, lowercase_k=3), "0 <= lowercase_k <= k <= buckets"),
])
def test_impossible_knobs_are_one_line_errors(knobs, message):
    with pytest.raises(UserError, match=message):
        TrigramHashEmbedding(TOKEN_BYTES, 8, **{**KNOBS, **knobs})


# ----------------------------------------------------------------------------- against the dense reference

@pytest.mark.parametrize("aggregation", ["sum", "mean"])
def test_outputs_and_gradients_equal_the_dense_reference(aggregation):
    torch.manual_seed(0)
    emb = TrigramHashEmbedding(TOKEN_BYTES, 16, **KNOBS, aggregation=aggregation)
    M = dense_incidence(TOKEN_BYTES, **KNOBS, aggregation=aggregation)
    ids = ids_with_edge_cases()
    out = emb(ids)
    (out.pow(2).sum() + out.sum()).backward()
    W = emb.weight.detach().double().requires_grad_()
    ref = F.embedding(ids, M @ W)
    (ref.pow(2).sum() + ref.sum()).backward()
    assert out.shape == (2, ids.size(1), 16) and out.dtype == torch.float32
    assert rel_err(out, ref) <= 1e-6 and rel_err(emb.weight.grad, W.grad) <= 1e-6
    assert torch.equal(out[1, -3:], torch.zeros(3, 16))  # padding ids


def test_under_bf16_autocast_the_output_stays_float32_and_equal():
    torch.manual_seed(0)
    emb = TrigramHashEmbedding(TOKEN_BYTES, 16, **KNOBS)
    ids = ids_with_edge_cases()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = emb(ids)
    assert out.dtype == torch.float32  # as nn.Embedding in the BPE arms
    assert rel_err(out, F.embedding(ids, dense_incidence(TOKEN_BYTES, **KNOBS) @ emb.weight.double())) <= 1e-6


def test_input_table_and_incidence_rows_are_the_dense_reference_and_a_lookup_is_forward():
    emb = TrigramHashEmbedding(TOKEN_BYTES, 16, **KNOBS, aggregation="mean")
    M = dense_incidence(TOKEN_BYTES, **KNOBS, aggregation="mean")
    table = emb.input_table()
    assert table.shape == (len(TOKEN_BYTES), 16) and rel_err(table, M @ emb.weight.double()) <= 1e-6
    ids = ids_with_edge_cases()
    torch.testing.assert_close(F.embedding(ids, table), emb(ids))
    some = torch.tensor([0, 256, 258, 263, len(TOKEN_BYTES) - 1])
    torch.testing.assert_close(emb.incidence_rows(some).double(), M[some])


def test_embed_bytes_is_the_token_path_in_the_vocabulary_and_the_hash_outside_it():
    emb = TrigramHashEmbedding(TOKEN_BYTES, 16, **KNOBS)
    ids = torch.tensor([256, 257, 263, 267])
    torch.testing.assert_close(emb.embed_bytes([TOKEN_BYTES[i] for i in ids.tolist()]), emb(ids))
    novel = [b" flibbertigibbet" * 4, b"Zq"]  # 64 bytes: no length limit
    expected = dense_incidence(novel, **KNOBS) @ emb.weight.double()
    assert rel_err(emb.embed_bytes(novel), expected) <= 1e-6


def test_gradcheck_of_the_two_fixed_sparse_products():
    emb = TrigramHashEmbedding(TOKEN_BYTES[250:], 3, **KNOBS, aggregation="mean").double()
    ids = torch.arange(len(TOKEN_BYTES) - 250)
    weight = torch.randn(KNOBS["buckets"], 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda w: F.embedding(ids, emb.token_matrix(emb.trigram_matrix(w))), (weight,))


# ----------------------------------------------------------------------------- checkpoints

def test_the_incidence_is_model_state_and_a_checkpoint_rebuilds_it_without_bytes():
    torch.manual_seed(0)
    config = GPTConfig(embedding="trigram_hash", vocab_size=len(TOKEN_BYTES), block_size=8, n_layer=1, n_head=2,
                       n_embd=16, trigram_buckets=64, trigram_k=4, trigram_lowercase_k=1, trigram_seed=3)
    model = GPT(config, token_bytes=TOKEN_BYTES).eval()
    assert {k for k in model.state_dict() if k.startswith("transformer.wte.")} == {
        f"transformer.wte.{n}" for n in ("weight", "trigram_codes", "trigram_buckets", "token_offsets",
                                         "token_trigrams")}
    state = dict(model=model.state_dict(), model_config=dataclasses.asdict(config))
    loaded = GPT.from_checkpoint(state)  # built from b"" placeholders, then the stored incidence
    x = ids_with_edge_cases()[:, :8]
    assert torch.equal(loaded(x)[0], model(x)[0])
    assert torch.equal(loaded.input_table(), model.input_table())


def test_a_corrupt_incidence_is_one_line_naming_it():
    config = GPTConfig(embedding="trigram_hash", vocab_size=len(TOKEN_BYTES), block_size=8, n_layer=1, n_head=2,
                       n_embd=16)
    model = GPT(config, token_bytes=TOKEN_BYTES)
    state = model.state_dict()
    state["transformer.wte.token_trigrams"] = state["transformer.wte.token_trigrams"] + 10**6
    with pytest.raises(UserError, match="token_trigrams has indices outside the") as err:
        GPT.from_checkpoint(dict(model=state, model_config=dataclasses.asdict(config)))
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_on_gpt2_the_state_is_small_and_every_real_id_has_trigrams():
    emb = TrigramHashEmbedding(gpt2_token_bytes(50304), 64)  # its repeated step: tests/test_embeddings.py
    state = {k: v for k, v in emb.state_dict().items() if k != "weight"}
    assert sum(t.numel() * t.element_size() for t in state.values()) < 2.5e6
    assert (len(emb.trigram_codes), len(emb.token_trigrams)) == (15_987, 318_697)  # docs/embedding.md
    lengths = emb.token_offsets.diff()
    assert (lengths[:GPT2_VOCAB] > 0).all() and (lengths[GPT2_VOCAB:] == 0).all() and lengths[EOT_ID] == 13
