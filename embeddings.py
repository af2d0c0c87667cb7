"""The input layers: token ids -> (..., n_embd) vectors, one module per kind of input.

- TokenEmbedding: a learned (V, n_embd) table, nn.Embedding (the BPE arms).
- FactorizedEmbedding: ALBERT's factorised table, a learned (V, r) table then Linear(r, n_embd)
  (bpe_factorized: a learned input with the Kronecker projection's parameter count, matched_rank).
- KroneckerEmbedding: the byte codec of arXiv 2605.29459 and one learned Linear(D, n_embd),
  D = 256 * pos_dim. For a token with UTF-8 bytes b_1..b_L:
      kappa = (1/sqrt(L)) * sum_p onehot256(b_p) (x) onehot_pos(p)      (flat index byte*pos_dim + p)
      z     = (kappa - mean(kappa)) / (std(kappa, unbiased) + 1e-6)     (L = 0 gives z = 0)
      e     = W z
  (projection "mlp": e = RMSNorm(W2 GELU(W z)), W: Linear(D, h), the authors' results file's
  projection; PROJECTIONS). Its modes (KRONECKER_MODES) compute the same e: "vocab" (the
  (V, n_embd) table of every id through one fixed sparse matrix product, then a lookup:
  deterministic, no host sync; the CUDA default), "sparse" (a gather-sum over each token's byte
  columns; the CPU default), "dense" (the (N, D) codec times W, as the reference code) and
  "cached" (a (V, D) codec buffer); "auto" picks vocab or sparse by device (docs/performance.md
  says why). Every mode returns float32 under autocast, as nn.Embedding does in the BPE arms.
- shuffled_byte_sources: the kronecker_shuffled control's permutation of byte strings over ids.
- TrigramHashEmbedding: the trigram_hash arm (T-FREE, arXiv 2406.19223, on BPE tokens): each id's
  byte trigrams (with a start and an end marker) hashed into k of m rows of a learned (m, n_embd)
  table, summed (or averaged); trigram_incidence and hash_trigrams build its fixed incidence.

Every input module has `input_table()`: the effective (V, n_embd) table, row i = the vector id i
gets, differentiable and built without a (V, D) matrix. The probes, the export and a tied head
(logits = h E^T) read it; F.embedding(ids, module.input_table()) equals module(ids). And
`learned_matrix(n_real)`: the learned matrix whose rows the norm-drift log measures.
FixedSparseMatrix (M @ table for a fixed sparse M, deterministic backward) is the shared kernel
for inputs whose rows are fixed sums of learned rows (the Kronecker vocab table; the trigram hash).
"""
import math

import numpy as np
import torch
import torch.nn as nn
from torch.nn import functional as F

from errors import UserError
from tokenizer import truncate_utf8

# "auto" first: the default. The rest compute the same function (tests/test_embeddings.py).
KRONECKER_MODES = ("auto", "vocab", "sparse", "dense", "cached")
# "linear" first: the default, the paper's (and the authors' package's) single Linear(D, n_embd)
PROJECTIONS = ("linear", "mlp")
CODEC_BYTES = 256  # one-hot width per byte position: D = CODEC_BYTES * pos_dim
TABLE_INIT_STD = 0.02  # GPT-2's init of a learned table (and of every Linear in model.py)
ZNORM_EPS = 1e-6
# GPT-2's longest token is 128 bytes (python -c "import tiktoken; e = tiktoken.get_encoding('gpt2');
# print(max(len(e.decode_single_token_bytes(i)) for i in range(e.n_vocab)))"); 256 leaves room for
# other tokenizers while D = 256 * pos_dim stays at most 65,536 inputs to the Linear(D, d).
MAX_POS_DIM = 256


def resolve_kronecker_mode(mode, device_type):
    """The mode KroneckerEmbedding runs on a device type ("cpu", "cuda", ...): `mode` itself, or
    for "auto" "sparse" on the CPU and "vocab" elsewhere. On CUDA vocab is deterministic, reads
    no padding and needs no atomics; on the CPU sparse's per-token work is smaller at the batch
    sizes a CPU trains (docs/performance.md, "Choosing the Kronecker mode")."""
    if mode != "auto":
        return mode
    return "sparse" if device_type == "cpu" else "vocab"


# ----------------------------------------------------------------------------- fixed sparse matrix
# E = M @ T for a sparse (rows, cols) matrix M fixed at build time (the Kronecker vocab table:
# row v of M holds a(L_v) at v's byte columns and -c(L_v) at the column-sum row). Forward: one
# F.embedding_bag, row r a bag of its nonzeros. Backward: dT = M^T dE, again bags (M's columns
# in CSR form), never embedding_bag's own backward: that sorts every entry and then sums each
# column's partial sums serially, and one column (a leading space, 33,135 GPT-2 tokens) would be
# one long serial loop. Every bag is summed in a fixed order by one thread (CPU and CUDA): no
# atomics, no sort, no host sync, the same bits every run. Long columns are cut into chunks of at
# most ~sqrt(longest column) entries, summed in two levels, so no thread loops long.


@torch.library.custom_op("kronecker_nanogpt::fixed_sparse_matmul", mutates_args=())
def fixed_sparse_matmul(table: torch.Tensor, row_columns: torch.Tensor, row_offsets: torch.Tensor,
                        row_values: torch.Tensor, column_rows: torch.Tensor, chunk_offsets: torch.Tensor,
                        column_values: torch.Tensor, column_chunks: torch.Tensor) -> torch.Tensor:
    """M @ table: (cols, d) float -> (rows, d) in table's dtype; M as FixedSparseMatrix stores it.

    row_columns, row_values (nnz,): M's nonzeros ordered by row, row r at
    row_offsets[r]:row_offsets[r + 1] (int32, rows + 1 entries). column_rows, column_values: the
    same nonzeros ordered by column, cut into chunks at chunk_offsets; column j's chunks are
    column_chunks[j]:column_chunks[j + 1]. Index tensors int32 or int64, one dtype.
    """
    return _bag_sums(table, row_columns, row_offsets, row_values)


