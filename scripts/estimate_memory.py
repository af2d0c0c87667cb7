"""Peak GPU memory of a training run, per GPU, from a stated formula: no GPU needed.

The model is built on the meta device (parameter counts, no allocation). Per GPU, under DDP with
bf16 autocast as train.py runs it:

  model states, per parameter N (all arms):
    16 B  fp32 weights 4 + gradients 4 + AdamW exp_avg and exp_avg_sq 8
  +  4 B  DDP's gradient buckets (gradient_as_bucket_view is off, the default): world size > 1
  +  2 B  per matmul weight (body + head): autocast's bf16 copies, saved for backward
  activations, per token of the micro-batch (micro_batch_size * block_size tokens):
    per block   36 d + 4 n_head + 16 bytes: ln_1's and ln_2's fp32 inputs (the residual stream)
                8 d, their bf16 outputs fed to c_attn and c_fc 4 d, q k v 6 d, the attention
                output (SDPA's and c_proj's, one tensor) 2 d, c_fc's output and GELU's 16 d, one
                fp32 log-sum-exp per head, LayerNorm statistics; with activation_checkpointing a
                block keeps only its fp32 input (4 d) and one block at a time is rebuilt in backward
    outside     6 d + 16 bytes (ln_f's fp32 input, lm_head's bf16 input, ids, ln_f statistics)
    head        14 V bytes: log_softmax's fp32 output (4 V) kept for backward, plus the loss's
                backward (fp32 gradients of log-probs and logits, 8 V; their bf16 copy, 2 V)
  a head tied to a computed table (kronecker_tied), once per micro-step, not per token:
                8 V d bytes: E in fp32 at the end of the forward and its fp32 gradient (its bf16
                copy for the head matmul is counted with the matmul weights above)
The per-block and outside terms are the tensors eager bf16 autocast saves for backward, counted
on CPU with torch.autograd.graph.saved_tensors_hooks (SDPA's flash kernel, which keeps q, k, v,
the output and a log-sum-exp per head and position, no T x T matrix); the head term is the peak
of new allocations in forward + backward (scripts/bench_common.AllocationTracker).
tests/test_ladder.py re-measures both at toy sizes. torch.compile's partitioner recomputes
pointwise ops instead of saving them and fuses the loss, so a compiled run is assumed to need at
most this much (not measured on a GPU here). Usable memory: USABLE_FRACTION of the card, the rest
left for the CUDA context, NCCL buffers, allocator fragmentation and compile workspace (assumed).

    python scripts/estimate_memory.py config/kronecker_774m.py            # 8 GPUs of 80 GiB
    python scripts/estimate_memory.py config/bpe_1558m.py --micro_batch_size=16 --world-size 8
"""
import argparse
import dataclasses
import functools
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as `python scripts/estimate_memory.py`: import from the repo root
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from errors import UserError, run_main  # noqa: E402
from model import GPT, GPTConfig, TiedHead  # noqa: E402
from train_config import gpt_config, load_config  # noqa: E402

GIB = 2**30
GPU_GIB = 80                  # H100 / A100 80 GB cards hold 80 GiB
USABLE_FRACTION = 0.85        # assumed headroom: CUDA context, NCCL, fragmentation, compile
STATE_BYTES = 4 + 4 + 8       # fp32 weights, gradients, AdamW's two moments
DDP_BUCKET_BYTES = 4          # DDP's fp32 gradient buckets (a second copy of the gradients)
AUTOCAST_COPY_BYTES = 2       # bf16 copies of matmul weights autocast keeps for backward
BLOCK_BYTES_PER_D = 36        # per token per block: ln_1 in 4 + out 2, qkv 6, attention out 2,
                              # ln_2 in 4 + out 2, c_fc out 8, GELU out 8 (fp32 4, bf16 2 per value)
BLOCK_BYTES_PER_HEAD = 4      # the flash kernel's fp32 log-sum-exp
BLOCK_BYTES_FIXED = 16        # ln_1 and ln_2 mean and rstd (fp32)
OUTSIDE_BYTES_PER_D = 6       # ln_f's fp32 input 4 + lm_head's bf16 input 2
OUTSIDE_BYTES_FIXED = 16      # int64 ids 8 + ln_f mean and rstd 8
HEAD_BYTES_PER_V = 14         # log_softmax output 4 saved, backward 4 + 4 + 2
COMPUTED_TABLE_BYTES = 4 + 4  # kronecker_tied: E (V, d) fp32 and its fp32 gradient, per micro-step
CHECKPOINT_BYTES_PER_D = 4    # activation_checkpointing: each block's fp32 input


def meta_model(cfg):
    """GPT(cfg) on the meta device: parameter counts and FLOPs without allocating (or tokenizer:
    the byte table only fills buffers, so empty bytes stand in for it). Cached per model shape:
    the Kronecker arm's byte encoding takes seconds on the meta device."""
    return _meta_model(dataclasses.astuple(gpt_config(cfg)))


