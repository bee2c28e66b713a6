"""gan-anim: GANimation for real photos and videos.

    import gan_anim
    gan_anim.animate("photo.jpg", "smile.gif", to="happy", frames=30)

Names are imported on first use, so ``import gan_anim`` (and the command line's
help, presets and input checks) does not load torch, OpenCV or dlib.
"""
from __future__ import annotations

import importlib
import os
import sys
import types

# PyTorch's OpenMP threads otherwise spin for a while after every layer, taking the cores
# from the blend, the encoder and the other pipeline threads (a blend right after a
# generator pass took twice as long). Read once, when torch loads: after this, since
# every gan_anim module imports the package first.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_LAZY = {
    "Animator": "animate", "animate": "animate",
    "animate_photos": "batch", "PhotoResult": "batch",
    "AU_NAMES": "aus", "PRESETS": "aus",
    "GanAnimError": "errors",
    "estimate_aus": "estimator", "estimate_from_landmarks": "estimator",
    "Face": "faces", "detect_faces": "faces",
    "read_image": "media",
    "Critic": "model", "Generator": "model", "ModelConfig": "model", "load_generator": "model",
    "animate_video": "video",
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


class _Package(types.ModuleType):
    """Keeps ``gan_anim.animate`` the function: importing the submodule of the same
    name would otherwise replace it on the package (the submodule stays importable
    as ``gan_anim.animate`` in sys.modules / ``from gan_anim.animate import ...``)."""

    def __setattr__(self, name, value):
        if name == "animate" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
