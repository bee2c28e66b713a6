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



def eye_distance(landmarks: np.ndarray):
    """Distance between the two eyes' centres (means of 36-41 and 42-47) of 68 ``landmarks``
    in their units, the face's own scale that the motions here are measured in: a float for
    (68,2), a (B,) array for (B,68,2)."""
    lm = np.asarray(landmarks)
    d = np.linalg.norm(lm[..., 42:48, :].mean(-2) - lm[..., 36:42, :].mean(-2), axis=-1)
    return float(d) if lm.ndim == 2 else d


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
        eye = eye_distance(src[b])
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
# Between the brows, from the nose's top up: a frown's furrow (AU04) and the lines a wrinkled
# nose (AU09) pulls down across the nose's root.
_GLABELLA = [(21, 0.0, -0.15), (22, 0.0, -0.15), (22, -0.05, -0.7), (21, 0.05, -0.7),
             (27, -0.15, 0.0), (27, 0.15, 0.0)]
RELAX_REGIONS = {
    "AU04": [_GLABELLA,
             # the lines above the inner brow heads (the brows' hair is cut out: RELAX_BROW)
             [(21, -0.2, -0.1), (22, 0.2, -0.1), (22, 0.15, -0.65), (21, -0.15, -0.65)]],
    # the nose's bridge from between the eyes (the wrinkles across its root) down its sides
    # under the eyes' inner corners (the bunny lines), above the nostrils' wings
    "AU09": [[(27, -0.15, -0.22), (27, 0.15, -0.22), (42, -0.08, 0.0), (42, 0.0, 0.14), (35, 0.1, -0.2),
              (35, 0.0, -0.08), (31, 0.0, -0.08), (31, -0.1, -0.2), (39, 0.0, 0.14), (39, 0.08, 0.0)],
             _GLABELLA],
    "AU06": [_NASOLABIAL, "mirror", _MALAR, "mirror"],
    "AU10": [_NASOLABIAL, "mirror"],
    "AU12": [_NASOLABIAL, "mirror", _MALAR, "mirror"],
    "AU01": [_FOREHEAD],
    "AU02": [_FOREHEAD],
}


# The brows' hair, cut out of every region (its dark is a feature, and the closing of
# ``render.blend`` would fill it): each brow from its landmarks (the hair's upper edge)
# RELAX_BROW[0] eye distances up to RELAX_BROW[1] down, and RELAX_BROW[2] past its inner end.
RELAX_BROW = (0.0, 0.17, 0.02)


def _brow_polygons(lm: np.ndarray) -> list[np.ndarray]:
    """Each brow's hair as a polygon (crop units, of landmarks ``lm`` (68, 2)), per RELAX_BROW."""
    eye = eye_distance(lm)
    up, down, inner = RELAX_BROW
    out = []
    for idx, sign in ((list(range(17, 22)), 1.0), (list(range(22, 27)), -1.0)):
        pts = lm[idx].astype(np.float32)
        tip = (pts[-1] if sign > 0 else pts[0]) + (sign * inner * eye, 0.0)
        pts = np.concatenate([pts, tip[None]])
        out.append(np.concatenate([pts - (0, up * eye), pts + (0, down * eye)]).astype(np.float32))
    return out


def _relax_polygons(name: str, lm: np.ndarray) -> list[np.ndarray]:
    eye = eye_distance(lm)
    polys, last = [], []
    for spec in RELAX_REGIONS[name]:
        if spec == "mirror":  # the previous polygon, on the other side of the face
            spec = [(int(MIRROR[i]), -dx, dy) for i, dx, dy in last]
        last = spec
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
            for poly in _brow_polygons(points[b]):  # the brows' hair stays
                cv2.fillConvexPoly(m, cv2.convexHull(np.round(poly * size * 16).astype(np.int32)),
                                   0, cv2.LINE_AA, shift=4)
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


