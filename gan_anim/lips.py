"""Lips that close: an edit whose goal has the lips together seals the mouth.

FACS scores lips that touch as AU25 and AU26 at 0, but the fitted motion (``motion``) only
undoes the opening the landmark geometry reads, and the geometry reads a grin's parted lips
over a row of teeth at AU25 0.4-0.9: ``neutral`` from a grin left about half of the inner-lip
gap open, teeth showing. So, where the goal's AU25 and AU26 are low and an AU that parts
the lips falls (``seal_strength``):

- **landmarks** (``seal_motion``): what the fitted motion leaves of the inner-lip gap closes,
  the upper lip coming down SEAL_UPPER of it and the lower lip, with the chin, rising the rest;
- **warp** (``seal_flow``): per column of the mouth, the red of each lip maps onto its own
  new span, so the lips meet along a seam and what lay between them (teeth, the cavity) is
  not drawn; the spline alone would squeeze the teeth into a grey streak there;
- **lip line** (``seam_mask``): where the opening closed, the seam is drawn at full
  resolution in the lips' own colour, darkened (``render.blend.FaceBlender._sealed``).

All in crop-side units on the aligned crop, numpy.
"""
from __future__ import annotations

import numpy as np

from .aus import AU_INDEX
from .motion import eye_distance, polyline_at, smoothstep

# The goal's lips are together below SEAL_CLOSED (AU25 and AU26, 0..1 scale: 0.5 on 0..5),
# fully at 0, and neither rises by SEAL_RISE (0.1 on 0..5); the seal grows with the largest
# fall of SEAL_AUS from the face's own level down to SEAL_CLOSED (or the goal, if higher),
# fully at SEAL_RAMP (0.5 on 0..5; an AU at 1 seals fully): lips parted at rest (AU25 under
# 0.5, a trace of AU12) are the person's own mouth, not an expression's opening, and stay.
SEAL_AUS = ("AU10", "AU12", "AU25", "AU26")
SEAL_CLOSED = 0.1
SEAL_RAMP = 0.1
SEAL_RISE = 0.02
# Mouths already closed (inner-lip gap under SEAL_OPEN[0] eye distances) are not sealed;
# fully from SEAL_OPEN[1].
SEAL_OPEN = (0.01, 0.04)
# Share of the gap the upper lip comes down (a grin's raised upper lip relaxes; the jaw
# closes the rest); how far the chin follows the lower lip's rise.
SEAL_UPPER = 0.35
SEAL_CHIN = {6: 0.3, 7: 0.6, 8: 0.6, 9: 0.6, 10: 0.3}
# Eye distances beyond the outer lips over which the seal's warp fades into the spline's;
# eye distances of each lip next to the opening that the sealed lips leave out.
SEAL_FADE = 0.06
SEAL_MARGIN = 0.02
# The lip line: its half-width (eye distances), its colour against the lips' median, and the
# opening (eye distances) of the source mouth over which it grows to full strength.
SEAM_WIDTH = 0.02
SEAM_LUMA = 0.6
SEAM_OPEN = 0.05

# A jaw that falls (AU26) towards a goal that keeps the lips apart (a smile from a surprised
# face) closes what the fitted motion leaves of the opening beyond JAW_OF_GOAL x that of the
# model's face asked for the goal (``jaw_share``), from a fall of JAW_FALL[0] (0..1; 1 on
# 0..5: a mouth open at rest or a sad one's keeps its own lips) to fully at JAW_FALL[1]. The
# coded jaw drop of a surprised face opens the mouth further than the fitted row undoes, and
# a smile's row parts the lips again: `happy` kept the surprised mouth's height. JAW_OF_GOAL:
# dlib re-detects an edited smile's lips 0.04 eye distance further apart than the moved
# landmarks (the teeth's shadow); at 0.7 `happy` from cfee *training* people's surprised
# photos re-detects at 0.21, their real happy photos 0.19 (median of 30; docs/benchmarks.md).
JAW_FALL = (0.2, 0.4)
JAW_OF_GOAL = 0.7

_OUTER_UP = [48, 49, 50, 51, 52, 53, 54]
_OUTER_LOW = [48, 59, 58, 57, 56, 55, 54]
# The opening as the seal sees it, corner to corner: a grin's dark corners lie beyond dlib's
# inner corners (60, 64), between the lips up to the outer corners.
_INNER_UP = [48, 61, 62, 63, 54]
_INNER_LOW = [48, 67, 66, 65, 54]
_PAIRS = ((61, 67), (62, 66), (63, 65))


