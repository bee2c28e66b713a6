"""AUs of every face in a photo: the detection cascade every command uses, then the
appearance estimator (``appearance``) or the landmark geometry alone (``geometry``)."""
from __future__ import annotations

import numpy as np

from ..aus import AU_NAMES
from ..config import InferenceConfig
from ..errors import GanAnimError

METHODS = ("model", "geometry", "hybrid")   # the learned estimator (default), landmark geometry alone, or both

# The AUs that "hybrid" takes from the learned estimator: those the landmark geometry cannot
# see (a furrow, a wrinkled nose, a raised upper lip, down-turned corners, a raised chin, a
# stretched mouth) or sees badly (tightened lids: the geometry reads a smile's raised cheeks
# as AU07 and an angry squint low; r 0.55 against 0.18 on held-out cfee). Every other AU, the jaw and the lips' parting among them, keeps the
# geometry's reading, on the scale the shipped landmark motion was fitted on.
LEARNED_AUS = ("AU04", "AU07", "AU09", "AU10", "AU15", "AU17", "AU20")

# How edits read a face's own AUs (their start, ``--from`` by default): "hybrid". The shipped
# generators and their AU -> landmark motion were trained on the landmark geometry's scale, so
# the geometry reads every AU the motion moves visibly (brows, lids, mouth corners, jaw); read
# by the learned estimator, a surprised face closed to neutral had its nose and chin dragged
# (docs/au-estimator.md). The learned estimator reads what geometry cannot see (LEARNED_AUS),
# so a preset that sets a furrow or a wrinkled nose to 0 takes it away (crease relaxation).
EDIT_METHOD = "hybrid"

# Raised brows and a dropped jaw that a preset lowers (``edit_start``) start from the learned
# estimator's reading (where higher) on a face where it reads them SURPRISE_MARGIN (AU units
# 0..5, summed over SURPRISE_AUS) above the geometry: a surprised or fearful face, whose open
# jaw and raised brows the geometry reads at a third to two thirds of the FACS codes, so
# `neutral` or `happy` closed the jaw and lowered the brows by too little. On held-out cfee
# people's other starts the two readings differ by under 2.5; rises keep the geometry's
# reading, the scale the motion was fitted on.
SURPRISE_AUS = ("AU01", "AU02", "AU26")
SURPRISE_MARGIN = 2.5

# Photos may be decoded at reduced size (JPEG DCT scaling), never below this longer side nor
# below the resolution the cascade's small-face pass uses (``decode_side``).
AUS_DECODE_SIDE = 960


def _faces(image: np.ndarray, detector: str, max_side: int, pixel_scale: float = 1.0,
           small_faces: str = "auto"):
    """Every face, largest first: the detection cascade (``faces.detect.detect_faces``)."""
    from ..faces.detect import detect_faces

    return detect_faces(image, detector, max_side=max_side, pixel_scale=pixel_scale,
                        small_faces=small_faces)


def estimate_face_aus(image: np.ndarray, landmarks: np.ndarray, method: str = "model") -> np.ndarray:
    """AUs (0..5, float32) of the faces with dlib ``landmarks`` ((68, 2) -> (17,), (N, 68, 2)
    -> (N, 17)) in an RGB uint8 image, by ``method`` (see ``METHODS``)."""
    from .geometry import estimate_from_landmarks

    if method == "geometry":
        return estimate_from_landmarks(landmarks)
    if method not in METHODS:
        raise GanAnimError(f"AU estimation method must be one of {', '.join(METHODS)}, got {method!r}")
    from .appearance import estimate_faces

    learned = estimate_faces(image, landmarks)
    if method == "model":
        return learned
    return _hybrid(learned, estimate_from_landmarks(landmarks))


def _hybrid(learned: np.ndarray, geometry: np.ndarray) -> np.ndarray:
    """LEARNED_AUS from the learned reading, the rest from the geometry's."""
    return np.where(np.isin(AU_NAMES, LEARNED_AUS), learned, geometry).astype(np.float32)