def _bag_sums(table, indices, offsets, weights=None):
    """out[b] = sum over k in offsets[b]:offsets[b + 1] of weights[k] * table[indices[k]]."""
    weights = None if weights is None else weights.to(table.dtype)
    # detach: the embedding_bag variant that keeps no bookkeeping for a backward (we write our own)
    return F.embedding_bag(indices, table.detach(), offsets, mode="sum", per_sample_weights=weights,
                           include_last_offset=True)


@fixed_sparse_matmul.register_fake
def _(table, row_columns, row_offsets, row_values, column_rows, chunk_offsets, column_values, column_chunks):
    return table.new_empty(row_offsets.shape[0] - 1, table.shape[1])


def _fixed_sparse_matmul_setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs[4:])


def _fixed_sparse_matmul_grad(ctx, grad):
    column_rows, chunk_offsets, column_values, column_chunks = ctx.saved_tensors
    partial = _bag_sums(grad.contiguous(), column_rows, chunk_offsets, column_values)  # one row per chunk
    chunk_ids = torch.arange(partial.shape[0], device=partial.device, dtype=column_chunks.dtype)
    return (_bag_sums(partial, chunk_ids, column_chunks),) + (None,) * 7


fixed_sparse_matmul.register_autograd(_fixed_sparse_matmul_grad, setup_context=_fixed_sparse_matmul_setup)


def _stable_order(keys):
    """torch.argsort(keys, stable=True) for CPU int64 keys, through numpy's single-threaded radix
    sort: torch's parallel sort of the 370K GPT-2 entries stalls for seconds on a loaded CPU."""
    return torch.from_numpy(np.argsort(keys.numpy(), kind="stable"))


def _offsets(keys, n):
    """(n + 1,) int64 CSR offsets: where key k's entries start once entries are ordered by key
    (keys: int64 in 0..n-1)."""
    return torch.cat([keys.new_zeros(1), torch.bincount(keys, minlength=n).cumsum(0)])


class FixedSparseMatrix(nn.Module):
    """A fixed sparse (rows, cols) matrix M; module(table) = M @ table, (cols, d) -> (rows, d).

    Built once on the CPU from its nonzeros, in any order: rows, cols (nnz,) int64 and values
    (nnz,) float; move it with .to(). Its buffers are derived state (not in the state dict:
    rebuild the matrix when what it derives from changes): M by row for the forward, M by column
    for the backward, int32 indices and float32 values (8 bytes per nonzero each way).
    Differentiable in `table` only, through the custom op fixed_sparse_matmul (one torch.compile
    node, deterministic backward).
    """

    def __init__(self, rows, cols, values, shape):
        super().__init__()
        n_rows, n_cols = shape
        device = rows.device
        by_row = _stable_order(rows)
        self._store("row_columns", cols[by_row])
        self._store("row_offsets", _offsets(rows, n_rows))
        self._store("row_values", values[by_row])
        by_column = _stable_order(cols)
        counts = torch.bincount(cols, minlength=n_cols)
        longest = int(counts.max()) if n_cols else 0
        chunk = math.isqrt(max(longest - 1, 0)) + 1  # at most ~sqrt(longest) entries per level
        chunks = (counts + chunk - 1) // chunk  # per column
        chunk_column = torch.repeat_interleave(torch.arange(n_cols, device=device), chunks)
        first_chunk = chunks.cumsum(0) - chunks
        chunk_rank = torch.arange(len(chunk_column), device=device) - first_chunk[chunk_column]
        chunk_starts = (counts.cumsum(0) - counts)[chunk_column] + chunk_rank * chunk
        self._store("column_rows", rows[by_column])
        self._store("chunk_offsets", torch.cat([chunk_starts, chunk_starts.new_tensor([len(rows)])]))
        self._store("column_values", values[by_column])
        self._store("column_chunks", _offsets(chunk_column, n_cols))

    def _store(self, name, tensor):
        dtype = torch.float32 if tensor.is_floating_point() else torch.int32
        self.register_buffer(name, tensor.to(dtype), persistent=False)

    def forward(self, table):
        """table (cols, d) float -> (rows, d), M @ table, in table's dtype."""
        return fixed_sparse_matmul(table, self.row_columns, self.row_offsets, self.row_values,
                                   self.column_rows, self.chunk_offsets, self.column_values, self.column_chunks)


# ----------------------------------------------------------------------------- per-token sparse kernel
# Mode "sparse": W z for many tokens as a custom op: torch.compile sees one opaque node with a
# known output shape (no graph break, no dynamic shapes), and the backward is a scatter-add
# (index_add_) of the scaled output gradient into W's byte columns, instead of F.embedding_bag's
# backward, which sorts all N x (P + 1) bag entries by column with a parallel sort that stalls
# whenever another process holds one of the cores.


@torch.library.custom_op("kronecker_nanogpt::sparse_embed", mutates_args=())
def sparse_embed(weight: torch.Tensor, columns: torch.Tensor, scale: torch.Tensor,
                 shift: torch.Tensor) -> torch.Tensor:
    """out[n] = scale[n] * sum_k W[:, columns[n, k]] - shift[n] * W.sum(1), skipping columns = D.

    weight W (d, D) float; columns (N, P) int32/int64 in 0..D, D marking padding; scale and shift
    (N,) in W's dtype. Returns (N, d) in W's dtype. One weighted F.embedding_bag per token over a
    (D + 2, d) table [W's columns; a zero row for padding, skipped; W's column sum], with the
    column sum as every bag's last entry: fixed shapes and no host sync on any device.
    """
    d, D = weight.shape
    table = weight.new_empty(D + 2, d)  # one allocation: W transposed, then the two extra rows
    table[:D].copy_(weight.t())
    table[D].zero_()
    torch.sum(weight, dim=1, out=table[D + 1])
    N, P = columns.shape
    bag_columns = torch.cat([columns, columns.new_full((N, 1), D + 1)], dim=1)
    bag_weights = torch.cat([scale.unsqueeze(1).expand(N, P), -shift.unsqueeze(1)], dim=1)
    return F.embedding_bag(bag_columns, table, mode="sum", per_sample_weights=bag_weights, padding_idx=D)


