"""Forward + backward time and memory of the input embedding: nn.Embedding vs Kronecker modes
vs the hashed trigrams.

Times `emb(ids).sum().backward()` (gradients set to None before each call, as in training) for
nn.Embedding(V, d), KroneckerEmbedding in modes vocab, sparse, dense and cached (auto is one
of the first two: embeddings.resolve_kronecker_mode) and TrigramHashEmbedding with 256 * pos_dim
buckets (trigram_hash: its defaults, the Kronecker projection's parameters), on the token ids of real text,
interleaving the modes (A B C D A B C D ...) so that load on the machine hits them alike;
reports the median after warm-up, each mode's ratio to nn.Embedding and vocab's to sparse, and
the 1-minute load average before and after. Memory per mode: parameters, buffers (the Kronecker
byte table and what derives from it: input_table's sparse matrix, sparse's byte columns,
cached's V x D codec table; the trigram incidence and its two sparse matrices), the gradient,
and the peak of new tensors during forward + backward with the largest one (see
AllocationTracker in bench_common.py; on CUDA the peak is torch.cuda.max_memory_allocated above
the memory held before the call) and whether it made a (tokens x D) or (V x D) tensor
("NxD/VxD"; D = 256 * pos_dim is also the trigram arm's bucket count). "same grad": whether two
passes on the same ids give bit-identical gradients (deterministic; CUDA atomics may not be).

Shapes: 124m (V 50,304, d 768, pos_dim 16, 64 x 1024 tokens: the training micro-batch; GPT-2's
byte table), 124m_b8 (the same at 8 x 1024 tokens) and frontier (V 131,072, d 4,096, pos_dim 32,
1 x 1024 tokens; bench_common.token_bytes: GPT-2's byte strings, then random ones of GPT-2's
lengths; the token ids are GPT-2 ids of real text). `cached` is skipped where its V x D float
table would exceed --max-table-gb.

    python scripts/bench_embedding.py                              # both shapes, CUDA if present
    python scripts/bench_embedding.py --device cpu --shapes 124m --modes nn.Embedding vocab sparse --json out.json
    python scripts/bench_embedding.py --tokens-file data/gpu_check/val_000000.bin   # no tiktoken
    python scripts/bench_embedding.py --device cpu --shapes 124m --load 1   # one core held by a spinner

`--load N` starts N processes that each spin on one core for the whole run, to measure how each
mode degrades on a shared node (the spinners are killed when the run ends, also on errors).
"""
import argparse
import dataclasses
import statistics
from dataclasses import dataclass

# bench_common first: it puts the repo root on sys.path
from bench_common import MB, AllocationTracker, busy_cores, hardware, load_average, timed, token_bytes, token_ids

import torch
import torch.nn as nn

from atomic import atomic_write_json
from devices import resolve_device
from embeddings import KRONECKER_MODES, KroneckerEmbedding, TrigramHashEmbedding
from errors import UserError, run_main

MODES = ("nn.Embedding", *(m for m in KRONECKER_MODES if m != "auto"), "trigram_hash")


@dataclass
class Shape:
    vocab: int
    n_embd: int
    pos_dim: int
    batch: int
    seq: int

    @property
    def tokens(self):
        return self.batch * self.seq


SHAPES = {
    "124m": Shape(vocab=50304, n_embd=768, pos_dim=16, batch=64, seq=1024),
    "124m_b8": Shape(vocab=50304, n_embd=768, pos_dim=16, batch=8, seq=1024),
    "frontier": Shape(vocab=131072, n_embd=4096, pos_dim=32, batch=1, seq=1024),
    "tiny": Shape(vocab=50304, n_embd=32, pos_dim=8, batch=2, seq=128),  # tests: seconds
}


def build(mode, shape, table):
    if mode == "nn.Embedding":
        return nn.Embedding(shape.vocab, shape.n_embd)
    if mode == "trigram_hash":
        return TrigramHashEmbedding(table, shape.n_embd, buckets=256 * shape.pos_dim)
    return KroneckerEmbedding(table, shape.n_embd, shape.pos_dim, mode)


