"""embeddings.py: the token bytes the codec reads, the codec, the Kronecker modes (one function,
also under bf16 autocast, with either projection), the reference oracle, the effective input
table, the factorised table, the fixed sparse matrix kernel and determinism."""
import math

import pytest
import torch
from torch.nn import functional as F

from embeddings import (KRONECKER_MODES, PROJECTIONS, FactorizedEmbedding, FixedSparseMatrix, KroneckerEmbedding,
                        TrigramHashEmbedding, _scatter_positions, _scatter_prefixes, fixed_sparse_matmul,
                        matched_rank, resolve_kronecker_mode, sparse_embed)
from tokenizer import EOT_ID, GPT2_VOCAB, gpt2_token_bytes, truncate_utf8


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
    assert {n for n in derived if n.startswith("vocab_matrix.")}  # input_table's sparse matrix, in every mode
    assert ("byte_columns" in derived) == (mode in ("sparse", "auto"))
    assert ("codec_table" in derived) == (mode == "cached")
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


def _embeddings_sharing_one_projection(token_bytes, pos_dim, n_embd=48, projection="linear", hidden=0):
    torch.manual_seed(0)
    embs = {mode: KroneckerEmbedding(token_bytes, n_embd, pos_dim, mode, projection, hidden) for mode in KRONECKER_MODES}
    for emb in embs.values():
        emb.load_state_dict(embs["dense"].state_dict())
    return embs


def _weight_grads(emb):
    """The gradients of every weight: W, and with projection "mlp" its Linear and RMSNorm too."""
    return [p.grad for p in emb.parameters()]


@pytest.mark.parametrize("projection", PROJECTIONS)
def test_every_mode_agrees_with_dense_on_outputs_and_gradients(small_vocab, projection):
    ids = _ids_with_edge_cases(small_vocab)
    results = {}
    for mode, emb in _embeddings_sharing_one_projection(small_vocab, 16, projection=projection, hidden=64).items():
        out = emb(ids)
        (out.pow(2).sum() + out.sum()).backward()
        results[mode] = (out.detach(), _weight_grads(emb))
    ref_out, ref_grads = results["dense"]
    assert len(ref_grads) == (1 if projection == "linear" else 3)
    for mode in [m for m in KRONECKER_MODES if m != "dense"]:
        out, grads = results[mode]
        assert out.shape == (2, ids.size(1), 48)
        assert rel_err(out, ref_out) <= 1e-5, mode
        assert all(rel_err(g, ref) <= 1e-5 for g, ref in zip(grads, ref_grads)), mode


@pytest.mark.parametrize("projection", PROJECTIONS)
def test_modes_agree_under_bf16_autocast_and_stay_float32(small_vocab, projection):
    ids = _ids_with_edge_cases(small_vocab)
    results = {}
    for mode, emb in _embeddings_sharing_one_projection(small_vocab, 16, projection=projection, hidden=64).items():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = emb(ids)
        (out.pow(2).sum() + out.sum()).backward()
        results[mode] = (out.detach(), _weight_grads(emb))
        assert out.dtype == torch.float32, mode  # as nn.Embedding in the BPE arms: no bf16 rounding here
    for mode in [m for m in KRONECKER_MODES if m != "dense"]:
        assert rel_err(results[mode][0], results["dense"][0]) <= 1e-5, mode
        assert all(rel_err(g, ref) <= 1e-5 for g, ref in zip(results[mode][1], results["dense"][1])), mode


def test_the_mlp_projection_is_linear_gelu_linear_rmsnorm_at_the_kronecker_token_norm(small_vocab):
    torch.manual_seed(0)
    emb = KroneckerEmbedding(small_vocab, 48, 16, "dense", "mlp")  # hidden 0: D, as the authors' file
    assert emb.projection.weight.shape == (4096, 4096) and emb.projection_mlp[1].weight.shape == (48, 4096)
    ids = torch.tensor([262, 617, 1000])
    h = emb.codec(ids) @ emb.projection.weight.t()
    expected = F.rms_norm(F.gelu(h) @ emb.projection_mlp[1].weight.t(), (48,))
    torch.testing.assert_close(emb(ids), expected, rtol=1e-5, atol=1e-5)
    assert emb(ids).norm(dim=1).tolist() == pytest.approx([math.sqrt(48)] * 3, rel=1e-3)  # RMSNorm, gain 1


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


def test_auto_runs_sparse_on_the_cpu_and_vocab_on_accelerators():
    assert resolve_kronecker_mode("auto", "cpu") == "sparse"
    assert resolve_kronecker_mode("auto", "cuda") == "vocab"
    assert all(resolve_kronecker_mode(m, "cuda") == m for m in KRONECKER_MODES if m != "auto")


# ----------------------------------------------------------------------------- the effective table

