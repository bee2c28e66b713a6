"""Expression geometry: how each AU moves the 68 landmarks, and the dense warp that follows.

A linear model, fitted by ridge least squares on the prepared training faces
(``training.motion_fit``), gives the aligned landmark positions as ``mean + y @ basis``
(y: 17 AUs on 0..1, positions in crop-side units, 0..1). Editing a face from its own AUs
``y_r`` to a target ``y`` moves its landmarks by ``(y - y_r) @ basis``; a thin-plate spline
through the moved landmarks (plus fixed anchors just outside the crop) turns that into a
dense backward flow, which warps the photo's own pixels, at crop resolution for training
and at full resolution in ``blend``. The generator then paints only what a warp cannot
make (teeth, the mouth's interior, creases, shading).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# dlib's 68-point layout mirrored left <-> right (for flip augmentation and a symmetric fit).
MIRROR = np.array(
    list(range(16, -1, -1))                       # jaw
    + list(range(26, 16, -1))                     # brows
    + [27, 28, 29, 30] + [35, 34, 33, 32, 31]     # nose
    + [45, 44, 43, 42, 47, 46] + [39, 38, 37, 36, 41, 40]  # eyes
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]     # outer lips
    + [64, 63, 62, 61, 60, 67, 66, 65])                    # inner lips
N_LANDMARKS = 68

# Which landmarks each AU may move (FACS: the muscle's region). Without this prior, the
# least-squares fit lets AUs that co-occur in the data (AU06 with AU12, AU15 with AU17)
# move each other's regions.
_BROWS = list(range(17, 27))
_EYES = list(range(36, 48))
_LIDS_UP = [37, 38, 43, 44]
_LIDS_LOW = [40, 41, 46, 47]
_NOSE = list(range(27, 36))
_MOUTH = list(range(48, 68))
_UPPER_LIP = [48, 49, 50, 51, 52, 53, 54, 60, 61, 62, 63, 64]
_LOWER_LIP = [48, 54, 55, 56, 57, 58, 59, 60, 64, 65, 66, 67]
_CHIN = list(range(4, 13))
AU_REGIONS = {
    "AU01": _BROWS, "AU02": _BROWS, "AU04": _BROWS,
    "AU05": _LIDS_UP, "AU06": _LIDS_LOW, "AU07": _LIDS_LOW + _LIDS_UP, "AU45": _EYES,
    "AU09": _NOSE + _UPPER_LIP, "AU10": _UPPER_LIP + [31, 32, 33, 34, 35],
    "AU12": _MOUTH, "AU14": _MOUTH, "AU15": _MOUTH, "AU20": _MOUTH, "AU23": _MOUTH,
    "AU17": _LOWER_LIP + _CHIN, "AU25": _MOUTH, "AU26": _LOWER_LIP + _CHIN,
}
# Fixed points of the warp: a ring a quarter of the crop outside it.
_RING = 0.25


PAINT_MARGIN = 0.06  # crop-side units around a region's landmarks that its paint may reach


def region_masks(points: np.ndarray, au_names, size: int, margin: float = PAINT_MARGIN) -> np.ndarray:
    """Where each AU may be painted: (B,68,2) crop-unit landmarks -> (B,len(au_names),size,size)
    float32 in 0..1, the convex hull of the AU's region (``AU_REGIONS``) grown by ``margin``
    and feathered over as much again."""
    import cv2

    pts = np.asarray(points, np.float32) * size
    grow = max(1, round(margin * size))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    out = np.zeros((len(pts), len(au_names), size, size), np.float32)
    for k, name in enumerate(au_names):
        region = AU_REGIONS[name]
        for b in range(len(pts)):
            hull = cv2.convexHull(np.round(pts[b, region] * 16).astype(np.int32))
            m = np.zeros((size, size), np.uint8)
            cv2.fillConvexPoly(m, hull, 255, cv2.LINE_AA, shift=4)
            m = cv2.dilate(m, disc)
            out[b, k] = cv2.GaussianBlur(m, (0, 0), grow / 2).astype(np.float32) / 255
    return out


# The head above the jaw stays still: fixed points of the warp beside the temples and over
# the forehead (in eye distances from the landmarks), and the motion fades to zero within
# STILL_FADE eye distances outside the face's contour (jaw line and brows raised by
# FOREHEAD), before and after the move, so a dropped jaw still moves the chin below it.
FOREHEAD = 0.5
STILL_FADE = 0.3
_TEMPLE = 0.35


def head_anchors(landmarks: torch.Tensor) -> torch.Tensor:
    """(B,68,2) crop-unit landmarks -> (B,10,2) fixed points of the warp on the head's
    outline above the jaw: beside each temple (at the jaw's top and the outer brow's
    height) and over the forehead (above both brows' ends and middles)."""
    eye = (landmarks[:, 42:48].mean(1) - landmarks[:, 36:42].mean(1)).norm(dim=-1)[:, None]  # (B,1)
    up = torch.zeros_like(landmarks[:, :1])
    up[..., 1] = 1.0
    side = torch.zeros_like(landmarks[:, :1])
    side[..., 0] = 1.0
    e = eye[..., None]
    # slices, not lists of indices: a list becomes an index tensor that is copied to the GPU,
    # and that copy waits for all queued GPU work
    temples = torch.cat([landmarks[:, 0:1] - _TEMPLE * e * side, landmarks[:, 16:17] + _TEMPLE * e * side,
                         landmarks[:, 17:18] - (_TEMPLE * side + 0.2 * up) * e,
                         landmarks[:, 26:27] + (_TEMPLE * side - 0.2 * up) * e], 1)
    brows = torch.cat([landmarks[:, 17:22:2], landmarks[:, 22:27:2]], 1)  # 17 19 21 22 24 26
    forehead = brows - (FOREHEAD + STILL_FADE) * e * up
    return torch.cat([temples, forehead], 1)


def still_mask(src: np.ndarray, dst: np.ndarray, size: int, extent: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """(B,size,size) float32: 1 inside the face's contour (jaw line and brows raised by
    FOREHEAD eye distances, the hull of the landmarks before ``src`` and after ``dst`` the
    move, (B,68,2) crop units), falling smoothly to 0 at STILL_FADE eye distances outside
    it; on a grid covering ``extent`` (crop units). The motion is multiplied by it."""
    import cv2

    lo, hi = extent
    out = np.empty((len(src), size, size), np.float32)
    for b in range(len(src)):
        eye = float(np.linalg.norm(src[b, 42:48].mean(0) - src[b, 36:42].mean(0)))
        pts = []
        for lm in (src[b], dst[b]):
            pts += [lm[0:17], lm[17:27] - (0, FOREHEAD * eye)]
        px = (np.concatenate(pts) - lo) / (hi - lo) * size - 0.5
        m = np.full((size, size), 255, np.uint8)
        cv2.fillConvexPoly(m, cv2.convexHull(np.round(px * 16).astype(np.int32)), 0, cv2.LINE_AA, shift=4)
        dist = cv2.distanceTransform(m, cv2.DIST_L2, 5)
        t = np.clip(1 - dist / max(1.0, STILL_FADE * eye / (hi - lo) * size), 0, 1)
        out[b] = t * t * (3 - 2 * t)
    return out


# Where each AU's texture lies (creases, folds), for relaxing it when the AU falls: polygons
# of landmarks plus offsets in eye distances (x right, y down), mirrored to the face's other
# side where marked. Brows, eyes, nostrils and lips stay outside them: their edges are
# features, not creases.
_NASOLABIAL = [(31, 0.0, 0.05), (48, -0.08, 0.22), (48, -0.45, 0.1), (41, -0.25, 0.3), (40, 0.0, 0.3)]
# The forehead's horizontal lines above the brows (AU01, AU02), short of the hairline.
_FOREHEAD = [(17, 0.05, -0.12), (19, 0.0, -0.15), (24, 0.0, -0.15), (26, -0.05, -0.12),
             (24, 0.0, -0.5), (19, 0.0, -0.5)]
# Under each eye, between the lower lid and the cheek's top: the lines and bags a smile's
# raised cheeks push up (AU06, AU12), short of the lid's edge.
_MALAR = [(39, 0.0, 0.12), (40, 0.0, 0.1), (41, 0.0, 0.1), (36, -0.1, 0.08), (36, -0.2, 0.35),
          (41, 0.0, 0.5), (39, 0.05, 0.45)]
RELAX_REGIONS = {
    "AU04": [[(21, 0.0, -0.15), (22, 0.0, -0.15), (22, -0.05, -0.7), (21, 0.05, -0.7),
              (27, -0.15, 0.0), (27, 0.15, 0.0)]],
    "AU09": [[(27, 0.0, -0.05), (39, 0.15, 0.0), (31, 0.0, -0.12), (35, 0.0, -0.12), (42, -0.15, 0.0)]],
    "AU06": [_NASOLABIAL, "mirror", _MALAR, "mirror"],
    "AU10": [_NASOLABIAL, "mirror"],
    "AU12": [_NASOLABIAL, "mirror", _MALAR, "mirror"],
    "AU01": [_FOREHEAD],
    "AU02": [_FOREHEAD],
}


def _relax_polygons(name: str, lm: np.ndarray) -> list[np.ndarray]:
    eye = float(np.linalg.norm(lm[42:48].mean(0) - lm[36:42].mean(0)))
    polys = []
    for spec in RELAX_REGIONS[name]:
        if spec == "mirror":
            spec = [(int(MIRROR[i]), -dx, dy) for i, dx, dy in polys_spec]
        polys_spec = spec
        polys.append(np.array([lm[i] + (dx * eye, dy * eye) for i, dx, dy in spec], np.float32))
    return polys


def relax_mask(points: np.ndarray, falls: np.ndarray, size: int) -> np.ndarray:
    """How much to relax each pixel's crease texture: (B,68,2) crop-unit landmarks and
    (B, len(RELAX_REGIONS)) falls on 0..1 (one per AU of ``RELAX_REGIONS``, in its order)
    -> (B,size,size) float32 in 0..1, each AU's polygons filled with its fall, shrunk and
    feathered inwards (nothing at their edges), the largest kept."""
    import cv2

    out = np.zeros((len(points), size, size), np.float32)
    feather = max(1.0, 0.015 * size)
    for b in range(len(points)):
        for k, name in enumerate(RELAX_REGIONS):
            if falls[b, k] <= 0:
                continue
            m = np.zeros((size, size), np.uint8)
            for poly in _relax_polygons(name, points[b]):
                cv2.fillConvexPoly(m, cv2.convexHull(np.round(poly * size * 16).astype(np.int32)),
                                   255, cv2.LINE_AA, shift=4)
            m = cv2.erode(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * round(feather) + 1,) * 2))
            m = cv2.GaussianBlur(m, (0, 0), feather).astype(np.float32) / 255
            out[b] = np.maximum(out[b], m * falls[b, k])
    return out


