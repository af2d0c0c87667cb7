"""Train a GPT-2 with a BPE or Kronecker input embedding, on one process or many (DDP).

    python train.py config/cpu_tiny.py --max_steps=20                         # CPU, one process
    torchrun --standalone --nproc_per_node=8 train.py config/kronecker_124m.py  # one 8-GPU node

Settings: TrainConfig in train_config.py (defaults = build-nanogpt's 124M recipe), then the config
file, then --key=value; `python train.py --help` lists every key with its default and meaning. Logs go to <log_dir>/<run_name>/ (config.json, log.jsonl,
summary.json), checkpoints to <out_dir>/<run_name>/ckpt_<step>.pt (written in the background);
resume="auto" (default) continues from the latest checkpoint, reproducing an uninterrupted run's
losses exactly; --resume=PATH of an older one rewinds (run_folder.py's rules; --allow_change
for changed optimiser settings). SIGTERM or SIGUSR1 (e.g. SLURM preemption) checkpoints the
current step and exits with code 75 (errors.PREEMPTED_EXIT_CODE); rerunning with --resume=auto
resumes. Ctrl-C exits at once.
"""
import dataclasses
import datetime
import gc
import inspect
import math
import os
import socket
import statistics
import subprocess
import sys
import time
import traceback
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.distributed as dist
from torch._dynamo.utils import counters
from torch.nn.parallel import DistributedDataParallel as DDP

from checkpoint import CheckpointWriter, load_checkpoint, to_cpu
from data.sampler import TrainBatches
from data.shards import check_data_dir, data_identity
from devices import autocast_context, device_type, host_to_device, peak_flops, resolve_device, resolve_dtype
from errors import Preempted, UserError, run_main
from model import GPT, GPTConfig
from ranks import StartupSync
from run_folder import RunFolder, RunLog, config_changes, utc_stamp
from stop_signals import StopSignals, signal_name
from tokenizer import get_tokenizer
from train_config import HELP_FLAGS, TrainConfig, allowed_changes, gpt_config, help_text, load_config
from validation import evaluate, load_val_tokens

REPO = Path(__file__).resolve().parent
TOKENIZER_DEFAULTS = {"tokenizer": "gpt2", "token_bytes": "exact"}  # of checkpoints that predate them


@dataclasses.dataclass
class DistContext:
    """This process's place in the run: its rank among world_size processes (local_rank on its
    node) and the device it trains on ("cpu" or "cuda:N")."""
    rank: int
    local_rank: int
    world_size: int
    device: str
    distributed: bool  # a process group and DDP: launched by torchrun, even with one process
    sync: StartupSync  # the ranks' start-up rounds (rank0_decides; ranks.py)

    @property
    def master(self):
        """Rank 0: the one that prints, writes the run's records and checkpoints."""
        return self.rank == 0

    @property
    def device_type(self):
        return device_type(self.device)


def setup_distributed(cfg, sync):
    """Rank, world size and device from torchrun's environment, and the process group of
    cfg.dist_backend (auto: nccl on CUDA, gloo on CPU). Rank r of a node takes cuda:LOCAL_RANK;
    under gloo, ranks beyond the GPU count share GPUs (gpu_check's 2-process phase where NCCL
    refuses 2 ranks on one GPU).
    Under torchrun (WORLD_SIZE set) the process group and DDP are used even for one process, so
    a one-GPU run goes the multi-GPU path (gpu_check's nccl phase). The group is made on sync's
    store, after a round in which every rank says its config and device are good (ranks.py).

    A collective that waits longer than cfg.dist_timeout seconds (a rank that died or hangs)
    stops the run with an error (torch's own default: 10 minutes under NCCL).

    Raises UserError for an explicit cuda:N with several processes, a device devices.resolve_device
    refuses (not cpu or cuda, or CUDA absent), nccl without CUDA, and more ranks per node than GPUs
    under nccl.
    """
    world = int(os.environ.get("WORLD_SIZE", 1))
    rank, local = int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0))
    if world > 1 and cfg.device.startswith("cuda:"):
        raise UserError(f"device={cfg.device} names one GPU but {world} processes run; use --device=cuda "
                        "(each rank takes cuda:LOCAL_RANK; choose GPUs with CUDA_VISIBLE_DEVICES)")
    device = resolve_device(cfg.device)  # "cpu", "cuda" or "cuda:N"
    wants_cuda = device_type(device) == "cuda"
    backend = cfg.dist_backend if cfg.dist_backend != "auto" else "nccl" if wants_cuda else "gloo"
    if backend == "nccl" and not wants_cuda:
        raise UserError("dist_backend=nccl needs CUDA; use --dist_backend=gloo (or auto) on CPU")
    if wants_cuda:
        n_gpus = torch.cuda.device_count()
        # every rank checks the node's process count (not its own local rank), so rank 0, the one
        # that prints user errors, raises this too
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
        if world > 1 and backend == "nccl" and per_node > n_gpus:
            raise UserError(f"{per_node} processes per node but {n_gpus} GPUs visible, and nccl needs "
                            "one per process; lower --nproc_per_node, or --dist_backend=gloo to share GPUs")
        device = device if ":" in device else f"cuda:{local % n_gpus}"
        torch.cuda.set_device(device)
        torch.set_float32_matmul_precision("high")
    distributed = "WORLD_SIZE" in os.environ
    sync.round()  # a rank whose config or device failed says so here, before the group waits for it
    if distributed:  # device_id binds NCCL's communicator to our GPU at once (gloo has no use for it)
        dist.init_process_group(backend=backend, store=sync.store, rank=rank, world_size=world,
                                timeout=datetime.timedelta(seconds=cfg.dist_timeout),
                                device_id=torch.device(device) if backend == "nccl" else None)
    return DistContext(rank, local, world, device, distributed, sync)


