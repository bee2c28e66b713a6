"""Put generated faces back into the full-resolution frame.

For each face, the crop-resolution results (motion, paint, 1 - A) are upsampled and
warped back onto the face's region of the frame, and applied to the photo's own
full-resolution pixels:

1. **motion**: the original is backward-warped by the landmark motion (which reaches a
   quarter of the crop beyond it), faded to zero at the region's border;
2. **paint**, RGB models: ``out = w * C + (1 - w) * warped`` with ``w = (1 - A) * feather``;
   luma models: the luma change ``(1 - A)(L - Y)`` is added to the warped photo's luma
   and its chroma is scaled by ``A + (1 - A)s``. The low-resolution change is added to
   full-resolution pixels, so the photo's own detail stays sharp ("ResWarp", Yi et al. 2020)
   and G's paint can never shift a hue. A smile's teeth (``EditModel._smile_teeth``) also
   set their chroma: a four-channel paint adds ``TINT @ (Cb, Cr)``.

Where nothing changes (no motion, A = 1, outside the region) the output is the original
pixel, bit for bit.
"""
from __future__ import annotations

import cv2
import numpy as np

from .. import colour
from ..faces.align import invert

# OpenCV's float RGB <-> YCrCb (``colour``) as matrices on RGB: Y = LUMA @ rgb, and the
# chroma's round trip back to RGB is CHROMA @ rgb.
LUMA = np.array([colour.LUMA], np.float32)
_CR = colour.CR_SCALE * (np.eye(3)[0] - LUMA[0])
_CB = colour.CB_SCALE * (np.eye(3)[2] - LUMA[0])
CHROMA = np.stack([colour.R_FROM_CR * _CR, -colour.G_FROM_CR * _CR - colour.G_FROM_CB * _CB,
                   colour.B_FROM_CB * _CB]).astype(np.float32)
# Chroma added (Cb, Cr) -> RGB: the third and fourth channels of a luma paint (a smile's teeth).
TINT = np.array([[0.0, colour.R_FROM_CR], [-colour.G_FROM_CB, -colour.G_FROM_CR],
                 [colour.B_FROM_CB, 0.0]], np.float32)


# Crease relaxation: the luma detail between RELAX_SIGMAS (Gaussian sigmas in eye distances;
# an aligned crop's side is about 1 / RELAX_EYE eye distances) is taken away (``_relaxed``).
RELAX_SIGMAS = (0.025, 0.2)
RELAX_EYE = 0.31
# Valleys (a furrow, its shading) narrower than this (eye distances) are filled before the
# smoothing: a deep furrow is wider than the band alone reaches.
RELAX_FILL = 0.2
RELAX_RIDGE = 0.75    # the share of bright ridges (the bunched skin between the creases) taken away
RELAX_TEXTURE = 2.5   # fine detail darker than this x its median absolute value is a crease's core
# ... but only inside a valley of the band (fully where the band is this x its median absolute
# value below zero, over the relaxed region): elsewhere dark fine detail is the skin's own grain
# (pores, freckles, fine lines), and taking it away cost sharpness and identity.
RELAX_VALLEY = 1.0


def fill_kernel(eye_px: float) -> int:
    """The half-width in pixels of the square closing that fills RELAX_FILL-wide valleys."""
    return max(1, round(RELAX_FILL * eye_px / 2))


def valley_share(band: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """How much of each pixel's dark fine detail is a crease's core (0..1): how deep the
    relaxation ``band`` lies below zero, fully at RELAX_VALLEY x its median absolute value
    where ``weight`` > 0.5 (the relaxed region; all of it where none is)."""
    inside = weight > 0.5
    if not inside.any():
        inside = weight > 1e-3
    mad = float(np.median(np.abs(band[inside]))) if inside.any() else 0.0
    return np.clip(-band / (RELAX_VALLEY * mad + 1e-6), 0, 1).astype(np.float32)


def border_feather(size: int, width: float = 0.08) -> np.ndarray:
    """(size, size) float32: 1 inside, smooth ramp to 0 over ``width`` of the side at each border."""
    ramp = max(1.0, width * size)
    d = np.minimum(np.arange(size), np.arange(size)[::-1]).astype(np.float32)
    t = np.clip(d / ramp, 0.0, 1.0)
    t = t * t * (3 - 2 * t)
    return np.outer(t, t).astype(np.float32)


def union_box(a, b):
    """The smallest (y0, y1, x0, x1) holding boxes ``a`` and ``b`` (either may be None)."""
    if a is None or b is None:
        return a if b is None else b
    return min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])


