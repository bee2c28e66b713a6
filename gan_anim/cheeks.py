"""Cheeks that drop: a smile taken away lowers the raised cheeks and the lower lids.

A smile lifts the cheeks and, with them, the lower lids. On cfee's training people, each
smiling photo against the same person's neutral one (aligned on the eye corners and the top
of the nose, dense optical flow), the 44 photos coded AU12 3 or more raise the lower lids
0.026 eye distances (median), the cheek 0.35 eye distances under them 0.028, 0.5 under them
0.017 and 0.65 under them 0.013. The fitted landmark motion moves the lower lids by AU06
alone (cfee coded AU06 on under half of its smiles), 0.002-0.008 eye distances when a grin
goes to `neutral`, and no landmark lies on the cheek. So where AU06 or AU12 falls, a
per-column vertical warp under each eye (``cheek_flow``) moves the lower lid and the cheek
below it down by up to CHEEK_DROP eye distances; crease relaxation (``motion.RELAX_REGIONS``)
takes their texture away. All in crop-side units on the aligned crop, numpy.
"""
from __future__ import annotations

import numpy as np

from .aus import AU_INDEX

# Eye distances the cheeks and lower lids come down when a smile (AU06 or AU12) falls by
# CHEEK_FULL (0..1 scale: 3 on 0..5) or more, in proportion below it.
CHEEK_DROP = 0.028
CHEEK_FULL = 0.6
CHEEK_AUS = ("AU06", "AU12")
# The warp's extent under each eye, in eye distances: full from the lower lid down to
# CHEEK_BAND[0] under it, nothing below CHEEK_BAND[1]; full within CHEEK_SIDE[0] of the
# eye's centre towards the ear, nothing beyond CHEEK_SIDE[1]; towards the nose, full within
# CHEEK_INNER[0], nothing beyond CHEEK_INNER[1] (the side of the nose stays). Above the lower
# lid it fades to nothing at the middle of the eye's opening, so the upper lid stays.
CHEEK_BAND = (0.35, 0.8)
CHEEK_SIDE = (0.3, 0.55)
CHEEK_INNER = (0.1, 0.3)
_LOWER = ([36, 41, 40, 39], [42, 47, 46, 45])
_UPPER = ([36, 37, 38, 39], [42, 43, 44, 45])
_LOWER_LIDS = [40, 41, 46, 47]


def cheek_drop(own: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """(B,) eye distances the cheeks of faces with AUs ``own`` going to ``goal`` ((B,17),
    0..1) come down: CHEEK_DROP x the larger fall of AU06 and AU12 over CHEEK_FULL, at most 1."""
    idx = [AU_INDEX[n] for n in CHEEK_AUS]
    return (CHEEK_DROP * np.clip((own - goal)[:, idx].max(1) / CHEEK_FULL, 0, 1)).astype(np.float32)


def _eye(lm: np.ndarray) -> float:
    return float(np.linalg.norm(lm[42:48].mean(0) - lm[36:42].mean(0)))


def cheek_motion(landmarks: np.ndarray, drop: np.ndarray) -> np.ndarray:
    """(B,68,2) displacement (crop units) of the lower lids' landmarks by ``drop`` (B,)."""
    out = np.zeros_like(landmarks, dtype=np.float32)
    for b in range(len(landmarks)):
        out[b, _LOWER_LIDS, 1] = drop[b] * _eye(landmarks[b])
    return out


def _smooth(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0, 1)
    return t * t * (3 - 2 * t)


def cheek_flow(landmarks: np.ndarray, drop: np.ndarray, size: int,
               extent: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """(B,2,size,size) float32 backward flow (grid units, 2 = one crop side, on a grid over
    ``extent``) that moves the lower lids and the cheeks under the eyes of faces with
    ``landmarks`` (B,68,2 crop units) down by ``drop`` (B,) eye distances: full from each
    lower lid to CHEEK_BAND[0] under it, fading out to CHEEK_BAND[1], sideways over
    CHEEK_SIDE and CHEEK_INNER, and above the lid to the middle of the eye (the upper lid
    stays)."""
    lo, hi = extent
    c = (lo + (hi - lo) * (np.arange(size) + 0.5) / size).astype(np.float32)
    out = np.zeros((len(landmarks), 2, size, size), np.float32)
    for b in range(len(landmarks)):
        if drop[b] <= 0:
            continue
        lm = landmarks[b]
        eye = _eye(lm)
        for low, up, out_dir in zip(_LOWER, _UPPER, (-1.0, 1.0)):
            centre = lm[low + up].mean(0)
            lid = np.interp(c, lm[low, 0], lm[low, 1])                 # the lower lid per column
            mid = (lid + np.interp(c, lm[up, 0], lm[up, 1])) / 2        # the middle of the opening
            y = c[:, None]
            # beyond the corners the opening closes: fade over at least 0.1 eye distances
            above = _smooth((y - (lid - np.maximum(lid - mid, 0.1 * eye))[None])
                            / np.maximum(lid - mid, 0.1 * eye)[None])
            below = _smooth((lid[None] + CHEEK_BAND[1] * eye - y) / ((CHEEK_BAND[1] - CHEEK_BAND[0]) * eye))
            vertical = np.where(y < lid[None], above, below)
            d = out_dir * (c - centre[0])                               # towards the ear
            lim = np.where(d >= 0, CHEEK_SIDE[1], CHEEK_INNER[1]) * eye
            ramp = np.where(d >= 0, CHEEK_SIDE[1] - CHEEK_SIDE[0], CHEEK_INNER[1] - CHEEK_INNER[0]) * eye
            side = _smooth((lim - np.abs(d)) / ramp)
            out[b, 1] -= 2 * drop[b] * eye * vertical * side[None]
    return out
