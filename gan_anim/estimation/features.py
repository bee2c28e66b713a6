"""Appearance and shape features of one face: HOG of the aligned grey crop plus its 68
landmarks in crop units. Pure numpy + OpenCV, about 1 ms a face.

The crop is ``faces.align``'s framing (the generator's) at ``CROP`` px: 8 px cells,
9 unsigned orientation bins with linear interpolation between bins, 2x2-cell blocks
normalised L2-Hys, which is 11 x 11 x 4 x 9 = 4,356 HOG values, then 136 landmark
coordinates (0..1 of the crop side). ``face_features`` is the API other stages reuse
(the AU regressor, an expression recogniser): keep its signature stable.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..faces.align import align, crop, normalised_landmarks

CROP = 96         # px, side of the aligned crop the features see
CELL = 8          # px per HOG cell side
BINS = 9          # unsigned orientation bins over 0..180 degrees
BLOCK = 2         # cells per block side
HOG_SIZE = (CROP // CELL - BLOCK + 1) ** 2 * BLOCK * BLOCK * BINS   # 4356
FEATURE_SIZE = HOG_SIZE + 68 * 2                                     # 4492

# dlib's 68 points under a left-right flip: MIRROR[i] is the point that i becomes.
MIRROR = np.array(
    list(range(16, -1, -1))                       # jaw 0..16
    + list(range(26, 16, -1))                     # brows 17..26
    + [27, 28, 29, 30, 35, 34, 33, 32, 31]        # nose
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]   # eyes
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]   # outer lips
    + [64, 63, 62, 61, 60, 67, 66, 65])                  # inner lips


def hog(grey: np.ndarray, cell: int = CELL, bins: int = BINS, block: int = BLOCK) -> np.ndarray:
    """HOG of a grey image (H, W), both multiples of ``cell``: (blocks_y * blocks_x * block^2 * bins,)
    float32, each block L2-Hys normalised (L2, clip at 0.2, L2 again)."""
    g = np.asarray(grey, np.float32)
    h, w = g.shape
    if h % cell or w % cell:
        raise ValueError(f"image {w}x{h} is not a multiple of the {cell} px cell")
    gx = np.zeros_like(g)
    gy = np.zeros_like(g)
    gx[:, 1:-1] = g[:, 2:] - g[:, :-2]
    gy[1:-1, :] = g[2:, :] - g[:-2, :]
    mag = np.hypot(gx, gy)
    ang = np.arctan2(gy, gx) * (180.0 / np.pi) % 180.0
    pos = ang / (180.0 / bins) - 0.5            # bin centres at (k + 0.5) * 20 degrees
    lo = np.floor(pos)
    frac = pos - lo
    lo = lo.astype(np.int64) % bins
    hi = (lo + 1) % bins
    cy, cx = h // cell, w // cell
    cell_id = ((np.arange(h) // cell)[:, None] * cx + (np.arange(w) // cell)[None, :]).ravel()
    base = cell_id * bins
    hist = np.bincount(np.concatenate([base + lo.ravel(), base + hi.ravel()]),
                       weights=np.concatenate([(mag * (1 - frac)).ravel(), (mag * frac).ravel()]),
                       minlength=cy * cx * bins).reshape(cy, cx, bins)
    by, bx = cy - block + 1, cx - block + 1
    blocks = np.stack([hist[i:i + by, j:j + bx] for i in range(block) for j in range(block)], 2)
    blocks = blocks.reshape(by, bx, -1)
    blocks /= np.sqrt((blocks ** 2).sum(-1, keepdims=True) + 1e-6)
    np.minimum(blocks, 0.2, out=blocks)
    blocks /= np.sqrt((blocks ** 2).sum(-1, keepdims=True) + 1e-6)
    return blocks.ravel().astype(np.float32)


def grey_crop(image_rgb: np.ndarray, landmarks: np.ndarray, size: int = CROP):
    """The aligned grey face crop (size, size) uint8 and its landmarks (68, 2) in 0..1."""
    m = align(landmarks, size)
    patch = crop(image_rgb, m, size)
    grey = cv2.cvtColor(patch, cv2.COLOR_RGB2GRAY) if patch.ndim == 3 else patch
    return grey, normalised_landmarks(landmarks, m, size)


def face_features(image_rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(FEATURE_SIZE,) float32 features of the face with dlib ``landmarks`` (68, 2, image
    pixels) in an RGB uint8 image: HOG of the aligned grey crop, then the landmarks in crop
    units (x0, y0, x1, y1, ...)."""
    grey, lm = grey_crop(image_rgb, landmarks)
    return np.concatenate([hog(grey), lm.ravel()]).astype(np.float32)


def mirror(image_rgb: np.ndarray, landmarks: np.ndarray):
    """The image flipped left-right and its landmarks moved and renumbered to match
    (training augmentation: a mirrored face has the same AUs)."""
    w = image_rgb.shape[1]
    lm = np.asarray(landmarks, np.float64)[MIRROR].copy()
    lm[:, 0] = w - 1 - lm[:, 0]
    return np.ascontiguousarray(image_rgb[:, ::-1]), lm
