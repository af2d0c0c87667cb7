"""Full training steps (forward, backward, AdamW step) of each embedding arm, side by side.

Builds one GPT per arm (and per Kronecker mode, --kronecker-modes) with the same config and the
same batches of real text, then times optimiser steps in alternation (A B C A B C ...), so that
load on the machine hits every arm alike. Reports each arm's median step time, tokens/s, ratio
to `bpe` (tied) and the memory its input side holds (parameters, gradients, AdamW state,
buffers), the 1-minute load average before and after, and with --compile (fullgraph=True: a
graph break is an error) the graphs compiled in the warm-up steps and the recompiles during the
timed steps. On CUDA: bf16 autocast, torch.compile and MFU from GPT.estimate_mfu against the
device's peak (bench_common.PEAK_BF16_FLOPS) by default.

Presets: tiny (tests), cpu (2 layers, width 128, 8 x 128 tokens), cpu_mini (config/cpu_mini.py's
model and 32 x 128-token step: 4 layers, width 64), 124m (GPT-2 124M, 16 x 1024
tokens per step; a GPU run) and frontier (the paper's runtime claim at its own vocabulary: V
131,072, pos_dim 32, width 768 as config/kronecker_frontier_124m.py, at 2 layers and 2 x 128
tokens so that it runs on a CPU; the Kronecker byte strings past GPT-2's are random ones of
GPT-2's lengths, bench_common.token_bytes).

    python scripts/bench_train.py --preset cpu --steps 20                      # CPU, eager
    python scripts/bench_train.py --preset cpu_mini --arms bpe_untied kronecker trigram_hash --threads 2
    python scripts/bench_train.py --preset frontier --arms bpe kronecker --kronecker-modes sparse vocab
    python scripts/bench_train.py --preset 124m --batch-size 64 --json out.json   # GPU
    python scripts/bench_train.py --preset 124m --tokens-file data/gpu_check/train_000001.bin
"""
import argparse
import math
import statistics

# bench_common first: it puts the repo root on sys.path
from bench_common import MB, hardware, load_average, peak_flops, timed, token_bytes, token_ids

import torch
from torch._dynamo.utils import counters

from atomic import atomic_write_json
from devices import DTYPES, autocast_context, device_type, resolve_device, resolve_dtype
from embeddings import KRONECKER_MODES, resolve_kronecker_mode
from errors import UserError, run_main
from model import EMBEDDINGS, KRONECKER_EMBEDDINGS, GPT, GPTConfig

PRESETS = {
    "tiny": dict(n_layer=1, n_head=2, n_embd=32, block_size=32, batch_size=2),
    "cpu": dict(n_layer=2, n_head=4, n_embd=128, block_size=128, batch_size=8),
    "cpu_mini": dict(n_layer=4, n_head=4, n_embd=64, block_size=128, batch_size=32),  # config/cpu_mini.py
    "124m": dict(n_layer=12, n_head=12, n_embd=768, block_size=1024, batch_size=16),
    "frontier": dict(n_layer=2, n_head=12, n_embd=768, block_size=128, batch_size=2, vocab_size=2**17, pos_dim=32),
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

    def __init__(self, embedding, mode, config, args):
        torch.manual_seed(0)
        self.name, self.mode = embedding, mode
        config = GPTConfig(**config, embedding=embedding, **(dict(kronecker_mode=mode) if mode else {}))
        self.raw = GPT(config, token_bytes=token_bytes(config.vocab_size) if config.reads_token_bytes else None)
        self.raw.to(args.device)
        self.optimizer = self.raw.configure_optimizers(0.1, 6e-4, (0.9, 0.95), device_type(args.device))
        self.model = torch.compile(self.raw, backend=args.compile_backend, fullgraph=True) \
            if args.compile else self.raw
        self.autocast = autocast_context(args.device, args.dtype)
        self.times, self.losses, self.warmup_graphs, self.new_graphs = [], [], 0, 0

    @property
    def label(self):
        """The arm, and for a Kronecker arm the mode it runs, e.g. kronecker/vocab."""
        return f"{self.name}/{self.mode}" if self.mode else self.name

    def input_side_memory(self):
        """MB the input side holds: parameters, their gradients and AdamW state, and buffers (the
        Kronecker byte table and what derives from it). The tied bpe table is the head too."""
        wte = self.raw.transformer.wte
        params = list(wte.parameters())
        states = [t for p in params for t in self.optimizer.state.get(p, {}).values() if torch.is_tensor(t)]
        grads = [p.grad for p in params if p.grad is not None]
        held = dict(params_mb=params, grads_mb=grads, optimizer_mb=states, buffers_mb=list(wte.buffers()))
        held = {k: sum(t.numel() * t.element_size() for t in ts) / MB for k, ts in held.items()}
        return dict(held, total_mb=sum(held.values()))

    def step(self, x, y):
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast:
            _, loss = self.model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.raw.parameters(), 1.0)
        self.optimizer.step()
        return loss