def seal_strength(own: np.ndarray, goal: np.ndarray, landmarks: np.ndarray | None = None) -> np.ndarray:
    """(B,) 0..1: how far the lips of faces with AUs ``own`` going to ``goal`` ((B,17), 0..1)
    seal. Zero when the goal parts them (AU25 or AU26 at SEAL_CLOSED or more, or rising by
    SEAL_RISE) or no AU that parts them falls from above SEAL_CLOSED (an edit to the face's
    own AUs changes nothing, nor one from lips parted at rest);
    with the faces' ``landmarks`` (B,68,2), also where the lips already meet (``_opened``)."""
    idx = [AU_INDEX[n] for n in SEAL_AUS]
    fall = np.clip((own[:, idx] - np.maximum(goal[:, idx], SEAL_CLOSED)).max(1) / SEAL_RAMP, 0, 1)
    lips = [AU_INDEX["AU25"], AU_INDEX["AU26"]]
    closed = np.clip(1 - goal[:, lips].max(1) / SEAL_CLOSED, 0, 1)
    # the first frames of an edit that opens the mouth (surprise from a grin) do not seal
    still = np.clip(1 - (goal - own)[:, lips].max(1) / SEAL_RISE, 0, 1)
    opened = 1.0 if landmarks is None else _opened(landmarks)
    return (fall * closed * still * opened).astype(np.float32)


def _opened(landmarks: np.ndarray) -> np.ndarray:
    """(B,) 0..1: how open the mouths of faces with ``landmarks`` (B,68,2) are: 0 where the
    largest inner-lip gap (61-67, 62-66, 63-65) is under SEAL_OPEN[0] eye distances, 1 over
    SEAL_OPEN[1]: closed or pressed lips are left as they are."""
    lm = np.asarray(landmarks, np.float32)
    eye = eye_distance(lm)
    gap = np.max([lm[:, d, 1] - lm[:, u, 1] for u, d in _PAIRS], 0) / np.maximum(eye, 1e-6)
    return smoothstep((gap - SEAL_OPEN[0]) / (SEAL_OPEN[1] - SEAL_OPEN[0]))


def jaw_share(moved: np.ndarray, goal: np.ndarray, fall: np.ndarray) -> np.ndarray:
    """(B,) 0..1: the share of the opening of landmarks ``moved`` (B,68,2, after the fitted
    motion) that ``seal_motion`` closes so that its inner-lip gap meets that of the model's
    face asked for the goal ``goal`` (B,68,2), in proportion to the jaw's fall ``fall`` (B,
    AU26 on 0..1), from JAW_FALL[0] to fully at JAW_FALL[1]; 0 where the mouth is already
    less open."""
    now, want = _mean_gap(moved), JAW_OF_GOAL * _mean_gap(goal)
    share = np.clip((now - want) / np.maximum(now, 1e-6), 0, 1)
    ramp = (np.asarray(fall, np.float32) - JAW_FALL[0]) / (JAW_FALL[1] - JAW_FALL[0])
    return (share * np.clip(ramp, 0, 1)).astype(np.float32)


def _mean_gap(lm: np.ndarray) -> np.ndarray:
    """(B,) the mean inner-lip gap (61-67, 62-66, 63-65) of landmarks ``lm`` (B,68,2), in
    eye distances."""
    lm = np.asarray(lm, np.float32)
    eye = eye_distance(lm)
    return np.mean([lm[:, d, 1] - lm[:, u, 1] for u, d in _PAIRS], 0) / np.maximum(eye, 1e-6)


def _curve(lm: np.ndarray, idx: list[int], x: np.ndarray) -> np.ndarray:
    """The polyline through ``lm[idx]`` read at ``x`` (sorted by x; flat beyond its ends).
    The opening's contours (``_INNER_UP``, ``_INNER_LOW``) leave each corner on a quarter
    ellipse, steeply, as a real opening does; a straight line from the corner to dlib's
    first inner point cut through a grin's dark corners."""
    pts = lm[idx]
    order = np.argsort(pts[:, 0], kind="stable")
    xs, ys = pts[order, 0], pts[order, 1]
    y = polyline_at(lm, idx, x)
    if idx in (_INNER_UP, _INNER_LOW):
        for c, k in ((0, 1), (-1, -2)):
            t = np.clip((x - xs[k]) / (xs[c] - xs[k]) if xs[c] != xs[k] else 1.0, 0, 1)
            arc = ys[c] + (ys[k] - ys[c]) * np.sqrt(1 - t * t)
            y = np.where(t < 1, np.where((x - xs[k]) * (xs[c] - xs[k]) > 0, arc, y), y)
    return y


