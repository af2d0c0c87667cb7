"""GPT-2 (nanoGPT style) with a switchable input embedding: BPE table (tied or untied), Kronecker
or hashed byte trigrams.

GPTConfig (the network's settings), GPT (the transformer, its blocks, and the arm dispatch: which
input module config.embedding builds, and whether the head is tied) and sampling. The input
layers themselves (the BPE table, the Kronecker codec and its modes, the shuffled control, the
trigram hash) are in embeddings.py.
"""
import inspect
import math
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn as nn
import torch.utils.checkpoint
from torch.nn import functional as F

from checkpoint import load_checkpoint
from embeddings import (KRONECKER_MODES, MAX_POS_DIM, TRIGRAM_AGGREGATIONS, KroneckerEmbedding, TokenEmbedding,
                        TrigramHashEmbedding, shuffled_byte_sources)
from errors import UserError
from tokenizer import GPT2_VOCAB, gpt2_token_bytes

EMBEDDINGS = ("bpe", "bpe_untied", "kronecker", "kronecker_shuffled", "trigram_hash")
KRONECKER_EMBEDDINGS = ("kronecker", "kronecker_shuffled")  # the byte codec + Linear(D, d), untied head
BYTE_EMBEDDINGS = KRONECKER_EMBEDDINGS + ("trigram_hash",)  # inputs computed from each id's bytes
MAX_SEED = 2**32 - 1  # numpy's legacy seeding and most RNG tools take 32 bits
MAX_TRIGRAM_BUCKETS = 2**24  # bucket ids are int32; 16M rows is far past any table this repo trains


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
    embedding: str = config_field("bpe", "input: a token table, head tied or untied, the byte "
                                         "codec + Linear(D, d), or hashed byte trigrams")
    pos_dim: int = config_field(16, "Kronecker: bytes kept per token (cut UTF-8-safely); "
                                    "D = 256 * pos_dim")
    kronecker_mode: str = config_field("auto", "Kronecker: how W z is computed, the same function "
                                               "(auto: vocab on CUDA, sparse on CPU)")
    wte_init_std: float = config_field(0.02, "BPE arms and trigram_hash: std of the token (bucket) "
                                             "table's init (1.0 = Kronecker's input scale for a BPE table)")
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
        """True for the arms whose input is the byte codec + Linear(D, n_embd)."""
        return self.embedding in KRONECKER_EMBEDDINGS

    @property
    def trigram_rows(self):
        """trigram_hash's bucket count m: trigram_buckets, or 256 * pos_dim, which gives the bucket
        table (m, n_embd) exactly the Kronecker projection's parameters."""
        return self.trigram_buckets or 256 * self.pos_dim

    @property
    def reads_token_bytes(self):
        """True for the arms whose input is computed from each id's bytes (Kronecker, trigram_hash):
        they take token_bytes, keep them in the checkpoint and embed arbitrary bytes (embed_bytes)."""
        return self.embedding in BYTE_EMBEDDINGS

    def __post_init__(self):
        self.check()

    def check(self):
        """Raise UserError for the first value the network cannot be built with."""
        for name, choices in (("embedding", EMBEDDINGS), ("kronecker_mode", KRONECKER_MODES),
                              ("trigram_aggregation", TRIGRAM_AGGREGATIONS)):
            if getattr(self, name) not in choices:
                raise UserError(f"{name}={getattr(self, name)!r} is not one of {', '.join(choices)}")
        for name in ("block_size", "vocab_size", "n_layer", "n_head", "n_embd", "pos_dim", "wte_init_std",
                     "trigram_k"):
            if not getattr(self, name) > 0:
                raise UserError(f"'{name}' must be positive, got {getattr(self, name)}")
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
    a token table (bpe: tied to the head; bpe_untied), KroneckerEmbedding (arXiv 2605.29459:
    the byte codec + Linear(D, n_embd), untied head) or TrigramHashEmbedding (trigram_hash:
    T-FREE's hashed byte trigrams summed over a learned (config.trigram_rows, n_embd) table, untied
    head). The rest of the network is the same in every arm.

    token_bytes: the V = vocab_size byte strings the byte arms read (config.reads_token_bytes;
    index = token id; default GPT-2's, tokenizer.gpt2_token_bytes); ignored by the BPE arms. Raises UserError when
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
        if not config.reads_token_bytes:
            return TokenEmbedding(config.vocab_size, config.n_embd)
        if token_bytes is None:
            token_bytes = gpt2_token_bytes(config.vocab_size)
        if len(token_bytes) != config.vocab_size:
            raise UserError(f"token_bytes has {len(token_bytes)} entries but vocab_size is {config.vocab_size}")
        if config.embedding == "trigram_hash":
            return TrigramHashEmbedding(token_bytes, config.n_embd, config.trigram_rows, config.trigram_k,
                                        config.trigram_lowercase_k, config.trigram_seed, config.trigram_aggregation)
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

    def input_table(self):
        """The effective input table: (vocab_size, n_embd), row i = the input vector of id i, in
        the input layer's dtype (float32 in training): the input module's input_table()
        (embeddings.py). For the table arms it is the table itself; for the Kronecker arms the
        codec + projection of every id as one fixed sparse product (no (V, D) matrix).
        Differentiable; wrap it in torch.no_grad() to read it. One method for every arm: the
        neighbour and cross-model probes and the Hugging Face export read it.
        """
        return self.transformer.wte.input_table()

    def embed_bytes(self, byte_strings):
        """Arms whose input reads bytes only (config.reads_token_bytes): (n, n_embd) embeddings of
        arbitrary byte strings, through the Kronecker codec (cut to pos_dim bytes; for
        kronecker_shuffled these bytes are not the bytes its tokens were trained with) or the
        trigram hash (any length)."""
        if not self.config.reads_token_bytes:
            raise UserError(f"embed_bytes needs an arm whose input reads bytes ({', '.join(BYTE_EMBEDDINGS)}); "
                            f"this model is {self.config.embedding!r}")
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

        emb_row_norm: mean L2 norm of the learned input matrix's rows (table rows, trigram_hash's
        bucket rows; for Kronecker the projection's rows of length D, about 1.0 at init); emb_token_norm: mean L2 norm of
        the produced token embeddings; emb_fro_norm: Frobenius norm of that learned matrix.
        """
        n_real = min(self.config.vocab_size, GPT2_VOCAB)
        wte = self.transformer.wte
        matrix = (wte.projection.weight if self.config.kronecker else wte.weight[:n_real]).float()
        token_norm = self.input_table()[:n_real].float().norm(dim=1).mean()
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
        except TypeError as err:
            raise UserError(f"checkpoint model_config does not fit this model.py: {err}")
        placeholder_bytes = [b""] * config.vocab_size  # the real byte table or trigrams come from the state dict
        model = cls(config, token_bytes=placeholder_bytes if config.reads_token_bytes else None)
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