def grad_accum_steps(cfg, world_size):
    """Micro-steps per optimiser step: total_batch_tokens / (micro_batch_size * block_size *
    world_size). Raises UserError when that is not a whole number."""
    per_micro_step = cfg.micro_batch_size * cfg.block_size * world_size
    if cfg.total_batch_tokens % per_micro_step:
        raise UserError(f"total_batch_tokens ({cfg.total_batch_tokens}) is not divisible by "
                        f"micro_batch_size * block_size * world_size ({cfg.micro_batch_size} * "
                        f"{cfg.block_size} * {world_size} = {per_micro_step}); change one of them")
    return cfg.total_batch_tokens // per_micro_step


def get_lr(step, cfg):
    """The learning rate of optimiser step `step` (0-based): linear warmup over warmup_steps, then
    cosine decay from max_lr to min_lr at max_steps (build-nanogpt's schedule)."""
    if step < cfg.warmup_steps:
        return cfg.max_lr * (step + 1) / cfg.warmup_steps
    if step >= cfg.max_steps:
        return cfg.min_lr
    ratio = (step - cfg.warmup_steps) / max(cfg.max_steps - cfg.warmup_steps, 1)
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (cfg.max_lr - cfg.min_lr)


def is_checkpoint_step(step, cfg):
    """Whether the state after `step` steps is checkpointed: every ckpt_interval steps (0: never
    on an interval), at max_steps and at each of save_steps."""
    periodic = cfg.ckpt_interval and step % cfg.ckpt_interval == 0
    return bool(periodic) or step == cfg.max_steps or step in cfg.save_steps


def gather(obj, dist_ctx):
    """[obj of rank 0, obj of rank 1, ...] on every rank."""
    if dist_ctx.world_size == 1:
        return [obj]
    out = [None] * dist_ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def rng_states(dist_ctx):
    """The torch CPU and CUDA generator states of every rank (training uses no other RNG)."""
    mine = {"cpu": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state() if dist_ctx.device_type == "cuda" else None}
    return {"per_rank": gather(mine, dist_ctx)}


def restore_rng(rng, dist_ctx, cfg, step):
    """Set this rank's generators to their checkpointed states (rng_states); from a checkpoint of
    another world size, reseed instead (cfg.seed + 1000 * step + rank: only dropout draws)."""
    states = rng["per_rank"]
    if len(states) != dist_ctx.world_size:
        if dist_ctx.master:
            print(f"note: checkpoint has RNG states of {len(states)} ranks, this run has "
                  f"{dist_ctx.world_size}; reseeding (only dropout uses them)")
        torch.manual_seed(cfg.seed + 1000 * step + dist_ctx.rank)
        return
    torch.set_rng_state(states[dist_ctx.rank]["cpu"])
    if dist_ctx.device_type == "cuda" and states[dist_ctx.rank]["cuda"] is not None:
        torch.cuda.set_rng_state(states[dist_ctx.rank]["cuda"])


def rank0_decides(dist_ctx, decide):
    """decide() on rank 0, its result (or its UserError) on every rank: the run folder is
    rank 0's, and a refusal must stop all ranks, not leave them waiting in a collective. One
    start-up round (ranks.py): another rank's error met since the last round is raised here."""
    return dist_ctx.sync.round(decide if dist_ctx.master else None)


def git(*args):
    """git's stdout in the repo, stripped; None without git or outside a repository."""
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
    except OSError:
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def provenance(dist_ctx):
    """Where and with what a run ran, for config.json: code, library and driver versions, host."""
    dirty = git("status", "--porcelain", "--untracked-files=no")
    cuda = dist_ctx.device_type == "cuda"
    return dict(git_commit=git("rev-parse", "HEAD") or None,
                git_dirty=None if dirty is None else bool(dirty),
                torch_version=torch.__version__, cuda_version=torch.version.cuda,
                cudnn_version=torch.backends.cudnn.version() if cuda else None,
                nccl_version=".".join(map(str, torch.cuda.nccl.version())) if cuda else None,
                device_names=gather(torch.cuda.get_device_name(dist_ctx.device) if cuda else "cpu", dist_ctx),
                hostname=socket.gethostname(), slurm_job_id=os.environ.get("SLURM_JOB_ID"))


def no_forward_buffer_sync():
    """DDP's option to skip broadcasting the buffers before every forward: ours (byte table, causal
    mask) are constant and equal on every rank. torch >= 2.13 calls it forward_sync_buffers (and
    deprecates broadcast_buffers); older torch (the GPU image has 2.11) broadcast_buffers."""
    if "forward_sync_buffers" in inspect.signature(DDP).parameters:
        return dict(forward_sync_buffers=False)
    return dict(broadcast_buffers=False)


def compiled_graphs():
    """How many graphs torch.compile has compiled in this process (0 in eager runs)."""
    return counters["stats"]["unique_graphs"]