def _gap(lm: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The opening's height (lower inner lip minus upper, >= 0) at ``x``, 0 at the corners."""
    return np.maximum(_curve(lm, _INNER_LOW, x) - _curve(lm, _INNER_UP, x), 0.0)


def seal_motion(moved: np.ndarray, strength: np.ndarray) -> np.ndarray:
    """(B,68,2) displacement (crop units) closing ``strength`` (B,) of the opening that
    landmarks ``moved`` (B,68,2, after the fitted motion) leave: every lip landmark by its
    column's gap, the upper lip down SEAL_UPPER of it, the lower lip up the rest, the inner
    corners onto the seam, the chin following the lower lip by SEAL_CHIN."""
    out = np.zeros_like(moved, dtype=np.float32)
    up, low = [49, 50, 51, 52, 53, 61, 62, 63], [55, 56, 57, 58, 59, 65, 66, 67]
    for b in range(len(moved)):
        s = float(strength[b])
        if s <= 0:
            continue
        lm = moved[b]
        out[b, up, 1] = s * SEAL_UPPER * _gap(lm, lm[up, 0])
        out[b, low, 1] = -s * (1 - SEAL_UPPER) * _gap(lm, lm[low, 0])
        corners = lm[[60, 64], 0]
        seam = _curve(lm, _INNER_UP, corners) + SEAL_UPPER * _gap(lm, corners)
        out[b, [60, 64], 1] = s * (seam - lm[[60, 64], 1])
        rise = -out[b, 57, 1]
        for i, share in SEAL_CHIN.items():
            out[b, i, 1] = -share * rise
    return out


def seal_sources(src: np.ndarray, strength: np.ndarray) -> np.ndarray:
    """The landmarks the warp's spline maps from (B,68,2): ``src`` with each inner-lip pair
    drawn towards its midpoint and the inner corners towards the outer ones by ``strength``,
    so that lips sealed onto one seam do not ask the spline for two sources at one point
    (``seal_flow`` draws the lips there) nor for a grin's dark corners."""
    out = np.array(src, np.float32, copy=True)
    k = strength[:, None]
    for u, d in _PAIRS:
        mid = (src[:, u] + src[:, d]) / 2
        for i in (u, d):
            out[:, i] = src[:, i] + k * (mid - src[:, i])
    for inner, outer in ((60, 48), (64, 54)):  # a grin's inner corners lie on its dark corners
        out[:, inner] = src[:, inner] + k * (src[:, outer] - src[:, inner])
    return out


def _contours(lm: np.ndarray, x: np.ndarray):
    """(outer upper, inner upper, inner lower, outer lower) lip rows at ``x``, kept in
    that order from top to bottom (dlib's points cross on thin lips)."""
    uo = _curve(lm, _OUTER_UP, x)
    ui = np.maximum(_curve(lm, _INNER_UP, x), uo)
    li = np.maximum(_curve(lm, _INNER_LOW, x), ui)
    return uo, ui, li, np.maximum(_curve(lm, _OUTER_LOW, x), li)


def _source_rows(y, lm0, lm1, x0, x1, margin):
    """Per pixel, the source row of the lips' own map: output rows ``y`` (S,1) in columns
    ``x1`` (output, (C,)) whose spline source columns are ``x0`` ((S,C)): each lip's span in
    ``lm1`` onto its span in ``lm0``, the gap left between them onto the old interior.
    ``margin``: crop units of the source's lips next to the opening that are left out."""
    def span(ya, yb, sa, sb):
        return sa + np.clip((y - ya) / np.maximum(yb - ya, 1e-6), 0, 1) * (sb - sa)

    uo1, ui1, li1, lo1 = _contours(lm1, x1)
    uo0, ui0, li0, lo0 = (c.reshape(x0.shape) for c in _contours(lm0, x0.ravel()))
    # the lips' red starts ``margin`` inside dlib's inner contour (which often lies on the
    # teeth's edge), at most the opening's height and half of each lip
    margin = np.minimum(margin, li0 - ui0)
    ui0, li0 = (ui0 - np.minimum(margin, (ui0 - uo0) / 2), li0 + np.minimum(margin, (lo0 - li0) / 2))
    rows = np.where(y < ui1, span(uo1, ui1, uo0, ui0),
                    np.where(y < li1, span(ui1, li1, ui0, li0), span(li1, lo1, li0, lo0)))
    return rows, uo1, lo1


def seal_flow(flow: np.ndarray, lm0: np.ndarray, lm1: np.ndarray, strength: np.ndarray,
              extent: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """``flow`` (B,2,S,S) float32 backward flow (grid units, 2 = one crop side, on a grid
    over ``extent``) with the lips of sealing faces (``strength`` (B,) > 0) drawn by their
    own per-column map: between the outer lips of ``lm1`` (the moved landmarks, (B,68,2)),
    each lip's span samples that lip's span in ``lm0`` (the source landmarks), so lips that
    meet show no teeth between them; faded into ``flow`` over SEAL_FADE eye distances
    beyond the outer lips, and weighted by ``strength``. Other faces are unchanged."""
    lo, hi = extent
    size = flow.shape[-1]
    c = (lo + (hi - lo) * (np.arange(size) + 0.5) / size).astype(np.float32)
    out = flow.copy()
    for b in range(len(flow)):
        if strength[b] <= 0:
            continue
        a, m = lm0[b], lm1[b]
        eye = eye_distance(a)
        left, right = m[48, 0], m[54, 0]
        cols = np.nonzero((c > left) & (c < right))[0]
        if len(cols) == 0:
            continue
        x1 = c[cols]
        y = c[:, None]
        x0 = x1[None] + flow[b, 0][:, cols] / 2          # the spline's source columns
        rows, top, bottom = _source_rows(y, a, m, x0, x1, SEAL_MARGIN * eye)
        fade = SEAL_FADE * eye
        w = smoothstep((y - (top - fade)) / fade) * smoothstep(((bottom + fade) - y) / fade)
        spline_rows = y + flow[b, 1][:, cols] / 2
        # in proportion to the seal: a faint one (a ramp's first frames, lips barely parted)
        # changes the lips faintly, not by the whole map and its margins at once
        w = w * min(float(strength[b]), 1.0)
        out[b, 1][:, cols] = flow[b, 1][:, cols] + w * 2 * (rows - spline_rows)
    return out


def seam_mask(lm0: np.ndarray, lm1: np.ndarray, strength: np.ndarray, size: int) -> np.ndarray:
    """(B,size,size) float32 0..1 on the crop: the line where sealed lips meet (the middle
    of the opening of ``lm1``, (B,68,2) crop units, corner to corner): 1 within SEAM_WIDTH
    eye distances (at least one crop pixel) of it, 0 beyond 1.5 times that, fading out at the
    corners, weighted by ``strength`` and by the opening that closed there (fully where the
    source ``lm0`` was SEAM_OPEN eye distances open): lips that were closed keep their line."""
    out = np.zeros((len(lm1), size, size), np.float32)
    c = (np.arange(size) + 0.5) / size
    for b in range(len(lm1)):
        s = float(strength[b])
        if s <= 0:
            continue
        a, m = lm0[b], lm1[b]
        eye = eye_distance(a)
        cols = np.nonzero((c > m[48, 0]) & (c < m[54, 0]))[0]
        x = c[cols]
        seam = (_curve(m, _INNER_UP, x) + _curve(m, _INNER_LOW, x)) / 2
        half = max(SEAM_WIDTH * eye, 1.0 / size)
        # flat within ``half`` of the seam: the jump between two rows of the warp's grid,
        # wherever it falls between them, is covered fully
        line = smoothstep((1.5 * half - np.abs(c[:, None] - seam[None])) / (0.5 * half))
        t = (x - m[48, 0]) / (m[54, 0] - m[48, 0])          # the same place along the source mouth
        opened = smoothstep(_gap(a, a[48, 0] + t * (a[54, 0] - a[48, 0])) / (SEAM_OPEN * eye))
        ends = smoothstep(np.minimum(t, 1 - t) / 0.1)
        out[b][:, cols] = line * (ends * opened)[None] * s
    return out


# A mouth AU's paint may darken only inside the outer lips' hull grown by LIPS_DARK eye
# distances (and feathered over as much again): G's shading of a newly opened mouth spilled
# past the lip corners as dark strokes on the skin.
LIPS_DARK = 0.02


def lips_hull(points: np.ndarray, size: int, grow: float = LIPS_DARK) -> np.ndarray:
    """(B,size,size) float32 0..1: the outer lips' hull (48-59 of ``points``, (B,68,2) crop
    units) grown by ``grow`` eye distances (at least one crop pixel) and feathered over as
    much again outside it."""
    import cv2

    out = np.zeros((len(points), size, size), np.float32)
    for b, lm in enumerate(np.asarray(points, np.float32)):
        eye = eye_distance(lm)
        r = max(1, round(grow * eye * size))
        m = np.zeros((size, size), np.uint8)
        cv2.fillConvexPoly(m, cv2.convexHull(np.round(lm[48:60] * size * 16).astype(np.int32)), 255,
                           cv2.LINE_AA, shift=4)
        m = cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
        # feathered outwards only: dilate again by r, then blur by r / 2
        wide = cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
        out[b] = np.maximum(m, cv2.GaussianBlur(wide, (0, 0), r / 2)).astype(np.float32) / 255
    return out
