"""Align and crop a face: the similarity transform from its 68 landmarks to the model's
square crop, the crop itself, and landmarks in crop coordinates. Training data and every
inference path use these same functions."""
from __future__ import annotations

import cv2
import numpy as np


def align(landmarks: np.ndarray, size: int) -> np.ndarray:
    """Similarity transform (2x3, image -> crop) that frames a face in a ``size`` square.

    Eyes level, brows to chin (the chin at the bottom edge), a fixed margin: the half-side is
    max(1.6 x eye distance, 1.45 x eye-to-mouth distance), centred a little
    below the eyes (FFHQ-style, tighter).
    """
    lm = np.asarray(landmarks, np.float64)
    eye_l, eye_r = lm[36:42].mean(0), lm[42:48].mean(0)
    mouth = (lm[48] + lm[54]) / 2
    eye_avg = (eye_l + eye_r) / 2
    eye_to_eye = eye_r - eye_l
    eye_to_mouth = mouth - eye_avg
    x = eye_to_eye - np.array([-eye_to_mouth[1], eye_to_mouth[0]])  # average of two axes
    x /= np.hypot(*x)
    half = max(np.hypot(*eye_to_eye) * 1.6, np.hypot(*eye_to_mouth) * 1.45)
    center = eye_avg + eye_to_mouth * 0.1
    y = np.array([-x[1], x[0]])
    # crop pixel (u, v) = s * R (p - center) + size/2, R rows x and y
    s = size / (2 * half)
    rot = np.stack([x, y]) * s
    t = size / 2 - rot @ center
    return np.concatenate([rot, t[:, None]], axis=1).astype(np.float64)


def invert(transform: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(np.asarray(transform, np.float64))


def crop(image: np.ndarray, transform: np.ndarray, size: int) -> np.ndarray:
    """Warp ``image`` into the ``size`` x ``size`` crop given by ``transform``.

    When the face is much larger than the crop, the region is first shrunk with
    area averaging, so the crop is not aliased. Outside the image: edge pixels.
    """
    m = np.asarray(transform, np.float64)
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    if scale < 0.5:
        # Shrink the bounding region of the crop first (INTER_AREA), then warp.
        inv = invert(m)
        corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], np.float64)
        pts = corners @ inv.T
        h, w = image.shape[:2]
        x0, y0 = np.floor(pts.min(0)).astype(int) - 2
        x1, y1 = np.ceil(pts.max(0)).astype(int) + 2
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 > x0 and y1 > y0:
            f = 2 * scale
            region = image[y0:y1, x0:x1]
            rw, rh = max(1, round((x1 - x0) * f)), max(1, round((y1 - y0) * f))
            region = cv2.resize(region, (rw, rh), interpolation=cv2.INTER_AREA)
            fx, fy = rw / (x1 - x0), rh / (y1 - y0)
            # crop = M * (p_region / f + offset)
            pre = np.array([[1 / fx, 0, x0], [0, 1 / fy, y0], [0, 0, 1]], np.float64)
            m = m @ pre
            image = region
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def normalised_landmarks(landmarks: np.ndarray, transform: np.ndarray, size: int) -> np.ndarray:
    """Image landmarks (68, 2) -> aligned crop coordinates in crop-side units (0..1)."""
    m = np.asarray(transform, np.float64)
    lm = np.asarray(landmarks, np.float64)
    return ((lm @ m[:, :2].T + m[:, 2]) / size).astype(np.float32)