class DeviceBatches:
    """This rank's training micro-batches on the device, each read one micro-step ahead.

    take(step, micro) is micro-step `micro` of optimiser step `step` as (x, y), int64
    (micro_batch_size, block_size), on CUDA copied from pinned memory without blocking
    (devices.host_to_device). read_ahead(step, micro), called once that micro-step's forward is
    queued, reads the micro-batch after it (the step's next, or the next step's first) while the
    device computes: with one micro-step per step (124M on 8 GPUs) the next step's batch is read
    during this step instead of after its host sync. A batch depends only on (step, micro)
    (data/sampler.py), so one read ahead and never taken (a stop signal) changes nothing.
    """

    def __init__(self, batches, cfg, dist_ctx, grad_accum):
        self.batches, self.cfg, self.dist_ctx, self.grad_accum = batches, cfg, dist_ctx, grad_accum
        self.ahead = None  # ((step, micro), (x, y)) of the micro-batch read ahead

    def _read(self, step, micro):
        x, y = self.batches.micro_batch(step, micro, self.dist_ctx.rank, self.dist_ctx.world_size,
                                        self.cfg.micro_batch_size)
        return host_to_device(x, self.dist_ctx.device), host_to_device(y, self.dist_ctx.device)

    def take(self, step, micro):
        """(x, y) of micro-step `micro` of step `step`: the one read ahead, else read now."""
        ahead, self.ahead = self.ahead, None
        return ahead[1] if ahead is not None and ahead[0] == (step, micro) else self._read(step, micro)

    def read_ahead(self, step, micro):
        """Read the micro-batch after (step, micro), unless that is past max_steps."""
        following = (step, micro + 1) if micro + 1 < self.grad_accum else (step + 1, 0)
        if following[0] < self.cfg.max_steps:
            self.ahead = (following, self._read(*following))


def gradient_groups(raw_model):
    """The trainable parameters by part, for the per-group gradient norms: {"input": the token
    embedding's (the BPE table, or the Kronecker projection W), "head": the output head's own,
    "body": all others (blocks, ln_f, the position table wpe)}, empty parts left out.

    Each tensor is in one group, the first that holds it: a head tied to the input table (bpe;
    kronecker_tied's head has no parameter, its gradient reaches W) counts as "input" (as in
    GPT.param_counts), and the gradient of that one tensor, input and output roles together, is
    in grad_norm_input; such a model has no "head" group.
    """
    seen, groups = set(), {}
    for name, params in (("input", raw_model.transformer.wte.parameters()),
                         ("head", raw_model.lm_head.parameters()), ("body", raw_model.parameters())):
        own = [p for p in params if p.requires_grad and id(p) not in seen]
        seen.update(id(p) for p in own)
        if own:
            groups[name] = own
    return groups


def build_model(cfg, ckpt, ckpt_path):
    """(GPT, its GPTConfig) of the config (seeded by cfg.seed), on the CPU, with the checkpoint's
    weights when resuming. The Kronecker arms' token bytes come from cfg.tokenizer (tokenizer.py,
    mode cfg.token_bytes).

    Raises UserError when the checkpoint holds another model (a model field, the tokenizer or
    token_bytes differ; kronecker_mode may, it computes the same function).
    """
    model_config = gpt_config(cfg)
    if ckpt is not None:
        # mode: same function; fields added after a checkpoint was written take their defaults
        theirs = {**dataclasses.asdict(GPTConfig()), **ckpt["model_config"],
                  "kronecker_mode": cfg.kronecker_mode}
        diff = [f"{k}={theirs.get(k)} vs {v}" for k, v in dataclasses.asdict(model_config).items()
                if theirs.get(k) != v]
        ran = dict(TOKENIZER_DEFAULTS, **ckpt.get("train_config", {}))  # older ones: GPT-2, exact
        diff += [f"{k}={ran[k]} vs {getattr(cfg, k)}" for k in TOKENIZER_DEFAULTS
                 if ran[k] != getattr(cfg, k)]
        if diff:
            raise UserError(f"checkpoint {ckpt_path} has a different model ({', '.join(diff)}); "
                            "use --resume=never or another run_name")
    torch.manual_seed(cfg.seed)
    token_bytes = get_tokenizer(cfg.tokenizer).token_bytes(cfg.vocab_size, cfg.token_bytes) \
        if cfg.reads_token_bytes else None
    model = GPT(model_config, token_bytes)
    model.activation_checkpointing = cfg.activation_checkpointing
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
    return model, model_config


def hellaswag_evaluator(cfg, dist_ctx):
    """In-loop HellaSwag (hellaswag_interval > 0, else None): a function(model, autocast_ctx) ->
    log fields hellaswag_{n, acc, acc_norm, completion_loss, n_cut}, scored as eval/hellaswag.py.

    The data is fetched (by rank 0) and read now, so a missing file that cannot be downloaded
    stops the run before training (UserError), not mid-run. Sharded: rank r scores examples r,
    r + world_size, ... and the counts are summed, so accuracies are the same on any world size.
    """
    if not cfg.hellaswag_interval:
        return None
    from eval import hellaswag  # tqdm and the scorer, loaded only when the in-loop eval is on
    path = rank0_decides(dist_ctx, lambda: str(hellaswag.ensure_data(cfg.hellaswag_dir)))
    mine = hellaswag.load_examples(path)[dist_ctx.rank::dist_ctx.world_size]
    tokenizer = get_tokenizer(cfg.tokenizer)

    def evaluate_hellaswag(model, autocast_ctx):
        part = hellaswag.hellaswag_accuracy(model, mine, dist_ctx.device, autocast_ctx, tokenizer=tokenizer) \
            if mine else dict(n=0)
        return combine_hellaswag(gather(part, dist_ctx))
    return evaluate_hellaswag


