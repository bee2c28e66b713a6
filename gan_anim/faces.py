"""Face detection (dlib HOG or CNN), 68 landmarks, and the one alignment/crop function.

The same ``align``/``crop`` pair prepares training data (``gan-anim prepare``) and
feeds the generator at inference, so the model always sees faces framed the same way.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from .errors import GanAnimError

# Faces whose eye-to-eye distance is below this many pixels (in the full-resolution
# image) are skipped: too small for the generator to change anything visible.
MIN_EYE_DISTANCE = 12.0
# Detection runs on a copy whose longer side is at most this (landmarks use full res).
DETECT_MAX_SIDE = 1280
# HOG detections scoring below this are dropped (0 is dlib's default; 0.2 removes
# the weak false positives on textures such as badges and patterns).
HOG_THRESHOLD = 0.2


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


@lru_cache(maxsize=None)
def _models(kind: str):
    import dlib
    import face_recognition_models as frm

    if kind == "hog":
        return dlib.get_frontal_face_detector()
    if kind == "cnn":
        return dlib.cnn_face_detection_model_v1(frm.cnn_face_detector_model_location())
    if kind == "landmarks":
        return dlib.shape_predictor(frm.pose_predictor_model_location())
    if kind == "descriptor":
        return dlib.face_recognition_model_v1(frm.face_recognition_model_location())
    raise ValueError(kind)


def detect_boxes(image: np.ndarray, detector: str = "hog", upsample: int = 0,
                 max_side: int = DETECT_MAX_SIDE) -> list[tuple[tuple[int, int, int, int], float]]:
    """Face boxes (left, top, right, bottom) in ``image`` coordinates, with scores.

    Large images are shrunk to ``max_side`` for detection only.
    """
    if detector not in ("hog", "cnn"):
        raise GanAnimError(f"unknown detector {detector!r}: use hog or cnn")
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    small = image if scale == 1.0 else cv2.resize(image, (round(w * scale), round(h * scale)),
                                                   interpolation=cv2.INTER_AREA)
    small = np.ascontiguousarray(small)
    out = []
    if detector == "hog":
        rects, scores, _ = _models("hog").run(small, upsample, HOG_THRESHOLD)
        pairs = zip(rects, scores)
    else:
        dets = _models("cnn")(small, upsample)
        pairs = ((d.rect, d.confidence) for d in dets)
    for r, s in pairs:
        box = (r.left() / scale, r.top() / scale, r.right() / scale, r.bottom() / scale)
        out.append((tuple(int(round(v)) for v in box), float(s)))
    return out


def landmarks(image: np.ndarray, box) -> np.ndarray:
    """dlib's 68 landmarks (68, 2) for a face box, on the full-resolution image."""
    import dlib

    rect = dlib.rectangle(*[int(v) for v in box])
    shape = _models("landmarks")(np.ascontiguousarray(image), rect)
    return np.array([(p.x, p.y) for p in shape.parts()], np.float32)


def detect_faces(image: np.ndarray, detector: str = "hog", upsample: int = 0,
                 min_eye_distance: float = MIN_EYE_DISTANCE, warn=None) -> list[Face]:
    """Every face in an RGB uint8 image, largest first, with 68 landmarks.

    Faces with eye distance below ``min_eye_distance`` px are skipped; ``warn``
    (a callable taking a message) hears about each.
    """
    faces = []
    for box, score in detect_boxes(image, detector, upsample):
        face = Face(box=box, landmarks=landmarks(image, box), score=score)
        if face.eye_distance < min_eye_distance:
            if warn:
                warn(f"skipped a face at {box}: eyes {face.eye_distance:.0f} px apart "
                     f"(< {min_eye_distance:g} px)")
            continue
        faces.append(face)
    faces.sort(key=lambda f: f.area, reverse=True)
    return faces


def select_faces(faces: list[Face], which: str) -> list[Face]:
    """``--face all|largest|N`` (N counts from 1 in largest-first order)."""
    if which == "all":
        return faces
    if which == "largest":
        return faces[:1]
    try:
        n = int(which)
    except ValueError:
        raise GanAnimError(f"--face must be all, largest or a number, got {which!r}") from None
    if not 1 <= n <= len(faces):
        raise GanAnimError(f"--face {n}: the photo has {len(faces)} face(s)")
    return [faces[n - 1]]


# ------------------------------------------------------------------------- alignment

def align(landmarks: np.ndarray, size: int) -> np.ndarray:
    """Similarity transform (2x3, image -> crop) that frames a face in a ``size`` square.

    Eyes level, brows to chin (the chin at the bottom edge), a fixed margin: the half-side is
    max(1.6 x eye distance, 1.45 x eye-to-mouth distance), centred a little
    below the eyes (FFHQ-style, tighter).
    """
    lm = np.asarray(landmarks, np.float64)
    eye_l, eye_r = lm[36:42].mean(0), lm[42:48].mean(0)
    mouth = (lm[48] + lm[54]) / 2
    eye_avg = (eye_l + eye_r) / 2
    eye_to_eye = eye_r - eye_l
    eye_to_mouth = mouth - eye_avg
    x = eye_to_eye - np.array([-eye_to_mouth[1], eye_to_mouth[0]])  # average of two axes
    x /= np.hypot(*x)
    half = max(np.hypot(*eye_to_eye) * 1.6, np.hypot(*eye_to_mouth) * 1.45)
    center = eye_avg + eye_to_mouth * 0.1
    y = np.array([-x[1], x[0]])
    # crop pixel (u, v) = s * R (p - center) + size/2, R rows x and y
    s = size / (2 * half)
    rot = np.stack([x, y]) * s
    t = size / 2 - rot @ center
    return np.concatenate([rot, t[:, None]], axis=1).astype(np.float64)


def invert(transform: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(np.asarray(transform, np.float64))


def crop(image: np.ndarray, transform: np.ndarray, size: int) -> np.ndarray:
    """Warp ``image`` into the ``size`` x ``size`` crop given by ``transform``.

    When the face is much larger than the crop, the region is first shrunk with
    area averaging, so the crop is not aliased. Outside the image: edge pixels.
    """
    m = np.asarray(transform, np.float64)
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    if scale < 0.5:
        # Shrink the bounding region of the crop first (INTER_AREA), then warp.
        inv = invert(m)
        corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], np.float64)
        pts = corners @ inv.T
        h, w = image.shape[:2]
        x0, y0 = np.floor(pts.min(0)).astype(int) - 2
        x1, y1 = np.ceil(pts.max(0)).astype(int) + 2
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 > x0 and y1 > y0:
            f = 2 * scale
            region = image[y0:y1, x0:x1]
            rw, rh = max(1, round((x1 - x0) * f)), max(1, round((y1 - y0) * f))
            region = cv2.resize(region, (rw, rh), interpolation=cv2.INTER_AREA)
            fx, fy = rw / (x1 - x0), rh / (y1 - y0)
            # crop = M * (p_region / f + offset)
            pre = np.array([[1 / fx, 0, x0], [0, 1 / fy, y0], [0, 0, 1]], np.float64)
            m = m @ pre
            image = region
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def face_descriptor(image: np.ndarray, face: Face) -> np.ndarray:
    """dlib's 128-d face descriptor (the model shipped with face_recognition_models)."""
    import dlib

    rect = dlib.rectangle(*[int(v) for v in face.box])
    shape = _models("landmarks")(np.ascontiguousarray(image), rect)
    return np.array(_models("descriptor").compute_face_descriptor(np.ascontiguousarray(image), shape))
