"""GPT-2 (nanoGPT style) with a switchable input embedding: BPE table (tied or untied) or Kronecker.

The Kronecker embedding (arXiv 2605.29459) replaces the learned (V, d) table by a fixed byte codec
and one learned Linear(D, d), D = 256 * pos_dim. For a token with UTF-8 bytes b_1..b_L:
    kappa = (1/sqrt(L)) * sum_p onehot256(b_p) (x) onehot_pos(p)      (flat index byte*pos_dim + p)
    z     = (kappa - mean(kappa)) / (std(kappa, unbiased) + 1e-6)     (L = 0 gives z = 0)
    e     = W z
Three modes compute the same e: "sparse" (default; a gather-sum over the token's L byte columns
plus a rank-1 correction, never materialising anything of size N x D or V x D, with a sort-free
scatter-add backward), "dense" (builds the (N, D) codec and multiplies, as the reference code
does) and "cached" (a (V, D) codec table, a buffer built once). Every mode returns float32
embeddings under autocast, as nn.Embedding does in the BPE arms.
The control arm "kronecker_shuffled" is the same codec and projection with the byte strings
permuted over token ids (shuffled_byte_sources): same sparsity and norms, no byte structure.
"""
import inspect
import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.utils.checkpoint
from torch.nn import functional as F

from checkpoint import load_checkpoint
from errors import UserError
from tokenizer import GPT2_VOCAB, gpt2_token_bytes, truncate_utf8

EMBEDDINGS = ("bpe", "bpe_untied", "kronecker", "kronecker_shuffled")
KRONECKER_EMBEDDINGS = ("kronecker", "kronecker_shuffled")  # the byte codec + Linear(D, d), untied head
KRONECKER_MODES = ("sparse", "dense", "cached")
ZNORM_EPS = 1e-6
# GPT-2's longest token is 128 bytes (python -c "import tiktoken; e = tiktoken.get_encoding('gpt2');
# print(max(len(e.decode_single_token_bytes(i)) for i in range(e.n_vocab)))"); 256 leaves room for
# other tokenizers while D = 256 * pos_dim stays at most 65,536 inputs to the Linear(D, d).
MAX_POS_DIM = 256
MAX_SEED = 2**32 - 1  # numpy's legacy seeding and most RNG tools take 32 bits


def config_field(default, help, section=None):
    """A dataclass field with its one-line meaning (metadata "help") and, on the first field of a
    group, the group's heading ("section"): `python train.py --help` prints them from the fields
    themselves, so a setting and its documentation cannot drift apart."""
    return field(default=default, metadata=dict(help=help, section=section))


