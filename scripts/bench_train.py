"""Full training steps (forward, backward, AdamW step) of each embedding arm, side by side.

Builds one GPT per arm with the same config and the same batches of real text, then times
optimiser steps in alternation (A B C A B C ...), so that load on the machine hits every arm
alike. Reports each arm's median step time, tokens/s, ratio to `bpe` (tied), the bytes its input
side holds, the 1-minute load average before and after, and with
--compile (fullgraph=True: a graph break is an error) the graphs compiled in the warm-up steps
and the recompiles during the timed steps. On CUDA: bf16 autocast, torch.compile, MFU from
GPT.estimate_mfu against the device's peak (devices.PEAK_BF16_FLOPS) and the memory an arm's
step needs on its own (`max_memory_allocated` during its step, less what the other arms hold).

Each of --kronecker-modes is its own Kronecker arm (the modes compute one function; their cost
differs; auto is resolved for the device, embeddings.resolve_kronecker_mode, and run once). Each of --batch-sizes builds the arms afresh (a static graph per size, as train.py
compiles). --profile N runs N more steps per arm under torch.profiler at the first batch size
and reports the top kernels (CUDA kernels on a GPU, aten ops on CPU) and the share of those
whose names are the input side's (INPUT_SIDE: lookups and scatter-adds of the embeddings, the
position table's included), with the full table per arm written to --profile-dir.

Presets: tiny (tests), cpu (2 layers, width 128, 8 x 128 tokens), cpu_mini (config/cpu_mini.py's
model and 32 x 128-token step, for sizing the CPU mini-study), 124m (GPT-2 124M, 16 x 1024
tokens per step; a GPU run) and frontier (the paper's runtime claim at its own vocabulary: V
131,072, pos_dim 32, width 768 as config/kronecker_frontier_124m.py, at 2 layers and 2 x 128
tokens so that it runs on a CPU; the Kronecker byte strings past GPT-2's are random ones of
GPT-2's lengths, bench_common.token_bytes). --n-layer, --vocab-size and --pos-dim change a preset.

    python scripts/bench_train.py --preset cpu --steps 20                      # CPU, eager
    python scripts/bench_train.py --preset cpu_mini --arms bpe bpe_untied bpe_factorized kronecker \
        kronecker_tied kronecker_shuffled trigram_hash --steps 10   # the mini-study's arms, per-step ratios
    python scripts/bench_train.py --preset frontier --arms bpe kronecker --kronecker-modes sparse vocab
    python scripts/bench_train.py --preset 124m --batch-sizes 64 --json out.json   # GPU
    python scripts/bench_train.py --preset 124m --batch-sizes 16 --vocab-size 131072 --pos-dim 32 --arms bpe kronecker
    python scripts/bench_train.py --device cpu --preset 124m --n-layer 2 --batch-sizes 1 \\
        --vocab-size 131072 --pos-dim 32 --arms bpe kronecker     # the frontier shape on CPU, 2 layers
"""
import argparse
import gc
import math
import re
import statistics
from pathlib import Path

# bench_common first: it puts the repo root on sys.path
from bench_common import hardware, load_average, synchronize, timed, token_bytes, token_ids

import torch
from torch._dynamo.utils import counters

from atomic import atomic_write_json, atomic_write_text
from devices import DTYPES, autocast_context, device_type, peak_flops, resolve_device, resolve_dtype
from embeddings import KRONECKER_MODES, resolve_kronecker_mode
from errors import UserError, run_main
from model import EMBEDDINGS, INPUT_KINDS, GPT, GPTConfig