def arm_modes(args):
    """(embedding, mode) of each model: a Kronecker arm once per distinct mode it runs on this
    device (auto resolved), a BPE arm once with mode None."""
    modes = list(dict.fromkeys(resolve_kronecker_mode(m, device_type(args.device)) for m in args.kronecker_modes))
    return [(e, m) for e in args.arms for m in (modes if e in KRONECKER_EMBEDDINGS else [None])]


def run(args):
    config = {k: v for k, v in PRESETS[args.preset].items() if k != "batch_size"}
    B, T = args.batch_size or PRESETS[args.preset]["batch_size"], config["block_size"]
    ids = token_ids(B * T * (args.warmup + args.steps) + 1, args.tokens_file, minimum=B * T + 1)
    data = [(x.to(args.device), y.to(args.device)) for x, y in batches(ids, B, T, args.warmup + args.steps)]
    arms = [Arm(embedding, mode, config, args) for embedding, mode in arm_modes(args)]
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
        row = dict(arm=arm.name, kronecker_mode=arm.mode, label=arm.label, step_ms=1000 * t, tokens_per_s=B * T / t,
                   vs_bpe=t / base if base else None, first_loss=arm.losses[0], last_loss=arm.losses[-1],
                   param_counts=arm.raw.param_counts(), input_side=arm.input_side_memory())
        if args.peak_flops:
            row["mfu"] = arm.raw.estimate_mfu(B, t, args.peak_flops)
        if args.compile:  # fullgraph=True: any graph break would have raised
            row.update(graphs=arm.warmup_graphs, graph_breaks=0, recompiles_during_timed_steps=arm.new_graphs)
        if not all(math.isfinite(l) for l in arm.losses):
            raise UserError(f"arm {arm.label}: non-finite loss {arm.losses}; lower the learning rate")
        rows.append(row)
    return rows


def print_table(rows, B, T, args):
    print(f"\n{args.preset}: {B} x {T} tokens per step, {args.dtype}, compile {args.compile}, "
          f"median of {args.steps} steps after {args.warmup} warm-up, arms alternated")
    print(f"{'arm':17s} {'step ms':>9s} {'tokens/s':>10s} {'vs bpe':>7s} {'mfu':>6s} {'graphs':>6s} "
          f"{'breaks':>6s} {'recompiles':>10s} {'input MB':>9s}  loss first -> last")
    for r in rows:
        ratio = f"{r['vs_bpe']:.3f}" if r["vs_bpe"] else "-"
        mfu = f"{r['mfu']:.1%}" if "mfu" in r else "-"
        g = [str(r.get(k, "-")) for k in ("graphs", "graph_breaks", "recompiles_during_timed_steps")]
        print(f"{r['label']:17s} {r['step_ms']:>9.1f} {r['tokens_per_s']:>10,.0f} {ratio:>7s} {mfu:>6s} "
              f"{g[0]:>6s} {g[1]:>6s} {g[2]:>10s} {r['input_side']['total_mb']:>9.1f}  "
              f"{r['first_loss']:.3f} -> {r['last_loss']:.3f}")


def get_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda")
    p.add_argument("--preset", default="cpu", choices=list(PRESETS))
    p.add_argument("--batch-size", type=int, help="sequences per step (default: the preset's)")
    p.add_argument("--arms", nargs="+", default=["bpe", "bpe_untied", "kronecker"], choices=EMBEDDINGS,
                   help="default: the paper's arms and the untied control (kronecker_shuffled computes "
                        "exactly what kronecker does)")
    p.add_argument("--kronecker-modes", nargs="+", default=["auto"], choices=KRONECKER_MODES,
                   help="one model per mode for each Kronecker arm (auto: vocab on CUDA, sparse on CPU)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per arm (median reported)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per arm first (compilation)")
    p.add_argument("--compile", choices=("auto", "true", "false"), default="auto", help="auto: on CUDA")
    p.add_argument("--compile-backend", default="inductor", help="e.g. aot_eager: traces without codegen")
    p.add_argument("--dtype", choices=DTYPES, default="auto", help="auto: bf16 on CUDA")
    p.add_argument("--peak-flops", type=float, help="device peak FLOP/s for MFU (default: the CUDA device's "
                   "dense bf16 peak from bench_common.PEAK_BF16_FLOPS; none on CPU)")
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
    load_before = load_average()
    arms, B, T = run(args)
    rows = report(arms, B, T, args)
    load_after = load_average()
    print(f"device: {hardware(args.device)}; load average before {load_before}, after {load_after}")
    print_table(rows, B, T, args)
    if args.json:
        atomic_write_json(args.json, dict(hardware=hardware(args.device), device=args.device, preset=args.preset,
                                   model={k: v for k, v in PRESETS[args.preset].items() if k != "batch_size"},
                                   batch_size=B, block_size=T, dtype=args.dtype, compile=args.compile,
                                   steps=args.steps, warmup=args.warmup, peak_flops=args.peak_flops,
                                   load_average_before=load_before, load_average_after=load_after, rows=rows))
    return rows


if __name__ == "__main__":
    run_main(main)