@sparse_embed.register_fake
def _(weight, columns, scale, shift):
    return weight.new_empty(columns.shape[0], weight.shape[0])


@torch.library.custom_op("kronecker_nanogpt::sparse_embed_backward", mutates_args=())
def sparse_embed_backward(grad: torch.Tensor, columns: torch.Tensor, scale: torch.Tensor,
                          shift: torch.Tensor, D: int) -> torch.Tensor:
    """The gradient of sparse_embed w.r.t. W, (d, D) contiguous, from grad (N, d).

    Column j of the gradient is the sum of scale[n] * grad[n] over the entries columns[n, k] = j,
    minus shift @ grad (the mean term, the same for every column). The scatter runs into a
    transposed (D + 1, d) buffer whose last row collects the padding.
    """
    grad_t = grad.new_zeros(D + 1, grad.shape[1])
    scatter = _scatter_prefixes if grad.device.type == "cpu" else _scatter_positions
    scatter(grad_t, grad, columns, scale)
    with torch.autocast(grad.device.type, enabled=False):  # a backward called inside autocast
        mean_term = shift @ grad
    grad_t = grad_t[:D].sub_(mean_term)
    return grad_t.t().contiguous()  # a blocked transpose; a strided subtract into (d, D) is 10x slower


def _scatter_positions(grad_t, grad, columns, scale):
    """grad_t[columns[n, k]] += scale[n] * grad[n]: one index_add_ per position k, over all N
    tokens (CUDA: atomic adds, fixed shapes, no host sync; padding lands in the spare row).
    Float atomics add in a varying order, so the last bits differ run to run on CUDA unless
    torch.use_deterministic_algorithms(True), which makes CUDA index_add_ deterministic."""
    scaled = grad * scale.unsqueeze(1)
    for k in range(columns.shape[1]):
        grad_t.index_add_(0, columns[:, k], scaled)


def _scatter_prefixes(grad_t, grad, columns, scale):
    """What _scatter_positions computes, for CPUs, where index_add_ is a serial loop of row adds.

    Tokens are reordered by how many positions they use (a sort of N small integers, not of the
    N x P entries), so at position k only a prefix of them has a byte there: each index_add_
    reads a contiguous slice, and the padding (about 3/4 of the positions at GPT-2's lengths)
    is never touched. Padding inside a token's used positions still goes to the spare row.
    Keep `columns` int32: with int64 CPU index_add_ becomes a scatter_add with a parallel radix
    sort, as fast on an idle CPU and 5x slower with one core held by another process.
    """
    D, P = grad_t.shape[0] - 1, columns.shape[1]
    used = ((columns != D) * torch.arange(1, P + 1, device=columns.device)).amax(1)  # last position + 1
    order = torch.argsort(used, descending=True)
    scaled = grad.index_select(0, order).mul_(scale.index_select(0, order).unsqueeze(1))
    columns = columns.index_select(0, order)
    tokens_at = torch.bincount(used, minlength=P + 1).flip(0).cumsum(0).flip(0)[1:].tolist()  # used > k
    for k, n in enumerate(tokens_at):
        if n:
            grad_t.index_add_(0, columns[:n, k], scaled[:n])


@sparse_embed_backward.register_fake
def _(grad, columns, scale, shift, D):
    return grad.new_empty(grad.shape[1], D)


def _sparse_embed_setup(ctx, inputs, output):
    weight, columns, scale, shift = inputs
    ctx.save_for_backward(columns, scale, shift)
    ctx.D = weight.shape[1]


def _sparse_embed_grad(ctx, grad):
    columns, scale, shift = ctx.saved_tensors
    return sparse_embed_backward(grad.contiguous(), columns, scale, shift, ctx.D), None, None, None


sparse_embed.register_autograd(_sparse_embed_grad, setup_context=_sparse_embed_setup)


# ----------------------------------------------------------------------------- the shuffled control

def shuffled_byte_sources(token_bytes, seed):
    """The kronecker_shuffled control's pairing: (V,) int64, the id whose byte string id i gets.

    A permutation seeded by `seed` (numpy's PCG64) of the ids that have bytes (every real id,
    <|endoftext|> included: its bytes are this repo's spelling, not text, so it is shuffled like
    any token), and the identity on ids without bytes (padding stays b""). The multiset of byte
    strings, hence the codec's sparsity, lengths and norms, is kronecker's exactly; only the
    relation between a token and its bytes is gone. About one id keeps its own bytes by chance
    (a random permutation has one fixed point on average).
    """
    real = np.flatnonzero([len(b) > 0 for b in token_bytes])
    sources = np.arange(len(token_bytes))
    sources[real] = real[np.random.default_rng(seed).permutation(len(real))]
    return torch.from_numpy(sources)


# ----------------------------------------------------------------------------- the input modules

class TokenEmbedding(nn.Embedding):
    """The BPE arms' learned table: nn.Embedding(V, n_embd) (same state dict keys), whose
    effective table is its weight."""

    def input_table(self):
        """(V, n_embd): the weight itself (shared with the head in the tied `bpe` arm)."""
        return self.weight

    def learned_matrix(self, n_real):
        """(n_real, n_embd): the rows of the real ids (padding rows are never trained)."""
        return self.weight[:n_real]


def matched_rank(vocab_size, n_embd, pos_dim):
    """bpe_factorized's default rank: the r whose input side, a (V, r) table and Linear(r, n_embd),
    has the Kronecker projection's D * n_embd parameters (D = 256 * pos_dim) most nearly:
    r = round(D d / (V + d)); at least 1. GPT-2 124M (V 50,304, d 768, pos_dim 16): 61.6 -> 62,
    3,166,464 parameters against the projection's 3,145,728 (+0.7%)."""
    return max(1, round(CODEC_BYTES * pos_dim * n_embd / (vocab_size + n_embd)))