def step(module, ids):
    module.zero_grad(set_to_none=True)
    module(ids).sum().backward()


def held_bytes(module):
    """(parameters, buffers) in bytes; buffers include the derived ones (sparse's bags, cached's table)."""
    params = sum(p.numel() * p.element_size() for p in module.parameters())
    buffers = sum(b.numel() * b.element_size() for b in module.buffers())
    return params, buffers


def memory(module, ids, device, shape):
    """Memory figures of one forward + backward (the module already warmed up); `big_matrix`:
    whether it made a (tokens x D) or (V x D) tensor, the reference way's codec."""
    module.zero_grad(set_to_none=True)
    held = [*module.parameters(), *module.buffers(), ids]
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    with AllocationTracker(exclude=held) as tracker:
        module(ids).sum().backward()
    peak = tracker.peak_bytes
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - before
    params, buffers = held_bytes(module)
    grad = sum(p.grad.numel() * p.grad.element_size() for p in module.parameters())
    D = 256 * shape.pos_dim
    big = tracker.made_matrix(shape.tokens, D) or tracker.made_matrix(shape.vocab, D)
    return dict(params_mb=params / MB, buffers_mb=buffers / MB, grad_mb=grad / MB, peak_mb=peak / MB,
                largest_numel=tracker.largest[0], largest_shape=list(tracker.largest[1]), big_matrix=big)


def repeat_identical_grad(module, ids):
    """Whether two forward + backward passes on the same ids give bit-identical gradients (CUDA
    atomics, e.g. an index_add_ backward, sum in an arbitrary order and may not)."""
    grads = []
    for _ in range(2):
        step(module, ids)
        grads.append([p.grad.clone() for p in module.parameters()])
    return all(torch.equal(a, b) for a, b in zip(*grads))


def codec_table_gib(shape):
    """Size of `cached`'s (V, D) float32 codec table."""
    return shape.vocab * 256 * shape.pos_dim * 4 / 2**30


def bench_shape(name, shape, ids, args):
    """Rows of the table for one shape; modes interleaved, `repeats` timed calls each."""
    table = token_bytes(shape.vocab)
    modes = [m for m in args.modes if m != "cached" or codec_table_gib(shape) <= args.max_table_gb]
    skipped = [m for m in args.modes if m not in modes]
    torch.manual_seed(0)
    modules = {m: build(m, shape, table).to(args.device) for m in modes}
    ids = ids.view(shape.batch, shape.seq).to(args.device)
    times = {m: [] for m in modes}
    for r in range(args.warmup + args.repeats):
        for m, module in modules.items():
            dt = timed(lambda: step(module, ids), args.device)
            if r >= args.warmup:
                times[m].append(dt)
    rows = []
    base = statistics.median(times["nn.Embedding"]) if "nn.Embedding" in times else None
    for m, module in modules.items():
        t = statistics.median(times[m])
        rows.append(dict(shape=name, mode=m, ms=1000 * t, vs_embedding=t / base if base else None,
                         repeat_identical_grad=repeat_identical_grad(module, ids),
                         **memory(module, ids, args.device, shape)))
    for m in skipped:
        rows.append(dict(shape=name, mode=m, skipped=f"V x D table {codec_table_gib(shape):.1f} GiB "
                                                      f"> --max-table-gb {args.max_table_gb}"))
    return rows


def ratio(rows, slower, faster):
    """Median time of mode `slower` over mode `faster`, or None if either did not run."""
    t = {r["mode"]: r["ms"] for r in rows if "ms" in r}
    return t[slower] / t[faster] if slower in t and faster in t else None