@dataclass
class GPTConfig:
    """The network: GPT-2's shape (nanoGPT's GPTConfig; defaults = GPT-2 124M) and the input
    embedding of arXiv 2605.29459. train_config.TrainConfig inherits these fields, so a model
    field is added here only, with its help line.

    Raises UserError (one line, naming the field) for a value the network cannot be built with;
    train_config.validate reports them for config files and the command line.
    """
    block_size: int = config_field(1024, "context length in tokens (rows of the position table)",
                                   section="model (model.GPTConfig)")
    vocab_size: int = config_field(50304, "rows of the output head (and BPE table); GPT-2's 50,257 ids "
                                          "padded to a multiple of 64")
    n_layer: int = config_field(12, "transformer blocks")
    n_head: int = config_field(12, "attention heads per block; must divide n_embd")
    n_embd: int = config_field(768, "model width d")
    dropout: float = config_field(0.0, "dropout probability, in [0, 1) (0 in the paper runs)")
    bias: bool = config_field(True, "biases in the Linears and LayerNorms, as GPT-2")
    embedding: str = config_field("bpe", "input: a token table, head tied or untied, or the byte "
                                         "codec + Linear(D, d)")
    pos_dim: int = config_field(16, "Kronecker: bytes kept per token (cut UTF-8-safely); "
                                    "D = 256 * pos_dim")
    kronecker_mode: str = config_field("sparse", "Kronecker: how W z is computed (same function; "
                                                 "sparse builds no N x D tensor)")
    wte_init_std: float = config_field(0.02, "BPE arms: std of the token table's init (1.0 = "
                                             "Kronecker's input scale)")
    shuffle_seed: int = config_field(0, "kronecker_shuffled: seed of the byte strings' permutation "
                                        "over ids")
    projection_weight_decay: bool = config_field(True, "Kronecker arms: weight decay on the "
                                                       "projection W")

    @property
    def kronecker(self):
        """True for the arms whose input is the byte codec + Linear(D, n_embd)."""
        return self.embedding in KRONECKER_EMBEDDINGS

    def __post_init__(self):
        self.check()

    def check(self):
        """Raise UserError for the first value the network cannot be built with."""
        for name, choices in (("embedding", EMBEDDINGS), ("kronecker_mode", KRONECKER_MODES)):
            if getattr(self, name) not in choices:
                raise UserError(f"{name}={getattr(self, name)!r} is not one of {', '.join(choices)}")
        for name in ("block_size", "vocab_size", "n_layer", "n_head", "n_embd", "pos_dim", "wte_init_std"):
            if not getattr(self, name) > 0:
                raise UserError(f"'{name}' must be positive, got {getattr(self, name)}")
        if self.dropout < 0:
            raise UserError(f"'dropout' must be >= 0, got {self.dropout}")
        if not self.dropout < 1:
            raise UserError(f"'dropout' must be in [0, 1), got {self.dropout}")
        if self.pos_dim > MAX_POS_DIM:
            raise UserError(f"'pos_dim' ({self.pos_dim}) is above {MAX_POS_DIM}: GPT-2's longest token is "
                            f"128 bytes, so more byte positions add only zeros; use 16 (the paper) or 32")
        if not 0 <= self.shuffle_seed <= MAX_SEED:
            raise UserError(f"'shuffle_seed' must be in [0, 2**32 - 1], got {self.shuffle_seed}")
        if self.n_embd % self.n_head:
            raise UserError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")


# ----------------------------------------------------------------------------- sparse kernel
# W z for many tokens as a custom op: torch.compile sees one opaque node with a known output shape
# (no graph break, no dynamic shapes), and the backward is a scatter-add (index_add_) of the
# scaled output gradient into W's byte columns, instead of F.embedding_bag's backward, which sorts
# all N x (P + 1) bag entries by column with a parallel sort that stalls whenever another process
# holds one of the cores.


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


# ----------------------------------------------------------------------------- Kronecker embedding

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


