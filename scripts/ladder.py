"""The GPT-2 size ladder's table: parameters per arm and size, tokens, steps, GPU-hours, memory.

For every config/<arm>_<size>.py (sizes 124m, 350m, 774m, 1558m) and the frontier config it
builds the model on the meta device (no allocation) and reports:
- parameters: input side (the table, the factorised table and its Linear(r, d), the Kronecker
  projection, or the trigram bucket table of 256 * pos_dim rows), output head (0 when tied),
  body (blocks + ln_f) and the total (which also holds the 1024 x d position table);
- tokens = max_steps x total_batch_tokens, and the steps;
- GPU-hours = FLOPs / (MFU x the H100's peak), FLOPs = GPT.flops_per_token (PaLM appendix B:
  6 N + 12 L T d per token, N = body + V d, the input side left out) x tokens, at an ASSUMED
  MFU of 40% of the H100's 989 TFLOP/s dense bf16 (no GPU has run the ladder); wall-clock hours
  on one 8-GPU node are GPU-hours / 8;
- memory per GPU at the config's micro_batch_size (scripts/estimate_memory.py, 8-GPU DDP);
- where DDP (a full replica of weights, gradients and AdamW state per GPU) stops fitting 80 GB;
- checkpoints: their size (fp32 weights + AdamW's two moments, 12 bytes per parameter), the
  write time at ASSUMED shared-file-system speeds, the training time they cost at the default
  ckpt_interval (train.py copies the state to the CPU, then writes in the background), and the
  time a stop signal needs (the step, a background write still in flight, the stop checkpoint)
  against torchrun's 30 s grace, with the `--signal` lead time each size needs.

    python scripts/ladder.py                      # writes results/ladder.{md,json}
"""
import argparse
import dataclasses
import math
import sys

from estimate_memory import (AUTOCAST_COPY_BYTES, DDP_BUCKET_BYTES, GIB, GPU_GIB, REPO, STATE_BYTES,
                             USABLE_FRACTION, estimate, meta_model)

from devices import PEAK_BF16_FLOPS  # noqa: E402  (estimate_memory put the repo root on sys.path)
from errors import run_main  # noqa: E402
from eval.probe_common import write_report  # noqa: E402
from eval.runs import markdown_table  # noqa: E402
from train_config import load_config  # noqa: E402

SIZES = ("124m", "350m", "774m", "1558m")
# the paper's two arms, the untied control, the 2 x 2's other corners: bpe_factorized (a learned
# input of Kronecker's size) and kronecker_tied, and the hashed-trigram competitor; the other
# control arms (train_config.ARMS) have the Kronecker or untied arm's counts
ARMS = ("bpe", "bpe_untied", "bpe_factorized", "kronecker", "kronecker_tied", "trigram_hash")
FRONTIER = "config/kronecker_frontier_124m.py"
MFU = 0.40            # assumed model FLOPs utilisation (not measured: no GPU has run the ladder)
WORLD_SIZE = 8        # one node of 8 H100s
CKPT_BYTES_PER_PARAM = 4 + 8          # fp32 weights and AdamW's exp_avg, exp_avg_sq (no gradients)
WRITE_BYTES_PER_S = (200e6, 1e9)      # ASSUMED shared file system, one client: busy NFS / Lustre
D2H_BYTES_PER_S = 3e9                 # ASSUMED device-to-host copy into pageable memory (blocking part)
TORCHRUN_GRACE_S = 30                 # torchrun's SIGTERM-to-SIGKILL wait for its workers
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
    gpu_hours = flops / (MFU * PEAK_BF16_FLOPS["H100 SXM"]) / 3600
    mem = estimate(cfg, WORLD_SIZE, model)
    return dict(label=label, config=path + "".join(f" {e}" for e in extra), embedding=cfg.embedding,
                n_layer=cfg.n_layer, n_embd=cfg.n_embd, n_head=cfg.n_head, vocab_size=cfg.vocab_size,
                input_side=counts["input_trainable"], head=counts["output_head"], body=counts["body"],
                position=counts["position"], total=counts["total"], tokens=tokens,
                steps=cfg.max_steps, total_batch_tokens=cfg.total_batch_tokens, max_lr=cfg.max_lr,
                warmup_steps=cfg.warmup_steps, flops=flops, gpu_hours=gpu_hours,
                micro_batch_size=cfg.micro_batch_size,
                activation_checkpointing=cfg.activation_checkpointing,
                memory_gib=mem["total"] / GIB, fits=mem["fits"], **checkpoint_costs(cfg, counts, gpu_hours))


