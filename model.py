"""GPT-2 (nanoGPT style) with a switchable input embedding and head: a learned table (full or
factorised), the Kronecker byte codec or hashed byte trigrams, the head tied to the input table
or untied.

GPTConfig (the network's settings), INPUT_KINDS (the arm dispatch: one entry per value of
config.embedding, saying how its input module is built and whether the head is tied to its
input table), GPT (the transformer and its blocks), TiedHead (a head tied to a computed table)
and sampling. The input layers themselves (the tables, the Kronecker codec and its modes, the
shuffled control, the trigram hash) are in embeddings.py.
"""
import inspect
import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.utils.checkpoint
from torch.nn import functional as F

from checkpoint import load_checkpoint
from embeddings import (KRONECKER_MODES, MAX_POS_DIM, PROJECTIONS, TABLE_INIT_STD, TRIGRAM_AGGREGATIONS,
                        FactorizedEmbedding, KroneckerEmbedding, TokenEmbedding, TrigramHashEmbedding, matched_rank,
                        shuffled_byte_sources)
from errors import UserError
from tokenizer import GPT2_VOCAB, gpt2_token_bytes

MAX_SEED = 2**32 - 1  # numpy's legacy seeding and most RNG tools take 32 bits
MAX_TRIGRAM_BUCKETS = 2**24  # bucket ids are int32; 16M rows is far past any table this repo trains
# Fields older checkpoints and run records carry that no longer exist, and why: an older
# checkpoint loads without them (an init std does not change a trained model's function).
REMOVED_FIELDS = {"wte_init_std": "the token tables always start at N(0, 0.02); the input-scale control "
                                  "is now wte_scale (arm bpe_untied_scaled = wte_scale 50, docs/embedding.md)"}


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
    embedding: str = config_field("bpe", "input and head (INPUT_KINDS): a token table (bpe: tied), a "
                                         "low-rank table, the byte codec + projection (kronecker_tied: "
                                         "tied), or hashed byte trigrams")
    pos_dim: int = config_field(16, "Kronecker: bytes kept per token (cut UTF-8-safely); "
                                    "D = 256 * pos_dim")
    kronecker_mode: str = config_field("auto", "Kronecker: how W z is computed, the same function "
                                               "(auto: vocab on CUDA, sparse on CPU)")
    projection: str = config_field("linear", "Kronecker: Linear(D, d) (the paper), or mlp: Linear(D, h), "
                                             "GELU, Linear(h, d), RMSNorm (the authors' results file)")
    projection_hidden: int = config_field(0, "projection=mlp: hidden width h; 0 = D (as the authors' "
                                             "file: 4096 -> 4096 -> 768)")
    factor_rank: int = config_field(0, "bpe_factorized: rank r of the (V, r) table; 0 = the Kronecker "
                                       "projection's parameter count, round(256 pos_dim d / (V + d))")
    wte_scale: float = config_field(1.0, "constant multiplying every token's input vector (untied heads "
                                         "only); bpe_untied_scaled: 50 = 1/0.02, Kronecker's token norm")
    tied_head_scale: float = config_field(0.02, "kronecker_tied: logits = scale * h E^T; 0.02 starts the "
                                                "head's rows at a N(0, 0.02) head's norm (E's are ~sqrt(d))")
    shuffle_seed: int = config_field(0, "kronecker_shuffled: seed of the byte strings' permutation "
                                        "over ids")
    projection_weight_decay: bool = config_field(True, "Kronecker arms: weight decay on the "
                                                       "projection W")
    trigram_buckets: Optional[int] = config_field(None, "trigram_hash: rows m of the learned bucket table; "
                                                        "None -> 256 * pos_dim (4096), Kronecker's parameters")
    trigram_k: int = config_field(10, "trigram_hash: buckets each byte trigram activates (T-FREE's 10)")
    trigram_lowercase_k: int = config_field(2, "trigram_hash: of those, how many are hashed from the "
                                               "ASCII-lowercased trigram, shared across case (T-FREE's 2)")
    trigram_seed: int = config_field(0, "trigram_hash: seed of the trigram -> bucket hash")
    trigram_aggregation: str = config_field("sum", "trigram_hash: a token's input is the sum or the mean "
                                                   "of its activated bucket rows (T-FREE's 7B config: sum)")

    @property
    def kronecker(self):
        """True for the arms whose input is the byte codec + projection (the codec probes)."""
        return INPUT_KINDS[self.embedding].byte_codec

    @property
    def reads_token_bytes(self):
        """True for the inputs built from the tokenizer's byte strings (GPT's token_bytes; the
        Kronecker arms and trigram_hash): they keep them in the checkpoint and embed arbitrary
        bytes (embed_bytes)."""
        return INPUT_KINDS[self.embedding].token_bytes

    @property
    def tied(self):
        """True when the head is the input table: logits = h E^T (bpe, kronecker_tied)."""
        return INPUT_KINDS[self.embedding].tied

    @property
    def table_rank(self):
        """bpe_factorized's r: factor_rank, or for 0 embeddings.matched_rank (the Kronecker
        projection's parameter count)."""
        return self.factor_rank or matched_rank(self.vocab_size, self.n_embd, self.pos_dim)

    @property
    def trigram_rows(self):
        """trigram_hash's bucket count m: trigram_buckets, or 256 * pos_dim, which gives the bucket
        table (m, n_embd) exactly the Kronecker projection's parameters."""
        return self.trigram_buckets or 256 * self.pos_dim

    def __post_init__(self):
        self.check()

    def check(self):
        """Raise UserError for the first value the network cannot be built with."""
        for name, choices in (("embedding", EMBEDDINGS), ("kronecker_mode", KRONECKER_MODES),
                              ("projection", PROJECTIONS), ("trigram_aggregation", TRIGRAM_AGGREGATIONS)):
            if getattr(self, name) not in choices:
                raise UserError(f"{name}={getattr(self, name)!r} is not one of {', '.join(choices)}")
        for name in ("block_size", "vocab_size", "n_layer", "n_head", "n_embd", "pos_dim", "wte_scale",
                     "tied_head_scale", "trigram_k"):
            if not getattr(self, name) > 0:
                raise UserError(f"'{name}' must be positive, got {getattr(self, name)}")
        for name in ("factor_rank", "projection_hidden"):
            if getattr(self, name) < 0:
                raise UserError(f"'{name}' must be >= 0 (0: the default rule), got {getattr(self, name)}")
        if self.tied and self.wte_scale != 1:
            raise UserError(f"'wte_scale' ({self.wte_scale}) would scale embedding={self.embedding}'s tied head "
                            "too (logits = h E^T); it is for untied heads, e.g. --arm=bpe_untied_scaled")
        if self.dropout < 0:
            raise UserError(f"'dropout' must be >= 0, got {self.dropout}")
        if not self.dropout < 1:
            raise UserError(f"'dropout' must be in [0, 1), got {self.dropout}")
        if self.pos_dim > MAX_POS_DIM:
            raise UserError(f"'pos_dim' ({self.pos_dim}) is above {MAX_POS_DIM}: GPT-2's longest token is "
                            f"128 bytes, so more byte positions add only zeros; use 16 (the paper) or 32")
        for name in ("shuffle_seed", "trigram_seed"):
            if not 0 <= getattr(self, name) <= MAX_SEED:
                raise UserError(f"'{name}' must be in [0, 2**32 - 1], got {getattr(self, name)}")
        if self.trigram_buckets is not None and not 0 < self.trigram_buckets <= MAX_TRIGRAM_BUCKETS:
            raise UserError(f"'trigram_buckets' must be in 1..{MAX_TRIGRAM_BUCKETS} or None (256 * pos_dim), "
                            f"got {self.trigram_buckets}")
        if not 0 <= self.trigram_lowercase_k <= self.trigram_k <= self.trigram_rows:
            raise UserError(f"need 0 <= trigram_lowercase_k <= trigram_k <= trigram buckets, got "
                            f"{self.trigram_lowercase_k}, {self.trigram_k}, {self.trigram_rows}")
        if self.n_embd % self.n_head:
            raise UserError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")