def combine_hellaswag(parts):
    """hellaswag_* log fields from per-shard hellaswag_accuracy results (an empty shard: dict(n=0))."""
    parts = [p for p in parts if p["n"]]
    n = sum(p["n"] for p in parts)
    fields = dict(hellaswag_n=n, hellaswag_n_cut=sum(p["n_cut"] for p in parts))
    for key in ("acc", "acc_norm"):  # back to counts, so the sum is exact
        fields[f"hellaswag_{key}"] = sum(round(p[key] * p["n"]) for p in parts) / n
    fields["hellaswag_completion_loss"] = sum(p["completion_loss"] * p["n"] for p in parts) / n
    return fields


def train_step(step, model, raw_model, optimizer, feed, cfg, dist_ctx, grad_accum, autocast_ctx, stop):
    """One optimiser step; returns (mean train loss over the whole step in nats per token, the
    gradient norms before clipping {"grad_norm": all parameters, "grad_norm_<group>": each of
    gradient_groups}, lr, the stop signal any rank has received by now or None).

    The host waits for the device once per step: loss, gradient norms and the ranks' agreed stop
    signal come back in one .tolist() (the all-reduces before it do not block the host). The
    next micro-batch, of this step or the next, is read while the current one computes (feed: a
    DeviceBatches). Under DDP the gradients are all-reduced before the norms, so every rank
    computes the global norms. The update is skipped when the loss or the gradient norm is not
    finite.
    """
    lr = get_lr(step, cfg)
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    loss_sum = torch.zeros((), device=dist_ctx.device)
    for micro in range(grad_accum):
        x, y = feed.take(step, micro)
        if dist_ctx.distributed:  # all-reduce the gradients only on the last micro-step
            model.require_backward_grad_sync = micro == grad_accum - 1
        with autocast_ctx:
            _, loss = model(x, y)
        feed.read_ahead(step, micro)  # the forward is queued: read and copy the next batch meanwhile
        loss = loss / grad_accum
        loss_sum += loss.detach()
        loss.backward()
    stop_flag = torch.full((), float(stop.received or 0), device=dist_ctx.device)  # 0: no signal
    if dist_ctx.distributed:
        dist.all_reduce(loss_sum)
        loss_sum /= dist_ctx.world_size
        dist.all_reduce(stop_flag, op=dist.ReduceOp.MAX)
    groups = gradient_groups(raw_model)
    # clip_grad_norm_ split in two: the total norm from the groups' norms, so each group's is kept
    group_norms = torch.stack([torch.nn.utils.get_total_norm([p.grad for p in params])
                               for params in groups.values()])
    grad_norm = torch.linalg.vector_norm(group_norms)
    torch.nn.utils.clip_grads_with_norm_(raw_model.parameters(), cfg.grad_clip or math.inf, grad_norm)
    train_loss, grad_norm, stop_number, *per_group = \
        torch.cat([torch.stack([loss_sum, grad_norm, stop_flag]), group_norms]).tolist()
    if math.isfinite(train_loss) and math.isfinite(grad_norm):
        optimizer.step()
    norms = dict(grad_norm=grad_norm, **{f"grad_norm_{name}": v for name, v in zip(groups, per_group)})
    return train_loss, norms, lr, signal_name(stop_number)


def speed_figures(steady_dts, raw_model, cfg, grad_accum, peak):
    """Median step time, tokens/s and MFU of this process's steps that compiled nothing (the
    compile steps are marked "compile_step" in the log), for summary.json; {} if there were none."""
    if not steady_dts:
        return {}
    dt = statistics.median(steady_dts)
    return dict(steady_steps=len(steady_dts), step_ms=1000 * dt, tok_per_s=cfg.total_batch_tokens / dt,
                mfu=mfu_of(raw_model, cfg, grad_accum, dt, peak))


def mfu_of(raw_model, cfg, grad_accum, dt, peak):
    """Model FLOPs utilisation of a dt-second optimiser step against peak FLOP/s per device
    (TrainingRun.peak_flops), or None where no peak is known (the CPU, an unlisted GPU)."""
    return raw_model.estimate_mfu(cfg.micro_batch_size * grad_accum, dt, peak) if peak else None


