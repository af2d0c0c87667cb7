"""data/sampler.py: the tokens of a step depend only on the data seed and the step's token count."""
import numpy as np
import pytest
import torch

from data.sampler import TrainBatches
from data.shards import write_shard
from errors import UserError

T = 8


@pytest.fixture
def data_dir(tmp_path):
    tokens = np.arange(1000, dtype=np.uint16)  # token value = its position: easy to trace
    write_shard(tmp_path / "train_000001.bin", tokens[:600])
    write_shard(tmp_path / "train_000002.bin", tokens[600:])
    write_shard(tmp_path / "val_000000.bin", tokens[:100])
    return tmp_path


def step_tokens(batches, step, world_size, micro_batch_size):
    accum = batches.blocks_per_step // (world_size * micro_batch_size)
    xs = [batches.micro_batch(step, m, r, world_size, micro_batch_size)[0]
          for m in range(accum) for r in range(world_size)]
    return sorted(map(tuple, torch.cat(xs).tolist()))


def test_blocks_are_contiguous_windows_with_shifted_targets(data_dir):
    x, y = TrainBatches(data_dir, T, 4 * T, data_seed=0).micro_batch(0, 0, 0, 1, 4)
    assert x.shape == y.shape == (4, T) and x.dtype == torch.int64
    assert torch.equal(y[:, :-1], x[:, 1:])
    assert torch.equal(x[:, 1:] - x[:, :-1], torch.ones(4, T - 1, dtype=torch.int64))
    assert set((x[:, 0] % T).tolist()) == {0}  # blocks start at multiples of T within a shard


def test_a_steps_tokens_do_not_depend_on_world_size_or_micro_batch(data_dir):
    batches = TrainBatches(data_dir, T, 8 * T, data_seed=3)
    for step in (0, 5):
        one = step_tokens(batches, step, world_size=1, micro_batch_size=8)
        assert one == step_tokens(batches, step, world_size=2, micro_batch_size=2)
        assert one == step_tokens(batches, step, world_size=4, micro_batch_size=1)


def test_the_data_seed_shuffles_and_every_block_is_used_once_per_epoch(data_dir):
    a, b = TrainBatches(data_dir, T, 4 * T, 1), TrainBatches(data_dir, T, 4 * T, 2)
    assert a.n_blocks == 599 // T + 399 // T
    epoch = np.concatenate([a.step_blocks(s) for s in range(a.n_blocks // 4)])
    assert len(set(epoch.tolist())) == len(epoch)
    assert not np.array_equal(a.step_blocks(0), b.step_blocks(0))
    assert np.array_equal(a.step_blocks(0), TrainBatches(data_dir, T, 4 * T, 1).step_blocks(0))


def test_too_little_data_and_a_changed_data_state_are_clear_errors(data_dir):
    with pytest.raises(UserError, match="fewer than one step's"):
        TrainBatches(data_dir, T, 1000 * T, 0)
    batches = TrainBatches(data_dir, T, 4 * T, 0)
    with pytest.raises(UserError, match="data_seed=9"):
        batches.check_resume(dict(batches.state(3), data_seed=9), "ckpt.pt")


def test_the_reading_plan_counts_passes_and_max_epochs_refuses_more(data_dir):
    """Issue 21 item 8: a run longer than its data says so before training."""
    batches = TrainBatches(data_dir, T, 4 * T, data_seed=0)  # 123 blocks of 8 tokens, 4 per step
    line, fields = batches.reading_plan(max_steps=37)
    assert fields == dict(train_tokens_read=37 * 32, train_set_tokens=123 * 8, data_passes=148 / 123)
    assert line == ("data: 37 steps x 32 tokens = 1,184 tokens, 1.2 passes over the train set (984 tokens): "
                    "it repeats, in a new order each pass; pass 2 begins after step 30 (max_epochs=1 would "
                    "refuse this)")
    assert [s for s in range(37) if batches.pass_starting(s)] == [30] and batches.pass_starting(30) == 2
    assert batches.reading_plan(max_steps=30)[0].endswith("no token is read twice")
    with pytest.raises(UserError, match=r"^the run reads 37 steps .* 1.2 passes over the train set \(984 "
                                        r"tokens\), more than max_epochs=1; prepare more data"):
        batches.reading_plan(max_steps=37, max_epochs=1)
    assert batches.reading_plan(max_steps=37, max_epochs=1.5)[1]["data_passes"] < 1.5
