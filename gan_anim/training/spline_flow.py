"""The landmark warp's flow over the crop as one fused reduction (with ``--compile``).

``motion.ThinPlate.flow`` evaluates the spline at every pixel through a (B, S*S, K) float64
kernel matrix and a matmul: at 128 px, batch 128 and K = 98 control points that matrix is
1.6 GB, written and read about ten times a spline. Written as a broadcast sum over the K
points, the same arithmetic compiles (inductor) into one reduction that never stores it.
Not compiled, that form would be slower than the matmul, so ``SplineFlow`` is used only by
a compiled trainer; the result equals ``ThinPlate.flow`` within float64 rounding (tested).
"""
from __future__ import annotations

import torch


def evaluate(ctrl: torch.Tensor, coef: torch.Tensor, size: int) -> torch.Tensor:
    """``ThinPlate.flow(size)`` over the crop (extent 0..1) from the spline's control points
    ``ctrl`` (B,K,2) and coefficients ``coef`` (B,K+3,2), float64 throughout."""
    b, k = ctrl.shape[:2]
    c = (torch.arange(size, device=ctrl.device, dtype=ctrl.dtype) + 0.5) / size
    gy, gx = torch.meshgrid(c, c, indexing="ij")
    grid = torch.stack([gx, gy], -1).reshape(1, -1, 1, 2)                  # (1, S*S, 1, 2)
    d2 = (grid - ctrl[:, None]).square().sum(-1)                             # (B, S*S, K)
    u = 0.5 * d2 * torch.log(d2.clamp_min(1e-12))                            # r^2 log r
    disp = (u[..., None] * coef[:, None, :k]).sum(2)                         # (B, S*S, 2)
    xy = grid[:, :, 0]                                                       # (1, S*S, 2)
    disp = disp + coef[:, None, k] + xy[..., :1] * coef[:, None, k + 1] + xy[..., 1:] * coef[:, None, k + 2]
    return (2.0 * disp).float().transpose(1, 2).reshape(b, 2, size, size)


class SplineFlow:
    """``spline -> flow`` for ``losses.generate``: ``evaluate`` through ``torch.compile``."""

    def __init__(self, **compile_kw):
        self.fn = torch.compile(evaluate, **compile_kw)

    def __call__(self, spline, size: int) -> torch.Tensor:
        with torch.autocast(spline.ctrl.device.type, enabled=False):
            return self.fn(spline.ctrl, spline.coef, size)