@dataclasses.dataclass
class TrainingRun:
    """One launch of a run as the loop sees it: what start_run() built, and the progress the loop
    advances (step, val_loss, the last checkpoint, the steady step times)."""
    cfg: TrainConfig
    dist_ctx: DistContext
    folder: RunFolder
    log: RunLog
    batches: TrainBatches
    val_tokens: np.ndarray         # the fixed validation set (validation.load_val_tokens)
    hellaswag: Optional[Callable]  # hellaswag_evaluator's function; None when hellaswag_interval is 0
    raw_model: GPT                 # the module itself: weights, checkpoints, norms, HellaSwag
    model_config: GPTConfig
    compiled_model: torch.nn.Module  # raw_model compiled (or raw_model itself): evaluation's forward
    model: torch.nn.Module           # compiled_model, in DDP when distributed: training's forward/backward
    optimizer: torch.optim.Optimizer
    autocast_ctx: AbstractContextManager
    grad_accum: int
    attempt: str                   # the start-from-scratch this launch belongs to (run_folder.py)
    data_identity: dict            # what the data is (data.shards.data_identity), kept in checkpoints
    writer: CheckpointWriter       # rank 0's background checkpoint writer (its last_good: the newest written)
    t_start: float                 # time.time() when this launch started
    wall_before: float = 0.0       # seconds trained by earlier launches (from the checkpoint)
    step: int = 0                  # optimiser steps done
    resumed_step: Optional[int] = None  # the checkpoint's step: its eval is logged, its checkpoint exists
    val_loss: Optional[float] = None    # the last eval's, nats per token
    steady_dts: list = dataclasses.field(default_factory=list)  # seconds of steps that compiled nothing
    peak_flops: Optional[float] = None  # per device, for MFU: cfg's, else the GPU's; None: MFU n/a
    feed: DeviceBatches = dataclasses.field(init=False)  # batches on the device, read ahead

    def __post_init__(self):
        self.feed = DeviceBatches(self.batches, self.cfg, self.dist_ctx, self.grad_accum)

    def wall_time_s(self):
        """Seconds this run has trained, over all its launches."""
        return self.wall_before + time.time() - self.t_start

    def last_good_checkpoint(self):
        """The newest checkpoint written in full (None: none yet), once every rank's wait for the
        write in flight is over: a collective; a failed write raises its UserError on every rank."""
        rank0_decides(self.dist_ctx, self.writer.wait)
        return self.writer.last_good


def checkpoint(run, wait=False):
    """Checkpoint run.step (a collective: every rank calls it): rank 0 flushes the log first (so it
    covers every step up to the checkpoint), copies the state to the CPU (checkpoint.to_cpu) and
    hands it to its background writer, which writes it atomically and then prunes; the ranks
    train on meanwhile (wait=True: until it is written, for stop signals). A failed earlier write
    (e.g. disk full) raises its UserError here, on every rank.

    Raises UserError, writing nothing, when a weight is not finite (a finite loss does not rule
    it out: one huge update can overflow), naming the last good checkpoint.
    """
    cfg, dist_ctx, step = run.cfg, run.dist_ctx, run.step
    run.log.flush()
    if not all(torch.isfinite(p).all() for p in run.raw_model.parameters()):
        last = run.last_good_checkpoint()
        raise UserError(f"the weights became non-finite by step {step} (the loss was still finite); "
                        f"not checkpointing them; the last checkpoint (finite weights) is {last or 'none'}; "
                        + lower_lr_advice(cfg, last))
    rng = rng_states(dist_ctx)

    def hand_over():  # rank 0
        state = to_cpu(dict(
            model=run.raw_model.state_dict(), model_config=dataclasses.asdict(run.model_config),
            train_config=dataclasses.asdict(cfg), step=step, optimizer=run.optimizer.state_dict(),
            data_state=run.batches.state(step), rng=rng, wall_time_s=run.wall_time_s(),
            val_loss=run.val_loss, attempt=run.attempt, data_identity=run.data_identity))
        run.writer.submit(state, run.folder.ckpt_dir, then=lambda path: run.folder.prune(
            run.attempt, cfg.keep_checkpoints, cfg.save_steps, step))
        if wait:
            run.writer.wait()
    rank0_decides(dist_ctx, hand_over)


def lower_lr_advice(cfg, last_checkpoint):
    """The way on after a divergence, as flags that work: half the max_lr (min_lr with it when it
    would exceed it), continued from the last good checkpoint with the change allowed and recorded
    (run_folder.py), or from scratch when there is none."""
    lr = cfg.max_lr / 2
    flags = f"--max_lr={lr:g}" + (f" --min_lr={lr / 10:g}" if cfg.min_lr > lr else "")
    if last_checkpoint is None:
        return f"try a lower learning rate from scratch: {flags} --resume=never"
    keys = ",".join(dict.fromkeys([*allowed_changes(cfg), "max_lr", *(["min_lr"] if "min_lr" in flags else [])]))
    return (f"to continue from it with a lower learning rate, rerun with {flags} --allow_change={keys} "
            f"--resume=auto (the change is recorded in log.jsonl and config.json)")


def release_frames(err):
    """Free what the frames of err's traceback hold (the DDP model, whose reducer holds the process
    group) while the interpreter is fully alive.

    Otherwise a stopped or failed run keeps them until interpreter exit, where freeing the reducer
    destroys a gloo group whose worker thread waits for the GIL that the exiting main thread holds:
    a hang seen on a preempted 2-rank run. The traceback's lines still print.
    """
    traceback.clear_frames(err.__traceback__)
    gc.collect()  # modules sit in reference cycles: free them now, not at exit


def main(argv=None):
    """`python train.py [CONFIG.py] [--key=value ...]` (argv without the program name); -h or
    --help prints every key (train_config.help_text) and returns.

    Raises UserError (run_main prints it, exit 2) for bad settings, data, folders or
    checkpoints, before any training where it can; Preempted after a stop signal's checkpoint.
    """
    argv = sys.argv[1:] if argv is None else argv
    if any(arg in HELP_FLAGS for arg in argv):
        print(help_text())
        return
    sync = StartupSync.from_environment()  # first: any rank's user error reaches rank 0 at once
    try:
        cfg = load_config(argv)
        folder = RunFolder(cfg.log_dir, cfg.out_dir, cfg.run_name)
        with StopSignals() as stop, ExitStack() as on_exit:  # before anything slow: a signal at
            dist_ctx = setup_distributed(cfg, sync)            # start-up still checkpoints
            try:
                train(cfg, dist_ctx, stop, folder, on_exit)
                if dist_ctx.world_size > 1:  # no rank tears gloo down while another still has work in flight
                    dist.barrier()
            except BaseException as err:
                release_frames(err)
                raise
            finally:
                folder.unlock()
                if dist.is_initialized():
                    dist.destroy_process_group()
    except UserError as err:
        sync.announce(err)  # during start-up: the other ranks meet it at their next round
        raise


