"""Full training steps (forward, backward, AdamW step) of each embedding arm, side by side.

Builds one GPT per arm with the same config and the same batches of real text, then times
optimiser steps in alternation (A B C A B C ...), so that load on the machine hits every arm
alike. Reports each arm's median step time, tokens/s and ratio to `bpe` (tied), and with
--compile (fullgraph=True: a graph break is an error) the graphs compiled in the warm-up steps
and the recompiles during the timed steps. On CUDA: bf16 autocast, torch.compile and MFU from
GPT.estimate_mfu against the device's peak (devices.PEAK_BF16_FLOPS) by default.

Presets: tiny (tests), cpu (2 layers, width 128, 8 x 128 tokens) and 124m (GPT-2 124M, 16 x 1024
tokens per step; a GPU run).

    python scripts/bench_train.py --preset cpu --steps 20                      # CPU, eager
    python scripts/bench_train.py --preset 124m --batch-size 64 --json out.json   # GPU
    python scripts/bench_train.py --preset 124m --tokens-file data/gpu_check/train_000001.bin
"""
import argparse
import math
import statistics

# bench_common first: it puts the repo root on sys.path
from bench_common import hardware, timed, token_ids

import torch
from torch._dynamo.utils import counters

from atomic import atomic_write_json
from devices import DTYPES, autocast_context, device_type, peak_flops, resolve_device, resolve_dtype
from errors import UserError, run_main
from model import EMBEDDINGS, KRONECKER_MODES, GPT, GPTConfig

PRESETS = {
    "tiny": dict(n_layer=1, n_head=2, n_embd=32, block_size=32, batch_size=2),
    "cpu": dict(n_layer=2, n_head=4, n_embd=128, block_size=128, batch_size=8),
    "124m": dict(n_layer=12, n_head=12, n_embd=768, block_size=1024, batch_size=16),
}


def batches(ids, batch_size, block_size, n):
    """n (x, y) pairs of consecutive (batch_size, block_size) windows of the token stream."""
    per_batch = batch_size * block_size
    out = []
    for i in range(n):
        start = (i * per_batch) % (len(ids) - per_batch)  # wraps round a short token file
        chunk = ids[start:start + per_batch + 1]
        out.append((chunk[:-1].view(batch_size, block_size), chunk[1:].view(batch_size, block_size)))
    return out


class Arm:
    """One model with its optimiser; `step(x, y)` is one training step, returning the loss."""

    def __init__(self, embedding, config, args):
        torch.manual_seed(0)
        self.name = embedding
        self.raw = GPT(GPTConfig(**config, embedding=embedding, kronecker_mode=args.kronecker_mode))
        self.raw.to(args.device)
        self.optimizer = self.raw.configure_optimizers(0.1, 6e-4, (0.9, 0.95), device_type(args.device))
        self.model = torch.compile(self.raw, backend=args.compile_backend, fullgraph=True) \
            if args.compile else self.raw
        self.autocast = autocast_context(args.device, args.dtype)
        self.times, self.losses, self.warmup_graphs, self.new_graphs = [], [], 0, 0

    def step(self, x, y):
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast:
            _, loss = self.model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.raw.parameters(), 1.0)
        self.optimizer.step()
        return loss


def run(args):
    config = {k: v for k, v in PRESETS[args.preset].items() if k != "batch_size"}
    B, T = args.batch_size or PRESETS[args.preset]["batch_size"], config["block_size"]
    ids = token_ids(B * T * (args.warmup + args.steps) + 1, args.tokens_file, minimum=B * T + 1)
    data = [(x.to(args.device), y.to(args.device)) for x, y in batches(ids, B, T, args.warmup + args.steps)]
    arms = [Arm(e, config, args) for e in args.arms]
    for i, (x, y) in enumerate(data):
        for arm in arms:
            before = counters["stats"]["unique_graphs"]
            loss = []
            dt = timed(lambda: loss.append(arm.step(x, y).item()), args.device)
            new = counters["stats"]["unique_graphs"] - before
            if i >= args.warmup:
                arm.times.append(dt)
                arm.new_graphs += new
            else:
                arm.warmup_graphs += new
            arm.losses.append(loss[0])
    return arms, B, T