# The lids (a blink, AU45, a fall of the upper lid raiser, AU05, and an AU06 rise's lower
# lids) move by their own warp of each eye, not by the spline: the fitted motion barely
# moves the lids (the training labels hardly have closed eyes, the AU05 row moves only the
# upper lids and the AU06 row a fifth of what cfee's coded smiles show), and a spline
# that pulls the lids together drags the brows down with them. Each upper lid comes down a
# fraction of the eye's own opening, each lower lid up a fraction (``lid_shift``); per
# column of the eye, the lid skin above (LID_SKIN eye distances) stretches down to the
# lid's new line, the skin below stretches up, and what shows between the lids is squeezed
# between them.
AU01, AU05, AU45 = 0, 3, 16
# An AU45 rise c: upper lid down LID_UP * c, lower up LID_LOW * c. The lids meet a fifth of
# the opening above the lower lid: dlib then reads the lower lid on the seam, where with the
# seam nearer the lower lid's line it read the skin under it as a still open eye.
LID_UP, LID_LOW = 0.8, 0.2
# eye distances: skin stretched above the upper lid and below the lower lid, and the
# brow's own margin (the stretch stops that far under the brow's landmarks)
LID_SKIN = (0.35, 0.2, 0.12)
# A closed eye (``closure``): the lid skin is sampled mostly from above the lid's fold
# (``_lid_stretch``), down to LASH eye distances above the upper
# lid's landmarks (the lashes; dlib's lid points often sit on the white of the eye), and the
# skin under the line starts RIM eye distances under the lower lid's landmarks (past its
# wet rim and the lower lashes' shadow), so no white of the eye, iris, lid fold or second
# lid line is left to read as an open eye.
LID_CURVE, LASH, RIM = 1.0, 0.02, 0.12
# A shut eye's lids meet on the chord between its corners (as far as the upper lid still
# comes down half its way), as a real closed eye's lash line runs: following the lower
# lid's curve, the seam dipped in the middle and rose to both corners, a smile-shaped line
# under a pale lid that read as the lower lid of an open eye.
SEAM_FLAT = 1.0
# An AU05 fall of one unit (0..5) lowers the upper lid by AU05_OPEN eye distances, at most
# AU05_MAX of the eye's opening. The landmark geometry's AU05 is the lid gap over the
# population's neutral gap in units of 0.0256 eye distances (spread / gain in
# ``estimation/au_calibration.json``); lowered that far, wide-eyed people's lids came down
# to their pupils (drowsy) on held-out cfee surprised and fearful starts taken to neutral,
# so the lid comes down 0.6 of it: to the top of the iris, the white above it covered.
AU05_OPEN, AU05_MAX = 0.015, 0.4
# The lower lid that a wide eye dropped comes back up by AU05_LOWER of the upper lid's fall
# (21 cfee training people, surprised to neutral photos against the eye corners: the upper
# lid falls 0.019 eye distances, the lower one rises 0.014 on median). Not while a blink
# shuts the eye (its lids meet where LID_UP, LID_LOW put them).
AU05_LOWER = 0.75
# An AU06 rise (cheek raiser: a real smile's narrowed eyes) of one unit raises the lower
# lid by AU06_LOW eye distances, at most AU06_MAX of the eye's opening. On cfee's training
# people the coded AU06 raises the lower lids (relative to the eye corners, against each
# one's neutral photo) by 0.0081 eye distances per unit; the fitted basis's AU06 row moves
# them 0.0015 of it, the lid shift the rest. The lift stops where the lids are AU06_FLOOR
# eye distances apart (a quarter of those people's happy photos are narrower: 0.088; median
# 0.104), so eyes already narrowed by a squint (disgust, anger) are not shut further.
AU06 = 4
AU06_LOW, AU06_MAX, AU06_FLOOR = 0.0065, 0.25, 0.09
# From startled eyes (an AU05 fall under falling inner brows, AU01: surprise, fear) the lift
# grows by AU06_WIDE x the smaller of the two falls (0..5 units): a surprised start's lower lid
# has further to come. cfee's training people's happy photos have the lower lid 0.028 eye
# distances higher than their surprised ones (0.021 against their neutral ones, median), and
# `happy` from their surprised starts left it 0.006 lower than their own happy photos
# (re-detected, median of 34), the stare read as fear. At 0.6, 122 of those people's 144
# surprised eyes reach AU06_FLOOR (2 without the gain) and the recogniser reads happiness
# from 63 of their 76 fearful starts (61 without it; 62 at 1.2), 64 of 72 surprised (as
# without it). A glare (AU05 with a frown, AU01 still: anger) or a start whose AU05 does not
# fall lifts as before: an angry held-out start went from happiness to a tie with anger.
AU06_WIDE = 0.6
# (upper, lower): the share of the eye's rows a closing lid passes over that it covers; the
# rest of what lies between the lids is squeezed into the narrower gap. A lower lid rising
# beyond a blink's share of the upper lid's fall (LID_LOW / LID_UP: an AU06 rise, an AU05
# fall's AU05_LOWER) covers them, as a real smile's cheek pushes the lid over the white under
# the iris: squeezed, the iris's lower rim and the white under it stayed, a line higher. A
# blink's lids squeeze what is between them (covered, half-shut squints read wider to dlib).
LID_COVER = (0.0, 1.0)
_EYE_UPPER = ([36, 37, 38, 39], [42, 43, 44, 45])   # corner, upper lid, corner
_EYE_LOWER = ([36, 41, 40, 39], [42, 47, 46, 45])
_BROW_OF = (range(17, 22), range(22, 27))


