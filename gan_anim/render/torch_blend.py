"""``blend.FaceBlender``'s composite in torch, for the GPU (``--device cuda``) and, with the
same code, on the CPU for testing (``InferenceConfig.composite = "torch"``).

The geometry (the region, its coarse sampling grid, the feather) is ``FaceBlender``'s own,
built on the CPU once per face and frame (a few thousand samples); every per-pixel step
runs in torch on ``device``: the warp of the photo (bicubic), the crease relaxation
(a closing and a Gaussian band), the luma paint with its colour conversion, the RGB paint. Each mirrors
one numpy/OpenCV method of ``blend.py``, named in its docstring, including OpenCV's
arithmetic where it matters for the pixels:

* ``cv2.remap``, linear and cubic (A = -0.75), BORDER_CONSTANT 0 or BORDER_REPLICATE: OpenCV 4
  rounds the sampling positions to 1/32 pixel (``INTER_TAB_SIZE``), OpenCV 5 only for some
  kinds of image; ``remap_steps`` asks the installed OpenCV once per kind;
* ``cv2.resize`` INTER_LINEAR is torch's bilinear without corner alignment;
* ``cv2.GaussianBlur`` (sigma, ksize 0) on float32: a kernel of ``round(8 sigma + 1) | 1``
  taps, BORDER_REFLECT_101;
* conversions to uint8 round half to even and saturate.

OpenCV computes uint8 remaps and resizes in fixed point; these run in float32, so pixels
differ from the numpy path by at most 1 grey level inside the faces and not at all outside
them (``tests/test_torch_blend.py``).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .blend import (CHROMA, LUMA, RELAX_EYE, RELAX_RIDGE, RELAX_SIGMAS, RELAX_TEXTURE, RELAX_VALLEY, TINT,
                    FaceBlender, fill_kernel, union_box)

CUBIC_A = -0.75  # cv2's bicubic
_STEPS: dict = {}   # (interpolation, channels, dtype) -> cv2.remap's sub-pixel steps


def remap_steps(cubic: bool, channels: int, dtype=np.float32) -> int | None:
    """The sub-pixel steps that cv2.remap rounds its sampling positions to for this kind of
    image (32, INTER_TAB_SIZE), or None where it samples at the exact position. OpenCV 4
    rounds everywhere; OpenCV 5 rounds some kinds (2-channel float linear) and not others
    (1-channel float linear, uint8 cubic), so the installed OpenCV is asked once per kind,
    on a small random image. Without OpenCV: None."""
    key = (cubic, channels, np.dtype(dtype).str)
    if key not in _STEPS:
        try:
            import cv2
        except ImportError:
            return None
        rng = np.random.default_rng(0)
        shape = (16, 16) if channels == 1 else (16, 16, channels)
        img = rng.uniform(0, 255, shape).astype(dtype)
        mu, mv = (rng.uniform(1, 14, (8, 8)).astype(np.float32) for _ in range(2))
        ref = cv2.remap(img, mu, mv, cv2.INTER_CUBIC if cubic else cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REPLICATE).reshape(8, 8, channels).astype(np.float64)
        x, mu, mv = torch.from_numpy(img.reshape(16, 16, channels)), torch.from_numpy(mu), torch.from_numpy(mv)
        errs = {}
        for steps in (None, 32):
            got = _cubic(x, mu, mv, steps) if cubic else _linear(x.float(), mu, mv, True, steps)
            errs[steps] = float(np.abs(got.double().numpy() - ref).max())
        _STEPS[key] = min(errs, key=errs.get)
    return _STEPS[key]


def _split(m: torch.Tensor, steps: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(integer part, fraction) of sampling positions, rounded to ``steps`` as cv2.remap does."""
    if steps is None:
        i = torch.floor(m)
        return i, m - i
    q = torch.round(m * steps)
    i = torch.div(q, steps, rounding_mode="floor")
    return i, (q - i * steps) / steps


def _t(array, device, dtype=torch.float32) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(array)).to(device=device, dtype=dtype)


def colour_transform(f: torch.Tensor, matrix: np.ndarray) -> torch.Tensor:
    """``cv2.transform``: (h,w,c) float times a (k,c) matrix -> (h,w,k), as multiply-adds
    (a matmul on the GPU may run in TF32)."""
    return torch.stack([sum(float(row[j]) * f[..., j] for j in range(len(row))) for row in matrix], -1)


def to_u8(x: torch.Tensor) -> torch.Tensor:
    """float -> uint8 as OpenCV's saturate_cast: rounded half to even, clamped."""
    return x.round().clamp_(0, 255).to(torch.uint8)


