"""Test photos built from the real faces in ../shared/data: a 12 MP group photo with faces
at very different sizes (one small, one cut by the border) and a transparent RGBA cut-out."""
from __future__ import annotations

import cv2
import numpy as np

from gan_anim.media.images import read_image

# (source photo, eye distance wanted in the group photo (px), left, top of the pasted photo)
GROUP = [
    ("utkface_crop_part1/images/26_1_0_20170103175557343.jpg.chip.jpg", 300.0, 500, 700),
    ("facial_expressions/images/AJ_Cook_0001.jpg", 60.0, 2200, 600),
    ("facial_expressions/images/Aaron_Eckhart_0001.jpg", 30.0, 2000, 2300),
    ("utkface_crop_part1/images/28_0_0_20170102233520314.jpg.chip.jpg", 90.0, 3800, 1500),  # cut by the right border
]


def source_eyes(image: np.ndarray) -> tuple[np.ndarray, float]:
    """(eye midpoint, eye distance) of a source photo's face, from dlib at full size."""
    from gan_anim.faces.detect import detect_faces

    face = detect_faces(image, upsample=1)[0]
    return (face.landmarks[36:42].mean(0) + face.landmarks[42:48].mean(0)) / 2, face.eye_distance


def group_photo(shared_data, size=(4000, 3000)):
    """(RGB 4000x3000 image, [(eye midpoint x, y, eye distance)] of every pasted face).

    The background is a blurred, enlarged face photo (texture, no face); each source
    photo is scaled to its wanted eye distance and pasted (clipped at the border)."""
    w, h = size
    bg = read_image(shared_data / "utkface_crop_part1/images/1_0_0_20161219140623097.jpg.chip.jpg")
    canvas = cv2.GaussianBlur(cv2.resize(bg, (w, h)), (0, 0), 40)
    canvas = np.ascontiguousarray((canvas * 0.6 + 60).astype(np.uint8)[::-1])  # upside down: no face
    truth = []
    for rel, eye, left, top in GROUP:
        src = read_image(shared_data / rel)
        mid, d = source_eyes(src)
        k = eye / d
        photo = cv2.resize(src, None, fx=k, fy=k, interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC)
        ph, pw = photo.shape[:2]
        x1, y1 = min(w, left + pw), min(h, top + ph)
        canvas[top:y1, left:x1] = photo[:y1 - top, :x1 - left]
        truth.append((left + mid[0] * k, top + mid[1] * k, eye))
    return canvas, truth


def rgba_cutout(shared_data, size=(1524, 1036)):
    """A transparent RGBA PNG picture (stock-photo cut-out): one face filling the height,
    cut by the top border, transparent left and right. Returns (RGBA array, eye midpoint)."""
    w, h = size
    src = read_image(shared_data / "utkface_crop_part1/images/26_1_0_20170103175557343.jpg.chip.jpg")
    mid, d = source_eyes(src)
    k = (h * 1.25) / src.shape[0]
    photo = cv2.resize(src, None, fx=k, fy=k, interpolation=cv2.INTER_CUBIC)
    out = np.zeros((h, w, 4), np.uint8)
    left, top = (w - photo.shape[1]) // 2, -int(0.2 * photo.shape[0])
    out[:, left:left + photo.shape[1], :3] = photo[-top:-top + h]
    out[:, left:left + photo.shape[1], 3] = 255
    return out, (left + mid[0] * k, top + mid[1] * k)