class FactorizedEmbedding(nn.Module):
    """A learned low-rank input (ALBERT's factorised embedding, Lan et al. 2020, section 3.1):
    ids (...) int64 -> table (V, r) -> Linear(r, n_embd, bias=False) -> (..., n_embd) float32
    (also under autocast, as nn.Embedding). The bpe_factorized arm: with r = matched_rank it is
    a learned input of the Kronecker projection's size, so bpe_factorized vs kronecker isolates a
    fixed byte code against a learned input of the same parameter count.

    Init (reset_parameters): the table N(0, 0.02^2), as every GPT-2 table, so Adam moves it at
    the usual relative rate; the projection N(0, 1/r), variance-preserving, so each output
    coordinate has variance r * 0.02^2 / r = 0.02^2: a token's input starts at a BPE table row's
    scale (norm 0.02 sqrt(n_embd), 0.55 at 768).
    """

    def __init__(self, vocab_size, rank, n_embd):
        super().__init__()
        self.table = nn.Embedding(vocab_size, rank)
        self.projection = nn.Linear(rank, n_embd, bias=False)
        self.reset_parameters()

    def reset_parameters(self):
        nn.init.normal_(self.table.weight, mean=0.0, std=TABLE_INIT_STD)
        nn.init.normal_(self.projection.weight, mean=0.0, std=1.0 / math.sqrt(self.table.embedding_dim))

    def forward(self, ids):
        """(...) int64 ids -> (..., n_embd) float32."""
        with torch.autocast(ids.device.type, enabled=False):  # float32, as the other inputs
            return self.projection(self.table(ids))

    def input_table(self):
        """(V, n_embd): the projection of every table row (V r n_embd multiply-adds)."""
        weight = self.table.weight
        with torch.autocast(weight.device.type, enabled=False):
            return self.projection(weight)

    def learned_matrix(self, n_real):
        """(n_real, r): the table's rows of the real ids."""
        return self.table.weight[:n_real]