def train(cfg, dist_ctx, stop, folder, on_exit):
    """The run of main(): start (data, resume, model), the loop, the summary. on_exit (an
    ExitStack) flushes the log however train() ends."""
    run = start_run(cfg, dist_ctx, folder, on_exit)
    if run is None:
        return
    try:
        run_loop(run, stop)
        finish(run)
    finally:  # however the run ends, a checkpoint being written is finished before the folder unlocks
        run.writer.close()


def start_run(cfg, dist_ctx, folder, on_exit):
    """Everything before the first step, cheapest checks first: the folder's lock, the data, the
    resume decision and checkpoint, then the model, optimizer and log. A TrainingRun, or None when
    the run is already finished (nothing to do)."""
    t_start = time.time()
    grad_accum = grad_accum_steps(cfg, dist_ctx.world_size)
    rank0_decides(dist_ctx, folder.lock)  # one process per run; a read-only or full folder stops here
    batches, val_tokens, hellaswag = load_data(cfg, dist_ctx)
    data = data_identity(cfg.data_dir)  # the data by content: a moved or linked folder is the same run
    reading, reading_fields = batches.reading_plan(cfg.max_steps, cfg.max_epochs)  # max_epochs refuses here
    start = rank0_decides(dist_ctx, lambda: folder.start(cfg, data))
    if start.nothing_to_do:
        if dist_ctx.master:
            print(f"run {cfg.run_name} is already finished at step {cfg.max_steps} "
                  f"({folder.log_dir / 'summary.json'}); nothing to do. To train it again use "
                  "--resume=never (the old records are kept, moved aside) or another run_name")
        return None
    ckpt = read_resume_checkpoint(cfg, start.checkpoint, batches, folder, data)
    dtype = resolve_dtype(cfg.dtype, dist_ctx.device)
    use_compile = cfg.compile if cfg.compile is not None else dist_ctx.device_type == "cuda"
    peak = cfg.peak_flops or peak_flops(dist_ctx.device)
    raw_model, model_config, optimizer = build_training(cfg, dist_ctx, ckpt, start.checkpoint, folder)
    dist_ctx.sync.close()  # the last round: process-group collectives from here on (ranks.py)
    # fullgraph: a graph break is an error, not a silent slow path (the model compiles whole)
    compiled_model = torch.compile(raw_model, fullgraph=True) if use_compile else raw_model
    model = DDP(compiled_model, device_ids=[torch.device(dist_ctx.device).index]
                if dist_ctx.device_type == "cuda" else None,
                **no_forward_buffer_sync()) if dist_ctx.distributed else compiled_model
    param_counts = raw_model.param_counts()
    change, history = resume_branch(cfg, dist_ctx, folder, ckpt, start.checkpoint)
    run_config = dict(dataclasses.asdict(cfg), **provenance(dist_ctx), world_size=dist_ctx.world_size,
                      grad_accum_steps=grad_accum, param_counts=param_counts,
                      resolved_dtype=dtype, resolved_compile=use_compile, resolved_peak_flops=peak,
                      attempt=start.attempt, data_identity=data, **reading_fields, config_changes=history)
    log = RunLog(folder, cfg, run_config, enabled=dist_ctx.master)
    on_exit.callback(log.flush)  # a crash or Ctrl-C keeps the records logged so far
    writer = CheckpointWriter(last_good=start.checkpoint)
    run = TrainingRun(cfg, dist_ctx, folder, log, batches, val_tokens, hellaswag, raw_model, model_config,
                      compiled_model, model, optimizer, autocast_context(dist_ctx.device, dtype), grad_accum,
                      start.attempt, data, writer, t_start, peak_flops=peak)
    if ckpt is not None:
        run.step = run.resumed_step = ckpt["step"]
        run.wall_before, run.val_loss = ckpt.get("wall_time_s", 0.0), ckpt.get("val_loss")
    if change:
        log.write(change)
        log.flush()
    if dist_ctx.master:
        print(f"run {cfg.run_name}: {cfg.embedding}, world size {dist_ctx.world_size}, grad accum "
              f"{grad_accum}, {dtype}, compile {use_compile}, device {dist_ctx.device}")
        print("parameters: " + ", ".join(f"{k} {v:,}" for k, v in param_counts.items()))
        print(reading)
        print(f"resuming from {start.checkpoint} at step {run.step}" if ckpt else "starting from scratch")
        if change:
            print(f"changed from step {change['step']} on (recorded in log.jsonl and config.json): " +
                  ", ".join(f"{k} {old} -> {new}" for k, (old, new) in change["config_change"].items()) +
                  f"; the next step's lr {change['next_lr'][0]:.3g} -> {change['next_lr'][1]:.3g}")
    return run