def test_input_table_is_every_ids_embedding_and_a_lookup_in_it_is_forward(small_vocab):
    ids = _ids_with_edge_cases(small_vocab)
    embs = _embeddings_sharing_one_projection(small_vocab, pos_dim=16)
    expected = embs["dense"](torch.arange(len(small_vocab)))
    for mode, emb in embs.items():
        table = emb.input_table()
        assert table.shape == (len(small_vocab), 48) and table.dtype == torch.float32
        assert rel_err(table, expected) <= 1e-6, mode
        torch.testing.assert_close(F.embedding(ids, table), emb(ids), rtol=1e-5, atol=1e-5, msg=mode)


def test_the_factorised_table_is_a_low_rank_table_at_a_bpe_rows_scale():
    assert matched_rank(50304, 768, 16) == 62 and matched_rank(50304, 64, 16) == 5  # 124M; cpu_mini
    torch.manual_seed(0)
    emb = FactorizedEmbedding(4096, 62, 768)
    ids = torch.tensor([[3, 4095, 17]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = emb(ids)
    assert out.dtype == torch.float32  # as nn.Embedding
    torch.testing.assert_close(out, emb.table.weight[ids] @ emb.projection.weight.t())
    torch.testing.assert_close(F.embedding(ids, emb.input_table()), out)
    row_norm = emb.input_table().norm(dim=1).mean().item()
    assert row_norm == pytest.approx(0.02 * math.sqrt(768), rel=0.03)  # a N(0, 0.02) table row's norm


def random_sparse_matrix(n_rows=40, n_cols=12, seed=0):
    """A dense float64 matrix with float32-exact values: one column full (longer than a chunk),
    random entries elsewhere, an empty row and an empty column."""
    g = torch.Generator().manual_seed(seed)
    dense = torch.randn(n_rows, n_cols, dtype=torch.float64, generator=g)
    dense *= torch.rand(n_rows, n_cols, generator=g) < 0.2
    dense[:, 3] = torch.rand(n_rows, generator=g) + 0.5
    dense[7], dense[:, 11] = 0, 0
    return dense.float().double()


def fixed_sparse(dense):
    rows, cols = dense.nonzero(as_tuple=True)
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(1))  # any entry order
    return FixedSparseMatrix(rows[order], cols[order], dense[rows, cols][order], dense.shape)


def test_fixed_sparse_matrix_multiplies_and_backpropagates_the_transpose_product():
    dense = random_sparse_matrix()
    matrix = fixed_sparse(dense)
    assert matrix.column_chunks[4] - matrix.column_chunks[3] > 1  # column 3's 40 entries: summed in chunks
    g = torch.Generator().manual_seed(2)
    table = torch.randn(12, 5, dtype=torch.float64, generator=g, requires_grad=True)
    out = matrix(table)
    torch.testing.assert_close(out, dense @ table)
    grad = torch.randn(40, 5, dtype=torch.float64, generator=g)
    out.backward(grad)
    torch.testing.assert_close(table.grad, dense.t() @ grad)


@pytest.mark.slow
def test_fixed_sparse_matmul_passes_torchs_custom_op_checks_and_gradcheck():
    matrix = fixed_sparse(random_sparse_matrix())
    buffers = [b for _, b in matrix.named_buffers()]
    table = torch.randn(12, 5, dtype=torch.float64, requires_grad=True)
    result = torch.library.opcheck(fixed_sparse_matmul, (table, *buffers))
    assert set(result.values()) == {"SUCCESS"}, result  # schema, fake tensor, autograd registration, aot
    assert torch.autograd.gradcheck(lambda t: matrix(t), (table,))


REPEATED_STEP_INPUTS = {
    "vocab": lambda token_bytes: KroneckerEmbedding(token_bytes, n_embd=64, pos_dim=16, mode="vocab"),
    "sparse": lambda token_bytes: KroneckerEmbedding(token_bytes, n_embd=64, pos_dim=16, mode="sparse"),
    "trigram_hash": lambda token_bytes: TrigramHashEmbedding(token_bytes, n_embd=64),  # two fixed sparse products
}


@pytest.mark.parametrize("name", list(REPEATED_STEP_INPUTS))
def test_a_repeated_step_gives_bit_identical_gradients(name, gpt2_bytes):
    """On the CPU with torch's threads (both parallel paths); GPT-2's bytes (one byte column holds
    33,135 tokens) and real-text-like repeats (a few ids very often)."""
    torch.manual_seed(0)
    emb = REPEATED_STEP_INPUTS[name](gpt2_bytes)
    (weight,) = emb.parameters()  # the projection, or the bucket table
    frequent = torch.tensor([13, 11, 262, 290, 286, 220, 50256])  # . , the and of space <|endoftext|>
    ids = torch.where(torch.rand(8, 512) < 0.3, frequent[torch.randint(0, 7, (8, 512))],
                      torch.randint(0, 50304, (8, 512)))
    grads = []
    for _ in range(2):
        emb.zero_grad(set_to_none=True)
        out = emb(ids)
        (out.pow(2).sum() + out.sum()).backward()
        grads.append((out.detach(), weight.grad))
    assert torch.equal(grads[0][0], grads[1][0]) and torch.equal(grads[0][1], grads[1][1])