def checkpoint_costs(cfg, counts, gpu_hours):
    """A config's checkpoint figures (module docstring): bytes, write seconds at each
    WRITE_BYTES_PER_S, the share of the run's time checkpoints block at the default ckpt_interval
    (one D2H copy each, the final one written in full, at the slower speed), and the stop time and
    --signal lead it needs (lead: 1.5 x the worst stop, rounded up to a minute)."""
    ckpt_bytes = CKPT_BYTES_PER_PARAM * counts["total"]
    step_s = gpu_hours * 3600 / WORLD_SIZE / cfg.max_steps
    writes = [ckpt_bytes / speed for speed in WRITE_BYTES_PER_S]
    n_ckpts = cfg.max_steps // cfg.ckpt_interval
    blocked = n_ckpts * ckpt_bytes / D2H_BYTES_PER_S + writes[0]
    stop_s = step_s + 2 * writes[0]  # a background write in flight, then the stop checkpoint
    return dict(checkpoint_bytes=ckpt_bytes, step_s=step_s, write_s=writes, ckpt_interval=cfg.ckpt_interval,
                checkpoint_share=blocked / (step_s * cfg.max_steps), stop_s=stop_s,
                fits_grace=stop_s <= TORCHRUN_GRACE_S, signal_lead_s=60 * math.ceil(1.5 * stop_s / 60))


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
        "these sizes). Parameters: input side = the (V, d) table, the factorised (V, r) table + "
        "Linear(r, d) (r = round(256 · pos_dim · d / (V + d))), the Kronecker projection "
        "(256 · pos_dim · d) or the trigram bucket table (256 · pos_dim rows × d, as many); head = "
        "the untied output matrix (tied: the input table); body = "
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
        "## Checkpoints and preemption",
        f"A checkpoint holds the fp32 weights and AdamW's two moments ({CKPT_BYTES_PER_PARAM} bytes per "
        f"parameter). train.py copies it to the CPU (assumed {D2H_BYTES_PER_S / 1e9:g} GB/s: the part "
        "that holds training) and writes it in the background while every rank trains on; the final one "
        "is waited for. Write times at ASSUMED shared-file-system speeds of "
        f"{WRITE_BYTES_PER_S[0] / 1e6:g} MB/s and {WRITE_BYTES_PER_S[1] / 1e9:g} GB/s (one client); step time from "
        "the GPU-hours above. \"share\": the training time checkpoints take at the default ckpt_interval "
        f"(copies + the final write at {WRITE_BYTES_PER_S[0] / 1e6:g} MB/s). A stop signal needs, at worst, "
        "the current step, the end of a background write in flight and the stop checkpoint's write; "
        f"torchrun gives its workers {TORCHRUN_GRACE_S} s after SIGTERM (so does SLURM's default "
        "KillWait): where that is too short, send the signal earlier (`#SBATCH --signal=B:USR1@LEAD`, "
        "scripts/sweep.sbatch has 300) by the lead shown (1.5 x the worst stop, rounded up to a minute).",
        markdown_table(
            ["size, arm", "checkpoint", "step", f"write at {WRITE_BYTES_PER_S[0] / 1e6:g} MB/s",
             f"write at {WRITE_BYTES_PER_S[1] / 1e9:g} GB/s", "share (ckpt_interval)", "worst stop",
             f"fits {TORCHRUN_GRACE_S} s", "--signal lead"],
            [[r["label"], f"{r['checkpoint_bytes'] / 1e9:.2f} GB", f"{r['step_s']:.2f} s", f"{r['write_s'][0]:.1f} s",
              f"{r['write_s'][1]:.1f} s", f"{r['checkpoint_share']:.1%} ({r['ckpt_interval']})", f"{r['stop_s']:.0f} s",
              "yes" if r["fits_grace"] else "no", f"{r['signal_lead_s']} s"]
             for r in rows]),
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