class KroneckerEmbedding(nn.Module):
    """Token id -> W z(kappa(bytes(id))); the only parameter is `projection` (D -> n_embd), or
    with projection="mlp" RMSNorm(W2 GELU(W z)): `projection` (D -> hidden) and `projection_mlp`
    (GELU, Linear(hidden, n_embd, bias=False), RMSNorm(n_embd)); hidden 0 means D.

    The codec of arXiv 2605.29459 (its Eq. 1, kappa, then per-token z-normalisation; module
    docstring) as the reference package kronecker-embeddings 0.1.1 computes it
    (codec.kronecker_codec + embedding.KroneckerEmbedding; tests/test_embeddings.py checks
    equality). token_bytes: V byte strings (index = token id), cut UTF-8-safely to pos_dim bytes;
    D = 256 * pos_dim. mode: one of KRONECKER_MODES (module docstring; resolve_kronecker_mode
    says what "auto" runs); projection: one of PROJECTIONS. Raises UserError for another value.

    "mlp" is the projection the authors' published probe results described for their Kronecker
    arm, "Linear(4096->4096) -> GELU -> Linear(4096->768) -> RMSNorm" (the layered probe JSON of
    theschoolofai/kronecker-embeddings until commit 5327280, which calls it a copy error; its
    README at 22f3345 says two-layer GELU projections ran "on some runs"): hidden = D there.
    Every mode computes W z sparsely as for "linear" and applies the rest per row.

    Buffers: `byte_table` (V, pos_dim) uint8 and `byte_lengths` (V,) uint8 are model state (in
    the state dict), built on the CPU from the bytes. Derived buffers are kept out of the state
    dict, computed once and rebuilt on load, so every mode reads the same checkpoints and forward
    builds nothing (one torch.compile graph, no recompiles, no host-to-device copies):
    `length_scale` a(L) and `mean_shift` c(L), (pos_dim + 1,) float32 (see _length_coefficients);
    `vocab_matrix`, the FixedSparseMatrix M of input_table (every mode; 8 bytes per nonzero each
    way, V * (mean length + 1) nonzeros: 5.9 MB at GPT-2); in "sparse" and "auto" mode
    `byte_columns` (V, pos_dim) int32, each byte's column of W (3.2 MB at GPT-2); in "cached"
    mode `codec_table` (V, D) float32. Outputs are float32 under autocast in every mode.
    """

    def __init__(self, token_bytes, n_embd, pos_dim=16, mode="auto", projection="linear", hidden=0):
        super().__init__()
        if mode not in KRONECKER_MODES:
            raise UserError(f"kronecker mode {mode!r} is not one of {', '.join(KRONECKER_MODES)}")
        if projection not in PROJECTIONS:
            raise UserError(f"projection {projection!r} is not one of {', '.join(PROJECTIONS)}")
        self.pos_dim, self.mode = pos_dim, mode
        self.D = CODEC_BYTES * pos_dim
        rows, lengths = self.encode_bytes(token_bytes)
        # The byte table is model state: a checkpoint alone rebuilds the codec, no tokenizer needed.
        self.register_buffer("byte_table", rows)
        self.register_buffer("byte_lengths", lengths)
        a, c = self._length_coefficients()
        self.register_buffer("length_scale", a.float(), persistent=False)
        self.register_buffer("mean_shift", c.float(), persistent=False)
        self._build_derived()
        hidden = hidden or self.D
        self.projection = nn.Linear(self.D, n_embd if projection == "linear" else hidden, bias=False)
        self.projection_mlp = None if projection == "linear" else nn.Sequential(
            nn.GELU(), nn.Linear(hidden, n_embd, bias=False), nn.RMSNorm(n_embd))
        self.reset_parameters()

    def reset_parameters(self):
        """The paper's init: N(0, 1/D), so each projection row has L2 norm about 1 and each
        coordinate of W z variance about 1 (a token norm of about sqrt(n_embd)). The mlp's second
        Linear follows the same fan-in rule, N(0, 1/hidden); its RMSNorm starts at gain 1, so its
        tokens have norm sqrt(n_embd) too."""
        nn.init.normal_(self.projection.weight, mean=0.0, std=1.0 / math.sqrt(self.D))
        if self.projection_mlp is not None:
            second, norm = self.projection_mlp[1], self.projection_mlp[2]
            nn.init.normal_(second.weight, mean=0.0, std=1.0 / math.sqrt(second.in_features))
            norm.reset_parameters()

    @property
    def max_bytes(self):
        """Bytes of a string the codec reads: pos_dim (embed_bytes cuts longer ones)."""
        return self.pos_dim

    def encode_bytes(self, byte_strings):
        """(n, pos_dim) uint8 rows and (n,) uint8 lengths on the CPU (also inside a meta-device
        context: they hold data); longer strings cut UTF-8-safely."""
        rows = np.zeros((len(byte_strings), self.pos_dim), dtype=np.uint8)
        lengths = np.zeros(len(byte_strings), dtype=np.uint8)
        for i, b in enumerate(byte_strings):
            b = truncate_utf8(bytes(b), self.pos_dim)
            rows[i, :len(b)] = np.frombuffer(b, dtype=np.uint8)
            lengths[i] = len(b)
        return torch.from_numpy(rows), torch.from_numpy(lengths)

    def forward(self, ids):
        """(...) int64 token ids in [0, V) -> (..., n_embd) embeddings e = W z, in W's dtype
        (float32 in training, also under autocast); every mode computes the same function."""
        mode = resolve_kronecker_mode(self.mode, ids.device.type)
        if mode == "vocab":
            return F.embedding(ids, self.input_table())
        if mode == "sparse":
            flat = ids.reshape(-1)
            columns = self.byte_columns.index_select(0, flat)
            out = self._sparse(columns, self.byte_lengths.index_select(0, flat))
            return self._mlp(out).view(*ids.shape, -1)
        if mode == "cached":
            return self._mlp(self._project(F.embedding(ids, self.codec_table)))
        return self._mlp(self._project(self.codec(ids)))

    def input_table(self):
        """(V, n_embd) in W's dtype: row v = e(v), W z of id v, for all ids at once (any mode).

        E = M [W^T; W.sum(1)]: M's row v holds a(L_v) at v's L_v byte columns and -c(L_v) at
        the column sum (see _sparse), so E costs one bag of L_v + 1 rows per id and its backward
        dW one bag per column; no (V, D) matrix, no atomics (FixedSparseMatrix). Differentiable
        in W; wrap it in torch.no_grad() to read it.
        """
        W = self.projection.weight
        # .contiguous(): a blocked transpose; cat reading W.t() directly is ~8x slower on a CPU
        return self._mlp(self.vocab_matrix(torch.cat([W.t().contiguous(), W.sum(1).unsqueeze(0)])))

    def learned_matrix(self, n_real):
        """(rows, D): the projection W (rows of length D, norm about 1 at init); n_real unused."""
        return self.projection.weight

    def codec(self, ids):
        """(...) int64 token ids -> (..., D) float32: z, the z-normalised codec vectors, computed
        literally as the paper writes them (Eq. 1, then z-normalisation; for inspection and tests).
        A token with no bytes (L = 0) gives z = 0."""
        return self._codec_rows(self.byte_table[ids], self.byte_lengths[ids])

    def embed_bytes(self, byte_strings):
        """n byte strings -> (n, n_embd) embeddings in W's dtype, on W's device: the codec of any
        bytes, e.g. words that have no token id (cut UTF-8-safely to pos_dim bytes)."""
        rows, lengths = self.encode_bytes(byte_strings)
        device = self.projection.weight.device
        rows, lengths = rows.to(device), lengths.to(device)
        if self.mode in ("dense", "cached"):
            return self._mlp(self._project(self._codec_rows(rows, lengths)))
        return self._mlp(self._sparse(self._byte_columns(rows, lengths), lengths))

    def _sparse(self, columns, lengths):
        """W z without building z: a(L) times the sum of the token's byte columns of W, minus
        c(L) times W's column sum (the rank-1 mean correction); columns from _byte_columns."""
        W = self.projection.weight
        lengths = lengths.long()
        scale, shift = self.length_scale.index_select(0, lengths), self.mean_shift.index_select(0, lengths)
        return sparse_embed(W, columns, scale.to(W.dtype), shift.to(W.dtype))

    def _project(self, z):
        # Outside autocast: the input embedding stays float32 in every mode, as sparse and vocab
        # (custom ops, never autocast) and nn.Embedding (the BPE arms) are; the modes then agree
        # under bf16.
        with torch.autocast(z.device.type, enabled=False):
            return self.projection(z)

    def _mlp(self, h):
        """projection "mlp": GELU, Linear(hidden, n_embd), RMSNorm on W z (..., hidden), float32
        under autocast like _project; "linear": W z itself."""
        if self.projection_mlp is None:
            return h
        with torch.autocast(h.device.type, enabled=False):
            return self.projection_mlp(h)

    def _codec_rows(self, rows, lengths):
        """kappa then z-normalisation, exactly as written in the paper; rows (..., pos_dim)."""
        positions = torch.arange(self.pos_dim, device=rows.device)
        columns = rows.long() * self.pos_dim + positions
        lengths = lengths.long().unsqueeze(-1)
        valid = positions < lengths
        scale = torch.rsqrt(lengths.clamp(min=1).float())
        kappa = torch.zeros(*rows.shape[:-1], self.D, device=rows.device)
        kappa.scatter_add_(-1, columns, valid.float() * scale)
        mean = kappa.mean(-1, keepdim=True)
        std = kappa.std(-1, keepdim=True)  # unbiased
        return (kappa - mean) / (std + ZNORM_EPS)

    def _length_coefficients(self):
        """For each length L in 0..pos_dim: (a, c) float64 with z = a * kappa_support - c.

        kappa has L entries equal to 1/sqrt(L): mean m = sqrt(L)/D, unbiased variance
        (1[L>0] - L/D)/(D-1). So W z = a * sum_p W[:, col_p] - c * W.sum(1), with
        a = 1/(sqrt(L) (s + eps)) and c = m/(s + eps); a = c = 0 for L = 0.
        """
        L = torch.arange(self.pos_dim + 1, dtype=torch.float64, device="cpu")
        D = float(self.D)
        mean = L.sqrt() / D
        std = (((L > 0).double() - L / D) / (D - 1)).clamp(min=0).sqrt()
        a = torch.where(L > 0, 1.0 / (L.clamp(min=1).sqrt() * (std + ZNORM_EPS)), torch.zeros_like(L))
        c = mean / (std + ZNORM_EPS)
        return a, c

    def _byte_columns(self, rows, lengths):
        """(N, pos_dim) int32: byte p of a token is column byte * pos_dim + p of W; D past its length."""
        positions = torch.arange(self.pos_dim, device=rows.device)
        valid = positions < lengths.long().unsqueeze(1)
        return torch.where(valid, rows.int() * self.pos_dim + positions, self.D).int()

    def _vocab_matrix(self):
        """input_table's M, (V, D + 1), built on the CPU from the byte table."""
        rows, lengths = self.byte_table.cpu(), self.byte_lengths.cpu().long()
        columns = self._byte_columns(rows, lengths).long()
        V = len(lengths)
        a, c = (coefficient.float()[lengths] for coefficient in self._length_coefficients())
        mean_column = torch.full((V, 1), self.D, dtype=torch.long, device="cpu")
        cols = torch.cat([columns, mean_column], 1)
        values = torch.cat([a.unsqueeze(1).expand(columns.shape), -c.unsqueeze(1)], 1)
        nonzero = torch.cat([columns != self.D, (lengths > 0).unsqueeze(1)], 1)  # L = 0: e = 0
        ids = torch.arange(V, device="cpu").unsqueeze(1).expand(cols.shape)
        return FixedSparseMatrix(ids[nonzero], cols[nonzero], values[nonzero], shape=(V, self.D + 1))

    def _build_derived(self):
        """What forward and input_table read besides W, from the byte table (see the class doc),
        on the byte table's device."""
        device = self.byte_table.device
        self.vocab_matrix = self._vocab_matrix().to(device)
        if self.mode in ("sparse", "auto"):
            self.register_buffer("byte_columns", self._byte_columns(self.byte_table, self.byte_lengths),
                                 persistent=False)
        if self.mode == "cached":
            self.register_buffer("codec_table", self._codec_rows(self.byte_table, self.byte_lengths),
                                 persistent=False)

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._build_derived()  # the byte table may have changed