PRESETS = {
    "tiny": dict(n_layer=1, n_head=2, n_embd=32, block_size=32, batch_size=2),
    "cpu": dict(n_layer=2, n_head=4, n_embd=128, block_size=128, batch_size=8),
    "cpu_mini": dict(n_layer=4, n_head=4, n_embd=64, block_size=128, batch_size=32),  # config/cpu_mini.py
    "124m": dict(n_layer=12, n_head=12, n_embd=768, block_size=1024, batch_size=16),
    "frontier": dict(n_layer=2, n_head=12, n_embd=768, block_size=128, batch_size=2, vocab_size=2**17, pos_dim=32),
}
# kernel / op names of the input side: nn.Embedding's lookup and backward (inductor names its
# fused kernels after them), embedding_bag, index_add_ (CUDA: indexFunc*) and the custom op
INPUT_SIDE = re.compile(r"embed|index_add|indexfunc", re.IGNORECASE)
TOP_KERNELS = 15
CONCRETE_MODES = [m for m in KRONECKER_MODES if m != "auto"]  # --kronecker-modes all
GIB = 2**30


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

    def __init__(self, embedding, mode, config, table, args):
        torch.manual_seed(0)
        self.name, self.mode = embedding, mode if INPUT_KINDS[embedding].byte_codec else None
        self.label = f"{embedding}[{mode}]" if self.mode else embedding
        self.raw = GPT(GPTConfig(**config, embedding=embedding, kronecker_mode=mode),
                       table if INPUT_KINDS[embedding].token_bytes else None)
        self.raw.to(args.device)
        self.optimizer = self.raw.configure_optimizers(0.1, 6e-4, (0.9, 0.95), device_type(args.device))
        # dynamic=False: a static graph per batch size, as train.py's one micro-batch shape gets
        self.model = torch.compile(self.raw, backend=args.compile_backend, fullgraph=True, dynamic=False) \
            if args.compile else self.raw
        self.autocast = autocast_context(args.device, args.dtype)
        self.times, self.losses, self.peaks, self.warmup_graphs, self.new_graphs = [], [], [], 0, 0

    def step(self, x, y):
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast:
            _, loss = self.model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.raw.parameters(), 1.0)
        self.optimizer.step()
        return loss

    def input_side_bytes(self):
        """{weights, buffers, training}: bytes of the input layer's weights and buffers (the
        Kronecker byte table and what derives from it), and what training holds for it: weights,
        their gradient and AdamW's two moments (float32, four copies) plus the buffers. For the
        tied bpe arm the table is the output head too."""
        wte = self.raw.transformer.wte
        weights = sum(p.numel() * p.element_size() for p in wte.parameters())
        buffers = sum(b.numel() * b.element_size() for b in wte.buffers())
        return dict(weights=weights, buffers=buffers, training=4 * weights + buffers)

    def resident_bytes(self):
        """Bytes this arm holds between steps: weights, buffers, gradients and AdamW's state."""
        tensors = [*self.raw.parameters(), *self.raw.buffers(),
                   *(p.grad for p in self.raw.parameters() if p.grad is not None),
                   *(v for state in self.optimizer.state.values() for v in state.values() if torch.is_tensor(v))]
        storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
        return sum(storages.values())


def timed_step(arm, x, y, args):
    """(seconds, the bytes the step needs on its own or None off CUDA, loss) of one step. On CUDA
    the peak is max_memory_allocated during the step, less what was allocated before it, plus
    what this arm itself held before it (so the other arms' weights and state are left out)."""
    cuda = args.device.startswith("cuda")
    if cuda:
        synchronize(args.device)
        before, own = torch.cuda.memory_allocated(), arm.resident_bytes()
        torch.cuda.reset_peak_memory_stats()
    loss = []
    dt = timed(lambda: loss.append(arm.step(x, y).item()), args.device)
    peak = torch.cuda.max_memory_allocated() - before + own if cuda else None
    return dt, peak, loss[0]


def run(args, B, config, ids, table):
    """The arms at batch size B, each stepped warmup + steps times in alternation."""
    T = config["block_size"]
    data = [(x.to(args.device), y.to(args.device)) for x, y in batches(ids, B, T, args.warmup + args.steps)]
    arms = [Arm(e, m, config, table, args) for e in args.arms
            for m in (args.kronecker_modes if INPUT_KINDS[e].byte_codec else [GPTConfig.kronecker_mode])]
    for i, (x, y) in enumerate(data):
        for arm in arms:
            before = counters["stats"]["unique_graphs"]
            dt, peak, loss = timed_step(arm, x, y, args)
            new = counters["stats"]["unique_graphs"] - before
            if i >= args.warmup:
                arm.times.append(dt)
                arm.new_graphs += new
                if peak is not None:
                    arm.peaks.append(peak)
            else:
                arm.warmup_graphs += new
            arm.losses.append(loss)
    return arms, data