def anchor_points(per_side: int = 5) -> np.ndarray:
    t = np.linspace(-_RING, 1 + _RING, per_side + 1)[:-1]
    lo, hi = -_RING, 1 + _RING
    pts = [(x, lo) for x in t] + [(hi, y) for y in t] + [(1 - x, hi) for x in t] + [(lo, 1 - y) for y in t]
    return np.array(pts, np.float32)




def mirror_landmarks(lm: torch.Tensor) -> torch.Tensor:
    """Landmarks (..., 68, 2) of the horizontally flipped crop."""
    out = lm[..., torch.as_tensor(MIRROR, device=lm.device), :].clone()
    out[..., 0] = 1 - out[..., 0]
    return out


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward-warp ``image`` by ``flow`` (B,2,h,w grid units, resized to the image if needed)."""
    b, _, h, w = image.shape
    if flow.shape[-2:] != (h, w):
        flow = F.interpolate(flow, size=(h, w), mode="bilinear", align_corners=False)
    ys = torch.linspace(-1 + 1 / h, 1 - 1 / h, h, device=image.device, dtype=flow.dtype)
    xs = torch.linspace(-1 + 1 / w, 1 - 1 / w, w, device=image.device, dtype=flow.dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    grid = torch.stack([gx, gy], dim=-1).unsqueeze(0) + flow.permute(0, 2, 3, 1)
    return F.grid_sample(image, grid.to(image.dtype), mode="bilinear", padding_mode="border",
                         align_corners=False)


_ANCHORS: dict = {}


def _anchor_tensor(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``anchor_points()`` as a tensor on ``device``, made once (each copy to a GPU would
    wait for the work queued there)."""
    key = (str(device), dtype)
    if key not in _ANCHORS:
        _ANCHORS[key] = torch.as_tensor(anchor_points(), dtype=dtype).to(device)
    return _ANCHORS[key]


