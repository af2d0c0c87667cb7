"""Device and precision choices, shared by train.py, the eval scripts and the benchmarks.

    device = resolve_device("auto")            # "cuda" when available, else "cpu"
    dtype = resolve_dtype("auto", device)      # "bfloat16" on CUDA, "float32" on CPU
    with autocast_context(device, dtype): ...
    peak_flops("cuda")                         # the GPU's dense bf16 peak FLOP/s for MFU, or None
"""
from contextlib import nullcontext

import torch

from errors import UserError

DTYPES = ("auto", "bfloat16", "float32")


def resolve_device(name):
    """"cpu", "cuda" or "cuda:N" from one of those or "auto" (cuda when available): the one parser
    of a device setting, for train.py, the eval scripts and the benchmarks.

    Raises UserError for a name that is not a torch device, a device type other than cpu and
    cuda, and cuda asked for where none is available.
    """
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"device {name!r} is not a torch device; use auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"device {name!r} is not supported; use auto, cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device={name} needs CUDA but none is available; use cpu (--device=cpu)")
    return name


def device_type(device):
    """"cuda" or "cpu": the torch device type of a device string or torch.device."""
    return "cuda" if str(device).startswith("cuda") else "cpu"


def resolve_dtype(dtype, device):
    """"auto" is bfloat16 autocast on CUDA and float32 on CPU.

    Raises UserError for bfloat16 (asked for or "auto") on a CUDA GPU without native bf16
    (before Ampere): this repo has no float16 path (that would need loss scaling).
    """
    if dtype == "auto":
        dtype = "bfloat16" if device_type(device) == "cuda" else "float32"
    if dtype == "bfloat16" and device_type(device) == "cuda" and torch.cuda.is_available() \
            and not torch.cuda.is_bf16_supported(including_emulation=False):
        raise UserError(f"{device} has no native bfloat16 (needs an Ampere or newer GPU); pass --dtype=float32 "
                        "(float16 is not supported: it needs loss scaling)")
    return dtype


def host_to_device(tensor, device):
    """tensor (on the CPU) on device. To CUDA it goes through pinned memory without blocking the
    host, so the copy overlaps the compute queued before it (the stream orders it before any use);
    on the CPU it is returned as it is."""
    if device_type(device) != "cuda":
        return tensor
    return tensor.pin_memory().to(device, non_blocking=True)


def autocast_context(device, dtype):
    """bf16 autocast for dtype "bfloat16", nothing for "float32"."""
    if resolve_dtype(dtype, device) == "float32":
        return nullcontext()
    return torch.autocast(device_type=device_type(device), dtype=torch.bfloat16)


# Dense bf16 tensor-core peaks (FLOP/s, no sparsity) from NVIDIA's data sheets; the H200 is an
# H100 SXM die with more memory. MFU in train.py, the benches and gpu_check is measured against these.
PEAK_BF16_FLOPS = {"H100 SXM": 989e12, "H100 NVL": 835e12, "H100 PCIe": 756e12, "H100": 989e12,
                   "H200": 989e12, "GH200": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12}


def peak_flops(device):
    """The device's dense bf16 peak in FLOP/s (PEAK_BF16_FLOPS, matched on the CUDA device name),
    or None for the CPU or a GPU not in the table: no MFU then, unless a peak is given."""
    if device_type(device) != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, flops in PEAK_BF16_FLOPS.items():  # longest names first within a family, as listed
        if key in name or key.replace(" ", "") in name.replace(" ", ""):
            return flops
    return None
