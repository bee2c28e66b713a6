"""Reading a training-set pack (``pack.write_pack`` writes it; format in ``gan_anim.training.pack``).

The reading side only, below ``data`` (whose ``load_dataset`` hands pack files to
``data.load_pack``) and ``pack`` (the writer, which reads prepared folders through ``data``).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..aus import AU_NAMES
from ..errors import GanAnimError

PACK_FORMAT = "gan-anim-pack-v1"
PACK_SUFFIXES = (".pack", ".npz")
SPLITS = ("train", "test")


def is_pack(path) -> bool:
    """True for an existing file that looks like a pack (a zip, i.e. an .npz)."""
    p = Path(path)
    if not p.is_file():
        return False
    with open(p, "rb") as fh:
        return fh.read(4) == b"PK\x03\x04"


def decode_face(data: np.ndarray) -> np.ndarray:
    """BGR uint8 (H, W, 3) of JPEG bytes (a 1-channel JPEG comes back with 3 equal channels)."""
    import cv2

    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None:
        raise GanAnimError("a face in the pack is not a readable JPEG")
    return img


def _workers(workers: int | None) -> int:
    if workers:
        return max(1, workers)
    try:
        return max(1, min(16, len(os.sched_getaffinity(0))))
    except AttributeError:
        return max(1, min(16, os.cpu_count() or 1))


def read_pack(path) -> dict:
    """The pack's arrays (checked), with ``names`` as a list of str."""
    p = Path(path)
    if not p.is_file():
        raise GanAnimError(f"{p}: no such pack file")
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:
        raise GanAnimError(f"{p}: not a readable pack file ({type(exc).__name__})") from None
    need = ("format", "size", "names", "split", "aus", "offsets", "jpeg")
    missing = [k for k in need if k not in arrays]
    if missing or str(arrays.get("format", "")) != PACK_FORMAT:
        raise GanAnimError(f"{p}: not a gan-anim pack (format {PACK_FORMAT}; missing {missing})")
    names = bytes(arrays["names"]).decode("utf-8").split("\n") if arrays["names"].size else []
    n = len(names)
    if "au_names" in arrays and [str(a) for a in arrays["au_names"]] != list(AU_NAMES):
        raise GanAnimError(f"{p}: made with a different AU list")
    if (arrays["split"].shape != (n,) or arrays["aus"].shape != (n, len(AU_NAMES))
            or arrays["offsets"].shape != (n + 1,) or int(arrays["offsets"][-1]) != arrays["jpeg"].size
            or ("landmarks" in arrays and arrays["landmarks"].shape != (n, 68, 2))):
        raise GanAnimError(f"{p}: inconsistent pack (truncated or damaged?)")
    arrays["names"] = names
    return arrays
