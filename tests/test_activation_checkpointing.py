"""activation_checkpointing: recomputing each block in backward changes memory, not the numbers."""
import pytest
import torch

from model import GPT, GPTConfig


@pytest.mark.parametrize("embedding", ["bpe", "kronecker"])
def test_checkpointed_blocks_give_the_same_loss_and_gradients(embedding):
    config = GPTConfig(block_size=16, vocab_size=256, n_layer=2, n_head=2, n_embd=32, dropout=0.1,
                       embedding=embedding)
    torch.manual_seed(0)
    model = GPT(config, token_bytes=[bytes([i]) for i in range(256)] if embedding == "kronecker" else None)
    x, y = torch.randint(0, 256, (2, 2, 16))
    results = []
    for recompute in (False, True):
        model.activation_checkpointing = recompute
        model.zero_grad()
        torch.manual_seed(1)  # the same dropout masks: checkpoint replays the RNG state
        _, loss = model(x, y)
        loss.backward()
        results.append((loss.item(), [p.grad.clone() for p in model.parameters()]))
    (loss_a, grads_a), (loss_b, grads_b) = results
    assert loss_a == loss_b
    assert all(torch.equal(a, b) for a, b in zip(grads_a, grads_b))
