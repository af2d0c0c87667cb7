"""validation.py: the fixed validation set and its loss (the split across ranks: tests/test_train.py)."""
from contextlib import nullcontext

import numpy as np
import pytest
import torch

from data.shards import write_shard
from errors import UserError
from model import GPT, GPTConfig
from validation import evaluate, load_val_tokens


def test_val_set_is_the_first_tokens_of_the_val_shard(tmp_path):
    write_shard(tmp_path / "val_000000.bin", np.arange(50, dtype=np.uint16))
    assert load_val_tokens(tmp_path, 20).tolist() == list(range(21))
    assert len(load_val_tokens(tmp_path, 50)) == 50


def test_a_val_shard_shorter_than_val_tokens_says_a_fix_that_works(tmp_path):
    write_shard(tmp_path / "val_000000.bin", np.arange(39, dtype=np.uint16))
    with pytest.raises(UserError, match=r"holds 39 tokens, fewer than val_tokens=1,000; lower "
                                        r"val_tokens to at most 39 .* --val-tokens 1000"):
        load_val_tokens(tmp_path, 1000)


def test_loss_is_the_token_mean_over_all_sequences_at_any_batch_size():
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=8, vocab_size=64, n_layer=1, n_head=2, n_embd=16))
    tokens = np.random.default_rng(0).integers(0, 64, size=8 * 5 + 3)  # 5 full sequences
    buf = torch.from_numpy(tokens.astype(np.int64))
    with torch.no_grad():
        expected = model(buf[:40].view(5, 8), targets=buf[1:41].view(5, 8))[1].item()
    for batch_size in (1, 2, 5):
        loss = evaluate(model, tokens, 8, batch_size, "cpu", nullcontext())
        assert loss == pytest.approx(expected, rel=1e-6)
    with pytest.raises(UserError, match="shorter than one block"):
        evaluate(model, tokens[:5], 8, 2, "cpu", nullcontext())
