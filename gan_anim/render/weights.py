"""Which weights file the generator loads: ``--weights``, ``$GAN_ANIM_WEIGHTS`` or the
packaged default (standard library only)."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import GanAnimError


def _shipped_weights_dir() -> Path:
    """The default weights' folder: package data ``gan_anim.weights`` (a wheel; an editable
    install maps it onto the checkout's weights/), else the checkout's weights/."""
    import importlib.util

    spec = importlib.util.find_spec("gan_anim.weights")
    if spec is not None and spec.origin:
        return Path(spec.origin).parent
    return Path(__file__).resolve().parents[2] / "weights"


WEIGHTS_DIR = _shipped_weights_dir()
DEFAULT_WEIGHTS = "gan-anim-medium.pt"


def find_weights(path=None) -> Path:
    """The weights file to use: ``path`` (a file, or a folder holding gan-anim-medium.pt),
    else $GAN_ANIM_WEIGHTS (the same), else the packaged weights/gan-anim-medium.pt."""
    path = path or os.environ.get("GAN_ANIM_WEIGHTS")
    if path:
        p = Path(path)
        if p.is_dir():
            p = p / DEFAULT_WEIGHTS
        if not p.is_file():
            raise GanAnimError(f"weights file {p} not found")
        return p
    p = WEIGHTS_DIR / DEFAULT_WEIGHTS
    if not p.is_file():
        raise GanAnimError(f"no trained weights at {p}: train and export some "
                           "(gan-anim train, gan-anim export) or pass --weights PATH")
    return p