# ----------------------------------------------------------------------------- the arm dispatch
# One entry per value of GPTConfig.embedding. An input module (embeddings.py) maps ids (...) to
# (..., n_embd) float32 and has input_table() (V, n_embd) and learned_matrix(n_real).

@dataclass(frozen=True)
class InputKind:
    """How GPT builds one kind of input, and where its head comes from.

    build(config, token_bytes) -> the input module; token_bytes is the V byte strings of the
    tokenizer when `token_bytes` is True (GPT checks their count), else None. tied: the head is
    the input table (logits = h E^T) instead of its own Linear(n_embd, V). knobs: the fields of
    INPUT_KNOBS this input reads (train_config refuses the others' non-default values).
    byte_codec: the input is the Kronecker codec + projection (the codec probes, the native export).
    """
    build: Callable
    tied: bool = False
    knobs: tuple = ()
    token_bytes: bool = False
    byte_codec: bool = False


def _table(config, token_bytes):
    return TokenEmbedding(config.vocab_size, config.n_embd)


def _factorized(config, token_bytes):
    return FactorizedEmbedding(config.vocab_size, config.table_rank, config.n_embd)


def _kronecker(config, token_bytes):
    return KroneckerEmbedding(token_bytes, config.n_embd, config.pos_dim, config.kronecker_mode,
                              config.projection, config.projection_hidden)