def lid_shift(landmarks: np.ndarray, delta_aus: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(upper, lower), each (B, 2 eyes): the fraction of each eye's opening that its upper
    lid comes down and its lower lid comes up for an AU change ``delta_aus`` (B, 17, 0..1
    scale) of faces with ``landmarks`` (B, 68, 2): an AU45 rise (a blink), an AU05 fall
    (wide eyes at rest: the upper lids down, the lower ones up AU05_LOWER of that) and an
    AU06 rise (the lower lids, ``_cheek_lift``; further from startled eyes). Rises of AU05
    and falls of AU45 move nothing here (an AU05 rise parts the lids by ``lid_open``)."""
    d = np.asarray(delta_aus, np.float32)
    blink = np.clip(d[:, AU45], 0, 1)[:, None]
    upper = np.repeat(LID_UP * blink, 2, 1)
    lower = np.repeat(LID_LOW * blink, 2, 1)
    fall = np.clip(-d[:, AU05], 0, 1) * 5 * AU05_OPEN                        # eye distances
    for e, (up, low) in enumerate(zip(_EYE_UPPER, _EYE_LOWER)):
        for b, lm in enumerate(np.asarray(landmarks, np.float32)):
            if fall[b] <= 0:
                continue
            gap = float(np.mean(lm[low[1:3], 1] - lm[up[1:3], 1])) / max(eye_distance(lm), 1e-6)
            share = min(fall[b] / max(gap, 1e-6), AU05_MAX)
            upper[b, e] = min(upper[b, e] + share * (1 - upper[b, e] - lower[b, e]), LID_UP)
            # the lower lid a wide eye dropped comes back up (not while a blink shuts the eye)
            lift = min(AU05_LOWER * fall[b] / max(gap, 1e-6), AU05_MAX) * (1 - float(blink[b, 0]))
            lower[b, e] = lower[b, e] + lift * max(1 - upper[b, e] - lower[b, e], 0)
    _cheek_lift(np.asarray(landmarks, np.float32), d, upper, lower)
    return upper.astype(np.float32), lower.astype(np.float32)


def _cheek_lift(landmarks: np.ndarray, d: np.ndarray, upper: np.ndarray, lower: np.ndarray) -> None:
    """Raise the lower lids (``lower``, in place) for the AU06 rise of ``d`` (B, 17, 0..1):
    AU06_LOW eye distances per unit (times 1 + AU06_WIDE x the smaller of the AU05 and AU01
    falls in units: startled eyes),
    at most AU06_MAX of each eye's opening and never closer than AU06_FLOOR eye distances to
    the upper lid (after its own shift)."""
    startled = np.minimum(np.clip(-d[:, AU05], 0, 1), np.clip(-d[:, AU01], 0, 1))
    wide = 1 + AU06_WIDE * startled * 5
    rise = np.clip(d[:, AU06], 0, 1) * 5 * AU06_LOW * wide                   # eye distances
    for b, lm in enumerate(landmarks):
        if rise[b] <= 0:
            continue
        for e, (up, low) in enumerate(zip(_EYE_UPPER, _EYE_LOWER)):
            gap = float(np.mean(lm[low[1:3], 1] - lm[up[1:3], 1])) / max(eye_distance(lm), 1e-6)
            left = gap * max(1 - upper[b, e] - lower[b, e], 0) - AU06_FLOOR
            lift = min(rise[b], AU06_MAX * gap, max(left, 0))
            lower[b, e] = lower[b, e] + lift / max(gap, 1e-6)


# An AU06 rise (the orbicularis oculi of a real smile, which draws the skin around the eye
# in) lowers the brows: SMILE_BROWS eye distances per unit (0..5) at each brow's inner and
# outer end, in between along the brow. On 36 cfee training people, each one's happy photo
# against their neutral one has the brows (against the eye corners) 0.021 lower at the inner
# ends, 0.026 in the middle and 0.035 at the outer ends (median; about as much where AU06 was
# not coded: the coders' threshold); `happy`'s AU06 3 moves them that far. The fitted basis
# lets AU06 move only the lower lids.
SMILE_BROWS = (0.007, 0.0117)


def smile_brows(landmarks: np.ndarray, delta_aus: np.ndarray) -> np.ndarray:
    """(B,68,2) landmark displacement (crop units) of the brows lowered by the AU06 rise of
    ``delta_aus`` (B,17, 0..1 scale) of faces with ``landmarks`` (B,68,2): perpendicular to
    the line between the eyes, SMILE_BROWS (inner, outer) eye distances per unit."""
    lm = np.asarray(landmarks, np.float32)
    out = np.zeros_like(lm)
    rise = np.clip(np.asarray(delta_aus, np.float32)[:, AU06], 0, 1) * 5
    inner, outer = SMILE_BROWS
    along = np.linspace(outer, inner, 5)                          # 17..21 (and 26..22): outer to inner
    per = np.concatenate([along, along[::-1]])                    # brows 17..26
    for b in np.nonzero(rise > 0)[0]:
        axis = lm[b, 42:48].mean(0) - lm[b, 36:42].mean(0)
        eye = float(np.linalg.norm(axis))
        down = np.array([-axis[1], axis[0]], np.float32) / max(eye, 1e-6)
        out[b, 17:27] = (rise[b] * eye * per)[:, None] * down[None]
    return out


# Eyes widening (an AU05 rise): each lid moves towards where a face at the goal's AU05 has
# it, OPEN_UP (upper lid above its eye corners' chord) and OPEN_LOW (lower lid below it):
# (rest, per unit 0..5) eye distances, fitted on cfee's training people's surprised photos
# (upper 0.094 uncoded, 0.108 at 2, 0.123 at 3; lower 0.050, 0.054, 0.059; the whole gap
# 0.143, 0.165, 0.178). Measured after the spline's own motion, a lid already there stays
# put: a fearful start's raised upper lid is not raised further. A smiling start keeps its
# lower lid, fully at an own AU12 of OPEN_SMILE (0..1; 2.5 of 5, as FALL_SMILE): on cfee's
# held-out smiling starts the drop stretched the iris down under the raised upper lid and
# the recogniser read the stare as fear (surprise 81 % of 37 with the drop, 84 % without).
# Together they move at most OPEN_MAX of the eye's own opening (surprised eyes open 1.5 x an
# angry start's gap, 1.9 x a disgusted one's, median: a squint's lids part, and the eye's own
# white and iris are stretched over the new gap, so no more than that); it fades in over the
# first OPEN_FADE (0..1) of the rise, so a ramp starts from the photo.
OPEN_UP, OPEN_LOW = (0.093, 0.009), (0.050, 0.004)
OPEN_MAX, OPEN_FADE, OPEN_SMILE = 0.6, 0.2, 0.5
AU12 = 8


def lid_heights(lm: np.ndarray, e: int) -> tuple[float, float]:
    """(upper, lower) of eye ``e`` of landmarks ``lm`` (68, 2): how far its upper lid's middle
    is above, and its lower lid's below, the chord between its corners (eye distances)."""
    up, low = _EYE_UPPER[e], _EYE_LOWER[e]
    a, b = lm[up[0]], lm[up[-1]]
    t = (b - a) / max(float(np.linalg.norm(b - a)), 1e-6)
    down = np.array([-t[1], t[0]], np.float32)
    eye = max(eye_distance(lm), 1e-6)
    return -float(np.mean((lm[up[1:3]] - a) @ down)) / eye, float(np.mean((lm[low[1:3]] - a) @ down)) / eye


def lid_open(landmarks: np.ndarray, moved: np.ndarray, delta_aus: np.ndarray,
             goal_aus: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(upper, lower), each (B, 2 eyes), 0 or negative: the share of each eye's opening (of
    ``landmarks``, (B,68,2)) that its upper lid goes up and its lower lid down when the goal
    ``goal_aus`` (B,17, 0..1) raises AU05 by ``delta_aus`` (B,17): each lid of ``moved`` (the
    landmarks after the spline, ``lid_heights``) towards OPEN_UP / OPEN_LOW at the goal's
    AU05 (a smiling start's lower lid less, OPEN_SMILE), together at most OPEN_MAX of the
    eye's gap, fading in over the first OPEN_FADE."""
    d, goal = np.asarray(delta_aus, np.float32), np.asarray(goal_aus, np.float32)
    upper = np.zeros((len(d), 2), np.float32)
    lower = np.zeros((len(d), 2), np.float32)
    fade = np.clip(d[:, AU05] / OPEN_FADE, 0, 1)
    units = 5 * goal[:, AU05]
    smile = np.clip((goal[:, AU12] - d[:, AU12]) / max(OPEN_SMILE, 1e-6), 0, 1)   # the start's AU12
    for b in np.nonzero(fade > 0)[0]:
        lm, lm1 = np.asarray(landmarks[b], np.float32), np.asarray(moved[b], np.float32)
        eye = max(eye_distance(lm), 1e-6)
        for e, (up, low) in enumerate(zip(_EYE_UPPER, _EYE_LOWER)):
            gap = max(float(np.mean(lm[low[1:3], 1] - lm[up[1:3], 1])) / eye, 1e-6)
            hu, hl = lid_heights(lm1, e)
            rise = max(OPEN_UP[0] + OPEN_UP[1] * units[b] - hu, 0.0)          # eye distances
            fall = max(OPEN_LOW[0] + OPEN_LOW[1] * units[b] - hl, 0.0) * (1 - smile[b])
            scale = fade[b] * min(1.0, OPEN_MAX * gap / max(rise + fall, 1e-6))
            upper[b, e] = -rise * scale / gap
            lower[b, e] = -fall * scale / gap
    return upper, lower


def lid_motion(landmarks: np.ndarray, upper: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """(B,68,2) landmark displacement (crop units) of the lid shift ``upper``, ``lower``
    (B, 2 eyes, ``lid_shift``): each lid point to its lid's new line (``_lid_lines``)."""
    out = np.zeros_like(landmarks, dtype=np.float32)
    for b, lm in enumerate(np.asarray(landmarks, np.float32)):
        for e, (up, low) in enumerate(zip(_EYE_UPPER, _EYE_LOWER)):
            ku, kl = float(upper[b, e]), float(lower[b, e])
            u, _, _, u2, _ = _lid_lines(lm, e, ku, kl, lm[up[1:3], 0])
            _, lw, _, _, l2 = _lid_lines(lm, e, ku, kl, lm[low[1:3], 0])
            out[b, up[1:3], 1], out[b, low[1:3], 1] = u2 - u, l2 - lw
    return out


def _lid_lines(lm: np.ndarray, e: int, ku: float, kl: float, x: np.ndarray):
    """(upper lid, lower lid, gap, new upper lid, new lower lid) at columns ``x`` (crop units)
    of eye ``e`` of landmarks ``lm`` (68, 2) under the lid shift ``ku``, ``kl``. As the eye
    shuts (``closure``) the line where the lids meet is pulled SEAM_FLAT of the way towards
    the chord between the eye's corners (the upper lid still coming down at least half its
    shift, the lower lid never below its own line)."""
    up, low = _EYE_UPPER[e], _EYE_LOWER[e]
    u = np.interp(x, lm[up, 0], lm[up, 1])
    lw = np.interp(x, lm[low, 0], lm[low, 1])
    gap = np.maximum(lw - u, 0)
    seam = u + ku * gap
    chord = np.interp(x, lm[[up[0], up[-1]], 0], lm[[up[0], up[-1]], 1])
    off = np.clip(closure(ku, kl) * SEAM_FLAT * (chord - seam), -0.5 * ku * gap, kl * gap)
    return u, lw, gap, seam + off, lw - kl * gap + off


def closure(upper: float, lower: float) -> float:
    """0..1: how shut an eye is whose lids close ``upper + lower`` of its opening (0 below
    half shut, 1 shut), smoothly: how far the closed eye's sampling (``LID_CURVE``, ``LASH``,
    ``RIM``) applies."""
    t = float(np.clip((upper + lower - 0.5) / 0.5, 0, 1))
    return t * t * (3 - 2 * t)


def _lid_stretch(t: np.ndarray, ratio: np.ndarray, shut: np.ndarray) -> np.ndarray:
    """The closing lid's source position (0 at the stretch's top, 1 at the lid's edge) of
    output position ``t`` (0..1): linear while the eye is open (``shut`` 0); shut, a cubic
    that leaves the skin under the brow unstretched (slope ``ratio``, at most 2, at the
    top) and squeezes the fold and the lashes at the bottom (slope 1 + LID_CURVE), so the
    plain skin between them covers the eyeball (monotone: both slopes at most 2)."""
    a = 1 + shut * (np.minimum(ratio, 2.0) - 1)
    b = 1 + shut * LID_CURVE
    return ((a + b - 2) * t + (3 - 2 * a - b)) * t * t + a * t


def lid_source(lm: np.ndarray, upper: np.ndarray, lower: np.ndarray, x: np.ndarray,
               y: np.ndarray) -> np.ndarray:
    """The source row (crop units) of points ``x``, ``y`` (crop units, arrays that broadcast)
    under the lid shift ``upper``, ``lower`` (2 eyes, ``lid_shift``) of one face with
    landmarks ``lm`` (68, 2): per column of each eye, the lid skin between the brow and the
    upper lid stretches down to the lid's new line, the skin under the lower lid up to its
    own, and what was between the lids (less the rows a rising lower lid covers,
    ``LID_COVER``) is squeezed between the new lines (nothing, when they meet); ``y``
    itself beyond the eye's corners, above the skin under the brow and below LID_SKIN[1]
    under the eye."""
    x, y = np.asarray(x, np.float32), np.asarray(y, np.float32)
    out = np.array(np.broadcast_to(y, np.broadcast_shapes(x.shape, y.shape)), np.float32)
    eye = eye_distance(lm)
    for e, (up, low, brow) in enumerate(zip(_EYE_UPPER, _EYE_LOWER, _BROW_OF)):
        ku, kl = float(upper[e]), float(lower[e])
        if ku == 0 and kl == 0:
            continue
        shut = closure(ku, kl)
        u, lw, gap, u2, l2 = _lid_lines(lm, e, ku, kl, x)
        under_brow = np.interp(x, lm[list(brow), 0], lm[list(brow), 1]) + LID_SKIN[2] * eye
        top = np.minimum(np.maximum(u - LID_SKIN[0] * eye, under_brow), u - 0.05 * eye)
        bot = lw + LID_SKIN[1] * eye
        # opening lids (``lid_open``) leave half of the skin above and below them
        u2, l2 = np.maximum(u2, (top + u) / 2), np.minimum(l2, (lw + bot) / 2)
        # the margins skipped fade towards the corners, where the lids meet anyway
        widest = max(float((lm[low[1:3], 1] - lm[up[1:3], 1]).max()), 1e-6)
        local = shut * np.clip(2 * gap / widest, 0, 1)
        lid_end, rim = u - LASH * local * eye, lw + RIM * local * eye
        t = np.clip((y - top) / np.maximum(u2 - top, 1e-6), 0, 1)
        lid = top + (lid_end - top) * _lid_stretch(t, (u2 - top) / np.maximum(lid_end - top, 1e-6), local)
        # the rows a closing lid passes over go behind it (LID_COVER), the rest is squeezed
        hide_u = LID_COVER[0] * max(ku, 0.0) * gap
        hide_l = LID_COVER[1] * max(kl - LID_LOW / LID_UP * max(ku, 0.0), 0.0) * gap
        between = u + hide_u + (y - u2) * (lw - hide_l - u - hide_u) / np.maximum(l2 - u2, 1e-6)
        skin = rim + (y - l2) * (bot - rim) / np.maximum(bot - l2, 1e-6)
        src = np.where(y < u2, lid, np.where(y < l2, between, skin))
        inside = (x > lm[up[0], 0]) & (x < lm[up[-1], 0]) & (y >= top) & (y <= bot)
        out = np.where(inside, src, out).astype(np.float32)
    return out


def lid_box(lm: np.ndarray, upper: np.ndarray, lower: np.ndarray) -> tuple[float, float, float, float] | None:
    """(x0, y0, x1, y1) crop units: a box holding every point that ``lid_source`` moves for
    one face, or None when no lid moves."""
    eyes = [k for k in range(2) if upper[k] != 0 or lower[k] != 0]
    if not eyes:
        return None
    pts = np.concatenate([lm[36:42] if k == 0 else lm[42:48] for k in eyes])
    eye = eye_distance(lm)
    shut = max(closure(float(upper[k]), float(lower[k])) for k in eyes)
    beyond = LASH_BEYOND * eye if shut > 0 else 0.0       # the lash line past the corners
    return (float(pts[:, 0].min() - beyond), float(pts[:, 1].min() - LID_SKIN[0] * eye),
            float(pts[:, 0].max() + beyond), float(pts[:, 1].max() + LID_SKIN[1] * eye))


def lid_flow(landmarks: np.ndarray, upper: np.ndarray, lower: np.ndarray, size: int,
             extent: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """(B,2,size,size) float32 backward flow (grid units, 2 = one crop side, on a grid over
    ``extent``) that moves the lids of faces with ``landmarks`` (B,68,2 crop units) by the
    shift ``upper``, ``lower`` (B, 2 eyes, ``lid_shift``): ``lid_source`` on the grid."""
    lo, hi = extent
    c = (lo + (hi - lo) * (np.arange(size) + 0.5) / size).astype(np.float32)
    out = np.zeros((len(landmarks), 2, size, size), np.float32)
    for b in range(len(landmarks)):
        box = lid_box(landmarks[b], upper[b], lower[b])
        if box is None:
            continue
        # only the rows and columns the lids can move (a tenth of the grid's points)
        x0, x1 = np.searchsorted(c, box[0]), np.searchsorted(c, box[2], "right")
        y0, y1 = np.searchsorted(c, box[1]), np.searchsorted(c, box[3], "right")
        src = lid_source(landmarks[b], upper[b], lower[b], c[None, x0:x1], c[y0:y1, None])
        out[b, 1, y0:y1, x0:x1] = 2 * (src - c[y0:y1, None])
    return out


# A closing eye's lash line (``lash_weight``): a dark line along the upper lid's new edge,
# LASH_WIDTH eye distances (Gaussian sigma) thick, as dark as it is shut (``closure``),
# at full strength from corner to corner and fading out over LASH_BEYOND eye distances past
# each corner, as a real shut eye's lashes run into the corners' shadow. The blend draws it
# per full-resolution pixel (``FaceBlender._lashed``), its luma towards LASH_LUMA x the
# darkest tenth of the eye's own pixels (lashes, pupil; ``EditModel.lash_level``): drawn on
# the crop's grid and upsampled, the line was as wide as a crop pixel or more, and dlib read
# its blurred edges as lids still apart. Ending at the corners, dlib read the lids' old
# margins there (the eye's almond outline left at each corner) as an eye still open: on
# cfee TRAINING people's neutral, smiling and disgusted photos (25 each,
# ``benchmarks/blink_probe.py --train 25``) the re-detected eye aspect ratio out/in was
# 0.447 on median (35 % of faces at or under 0.40) with the line thinned to nothing at the
# corners, 0.441 at full strength up to them, 0.413 (43 %) with LASH_BEYOND 0.1, 0.411 at
# 0.15, 0.422 at 0.2; 0.1 kept, the shorter. Real closed eyes are the floor: on MEAD's
# W009 clips dlib reads 0.076-0.124 on a shut eye against 0.28-0.38 open (ratios 0.21-0.38;
# ``docs/benchmarks.md``).
LASH_WIDTH, LASH_LUMA, LASH_BEYOND = 0.016, 0.7, 0.1


def lash_weight(lm: np.ndarray, upper: np.ndarray, lower: np.ndarray, x: np.ndarray,
                y: np.ndarray) -> np.ndarray:
    """0..1 float32 at points ``x``, ``y`` (crop units, arrays that broadcast): the lash line
    of the eyes of one face with landmarks ``lm`` (68, 2) closing by the lid shift ``upper``,
    ``lower`` (2 eyes, ``lid_shift``)."""
    x, y = np.asarray(x, np.float32), np.asarray(y, np.float32)
    out = np.zeros(np.broadcast_shapes(x.shape, y.shape), np.float32)
    eye = eye_distance(lm)
    for e, (up, low) in enumerate(zip(_EYE_UPPER, _EYE_LOWER)):
        shut = closure(float(upper[e]), float(lower[e]))
        if shut <= 0:
            continue
        a, b = float(lm[up[0], 0]), float(lm[up[-1], 0])
        # past the corners the line keeps the corner's height and fades out
        _, _, _, edge, _ = _lid_lines(lm, e, float(upper[e]), float(lower[e]), np.clip(x, a, b))
        past = np.maximum(a - x, x - b)
        along = np.clip(1 - past / (LASH_BEYOND * eye), 0, 1) if LASH_BEYOND > 0 else (past <= 0) * 1.0
        line = np.exp(-0.5 * ((y - edge) / (LASH_WIDTH * eye)) ** 2)
        out = np.maximum(out, shut * along * line)
    return out.astype(np.float32)


# The mouth's inner contour, corner to corner along the upper and the lower lip.
_INNER_UP, _INNER_LOW = [60, 61, 62, 63, 64], [60, 67, 66, 65, 64]


def polyline_at(lm: np.ndarray, idx: list[int], x: np.ndarray) -> np.ndarray:
    """The polyline through ``lm[idx]`` (sorted by x) read at ``x``, flat beyond its ends."""
    order = np.argsort(lm[idx, 0], kind="stable")
    return np.interp(x, lm[idx, 0][order], lm[idx, 1][order])


# The mouth's cavity where it opens wider than it was: below the top CAVITY_TEETH of the new
# opening (the upper teeth), darkened towards CAVITY_LUMA x the face's own mouth-interior
# luma, fully once the opening grew CAVITY_FULL eye distances.
CAVITY_TEETH = 0.3
CAVITY_FULL = 0.15
CAVITY_LUMA = 0.3


def _openings(src: np.ndarray, dst: np.ndarray, size: int, whole: np.ndarray | None = None):
    """For each face, how much wider its mouth opens from ``src`` to ``dst`` (0..1, fully at
    CAVITY_FULL eye distances), and where the new opening is: its inside (S,S, 0..1) and each
    pixel's depth from the upper inner lip to the lower (S,S, 0 at the upper lip, 1 at the
    lower); (0, None, None) where it does not open wider, unless ``whole`` (B,) bool asks
    for the face's opening whatever its growth."""
    import cv2

    c = (np.arange(size) + 0.5) / size
    for k in range(len(src)):
        eye = eye_distance(src[k])
        grew = (np.linalg.norm(dst[k, 66] - dst[k, 62]) - np.linalg.norm(src[k, 66] - src[k, 62])) / eye
        strength = float(np.clip(grew / CAVITY_FULL, 0, 1))
        if strength <= 0 and (whole is None or not whole[k]):
            yield 0.0, None, None
            continue
        poly = dst[k, _INNER_UP + _INNER_LOW[::-1]] * size - 0.5
        inside = np.zeros((size, size), np.uint8)
        cv2.fillPoly(inside, [np.round(poly * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
        up, low = polyline_at(dst[k], _INNER_UP, c), polyline_at(dst[k], _INNER_LOW, c)
        tau = (c[:, None] - up[None]) / np.maximum(low - up, 1e-6)[None]     # (rows, cols)
        yield strength, inside.astype(np.float32) / 255, tau


def smoothstep(t: np.ndarray) -> np.ndarray:
    """0 below 0, 1 above 1, a smooth cubic between."""
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
            m = inside * smoothstep((tau - CAVITY_TEETH) / 0.15)
            out[k] = cv2.GaussianBlur(m, (0, 0), max(0.5, 0.01 * size)) * strength
    return out


# Lips that part without the jaw (AU25 alone, a smile) part over the upper teeth: the top of
# the new opening shows them, down to SMILE_TEETH of its depth and at most UPPER_TEETH eye
# distances (an upper incisor's visible height); an opening taller than that shows a dark
# line and then the lower teeth, dimmer (LOWER_TEETH), down to the lower lip. The teeth fade
# into the shadow over the outer SMILE_CORNERS of the opening's width on each side, and
# dim towards the corners (CORRIDOR at a corner: the buccal corridor); faint lines
# (SEPARATION) part the upper incisors and canines at TOOTH_EDGES of the half-width from the
# middle.
SMILE_TEETH = 0.75
UPPER_TEETH = 0.2
TEETH_GAP = 0.04
LOWER_TEETH = 0.7
SMILE_CORNERS = 0.25
CORRIDOR = 0.35
SEPARATION = 0.12
TOOTH_EDGES = (0.0, 0.34, 0.6, 0.8)


def _teeth_layout(lm: np.ndarray, eye: float, size: int):
    """(upper, lower, shade), each (S,S) float32, for an opening inside the inner lips of
    ``lm`` (68,2 crop units): where the upper and the lower teeth lie (0..1, not yet limited
    to the opening nor faded at the corners) and the teeth's luma factor (1 in the middle)."""
    c = (np.arange(size) + 0.5) / size
    up, low = polyline_at(lm, _INNER_UP, c), polyline_at(lm, _INNER_LOW, c)
    depth = (c[:, None] - up[None]) / eye                               # eye distances below the upper lip
    height = np.maximum(low - up, 0)[None] / eye
    edge = np.minimum(SMILE_TEETH * height, UPPER_TEETH)
    soft = 0.03
    upper = smoothstep((edge - depth) / soft + 0.5)
    lower = smoothstep((depth - edge - TEETH_GAP) / soft) * smoothstep((height - UPPER_TEETH - TEETH_GAP) / soft)
    left, right = lm[60, 0], lm[64, 0]
    half = max((right - left) / 2, 1e-6)
    u = np.clip(np.abs(c - (left + right) / 2) / half, 0, 1)           # 0 in the middle, 1 at a corner
    line = 0.6 / size / half                                            # a line 0.6 crop px wide
    sep = 1 - SEPARATION * np.max([np.exp(-0.5 * ((u - e) / line) ** 2) for e in TOOTH_EDGES], 0)
    corridor = 1 - CORRIDOR * u * u
    shade = (upper * sep + LOWER_TEETH * lower) / np.maximum(upper + lower, 1e-6) * corridor[None]
    return upper, lower, shade.astype(np.float32)


def smile_teeth_mask(src: np.ndarray, dst: np.ndarray, size: int,
                     whole: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(teeth, shadow, shade), each (B,size,size) float32 on the crop: where the new opening
    of lips parted without the jaw (inside the inner lips of ``dst``, (B,68,2) crop units)
    shows teeth, where it shows the shadow below and beside them, both 0..1 and weighted by
    how much wider the opening is than in ``src`` (as ``cavity_mask``), and the teeth's luma
    factor (``_teeth_layout``). ``whole`` (B,) 0..1: the whole opening of ``dst``, new or
    not, becomes a smile's by that much (a jaw that closes into a smile)."""
    import cv2

    teeth = np.zeros((len(src), size, size), np.float32)
    shadow = np.zeros_like(teeth)
    shade = np.ones_like(teeth)
    for k, (strength, inside, _) in enumerate(_openings(src, dst, size, None if whole is None else whole > 0)):
        strength = max(strength, 0.0 if whole is None else float(whole[k]))
        if strength <= 0 or inside is None:
            continue
        eye = eye_distance(src[k])
        upper, lower, shade[k] = _teeth_layout(dst[k], eye, size)
        c = (np.arange(size) + 0.5) / size
        left, right = dst[k, 60, 0], dst[k, 64, 0]
        across = np.minimum(c - left, right - c) / max(right - left, 1e-6)  # 0 at a corner, 0.5 mid
        band = np.clip(upper + lower, 0, 1) * smoothstep(across / SMILE_CORNERS)[None]
        blur = max(0.5, 0.004 * size)  # anti-aliasing only: more spreads the teeth onto the lips
        teeth[k] = cv2.GaussianBlur(inside * band, (0, 0), blur) * strength
        shadow[k] = cv2.GaussianBlur(inside * (1 - band), (0, 0), blur) * strength
    return teeth, shadow, shade


def _smile_measures(lm: np.ndarray) -> np.ndarray:
    """(B,2): mouth-corner distance and the corners' height over the nose tip, in eye distances
    of landmarks ``lm`` (B,68,2), y down in the crop."""
    eye = eye_distance(lm)
    width = np.linalg.norm(lm[:, 54] - lm[:, 48], axis=-1)
    height = lm[:, 33, 1] - lm[:, [48, 54], 1].mean(1)
    return np.stack([width, height], 1) / eye[:, None]


def smile_shortfall(moved: np.ndarray, goal: np.ndarray, row: np.ndarray) -> np.ndarray:
    """(B,) on the 0..1 AU scale: how much more of the smile's row ``row`` (68,2) the moved
    landmarks ``moved`` (B,68,2) need for their mouth corners (width, height over the nose) to
    reach those of the model's face asked for the goal ``goal`` (B,68,2); negative where they
    are past it."""
    effect = _smile_measures(goal + row[None]) - _smile_measures(goal)      # per unit (B,2)
    short = _smile_measures(goal) - _smile_measures(moved)
    return ((short * effect).sum(1) / np.maximum((effect * effect).sum(1), 1e-9)).astype(np.float32)


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


# Raised brows over a frown: the spline stretches what lay between the lowered brow and the
# upper lid (the brow's lower hair, the shadowed fold) over the new, taller band, a dark
# vertical smear. In a real raised brow the hair keeps its height and the band shows lid
# skin. So below the moved brow's hair (BROW_HAIR eye distances under its landmarks) down to
# LID_EDGE above the moved upper lid, where the band grew by more than STRETCH[0] of its
# height (fully at STRETCH[1]), the band is painted as skin (``EditModel._brow_band``): the
# luma of the forehead strip FOREHEAD_STRIP eye distances above the moved brow, times
# BAND_SHADE from the brow's hair down to the lid (the median profile of the same band over
# the forehead on 29 held-out cfee people's surprised photos: lit under the brow, the crease
# and the lashes darker). The band's top fades over BAND_SOFT eye distances, its ends over
# 2 x BAND_SOFT up to BAND_SOFT past the brow's ends. A frown taken to `surprise` grows the
# band 75-157 % (35 held-out angry cfee faces, 10th-90th percentile); `surprise` from other
# faces 29-120 % (UTKFace), `neutral` from a frown 23-73 %: gated from 15 %, the UTKFace
# edits' largest identity distance passed 0.6 (benchmarks/quality.py --table --quick).
BROW_HAIR = 0.15
LID_EDGE = 0.025
STRETCH = (0.25, 0.8)
BAND_SOFT = 0.05
BAND_SHADE = (0.87, 0.86, 0.73, 0.715, 0.67)
FOREHEAD_STRIP = (0.12, 0.3)
_BROW_LIDS = ((list(range(17, 22)), _EYE_UPPER[0]), (list(range(22, 27)), _EYE_UPPER[1]))


def brow_band_mask(src: np.ndarray, dst: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(weight (B,2,S,S), shade (B,S,S), above (B,2,S,S)) float32 on the crop (side S =
    ``size``), for faces whose landmarks move from ``src`` to ``dst`` (B,68,2 crop units),
    per brow (the face's left, its right): how much of each pixel is the stretched band
    between a raised brow's hair and its upper lid (0..1: the band's depth, times how much it
    grew, per column), the lid skin's shade there (BAND_SHADE; 1 elsewhere), and the
    forehead strip above the moved brow (FOREHEAD_STRIP eye distances above its landmarks),
    whose skin the band takes. Weight zero where the band did not grow by STRETCH[0]."""
    import cv2

    c = (np.arange(size) + 0.5) / size
    weight = np.zeros((len(src), 2, size, size), np.float32)
    above = np.zeros((len(src), 2, size, size), np.float32)
    shade = np.ones((len(src), size, size), np.float32)
    y = c[:, None]
    for k in range(len(src)):
        eye = eye_distance(src[k])
        soft = BAND_SOFT * eye
        for side, (brow, lid) in enumerate(_BROW_LIDS):
            lo, hi = dst[k, brow, 0].min() - soft, dst[k, brow, 0].max() + soft
            cols = np.nonzero((c > lo) & (c < hi))[0]
            if len(cols) == 0:
                continue
            x = c[cols]
            b0, b1 = (polyline_at(lm, brow, x) for lm in (src[k], dst[k]))
            l0, l1 = (polyline_at(lm, lid, x) for lm in (src[k], dst[k]))
            grew = (l1 - b1) / np.maximum(l0 - b0, 0.02 * eye) - 1
            gate = smoothstep((grew - STRETCH[0]) / (STRETCH[1] - STRETCH[0]))
            ends = smoothstep(np.minimum(x - lo, hi - x) / (2 * soft))
            top, bot = b1 + BROW_HAIR * eye, l1 - LID_EDGE * eye
            inside = smoothstep((y - top) / soft) * smoothstep((bot - y) / (LID_EDGE * eye)) * (bot > top + soft)
            weight[k, side][:, cols] = inside * (gate * ends)[None]
            t = (y - top) / np.maximum(bot - top, 1e-6)
            profile = np.interp(t, np.linspace(0.1, 0.9, len(BAND_SHADE)), BAND_SHADE)
            shade[k][:, cols] = np.where(inside > 0, profile, shade[k][:, cols])
            strip = (y > b1 - FOREHEAD_STRIP[1] * eye) & (y < b1 - FOREHEAD_STRIP[0] * eye)
            above[k, side][:, cols] = strip * (ends > 0.5)[None]
            if weight[k, side].any():
                weight[k, side] = cv2.GaussianBlur(weight[k, side], (0, 0), max(0.5, 0.01 * size))
    return weight, shade, above