def resume_branch(cfg, dist_ctx, folder, ckpt, ckpt_path):
    """Rank 0, after every resume check has passed: what lies past the checkpoint's step moves
    aside (RunFolder.resume_at: a rewind's abandoned future, a crash's lost steps, the old
    summary), and the settings that differ from the checkpoint's under --allow_change become one
    record (run_folder.config_changes) for log.jsonl and config.json: {"step", "tokens",
    "config_change": {key: [old, new]}, "next_lr": [old, new] (the lr of the next step under
    each), "utc"}. Returns (that record or None, the branch's change history for config.json:
    the earlier records of config.json's config_changes, then this one); (None, []) with no
    resume or off rank 0."""
    if ckpt is None:
        return None, []

    def decide():
        step = ckpt["step"]
        folder.resume_at(step, ckpt_path)
        history = folder.change_history(step)
        changed = config_changes(ckpt.get("train_config") or folder.recorded_config() or {}, cfg)
        if not changed:
            return None, history
        old = dataclasses.replace(cfg, **{k: v[0] for k, v in changed.items()})
        change = dict(step=step, tokens=step * cfg.total_batch_tokens, config_change=changed,
                      next_lr=[get_lr(step, old), get_lr(step, cfg)], utc=utc_stamp())
        return change, history + [change]
    change, history = rank0_decides(dist_ctx, decide)
    return (change, history) if dist_ctx.master else (None, [])


def load_data(cfg, dist_ctx):
    """(TrainBatches, the validation tokens, the HellaSwag evaluator or None): data first, so a
    missing or bad shard stops the run (UserError) before any model is built."""
    for note in check_data_dir(cfg.data_dir, cfg.vocab_size, cfg.val_tokens, cfg.block_size,
                               get_tokenizer(cfg.tokenizer).identity()):
        if dist_ctx.master:
            print(note)
    batches = TrainBatches(cfg.data_dir, cfg.block_size, cfg.total_batch_tokens, cfg.data_seed)
    val_tokens = load_val_tokens(cfg.data_dir, cfg.val_tokens)
    return batches, val_tokens, hellaswag_evaluator(cfg, dist_ctx)


def read_resume_checkpoint(cfg, ckpt_path, batches, folder, data):
    """The checkpoint dict to resume from (None: from scratch), after checking that it continues
    this run: the same run (RunFolder.check_same_run: every run-defining key but those of
    allow_change, the data by content), the same data order (TrainBatches.check_resume), a step
    within max_steps. Raises UserError otherwise."""
    if not ckpt_path:
        return None
    ckpt = load_checkpoint(ckpt_path)
    # a checkpoint of another run is refused as such, before any one key (e.g. the data order)
    recorded = ckpt.get("train_config") and dict(ckpt["train_config"], data_identity=ckpt.get("data_identity"))
    folder.check_same_run(recorded, cfg, f"checkpoint {ckpt_path}", data)
    batches.check_resume(ckpt["data_state"], ckpt_path)
    if ckpt["step"] > cfg.max_steps:
        raise UserError(f"checkpoint {ckpt_path} is at step {ckpt['step']}, past max_steps "
                        f"({cfg.max_steps}); raise max_steps or use --resume=never")
    return ckpt


def build_training(cfg, dist_ctx, ckpt, ckpt_path, folder):
    """(raw_model, model_config, optimizer) on the device, in the state of the checkpoint when
    resuming (weights, AdamW moments, RNG), else freshly seeded. Raises UserError when the
    checkpoint is of another model or the folder lacks space for checkpoints."""
    raw_model, model_config = build_model(cfg, ckpt, ckpt_path)
    raw_model.to(dist_ctx.device)
    # weights + AdamW's two moments, 4 bytes each in float32 checkpoints, plus 10% for the rest
    checkpoint_bytes = int(1.1 * 3 * sum(p.numel() * p.element_size() for p in raw_model.parameters()))
    rank0_decides(dist_ctx, lambda: folder.check_space(checkpoint_bytes, cfg.keep_checkpoints, cfg.save_steps,
                                                       ckpt["step"] if ckpt is not None else 0))
    optimizer = raw_model.configure_optimizers(cfg.weight_decay, cfg.max_lr, (cfg.beta1, cfg.beta2),
                                               dist_ctx.device_type)
    if ckpt is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
        restore_rng(ckpt["rng"], dist_ctx, cfg, ckpt["step"])
    else:
        torch.manual_seed(cfg.seed + dist_ctx.rank)  # per-rank dropout streams
    return raw_model, model_config, optimizer


def run_loop(run, stop):
    """Steps until max_steps: at each step the evaluations and checkpoint due, then one optimiser
    step. A stop signal (agreed by all ranks in the last train_step, or at start-up) checkpoints
    the current step, waits until it is written, and raises Preempted."""
    stop_signal = stop.agreed(run.dist_ctx.device, run.dist_ctx.world_size)  # one during start-up
    while True:
        last = run.step == run.cfg.max_steps
        saved_here = evaluate_and_checkpoint(run, last)
        if last:
            break
        if stop_signal:
            run.log.flush()
            if not saved_here:
                checkpoint(run)
            path = run.last_good_checkpoint()
            # a rerun of a --resume=PATH or --resume=never command would rewind or start over
            how = "rerun the same command" if run.cfg.resume == "auto" else "rerun with --resume=auto"
            raise Preempted(f"stopped by {stop_signal} at step {run.step}; checkpoint {path}; {how} to "
                            "resume" if run.dist_ctx.master else "")
        log_new_pass(run)
        stop_signal = train_and_log(run, stop)


