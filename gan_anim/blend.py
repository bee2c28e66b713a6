"""Put generated faces back into the full-resolution frame.

For each face the crop's colour C and keep-weight (1 - A) are upsampled and
warped back in one ``cv2.remap`` onto the face's region of the frame, and
composited as ``out = w * C + (1 - w) * original`` with ``w = (1 - A) * feather``.
Where w is 0 (A = 1, outside the feathered crop, outside every region) the
output is the original pixel, bit for bit.
"""
from __future__ import annotations

import cv2
import numpy as np

from .faces import invert


def border_feather(size: int, width: float = 0.08) -> np.ndarray:
    """(size, size) float32: 1 inside, smooth ramp to 0 over ``width`` of the side at each border."""
    ramp = max(1.0, width * size)
    d = np.minimum(np.arange(size), np.arange(size)[::-1]).astype(np.float32)
    t = np.clip(d / ramp, 0.0, 1.0)
    t = t * t * (3 - 2 * t)
    return np.outer(t, t).astype(np.float32)


class FaceBlender:
    """Precomputed back-warp of one face crop (fixed transform) into frames of one size.

    The crop is tiny next to a big face region (64 px onto 1,000 px), so C, 1 - A and
    the flow are warped onto a grid of about two samples per crop pixel and then
    resized to the full region (bilinear either way); only the final warp of the
    original and the composite run per full-resolution pixel.
    """

    def __init__(self, frame_shape, transform: np.ndarray, size: int, feather: float = 0.08):
        h, w = frame_shape[:2]
        self.size = size
        self.m = np.asarray(transform, np.float64)
        inv = invert(self.m)
        corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], np.float64) @ inv.T
        x0, y0 = np.floor(corners.min(0)).astype(int)
        x1, y1 = np.ceil(corners.max(0)).astype(int) + 1
        self.roi = (int(max(x0, 0)), int(max(y0, 0)), int(min(x1, w)), int(min(y1, h)))
        rx0, ry0, rx1, ry1 = self.roi
        self.empty = rx1 <= rx0 or ry1 <= ry0
        if self.empty:
            return
        self.shape = (ry1 - ry0, rx1 - rx0)
        px_per_crop_px = 1.0 / np.sqrt(abs(np.linalg.det(self.m[:, :2])))
        step = max(1, int(px_per_crop_px // 2))
        ch, cw = -(-self.shape[0] // step), -(-self.shape[1] // step)
        self.coarse = (ch, cw) != self.shape
        # Frame coordinates of the coarse samples, in cv2.resize's pixel-centre convention.
        xs = rx0 + (np.arange(cw) + 0.5) * (self.shape[1] / cw) - 0.5
        ys = ry0 + (np.arange(ch) + 0.5) * (self.shape[0] / ch) - 0.5
        xs, ys = np.meshgrid(xs, ys)
        # Crop coordinates of each sample: (u, v) = M (x, y, 1).
        self.map_u = (self.m[0, 0] * xs + self.m[0, 1] * ys + self.m[0, 2]).astype(np.float32)
        self.map_v = (self.m[1, 0] * xs + self.m[1, 1] * ys + self.m[1, 2]).astype(np.float32)
        self.feather = self._to_grid(border_feather(size, feather), border=0.0)
        self._grid = None  # full-resolution pixel grid, built on first use of a flow

    @property
    def slices(self):
        x0, y0, x1, y1 = self.roi
        return slice(y0, y1), slice(x0, x1)

    def _to_grid(self, crop_array: np.ndarray, border: float | None) -> np.ndarray:
        """Upsample + inverse-warp a crop-space array onto the (coarse) region grid."""
        mode = cv2.BORDER_REPLICATE if border is None else cv2.BORDER_CONSTANT
        return cv2.remap(crop_array, self.map_u, self.map_v, cv2.INTER_LINEAR,
                         borderMode=mode, borderValue=0 if border is None else border)

    def _full(self, grid_array: np.ndarray) -> np.ndarray:
        if not self.coarse:
            return grid_array
        return cv2.resize(grid_array, self.shape[::-1], interpolation=cv2.INTER_LINEAR)

    def blend(self, out: np.ndarray, color: np.ndarray, attention: np.ndarray,
              flow: np.ndarray | None = None) -> None:
        """Composite one generated face into ``out`` (H, W, 3 uint8) in place.

        ``color``: (S, S, 3) uint8 colour mask C; ``attention``: (S, S) float32 A
        in [0, 1]; ``flow``: optional (S, S, 2) float32 displacement in crop pixels
        (x, y) by which the kept original is backward-warped, faded to 0 at the crop border.
        """
        if self.empty:
            return
        sy, sx = self.slices
        base = out[sy, sx]
        if flow is not None:
            d = self._to_grid(np.ascontiguousarray(flow, np.float32), border=0.0) * self.feather[..., None]
            # A crop-space displacement maps to frame space through the inverse linear part.
            li = invert(self.m)[:, :2].astype(np.float32)
            d = self._full(np.ascontiguousarray(d @ li.T))
            if self._grid is None:
                x0, y0, x1, y1 = self.roi
                self._grid = np.meshgrid(np.arange(x0, x1, dtype=np.float32),
                                         np.arange(y0, y1, dtype=np.float32))
            map_x = cv2.add(self._grid[0], np.ascontiguousarray(d[..., 0]))
            map_y = cv2.add(self._grid[1], np.ascontiguousarray(d[..., 1]))
            # remap from the whole frame so the warp can pull pixels from outside the region
            base = cv2.remap(out, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        keep = np.ascontiguousarray(1.0 - attention, np.float32)  # warp 1-A so zeros stay exact
        w = self._full(self._to_grid(keep, border=0.0) * self.feather)
        c = self._full(self._to_grid(np.ascontiguousarray(color), border=None))
        # blendLinear: (w*c + (1-w)*base) / (1 + 1e-5), rounded; exact where w == 0.
        out[sy, sx] = cv2.blendLinear(c, np.ascontiguousarray(base), w, 1.0 - w)