def _tps_kernel(d2: torch.Tensor) -> torch.Tensor:
    return 0.5 * d2 * torch.log(d2.clamp_min(1e-12))   # r^2 log r


# The warp reaches this far around the crop (crop-side units): a jaw drop moves the chin,
# which the tight crop puts at its bottom edge, and the neck below it.
EXTENT = (-_RING, 1 + _RING)


class ThinPlate:
    """The thin-plate spline that moves ``src`` landmarks onto ``dst`` (both (B, 68, 2),
    crop-side units), fitted once and evaluated on any grid.

    Backward: the output pixel at ``dst[i]`` samples the input at ``src[i]``; between the
    landmarks and the fixed anchor ring the spline interpolates. Fitted and evaluated in
    float64 whatever the autocast or TF32 state: its coefficients are large and cancel, so
    float32 is off by 0.1 px and TF32 by tens of pixels.
    """

    def __init__(self, src: torch.Tensor, dst: torch.Tensor, smoothing: float = 1e-5,
                 fixed: torch.Tensor | None = None):
        with torch.autocast(src.device.type, enabled=False):
            src, dst = src.double(), dst.double()
            b = src.shape[0]
            anchors = _anchor_tensor(src.device, src.dtype).expand(b, -1, -1)
            if fixed is not None:  # more fixed points (B, F, 2), such as ``head_anchors``
                anchors = torch.cat([anchors, fixed.to(src)], 1)
            self.ctrl = torch.cat([dst, anchors], 1)                             # (B, K, 2)
            vals = torch.cat([src - dst, torch.zeros_like(anchors)], 1)          # (B, K, 2)
            k = self.ctrl.shape[1]
            kern = _tps_kernel(torch.cdist(self.ctrl, self.ctrl).square())
            kern = kern + smoothing * torch.eye(k, device=src.device, dtype=src.dtype)
            p = torch.cat([torch.ones_like(self.ctrl[..., :1]), self.ctrl], -1)  # (B, K, 3)
            top = torch.cat([kern, p], 2)
            bottom = torch.cat([p.transpose(1, 2), p.new_zeros(b, 3, 3)], 2)
            rhs = torch.cat([vals, vals.new_zeros(b, 3, 2)], 1)
            # solve_ex: linalg.solve's singularity check would make the CPU wait for the GPU;
            # the smoothed kernel and the anchor ring keep the system regular
            self.coef = torch.linalg.solve_ex(torch.cat([top, bottom], 1), rhs)[0]  # (B, K+3, 2)

    def flow(self, size: int, extent: tuple[float, float] = (0.0, 1.0),
             resolution: int | None = None) -> torch.Tensor:
        """Backward flow (B, 2, size, size), float32, on a grid covering ``extent``
        (crop-side units; default the crop), in grid units of the crop (2 = one crop side).
        ``resolution``: evaluate on that coarser grid and upsample bilinearly (it is smooth)."""
        if resolution is not None and resolution < size:
            coarse = self.flow(resolution, extent)
            return F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
        ctrl, coef = self.ctrl, self.coef
        b, k = ctrl.shape[:2]
        with torch.autocast(ctrl.device.type, enabled=False):
            lo, hi = extent
            c = lo + (hi - lo) * (torch.arange(size, device=ctrl.device, dtype=ctrl.dtype) + 0.5) / size
            gy, gx = torch.meshgrid(c, c, indexing="ij")
            grid = torch.stack([gx, gy], -1).reshape(1, -1, 2).expand(b, -1, -1)  # (B, S*S, 2)
            u = _tps_kernel(torch.cdist(grid, ctrl).square())                    # (B, S*S, K)
            gp = torch.cat([torch.ones_like(grid[..., :1]), grid], -1)
            disp = u @ coef[:, :k] + gp @ coef[:, k:]                            # (B, S*S, 2)
            return (2.0 * disp).float().transpose(1, 2).reshape(b, 2, size, size)