def _kronecker_shuffled(config, token_bytes):
    # the byte table stores the permuted strings: checkpoints keep the pairing
    sources = shuffled_byte_sources(token_bytes, config.shuffle_seed).tolist()
    return _kronecker(config, [token_bytes[i] for i in sources])


def _trigram_hash(config, token_bytes):
    return TrigramHashEmbedding(token_bytes, config.n_embd, config.trigram_rows, config.trigram_k,
                                config.trigram_lowercase_k, config.trigram_seed, config.trigram_aggregation)


TRIGRAM_KNOBS = ("trigram_buckets", "trigram_k", "trigram_lowercase_k", "trigram_seed", "trigram_aggregation")
INPUT_KNOBS = ("factor_rank", "projection", "projection_hidden", "projection_weight_decay", "shuffle_seed",
               "tied_head_scale", *TRIGRAM_KNOBS)
KRONECKER_KNOBS = ("projection", "projection_hidden", "projection_weight_decay")
_CODEC = dict(token_bytes=True, byte_codec=True)
# Together the tied/untied pairs form a 2 x 2, input {table, Kronecker} x head {tied, untied};
# trigram_hash is T-FREE's learned, hashed spelling code at the projection's parameter count
# (docs/embedding.md says what each comparison isolates).
INPUT_KINDS = {
    "bpe": InputKind(_table, tied=True),
    "bpe_untied": InputKind(_table),
    "bpe_factorized": InputKind(_factorized, knobs=("factor_rank",)),
    "kronecker": InputKind(_kronecker, knobs=KRONECKER_KNOBS, **_CODEC),
    "kronecker_tied": InputKind(_kronecker, tied=True, knobs=KRONECKER_KNOBS + ("tied_head_scale",), **_CODEC),
    "kronecker_shuffled": InputKind(_kronecker_shuffled, knobs=KRONECKER_KNOBS + ("shuffle_seed",), **_CODEC),
    "trigram_hash": InputKind(_trigram_hash, knobs=TRIGRAM_KNOBS, token_bytes=True),
}
EMBEDDINGS = tuple(INPUT_KINDS)


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