def remap_linear(src: torch.Tensor, mu: torch.Tensor, mv: torch.Tensor, replicate: bool) -> torch.Tensor:
    """``cv2.remap(src, mu, mv, INTER_LINEAR)`` of a float (h,w,C) array at (H,W) maps:
    BORDER_REPLICATE, else BORDER_CONSTANT 0."""
    return _linear(src, mu, mv, replicate, remap_steps(False, src.shape[2] if src.dim() == 3 else 1))


def _linear(src, mu, mv, replicate: bool, steps: int | None) -> torch.Tensor:
    h, w = src.shape[:2]
    (x0, fx), (y0, fy) = _split(mu, steps), _split(mv, steps)
    fx, fy, x0, y0 = fx[..., None], fy[..., None], x0.long(), y0.long()
    flat = src.reshape(h * w, -1)
    out = 0
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            xi, yi = x0 + dx, y0 + dy
            if replicate:
                v = flat[yi.clamp(0, h - 1) * w + xi.clamp(0, w - 1)]
            else:
                inside = ((xi >= 0) & (xi < w) & (yi >= 0) & (yi < h))[..., None]
                v = flat[yi.clamp(0, h - 1) * w + xi.clamp(0, w - 1)] * inside
            out = out + v * (wy * wx)
    return out


