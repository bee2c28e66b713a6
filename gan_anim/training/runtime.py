"""Where training runs: the device, CPU threads and, under torchrun, the process group.

DistributedDataParallel is used only when the process was launched by torchrun
(``RANK``/``WORLD_SIZE`` set), as in nanoGPT; the same code runs on a laptop CPU.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch

from ..render.device import resolve_device


@dataclass
class Runtime:
    """This process's device, rank among ``world`` processes and memory format."""

    device: torch.device
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    channels_last: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"


def cpu_count() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def setup_runtime(device: str = "auto", channels_last: bool | None = None) -> Runtime:
    """Pick the device, thread count and (under torchrun) the process group."""
    use_cuda = resolve_device(device).type == "cuda"
    rank, world, local = 0, 1, 0
    if int(os.environ.get("RANK", -1)) != -1 and "WORLD_SIZE" in os.environ:
        import torch.distributed as dist

        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local = int(os.environ.get("LOCAL_RANK", rank))
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        dev = torch.device("cpu")
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        torch.set_num_threads(max(1, cpu_count() // max(1, local_world)))
    # channels_last: faster convolutions on GPUs; on a 2-core AVX2 CPU it is slower
    # (see benchmarks/bench_train.py), so it is off there by default.
    cl = use_cuda if channels_last is None else channels_last
    return Runtime(dev, rank, world, local, cl)


def all_agree(flag: bool, rt: Runtime) -> bool:
    """True on every rank when ``flag`` is true on any (under torchrun every rank must stop
    at the same step)."""
    if rt.world == 1:
        return flag
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0], device=rt.device)
    dist.all_reduce(t)
    return bool(t.item() > 0)


@contextlib.contextmanager
def process_group(rt: Runtime):
    """Leave the torchrun process group (if there is one) when the block ends."""
    try:
        yield
    finally:
        if rt.world > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def thread_count(requested: int | None = None) -> int:
    """``requested`` threads (at least 1), or when None or 0 the CPUs this process may run
    on, at most 16 (decoding and encoding faces with OpenCV, which releases the GIL)."""
    if requested:
        return max(1, requested)
    return max(1, min(16, cpu_count()))