class TiedHead(nn.Module):
    """A head tied to a computed input table E (V, n_embd): logits = (h * scale) E^T, no parameter
    of its own (kronecker_tied; scale = config.tied_head_scale, default 0.02). A Kronecker row
    of E has norm about sqrt(n_embd) (unit variance per coordinate), a N(0, 0.02) row 0.02
    sqrt(n_embd): with scale 0.02 the head's effective rows, 0.02 E, start at the row norm of
    kronecker's untied N(0, 0.02) head and of bpe's tied table, so kronecker_tied differs from
    them in tying, not in head scale. Unscaled, h E^T starts with logits of std about sqrt(n_embd)
    times E's row norm (about 85 at 768: a one-hot softmax). (T5 scales h by n_embd**-0.5 before
    its tied head, Raffel et al. 2020: 0.036 at 768, between the two.)

    table: a callable returning E (the input module's input_table). GPT.forward computes E once
    and passes it to both ends; called with h alone (the probes) the head computes E itself.
    """

    def __init__(self, table, scale):
        super().__init__()
        self.table, self.scale = table, scale

    @property
    def weight(self):
        """(V, n_embd): the matrix the logits are h times, scale * E (differentiable), so
        lm_head.weight means the same for every arm (the export reads it)."""
        return self.table() * self.scale

    def forward(self, x, table=None):
        """(..., n_embd) -> (..., V) logits; table: E if already computed."""
        return F.linear(x * self.scale, self.table() if table is None else table)