def print_table(name, shape, rows):
    D = 256 * shape.pos_dim
    print(f"\n{name}: V {shape.vocab:,}, d {shape.n_embd:,}, pos_dim {shape.pos_dim} (D {D:,}), "
          f"{shape.batch} x {shape.seq} tokens; tokens x D = {shape.tokens * D / 1e6:.1f}M, "
          f"V x D = {shape.vocab * D / 1e6:.0f}M entries")
    print(f"{'mode':13s} {'fwd+bwd ms':>10s} {'vs emb':>7s} {'params MB':>9s} {'buffers MB':>10s} "
          f"{'grad MB':>8s} {'peak MB':>8s} {'NxD/VxD':>7s} {'same grad':>9s}  largest new tensor")
    for r in rows:
        if "skipped" in r:
            print(f"{r['mode']:13s} skipped: {r['skipped']}")
            continue
        vs_emb = f"{r['vs_embedding']:.2f}x" if r["vs_embedding"] else "-"
        print(f"{r['mode']:13s} {r['ms']:>10.1f} {vs_emb:>7s} {r['params_mb']:>9.1f} {r['buffers_mb']:>10.2f} "
              f"{r['grad_mb']:>8.1f} {r['peak_mb']:>8.1f} {'yes' if r['big_matrix'] else 'no':>7s} "
              f"{'yes' if r['repeat_identical_grad'] else 'NO':>9s}  "
              f"{r['largest_numel'] / 1e6:.2f}M {tuple(r['largest_shape'])}")
    dense = ratio(rows, "dense", "sparse")
    if dense:
        print(f"sparse is {dense:.1f}x faster than dense")
    vocab = ratio(rows, "vocab", "sparse")
    if vocab:
        print(f"vocab / sparse time: {vocab:.2f}")
    trigram = ratio(rows, "trigram_hash", "vocab")
    if trigram:
        print(f"trigram_hash / vocab time: {trigram:.2f}")


def get_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda")
    p.add_argument("--shapes", nargs="+", default=["124m", "frontier"], choices=list(SHAPES))
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    p.add_argument("--batch", type=int, help="sequences per call, for every shape (default: the "
                   "shape's; 64 x 1024 tokens is the 124M training micro-batch)")
    p.add_argument("--repeats", type=int, default=10, help="timed calls per mode (median reported)")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls per mode first")
    p.add_argument("--tokens-file", help=".bin shard or .npy of token ids (default: tokenise the FineWeb sample)")
    p.add_argument("--max-table-gb", type=float, default=2.0, help="skip `cached` above this V x D table size")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's, one per core)")
    p.add_argument("--load", type=int, default=0, help="processes spinning on a core each during the run")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    if args.load < 0:
        raise UserError(f"--load {args.load}: give a number of busy processes, 0 or more")
    return args


def main(argv=None):
    args = get_args(argv)
    args.device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    shapes = {name: dataclasses.replace(SHAPES[name], batch=args.batch or SHAPES[name].batch) for name in args.shapes}
    ids = token_ids(max(s.tokens for s in shapes.values()), args.tokens_file)
    load_before = load_average()
    print(f"device: {hardware(args.device)}; median of {args.repeats} after {args.warmup} warm-up calls; "
          f"{args.load} other busy process(es); load average before: {load_before}")
    results = []
    with busy_cores(args.load):
        for name, shape in shapes.items():
            rows = bench_shape(name, shape, ids[:shape.tokens], args)
            print_table(name, shape, rows)
            results.append(dict(shape=name, **vars(shape), rows=rows, sparse_vs_dense=ratio(rows, "dense", "sparse"),
                                vocab_vs_sparse=ratio(rows, "vocab", "sparse"),
                                trigram_vs_vocab=ratio(rows, "trigram_hash", "vocab")))
    load_after = load_average()
    print(f"load average after: {load_after}")
    if args.json:
        atomic_write_json(args.json, dict(hardware=hardware(args.device), device=args.device, repeats=args.repeats,
                                   warmup=args.warmup, load=args.load, load_average_before=load_before,
                                   load_average_after=load_after, results=results))
    return results


if __name__ == "__main__":
    run_main(main)
