"""gan-anim: GANimation for real photos and videos.

    import gan_anim
    gan_anim.animate("photo.jpg", "smile.gif", to="happy", frames=30)

Names are imported on first use, so ``import gan_anim`` (and the command line's
help, presets and input checks) does not load torch, OpenCV or dlib.
"""
from __future__ import annotations

import importlib
import os

# PyTorch's OpenMP threads otherwise spin for a while after every layer, taking the cores
# from the blend, the encoder and the other pipeline threads (a blend right after a
# generator pass took twice as long). Read once, when torch loads: after this, since
# every gan_anim module imports the package first.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_LAZY = {
    "Animator": "pipeline.photo", "animate": "pipeline.photo",
    "animate_photos": "pipeline.batch", "PhotoResult": "pipeline.batch",
    "animate_video": "pipeline.video",
    "AU_NAMES": "aus", "PRESETS": "aus",
    "GanAnimError": "errors",
    "estimate_aus": "estimation.photo", "estimate_face_aus": "estimation.photo",
    "estimate_from_landmarks": "estimation.geometry",
    "Face": "faces.detect", "detect_faces": "faces.detect",
    "read_image": "media.images",
    "Critic": "model", "Generator": "model", "ModelConfig": "model", "load_generator": "model",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))