# ----------------------------------------------------------------------------- hashed character trigrams
# The trigram_hash arm (T-FREE, Deiseroth et al. 2024, arXiv 2406.19223, on BPE tokens as an input
# layer only): id v's bytes with a start and an end marker give its set of byte trigrams, each
# trigram k buckets of a learned (m, d) table, and e(v) = the sum (or mean) of those bucket rows.
# The markers are symbols 256 and 257, outside the byte alphabet: T-FREE writes a word between two
# spaces, but a BPE token holds spaces itself (" the"), so a space would not mark its edges.

TRIGRAM_AGGREGATIONS = ("sum", "mean")
TRIGRAM_START, TRIGRAM_END = 256, 257
TRIGRAM_SYMBOLS = 258  # a trigram (s0, s1, s2) is the integer code s0 * 258**2 + s1 * 258 + s2 < 2**25


def trigram_incidence(byte_strings):
    """Which trigrams each string has, as CSR on the CPU: (codes (U,) int64, the distinct trigrams
    of all strings, sorted; offsets (n + 1,) int64; columns (nnz,) int64 into codes, string i's at
    offsets[i]:offsets[i + 1], ascending).

    String i's trigrams are the distinct windows of three symbols of [START] + its bytes + [END]:
    a set, as T-FREE's words (a trigram twice in a string counts once); b"" has none.
    """
    byte_strings = [bytes(b) for b in byte_strings]
    lengths = np.array([len(b) for b in byte_strings], dtype=np.int64) + 2  # symbols per string
    owner = np.repeat(np.arange(len(byte_strings)), lengths)
    symbols = np.empty(lengths.sum(), dtype=np.int64)
    is_byte = np.ones(len(symbols), dtype=bool)
    ends = np.cumsum(lengths)
    is_byte[ends - lengths] = is_byte[ends - 1] = False
    symbols[ends - lengths], symbols[ends - 1] = TRIGRAM_START, TRIGRAM_END
    symbols[is_byte] = np.frombuffer(b"".join(byte_strings), dtype=np.uint8)
    windows = (symbols[:-2] * TRIGRAM_SYMBOLS + symbols[1:-1]) * TRIGRAM_SYMBOLS + symbols[2:]
    inside = owner[:-2] == owner[2:]  # the three symbols belong to one string
    pairs = np.unique(owner[:-2][inside] * TRIGRAM_SYMBOLS**3 + windows[inside])  # by string, then code
    strings, string_codes = np.divmod(pairs, TRIGRAM_SYMBOLS**3)
    codes, columns = np.unique(string_codes, return_inverse=True)
    offsets = np.concatenate([[0], np.cumsum(np.bincount(strings, minlength=len(byte_strings)))])
    return torch.from_numpy(codes), torch.from_numpy(offsets.astype(np.int64)), torch.from_numpy(columns.reshape(-1))