@functools.lru_cache(maxsize=None)
def _meta_model(fields):
    config = GPTConfig(*fields)
    with torch.device("meta"):
        return GPT(config, token_bytes=[b""] * config.vocab_size)


def block_bytes_per_token(cfg):
    """Bytes one block saves for backward per token (eager bf16 autocast, SDPA flash)."""
    return BLOCK_BYTES_PER_D * cfg.n_embd + BLOCK_BYTES_PER_HEAD * cfg.n_head + BLOCK_BYTES_FIXED


def activation_bytes_per_token(cfg):
    """Peak activation bytes per token of a micro-batch: blocks, outside them, and the head."""
    block = block_bytes_per_token(cfg)
    if cfg.activation_checkpointing:  # block inputs kept, one block rebuilt at a time
        blocks = cfg.n_layer * CHECKPOINT_BYTES_PER_D * cfg.n_embd + block
    else:
        blocks = cfg.n_layer * block
    outside = OUTSIDE_BYTES_PER_D * cfg.n_embd + OUTSIDE_BYTES_FIXED
    return blocks + outside + HEAD_BYTES_PER_V * cfg.vocab_size


def estimate(cfg, world_size=8, model=None):
    """Estimated peak bytes per GPU: dict(params, states, activations, total, usable, fits).

    cfg: a TrainConfig; world_size: GPUs in the DDP job; model: meta_model(cfg) if given.
    All in bytes; `usable` is USABLE_FRACTION * GPU_GIB GiB.
    """
    model = model or meta_model(cfg)
    counts = model.param_counts()
    n_matmul = counts["body"] + cfg.vocab_size * cfg.n_embd  # as GPT.flops_per_token counts them
    per_param = STATE_BYTES + (DDP_BUCKET_BYTES if world_size > 1 else 0)
    states = per_param * counts["total"] + AUTOCAST_COPY_BYTES * n_matmul
    activations = cfg.micro_batch_size * cfg.block_size * activation_bytes_per_token(cfg)
    if isinstance(model.lm_head, TiedHead):
        activations += COMPUTED_TABLE_BYTES * cfg.vocab_size * cfg.n_embd
    usable = int(USABLE_FRACTION * GPU_GIB * GIB)
    total = states + activations
    return dict(params=counts["total"], states=states, activations=activations, total=total,
                usable=usable, fits=total <= usable)


def micro_batch_choices(cfg, world_size):
    """Micro-batch sizes train.py accepts: powers of two dividing the sequences per GPU per step."""
    per_gpu, rem = divmod(cfg.total_batch_tokens, cfg.block_size * world_size)
    if rem or per_gpu == 0:
        raise UserError(f"total_batch_tokens ({cfg.total_batch_tokens}) is not a multiple of "
                        f"block_size * world_size ({cfg.block_size} * {world_size})")
    return [m for m in (2**k for k in range(per_gpu.bit_length())) if per_gpu % m == 0]


def largest_micro_batch(cfg, world_size=8):
    """The largest micro_batch_size that fits (estimate), or None if even 1 does not."""
    model = meta_model(cfg)
    fitting = [m for m in micro_batch_choices(cfg, world_size)
               if estimate(dataclasses.replace(cfg, micro_batch_size=m), world_size, model)["fits"]]
    return max(fitting, default=None)


def report(cfg, world_size):
    """Lines: the estimate's parts in GiB and the largest micro-batch that fits."""
    est = estimate(cfg, world_size)
    best = largest_micro_batch(cfg, world_size)
    gib = {k: est[k] / GIB for k in ("states", "activations", "total", "usable")}
    return [
        f"{cfg.embedding}: {est['params']:,} parameters, {cfg.n_layer} layers x {cfg.n_embd}, "
        f"V = {cfg.vocab_size:,}, activation_checkpointing {cfg.activation_checkpointing}",
        f"model states {gib['states']:.1f} GiB + activations {gib['activations']:.1f} GiB "
        f"(micro_batch_size {cfg.micro_batch_size} x {cfg.block_size} tokens) = "
        f"{gib['total']:.1f} GiB of {gib['usable']:.1f} usable ({GPU_GIB} GiB x {USABLE_FRACTION}): "
        f"{'fits' if est['fits'] else 'does NOT fit'}",
        f"largest micro_batch_size that fits on {world_size} GPU(s): {best}",
    ]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--world-size", type=int, default=8, help="GPUs in the DDP job (default 8)")
    args, config_args = p.parse_known_args(argv)
    if args.world_size < 1:
        raise UserError(f"--world-size must be at least 1, got {args.world_size}")
    print("\n".join(report(load_config(config_args), args.world_size)))


if __name__ == "__main__":
    sys.exit(run_main(main))