class KroneckerEmbedding(nn.Module):
    """Token id -> W z(kappa(bytes(id))); the only parameter is `projection` (D -> n_embd).

    The codec of arXiv 2605.29459 (its Eq. 1, kappa, then per-token z-normalisation; module
    docstring) as the reference package kronecker-embeddings 0.1.1 computes it
    (codec.kronecker_codec + embedding.KroneckerEmbedding; tests/test_model.py checks equality).
    token_bytes: V byte strings (index = token id), cut UTF-8-safely to pos_dim bytes; D = 256 *
    pos_dim. Raises UserError for a mode not in KRONECKER_MODES.

    Buffers: `byte_table` (V, pos_dim) uint8 and `byte_lengths` (V,) uint8 are model state (in
    the state dict). Derived buffers are kept out of the state dict, computed once and rebuilt
    on load, so every mode reads the same checkpoints and forward builds nothing (one
    torch.compile graph, no recompiles, no host-to-device copies): `length_scale` a(L) and
    `mean_shift` c(L), (pos_dim + 1,) float32 (see _length_coefficients); in "sparse" mode
    `byte_columns` (V, pos_dim) int32, each byte's column of W (3.2 MB at GPT-2); in "cached"
    mode `codec_table` (V, D) float32. Outputs are float32 under autocast in every mode.
    """

    def __init__(self, token_bytes, n_embd, pos_dim=16, mode="sparse"):
        super().__init__()
        if mode not in KRONECKER_MODES:
            raise UserError(f"kronecker mode {mode!r} is not one of {', '.join(KRONECKER_MODES)}")
        self.pos_dim, self.mode = pos_dim, mode
        self.D = 256 * pos_dim
        rows, lengths = self.encode_bytes(token_bytes)
        # The byte table is model state: a checkpoint alone rebuilds the codec, no tokenizer needed.
        self.register_buffer("byte_table", rows)
        self.register_buffer("byte_lengths", lengths)
        a, c = self._length_coefficients()
        self.register_buffer("length_scale", a.float(), persistent=False)
        self.register_buffer("mean_shift", c.float(), persistent=False)
        for name, derived in self._derived_buffers().items():
            self.register_buffer(name, derived, persistent=False)
        self.projection = nn.Linear(self.D, n_embd, bias=False)
        self.reset_parameters()

    def reset_parameters(self):
        """The paper's init: N(0, 1/D), so each projection row has L2 norm about 1."""
        nn.init.normal_(self.projection.weight, mean=0.0, std=1.0 / math.sqrt(self.D))

    def encode_bytes(self, byte_strings):
        """(n, pos_dim) uint8 rows and (n,) uint8 lengths; longer strings cut UTF-8-safely."""
        rows = torch.zeros(len(byte_strings), self.pos_dim, dtype=torch.uint8)
        lengths = torch.zeros(len(byte_strings), dtype=torch.uint8)
        for i, b in enumerate(byte_strings):
            b = truncate_utf8(bytes(b), self.pos_dim)
            rows[i, :len(b)] = torch.tensor(list(b), dtype=torch.uint8)
            lengths[i] = len(b)
        return rows, lengths

    def forward(self, ids):
        """(...) int64 token ids in [0, V) -> (..., n_embd) embeddings e = W z, in W's dtype
        (float32 in training, also under autocast); every mode computes the same function."""
        if self.mode == "sparse":
            flat = ids.reshape(-1)
            columns = self.byte_columns.index_select(0, flat)
            return self._sparse(columns, self.byte_lengths.index_select(0, flat)).view(*ids.shape, -1)
        if self.mode == "cached":
            return self._project(F.embedding(ids, self.codec_table))
        return self._project(self.codec(ids))

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
        if self.mode == "sparse":
            return self._sparse(self._byte_columns(rows, lengths), lengths)
        return self._project(self._codec_rows(rows, lengths))

    def _sparse(self, columns, lengths):
        """W z without building z: a(L) times the sum of the token's byte columns of W, minus
        c(L) times W's column sum (the rank-1 mean correction); columns from _byte_columns."""
        W = self.projection.weight
        lengths = lengths.long()
        scale, shift = self.length_scale.index_select(0, lengths), self.mean_shift.index_select(0, lengths)
        return sparse_embed(W, columns, scale.to(W.dtype), shift.to(W.dtype))

    def _project(self, z):
        # Outside autocast: the input embedding stays float32 in every mode, as sparse (a custom
        # op, never autocast) and nn.Embedding (the BPE arms) are; the modes then agree under bf16.
        with torch.autocast(z.device.type, enabled=False):
            return self.projection(z)

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
        L = torch.arange(self.pos_dim + 1, dtype=torch.float64)
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

    def _derived_buffers(self):
        """What forward reads besides W, computed once from the byte table (see the class doc)."""
        if self.mode == "sparse":
            return dict(byte_columns=self._byte_columns(self.byte_table, self.byte_lengths))
        if self.mode == "cached":
            return dict(codec_table=self._codec_rows(self.byte_table, self.byte_lengths))
        return {}

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        for name, derived in self._derived_buffers().items():  # the byte table may have changed
            getattr(self, name).copy_(derived)


# ----------------------------------------------------------------------------- transformer