# Blink (AU45) is rendered by its own warp of each eye, not by the spline: the fitted motion
# barely moves the lids (the training labels hardly have closed eyes), and a spline that
# pulls the lids together drags the brows down with them. An AU45 rise of c (0..1) moves
# the upper lid down LID_UP * c of the eye's opening and the lower lid up LID_LOW * c; the
# lid skin above (LID_SKIN eye distances) stretches down over the eyeball, the skin below
# stretches up, and what was between the lids is squeezed into the line left between them.
AU45 = 16
LID_UP, LID_LOW = 0.8, 0.12
# eye distances: skin stretched above the upper lid and below the lower lid, and the
# brow's own margin (the stretch stops that far under the brow's landmarks)
LID_SKIN = (0.35, 0.2, 0.12)
LASH = 0.04  # eye distances beyond each lid's landmarks that the closed line repeats (lashes, skin)
_EYE_UPPER = ([36, 37, 38, 39], [42, 43, 44, 45])   # corner, upper lid, corner
_EYE_LOWER = ([36, 41, 40, 39], [42, 47, 46, 45])


def lid_motion(landmarks: np.ndarray, delta45: np.ndarray) -> np.ndarray:
    """(B,68,2) landmark displacement (crop units) of an AU45 rise ``delta45`` (B,) 0..1 (a
    fall moves nothing: a warp cannot open a closed eye)."""
    out = np.zeros_like(landmarks, dtype=np.float32)
    c = np.clip(delta45, 0, 1)[:, None, None]
    for up, low in zip(_EYE_UPPER, _EYE_LOWER):
        gap = landmarks[:, low[1:3]] - landmarks[:, up[1:3]]
        out[:, up[1:3]] = LID_UP * c * gap
        out[:, low[1:3]] = -LID_LOW * c * gap
    return out


