"""Landmarks for training sets that have none (the official GANimation layout's ``imgs/``).

The official layout holds aligned face crops and AUs, no landmarks; the landmark-warp
presets need them. They are found on each crop itself (the detection cascade of every
command, on the crop enlarged to at least ``DETECT_SIDE`` px, then dlib's 68 points), once,
and cached in the run folder (never in the user's data folder): ``crop_landmarks-<split>.npz``
holds each crop's name, file size and time, and landmarks in crop-side units (NaN: no face).
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..media.paths import atomic_output

# Crops are enlarged to at least this side before detection: HOG needs eyes ~26 px apart,
# and official crops are often 128 px (eyes ~35 px, too close to the limit).
DETECT_SIDE = 256


def crop_landmarks(image: np.ndarray) -> np.ndarray | None:
    """68 landmarks (crop-side units, 0..1) of the largest face of an aligned crop, or None."""
    import cv2

    from ..faces.detect import find_face

    h, w = image.shape[:2]
    k = max(1.0, DETECT_SIDE / min(h, w))
    big = image if k == 1.0 else cv2.resize(image, None, fx=k, fy=k, interpolation=cv2.INTER_CUBIC)
    _, _, lm = find_face(big, threads=1)
    if lm is None:
        return None
    return (lm / k / np.array([w, h], np.float32)).astype(np.float32)


def _stamp(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def cached_crop_landmarks(paths: list[Path], names: list[str], cache: Path | None,
                          images: np.ndarray | None = None, read=None) -> np.ndarray:
    """(N, 68, 2) landmarks of the crops at ``paths`` (NaN where no face is found), from
    ``cache`` where its entry matches the file's size and time, else found now (on
    ``images`` (N, H, W, 3) if given, else ``read(path)``) and written back to ``cache``."""
    stamps = [_stamp(p) for p in paths]
    known: dict[str, tuple[list[int], np.ndarray]] = {}
    if cache is not None and cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as z:
                known = {n: (list(s), lm) for n, s, lm in zip(z["names"], z["stamps"].tolist(), z["landmarks"])}
        except (OSError, ValueError, KeyError):
            known = {}        # an unreadable cache is rebuilt
    out = np.full((len(paths), 68, 2), np.nan, np.float32)
    fresh = 0
    for k, (name, path, stamp) in enumerate(zip(names, paths, stamps)):
        hit = known.get(name)
        if hit is not None and hit[0] == stamp:
            out[k] = hit[1]
            continue
        lm = crop_landmarks(images[k] if images is not None else read(path))
        fresh += 1
        if lm is not None:
            out[k] = lm
    if cache is not None and fresh:
        cache.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.savez(buf, names=np.array(names), stamps=np.array(stamps, np.int64), landmarks=out)
        with atomic_output(cache) as tmp:
            Path(tmp).write_bytes(buf.getvalue())
    return out