def profile(arm, data, args, B):
    """The arm's top kernels over len(data) steps under torch.profiler: CUDA kernels on a GPU (by
    self device time), aten ops on CPU (by self CPU time); ms per step and share of the total,
    and the share of the INPUT_SIDE ones. The full table goes to --profile-dir."""
    cuda = args.device.startswith("cuda")
    activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if cuda else [])
    with torch.profiler.profile(activities=activities) as prof:
        for x, y in data:
            arm.step(x, y)
        synchronize(args.device)
    events = prof.key_averages()
    if cuda:  # the kernels themselves: their device time is not also counted under the ops that launched them
        rows = [(e.key, e.self_device_time_total) for e in events if e.device_type == torch.autograd.DeviceType.CUDA]
    else:
        rows = [(e.key, e.self_cpu_time_total) for e in events]
    rows = sorted(((name, us) for name, us in rows if us > 0), key=lambda r: -r[1])
    total = sum(us for _, us in rows) or 1.0
    input_side = [(name, us) for name, us in rows if INPUT_SIDE.search(name)]
    path = None
    if args.profile_dir:
        path = Path(args.profile_dir) / f"profile_{arm.label.replace('[', '_').rstrip(']')}_b{B}.txt"
        atomic_write_text(path, events.table(sort_by="self_device_time_total" if cuda else "self_cpu_time_total",
                                             row_limit=40, max_name_column_width=100))
    per_step = 1e-3 / len(data)  # microseconds in all -> ms per step
    return dict(steps=len(data), timer="cuda kernels" if cuda else "cpu ops", ms_per_step=total * per_step,
                top=[dict(name=name, ms_per_step=us * per_step, share=us / total) for name, us in rows[:TOP_KERNELS]],
                input_side_share=sum(us for _, us in input_side) / total,
                input_side=[dict(name=name, ms_per_step=us * per_step) for name, us in input_side],
                table=str(path) if path else None)


def report(arms, B, T, args):
    base = next((statistics.median(a.times) for a in arms if a.name == "bpe"), None)
    rows = []
    for arm in arms:
        t = statistics.median(arm.times)
        row = dict(arm=arm.name, kronecker_mode=arm.mode, label=arm.label, batch_size=B, step_ms=1000 * t,
                   tokens_per_s=B * T / t, vs_bpe=t / base if base else None,
                   first_loss=arm.losses[0], last_loss=arm.losses[-1], param_counts=arm.raw.param_counts(),
                   input_side_bytes=arm.input_side_bytes(),
                   max_memory_allocated_gib=max(arm.peaks) / GIB if arm.peaks else None)
        if args.peak_flops:
            row["mfu"] = arm.raw.estimate_mfu(B, t, args.peak_flops)
        if args.compile:  # fullgraph=True: any graph break would have raised
            row.update(graphs=arm.warmup_graphs, graph_breaks=0, recompiles_during_timed_steps=arm.new_graphs)
        if not all(math.isfinite(l) for l in arm.losses):
            raise UserError(f"arm {arm.label}: non-finite loss {arm.losses}; lower the learning rate")
        rows.append(row)
    return rows


def print_table(rows, args):
    B, T = rows[0]["batch_size"], args.block_size
    print(f"\n{args.preset}: {B} x {T} tokens per step, {args.dtype}, compile {args.compile}, "
          f"median of {args.steps} steps after {args.warmup} warm-up, arms alternated")
    print(f"{'arm':18s} {'step ms':>9s} {'tokens/s':>10s} {'vs bpe':>7s} {'mfu':>6s} {'GiB':>6s} {'graphs':>6s} "
          f"{'recompiles':>10s} {'input side':>10s}  loss first -> last")
    for r in rows:
        ratio = f"{r['vs_bpe']:.3f}" if r["vs_bpe"] else "-"
        mfu = f"{r['mfu']:.1%}" if "mfu" in r else "-"
        gib = f"{r['max_memory_allocated_gib']:.1f}" if r["max_memory_allocated_gib"] else "-"
        share = f"{r['profile']['input_side_share']:.1%}" if "profile" in r else "-"
        g = [str(r.get(k, "-")) for k in ("graphs", "recompiles_during_timed_steps")]
        print(f"{r['label']:18s} {r['step_ms']:>9.1f} {r['tokens_per_s']:>10,.0f} {ratio:>7s} {mfu:>6s} {gib:>6s} "
              f"{g[0]:>6s} {g[1]:>10s} {share:>10s}  {r['first_loss']:.3f} -> {r['last_loss']:.3f}")


