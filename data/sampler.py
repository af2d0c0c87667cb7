"""The training token stream: which tokens each optimiser step, rank and micro-step reads.

The train shards are cut into blocks of block_size + 1 tokens (stride block_size, so every
token is a target once); the data seed fixes a permutation of all (shard, block) positions;
optimiser step s takes the next total_batch_tokens / block_size blocks of it. The tokens of a
step therefore depend only on data_seed and total_batch_tokens, never on the world size or
the micro-batch size, and two runs with the same data seed read the identical stream. Rank r
at micro-step m takes the chunk m * world_size + r of its step's blocks. Past the end of the
data a new permutation (seeded by data_seed and the epoch) starts: pass 2 over the train set,
and so on. reading_plan says, before training, how many passes a run reads (and refuses more
than max_epochs); pass_starting says which step starts a new one (train.py logs it).

    batches = TrainBatches("data/fineweb_edu", block_size=1024, total_batch_tokens=2**19, data_seed=1337)
    x, y = batches.micro_batch(step, micro_step, rank, world_size, micro_batch_size)
"""
import numpy as np
import torch

from data.shards import load_split
from errors import UserError


class TrainBatches:
    def __init__(self, data_dir, block_size, total_batch_tokens, data_seed):
        self.shards = load_split(data_dir, "train")
        self.block_size = block_size
        self.data_seed = data_seed
        self.blocks_per_step = total_batch_tokens // block_size
        counts = [(len(shard) - 1) // block_size for shard in self.shards]
        self.first_block = np.cumsum([0] + counts)  # global id of each shard's first block
        self.n_blocks = int(self.first_block[-1])
        if self.n_blocks < self.blocks_per_step:
            raise UserError(f"the train shards in {data_dir} hold {self.n_blocks} blocks of "
                            f"{block_size + 1} tokens, fewer than one step's {self.blocks_per_step}; "
                            "prepare more data or lower total_batch_tokens")
        self._epoch, self._order = None, None

    def order(self, epoch):
        """The permutation of all global block ids used in this pass over the data."""
        if epoch != self._epoch:
            rng = np.random.default_rng([self.data_seed, epoch])
            self._epoch, self._order = epoch, rng.permutation(self.n_blocks)
        return self._order

    def step_blocks(self, step):
        """Global block ids read by optimiser step `step` (0-based), in order."""
        positions = step * self.blocks_per_step + np.arange(self.blocks_per_step)
        epochs, offsets = np.divmod(positions, self.n_blocks)
        return np.array([self.order(e)[o] for e, o in zip(epochs, offsets)])

    def micro_batch(self, step, micro_step, rank, world_size, micro_batch_size):
        """(x, y) int64 tensors of shape (micro_batch_size, block_size); y is x shifted by one."""
        chunk = micro_step * world_size + rank
        ids = self.step_blocks(step)[chunk * micro_batch_size:(chunk + 1) * micro_batch_size]
        assert len(ids) == micro_batch_size, "micro-steps x ranks x micro_batch_size != blocks per step"
        shard_of = np.searchsorted(self.first_block, ids, side="right") - 1
        T = self.block_size
        rows = [self.shards[s][(i - self.first_block[s]) * T:(i - self.first_block[s]) * T + T + 1]
                for s, i in zip(shard_of, ids)]
        buf = torch.from_numpy(np.stack(rows).astype(np.int64))
        return buf[:, :-1].contiguous(), buf[:, 1:].contiguous()

    def passes(self, steps):
        """Passes over the train set that `steps` optimiser steps read (a float; 1.0 = every block once)."""
        return steps * self.blocks_per_step / self.n_blocks

    def pass_starting(self, step):
        """The pass (2, 3, ...) whose first block optimiser step `step` (0-based) reads, or None.
        (Pass p starts at block position (p - 1) * n_blocks of the stream; one step cannot span
        two starts, as a step reads at most n_blocks blocks.)"""
        first = step * self.blocks_per_step
        start = -(-first // self.n_blocks) * self.n_blocks  # the first pass start at or after `first`
        if 0 < start < first + self.blocks_per_step:
            return start // self.n_blocks + 1
        return None

    def reading_plan(self, max_steps, max_epochs=None):
        """(one line for the start of a run, {config.json fields}) on what max_steps steps read:
        train_tokens_read (target tokens: max_steps x total_batch_tokens), train_set_tokens (the
        train set as blocks: n_blocks x block_size) and data_passes (their ratio).

        Raises UserError when that is more than max_epochs passes (None: any number, said in the line).
        """
        tokens, set_tokens = max_steps * self.blocks_per_step * self.block_size, self.n_blocks * self.block_size
        passes = self.passes(max_steps)
        fields = dict(train_tokens_read=tokens, train_set_tokens=set_tokens, data_passes=passes)
        what = (f"{max_steps:,} steps x {self.blocks_per_step * self.block_size:,} tokens = {tokens:,} "
                f"tokens, {passes:.3g} passes over the train set ({set_tokens:,} tokens)")
        if max_epochs is not None and passes > max_epochs:
            raise UserError(f"the run reads {what}, more than max_epochs={max_epochs:g}; prepare more "
                            f"data (data/fineweb_edu.py --train-tokens), lower max_steps, or raise "
                            f"max_epochs")
        if passes <= 1:
            return f"data: {what}: no token is read twice", fields
        return (f"data: {what}: it repeats, in a new order each pass; pass 2 begins after step "
                f"{self.n_blocks // self.blocks_per_step} (max_epochs=1 would refuse this)"), fields

    def state(self, step):
        """What a checkpoint records about the data position after `step` optimiser steps."""
        return {"data_seed": self.data_seed, "n_blocks": self.n_blocks, "block_size": self.block_size,
                "blocks_per_step": self.blocks_per_step, "blocks_consumed": step * self.blocks_per_step}

    def check_resume(self, state, path):
        """Stop if a checkpoint's data state does not match this data and config."""
        mine = self.state(state["blocks_consumed"] // self.blocks_per_step)
        for key in ("data_seed", "n_blocks", "block_size", "blocks_per_step"):
            if state[key] != mine[key]:
                raise UserError(f"checkpoint {path} was trained with {key}={state[key]}, this run has "
                                f"{mine[key]}; resume with the same data and batch, or --resume=never")
