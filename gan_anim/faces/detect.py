"""Face finding (dlib HOG or CNN) and dlib's 68 landmarks.

``detect_faces`` is the one detection cascade of every command (animate, grid, video,
aus, prepare): shrunk and edge-padded copy, then upscaled tiles for small faces, merged.
Landmarks are always read on the full-resolution image. dlib's models come from
``dlib_models``.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

from ..config import InferenceConfig
from ..errors import GanAnimError
from .dlib_models import DETECTORS, borrow_detector, shared_model

# Faces whose eye-to-eye distance is below this many pixels (in the full-resolution
# image) are skipped: too small for the generator to change anything visible. The
# cascade below looks for every face down to this size.
MIN_EYE_DISTANCE = 12.0
# HOG detections scoring below this are dropped (0 is dlib's default; 0.2 removes
# the weak false positives on textures such as badges and patterns).
HOG_THRESHOLD = 0.2
# Smallest eye distance (px, at the scale the detector runs) each detector finds: dlib's
# HOG window is 80 px, which sees a face whose eyes are about 26 px apart (measured on the
# example photo); the CNN detector misses that face too.
DETECTOR_MIN_EYE = {"hog": 26.0, "cnn": 30.0}
# The small-face pass scans at most this many pixels (tiles of the photo at one larger
# scale; HOG costs ~0.08 s per megapixel on one core). Photos up to ~5 MP are searched down
# to MIN_EYE_DISTANCE; a 12 MP photo at full resolution (eyes ~26 px apart and more; see
# docs/detection.md). The CNN runs ~60x slower per pixel, so it gets 1/24 of this.
SMALL_FACE_PIXELS = 24e6
# Tile side (px at the small-face scale) and edge padding of the first pass (a fraction of
# the longer side: a face cut by the border is found on the padded copy).
TILE_SIDE = 2048
BORDER_PAD = 0.3    # as prepare's --pad
# Two detections overlapping more than this (IoU, or intersection over the smaller box
# above 0.6) are one face: the earlier pass, then the higher score, wins.
MERGE_IOU = 0.3
# ``small_faces``: "on" scans the whole photo for small faces, "off" never, "auto" only where a
# face the first pass cannot see may be: skin-coloured detail not covered by a found face
# (``small_face_regions``); the first pass then runs on a copy of at most AUTO_FIRST_SIDE px,
# as the regions reach up to the faces it sees (514 px from 1280: a level of dlib's pyramid).
# Measured in benchmarks/bench_aus.py.
SMALL_FACE_MODES = ("auto", "on", "off")
AUTO_FIRST_SIDE = 520
# The candidate map (``candidate_map``) runs on a copy where the smallest face looked for
# has eyes GATE_EYE px apart; a pixel is a candidate when at least SKIN_SHARE of the
# face-sized window around it is skin-coloured and the window's mean detail (|grey - grey
# blurred by sigma 1.5|) is at least DETAIL_MIN grey levels: 3-16 around the eyes of 6-20 px
# faces of the test group photo, below 0.7 on its blurred background. Candidate regions are
# scanned first at AUTO_MID_SCALE x the first pass's scale; regions that would cost more than
# AUTO_FULL_SHARE of the whole small-face pass: the whole pass runs instead.
GATE_EYE = 6.0
SKIN_SHARE = 0.35
DETAIL_MIN = 2.0
AUTO_FULL_SHARE = 0.5
AUTO_MID_SCALE = 2.5


@dataclass
class Face:
    """One detected face in image coordinates (x, y pixels, float)."""

    box: tuple[int, int, int, int]      # left, top, right, bottom
    landmarks: np.ndarray               # (68, 2)
    score: float = 0.0

    @property
    def eye_distance(self) -> float:
        left, right = self.landmarks[36:42].mean(0), self.landmarks[42:48].mean(0)
        return float(np.hypot(*(right - left)))

    @property
    def area(self) -> int:
        left, top, right, bottom = self.box
        return (right - left) * (bottom - top)


def detect_boxes(image: np.ndarray, detector: str = "hog", upsample: int = 0,
                 max_side: int = InferenceConfig.detect_max_side) -> list[tuple[tuple[int, int, int, int], float]]:
    """One detector pass: face boxes (left, top, right, bottom) in ``image`` coordinates,
    with scores. Large images are shrunk to ``max_side`` for detection only."""
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    return [(tuple(int(round(v / scale)) for v in box), s)
            for box, s in _run(_resized(image, scale), detector, upsample)]


def _check_detector(detector: str) -> None:
    if detector not in DETECTORS:
        raise GanAnimError(f"unknown detector {detector!r}: use hog or cnn")


def _resized(image: np.ndarray, scale: float) -> np.ndarray:
    if scale == 1.0:
        return np.ascontiguousarray(image)
    h, w = image.shape[:2]
    if scale <= 0.5 and h % 2 == 0 and w % 2 == 0:
        # Halved first: INTER_AREA at an exact 2x costs a tenth of a non-integer ratio (a
        # 1080p photo to 514 px: 2.9 against 7 CPU-ms), and the detector's boxes stay the same.
        return _resized(cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_AREA), scale * 2)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def _run(image: np.ndarray, detector: str, upsample: int = 0, model=None) -> list:
    """[(box in ``image`` px as floats, score)] from one dlib detector call."""
    _check_detector(detector)
    if model is None:
        with borrow_detector(detector) as model:
            return _run(image, detector, upsample, model)
    if detector == "hog":
        rects, scores, _ = model.run(image, upsample, HOG_THRESHOLD)
        pairs = zip(rects, scores)
    else:
        pairs = ((d.rect, d.confidence) for d in model(image, upsample))
    return [((r.left(), r.top(), r.right(), r.bottom()), float(s)) for r, s in pairs]


def pad_image(image: np.ndarray, pad: float) -> tuple[np.ndarray, int]:
    """Replicate the border by ``pad`` x the longer side, so faces cut by it show whole."""
    p = int(round(pad * max(image.shape[:2])))
    if p <= 0:
        return image, 0
    return cv2.copyMakeBorder(image, p, p, p, p, cv2.BORDER_REPLICATE), p


def box_overlap(a, b) -> tuple[float, float]:
    """(intersection over union, intersection over the smaller box) of two (l, t, r, b) boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    area_a, area_b = (a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1])
    return inter / max(area_a + area_b - inter, 1e-9), inter / max(min(area_a, area_b), 1e-9)