def report(arms, B, T, args):
    base = statistics.median(next(a for a in arms if a.name == "bpe").times) if "bpe" in args.arms else None
    rows = []
    for arm in arms:
        t = statistics.median(arm.times)
        row = dict(arm=arm.name, step_ms=1000 * t, tokens_per_s=B * T / t, vs_bpe=t / base if base else None,
                   first_loss=arm.losses[0], last_loss=arm.losses[-1],
                   param_counts=arm.raw.param_counts())
        if args.peak_flops:
            row["mfu"] = arm.raw.estimate_mfu(B, t, args.peak_flops)
        if args.compile:  # fullgraph=True: any graph break would have raised
            row.update(graphs=arm.warmup_graphs, graph_breaks=0, recompiles_during_timed_steps=arm.new_graphs)
        if not all(math.isfinite(l) for l in arm.losses):
            raise UserError(f"arm {arm.name}: non-finite loss {arm.losses}; lower the learning rate")
        rows.append(row)
    return rows


def print_table(rows, B, T, args):
    print(f"\n{args.preset}: {B} x {T} tokens per step, {args.dtype}, compile {args.compile}, "
          f"median of {args.steps} steps after {args.warmup} warm-up, arms alternated")
    print(f"{'arm':11s} {'step ms':>9s} {'tokens/s':>10s} {'vs bpe':>7s} {'mfu':>6s} {'graphs':>6s} "
          f"{'breaks':>6s} {'recompiles':>10s}  loss first -> last")
    for r in rows:
        ratio = f"{r['vs_bpe']:.3f}" if r["vs_bpe"] else "-"
        mfu = f"{r['mfu']:.1%}" if "mfu" in r else "-"
        g = [str(r.get(k, "-")) for k in ("graphs", "graph_breaks", "recompiles_during_timed_steps")]
        print(f"{r['arm']:11s} {r['step_ms']:>9.1f} {r['tokens_per_s']:>10,.0f} {ratio:>7s} {mfu:>6s} "
              f"{g[0]:>6s} {g[1]:>6s} {g[2]:>10s}  {r['first_loss']:.3f} -> {r['last_loss']:.3f}")


def get_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda")
    p.add_argument("--preset", default="cpu", choices=list(PRESETS))
    p.add_argument("--batch-size", type=int, help="sequences per step (default: the preset's)")
    p.add_argument("--arms", nargs="+", default=["bpe", "bpe_untied", "kronecker"], choices=EMBEDDINGS,
                   help="default: all but kronecker_shuffled, which computes exactly what kronecker does")
    p.add_argument("--kronecker-mode", default="sparse", choices=KRONECKER_MODES)
    p.add_argument("--steps", type=int, default=20, help="timed steps per arm (median reported)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per arm first (compilation)")
    p.add_argument("--compile", choices=("auto", "true", "false"), default="auto", help="auto: on CUDA")
    p.add_argument("--compile-backend", default="inductor", help="e.g. aot_eager: traces without codegen")
    p.add_argument("--dtype", choices=DTYPES, default="auto", help="auto: bf16 on CUDA")
    p.add_argument("--peak-flops", type=float, help="device peak FLOP/s for MFU (default: the CUDA device's "
                   "dense bf16 peak from devices.PEAK_BF16_FLOPS; none on CPU)")
    p.add_argument("--tokens-file", help=".bin shard or .npy of token ids (default: tokenise the FineWeb sample)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's, one per core)")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    args.device = resolve_device(args.device)
    cuda = args.device.startswith("cuda")
    args.compile = cuda if args.compile == "auto" else args.compile == "true"
    args.dtype = resolve_dtype(args.dtype, args.device)
    args.peak_flops = args.peak_flops or peak_flops(args.device)
    return args


def main(argv=None):
    args = get_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda"):
        torch.set_float32_matmul_precision("high")
    arms, B, T = run(args)
    rows = report(arms, B, T, args)
    print(f"device: {hardware(args.device)}")
    print_table(rows, B, T, args)
    if args.json:
        atomic_write_json(args.json, dict(hardware=hardware(args.device), device=args.device, preset=args.preset,
                                   batch_size=B, block_size=T, dtype=args.dtype, compile=args.compile,
                                   steps=args.steps, warmup=args.warmup, peak_flops=args.peak_flops, rows=rows))
    return rows


if __name__ == "__main__":
    run_main(main)
