"""Can two processes on one GPU run a collective? scripts/gpu_check.sh's probe, one process per
rank under torchrun (WORLD_SIZE 2): each takes cuda:LOCAL_RANK (modulo the GPUs: both take cuda:0
on a one-GPU machine; on CPU with gloo, the CPU), joins a process group of --backend, all-reduces
a float32 tensor of --mb MB --repeats times, checks the sum, and writes its result, including any
error's message, to <--json stem>.rank<R>.json: {ok, backend, world_size, device, error,
nccl_version, mb, seconds, algbw_gb_per_s}.

Why two launches in gpu_check.sh: NCCL refuses two ranks of one host on one GPU ("Duplicate GPU
detected", since NCCL 2.5: its topology search assumes one GPU per rank of a host). A host is
what NCCL_HOSTID names (default: the machine's boot id), so two single-process torchrun "nodes"
with their own NCCL_HOSTID are two hosts to NCCL, which then connects them over its socket
transport (NCCL_NET=Socket on lo): a real NCCL all-reduce between two processes, staged through
host memory as between nodes without GPUDirect, so its bandwidth says nothing about NVLink.

    torchrun --standalone --nproc_per_node=2 scripts/gpu_check_nccl.py --backend nccl --json W/plain.json
"""
import argparse
import datetime
import os
import time

import bench_common  # noqa: F401 (first: it puts the repo root on sys.path)

import torch
import torch.distributed as dist

from atomic import atomic_write_json
from errors import run_main


def probe(args, rank, world_size):
    """The all-reduce of this rank: its result dict (ok False with the error's message on failure)."""
    local, gpus = int(os.environ.get("LOCAL_RANK", 0)), torch.cuda.device_count()
    device = f"cuda:{local % gpus}" if args.backend == "nccl" and gpus else "cpu"
    result = dict(ok=False, backend=args.backend, world_size=world_size, rank=rank, device=device,
                  nccl_hostid=os.environ.get("NCCL_HOSTID"), mb=args.mb, repeats=args.repeats,
                  nccl_version=".".join(map(str, torch.cuda.nccl.version())) if torch.cuda.is_available() else None)
    try:
        if args.backend == "nccl" and not gpus:
            raise RuntimeError("no CUDA device: NCCL needs GPUs")
        if device.startswith("cuda"):
            torch.cuda.set_device(device)
        dist.init_process_group(args.backend, timeout=datetime.timedelta(seconds=args.timeout),
                                device_id=torch.device(device) if args.backend == "nccl" else None)
        x = torch.ones(int(args.mb * 2**20) // 4, device=device)
        dist.all_reduce(x)  # warm-up: connects the ranks
        times = []
        for _ in range(args.repeats):
            x.fill_(1.0)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            dist.all_reduce(x)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        if not torch.all(x == world_size):
            raise RuntimeError(f"all_reduce gave {x.min().item()}..{x.max().item()}, expected {world_size}")
        seconds = min(times)
        result.update(ok=True, seconds=seconds, algbw_gb_per_s=x.numel() * 4 / seconds / 1e9)
    except Exception as err:  # the probe's answer: the message says why (e.g. Duplicate GPU detected)
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        result["error"] = next((line for line in lines if "Duplicate GPU" in line), lines[-1] if lines else repr(err))
        result["error_type"] = type(err).__name__
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return result


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", choices=("nccl", "gloo"), default="nccl")
    p.add_argument("--mb", type=float, default=64.0, help="size of the all-reduced tensor")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--timeout", type=float, default=30.0, help="seconds a collective may wait")
    p.add_argument("--json", required=True, help="rank R writes <stem>.rank<R>.json")
    args = p.parse_args(argv)
    rank, world_size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    result = probe(args, rank, world_size)
    stem = args.json[:-5] if args.json.endswith(".json") else args.json
    atomic_write_json(f"{stem}.rank{rank}.json", result)
    print(f"rank {rank}: {args.backend} all-reduce on {result['device']}: "
          + (f"ok, {args.mb:g} MB in {result['seconds'] * 1e3:.1f} ms" if result["ok"] else f"FAILED: {result['error']}"))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(run_main(main))