class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention (nanoGPT's, with PyTorch's fused SDPA kernel)."""

    def __init__(self, config):
        super().__init__()
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head, self.dropout = config.n_head, config.dropout

    def forward(self, x):
        """(B, T, C) -> (B, T, C), C = n_embd; position t attends to positions <= t only."""
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)  # each (B, T, C)
        # (B, T, C) -> (B, n_head, T, head size C / n_head)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # heads side by side again
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    """GPT-2's feed-forward block: Linear(C, 4C), GELU, Linear(4C, C)."""

    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        """(B, T, C) -> (B, T, 4C) -> (B, T, C)."""
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """A pre-LayerNorm transformer block: x + attn(ln_1(x)), then + mlp(ln_2(x)); (B, T, C) -> (B, T, C)."""

    def __init__(self, config):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """GPT-2 as in nanoGPT / build-nanogpt (Karpathy), with the input embedding of config.embedding:
    a token table (bpe: tied to the head; bpe_untied) or KroneckerEmbedding (arXiv 2605.29459:
    the byte codec + Linear(D, n_embd), untied head). The rest of the network is the same in
    every arm.

    token_bytes: the V = vocab_size byte strings of the Kronecker arms' codec (index = token id;
    default GPT-2's, tokenizer.gpt2_token_bytes); ignored by the BPE arms. Raises UserError when
    it does not have vocab_size entries.
    """

    def __init__(self, config, token_bytes=None, verbose=False):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=self._input_embedding(config, token_bytes),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # train.py sets it from TrainConfig: not part of the function, so not in GPTConfig
        self.activation_checkpointing = False
        if config.embedding == "bpe":
            self.transformer.wte.weight = self.lm_head.weight  # weight tying
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))
        if config.kronecker:  # undo the generic init: the projection keeps N(0, 1/D)
            self.transformer.wte.reset_parameters()
        if verbose:
            print("parameters: " + ", ".join(f"{k} {v:,}" for k, v in self.param_counts().items()))

    @staticmethod
    def _input_embedding(config, token_bytes):
        if not config.kronecker:
            return nn.Embedding(config.vocab_size, config.n_embd)
        if token_bytes is None:
            token_bytes = gpt2_token_bytes(config.vocab_size)
        if len(token_bytes) != config.vocab_size:
            raise UserError(f"token_bytes has {len(token_bytes)} entries but vocab_size is {config.vocab_size}")
        if config.embedding == "kronecker_shuffled":  # the byte table stores the result: checkpoints keep it
            token_bytes = [token_bytes[i] for i in shuffled_byte_sources(token_bytes, config.shuffle_seed).tolist()]
        return KroneckerEmbedding(token_bytes, config.n_embd, config.pos_dim, config.kronecker_mode)

    def _init_weights(self, module):
        """N(0, 0.02) for every Linear and Embedding weight (GPT-2), except the BPE token table,
        N(0, wte_init_std) (the tied head is that table). One draw per module in module order, so
        the default draws exactly what nanoGPT draws."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            wte = getattr(self.transformer.wte, "weight", None)
            std = self.config.wte_init_std if module.weight is wte else 0.02
            nn.init.normal_(module.weight, mean=0.0, std=std)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    # --------------------------------------------------------------------- forward passes

    def token_embedding(self, idx):
        """The input side alone: (B, T) ids -> (B, T, n_embd), without position embeddings."""
        return self.transformer.wte(idx)

    def input_table(self, chunk=8192):
        """The effective input table: (vocab_size, n_embd), row i = the input vector of id i, in
        the input layer's dtype (float32 in training). For the table arms it is the table itself;
        for the Kronecker arms the codec + projection of every id, computed `chunk` ids at a time
        (no (V, D) matrix). Differentiable; wrap it in torch.no_grad() to read it. One method for
        every arm: the neighbour and cross-model probes and the Hugging Face export read it.
        """
        wte = self.transformer.wte
        if isinstance(wte, nn.Embedding):
            return wte.weight
        ids = torch.arange(self.config.vocab_size, device=wte.projection.weight.device)
        return torch.cat([wte(part) for part in ids.split(chunk)])

    def embed_bytes(self, byte_strings):
        """Kronecker arms only: (n, n_embd) embeddings of arbitrary byte strings (through the
        codec; for kronecker_shuffled these bytes are not the bytes its tokens were trained with)."""
        if not self.config.kronecker:
            raise UserError(f"embed_bytes needs a kronecker arm; this model is {self.config.embedding!r}")
        return self.transformer.wte.embed_bytes(byte_strings)

    def _input(self, idx, tok_emb):
        if tok_emb is None:
            tok_emb = self.token_embedding(idx)
        T = tok_emb.size(1)
        if T > self.config.block_size:
            raise ValueError(f"sequence of length {T} exceeds block_size {self.config.block_size}")
        pos = torch.arange(T, device=tok_emb.device)
        return self.transformer.drop(tok_emb + self.transformer.wpe(pos))

    def forward(self, idx=None, targets=None, tok_emb=None):
        """(logits, loss) of token ids idx (B, T) int64, T <= block_size.

        With targets (B, T) int64 (-1: ignored): logits (B, T, V) and loss, the mean next-token
        cross-entropy in nats (a float32 scalar). Without: logits of the last position only,
        (B, 1, V), and None. Logits are float32, bfloat16 under bf16 autocast; V = vocab_size.
        tok_emb (B, T, n_embd), if given, replaces the token embeddings of idx (see generate).
        Raises ValueError when T > block_size.
        """
        x = self._input(idx, tok_emb)
        recompute = self.activation_checkpointing and torch.is_grad_enabled()
        for block in self.transformer.h:
            # recompute: keep only each block's input, run the block again in backward
            x = torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False) if recompute else block(x)
        x = self.transformer.ln_f(x)
        if targets is None:
            return self.lm_head(x[:, [-1], :]), None
        logits = self.lm_head(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
        return logits, loss

    def hidden_states(self, idx=None, tok_emb=None):
        """The residual stream of idx (B, T) int64 (or of tok_emb (B, T, n_embd)): n_layer + 2
        tensors (B, T, n_embd) float32 (also under bf16 autocast: the residual sum promotes),
        [input (token + position), after each block, after ln_f]. Read by eval/neighbors.py,
        eval/robustness.py and eval/hellaswag.py."""
        x = self._input(idx, tok_emb)
        states = [x]
        for block in self.transformer.h:
            x = block(x)
            states.append(x)
        states.append(self.transformer.ln_f(x))
        return states

    # --------------------------------------------------------------------- accounting

    def param_counts(self):
        """Trainable parameters by part; the parts sum to `total` (a tied head adds nothing)."""
        c = self.config
        tied = c.embedding == "bpe"
        input_side = sum(p.numel() for p in self.transformer.wte.parameters())
        output_head = 0 if tied else self.lm_head.weight.numel()
        position = self.transformer.wpe.weight.numel()
        total = sum(p.numel() for p in self.parameters())  # shared tensors are counted once
        return dict(total=total, input_trainable=input_side, output_head=output_head, position=position,
                    body=total - input_side - output_head - position)

    @torch.no_grad()
    def embedding_norms(self):
        """Norms for the norm-drift analysis, over the real vocabulary (ids < 50257).

        emb_row_norm: mean L2 norm of the learned input matrix's rows (table rows; for Kronecker
        the projection's rows of length D, about 1.0 at init); emb_token_norm: mean L2 norm of
        the produced token embeddings; emb_fro_norm: Frobenius norm of that learned matrix.
        """
        n_real = min(self.config.vocab_size, GPT2_VOCAB)
        wte = self.transformer.wte
        if self.config.kronecker:
            matrix = wte.projection.weight.float()
            ids = torch.arange(n_real, device=matrix.device)
            token_norm = torch.cat([wte(chunk).float().norm(dim=1) for chunk in ids.split(8192)]).mean()
        else:
            matrix = wte.weight[:n_real].float()
            token_norm = matrix.norm(dim=1).mean()
        return dict(emb_row_norm=matrix.norm(dim=1).mean().item(), emb_token_norm=token_norm.item(),
                    emb_fro_norm=matrix.norm().item())

    # --------------------------------------------------------------------- training helpers

    def configure_optimizers(self, weight_decay, learning_rate, betas, device_type):
        """AdamW, fused on CUDA; groups[0] decays by weight_decay, groups[1] does not.

        Decayed: the 2-D weights (matrices and tables, build-nanogpt's rule), except the Kronecker
        projection W when config.projection_weight_decay is False (the paper's "projection norm
        stays near 1.0" depends on it; the paper does not say whether W was decayed). The BPE
        tables are always decayed (train_config refuses projection_weight_decay=False for them).
        """
        params = [p for p in self.parameters() if p.requires_grad]
        exempt = self.transformer.wte.projection.weight \
            if self.config.kronecker and not self.config.projection_weight_decay else None
        decayed = [p for p in params if p.dim() >= 2 and p is not exempt]
        groups = [dict(params=decayed, weight_decay=weight_decay),
                  dict(params=[p for p in params if p.dim() < 2 or p is exempt], weight_decay=0.0)]
        fused = device_type == "cuda" and "fused" in inspect.signature(torch.optim.AdamW).parameters
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, **(dict(fused=True) if fused else {}))

    def flops_per_token(self):
        """Training FLOPs per token (PaLM appendix B): 6 N + 12 L T d, N = body + output matmul.

        The input side is a lookup (or a gather-sum) in every arm, so it is left out; this keeps
        MFU comparable across arms.
        """
        c = self.config
        n_matmul = self.param_counts()["body"] + c.vocab_size * c.n_embd
        return 6 * n_matmul + 12 * c.n_layer * c.block_size * c.n_embd

    def estimate_mfu(self, fwdbwd_per_iter, dt, peak_flops):
        """Model FLOPs utilisation: achieved FLOP/s over `peak_flops` (e.g. 989e12 for H100 bf16)."""
        flops_per_iter = self.flops_per_token() * self.config.block_size * fwdbwd_per_iter
        return flops_per_iter / dt / peak_flops

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, generator=None, tok_emb=None,
                 n_vocab=GPT2_VOCAB):
        """Append max_new_tokens to idx (B, T), ids < n_vocab (the tokenizer's). temperature 0 is greedy.

        tok_emb (B, T, n_embd), if given, replaces the prompt's token embeddings (e.g. a word fed
        through embed_bytes); idx is then only carried along in the output.
        """
        emb = self.token_embedding(idx) if tok_emb is None else tok_emb
        for _ in range(max_new_tokens):
            logits, _ = self(tok_emb=emb[:, -self.config.block_size:])
            logits = logits[:, -1, :n_vocab]  # never emit the padding ids
            next_id = sample_next(logits, temperature, top_k, top_p, generator)
            idx = torch.cat((idx, next_id), dim=1)
            emb = torch.cat((emb, self.token_embedding(next_id)), dim=1)
        return idx

    # --------------------------------------------------------------------- checkpoints

    @classmethod
    def from_checkpoint(cls, checkpoint, map_location="cpu"):
        """A model in eval mode from a checkpoint path or dict ("model_config" and "model" keys)."""
        if not isinstance(checkpoint, dict):
            checkpoint = load_checkpoint(checkpoint, map_location)
        if not isinstance(checkpoint, dict) or "model_config" not in checkpoint or "model" not in checkpoint:
            raise UserError("not a train.py checkpoint: it lacks 'model_config' and 'model'")
        try:
            config = GPTConfig(**checkpoint["model_config"])
        except (TypeError, UserError) as err:  # a field or an arm (embedding) of another version
            raise UserError(f"checkpoint model_config does not fit this model.py ({err}); "
                            f"load it with the code (branch or commit) that trained it")
        placeholder_bytes = [b""] * config.vocab_size  # the real byte table comes from the state dict
        model = cls(config, token_bytes=placeholder_bytes if config.kronecker else None)
        try:
            model.load_state_dict(checkpoint["model"])
        except RuntimeError as err:
            raise UserError(f"checkpoint weights do not match its model_config: {str(err).splitlines()[0]}")
        return model.to(map_location).eval()


def sample_next(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    """One token id per row of logits (B, V): greedy at temperature 0, else top-k / top-p sampling."""
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, [-1]]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        sorted_logits, order = torch.sort(logits, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        drop = cumulative - sorted_logits.softmax(-1) >= top_p  # keep the smallest set reaching top_p
        logits = logits.masked_fill(drop.scatter(1, order, drop), float("-inf"))
    probs = F.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator)