def merge_boxes(passes: list[list], iou: float = MERGE_IOU) -> list:
    """Non-maximum suppression over the passes of the cascade, each [(box, score)]: a
    detection that overlaps a kept one (IoU above ``iou``, or one box mostly inside the
    other) is the same face. Earlier passes win (a later pass only adds faces), then the
    higher score, so a face keeps the box the first pass gave it."""
    kept = []
    for found in passes:
        for box, score in sorted(found, key=lambda f: -f[1]):
            if all(max(box_overlap(box, k)[0] / iou, box_overlap(box, k)[1] / 0.6) < 1 for k, _ in kept):
                kept.append((box, score))
    return kept


def _tiles(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """Equal start/stop pairs covering 0..length, at most ``tile`` long, overlapping by
    ``overlap``."""
    if length <= tile:
        return [(0, length)]
    n = int(np.ceil((length - overlap) / (tile - overlap)))
    side = int(np.ceil((length + (n - 1) * overlap) / n))
    starts = np.linspace(0, length - side, n).round().astype(int)
    return [(int(s), int(s) + side) for s in starts]


def _tile_grid(shape, scale: float, largest_eye: float):
    """(border, overlap, [(y0, y1, x0, x1)]) of the small-face pass, in image pixels of the
    edge-padded image; tiles overlap by a face box of eyes ``largest_eye`` apart."""
    overlap = int(np.ceil(3.2 * largest_eye))          # a face box is < 3 eye distances
    border = overlap // 2
    h, w = shape[0] + 2 * border, shape[1] + 2 * border
    tile = max(int(TILE_SIDE / scale), 2 * overlap)
    return border, [(y0, y1, x0, x1) for y0, y1 in _tiles(h, tile, overlap)
                    for x0, x1 in _tiles(w, tile, overlap)]


def small_face_scale(shape, detector: str = "hog", min_eye_distance: float = MIN_EYE_DISTANCE,
                     first_scale: float = 1.0, max_pixels: float = SMALL_FACE_PIXELS) -> float:
    """Scale of the small-face pass (0: not needed): the one that sees eyes
    ``min_eye_distance`` px apart, lowered until its tiles scan at most ``max_pixels``."""
    if detector == "cnn":
        max_pixels /= 24
    if max_pixels <= 0:
        return 0.0
    largest = DETECTOR_MIN_EYE[detector] / first_scale
    scale = DETECTOR_MIN_EYE[detector] / max(min_eye_distance, 1e-6)
    for _ in range(4):
        _, tiles = _tile_grid(shape, scale, largest)
        scanned = sum((y1 - y0) * (x1 - x0) for y0, y1, x0, x1 in tiles) * scale ** 2
        if scanned <= max_pixels * 1.02:
            break
        scale *= np.sqrt(max_pixels / scanned)
    return float(scale) if scale > 1.2 * first_scale else 0.0


def _small_faces(image: np.ndarray, detector: str, scale: float, largest_eye: float,
                 threads: int, regions: list | None = None) -> list:
    """Faces with eyes up to ``largest_eye`` px apart, on overlapping tiles at ``scale``
    (the border edge-padded, so small faces cut by it are found too), or only on
    ``regions`` [(l, t, r, b)] in image px (``small_face_regions``). In colour, like the
    first pass: grey tiles run 1.4x faster but lose faces at the edge of HOG's reach (a
    29 px face cut by the border, score 0.23 in colour, is missed in grey)."""
    border, jobs = _tile_grid(image.shape, scale, largest_eye)
    if regions is not None:
        jobs = [(int(t) + border, int(b) + border, int(l) + border, int(r) + border)
                for l, t, r, b in regions]
    padded = cv2.copyMakeBorder(image, border, border, border, border, cv2.BORDER_REPLICATE)

    def run(job):
        y0, y1, x0, x1 = job
        part = _resized(padded[y0:y1, x0:x1], scale)
        return [((b[0] / scale + x0 - border, b[1] / scale + y0 - border,
                  b[2] / scale + x0 - border, b[3] / scale + y0 - border), s)
                for b, s in _run(part, detector)]

    if threads <= 1 or len(jobs) <= 1:
        results = list(map(run, jobs))
    else:
        with ThreadPoolExecutor(min(threads, len(jobs))) as pool:
            results = list(pool.map(run, jobs))
    return [f for r in results for f in r]


def _merge_regions(boxes: list) -> list:
    """Boxes (l, t, r, b) joined into their bounding box wherever that scans no more pixels
    than the two apart (stacked runs of ``small_face_regions``; boxes inside others)."""
    boxes = [list(b) for b in boxes]
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                u = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
                if _area(u) <= _area(a) + _area(b) and a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    boxes[i] = u
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return [tuple(b) for b in boxes]


def _area(box) -> float:
    return (box[2] - box[0]) * (box[3] - box[1])


def candidate_map(image: np.ndarray, min_eye: float) -> tuple[np.ndarray, float]:
    """(mask, scale) for ``small_face_regions``: on a copy at ``scale`` (eyes ``min_eye``
    apart become GATE_EYE px), True where a face-sized window is skin-coloured (YCrCb box of
    Chai and Ngan) with detail (eyes, mouth, hair edges). A grey photo has no skin colour:
    there detail alone decides."""
    f = min(1.0, GATE_EYE / max(min_eye, 1e-6))
    ycc = cv2.cvtColor(_resized(image, f), cv2.COLOR_RGB2YCrCb)
    cr, cb = ycc[..., 1], ycc[..., 2]
    win = max(3, int(round(2.5 * min_eye * f)))
    if int(cr.max()) - int(cr.min()) < 6 and int(cb.max()) - int(cb.min()) < 6:
        skin = np.ones(cr.shape, np.float32)
    else:
        skin = ((cr >= 133) & (cr <= 173) & (cb >= 77) & (cb <= 127)).astype(np.float32)
    grey = ycc[..., 0].astype(np.float32)
    detail = np.abs(grey - cv2.GaussianBlur(grey, (0, 0), 1.5))   # features, not slow shading
    return (cv2.blur(skin, (win, win)) >= SKIN_SHARE) & (cv2.blur(detail, (win, win)) >= DETAIL_MIN), f


def unexplained(cand: np.ndarray, f: float, found: list) -> np.ndarray:
    """The candidates of ``candidate_map`` (at scale ``f``) outside the faces in ``found``
    [(box, score)], each widened by its hair and ears (half a box above and aside) and neck
    (a box below)."""
    cand = cand.copy()
    for l, t, r, b in (box for box, _ in found):
        cw, ch = 0.5 * (r - l), 0.5 * (b - t)
        cand[max(0, int((t - ch) * f)):max(0, int(np.ceil((b + 2 * ch) * f))),
             max(0, int((l - cw) * f)):max(0, int(np.ceil((r + cw) * f)))] = False
    return cand


def border_sides(cand: np.ndarray, f: float, found: list, band: float) -> tuple[bool, bool, bool, bool]:
    """(top, bottom, left, right): the sides of the photo where a face cut by the border
    may be (``small_faces="auto"``): unexplained candidates (``unexplained``) within
    ``band`` image px of that side."""
    cand = unexplained(cand, f, found)
    k = max(1, int(np.ceil(band * f)))
    return bool(cand[:k].any()), bool(cand[-k:].any()), bool(cand[:, :k].any()), bool(cand[:, -k:].any())


def small_face_regions(shape, cand: np.ndarray, f: float, found: list, largest_eye: float) -> list:
    """Where a face the passes so far did not find may be (``small_faces="auto"``): [(l, t,
    r, b)] in image px, the candidates of ``candidate_map`` outside the faces in ``found``
    [(box, score)] (and their hair, ears and neck), each widened by half a face box of eyes
    ``largest_eye`` apart (also beyond the border), overlapping ones joined."""
    h, w = shape[:2]
    cand = unexplained(cand, f, found)
    m, _ = _tile_grid(shape, 1.0, largest_eye)
    # Cells of two half face boxes: a run of cells with candidates in a row of cells gives
    # the candidates' bounding box, widened; so a long thin streak of candidates (an edge
    # of skin-coloured cloth) costs a band along it, not its whole bounding box.
    c = max(1, int(round(2 * m * f)))
    boxes = []
    for y0 in range(0, cand.shape[0], c):
        row = cand[y0:y0 + c]
        cells = np.flatnonzero(np.logical_or.reduceat(row.any(0), np.arange(0, row.shape[1], c)))
        for run in np.split(cells, np.flatnonzero(np.diff(cells) > 1) + 1) if len(cells) else []:
            ys, xs = np.nonzero(row[:, run[0] * c:(run[-1] + 1) * c])
            x, y = xs.min() + run[0] * c, ys.min() + y0
            boxes.append((max(-m, x / f - m), max(-m, y / f - m),
                          min(w + m, (xs.max() + run[0] * c + 1) / f + m),
                          min(h + m, (ys.max() + y0 + 1) / f + m)))
    return _merge_regions(boxes)


def _auto_small_faces(image: np.ndarray, passes: list, detector: str, min_eye: float, s1: float,
                      first_scale: float, budget: float, threads: int, cand=None) -> list:
    """The small-face passes of ``small_faces="auto"``, appended to ``passes``: the candidate
    regions only, first at AUTO_MID_SCALE x the first pass's scale (faces just below the
    first pass's reach cost little there), then what is still unexplained at the scale that
    sees eyes ``min_eye`` apart within ``budget`` scanned pixels (regions are small, so mostly
    above the whole pass's ``s1``). Where regions would cost more than AUTO_FULL_SHARE of the
    whole pass at ``s1``, the whole pass runs instead. ``cand``: ``candidate_map``'s result
    when already computed."""
    cand, f = cand or candidate_map(image, min_eye)
    budget = budget / 24 if detector == "cnn" else budget
    full = max(s1, DETECTOR_MIN_EYE[detector] / max(min_eye, 1e-6))
    largest = DETECTOR_MIN_EYE[detector] / first_scale
    border, tiles = _tile_grid(image.shape, s1, largest)
    whole = s1 ** 2 * sum((y1 - y0) * (x1 - x0) for y0, y1, x0, x1 in tiles)
    for step in ("mid", "full"):
        regions = small_face_regions(image.shape, cand, f, merge_boxes(passes), largest)
        if not regions:
            break
        area = sum((r - l) * (b - t) for l, t, r, b in regions)
        scale = min(full, np.sqrt(budget / area))
        if step == "mid" and AUTO_MID_SCALE * first_scale < 0.7 * scale:
            scale = AUTO_MID_SCALE * first_scale
        else:
            step = "full"
        if area * scale ** 2 > AUTO_FULL_SHARE * whole:
            passes.append(_small_faces(image, detector, s1, DETECTOR_MIN_EYE[detector] / first_scale, threads))
            break
        passes.append(_small_faces(image, detector, scale, largest, threads, regions))
        if step == "full":
            break
        largest = DETECTOR_MIN_EYE[detector] / scale
    return passes


def landmarks(image: np.ndarray, box) -> np.ndarray:
    """dlib's 68 landmarks (68, 2) for a face box, on the full-resolution image."""
    import dlib

    rect = dlib.rectangle(*[int(v) for v in box])
    shape = shared_model("landmarks")(np.ascontiguousarray(image), rect)
    return np.array([(p.x, p.y) for p in shape.parts()], np.float32)


def face_landmarks(image: np.ndarray, box, margin: float = 0.5) -> np.ndarray:
    """68 landmarks (image coordinates) for a box that may reach outside the image: found
    on the box's surroundings (``margin`` x its side around it), edge-replicated beyond the
    image, so a face at or across the border is read as on an edge-padded photo."""
    h, w = image.shape[:2]
    l, t, r, b = (int(round(v)) for v in box)
    m = int(np.ceil(margin * max(r - l, b - t))) + 2
    x0, y0, x1, y1 = l - m, t - m, r + m, b + m
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if cx1 <= cx0 or cy1 <= cy0:
        return landmarks(image, box)
    part = cv2.copyMakeBorder(image[cy0:cy1, cx0:cx1], cy0 - y0, y1 - cy1, cx0 - x0, x1 - cx1,
                              cv2.BORDER_REPLICATE)
    return landmarks(part, (l - x0, t - y0, r - x0, b - y0)) + np.array([x0, y0], np.float32)


def detect_faces(image: np.ndarray, detector: str = "hog", upsample: int = 0,
                 min_eye_distance: float = MIN_EYE_DISTANCE, warn=None, pad: float = BORDER_PAD,
                 max_side: int = InferenceConfig.detect_max_side, pixel_scale: float = 1.0,
                 small_face_pixels: float = SMALL_FACE_PIXELS, threads: int | None = None,
                 padded_first: bool = False, small_faces: str = "auto") -> list[Face]:
    """Every face of an RGB uint8 image, largest first, with 68 landmarks: the one
    detection cascade of every command (animate, grid, video, aus, prepare).

    1. The photo shrunk to ``max_side`` (``upsample`` doublings).
    2. The same copy edge-padded by ``pad`` x its longer side: faces cut by the border.
    3. If that scale cannot see eyes ``min_eye_distance`` px apart: overlapping tiles of
       the photo at one larger scale (at most ``small_face_pixels`` scanned, on ``threads``
       threads; default: the CPU count, at most 4). ``small_faces``: "on" scans every tile,
       "off" none (as ``small_face_pixels=0``), "auto" only the regions where a face the first
       pass missed may be (``small_face_regions``), the first pass then on a copy of at most
       AUTO_FIRST_SIDE px.
    4. Duplicates merged (``merge_boxes``: a face keeps the box of the first pass that
       found it); 68 landmarks on the full-resolution image (as the video tracker reads
       them between detections); faces with eyes closer than ``min_eye_distance`` skipped
       (``warn`` hears about each).

    ``padded_first`` (prepare, the calibration): the padded copy only, in place of 1 and 2,
    and landmarks on edge-padded surroundings (``face_landmarks``), as on a padded photo.
    ``pixel_scale``: pixels of the original photo per pixel of ``image`` (decoded at
    reduced size); ``min_eye_distance`` stays in the original's pixels.
    """
    _check_detector(detector)
    if small_faces not in SMALL_FACE_MODES:
        raise GanAnimError(f"unknown small-face mode {small_faces!r}: use auto, on or off")
    if max_side < 80:
        raise GanAnimError(f"detection size must be at least 80 px, got {max_side}")
    min_eye = min_eye_distance / pixel_scale
    if small_faces == "off":
        small_face_pixels = 0
    passes = _cascade(image, detector, upsample, pad, max_side, min_eye, small_face_pixels,
                      threads, padded_first, small_faces == "auto")
    faces = []
    for box, score in merge_boxes(passes):
        box = tuple(int(round(v)) for v in box)
        lm = face_landmarks(image, box) if padded_first else landmarks(image, box)
        face = Face(box=box, landmarks=lm, score=score)
        if face.eye_distance < min_eye:
            if warn:
                warn(f"skipped a face at {box}: eyes {face.eye_distance * pixel_scale:.0f} px apart "
                     f"(< {min_eye_distance:g} px)")
            continue
        faces.append(face)
    faces.sort(key=lambda f: f.area, reverse=True)
    return faces


def pyramid_scale(scale: float, side: int, limit: int = AUTO_FIRST_SIDE) -> float:
    """The first level at most ``limit`` px long of the pyramid dlib builds (5/6 a level) from
    a copy at ``scale`` of an image ``side`` px long: on it a face gets the box (within a few
    px) that a pass at ``scale`` gives it; at other scales boxes move by whole HOG cells."""
    return scale * (5 / 6) ** max(0, int(np.ceil(np.log(scale * side / limit) / np.log(1.2))))


def _cascade(image: np.ndarray, detector: str, upsample: int, pad: float, max_side: int,
             min_eye: float, small_face_pixels: float, threads: int | None,
             padded_first: bool, auto: bool = False) -> list[list]:
    """Steps 1-3 of ``detect_faces``: its passes, each [(box in ``image`` px, score)].
    ``min_eye``: the smallest eye distance to find, in ``image`` px; ``auto``: the
    small-face pass on candidate regions only, behind a first pass at AUTO_FIRST_SIDE."""
    h, w = image.shape[:2]
    threads = threads or min(4, os.cpu_count() or 1)
    s0 = min(1.0, max_side / max(h, w))
    if auto and s0 * max(h, w) > AUTO_FIRST_SIDE:  # a coarser first pass, unless it costs the regions reach
        coarse = pyramid_scale(s0, max(h, w))
        up = 2 ** upsample
        needed = small_face_scale(image.shape, detector, min_eye, s0 * up, small_face_pixels)
        if needed and small_face_scale(image.shape, detector, min_eye, coarse * up,
                                       small_face_pixels) >= 0.9 * needed:
            s0 = coarse
    shrunk = _resized(image, s0)

    def first_pass(pad_by: float) -> list:
        copy, p = pad_image(shrunk, pad_by)
        return [(((b[0] - p) / s0, (b[1] - p) / s0, (b[2] - p) / s0, (b[3] - p) / s0), s)
                for b, s in _run(np.ascontiguousarray(copy), detector, upsample)]

    first_scale = s0 * 2 ** upsample
    s1 = small_face_scale(image.shape, detector, min_eye, first_scale, small_face_pixels)
    if auto and s1 and not padded_first and pad > 0:
        return _auto_cascade(image, first_pass, detector, min_eye, s1, first_scale, pad,
                             small_face_pixels, threads)
    pads = [pad] if padded_first else [0.0] + ([pad] if pad > 0 else [])
    if threads > 1 and len(pads) > 1:
        with ThreadPoolExecutor(len(pads)) as pool:
            passes = list(pool.map(first_pass, pads))
    else:
        passes = [first_pass(p) for p in pads]
    if s1:
        if auto:
            return _auto_small_faces(image, passes, detector, min_eye, s1, first_scale,
                                     small_face_pixels, threads)
        passes.append(_small_faces(image, detector, s1, DETECTOR_MIN_EYE[detector] / first_scale, threads))
    return passes


def _auto_cascade(image: np.ndarray, first_pass, detector: str, min_eye: float, s1: float,
                  first_scale: float, pad: float, budget: float, threads: int) -> list[list]:
    """The passes of ``small_faces="auto"`` where a small-face pass is needed: the first pass
    beside the candidate map (``candidate_map``); the edge-padded pass only where unexplained
    candidates lie within a face box (of the smallest face the first pass sees) of a side
    (``border_sides``), as a face cut by the border shows there (padded on every side all the
    same: the cell grid of dlib's pyramid stays that of the full-size padded pass, and so the
    boxes); then the small-face passes on the candidate regions (``_auto_small_faces``)."""
    if threads > 1:
        with ThreadPoolExecutor(1) as pool:
            job = pool.submit(candidate_map, image, min_eye)
            passes = [first_pass(0.0)]
            cand = job.result()
    else:
        passes, cand = [first_pass(0.0)], candidate_map(image, min_eye)
    band = 3.2 * DETECTOR_MIN_EYE[detector] / first_scale      # a face box is < 3.2 eye distances
    sides = border_sides(*cand, passes[0], band)
    if any(sides):
        passes.append(first_pass(pad))
    return _auto_small_faces(image, passes, detector, min_eye, s1, first_scale, budget, threads, cand)


def find_face(image: np.ndarray, pad: float = BORDER_PAD, detector: str = "hog", threads: int | None = None):
    """The largest face (``prepare``, calibration): (status, box, landmarks (68, 2)); status
    'ok', 'no face' or 'too small' (eyes closer than MIN_EYE_DISTANCE; box and landmarks
    given when the first pass found it, None when the small-face pass did). The small-face
    pass runs only when the first pass finds nothing (it only adds faces smaller than those
    the first pass sees), and searches down to MIN_EYE_DISTANCE: deeper, it scanned its whole
    24 MP budget (1-2 CPU-s a face-less 200 px photo) for faces too small to keep."""
    found = detect_faces(image, detector, min_eye_distance=0.0, pad=pad, small_face_pixels=0,
                         padded_first=True)
    if not found:
        skipped = []
        found = detect_faces(image, detector, pad=pad, threads=threads, padded_first=True,
                             warn=skipped.append)
        if not found:
            return ("too small" if skipped else "no face"), None, None
    face = found[0]
    return ("ok" if face.eye_distance >= MIN_EYE_DISTANCE else "too small"), face.box, face.landmarks
