"""Where training runs: the device, CPU threads and, under torchrun, the process group.

DistributedDataParallel is used only when the process was launched by torchrun
(``RANK``/``WORLD_SIZE`` set), as in nanoGPT; the same code runs on a laptop CPU. A
collective waits at most ``$GAN_ANIM_DIST_TIMEOUT`` seconds (default 600) for the other
processes, so a run whose peer died or hangs ends with one line instead of waiting.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch

from ..errors import GanAnimError
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
            dist.init_process_group(backend="nccl" if use_cuda else "gloo", timeout=dist_timeout())
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


def dist_timeout():
    """How long a collective waits for the other processes: ``$GAN_ANIM_DIST_TIMEOUT`` s."""
    from datetime import timedelta

    raw = os.environ.get("GAN_ANIM_DIST_TIMEOUT", "600")
    try:
        seconds = float(raw)
    except ValueError:
        raise GanAnimError(f"GAN_ANIM_DIST_TIMEOUT={raw!r}: not a number of seconds") from None
    if not seconds > 0:
        raise GanAnimError(f"GAN_ANIM_DIST_TIMEOUT={raw!r}: must be above 0")
    return timedelta(seconds=seconds)


_PEER_SIGNS = ("connection closed", "connection reset", "broken pipe", "timed out", "timeout",
               "gloo", "nccl", "socket", "peer")


def peer_failed(exc: BaseException) -> bool:
    """Whether ``exc`` says another process of the run died or stopped answering."""
    import torch.distributed as dist

    if isinstance(exc, getattr(dist, "DistError", ())):
        return True
    return isinstance(exc, RuntimeError) and any(s in str(exc).lower() for s in _PEER_SIGNS)


def _reason(exc: BaseException) -> str:
    """The first sentence of a backend's error, without its source location."""
    import re

    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    text = re.sub(r"^\[[^\]]*\]\s*", "", text)  # "[.../gloo/transport/tcp/pair.cc:553] "
    return text.split(". ")[0][:160]


@contextlib.contextmanager
def process_group(rt: Runtime, last_checkpoint=lambda: None):
    """Leave the torchrun process group (if there is one) when the block ends. A failed
    collective (a peer died, or did not answer within ``dist_timeout``) becomes one
    ``GanAnimError`` line naming ``last_checkpoint()``, the checkpoint to resume from."""
    try:
        yield
    except Exception as exc:
        if rt.world == 1 or not peer_failed(exc):
            raise
        last = last_checkpoint()
        raise GanAnimError(f"rank {rt.rank}: another process of this run died or stopped answering "
                           f"({_reason(exc)}); {f'the last checkpoint is {last}' if last else 'no checkpoint yet'}"
                           f": resume with --resume") from None
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
