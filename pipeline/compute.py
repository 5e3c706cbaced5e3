"""Where the stages compute: device, bf16 autocast, batch loading and data parallelism, through Accelerate.

`compute` in params.yaml says how to run. Device and precision can change the last digits (bf16 on a
GPU), so the stages track them as parameters; the loader workers and the launcher do not change a
number (on the CPU in fp32 the results are the same bit for bit). Fine-tuning runs data parallel on several
GPUs when its stage command is `accelerate launch` (compute.launch); every process then takes its
share of each batch, so the global batch, the number of steps and the schedule stay as configured.
"""

from __future__ import annotations

import contextlib
from functools import cache

import numpy as np
import torch
from accelerate import Accelerator, DataLoaderConfiguration, DistributedDataParallelKwargs

from .params_file import InputError
from .schema import Compute


@cache
def accelerator(device: str = "cpu", precision: str = "fp32") -> Accelerator:
    """One Accelerator per process (Accelerate keeps its state process-wide); fails at once on a bad choice."""
    gpu = torch.cuda.is_available()
    if device == "cuda" and not gpu:
        raise InputError(
            "compute.device: cuda, but torch sees no CUDA GPU here (torch.cuda.is_available() is "
            "False); use auto or cpu"
        )
    on_gpu = gpu and device != "cpu"
    # native bf16 only (Ampere and later): an emulated one is slow, and probing it opens a context on GPU 0
    native = on_gpu and torch.cuda.is_bf16_supported(including_emulation=False)
    if precision == "auto":
        precision = "bf16" if native else "fp32"
    if precision == "bf16" and on_gpu and not native:
        raise InputError(f"compute.precision: bf16, but {torch.cuda.get_device_name()} has no bf16; use fp32")
    # some encoders carry parameters our classifier never uses (e.g. a pooler): data parallel must skip them
    unused = DistributedDataParallelKwargs(find_unused_parameters=True)
    # split_batches: each process takes part of every batch, so the scheduler steps once per step
    return Accelerator(
        cpu=device == "cpu",
        mixed_precision="bf16" if precision == "bf16" else "no",
        dataloader_config=DataLoaderConfiguration(split_batches=True),
        kwargs_handlers=[unused],
    )


def from_params(compute: Compute) -> Accelerator:
    pin_threads(compute)
    return accelerator(compute.device, compute.precision)


def pin_threads(compute: Compute) -> None:
    """torch's CPU threads, `compute.threads` (None: torch's default, all the cores it sees)."""
    if compute.threads is not None:
        torch.set_num_threads(compute.threads)


def device(acc: Accelerator | None) -> torch.device:
    """`acc`'s device; the CPU for code called without one (latency, benchmarks, unit tests)."""
    return acc.device if acc else torch.device("cpu")


def autocast(acc: Accelerator | None):
    """`acc`'s autocast (bf16 where chosen); nothing without one."""
    return acc.autocast() if acc else contextlib.nullcontext()


def describe(acc: Accelerator | None) -> dict:
    """For provenance: where a run computed."""
    if acc is None:
        return {"device": "cpu", "precision": "no", "processes": 1}
    name = torch.cuda.get_device_name(acc.device) if acc.device.type == "cuda" else acc.device.type
    return {"device": name, "precision": acc.mixed_precision, "processes": acc.num_processes}


def backward(acc: Accelerator | None, loss: torch.Tensor) -> None:
    """`loss`'s gradients, through `acc` where there is one (data parallel: averaged over processes)."""
    if acc:
        acc.backward(loss)
    else:
        loss.backward()


def clip_grad_norm(acc: Accelerator | None, parameters, max_norm: float) -> None:
    if acc:
        acc.clip_grad_norm_(parameters, max_norm)
    else:
        torch.nn.utils.clip_grad_norm_(parameters, max_norm)


def shard(acc: Accelerator | None, idx: np.ndarray) -> np.ndarray:
    """This process's part of a batch (all of it on one process, or when it is too small to split)."""
    if acc is None or acc.num_processes == 1 or len(idx) < acc.num_processes:
        return idx
    return np.array_split(idx, acc.num_processes)[acc.process_index]
