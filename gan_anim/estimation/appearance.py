"""AU intensities from appearance and shape: per-AU linear (ridge) regressors on
``features.face_features``, trained on human FACS codes (``tools/train_aus.py``), with the
landmark geometry (``geometry``) reading the AUs where it does better.

The weights are one plain ``.npz`` (``weights/au-estimator.npz``, about 0.3 MB, read with
``allow_pickle=False``): ``w`` (F, 17) and ``b`` (17,) on raw features, ``use_model`` (17,)
(False: that AU comes from the geometry), ``au_names`` and a ``meta`` note. Pure numpy;
about 1 ms a face.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..aus import AU_NAMES, AU_SCALE
from ..errors import GanAnimError
from ..media.paths import atomic_output
from ..render.weights import WEIGHTS_DIR
from .features import FEATURE_SIZE, face_features
from .geometry import estimate_from_landmarks

WEIGHTS_NAME = "au-estimator.npz"
ENV = "GAN_ANIM_AU_ESTIMATOR"   # another estimator file (for comparisons)


def weights_path() -> Path:
    """$GAN_ANIM_AU_ESTIMATOR, else the packaged ``weights/au-estimator.npz``."""
    return Path(os.environ.get(ENV) or WEIGHTS_DIR / WEIGHTS_NAME)


def save(path, w: np.ndarray, b: np.ndarray, use_model: np.ndarray, meta: str | dict) -> None:
    """Write an estimator file atomically."""
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, w=np.asarray(w, np.float32), b=np.asarray(b, np.float32),
                     use_model=np.asarray(use_model, bool), au_names=np.array(AU_NAMES),
                     meta=np.array(str(meta)))


def load(path: str | None = None) -> dict:
    """The estimator file (``weights_path()`` by default) as arrays, read once per path."""
    return _load(str(path or weights_path()))


@lru_cache(maxsize=4)
def _load(path: str) -> dict:
    try:
        with np.load(path, allow_pickle=False) as z:
            model = {k: z[k] for k in ("w", "b", "use_model", "au_names")}
            model["meta"] = str(z["meta"]) if "meta" in z else ""
    except FileNotFoundError:
        raise GanAnimError(f"{path}: AU estimator weights missing; run python tools/train_aus.py") from None
    except Exception as exc:  # a truncated or foreign file
        raise GanAnimError(f"{path}: cannot read the AU estimator ({exc.__class__.__name__})") from None
    if tuple(model["au_names"]) != AU_NAMES or model["w"].shape != (FEATURE_SIZE, len(AU_NAMES)):
        raise GanAnimError(f"{path}: not an AU estimator for these features "
                           f"(weights {model['w'].shape}, expected {(FEATURE_SIZE, len(AU_NAMES))})")
    return model


def combine(model: dict, features: np.ndarray, geometry: np.ndarray) -> np.ndarray:
    """(N, 17) AUs on 0..5: the regressor's where ``use_model``, else the geometry's."""
    pred = np.clip(np.asarray(features, np.float32) @ model["w"] + model["b"], 0, AU_SCALE)
    return np.where(model["use_model"], pred, np.asarray(geometry, np.float32)).astype(np.float32)


def estimate_faces(image: np.ndarray, landmarks: np.ndarray, model: dict | None = None) -> np.ndarray:
    """17 AU intensities (0..5, float32, ``aus.AU_NAMES`` order) of the faces with dlib
    ``landmarks`` in an RGB uint8 ``image``: (68, 2) gives (17,), (N, 68, 2) gives (N, 17)."""
    lm = np.asarray(landmarks, np.float64)
    many = lm.reshape(-1, 68, 2)
    model = model or load()
    feats = np.stack([face_features(image, one) for one in many]) if len(many) else \
        np.zeros((0, FEATURE_SIZE), np.float32)
    out = combine(model, feats, estimate_from_landmarks(many))
    return out[0] if lm.ndim == 2 else out
