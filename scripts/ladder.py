"""The GPT-2 size ladder's table: parameters per arm and size, tokens, steps, GPU-hours, memory.

For every config/<arm>_<size>.py (sizes 124m, 350m, 774m, 1558m) and the frontier config it
builds the model on the meta device (no allocation) and reports:
- parameters: input side (the table, the Kronecker projection, or the trigram bucket table of
  256 * pos_dim rows), output head (0 when tied),
  body (blocks + ln_f) and the total (which also holds the 1024 x d position table);
- tokens = max_steps x total_batch_tokens, and the steps;
- GPU-hours = FLOPs / (MFU x peak_flops), FLOPs = GPT.flops_per_token (PaLM appendix B:
  6 N + 12 L T d per token, N = body + V d, the input side left out) x tokens, at an ASSUMED
  MFU of 40% of the H100's 989 TFLOP/s dense bf16 (no GPU has run the ladder); wall-clock hours
  on one 8-GPU node are GPU-hours / 8;
- memory per GPU at the config's micro_batch_size (scripts/estimate_memory.py, 8-GPU DDP);
- where DDP (a full replica of weights, gradients and AdamW state per GPU) stops fitting 80 GB.

    python scripts/ladder.py                      # writes results/ladder.{md,json}
"""
import argparse
import dataclasses
import sys
from pathlib import Path

from estimate_memory import (AUTOCAST_COPY_BYTES, DDP_BUCKET_BYTES, GIB, GPU_GIB, REPO, STATE_BYTES,
                             USABLE_FRACTION, estimate, meta_model)

from errors import run_main  # noqa: E402  (estimate_memory put the repo root on sys.path)
from eval.probe_common import write_report  # noqa: E402
from eval.runs import markdown_table  # noqa: E402
from train_config import load_config  # noqa: E402

SIZES = ("124m", "350m", "774m", "1558m")
ARMS = ("bpe", "bpe_untied", "kronecker", "trigram_hash")  # the paper's two arms, the untied control
# and the hashed-trigram competitor; the other control arms (train_config.ARMS) have the Kronecker or
# untied arm's counts
FRONTIER = "config/kronecker_frontier_124m.py"
MFU = 0.40            # assumed model FLOPs utilisation (not measured: no GPU has run the ladder)
WORLD_SIZE = 8        # one node of 8 H100s
# Shapes past the ladder, for where DDP stops fitting: GPT-3 2.7B and 6.7B (Brown et al. 2020,
# Table 2.1) in this repo's GPT, with activation checkpointing and micro_batch_size 1.
BEYOND = (("GPT-3 2.7B shape", dict(n_layer=32, n_head=32, n_embd=2560)),
          ("GPT-3 6.7B shape", dict(n_layer=32, n_head=32, n_embd=4096)))


def config_paths():
    """[(label, config path, extra --key=value)]: every ladder config, then the frontier's arms."""
    rows = [(f"{size.upper()} {arm}", f"config/{arm}_{size}.py", [])
            for size in SIZES for arm in ARMS]
    rows += [(f"frontier (V 131,072, pos_dim 32) {arm}", FRONTIER, [f"--embedding={arm}"])
             for arm in ARMS]
    return rows


def ladder_row(label, path, extra):
    """One config's numbers (parameters, tokens, steps, FLOPs, GPU-hours, memory)."""
    cfg = load_config([str(REPO / path), *extra])
    model = meta_model(cfg)
    counts = model.param_counts()
    tokens = cfg.max_steps * cfg.total_batch_tokens
    flops = model.flops_per_token() * tokens
    gpu_hours = flops / (MFU * cfg.peak_flops) / 3600
    mem = estimate(cfg, WORLD_SIZE, model)
    return dict(label=label, config=path + "".join(f" {e}" for e in extra), embedding=cfg.embedding,
                n_layer=cfg.n_layer, n_embd=cfg.n_embd, n_head=cfg.n_head, vocab_size=cfg.vocab_size,
                input_side=counts["input_trainable"], head=counts["output_head"], body=counts["body"],
                position=counts["position"], total=counts["total"], tokens=tokens,
                steps=cfg.max_steps, total_batch_tokens=cfg.total_batch_tokens, max_lr=cfg.max_lr,
                warmup_steps=cfg.warmup_steps, flops=flops, gpu_hours=gpu_hours,
                micro_batch_size=cfg.micro_batch_size,
                activation_checkpointing=cfg.activation_checkpointing,
                memory_gib=mem["total"] / GIB, fits=mem["fits"])