class FaceBlender:
    """Precomputed back-warp of one face crop (fixed transform) into frames of one size.

    ``blend`` composites one ``FaceEdits`` item: ``_moved`` (the motion), then ``_paint_rgb``
    or ``_paint_luma``. The crop is tiny next to a big face region (64 px onto 1,000 px), so
    the crop-space arrays are warped onto a coarse grid of about two samples per crop pixel
    (``_to_grid``, ``_wide_to_grid``) and then resized to the full region (``_full``),
    bilinear either way; only the final warp of the original and the composite run per
    full-resolution pixel, and only inside the box of the pixels that change (``_box``).
    The region covers the crop plus ``margin`` (crop-side units) on each side, where the
    landmark motion can still move pixels. ``torch_blend.TorchBlender`` mirrors the methods
    below for the GPU: change both (``tests/test_torch_blend.py`` compares them).
    """

    def __init__(self, frame_shape, transform: np.ndarray, size: int, feather: float = 0.08,
                 margin: float | None = None):
        from ..motion import EXTENT

        h, w = frame_shape[:2]
        self.size = size
        self.margin = -EXTENT[0] if margin is None else margin
        self.m = np.asarray(transform, np.float64)
        inv = invert(self.m)
        lo, hi = -self.margin * size, (1 + self.margin) * size
        corners = np.array([[lo, lo, 1], [hi, lo, 1], [lo, hi, 1], [hi, hi, 1]], np.float64) @ inv.T
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
        self._lin = invert(self.m)[:, :2].astype(np.float32)  # crop -> frame displacements
        self._wide = None  # sampling maps for wide (extended) motion grids, built on first use
        self._xy = None    # the region's pixel coordinates, built on first use

    @property
    def slices(self):
        x0, y0, x1, y1 = self.roi
        return slice(y0, y1), slice(x0, x1)

    # ------------------------------------------------------ crop arrays onto the region
    def _to_grid(self, crop_array: np.ndarray, border: float | None) -> np.ndarray:
        """Upsample + inverse-warp a crop-space array onto the (coarse) region grid."""
        mode = cv2.BORDER_REPLICATE if border is None else cv2.BORDER_CONSTANT
        return cv2.remap(crop_array, self.map_u, self.map_v, cv2.INTER_LINEAR,
                         borderMode=mode, borderValue=0 if border is None else border)

    def wide_maps(self, e: int):
        """(map u, map v, edge fade), each float32 on the region grid, that sample an array of
        side ``e`` laid on the extended grid (``motion.EXTENT``: the crop and its margin)."""
        lo, hi = -self.margin, 1 + self.margin
        scale = e / (hi - lo)
        mu = (((self.map_u + 0.5) / self.size - lo) * scale - 0.5).astype(np.float32)
        mv = (((self.map_v + 0.5) / self.size - lo) * scale - 0.5).astype(np.float32)
        fade = cv2.remap(border_feather(e, 0.1), mu, mv, cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        return mu, mv, fade

    def _wide_to_grid(self, wide: np.ndarray) -> np.ndarray:
        """Like ``_to_grid`` for an array sampled on the extended grid, faded at its edge."""
        e = wide.shape[0]
        if self._wide is None or self._wide[0] != e:
            self._wide = (e, *self.wide_maps(e))
        _, mu, mv, fade = self._wide
        out = cv2.remap(np.ascontiguousarray(wide, np.float32), mu, mv, cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        return out * fade[..., None]

    def _full(self, grid_array: np.ndarray) -> np.ndarray:
        if not self.coarse:
            return grid_array
        return cv2.resize(grid_array, self.shape[::-1], interpolation=cv2.INTER_LINEAR)

    def _box(self, grid_mask: np.ndarray):
        """(y0, y1, x0, x1) on the full-resolution region covering the nonzero samples of a
        (coarse) grid mask, one sample of margin; None if it is empty."""
        gx, gy, gw, gh = cv2.boundingRect(grid_mask)
        if gw == 0:
            return None
        fy, fx = self.shape[0] / grid_mask.shape[0], self.shape[1] / grid_mask.shape[1]
        return (max(0, int((gy - 1) * fy)), min(self.shape[0], int(np.ceil((gy + gh + 1) * fy))),
                max(0, int((gx - 1) * fx)), min(self.shape[1], int(np.ceil((gx + gw + 1) * fx))))

    def _coords(self):
        """Frame x and y of every pixel of the region (float32 maps, built once)."""
        if self._xy is None:
            rx0, ry0, rx1, ry1 = self.roi
            xs, ys = np.meshgrid(np.arange(rx0, rx1, dtype=np.float32),
                                 np.arange(ry0, ry1, dtype=np.float32))
            self._xy = (xs, ys)
        return self._xy

    # ------------------------------------------------------------------ compositing
    def blend(self, out: np.ndarray, edit, source: np.ndarray | None = None) -> None:
        """Composite one generated face (a ``FaceEdits`` item) into ``out`` (H,W,3 uint8) in place.

        ``source`` is the unedited frame the motion pulls pixels from (default ``out``).
        """
        if self.empty:
            return
        source = out if source is None else source
        base = self._moved(source, edit.wide_flow, getattr(edit, "lids", None))
        if getattr(edit, "relax", None) is not None:
            base = self._relaxed(base, edit.relax)
        if getattr(edit, "seam", None) is not None:
            base = self._sealed(base, edit.seam, edit.seam_colour)
        if edit.luma:
            self._paint_luma(out, base, edit)
        else:
            self._paint_rgb(out, base, edit)
        if getattr(edit, "lash", None) is not None:
            self._lashed(out[self.slices], edit.lids, edit.lash)

    def _moved(self, source: np.ndarray, wide_flow: np.ndarray | None, lids=None) -> np.ndarray:
        """The region of ``source`` (h,w,3 uint8) moved by the landmark motion ``wide_flow``
        (E,E,2 crop pixels on the grid of ``motion.EXTENT``) and the lid shift ``lids``
        (``FaceEdits.lids``), or as it is (None)."""
        if wide_flow is None:
            return source[self.slices]
        return self._warped(source, self._wide_to_grid(wide_flow), lids)

    def _lid_region(self, lids):
        """(y0, y1, x0, x1) on the full-resolution region around what the lid shift ``lids``
        moves (``motion.lid_box``), or None."""
        from ..motion import lid_box

        box = None if lids is None else lid_box(*lids)
        if box is None:
            return None
        bx0, by0, bx1, by1 = (np.array(box) * self.size - 0.5).tolist()
        corners = np.array([[bx0, by0, 1], [bx1, by0, 1], [bx0, by1, 1], [bx1, by1, 1]]) @ invert(self.m).T
        rx0, ry0 = self.roi[:2]
        x0, y0 = np.floor(corners.min(0)).astype(int) - 1 - (rx0, ry0)
        x1, y1 = np.ceil(corners.max(0)).astype(int) + 2 - (rx0, ry0)
        h, w = self.shape
        y0, y1, x0, x1 = max(0, int(y0)), min(h, int(y1)), max(0, int(x0)), min(w, int(x1))
        return (y0, y1, x0, x1) if y1 > y0 and x1 > x0 else None

    def _lid_shift(self, lids, box) -> tuple[np.ndarray, np.ndarray]:
        """The lid shift's backward displacement (frame pixels, x and y) of every pixel of
        ``box`` (``_box``'s form): ``motion.lid_source`` evaluated per full-resolution pixel,
        so the closed lids' seam stays one pixel sharp however large the face."""
        from ..motion import lid_source

        y0, y1, x0, x1 = box
        xs, ys = (c[y0:y1, x0:x1].astype(np.float64) for c in self._coords())
        m = self.m
        u = (m[0, 0] * xs + m[0, 1] * ys + m[0, 2] + 0.5) / self.size   # crop units
        v = (m[1, 0] * xs + m[1, 1] * ys + m[1, 2] + 0.5) / self.size
        dv = (lid_source(*lids, u.astype(np.float32), v.astype(np.float32)) - v) * self.size
        return (self._lin[0, 1] * dv).astype(np.float32), (self._lin[1, 1] * dv).astype(np.float32)

    def _lash_weight(self, lids):
        """(box, weight): the lash line of closing eyes (``motion.lash_weight``) per
        full-resolution pixel of the lid shift's region (``_lid_region``), or (None, None)."""
        from ..motion import lash_weight

        box = self._lid_region(lids)
        if box is None:
            return None, None
        y0, y1, x0, x1 = box
        xs, ys = (c[y0:y1, x0:x1].astype(np.float64) for c in self._coords())
        m = self.m
        u = (m[0, 0] * xs + m[0, 1] * ys + m[0, 2] + 0.5) / self.size   # crop units
        v = (m[1, 0] * xs + m[1, 1] * ys + m[1, 2] + 0.5) / self.size
        return box, lash_weight(*lids, u.astype(np.float32), v.astype(np.float32))

    def _lashed(self, region: np.ndarray, lids, level: float) -> None:
        """Draw the lash line of closing eyes into ``region`` (the face's region of the
        output, h,w,3 uint8, in place) at full resolution: where its weight w asks, pixels
        brighter than ``level`` (luma 0..255) go towards it and their chroma shrinks by w / 2."""
        box, w = self._lash_weight(lids)
        if box is None or not (w > 1e-3).any():
            return
        y0, y1, x0, x1 = box
        patch = region[y0:y1, x0:x1]
        f = patch.astype(np.float32)
        luma = cv2.transform(f, LUMA)
        luma = luma + w * np.minimum(float(level) - luma, 0)
        keep = 1.0 - 0.5 * w
        new = cv2.add(cv2.multiply(cv2.transform(f, CHROMA), cv2.merge([keep, keep, keep])),
                      cv2.merge([luma, luma, luma]), dtype=cv2.CV_8U)
        cv2.copyTo(new, (w > 1e-3).astype(np.uint8), patch)

    def _warped(self, source: np.ndarray, d_grid: np.ndarray, lids=None) -> np.ndarray:
        """The region of ``source`` backward-warped by a grid displacement (crop pixels)
        and the lid shift ``lids``."""
        # pixels that barely move are copied, not resampled (resampling softens them);
        # only the bounding box of the moving pixels is resampled. OpenCV throughout:
        # the numpy equivalents took as long as the resampling itself.
        gx, gy = cv2.split(cv2.transform(np.ascontiguousarray(d_grid, np.float32), self._lin))
        moving = cv2.compare(cv2.max(cv2.absdiff(gx, 0.0), cv2.absdiff(gy, 0.0)), 0.05, cv2.CMP_GE)
        sy, sx = self.slices
        base = source[sy, sx].copy()
        box = union_box(self._box(moving), self._lid_region(lids))
        if box is None:
            return base
        y0, y1, x0, x1 = box
        xs, ys = self._coords()
        lid = self._lid_shift(lids, box) if lids is not None else (0.0, 0.0)
        maps = []
        for g, grid, shift in ((gx, xs, lid[0]), (gy, ys, lid[1])):
            d = self._full(g)[y0:y1, x0:x1]
            d = cv2.subtract(cv2.threshold(d, 0.05, 0, cv2.THRESH_TOZERO)[1],
                             cv2.threshold(-d, 0.05, 0, cv2.THRESH_TOZERO)[1])  # |d| < 0.05 -> 0
            maps.append(cv2.add(cv2.add(d, grid[y0:y1, x0:x1]), shift))
        # remap from the whole frame so the warp can pull pixels from outside the region;
        # cubic: bilinear resampling at sub-pixel offsets blurs the photo (sharpness -10 %)
        base[y0:y1, x0:x1] = cv2.remap(source, maps[0], maps[1], cv2.INTER_CUBIC,
                                       borderMode=cv2.BORDER_REPLICATE)
        return base

    def _relaxed(self, base: np.ndarray, relax: np.ndarray) -> np.ndarray:
        """``base`` (the moved region, h,w,3 uint8) with the crease texture taken away where
        ``relax`` (S,S crop mask, 0..1) asks: the luma above fine detail (pores, kept) has its
        valleys narrower than RELAX_FILL filled (a grey-level closing) and is smoothed at
        RELAX_SIGMAS[1]; what is darker than that (creases, a furrow's shading) goes fully,
        what is brighter (ridges) by RELAX_RIDGE, and fine detail darker than the skin's own
        texture goes too inside the band's valleys (a crease's core, ``valley_share``);
        elsewhere the skin keeps its grain. Broad shading stays. The same change on R, G and
        B, so no hue changes. Elsewhere ``base`` is unchanged."""
        w_grid = self._to_grid(np.ascontiguousarray(relax, np.float32), border=0.0)
        box = self._box((w_grid > 1e-3).astype(np.uint8))
        if box is None:
            return base
        y0, y1, x0, x1 = box
        eye_px = RELAX_EYE * self.size / np.sqrt(abs(np.linalg.det(self.m[:, :2])))
        reach = fill_kernel(eye_px)
        pad = int(3 * RELAX_SIGMAS[1] * eye_px) + reach + 1   # with the surroundings, not the box's edge
        h, w = base.shape[:2]
        py0, py1, px0, px1 = max(0, y0 - pad), min(h, y1 + pad), max(0, x0 - pad), min(w, x1 + pad)
        luma = cv2.transform(base[py0:py1, px0:px1].astype(np.float32), LUMA)
        fine = cv2.GaussianBlur(luma, (0, 0), max(0.5, RELAX_SIGMAS[0] * eye_px))
        kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * reach + 1,) * 2)
        filled = cv2.erode(cv2.dilate(fine, kernel), kernel)          # valleys filled
        band = fine - cv2.GaussianBlur(filled, (0, 0), RELAX_SIGMAS[1] * eye_px)
        band = np.where(band < 0, band, RELAX_RIDGE * band)
        # a crease's sharp core lies in the fine detail too: what is darker than the skin's
        # own texture (RELAX_TEXTURE x its median absolute detail) goes as well
        detail = luma - fine
        floor = RELAX_TEXTURE * float(np.median(np.abs(detail))) + 0.5
        inner = (slice(y0 - py0, y1 - py0), slice(x0 - px0, x1 - px0))
        weight = self._full(w_grid)[y0:y1, x0:x1]
        band, core = band[inner], np.minimum(detail + floor, 0)[inner]
        band = band + core * valley_share(band, weight)
        delta = -weight * band
        out = base.copy()
        patch = out[y0:y1, x0:x1]
        new = cv2.add(patch.astype(np.float32), cv2.merge([delta, delta, delta]), dtype=cv2.CV_8U)
        cv2.copyTo(new, (weight > 1e-3).astype(np.uint8), patch)
        return out

    def _sealed(self, base: np.ndarray, seam: np.ndarray, colour: np.ndarray) -> np.ndarray:
        """``base`` (h,w,3 uint8) with the line where sealed lips meet drawn at full
        resolution: where ``seam`` (S,S crop mask, 0..1) asks, pixels brighter than the line's
        ``colour`` (RGB, the lips' own, darkened) take it on, fully from 1.25 x its luma, so
        the teeth that the warp's jump between the lips sweeps through at any scale become
        the lip line, not a grey streak; darker pixels stay."""
        w_grid = self._to_grid(np.ascontiguousarray(seam, np.float32), border=0.0)
        box = self._box((w_grid > 1e-3).astype(np.uint8))
        if box is None:
            return base
        y0, y1, x0, x1 = box
        weight = self._full(w_grid)[y0:y1, x0:x1]
        out = base.copy()
        patch = out[y0:y1, x0:x1]
        f = patch.astype(np.float32)
        colour = np.asarray(colour, np.float32)
        level = float(LUMA[0] @ colour)
        t = np.clip((cv2.transform(f, LUMA) - level) / (0.25 * level + 1.0), 0, 1)
        k = weight * t * t * (3 - 2 * t)
        new = cv2.add(f, cv2.merge([k * (c - f[..., n]) for n, c in enumerate(colour)]), dtype=cv2.CV_8U)
        cv2.copyTo(new, (weight > 1e-3).astype(np.uint8), patch)
        return out

    def _paint_rgb(self, out: np.ndarray, base: np.ndarray, edit) -> None:
        """``out``'s region = w * C + (1 - w) * base, w = (1 - A) * feather."""
        keep = np.ascontiguousarray(1.0 - edit.attention, np.float32)  # warp 1-A so zeros stay exact
        w = self._full(self._to_grid(keep, border=0.0) * self.feather)
        c = self._full(self._to_grid(np.ascontiguousarray(edit.paint), border=None))
        # blendLinear: (w*c + (1-w)*base) / (1 + 1e-5), rounded; exact where w == 0.
        out[self.slices] = cv2.blendLinear(c, np.ascontiguousarray(base), w, 1.0 - w)

    def _paint_luma(self, out: np.ndarray, base: np.ndarray, edit) -> None:
        """``out``'s region = base with the luma change added and its chroma scaled, and the
        chroma of a four-channel paint added (a smile's teeth)."""
        sy, sx = self.slices
        paint = self._to_grid(np.ascontiguousarray(edit.paint, np.float32), border=0.0)
        change = np.empty(paint.shape, np.float32)   # luma change, chroma removed[, chroma added]
        change[..., 0] = paint[..., 0] * self.feather
        change[..., 1] = (1.0 - paint[..., 1]) * self.feather
        tinted = paint.shape[-1] == 4
        if tinted:
            change[..., 2:] = paint[..., 2:] * self.feather[..., None]
        painted = (np.abs(change[..., 0]) > 1e-3) | (change[..., 1] > 1e-4)
        if tinted:
            painted |= np.abs(change[..., 2:]).max(-1) > 1e-3
        painted = painted.astype(np.uint8)
        region = out[sy, sx]
        region[...] = base
        box = self._box(painted)  # only the painted pixels' box is converted and composited
        if box is None:
            return
        y0, y1, x0, x1 = box
        changed = self._full(painted)[y0:y1, x0:x1]
        planes = cv2.split(np.ascontiguousarray(self._full(change)[y0:y1, x0:x1]))
        d_luma, fade = planes[:2]
        patch = region[y0:y1, x0:x1]
        # In YCrCb (OpenCV's float conversion): Y += d_luma, chroma scaled by 1 - fade. Both
        # conversions are linear, so in RGB: Y + d_luma + (1 - fade) * CHROMA @ rgb.
        f = patch.astype(np.float32)
        keep = 1.0 - fade
        new = cv2.multiply(cv2.transform(f, CHROMA), cv2.merge([keep, keep, keep]))
        if tinted:  # + TINT @ (Cb, Cr) added
            new = cv2.add(new, cv2.transform(cv2.merge(planes[2:]), TINT))
        luma = cv2.transform(f, LUMA) + d_luma
        new = cv2.add(new, cv2.merge([luma, luma, luma]), dtype=cv2.CV_8U)  # rounded, saturated
        cv2.copyTo(new, changed, patch)  # in place: ``patch`` is a view of ``out``