def edit_start(image: np.ndarray, landmarks: np.ndarray, goal: np.ndarray | None = None) -> np.ndarray:
    """The own AUs ((17,) float32) that edits start from, of the face with dlib ``landmarks``
    ((68, 2)), read by EDIT_METHOD. With a whole goal vector (a preset) and "hybrid", the
    SURPRISE_AUS that fall towards ``goal`` start from the learned reading where it is higher,
    on a surprised face (``SURPRISE_MARGIN``); rises keep the geometry's reading. Each
    estimator runs once."""
    if EDIT_METHOD != "hybrid":
        return np.asarray(estimate_face_aus(image, landmarks, EDIT_METHOD), np.float32)
    from .appearance import estimate_faces
    from .geometry import estimate_from_landmarks

    learned, geometry = estimate_faces(image, landmarks), estimate_from_landmarks(landmarks)
    own = _hybrid(learned, geometry)
    raised = np.isin(AU_NAMES, SURPRISE_AUS)
    if goal is None or (learned - geometry)[raised].sum() < SURPRISE_MARGIN:
        return own
    use = raised & (learned > own) & (goal < learned)
    return np.where(use, learned, own).astype(np.float32)


def estimate_aus(image: np.ndarray, detector: str = "hog",
                 detect_side: int = InferenceConfig.detect_max_side,
                 pixel_scale: float = 1.0, method: str = "model",
                 small_faces: str = "auto") -> list[dict]:
    """Every face of an RGB uint8 image, largest first: [{"box": (l, t, r, b), "aus": {name: 0..5}}].

    Faces come from the detection cascade every command uses (``faces.detect.detect_faces``),
    its first pass on a copy of at most ``detect_side`` px. ``pixel_scale``: original
    pixels per image pixel, for an image decoded at reduced size. ``method``: see ``METHODS``;
    ``small_faces``: auto, on or off (``detect_faces``).
    """
    if method not in METHODS:
        raise GanAnimError(f"AU estimation method must be one of {', '.join(METHODS)}, got {method!r}")
    if detect_side < 80:
        raise GanAnimError(f"detection size must be at least 80 px, got {detect_side}")
    found = _faces(image, detector, detect_side, pixel_scale, small_faces)
    if not found:
        return []
    aus = estimate_face_aus(image, np.stack([f.landmarks for f in found]), method)
    return [{"box": f.box, "aus": {n: round(float(v), 2) for n, v in zip(AU_NAMES, a)}}
            for f, a in zip(found, aus)]


def decode_side(path, detector: str = "hog",
                detect_side: int = InferenceConfig.detect_max_side) -> int | None:
    """The smallest longer side a photo may be decoded at for ``estimate_aus`` without
    losing a face the cascade finds at full size: the larger of its two passes' scales
    (at least ``AUS_DECODE_SIDE``); None when the size cannot be read (the decoder reports)."""
    from PIL import Image

    from ..faces.detect import MIN_EYE_DISTANCE, small_face_scale

    try:
        with Image.open(path) as im:
            w, h = im.size
    except Exception:
        return None
    s0 = min(1.0, detect_side / max(h, w))
    scale = max(s0, small_face_scale((h, w), detector, MIN_EYE_DISTANCE, s0))
    return max(AUS_DECODE_SIDE, int(np.ceil(min(1.0, scale) * max(h, w))))


def estimate_aus_file(path, detector: str = "hog",
                      detect_side: int = InferenceConfig.detect_max_side,
                      method: str = "model", small_faces: str = "auto") -> list[dict]:
    """``estimate_aus`` on a photo file; a large JPEG is decoded at reduced size
    (``media.images.read_image``'s ``min_side``) where the detection cascade would not use the
    full resolution (``decode_side``). Boxes in file pixels."""
    from ..media.images import read_image_scaled

    image, scale = read_image_scaled(path, decode_side(path, detector, detect_side))
    found = estimate_aus(image, detector, detect_side, pixel_scale=scale, method=method,
                         small_faces=small_faces)
    for f in found:
        f["box"] = tuple(int(round(v * scale)) for v in f["box"])
    return found