def ddp_limit_rows():
    """Past the ladder: DDP's memory per GPU at its smallest (checkpointing, micro-batch 1)."""
    rows = []
    for label, shape in BEYOND:
        cfg = dataclasses.replace(load_config([str(REPO / "config/bpe_1558m.py")]), **shape,
                                  activation_checkpointing=True, micro_batch_size=1)
        mem = estimate(cfg, WORLD_SIZE)
        rows.append(dict(label=label, params=mem["params"], states_gib=mem["states"] / GIB,
                         total_gib=mem["total"] / GIB, fits=mem["fits"]))
    return rows


def ddp_limit_params():
    """Parameters whose DDP model states alone fill the usable memory (weights ~ matmul weights)."""
    per_param = STATE_BYTES + DDP_BUCKET_BYTES + AUTOCAST_COPY_BYTES
    return USABLE_FRACTION * GPU_GIB * GIB / per_param


def millions(n):
    return f"{n / 1e6:,.1f}M"


def report_markdown(rows, beyond):
    usable = USABLE_FRACTION * GPU_GIB
    table = markdown_table(
        ["size, arm", "input side", "head", "body", "total", "tokens", "steps", "max_lr",
         "GPU-hours", "hours on 8 GPUs", "micro-batch", "memory/GPU"],
        [[r["label"], millions(r["input_side"]), millions(r["head"]) if r["head"] else "tied",
          millions(r["body"]), millions(r["total"]), f"{r['tokens'] / 1e9:.2f}B", f"{r['steps']:,}",
          f"{r['max_lr']:g}", f"{r['gpu_hours']:,.1f}", f"{r['gpu_hours'] / WORLD_SIZE:,.2f}",
          str(r["micro_batch_size"]) + (" + ckpt" if r["activation_checkpointing"] else ""),
          f"{r['memory_gib']:.1f} GiB"] for r in rows])
    beyond_table = markdown_table(
        ["model (bpe, tied)", "parameters", "model states", "total at micro-batch 1 + checkpointing",
         f"fits {usable:.0f} GiB"],
        [[b["label"], millions(b["params"]), f"{b['states_gib']:.1f} GiB", f"{b['total_gib']:.1f} GiB",
          "yes" if b["fits"] else "no"] for b in beyond])
    return "\n\n".join([
        "# The GPT-2 size ladder: parameters, tokens, compute, memory",
        "Generated by `python scripts/ladder.py` (meta-device models and arithmetic; no GPU has run "
        "these sizes). Parameters: input side = the (V, d) table, the Kronecker projection "
        "(256 · pos_dim · d) or the trigram bucket table (256 · pos_dim rows × d, as many); head = the untied output matrix (tied: shared with the table); body = "
        "blocks + ln_f; total adds the 1024 × d position table. Tokens = max_steps × "
        "total_batch_tokens (20 per parameter of the tied BPE model, Chinchilla). GPU-hours = "
        "GPT.flops_per_token (6 N + 12 L T d, N = body + V d) × tokens / "
        f"({MFU:.0%} assumed MFU × 989 TFLOP/s H100 bf16 peak); the same for every arm of a size, "
        "since the input side is left out of the FLOPs. Memory/GPU: scripts/estimate_memory.py's "
        f"estimate for {WORLD_SIZE}-GPU DDP at the config's micro-batch (usable: {usable:.0f} of "
        f"{GPU_GIB} GiB). M = 1e6, B = 1e9.",
        table,
        "## Where DDP stops fitting",
        f"DDP keeps a full replica per GPU: {STATE_BYTES + DDP_BUCKET_BYTES + AUTOCAST_COPY_BYTES} "
        f"bytes per parameter ({STATE_BYTES} for fp32 weights, gradients and AdamW's two moments, "
        f"{DDP_BUCKET_BYTES} for DDP's gradient buckets, {AUTOCAST_COPY_BYTES} for autocast's bf16 "
        f"weight copies) before any activation, so the model states alone fill {usable:.0f} GiB at "
        f"about {ddp_limit_params() / 1e9:.1f}B parameters, whatever the micro-batch:",
        beyond_table,
    ])


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(REPO / "results"), help="report folder (default: results)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    rows = [ladder_row(*row) for row in config_paths()]
    beyond = ddp_limit_rows()
    data = dict(mfu_assumed=MFU, world_size=WORLD_SIZE, gpu_gib=GPU_GIB,
                usable_fraction=USABLE_FRACTION, rows=rows, beyond_ddp=beyond,
                ddp_limit_params=ddp_limit_params())
    paths = write_report(args.out, "ladder", data, report_markdown(rows, beyond))
    print(f"wrote {paths[0]} and {paths[1]}")


if __name__ == "__main__":
    sys.exit(run_main(main))
