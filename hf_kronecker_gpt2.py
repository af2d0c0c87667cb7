"""GPT-2 with the Kronecker byte-codec input embedding (arXiv 2605.29459), for Hugging Face
transformers with trust_remote_code=True.

`python export_hf.py --kronecker-native` copies this file into the export folder and points the
folder's config.json at it (auto_map), so that

    AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)

builds this class. It keeps what the trained model keeps: the (V, pos_dim) byte table, the
per-length coefficients and the projection W (n_embd, 256 * pos_dim), instead of the (V, n_embd)
table of the plain export (about 13 MB instead of 154 MB at GPT-2 124M's shapes). Standalone on
purpose (it imports torch and transformers only): a folder on the hub cannot import this repo.

The embedding of a token whose L <= pos_dim bytes are b_1..b_L (kronecker-nanogpt's
model.KroneckerEmbedding in "sparse" mode, the same function as the paper's codec kappa followed
by z-normalisation and W):
    e = a(L) * sum_p W[:, b_p * pos_dim + p] - c(L) * W.sum(1)
with a(L) = `length_scale[L]` and c(L) = `mean_shift[L]`, exported from the trained model, so
this file holds no formula of its own to drift from the training code.
"""
import torch
from torch import nn
from torch.nn import functional as F
from transformers import GPT2Config, GPT2LMHeadModel


class KroneckerGPT2Config(GPT2Config):
    """GPT2Config plus pos_dim, the bytes kept per token (D = 256 * pos_dim codec columns)."""
    model_type = "kronecker_gpt2"

    def __init__(self, pos_dim=16, **kwargs):
        super().__init__(**kwargs)
        self.pos_dim = pos_dim


class KroneckerCodecEmbedding(nn.Module):
    """Token ids (...) int64 -> (..., n_embd) embeddings in the projection's dtype.

    Buffers: byte_table (V, pos_dim) uint8 and byte_lengths (V,) uint8, the bytes of every id
    (padding ids have none and embed to zero); length_scale and mean_shift (pos_dim + 1,), a(L)
    and c(L). Parameter: projection, Linear(256 * pos_dim, n_embd, bias=False).
    """

    def __init__(self, config):
        super().__init__()
        self.pos_dim = config.pos_dim
        self.register_buffer("byte_table", torch.zeros(config.vocab_size, config.pos_dim, dtype=torch.uint8))
        self.register_buffer("byte_lengths", torch.zeros(config.vocab_size, dtype=torch.uint8))
        self.register_buffer("length_scale", torch.zeros(config.pos_dim + 1))
        self.register_buffer("mean_shift", torch.zeros(config.pos_dim + 1))
        self.projection = nn.Linear(256 * config.pos_dim, config.n_embd, bias=False)

    def embed_byte_rows(self, rows, lengths):
        """Embeddings of byte strings given as rows (..., pos_dim) uint8 (zero-padded) and their
        lengths (...) in 0..pos_dim: also of strings that are no token of the vocabulary."""
        W = self.projection.weight
        lengths = lengths.long().reshape(-1)
        positions = torch.arange(self.pos_dim, device=rows.device)
        columns = rows.reshape(-1, self.pos_dim).long() * self.pos_dim + positions  # (N, pos_dim)
        used = positions < lengths.unsqueeze(1)
        weights = (used * self.length_scale[lengths].unsqueeze(1)).to(W.dtype)
        summed = F.embedding_bag(columns, W.t(), per_sample_weights=weights, mode="sum")
        out = summed - self.mean_shift[lengths].unsqueeze(1).to(W.dtype) * W.sum(1)
        return out.view(*rows.shape[:-1], W.shape[0])

    def forward(self, input_ids):
        return self.embed_byte_rows(self.byte_table[input_ids], self.byte_lengths[input_ids])


class KroneckerGPT2LMHeadModel(GPT2LMHeadModel):
    """GPT2LMHeadModel whose transformer.wte is KroneckerCodecEmbedding; the head is untied."""
    config_class = KroneckerGPT2Config
    _tied_weights_keys = {}

    def __init__(self, config):
        super().__init__(config)
        self.transformer.wte = KroneckerCodecEmbedding(config)
        self.post_init()
