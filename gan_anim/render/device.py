"""Where and in what precision the generator runs: the device (``--device``) and the
arithmetic (``--precision``), checked without torch where possible."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import GanAnimError

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str = "auto") -> "torch.device":
    """The torch device for ``--device auto|cpu|cuda`` (auto: CUDA when torch sees a GPU)."""
    if device not in DEVICES:
        raise GanAnimError(f"unknown device {device!r}: use auto, cpu or cuda")
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise GanAnimError("--device cuda: no CUDA GPU is available (use --device cpu)")
    return torch.device(device)


PRECISIONS = ("auto", "fp32", "bf16")


def _one_of(kind: str, value: str, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of ``choices``, else a GanAnimError naming them."""
    if value not in choices:
        raise GanAnimError(f"unknown {kind} {value!r}: use {', '.join(choices[:-1])} or {choices[-1]}")
    return value


def check_precision(precision: str) -> str:
    """``precision`` if it is one of PRECISIONS, else a GanAnimError (no torch needed)."""
    return _one_of("precision", precision, PRECISIONS)


def resolve_precision(precision: str, device: "torch.device") -> str:
    """"fp32" or "bf16": what the generator runs in. "auto" is bf16 where the hardware
    computes it natively (CUDA; a CPU with AVX512-BF16 or AMX that oneDNN uses, where it
    runs ~2.6x faster than fp32), else fp32: emulated, bf16 is ~60x slower (measured
    with oneDNN limited to AVX2)."""
    if check_precision(precision) != "auto":
        return precision
    if device.type == "cuda":
        return "bf16"
    return "bf16" if native_cpu_bf16() else "fp32"


def native_cpu_bf16() -> bool:
    """True if this CPU computes bf16 natively and oneDNN will use it."""
    import torch

    flags = [getattr(torch.cpu, f, None) for f in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if not any(f is not None and f() for f in flags):
        return False
    onednn = getattr(getattr(torch.ops, "mkldnn", None), "_is_mkldnn_bf16_supported", None)
    try:
        return bool(onednn()) if onednn is not None else True
    except Exception:  # an op missing from this torch build
        return False


COMPOSITES = ("auto", "numpy", "torch")


def check_composite(composite: str) -> str:
    """``composite`` if it is one of COMPOSITES, else a GanAnimError (no torch needed)."""
    return _one_of("composite", composite, COMPOSITES)


def resolve_composite(composite: str, device: "torch.device") -> str:
    """"numpy" or "torch": where the full-resolution composite runs. "auto" is torch on
    CUDA (the frame's pixels stay on the GPU) and numpy (OpenCV) on the CPU, where it is
    faster than torch's CPU kernels."""
    if check_composite(composite) != "auto":
        return composite
    return "torch" if device.type == "cuda" else "numpy"