def lid_flow(landmarks: np.ndarray, delta45: np.ndarray, size: int,
             extent: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """(B,2,size,size) float32 backward flow (grid units, 2 = one crop side, on a grid over
    ``extent``) that closes the eyes of faces with ``landmarks`` (B,68,2 crop units) by
    ``delta45`` (B,): per column of each eye, the lid skin between the brow and the upper lid
    stretches down to the lid's new line, the skin under the lower lid up to its own, and
    the line between them repeats the lash lines (the eyeball is covered); zero beyond the
    eye's corners, above the skin under the brow and below LID_SKIN[1] under the eye."""
    lo, hi = extent
    c = (lo + (hi - lo) * (np.arange(size) + 0.5) / size).astype(np.float32)
    out = np.zeros((len(landmarks), 2, size, size), np.float32)
    for b in range(len(landmarks)):
        lm, k = landmarks[b], float(np.clip(delta45[b], 0, 1))
        if k <= 0:
            continue
        eye = float(np.linalg.norm(lm[42:48].mean(0) - lm[36:42].mean(0)))
        for up, low, brow in zip(_EYE_UPPER, _EYE_LOWER, (range(17, 22), range(22, 27))):
            xs = lm[up, 0]
            cols = np.nonzero((c > xs[0]) & (c < xs[-1]))[0]
            if len(cols) == 0:
                continue
            x = c[cols]
            u = np.interp(x, xs, lm[up, 1])
            lw = np.interp(x, lm[low, 0], lm[low, 1])
            gap = np.maximum(lw - u, 0)
            u2, l2 = u + LID_UP * k * gap, lw - LID_LOW * k * gap
            under_brow = np.interp(x, lm[list(brow), 0], lm[list(brow), 1]) + LID_SKIN[2] * eye
            top = np.minimum(np.maximum(u - LID_SKIN[0] * eye, under_brow), u - 0.05 * eye)
            bot = lw + LID_SKIN[1] * eye
            mid = (u2 + l2) / 2
            y = c[:, None]                                               # (S,1) rows
            src = np.where(y < u2, top + (y - top) * (u - top) / np.maximum(u2 - top, 1e-6),
                           np.where(y < mid, u - LASH * eye, np.where(y < l2, lw + LASH * eye,
                                    lw + (y - l2) * (bot - lw) / np.maximum(bot - l2, 1e-6))))
            inside = (y >= top) & (y <= bot)
            out[b, 1][:, cols] = np.where(inside, 2 * (src - y), 0.0)
    return out


# The mouth's inner contour, corner to corner along the upper and the lower lip.
_INNER_UP, _INNER_LOW = [60, 61, 62, 63, 64], [60, 67, 66, 65, 64]


def _lip_line(lm: np.ndarray, idx: list[int], x: np.ndarray) -> np.ndarray:
    order = np.argsort(lm[idx, 0], kind="stable")
    return np.interp(x, lm[idx, 0][order], lm[idx, 1][order])


# The mouth's cavity where it opens wider than it was: below the top CAVITY_TEETH of the new
# opening (the upper teeth), darkened towards CAVITY_LUMA x the face's own mouth-interior
# luma, fully once the opening grew CAVITY_FULL eye distances.
CAVITY_TEETH = 0.3
CAVITY_FULL = 0.15
CAVITY_LUMA = 0.3


def _openings(src: np.ndarray, dst: np.ndarray, size: int):
    """For each face, how much wider its mouth opens from ``src`` to ``dst`` (0..1, fully at
    CAVITY_FULL eye distances), and where the new opening is: its inside (S,S, 0..1) and each
    pixel's depth from the upper inner lip to the lower (S,S, 0 at the upper lip, 1 at the
    lower); (0, None, None) where it does not open wider."""
    import cv2

    c = (np.arange(size) + 0.5) / size
    for k in range(len(src)):
        eye = float(np.linalg.norm(src[k, 42:48].mean(0) - src[k, 36:42].mean(0)))
        grew = (np.linalg.norm(dst[k, 66] - dst[k, 62]) - np.linalg.norm(src[k, 66] - src[k, 62])) / eye
        strength = float(np.clip(grew / CAVITY_FULL, 0, 1))
        if strength <= 0:
            yield 0.0, None, None
            continue
        poly = dst[k, _INNER_UP + _INNER_LOW[::-1]] * size - 0.5
        inside = np.zeros((size, size), np.uint8)
        cv2.fillPoly(inside, [np.round(poly * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
        up, low = _lip_line(dst[k], _INNER_UP, c), _lip_line(dst[k], _INNER_LOW, c)
        tau = (c[:, None] - up[None]) / np.maximum(low - up, 1e-6)[None]     # (rows, cols)
        yield strength, inside.astype(np.float32) / 255, tau


def _smooth(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0, 1)
    return t * t * (3 - 2 * t)


def cavity_mask(src: np.ndarray, dst: np.ndarray, size: int) -> np.ndarray:
    """(B,size,size) float32 0..1 on the crop: where the mouth's new interior (inside the
    inner lips of ``dst``, (B,68,2) crop units) is cavity, weighted by how much wider the
    opening is than in ``src``; rows of the opening's top CAVITY_TEETH are left alone."""
    import cv2

    out = np.zeros((len(src), size, size), np.float32)
    for k, (strength, inside, tau) in enumerate(_openings(src, dst, size)):
        if strength > 0:
            m = inside * _smooth((tau - CAVITY_TEETH) / 0.15)
            out[k] = cv2.GaussianBlur(m, (0, 0), max(0.5, 0.01 * size)) * strength
    return out


# Lips that part without the jaw (AU25 alone, a smile) part over the upper teeth: the top
# SMILE_TEETH of the new opening shows them, brightest in its middle and fading out over the
# outer SMILE_CORNERS of the opening's width on each side (the dark mouth corners); the rest
# is the shadow between the teeth and the lower lip.
SMILE_TEETH = 0.75
SMILE_CORNERS = 0.25


def smile_teeth_mask(src: np.ndarray, dst: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(teeth, shadow), each (B,size,size) float32 0..1 on the crop: where the new opening of
    lips parted without the jaw (inside the inner lips of ``dst``, (B,68,2) crop units) shows
    the upper teeth, and where it shows the shadow below and beside them; both weighted by
    how much wider the opening is than in ``src``, as ``cavity_mask``."""
    import cv2

    teeth = np.zeros((len(src), size, size), np.float32)
    shadow = np.zeros_like(teeth)
    c = (np.arange(size) + 0.5) / size
    for k, (strength, inside, tau) in enumerate(_openings(src, dst, size)):
        if strength <= 0:
            continue
        left, right = dst[k, 60, 0], dst[k, 64, 0]
        across = np.minimum(c - left, right - c) / max(right - left, 1e-6)  # 0 at a corner, 0.5 mid
        band = _smooth((SMILE_TEETH - tau) / 0.2) * _smooth(across / SMILE_CORNERS)[None]
        blur = max(0.5, 0.01 * size)
        teeth[k] = cv2.GaussianBlur(inside * band, (0, 0), blur) * strength
        shadow[k] = cv2.GaussianBlur(inside * (1 - band), (0, 0), blur) * strength
    return teeth, shadow


class LandmarkMotion(torch.nn.Module):
    """The fitted AU -> landmark model, kept as buffers (it travels inside weights files)."""

    def __init__(self, mean=None, basis=None, n_aus: int = 17):
        super().__init__()
        mean = torch.zeros(N_LANDMARKS, 2) if mean is None else torch.as_tensor(mean, dtype=torch.float32)
        basis = (torch.zeros(n_aus, N_LANDMARKS, 2) if basis is None
                 else torch.as_tensor(basis, dtype=torch.float32))
        self.register_buffer("mean", mean.clone())
        self.register_buffer("basis", basis.clone())
        # The motion of AU rises where it differs from ``basis`` (B, 68, 2 per AU), or None: a
        # weights file's ``motion_rise`` rows (``model.load_generator``). Kept out of the
        # state dict, so generators, checkpoints and training are unchanged by it.
        self.register_buffer("rise", None, persistent=False)
        # Likewise the motion of AU falls where it differs from ``basis``: ``motion_fall`` rows,
        # for AUs read on another scale than ``basis`` was fitted on (AU04 by the learned estimator).
        self.register_buffer("fall", None, persistent=False)

    def displacement(self, delta_aus: torch.Tensor) -> torch.Tensor:
        """(B, 17) AU change on 0..1 -> (B, 68, 2) landmark displacement (crop-side units):
        rises by ``rise`` and falls by ``fall`` where they are set, everything else by ``basis``."""
        delta = delta_aus.float()
        if self.rise is None and self.fall is None:
            return (delta @ self.basis.flatten(1)).view(-1, N_LANDMARKS, 2)
        rise = self.basis if self.rise is None else self.rise
        fall = self.basis if self.fall is None else self.fall
        out = delta.clamp(max=0) @ fall.flatten(1) + delta.clamp(min=0) @ rise.flatten(1)
        return out.view(-1, N_LANDMARKS, 2)

    def _rows(self, rows: dict):
        if not rows:
            return None
        out = self.basis.clone()
        for k, row in rows.items():
            out[k] = torch.as_tensor(row, dtype=out.dtype, device=out.device)
        return out

    def _differ(self, table) -> dict:
        if table is None:
            return {}
        return {k: table[k].detach().cpu().clone() for k in range(len(table))
                if not torch.equal(table[k], self.basis[k])}

    def set_rise(self, rows: dict) -> None:
        """Move the landmarks of these AUs' rises by their own rows ({AU index: (68, 2)})
        instead of ``basis``; an empty dict undoes it."""
        self.rise = self._rows(rows)

    def set_fall(self, rows: dict) -> None:
        """As ``set_rise``, for these AUs' falls."""
        self.fall = self._rows(rows)

    def rise_rows(self) -> dict:
        """{AU index: (68, 2) tensor} of the rises that differ from ``basis`` (``set_rise``)."""
        return self._differ(self.rise)

    def fall_rows(self) -> dict:
        """{AU index: (68, 2) tensor} of the falls that differ from ``basis`` (``set_fall``)."""
        return self._differ(self.fall)

    def spline(self, landmarks: torch.Tensor, source_aus: torch.Tensor,
               target_aus: torch.Tensor) -> tuple[ThinPlate, torch.Tensor]:
        """(the warp's spline, moved landmarks (B,68,2)) for an AU change of faces whose
        aligned landmarks are ``landmarks``."""
        moved = landmarks.float() + self.displacement(target_aus - source_aus)
        return ThinPlate(landmarks, moved, fixed=head_anchors(landmarks.float())), moved
