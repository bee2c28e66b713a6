"""Detection, landmarks and the alignment shared by animate and prepare."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import EXAMPLE

from gan_anim.faces.align import align, crop
from gan_anim.faces.detect import detect_faces
from gan_anim.media.images import read_image
from gan_anim.pipeline.photo import select_faces


def test_hog_finds_the_astronaut_only():
    hog = detect_faces(read_image(EXAMPLE))
    assert len(hog) == 1  # the mission patch scores below the HOG threshold
    assert hog[0].landmarks.shape == (68, 2)


@pytest.mark.slow
def test_cnn_finds_the_astronaut_where_hog_does():
    image = read_image(EXAMPLE)
    hog = detect_faces(image)
    cnn = detect_faces(image, detector="cnn")
    assert len(cnn) == 1
    (l1, t1, r1, b1), (l2, t2, r2, b2) = hog[0].box, cnn[0].box
    inter = max(0, min(r1, r2) - max(l1, l2)) * max(0, min(b1, b2) - max(t1, t2))
    assert inter > 0.3 * min(hog[0].area, cnn[0].area)
    assert cnn[0].landmarks.shape == (68, 2)


def test_alignment_levels_eyes_and_is_rotation_invariant():
    image = read_image(EXAMPLE)
    face = detect_faces(image)[0]
    size = 128
    m = align(face.landmarks, size)
    lm = face.landmarks @ m[:, :2].T + m[:, 2]
    eye_l, eye_r = lm[36:42].mean(0), lm[42:48].mean(0)
    assert abs(eye_l[1] - eye_r[1]) < 0.5
    assert 0.3 * size < eye_r[0] - eye_l[0] < 0.4 * size
    assert lm[19, 1] > 0.1 * size and 0.9 * size < lm[8, 1] < 1.05 * size  # brows in, chin at the edge
    # the same face rotated by 20 degrees gives (nearly) the same crop
    h, w = image.shape[:2]
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), 20, 1.0)
    turned = cv2.warpAffine(image, rot, (w, h), borderMode=cv2.BORDER_REFLECT)
    face2 = detect_faces(turned, upsample=1)[0]
    a = crop(image, m, size).astype(float)
    b = crop(turned, align(face2.landmarks, size), size).astype(float)
    assert np.abs(a - b).mean() < 12


def test_tiny_faces_skipped_with_warning_and_face_selection():
    image = read_image(EXAMPLE)
    small = cv2.resize(image, (96, 96), interpolation=cv2.INTER_AREA)
    canvas = np.pad(small, ((200, 200), (200, 200), (0, 0)), mode="edge")
    warnings = []
    faces = detect_faces(canvas, upsample=2, min_eye_distance=12, warn=warnings.append)
    assert faces == [] and warnings and "skipped" in warnings[0]
    big = detect_faces(image)
    assert select_faces(big, "largest") == big[:1] and select_faces(big, "1") == big[:1]