def _cubic_weights(t: torch.Tensor) -> list[torch.Tensor]:
    a = CUBIC_A
    w0 = ((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a
    w1 = ((a + 2) * t - (a + 3)) * t * t + 1
    w2 = ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1
    return [w0, w1, w2, 1 - w0 - w1 - w2]


def remap_cubic_u8(src: torch.Tensor, mx: torch.Tensor, my: torch.Tensor) -> torch.Tensor:
    """``cv2.remap(src, mx, my, INTER_CUBIC, borderMode=BORDER_REPLICATE)`` of a uint8
    (H,W,3) frame at float (h,w) maps: (h,w,3) uint8."""
    return _cubic(src, mx, my, remap_steps(True, src.shape[2], np.uint8))


def _cubic(src, mx, my, steps: int | None) -> torch.Tensor:
    h, w = src.shape[:2]
    (x0, fx), (y0, fy) = _split(mx, steps), _split(my, steps)
    wx, wy = _cubic_weights(fx[..., None]), _cubic_weights(fy[..., None])
    x0, y0 = x0.long(), y0.long()
    flat = src.reshape(h * w, -1)
    cols = [(x0 + k - 1).clamp_(0, w - 1) for k in range(4)]
    out = 0
    for j in range(4):
        row = (y0 + j - 1).clamp_(0, h - 1) * w
        acc = 0
        for k in range(4):
            acc = acc + flat[row + cols[k]].float() * wx[k]
        out = out + acc * wy[j]
    return to_u8(out)


def resize_linear(x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """``cv2.resize(x, (W, H), INTER_LINEAR)`` of a float (h,w) or (h,w,C) array."""
    flat = x.dim() == 2
    y = (x[..., None] if flat else x).permute(2, 0, 1)[None]
    y = F.interpolate(y, size=tuple(shape), mode="bilinear", align_corners=False)[0].permute(1, 2, 0)
    return y[..., 0] if flat else y


def valley_share(band: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``blend.valley_share``."""
    inside = weight > 0.5
    if not bool(inside.any()):
        inside = weight > 1e-3
    mad = float(band[inside].abs().quantile(0.5)) if bool(inside.any()) else 0.0   # np.median
    return (-band / (RELAX_VALLEY * mad + 1e-6)).clamp(0, 1)


def _reflect101(n: int, r: int, device) -> torch.Tensor:
    """Indices of 0..n-1 padded by ``r`` on each side, BORDER_REFLECT_101 (any r)."""
    i = torch.arange(-r, n + r, device=device)
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    i = torch.remainder(i, period)
    return torch.where(i >= n, period - i, i)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """``cv2.GaussianBlur(x, (0, 0), sigma)`` of a float32 (h,w) array."""
    import cv2

    n = int(np.rint(sigma * 8 + 1)) | 1
    kernel = _t(cv2.getGaussianKernel(n, sigma, cv2.CV_32F)[:, 0], x.device)
    r = n // 2
    h, w = x.shape
    cudnn = torch.backends.cudnn
    # full float32 (cuDNN would take TF32's 10-bit mantissa by default: ~0.1 grey level)
    with cudnn.flags(enabled=cudnn.enabled, benchmark=cudnn.benchmark,
                     deterministic=cudnn.deterministic, allow_tf32=False):
        rows = x[_reflect101(h, r, x.device)]                    # (h + 2r, w)
        y = F.conv2d(rows.t()[None, None], kernel.view(1, 1, 1, n))[0, 0].t()  # along y
        cols = y[:, _reflect101(w, r, x.device)]
        return F.conv2d(cols[None, None], kernel.view(1, 1, 1, n))[0, 0]       # along x


def closing(x: torch.Tensor, reach: int) -> torch.Tensor:
    """``cv2.erode(cv2.dilate(x, k), k)`` of a float32 (h,w) array, ``k`` a square of side
    ``2 reach + 1`` (OpenCV's border: outside pixels take no part)."""
    def pool(a):
        return F.max_pool2d(a[None, None], 2 * reach + 1, stride=1, padding=reach)[0, 0]

    return -pool(-pool(x))


def bounding_box(grid_mask: torch.Tensor, shape: tuple[int, int]):
    """``FaceBlender._box`` of a bool (coarse) grid mask, for a region of ``shape`` (one
    transfer from the device)."""
    ends = []
    for hit in (grid_mask.any(1), grid_mask.any(0)):
        idx = torch.arange(hit.numel(), device=hit.device)
        ends += [torch.where(hit, idx, hit.numel()).min(), torch.where(hit, idx, -1).max()]
    gy, y_last, gx, x_last = torch.stack(ends).tolist()
    if y_last < 0:
        return None
    gh, gw = y_last - gy + 1, x_last - gx + 1
    fy, fx = shape[0] / grid_mask.shape[0], shape[1] / grid_mask.shape[1]
    return (max(0, int((gy - 1) * fy)), min(shape[0], int(np.ceil((gy + gh + 1) * fy))),
            max(0, int((gx - 1) * fx)), min(shape[1], int(np.ceil((gx + gw + 1) * fx))))


class TorchBlender:
    """One face crop's composite into frames of one size, on ``device``: ``region`` gives
    what ``FaceBlender.blend`` writes into the face's region (``slices``)."""

    def __init__(self, frame_shape, transform: np.ndarray, size: int, device):
        geo = FaceBlender(frame_shape, transform, size)
        self.geo, self.device, self.empty = geo, torch.device(device), geo.empty
        self.slices = geo.slices
        if self.empty:
            return
        self.shape = geo.shape
        self.map_u, self.map_v = _t(geo.map_u, self.device), _t(geo.map_v, self.device)
        self.feather = _t(geo.feather, self.device)
        self._lin = geo._lin.astype(np.float32)
        self._wide = None
        self._xy = None

    # ------------------------------------------------------ crop arrays onto the region
    def _to_grid(self, crop, replicate: bool = False) -> torch.Tensor:
        """``FaceBlender._to_grid``: border=None is ``replicate``, else 0."""
        x = _t(crop, self.device)
        flat = x.dim() == 2
        out = remap_linear(x[..., None] if flat else x, self.map_u, self.map_v, replicate)
        return out[..., 0] if flat else out

    def _wide_to_grid(self, wide: np.ndarray) -> torch.Tensor:
        """``FaceBlender._wide_to_grid``."""
        e = wide.shape[0]
        if self._wide is None or self._wide[0] != e:
            self._wide = (e, *(_t(m, self.device) for m in self.geo.wide_maps(e)))
        _, mu, mv, fade = self._wide
        return remap_linear(_t(wide, self.device), mu, mv, False) * fade[..., None]

    def _full(self, grid: torch.Tensor) -> torch.Tensor:
        """``FaceBlender._full``."""
        return resize_linear(grid, self.shape) if self.geo.coarse else grid

    def _box(self, grid_mask: torch.Tensor):
        return bounding_box(grid_mask, self.shape)

    def _coords(self):
        if self._xy is None:
            rx0, ry0, rx1, ry1 = self.geo.roi
            ys, xs = torch.meshgrid(torch.arange(ry0, ry1, device=self.device, dtype=torch.float32),
                                    torch.arange(rx0, rx1, device=self.device, dtype=torch.float32),
                                    indexing="ij")
            self._xy = (xs, ys)
        return self._xy

    # ------------------------------------------------------------------ compositing
    def region(self, source: torch.Tensor, edit) -> torch.Tensor | None:
        """The new pixels of the face's region, (h,w,3) uint8 on ``device``, for one
        ``FaceEdits`` item on the unedited frame ``source`` (H,W,3 uint8 on ``device``):
        ``FaceBlender.blend``. None where the region is empty."""
        if self.empty:
            return None
        base = self._moved(source, edit.wide_flow, getattr(edit, "lids", None))
        if getattr(edit, "relax", None) is not None:
            base = self._relaxed(base, edit.relax)
        if getattr(edit, "seam", None) is not None:
            base = self._sealed(base, edit.seam, edit.seam_colour)
        out = self._paint_luma(base, edit) if edit.luma else self._paint_rgb(base, edit)
        if getattr(edit, "lash", None) is not None:
            out = self._lashed(out, edit.lids, edit.lash)
        return out

    def _lashed(self, region: torch.Tensor, lids, level: float) -> torch.Tensor:
        """``FaceBlender._lashed`` (the line's weight is computed by numpy, on its small box)."""
        box, w = self.geo._lash_weight(lids)
        if box is None or not (w > 1e-3).any():
            return region
        y0, y1, x0, x1 = box
        w = _t(w, self.device)
        patch = region[y0:y1, x0:x1]
        f = patch.float()
        luma = colour_transform(f, LUMA)
        luma = luma + w[..., None] * (float(level) - luma).clamp(max=0)
        new = to_u8(colour_transform(f, CHROMA) * (1.0 - 0.5 * w)[..., None] + luma)
        out = region.clone()
        out[y0:y1, x0:x1] = torch.where((w > 1e-3)[..., None], new, patch)
        return out

    def _moved(self, source: torch.Tensor, wide_flow, lids=None) -> torch.Tensor:
        """``FaceBlender._moved``."""
        if wide_flow is None:
            return source[self.slices]
        return self._warped(source, self._wide_to_grid(wide_flow), lids)

    def _warped(self, source: torch.Tensor, d_grid: torch.Tensor, lids=None) -> torch.Tensor:
        """``FaceBlender._warped`` (the lid shift is computed by numpy, on its small box)."""
        lin = self._lin
        gx = d_grid[..., 0] * float(lin[0, 0]) + d_grid[..., 1] * float(lin[0, 1])
        gy = d_grid[..., 0] * float(lin[1, 0]) + d_grid[..., 1] * float(lin[1, 1])
        moving = torch.maximum(gx.abs(), gy.abs()) >= 0.05
        base = source[self.slices].clone()
        box = union_box(self._box(moving), self.geo._lid_region(lids))
        if box is None:
            return base
        y0, y1, x0, x1 = box
        xs, ys = self._coords()
        lid = ([_t(a, self.device) for a in self.geo._lid_shift(lids, box)] if lids is not None
               else (0.0, 0.0))
        maps = []
        for g, grid, shift in ((gx, xs, lid[0]), (gy, ys, lid[1])):
            d = self._full(g)[y0:y1, x0:x1]
            maps.append(d * (d.abs() > 0.05) + grid[y0:y1, x0:x1] + shift)
        base[y0:y1, x0:x1] = remap_cubic_u8(source, maps[0], maps[1])
        return base

    def _relaxed(self, base: torch.Tensor, relax: np.ndarray) -> torch.Tensor:
        """``FaceBlender._relaxed``."""
        w_grid = self._to_grid(relax)
        box = self._box(w_grid > 1e-3)
        if box is None:
            return base
        y0, y1, x0, x1 = box
        g = self.geo
        eye_px = RELAX_EYE * g.size / np.sqrt(abs(np.linalg.det(g.m[:, :2])))
        reach = fill_kernel(eye_px)
        pad = int(3 * RELAX_SIGMAS[1] * eye_px) + reach + 1
        h, w = base.shape[:2]
        py0, py1, px0, px1 = max(0, y0 - pad), min(h, y1 + pad), max(0, x0 - pad), min(w, x1 + pad)
        luma = colour_transform(base[py0:py1, px0:px1].float(), LUMA)[..., 0]
        fine = gaussian_blur(luma, max(0.5, RELAX_SIGMAS[0] * eye_px))
        band = fine - gaussian_blur(closing(fine, reach), RELAX_SIGMAS[1] * eye_px)
        band = torch.where(band < 0, band, RELAX_RIDGE * band)
        detail = luma - fine
        floor = RELAX_TEXTURE * float(detail.abs().median()) + 0.5   # np.median within float noise
        inner = (slice(y0 - py0, y1 - py0), slice(x0 - px0, x1 - px0))
        weight = self._full(w_grid)[y0:y1, x0:x1]
        band, core = band[inner], (detail + floor).clamp(max=0)[inner]
        band = band + core * valley_share(band, weight)
        patch = base[y0:y1, x0:x1]
        new = to_u8(patch.float() - (weight * band)[..., None])
        out = base.clone()
        out[y0:y1, x0:x1] = torch.where((weight > 1e-3)[..., None], new, patch)
        return out

    def _sealed(self, base: torch.Tensor, seam: np.ndarray, colour: np.ndarray) -> torch.Tensor:
        """``FaceBlender._sealed``."""
        w_grid = self._to_grid(seam)
        box = self._box(w_grid > 1e-3)
        if box is None:
            return base
        y0, y1, x0, x1 = box
        weight = self._full(w_grid)[y0:y1, x0:x1]
        patch = base[y0:y1, x0:x1]
        f = patch.float()
        colour = np.asarray(colour, np.float32)
        level = float(LUMA[0] @ colour)
        t = ((colour_transform(f, LUMA)[..., 0] - level) / (0.25 * level + 1.0)).clamp(0, 1)
        k = (weight * t * t * (3 - 2 * t))[..., None]
        new = to_u8(f + k * (torch.from_numpy(colour).to(f.device) - f))
        out = base.clone()
        out[y0:y1, x0:x1] = torch.where((weight > 1e-3)[..., None], new, patch)
        return out

    def _paint_rgb(self, base: torch.Tensor, edit) -> torch.Tensor:
        """``FaceBlender._paint_rgb``: w * C + (1 - w) * base, w = (1 - A) * feather."""
        keep = 1.0 - np.asarray(edit.attention, np.float32)
        w = self._full(self._to_grid(keep) * self.feather)[..., None]
        c = to_u8(self._full(to_u8(self._to_grid(edit.paint, replicate=True)).float())).float()
        return to_u8((c * w + base.float() * (1.0 - w)) / (1.0 + 1e-5))

    def _paint_luma(self, base: torch.Tensor, edit) -> torch.Tensor:
        """``FaceBlender._paint_luma``: the luma change added, the chroma scaled[, chroma added]."""
        paint = self._to_grid(np.asarray(edit.paint, np.float32))
        change = [paint[..., 0] * self.feather, (1.0 - paint[..., 1]) * self.feather]
        tinted = paint.shape[-1] == 4
        if tinted:
            change += [paint[..., 2] * self.feather, paint[..., 3] * self.feather]
        change = torch.stack(change, -1)
        painted = (change[..., 0].abs() > 1e-3) | (change[..., 1] > 1e-4)
        if tinted:
            painted |= change[..., 2:].abs().amax(-1) > 1e-3
        box = self._box(painted)
        if box is None:
            return base
        y0, y1, x0, x1 = box
        # cv2.resize of the uint8 0/1 mask rounds its bilinear value
        changed = self._full(painted.float())[y0:y1, x0:x1] >= 0.5
        full = self._full(change)[y0:y1, x0:x1]
        d_luma, keep = full[..., 0:1], 1.0 - full[..., 1:2]
        patch = base[y0:y1, x0:x1]
        f = patch.float()
        new = colour_transform(f, CHROMA) * keep
        if tinted:
            new = new + colour_transform(full[..., 2:4], TINT)
        new = to_u8(new + colour_transform(f, LUMA) + d_luma)
        out = base.clone()
        out[y0:y1, x0:x1] = torch.where(changed[..., None], new, patch)
        return out


class TorchCompositor:
    """The frame side of the torch composite: each source frame goes to ``device`` once
    (a photo's frames share it), each face's region is composited there and only the
    regions come back into the caller's uint8 buffer."""

    def __init__(self, device):
        self.device = torch.device(device)
        self._source = None      # the numpy frame whose copy is on the device
        self._tensor = None

    def upload(self, image: np.ndarray) -> torch.Tensor:
        if image is not self._source:
            frame = np.ascontiguousarray(image)
            # a decoder's read-only frame is copied (torch wants writable memory); a plain
            # copy to the GPU: pinning a new 6-36 MB buffer per frame costs more than it saves
            t = torch.from_numpy(frame if frame.flags.writeable else frame.copy())
            self._source, self._tensor = image, t.to(self.device)
        return self._tensor

    def blend(self, out: np.ndarray, blender: TorchBlender, edit, source: np.ndarray) -> None:
        """``FaceBlender.blend(out, edit, source)``, on the device."""
        new = blender.region(self.upload(source), edit)
        if new is not None:
            out[blender.slices] = new.cpu().numpy()