def get_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda")
    p.add_argument("--preset", default="cpu", choices=list(PRESETS))
    p.add_argument("--batch-sizes", "--batch-size", nargs="+", type=int,
                   help="sequences per step, one run per size (default: the preset's)")
    p.add_argument("--n-layer", type=int, help="blocks (default: the preset's)")
    p.add_argument("--vocab-size", type=int, help="vocabulary (default 50,304); 131072 is the frontier shape")
    p.add_argument("--pos-dim", type=int, help="Kronecker byte positions (default: GPTConfig's)")
    p.add_argument("--arms", nargs="+", default=["bpe", "bpe_untied", "kronecker"], choices=EMBEDDINGS,
                   help="default: all but kronecker_shuffled, which computes exactly what kronecker does")
    p.add_argument("--kronecker-modes", "--kronecker-mode", nargs="+", default=[GPTConfig.kronecker_mode],
                   choices=(*KRONECKER_MODES, "all"), help="one Kronecker arm per mode (auto: vocab on CUDA, sparse on CPU); all: every mode")
    p.add_argument("--steps", type=int, default=20, help="timed steps per arm (median reported)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per arm first (compilation)")
    p.add_argument("--profile", type=int, default=0, metavar="N", help="N profiled steps per arm at the first batch size")
    p.add_argument("--profile-dir", help="write each arm's profiler table here")
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
    args.batch_sizes = args.batch_sizes or [PRESETS[args.preset]["batch_size"]]
    modes = CONCRETE_MODES if "all" in args.kronecker_modes else args.kronecker_modes
    # auto is one of the concrete modes on this device: each mode runs once
    args.kronecker_modes = list(dict.fromkeys(resolve_kronecker_mode(m, device_type(args.device)) for m in modes))
    args.block_size = PRESETS[args.preset]["block_size"]
    return args


def model_config(args):
    """The GPTConfig fields of the preset with --n-layer, --vocab-size and --pos-dim applied."""
    config = {k: v for k, v in PRESETS[args.preset].items() if k != "batch_size"}
    for key in ("n_layer", "vocab_size", "pos_dim"):
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    return config


def main(argv=None):
    args = get_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda"):
        torch.set_float32_matmul_precision("high")
    config = model_config(args)
    vocab = config.get("vocab_size", GPTConfig.vocab_size)
    table = token_bytes(vocab) if any(INPUT_KINDS[a].token_bytes for a in args.arms) else None
    T, most = config["block_size"], max(args.batch_sizes)
    ids = token_ids(most * T * (args.warmup + args.steps) + 1, args.tokens_file, minimum=most * T + 1)
    load_before = load_average()
    print(f"device: {hardware(args.device)}; load average before: {load_before}")
    rows = []
    for i, B in enumerate(args.batch_sizes):
        arms, data = run(args, B, config, ids, table)
        size_rows = report(arms, B, T, args)
        if args.profile and i == 0:
            for arm, row in zip(arms, size_rows):
                row["profile"] = profile(arm, data[:args.profile], args, B)
        print_table(size_rows, args)
        rows += size_rows
        del arms, data  # free this size's models before the next is built
        gc.collect()
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
    load_after = load_average()
    print(f"load average after: {load_after}")
    if args.json:
        atomic_write_json(args.json, dict(hardware=hardware(args.device), device=args.device, preset=args.preset,
                                          model_config=config, batch_sizes=args.batch_sizes, block_size=T,
                                          dtype=args.dtype, compile=args.compile, steps=args.steps,
                                          warmup=args.warmup, peak_flops=args.peak_flops,
                                          load_average_before=load_before, load_average_after=load_after,
                                          rows=rows))
    return rows


if __name__ == "__main__":
    run_main(main)