class GPT(nn.Module):
    """GPT-2 as in nanoGPT / build-nanogpt (Karpathy), with the input of config.embedding
    (INPUT_KINDS): a token table, ALBERT's low-rank table, KroneckerEmbedding (arXiv 2605.29459:
    the byte codec + projection) or TrigramHashEmbedding (T-FREE's hashed byte trigrams summed
    over a learned (config.trigram_rows, n_embd) table), and a head tied to that input table or
    untied. The rest of the network is the same in every arm.

    token_bytes: the V = vocab_size byte strings of the inputs built from bytes (index = token
    id; default GPT-2's, tokenizer.gpt2_token_bytes); ignored by the others. Raises UserError
    when it does not have vocab_size entries.
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
        table_is_parameter = isinstance(self.transformer.wte, TokenEmbedding)  # input table = its weight
        if config.tied and table_is_parameter:
            self.transformer.wte.weight = self.lm_head.weight  # weight tying (nanoGPT's)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))
        if not table_is_parameter:  # an input with its own init (embeddings.py)
            self.transformer.wte.reset_parameters()
        if config.tied and not table_is_parameter:
            # a computed table: logits = h E^T through it, no V x n_embd parameter. Replaced after
            # the init, so kronecker_tied draws exactly kronecker's initial weights at one seed.
            self.lm_head = TiedHead(self.transformer.wte.input_table, config.tied_head_scale)
        if verbose:
            print("parameters: " + ", ".join(f"{k} {v:,}" for k, v in self.param_counts().items()))

    @staticmethod
    def _input_embedding(config, token_bytes):
        kind = INPUT_KINDS[config.embedding]
        if not kind.token_bytes:
            return kind.build(config, None)
        if token_bytes is None:
            token_bytes = gpt2_token_bytes(config.vocab_size)
        if len(token_bytes) != config.vocab_size:
            raise UserError(f"token_bytes has {len(token_bytes)} entries but vocab_size is {config.vocab_size}")
        return kind.build(config, token_bytes)

    def _init_weights(self, module):
        """N(0, 0.02) for every Linear and Embedding weight (GPT-2; the tied head is the table).
        One draw per module in module order, so the bpe arm draws exactly what nanoGPT draws;
        input modules with an init of their own redraw it afterwards (reset_parameters)."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=TABLE_INIT_STD)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    # --------------------------------------------------------------------- forward passes

    @property
    def tied_head(self):
        """True when the head is the input table (logits = h E^T up to TiedHead's constant): bpe
        shares the table's parameter, kronecker_tied computes E (TiedHead). The export, the
        probes and the gradient groups read this, not arm names."""
        return self.config.tied

    def token_embedding(self, idx, table=None):
        """The input side alone: (B, T) ids -> (B, T, n_embd) float32, without position
        embeddings: the input module's output times wte_scale, or rows of `table` (E, already
        computed by forward for a tied head)."""
        if table is not None:
            return F.embedding(idx, table)
        return self._scaled(self.transformer.wte(idx))

    def _scaled(self, x):
        # wte_scale: a constant on every input vector (bpe_untied_scaled); 1 adds no op
        return x if self.config.wte_scale == 1 else x * self.config.wte_scale

    def input_table(self):
        """The effective input table: (vocab_size, n_embd), row i = the input vector of id i, in
        the input layer's dtype (float32 in training): the input module's input_table()
        (embeddings.py) times wte_scale. For the table arms it is the table itself; for the
        Kronecker arms the codec + projection of every id as one fixed sparse product (no (V, D)
        matrix). Differentiable; wrap it in torch.no_grad() to read it. One method for every
        arm: the neighbour and cross-model probes, a tied Kronecker head and the Hugging Face
        export read it.
        """
        return self._scaled(self.transformer.wte.input_table())

    def embed_bytes(self, byte_strings):
        """Every input built from bytes (config.reads_token_bytes: the Kronecker arms,
        trigram_hash): (n, n_embd) embeddings of arbitrary byte strings, times wte_scale, through
        the codec (cut to pos_dim bytes; for kronecker_shuffled these bytes are not the bytes its
        tokens were trained with) or the trigram hash (any length)."""
        if not self.config.reads_token_bytes:
            raise UserError(f"embed_bytes needs an input built from bytes "
                            f"({', '.join(e for e, kind in INPUT_KINDS.items() if kind.token_bytes)}); "
                            f"this model is {self.config.embedding!r}")
        return self._scaled(self.transformer.wte.embed_bytes(byte_strings))

    def _shared_table(self):
        """E (V, n_embd) for a head tied to a computed table, computed once per forward for both
        ends (one sparse product, its backward one pass for both gradients); else None."""
        return self.transformer.wte.input_table() if isinstance(self.lm_head, TiedHead) else None

    def _logits(self, x, table):
        return self.lm_head(x) if table is None else self.lm_head(x, table)

    def _input(self, idx, tok_emb, table=None):
        if tok_emb is None:
            tok_emb = self.token_embedding(idx, table)
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
        table = self._shared_table()
        x = self._input(idx, tok_emb, table)
        recompute = self.activation_checkpointing and torch.is_grad_enabled()
        for block in self.transformer.h:
            # recompute: keep only each block's input, run the block again in backward
            x = torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False) if recompute else block(x)
        x = self.transformer.ln_f(x)
        if targets is None:
            return self._logits(x[:, [-1], :], table), None
        logits = self._logits(x, table)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
        return logits, loss

    def hidden_states(self, idx=None, tok_emb=None):
        """The residual stream of idx (B, T) int64 (or of tok_emb (B, T, n_embd)): n_layer + 2
        tensors (B, T, n_embd) float32 (also under bf16 autocast: the residual sum promotes),
        [input (token + position), after each block, after ln_f]; lm_head of the last gives the
        logits in every arm. Read by eval/neighbors.py, eval/robustness.py and eval/hellaswag.py."""
        x = self._input(idx, tok_emb)
        states = [x]
        for block in self.transformer.h:
            x = block(x)
            states.append(x)
        states.append(self.transformer.ln_f(x))
        return states

    # --------------------------------------------------------------------- accounting

    def param_counts(self):
        """Trainable parameters by part; the parts sum to `total` (a tied head adds nothing: the
        bpe head is the table's parameter, kronecker_tied's has none)."""
        input_params = list(self.transformer.wte.parameters())
        input_side = sum(p.numel() for p in input_params)
        output_head = sum(p.numel() for p in self.lm_head.parameters() if not any(p is q for q in input_params))
        position = self.transformer.wpe.weight.numel()
        total = sum(p.numel() for p in self.parameters())  # shared tensors are counted once
        return dict(total=total, input_trainable=input_side, output_head=output_head, position=position,
                    body=total - input_side - output_head - position)

    @torch.no_grad()
    def embedding_norms(self):
        """Norms for the norm-drift analysis, over the real vocabulary (ids < 50257).

        emb_row_norm: mean L2 norm of the learned input matrix's rows (learned_matrix: table
        rows, the factorised table's rows of length r, trigram_hash's bucket rows, or for
        Kronecker the projection's rows of length D, about 1.0 at init); emb_token_norm: mean L2
        norm of the produced token embeddings (input_table, wte_scale included); emb_fro_norm:
        Frobenius norm of that learned matrix.
        """
        n_real = min(self.config.vocab_size, GPT2_VOCAB)
        matrix = self.transformer.wte.learned_matrix(n_real).float()
        token_norm = self.input_table()[:n_real].float().norm(dim=1).mean()
        return dict(emb_row_norm=matrix.norm(dim=1).mean().item(), emb_token_norm=token_norm.item(),
                    emb_fro_norm=matrix.norm().item())

    # --------------------------------------------------------------------- training helpers

    def configure_optimizers(self, weight_decay, learning_rate, betas, device_type):
        """AdamW, fused on CUDA; groups[0] decays by weight_decay, groups[1] does not.

        Decayed: the 2-D weights (matrices and tables, build-nanogpt's rule; each tensor once, so
        a tied table once), except the Kronecker projection (W, and the mlp's second Linear) when
        config.projection_weight_decay is False (the paper's "projection norm stays near 1.0"
        depends on it; the paper does not say whether W was decayed). Tables are always decayed
        (train_config refuses projection_weight_decay=False for them).
        """
        params = [p for p in self.parameters() if p.requires_grad]
        exempt = list(self.transformer.wte.parameters()) \
            if self.config.kronecker and not self.config.projection_weight_decay else []
        decays = [p.dim() >= 2 and not any(p is q for q in exempt) for p in params]
        groups = [dict(params=[p for p, d in zip(params, decays) if d], weight_decay=weight_decay),
                  dict(params=[p for p, d in zip(params, decays) if not d], weight_decay=0.0)]
        fused = device_type == "cuda" and "fused" in inspect.signature(torch.optim.AdamW).parameters
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, **(dict(fused=True) if fused else {}))

    def flops_per_token(self):
        """Training FLOPs per token (PaLM appendix B): 6 N + 12 L T d, N = body + output matmul.

        The output matmul (V d) counts in every arm, tied or not (kronecker_tied's head has no
        parameter but does the matmul). The input side is a lookup (or a gather-sum, or a per-V
        sparse product) in every arm, so it is left out; this keeps MFU comparable across arms
        (docs/performance.md states what the input sides cost).
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
        fields = {k: v for k, v in checkpoint["model_config"].items() if k not in REMOVED_FIELDS}
        try:
            config = GPTConfig(**fields)
        except (TypeError, UserError) as err:  # a field or an arm (embedding) of another version
            raise UserError(f"checkpoint model_config does not fit this model.py ({err}); "
                            f"load it with the code (branch or commit) that trained it")
        placeholder_bytes = [b""] * config.vocab_size  # the real byte table or trigrams come from the state dict
        model = cls(config, token_bytes=placeholder_bytes)
        try:
            model.load_state_dict(checkpoint["model"])
        except RuntimeError as err:
            first = " ".join(line.strip() for line in str(err).splitlines()[:2])  # the heading and the first error
            raise UserError(f"checkpoint weights do not match its model_config: {first}")
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
