"""Action Unit intensities (0..5) from dlib's 68 landmarks: geometry, no learning at run time.

Each landmark set is put in a face frame (origin between the eyes, x along the eyes,
unit = inter-ocular distance), where a handful of measures are taken (brow heights,
eye opening, lip-corner height, mouth width and opening, lip thickness, ...). Each AU
is a clipped linear map of standardised measures:

    z_m = (m - neutral_m) / spread_m
    AU  = clip(gain * (sum_m w_m z_m - offset), 0, 5)

``neutral``/``spread`` are the median and robust spread of each measure over neutral
faces; ``w``, ``gain`` and ``offset`` are fitted by ``python tools/calibrate.py``
and stored in ``au_calibration.json``.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from .aus import AU_NAMES, AU_SCALE
from .config import InferenceConfig
from .errors import GanAnimError

CALIBRATION_PATH = Path(__file__).with_name("au_calibration.json")

# Measure name -> what it is (all in inter-ocular distances, "up" positive).
MEASURES = {
    "brow_inner": "height of the inner brow (20, 21, 22, 23) above the eye line",
    "brow_outer": "height of the outer brow (17, 18, 25, 26) above the eye line",
    "brow_gap": "distance between the inner brow ends (21-22)",
    "brow_slope": "inner minus outer brow height",
    "eye_open": "eyelid gap (37-41, 38-40, 43-47, 44-46)",
    "lower_lid": "height of the lower lids (40, 41, 46, 47) above the eye line",
    "mouth_width": "lip corner distance (48-54)",
    "mouth_open": "inner lip gap (62-66)",
    "jaw_drop": "nose tip to chin (33-8)",
    "corner_raise": "lip corners (48, 54) above the inner lip centre (62, 66)",
    "corner_height": "lip corners above the nose tip's level (33)",
    "lip_thickness": "red lip height (51-62 plus 66-57)",
    "nose_lip": "nose tip to upper lip (33-51)",
    "chin_lip": "lower lip to chin (57-8)",
}
MEASURE_NAMES = tuple(MEASURES)


def face_frame(landmarks: np.ndarray) -> np.ndarray:
    """(N, 68, 2) image landmarks -> same points in the face frame (x right, y UP, IOD = 1)."""
    lm = np.asarray(landmarks, np.float64)
    eye_l, eye_r = lm[:, 36:42].mean(1), lm[:, 42:48].mean(1)
    origin = (eye_l + eye_r) / 2
    axis = eye_r - eye_l
    iod = np.maximum(np.hypot(axis[:, 0], axis[:, 1]), 1e-6)
    ux = axis / iod[:, None]
    rel = lm - origin[:, None]
    x = (rel * ux[:, None]).sum(-1)
    y = -(rel[..., 0] * -ux[:, None, 1] + rel[..., 1] * ux[:, None, 0])  # image y is down
    return np.stack([x, y], -1) / iod[:, None, None]


def measures(landmarks: np.ndarray) -> np.ndarray:
    """(68, 2) or (N, 68, 2) landmarks -> (N, len(MEASURES)) measures in IOD units."""
    lm = np.asarray(landmarks, np.float64)
    if lm.ndim == 2:
        lm = lm[None]
    if lm.shape[1:] != (68, 2):
        raise GanAnimError(f"expected 68 landmarks (68, 2), got shape {lm.shape[1:]}")
    p = face_frame(lm)
    x, y = p[..., 0], p[..., 1]

    def dist(a, b):
        return np.hypot(*(p[:, a] - p[:, b]).T)

    brow_inner = y[:, [20, 21, 22, 23]].mean(1)
    brow_outer = y[:, [17, 18, 25, 26]].mean(1)
    lip_centre = (y[:, 62] + y[:, 66]) / 2
    corners = (y[:, 48] + y[:, 54]) / 2
    cols = {
        "brow_inner": brow_inner,
        "brow_outer": brow_outer,
        "brow_gap": x[:, 22] - x[:, 21],
        "brow_slope": brow_inner - brow_outer,
        "eye_open": (dist(37, 41) + dist(38, 40) + dist(43, 47) + dist(44, 46)) / 4,
        "lower_lid": y[:, [40, 41, 46, 47]].mean(1),
        "mouth_width": dist(48, 54),
        "mouth_open": dist(62, 66),
        "jaw_drop": dist(33, 8),
        "corner_raise": corners - lip_centre,
        "corner_height": corners - y[:, 33],
        "lip_thickness": dist(51, 62) + dist(66, 57),
        "nose_lip": dist(33, 51),
        "chin_lip": dist(57, 8),
    }
    return np.stack([cols[m] for m in MEASURE_NAMES], 1)


@lru_cache(maxsize=4)
def load_calibration(path: str | None = None) -> dict:
    """The fitted mapping (``au_calibration.json``), as arrays ready for ``apply``."""
    path = Path(path) if path else CALIBRATION_PATH
    try:
        cal = json.loads(path.read_text())
    except FileNotFoundError:
        raise GanAnimError(f"{path}: AU calibration missing; run python tools/calibrate.py") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise GanAnimError(f"{path}: cannot read the AU calibration ({exc})") from None
    return compile_calibration(cal)


def compile_calibration(cal: dict) -> dict:
    """JSON calibration -> arrays: neutral (M,), spread (M,), weights (17, M), gain, offset (17,)."""
    idx = {m: i for i, m in enumerate(MEASURE_NAMES)}
    weights = np.zeros((len(AU_NAMES), len(MEASURE_NAMES)))
    gain, offset = np.zeros(len(AU_NAMES)), np.zeros(len(AU_NAMES))
    for a, name in enumerate(AU_NAMES):
        spec = cal["aus"][name]
        for m, w in spec["weights"].items():
            weights[a, idx[m]] = w
        gain[a], offset[a] = spec["gain"], spec["offset"]
    return {"neutral": np.array([cal["neutral"][m] for m in MEASURE_NAMES]),
            "spread": np.array([cal["spread"][m] for m in MEASURE_NAMES]),
            "weights": weights, "gain": gain, "offset": offset, "raw": cal}


def scores(z: np.ndarray, cal: dict) -> np.ndarray:
    """Standardised measures (N, M) -> unclipped AU scores before gain (N, 17)."""
    return z @ cal["weights"].T


def apply(meas: np.ndarray, cal: dict) -> np.ndarray:
    """Measures (N, M) -> AU intensities (N, 17) on 0..5."""
    z = (meas - cal["neutral"]) / cal["spread"]
    s = scores(z, cal)
    return np.clip(cal["gain"] * (s - cal["offset"]), 0.0, AU_SCALE)


def estimate_from_landmarks(landmarks: np.ndarray, calibration: dict | None = None) -> np.ndarray:
    """17 AU intensities (0..5, float32, ``aus.AU_NAMES`` order) from dlib's 68 landmarks.

    ``landmarks`` (68, 2) gives (17,); (N, 68, 2) gives (N, 17). Pure numpy.
    """
    lm = np.asarray(landmarks)
    cal = calibration or load_calibration()
    out = apply(measures(lm), cal).astype(np.float32)
    return out[0] if lm.ndim == 2 else out


# Photos may be decoded at reduced size (JPEG DCT scaling), never below this longer side nor
# below the resolution the cascade's small-face pass uses (``decode_side``).
AUS_DECODE_SIDE = 960


def _faces(image: np.ndarray, detector: str, max_side: int, pixel_scale: float = 1.0,
           small_faces: str = "auto"):
    """Every face, largest first: the detection cascade (``faces.detect.detect_faces``)."""
    from .faces.detect import detect_faces

    return detect_faces(image, detector, max_side=max_side, pixel_scale=pixel_scale,
                        small_faces=small_faces)


def estimate_aus(image: np.ndarray, detector: str = "hog",
                 detect_side: int = InferenceConfig.detect_max_side,
                 pixel_scale: float = 1.0, small_faces: str = "auto") -> list[dict]:
    """Every face of an RGB uint8 image, largest first: [{"box": (l, t, r, b), "aus": {name: 0..5}}].

    Faces come from the detection cascade every command uses (``faces.detect.detect_faces``),
    its first pass on a copy of at most ``detect_side`` px. ``pixel_scale``: original
    pixels per image pixel, for an image decoded at reduced size; ``small_faces``: auto, on or
    off (``detect_faces``).
    """
    if detect_side < 80:
        raise GanAnimError(f"detection size must be at least 80 px, got {detect_side}")
    found = _faces(image, detector, detect_side, pixel_scale, small_faces)
    if not found:
        return []
    aus = estimate_from_landmarks(np.stack([f.landmarks for f in found]))
    return [{"box": f.box, "aus": {n: round(float(v), 2) for n, v in zip(AU_NAMES, a)}}
            for f, a in zip(found, aus)]


def decode_side(path, detector: str = "hog",
                detect_side: int = InferenceConfig.detect_max_side) -> int | None:
    """The smallest longer side a photo may be decoded at for ``estimate_aus`` without
    losing a face the cascade finds at full size: the larger of its two passes' scales
    (at least ``AUS_DECODE_SIDE``); None when the size cannot be read (the decoder reports)."""
    from PIL import Image

    from .faces.detect import MIN_EYE_DISTANCE, small_face_scale

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
                      small_faces: str = "auto") -> list[dict]:
    """``estimate_aus`` on a photo file; a large JPEG is decoded at reduced size
    (``media.images.read_image``'s ``min_side``) where the detection cascade would not use the
    full resolution (``decode_side``). Boxes in file pixels."""
    from .media.images import read_image_scaled

    image, scale = read_image_scaled(path, decode_side(path, detector, detect_side))
    found = estimate_aus(image, detector, detect_side, pixel_scale=scale, small_faces=small_faces)
    for f in found:
        f["box"] = tuple(int(round(v * scale)) for v in f["box"])
    return found
