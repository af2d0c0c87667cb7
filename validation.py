"""The fixed validation set and its loss, shared by train.py and eval/val_loss.py.

The set is the first val_tokens tokens of the val shard, cut into block_size sequences
(x = tokens[i:i+T], y = tokens[i+1:i+T+1]); sequences are dealt round-robin to the ranks and
the token-loss sums and counts are all-reduced, so the value does not depend on the number
of processes.

    tokens = load_val_tokens("data/fineweb_edu", 10_485_760)
    loss = evaluate(model, tokens, block_size=1024, batch_size=64, device="cuda", autocast_ctx=ctx)
"""
import numpy as np
import torch
import torch.distributed as dist

from data.shards import load_split, val_too_short
from devices import host_to_device
from errors import UserError


def load_val_tokens(data_dir, val_tokens):
    """The first val_tokens + 1 tokens of the val shard (np.ndarray[uint16]; val_tokens if the
    shard holds exactly that many). UserError if the shard holds fewer than val_tokens."""
    shard = load_split(data_dir, "val")[0]
    if len(shard) < val_tokens:
        raise val_too_short(data_dir, len(shard), val_tokens)
    if len(shard) < 2:
        raise UserError(f"the val shard in {data_dir} holds {len(shard)} tokens; prepare more data")
    return np.asarray(shard[:val_tokens + 1])


@torch.no_grad()
def evaluate(model, tokens, block_size, batch_size, device, autocast_ctx, rank=0, world_size=1):
    """Mean next-token cross-entropy, nats per token (a float), over every full block_size sequence
    of tokens (1-D uint16 array, load_val_tokens): batches of batch_size (B, block_size) int64
    sequences go through model(x, targets=y) -> (logits, loss) (GPT.forward) under autocast_ctx.

    With world_size > 1 each rank scores sequences rank, rank + world_size, ... and the float64
    loss sums and token counts are all-reduced: every rank returns the same value, whatever the
    world size. The model is put in eval mode and back. The host waits for the device once, for
    the final value; batches are copied without blocking on CUDA. Raises UserError when tokens
    hold less than one sequence.
    """
    n_seq = (len(tokens) - 1) // block_size
    if n_seq == 0:
        raise UserError(f"the validation set ({len(tokens) - 1} tokens) is shorter than one "
                        f"block of {block_size}; raise val_tokens")
    mine = np.arange(rank, n_seq, world_size)
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    count = torch.zeros((), dtype=torch.float64, device=device)
    for start in range(0, len(mine), batch_size):
        seqs = mine[start:start + batch_size]
        rows = np.stack([tokens[i * block_size:(i + 1) * block_size + 1] for i in seqs])
        x = host_to_device(torch.from_numpy(rows[:, :-1].astype(np.int64)), device)
        y = host_to_device(torch.from_numpy(rows[:, 1:].astype(np.int64)), device)
        with autocast_ctx:
            _, loss = model(x, targets=y)
        loss_sum += loss.double() * y.numel()
        count += y.numel()
    if world_size > 1:
        dist.all_reduce(loss_sum)
        dist.all_reduce(count)
    model.train(was_training)
    return (loss_sum / count).item()