def log_new_pass(run):
    """When the next step starts a new pass over the train set (data/sampler.py), say so: one line
    printed and {"step", "tokens", "data_pass"} in log.jsonl (pass p begins with step + 1)."""
    new_pass = run.batches.pass_starting(run.step)
    if new_pass is None:
        return
    run.log.write(dict(step=run.step, tokens=run.step * run.cfg.total_batch_tokens, data_pass=new_pass))
    if run.dist_ctx.master:
        print(f"step {run.step:6d} | pass {new_pass} over the train set begins (a new order)")


def evaluate_and_checkpoint(run, last):
    """What is due at run.step before training on: the validation loss and HellaSwag at their
    intervals and at the last step, then a checkpoint at checkpoint steps. Returns whether
    run.step is checkpointed; a resumed step already is (its eval logged, its checkpoint loaded)."""
    cfg, step, master = run.cfg, run.step, run.dist_ctx.master
    if step == run.resumed_step:
        return True
    tokens = step * cfg.total_batch_tokens
    if step % cfg.eval_interval == 0 or last:
        run.val_loss = evaluate(run.compiled_model, run.val_tokens, cfg.block_size, cfg.micro_batch_size,
                                run.dist_ctx.device, run.autocast_ctx, run.dist_ctx.rank,
                                run.dist_ctx.world_size)
        run.log.write(dict(step=step, tokens=tokens, val_loss=run.val_loss, **run.raw_model.embedding_norms()))
        run.log.flush()
        if master:
            print(f"step {step:6d} | val loss {run.val_loss:.4f}")
    if run.hellaswag and (step % cfg.hellaswag_interval == 0 or last):
        scores = run.hellaswag(run.raw_model, run.autocast_ctx)
        run.log.write(dict(step=step, tokens=tokens, **scores))
        run.log.flush()
        if master:
            print(f"step {step:6d} | hellaswag acc_norm {scores['hellaswag_acc_norm']:.4f} "
                  f"({scores['hellaswag_n']} examples)")
    if step > 0 and is_checkpoint_step(step, cfg):
        checkpoint(run)
        return True
    return False


def train_and_log(run, stop):
    """One train_step, logged (every step to log.jsonl, printed every log_interval); returns the
    stop signal the ranks agreed on, or None. Raises UserError, without updating, when the loss or
    gradient norm is not finite, naming the last good checkpoint."""
    cfg, step = run.cfg, run.step
    t0, graphs_before = time.time(), compiled_graphs()
    train_loss, grad_norms, lr, stop_signal = train_step(step, run.model, run.raw_model, run.optimizer,
                                                         run.feed, cfg, run.dist_ctx, run.grad_accum,
                                                         run.autocast_ctx, stop)
    grad_norm = grad_norms["grad_norm"]
    if not (math.isfinite(train_loss) and math.isfinite(grad_norm)):
        last = run.last_good_checkpoint()
        raise UserError(f"non-finite training loss {train_loss} (grad norm {grad_norm}) at step "
                        f"{step + 1}; stopped without updating; the last good checkpoint is "
                        f"{last or 'none'}; {lower_lr_advice(cfg, last)}")
    dt = time.time() - t0  # train_step's one sync: this step's compute (and the last update)
    step = run.step = step + 1
    mfu = mfu_of(run.raw_model, cfg, run.grad_accum, dt, run.peak_flops)
    record = dict(step=step, tokens=step * cfg.total_batch_tokens, train_loss=train_loss, lr=lr,
                  **grad_norms, step_ms=1000 * dt, tok_per_s=cfg.total_batch_tokens / dt, mfu=mfu)
    if compiled_graphs() > graphs_before:  # compilation inside the step: not a speed figure
        record["compile_step"] = True
    else:
        run.steady_dts.append(dt)
    run.log.write(record)
    if step % cfg.log_interval == 0:
        run.log.flush()
    if run.dist_ctx.master and (step % cfg.log_interval == 0 or step == 1):
        print(f"step {step:6d} | loss {train_loss:.4f} | lr {lr:.2e} | norm {grad_norm:.3f} | "
              f"{1000 * dt:.0f} ms | {cfg.total_batch_tokens / dt:,.0f} tok/s | "
              f"mfu {'n/a' if mfu is None else f'{mfu:.1%}'}")
    return stop_signal


def finish(run):
    """summary.json (finished: true) with the final loss, tokens, wall time and speed figures, once
    the final checkpoint is written; config_changes (run_folder.py) when settings changed on resume."""
    cfg, step = run.cfg, run.step
    run.last_good_checkpoint()  # a failed final write stops here (one line), before "finished"
    changes = run.folder.change_history(step + 1) if run.dist_ctx.master else []
    run.log.finish(dict(final_step=step, final_val_loss=run.val_loss, tokens=step * cfg.total_batch_tokens,
                        wall_time_s=run.wall_time_s(), finished=True,
                        **speed_figures(run.steady_dts, run.raw_model, cfg, run.grad_accum, run.peak_flops),
                        **({"config_changes": changes} if changes else {})))
    if run.dist_ctx.master:
        print(f"done: step {step}, val loss {run.val_loss:.4f}; logs in {run.log.dir}")


if __name__ == "__main__":
    run_main(main)
