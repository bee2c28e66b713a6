"""BT.601 luma and colour difference, as OpenCV's float YCrCb conversion defines them.

The generator's luma paint (``model.compose``) and the full-resolution blend
(``render.blend``) both use these numbers, so a face painted at crop size and at full
size changes by the same amount.
"""
from __future__ import annotations

LUMA = (0.299, 0.587, 0.114)        # Y = LUMA . (R, G, B)
CB_SCALE, CR_SCALE = 0.564, 0.713   # Cb = 0.564 (B - Y), Cr = 0.713 (R - Y)
# and back: R = Y + 1.403 Cr, G = Y - 0.344 Cb - 0.714 Cr, B = Y + 1.773 Cb
R_FROM_CR, G_FROM_CB, G_FROM_CR, B_FROM_CB = 1.403, 0.344, 0.714, 1.773


def to_ycbcr(rgb):
    """(B,3,H,W) RGB tensor -> (Y, Cb, Cr), each (B,1,H,W), in the input's units."""
    r, g, b = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
    y = LUMA[0] * r + LUMA[1] * g + LUMA[2] * b
    return y, (b - y) * CB_SCALE, (r - y) * CR_SCALE


def from_ycbcr(y, cb, cr):
    """The inverse of ``to_ycbcr``: (B,3,H,W) RGB."""
    import torch

    return torch.cat([y + R_FROM_CR * cr, y - G_FROM_CB * cb - G_FROM_CR * cr, y + B_FROM_CB * cb], 1)