def _splitmix64(x):
    """splitmix64's finalizer (Steele, Lea and Flood 2014) on a uint64 array: a bijection whose
    every output bit depends on every input bit; numpy's uint64 arithmetic wraps mod 2**64."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _ascii_lowercase(codes):
    """The codes of the trigrams with ASCII A-Z lowered (other bytes and the markers as they are)."""
    symbols = [codes // TRIGRAM_SYMBOLS**2, codes // TRIGRAM_SYMBOLS % TRIGRAM_SYMBOLS, codes % TRIGRAM_SYMBOLS]
    s0, s1, s2 = (np.where((s >= 65) & (s <= 90), s + 32, s) for s in symbols)
    return (s0 * TRIGRAM_SYMBOLS + s1) * TRIGRAM_SYMBOLS + s2


def _distinct_draws(codes, stream, n, buckets, seed, taken):
    """(U, n) int64: per code, the first n distinct buckets of its draws j = 0, 1, 2, ... that are
    not in that row of `taken` (U, t). Draw j of a code is splitmix64 of (code, stream, j) keyed
    by the seed, mod buckets: a function of those alone, so more draws never change the first."""
    key = _splitmix64(np.array([seed], dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15))
    draws = n + 4
    while True:
        j = np.arange(draws, dtype=np.uint64)
        x = (codes.astype(np.uint64)[:, None] << np.uint64(22)) | np.uint64(stream << 20) | j
        candidates = (_splitmix64(x ^ key) % np.uint64(buckets)).astype(np.int64)
        # a draw repeats an earlier one when it follows an equal value in a stable sort of its row
        order = np.argsort(candidates, axis=1, kind="stable")
        ordered = np.take_along_axis(candidates, order, axis=1)
        repeat = np.zeros_like(candidates, dtype=bool)
        np.put_along_axis(repeat, order[:, 1:], ordered[:, 1:] == ordered[:, :-1], axis=1)
        repeat |= (candidates[:, :, None] == taken[:, None, :]).any(2)
        rank = np.cumsum(~repeat, axis=1)
        if (rank[:, -1] >= n).all():
            return candidates[~repeat & (rank <= n)].reshape(len(codes), n)
        draws *= 2


def hash_trigrams(codes, buckets, k, lowercase_k, seed):
    """(U, k) int64: the k distinct buckets in [0, buckets) of each trigram code (U,) int64.

    The first lowercase_k are drawn from the ASCII-lowercased trigram, so "The" and "the" share
    them (T-FREE's partial lowercase activations), the other k - lowercase_k from the trigram
    itself, distinct from those. Seeded and deterministic on every platform (integer arithmetic).
    Requires k <= buckets (GPTConfig.check).
    """
    codes = codes.numpy() if torch.is_tensor(codes) else np.asarray(codes, dtype=np.int64)
    none = np.zeros((len(codes), 0), dtype=np.int64)
    lower = _distinct_draws(_ascii_lowercase(codes), 1, lowercase_k, buckets, seed, none)
    own = _distinct_draws(codes, 0, k - lowercase_k, buckets, seed, lower)
    return torch.from_numpy(np.concatenate([lower, own], axis=1))


class TrigramHashEmbedding(nn.Embedding):
    """Token id -> the sum (or mean) of the bucket rows its byte trigrams hash to; the only
    parameter is `weight`, the learned (buckets, n_embd) table (nn.Embedding's), drawn N(0, 0.02)
    as a BPE table (reset_parameters; TABLE_INIT_STD).

    T-FREE (Deiseroth et al. 2024, arXiv 2406.19223; code Aleph-Alpha/trigrams) applied to the
    bytes of BPE tokens (token_bytes: V byte strings, index = token id, no length limit): id v has
    the trigram set of [START] + bytes + [END] (trigram_incidence), each trigram k distinct buckets
    (hash_trigrams: lowercase_k of them from the lowercased trigram, seeded by `seed`), and
        e(v) = M[v] @ weight,   M = A @ H
    with H (U, buckets) the trigram -> bucket incidence (k ones per row) and A (V, U) the token ->
    trigram incidence (ones; for aggregation "mean" 1 / (k * |trigrams(v)|)). A bucket two of a
    token's trigrams share counts twice, as T-FREE sums every activation. Ids without bytes
    (padding) have no trigram and get 0. Raises UserError for an aggregation not in
    TRIGRAM_AGGREGATIONS or k, lowercase_k outside 0 <= lowercase_k <= k <= buckets.

    Buffers (model state, in the state dict, so a checkpoint rebuilds M exactly without the
    tokenizer or this hash): `trigram_codes` (U,) int32, the distinct trigrams of the vocabulary,
    sorted; `trigram_buckets` (U, k) int32, their buckets; `token_offsets` (V + 1,) int64 and
    `token_trigrams` (nnz,) int32, A's CSR (id v's trigrams at offsets[v]:offsets[v + 1]); 2.4 MB
    for GPT-2 (U = 15,987 trigrams, 318,697 token-trigram pairs). Derived, rebuilt on load:
    `trigram_matrix` (H) and `token_matrix` (A), FixedSparseMatrix each. input_table() is
    A (H weight): 159,870 + 318,697 bag entries for GPT-2 instead of M's 3.19M, no (V, buckets)
    or (tokens, buckets) matrix, deterministic, one torch.compile node per product.
    """

    max_bytes = None  # embed_bytes reads strings of any length

    def __init__(self, token_bytes, n_embd, buckets=4096, k=10, lowercase_k=2, seed=0, aggregation="sum"):
        if aggregation not in TRIGRAM_AGGREGATIONS:
            raise UserError(f"trigram aggregation {aggregation!r} is not one of {', '.join(TRIGRAM_AGGREGATIONS)}")
        if not 0 <= lowercase_k <= k <= buckets:
            raise UserError(f"trigram hashing needs 0 <= lowercase_k <= k <= buckets, got lowercase_k "
                            f"{lowercase_k}, k {k}, buckets {buckets}")
        super().__init__(buckets, n_embd)
        self.k, self.lowercase_k, self.seed, self.aggregation = k, lowercase_k, seed, aggregation
        codes, offsets, columns = trigram_incidence(token_bytes)
        self.register_buffer("trigram_codes", codes.int())
        self.register_buffer("trigram_buckets", self._hash(codes).int())
        self.register_buffer("token_offsets", offsets)
        self.register_buffer("token_trigrams", columns.int())
        self._build_derived()

    def reset_parameters(self):
        """The bucket table at a BPE table's init, N(0, TABLE_INIT_STD): a token's input then has
        norm about 0.02 sqrt(n_embd x its k |trigrams| activations) (4.34 at GPT-2 124M)."""
        nn.init.normal_(self.weight, mean=0.0, std=TABLE_INIT_STD)

    def forward(self, ids):
        """(...) int64 token ids in [0, V) -> (..., n_embd) in the table's dtype (float32, also
        under autocast): a lookup in input_table()."""
        return F.embedding(ids, self.input_table())

    def learned_matrix(self, n_real):
        """(buckets, n_embd): the bucket table (every row can be trained; n_real unused)."""
        return self.weight

    def input_table(self):
        """(V, n_embd): row v = e(v) for every id, A (H weight) through two fixed sparse
        products. Differentiable in weight; wrap it in torch.no_grad() to read it."""
        return self.token_matrix(self.trigram_matrix(self.weight))

    def incidence_rows(self, ids):
        """(n, buckets) float32 on the buffers' device: M's rows of ids (n,) int64, the fixed
        code e = M weight applies (bucket counts; divided by k |trigrams| for "mean"). The
        trigram arm's analogue of the Kronecker codec z, for the probes; dense, so ask for a few
        thousand ids at a time."""
        rows, columns = self._entries(ids)
        buckets = self.trigram_buckets.long()[columns]  # (entries, k)
        weights = self._weights(self.token_offsets[ids + 1] - self.token_offsets[ids])[rows]
        out = torch.zeros(len(ids), self.num_embeddings, device=buckets.device)
        out.index_put_((rows.unsqueeze(1).expand_as(buckets), buckets),
                       weights.unsqueeze(1).expand(buckets.shape).float(), accumulate=True)
        return out

    def embed_bytes(self, byte_strings):
        """n byte strings -> (n, n_embd) in the table's dtype: e of any bytes (words with no token
        id too), with no length limit. Trigrams the vocabulary has use their stored buckets,
        others are hashed with this module's knobs."""
        codes, offsets, columns = trigram_incidence(byte_strings)
        device = self.weight.device
        buckets, stored = self._hash(codes), self.trigram_codes.long().cpu()
        if len(stored):
            at = torch.searchsorted(stored, codes).clamp(max=len(stored) - 1)
            known = stored[at] == codes
            buckets[known] = self.trigram_buckets.long().cpu()[at[known]]
        lengths = offsets.diff()
        bag_offsets = torch.cat([offsets.new_zeros(1), (lengths * self.k).cumsum(0)])
        weights = self._weights(lengths).repeat_interleave(lengths * self.k)
        return F.embedding_bag(buckets[columns].reshape(-1).to(device), self.weight, bag_offsets.to(device),
                               mode="sum", per_sample_weights=weights.to(device, self.weight.dtype),
                               include_last_offset=True)

    def _hash(self, codes):
        return hash_trigrams(codes, self.num_embeddings, self.k, self.lowercase_k, self.seed)

    def _weights(self, lengths):
        """Per string, the value of each of its k * lengths activations: 1 ("sum") or their mean's
        1 / (k * length) (float32; 0 for a string without trigrams)."""
        lengths = lengths.float()
        if self.aggregation == "sum":
            return torch.ones_like(lengths)
        return torch.where(lengths > 0, 1.0 / (self.k * lengths.clamp(min=1)), torch.zeros_like(lengths))

    def _entries(self, ids):
        """(rows, columns) int64: the (position in ids, trigram index) pairs of ids' rows of A."""
        starts, lengths = self.token_offsets[ids], self.token_offsets[ids + 1] - self.token_offsets[ids]
        rows = torch.repeat_interleave(torch.arange(len(ids), device=ids.device), lengths)
        first = torch.repeat_interleave(starts - (lengths.cumsum(0) - lengths), lengths)
        return rows, self.token_trigrams.long()[first + torch.arange(len(rows), device=ids.device)]

    def _build_derived(self):
        """H and A as FixedSparseMatrix, built on the CPU from the buffers, on their device."""
        device = self.token_offsets.device
        U, V = len(self.trigram_codes), len(self.token_offsets) - 1
        ones = torch.ones(U * self.k, device="cpu")  # device: also inside a meta-device context
        trigram_rows = torch.arange(U, device="cpu").repeat_interleave(self.k)
        self.trigram_matrix = FixedSparseMatrix(trigram_rows, self.trigram_buckets.cpu().long().reshape(-1), ones,
                                                shape=(U, self.num_embeddings)).to(device)
        offsets = self.token_offsets.cpu()
        lengths = offsets.diff()
        token_rows = torch.arange(V, device="cpu").repeat_interleave(lengths)
        values = self._weights(lengths).repeat_interleave(lengths)
        self.token_matrix = FixedSparseMatrix(token_rows, self.token_trigrams.cpu().long(), values,
                                              shape=(V, U)).to(device)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        # The trigram count U and the pair count differ between vocabularies: take the checkpoint's
        # lengths (the module may have been built from placeholder bytes, as GPT.from_checkpoint does)
        for name in ("trigram_codes", "trigram_buckets", "token_trigrams"):
            incoming = state_dict.get(prefix + name)
            if torch.is_tensor(incoming) and incoming.dim() == getattr(self, name).dim():
                own = getattr(self, name)
                setattr(self, name, own.new_empty((incoming.shape[0], *own.shape[1:])))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        problem = self._incidence_problem()
        if problem:
            error_msgs.append(f"{prefix}: {problem}")
        else:
            self._build_derived()

    def _incidence_problem(self):
        """What makes the stored incidence unusable, or None."""
        offsets, U = self.token_offsets, len(self.trigram_codes)
        if offsets[0] != 0 or offsets[-1] != len(self.token_trigrams) or (offsets.diff() < 0).any():
            return "token_offsets is not a CSR index of token_trigrams"
        if len(self.token_trigrams) and not 0 <= int(self.token_trigrams.min()) <= int(self.token_trigrams.max()) < U:
            return f"token_trigrams has indices outside the {U} trigrams"
        if len(self.trigram_buckets) != U or (U and not 0 <= int(self.trigram_buckets.min())
                                               <= int(self.trigram_buckets.max()) < self.num_embeddings):
            return f"trigram_buckets does not give each of the {U} trigrams buckets below {self.num_embeddings}"
        return None
