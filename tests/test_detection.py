"""One detection cascade for every command, on a real-face 12 MP group photo (faces of
very different sizes, one cut by the border) and a transparent RGBA cut-out."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import EXAMPLE
from PIL import Image
from scenes import group_photo, rgba_cutout

from gan_anim.cli import main
from gan_anim.errors import GanAnimError
from gan_anim.faces import detect as faces
from gan_anim.faces.align import align, crop
from gan_anim.media.images import read_image
from gan_anim.pipeline.photo import Animator
from gan_anim.render.blend import FaceBlender


@pytest.fixture(scope="module")
def group(shared_data, tmp_path_factory):
    """(path of the 4000x3000 JPEG, its decoded pixels, [(eye x, eye y, eye distance)])."""
    image, truth = group_photo(shared_data)
    path = tmp_path_factory.mktemp("group") / "group.jpg"
    Image.fromarray(image).save(path, quality=95)
    return path, read_image(path), truth


@pytest.fixture(scope="module")
def cutout(shared_data, tmp_path_factory):
    rgba, eyes = rgba_cutout(shared_data)
    path = tmp_path_factory.mktemp("rgba") / "cutout.png"
    Image.fromarray(rgba).save(path)
    return path, eyes


def eyes_of(landmarks):
    lm = np.asarray(landmarks)
    return (lm[36:42].mean(0) + lm[42:48].mean(0)) / 2, float(np.hypot(*(lm[42:48].mean(0) - lm[36:42].mean(0))))


def assert_matches(found_landmarks, truth):
    """Each true face found once: eye midpoint within 0.25 eye distances, eye distance within 20 %."""
    assert len(found_landmarks) == len(truth), (len(found_landmarks), len(truth))
    for x, y, d in truth:
        hits = [(m, e) for m, e in map(eyes_of, found_landmarks) if np.hypot(m[0] - x, m[1] - y) < 0.25 * d]
        assert len(hits) == 1, ((x, y, d), [eyes_of(lm) for lm in found_landmarks])
        assert abs(hits[0][1] - d) < 0.2 * d


def test_cascade_finds_every_face_of_the_group_photo(group):
    path, image, truth = group
    found = faces.detect_faces(image)
    assert_matches([f.landmarks for f in found], truth)
    assert [f.area for f in found] == sorted((f.area for f in found), reverse=True)
    # the single pass every command used to run (shrunk to 1280 px, no padding) finds one
    assert len(faces.detect_boxes(image)) == 1
    # without its small-face pass the cascade loses the small faces too
    assert len(faces.detect_faces(image, small_face_pixels=0)) < len(truth)
    assert len(faces.detect_faces(image, small_faces="off")) < len(truth)
    # "on" (the whole photo scanned) finds the same faces as the default "auto"
    assert_matches([f.landmarks for f in faces.detect_faces(image, small_faces="on")], truth)


def test_auto_small_faces_scans_only_where_a_missed_face_can_be(group, shared_data):
    """The candidate regions of small_faces="auto": none beside the one face of a 1080p
    photo (a real face on its own blurred copy), and around each small face of the group photo."""
    import cv2

    src = read_image(shared_data / "facial_expressions/images/AJ_Cook_0001.jpg")
    photo = cv2.GaussianBlur(cv2.resize(src, (1920, 1080)), (0, 0), 25)
    face = cv2.resize(src, (648, 648), interpolation=cv2.INTER_CUBIC)
    photo[200:848, 900:1548] = face
    first = faces.merge_boxes(faces._cascade(photo, "hog", 0, 0.3, faces.AUTO_FIRST_SIDE, 12.0, 0,
                                             None, False))
    assert len(first) == 1
    cand, f = faces.candidate_map(photo, 12.0)
    assert cand.any()                                                   # the face itself
    assert faces.small_face_regions(photo.shape, cand, f, first, 104.0) == []
    _, image, truth = group
    cand, f = faces.candidate_map(image, 12.0)
    regions = faces.small_face_regions(image.shape, cand, f, [], 81.0)
    area = sum((r - l) * (b - t) for l, t, r, b in regions)
    assert area < 0.3 * image.shape[0] * image.shape[1]
    for x, y, d in truth[1:]:                                           # the small faces
        assert any(l < x - d and x + d < r and t < y - d and y + d < b for l, t, r, b in regions), (x, y, d)
    with pytest.raises(GanAnimError, match="small-face mode"):
        faces.detect_faces(photo, small_faces="some")


def test_small_face_pass_reaches_12_px_eyes_on_a_2_mp_photo(shared_data):
    """Eyes 14 px apart (far below HOG's 26 px window) on a 1600x1200 photo are found; the
    photo is small enough for the pass to reach MIN_EYE_DISTANCE within its budget."""
    import cv2
    from scenes import source_eyes

    src = read_image(shared_data / "facial_expressions/images/AJ_Cook_0001.jpg")
    mid, d = source_eyes(src)
    k = 14.0 / d
    small = cv2.resize(src, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
    canvas = np.full((1200, 1600, 3), 128, np.uint8)
    canvas[700:700 + small.shape[0], 300:300 + small.shape[1]] = small
    assert faces.small_face_scale(canvas.shape, "hog", 12.0) == pytest.approx(26.0 / 12.0)
    found = faces.detect_faces(canvas)
    assert_matches([f.landmarks for f in found], [(300 + mid[0] * k, 700 + mid[1] * k, 14.0)])
    assert faces.detect_faces(canvas, small_face_pixels=0) == []


def test_small_face_pass_keeps_to_its_budget():
    for shape in ((3000, 4000, 3), (1080, 1920, 3), (512, 512, 3)):
        s = faces.small_face_scale(shape, "hog", 12.0, first_scale=min(1.0, 1280 / max(shape)))
        border, tiles = faces._tile_grid(shape, s, 26.0 / min(1.0, 1280 / max(shape)))
        scanned = sum((y1 - y0) * (x1 - x0) for y0, y1, x0, x1 in tiles) * s ** 2
        assert 1.0 <= s <= 26.0 / 12.0 + 1e-9 and scanned <= faces.SMALL_FACE_PIXELS * 1.02
        h, w = shape[0] + 2 * border, shape[1] + 2 * border   # the tiles cover the padded photo
        cover = np.zeros((h, w), bool)
        for y0, y1, x0, x1 in tiles:
            cover[y0:y1, x0:x1] = True
        assert cover.all()
    assert faces.small_face_scale((3000, 4000, 3), "hog", 12.0, 0.32) == pytest.approx(1.0, abs=0.05)


@pytest.mark.slow
def test_animate_edits_every_face_and_nothing_else(group, random_weights, tmp_path):
    path, image, truth = group
    animator = Animator(random_weights, device="cpu", batch_size=8)
    res = animator.animate(path, tmp_path / "frames", to="happy", start="neutral", frames=2)
    assert res.faces == len(truth)
    last = np.asarray(Image.open(tmp_path / "frames" / "frame_00001.png").convert("RGB")).astype(int)
    found = faces.detect_faces(image)
    outside = np.ones(image.shape[:2], bool)
    for job in animator.face_jobs(image, found, "happy", "neutral"):
        outside[FaceBlender(image.shape, job.transform, animator.model.size).slices] = False
    assert np.array_equal(last[outside], image[outside])
    for x, y, d in truth:   # pixels change around each face's eyes and mouth
        x0, x1 = int(max(0, x - 1.5 * d)), int(min(image.shape[1], x + 1.5 * d))
        y0, y1 = int(max(0, y - d)), int(min(image.shape[0], y + 2 * d))
        assert np.abs(last[y0:y1, x0:x1] - image[y0:y1, x0:x1]).max() > 10, (x, y, d)


@pytest.mark.slow
def test_aus_grid_and_video_tracker_find_the_same_faces(group, random_weights, tmp_path):
    from gan_anim.estimation.photo import estimate_aus_file
    from gan_anim.faces.tracking import FaceTracker
    from gan_anim.pipeline.grid import au_grid

    path, image, truth = group
    # aus (the JPEG decoded at half size): boxes in file pixels around each face's eyes
    found = estimate_aus_file(path)
    assert len(found) == len(truth)
    for x, y, d in truth:
        assert sum(b[0] < x < b[2] and b[1] < y < b[3] for b in (f["box"] for f in found)) == 1
    # video: the tracker's detection step
    tracker = FaceTracker(64, fps=10, detect_every=2)
    tracked = tracker.update(image)
    assert_matches([t.landmarks for t in tracked], truth)
    # later detections run the cascade's cheap first pass only (every 2 s the whole
    # cascade): the faces only the border and small-face passes see are followed, not lost
    ids = sorted(t.id for t in tracked)
    for _ in range(4):
        tracked = tracker.update(image)
        assert sorted(t.id for t in tracked) == ids
    assert tracker.detections == 3
    # grid: the smallest face is --face 4; every cell shows that face (column 0: its crop)
    cell = 32
    au_grid(Animator(random_weights, device="cpu"), path, tmp_path / "grid.png", face=str(len(truth)), cell=cell,
            names=("AU12",), levels=(0.0, 1.0), presets=("happy",))
    with Image.open(tmp_path / "grid.png") as im:
        grid = np.asarray(im.convert("RGB")).astype(float)
    assert grid.shape == (2 * 24 + 2 * cell, 150 + 3 * cell, 3)   # (AU12 + presets) x (input + 2)
    detected = faces.detect_faces(image)    # animate's faces, largest first
    (mid, _), boxes = eyes_of(detected[-1].landmarks), [f["box"] for f in found]
    assert sum(b[0] < mid[0] < b[2] and b[1] < mid[1] < b[3] for b in boxes) == 1  # one of aus's faces
    crops = [crop(image, align(f.landmarks, cell), cell).astype(float) for f in detected]
    for y, x in [(24, 150 + c * cell) for c in range(3)] + [(48 + cell, 150 + c * cell) for c in range(2)]:
        shown = grid[y:y + cell, x:x + cell]
        corr = [np.corrcoef(shown.ravel(), c.ravel())[0, 1] for c in crops]
        assert corr[-1] > 0.9 and corr[-1] == max(corr), (y, x, corr)
    assert np.array_equal(grid[24:24 + cell, 150:150 + cell], crops[-1])


@pytest.mark.slow
def test_rgba_cutout_face_found_by_animate_and_aus(cutout, random_weights, tmp_path):
    """A face cut by the top border of a transparent PNG: the old animate said 'no face'."""
    path, (ex, ey) = cutout
    image = read_image(path)
    assert faces.detect_boxes(image) == []          # the single unpadded pass misses it
    res = Animator(random_weights, device="cpu").animate(path, tmp_path / "a.gif", to="happy",
                                                         start="neutral", frames=2)
    assert res.faces == 1 and (tmp_path / "a.gif").exists()
    result = CliRunner().invoke(main, ["aus", str(path), "-o", str(tmp_path / "a.json")])
    assert result.exit_code == 0, result.stderr
    (box,) = [f["box"] for f in json.loads((tmp_path / "a.json").read_text())]
    assert box[0] < ex < box[2] and box[1] < ey < box[3] and box[1] < 0   # reaches above the photo
    status, box2, lm = faces.find_face(image)                           # prepare's call
    assert status == "ok" and np.hypot(*(eyes_of(lm)[0] - (ex, ey))) < 0.25 * eyes_of(lm)[1]


def test_merge_keeps_the_first_pass_box_and_distinct_faces():
    first = [((100, 100, 200, 200), 0.5)]
    later = [((105, 98, 203, 199), 2.0),      # the same face, higher score: dropped
             ((120, 120, 170, 170), 1.0),     # inside the first box: the same face
             ((300, 100, 340, 140), 0.3),     # another face
             ((302, 101, 341, 139), 0.9)]     # its duplicate within the pass: higher score wins
    assert faces.merge_boxes([first, later]) == [((100, 100, 200, 200), 0.5), ((302, 101, 341, 139), 0.9)]


def test_landmarks_of_a_face_across_the_border_match_the_padded_photo(shared_data):
    """A face cut by the border gets the landmarks it has on an edge-padded copy."""
    image = read_image(shared_data / "utkface_crop_part1/images/26_1_0_20170103175557343.jpg.chip.jpg")
    padded, p = faces.pad_image(image, 0.5)
    (box, _), = faces.detect_boxes(padded)
    ref = faces.landmarks(padded, box) - p
    box = tuple(v - p for v in box)
    assert min(box) < 0 or max(box[2:]) > image.shape[0]          # the box leaves the photo
    np.testing.assert_allclose(faces.face_landmarks(image, box), ref, atol=1e-4)


def test_borrowed_detectors_are_clones_that_find_the_same_faces(shared_data):
    """Concurrent tiles each borrow their own HOG detector, cloned from the first (pickled:
    2 ms instead of 0.24 s); a clone finds exactly what dlib's own detector finds."""
    import dlib

    from gan_anim.faces.dlib_models import borrow_detector

    photos = sorted((shared_data / "facial_expressions" / "images").glob("*.jpg"))[:5]
    with borrow_detector("hog") as a, borrow_detector("hog") as b:
        assert a is not b
        fresh = dlib.get_frontal_face_detector()
        for p in photos + [EXAMPLE]:
            image = read_image(p)
            runs = [d.run(image, 0, faces.HOG_THRESHOLD) for d in (a, b, fresh)]
            boxes = [[(r.left(), r.top(), r.right(), r.bottom()) for r in run[0]] for run in runs]
            assert boxes[0] == boxes[1] == boxes[2] and boxes[0], p
            assert runs[0][1] == runs[1][1] == runs[2][1]


def test_auto_gives_a_1080p_face_the_box_of_on(shared_data):
    """A real face on its own blurred copy, 1920x1080, whole or cut by the left border:
    "auto" (first pass at 514 px, a level of the 1280 px pass's pyramid) finds it with the box
    of "on" within a few px (landmarks within 3 % of the eye distance on average). The
    edge-padded pass is skipped where no unexplained candidate lies near a side, and run
    where the rest of a face no pass found reaches the left side."""
    import cv2

    src = read_image(shared_data / "facial_expressions/images/AJ_Cook_0001.jpg")
    photo = cv2.GaussianBlur(cv2.resize(src, (1920, 1080)), (0, 0), 25)
    face = cv2.resize(src, (648, 648), interpolation=cv2.INTER_CUBIC)
    cut, lost = photo.copy(), photo.copy()
    photo[200:848, 900:1548] = face
    cut[200:848, :421] = face[:, 227:]                                  # 35 % cut off
    lost[200:848, :348] = face[:, 300:]                                 # 46 %: no pass finds it
    s0 = faces.pyramid_scale(1280 / 1920, 1920)
    assert s0 == pytest.approx(1280 / 1920 * (5 / 6) ** 5) and faces._resized(photo, s0).shape[1] == 514
    for image in (photo, cut):
        on, auto = faces.detect_faces(image, small_faces="on"), faces.detect_faces(image)
        assert len(on) == len(auto) == 1
        assert np.abs(np.subtract(on[0].box, auto[0].box)).max() <= 8, (on[0].box, auto[0].box)
        gap = np.hypot(*(on[0].landmarks - auto[0].landmarks).T)      # dlib's shape model moves with the box
        assert gap.mean() <= 0.03 * on[0].eye_distance and gap.max() <= 0.1 * on[0].eye_distance, gap
    band = 3.2 * 26 / s0
    found = [(f.box, f.score) for f in faces.detect_faces(photo, small_faces="off")]
    assert faces.border_sides(*faces.candidate_map(photo, 12.0), found, band) == (False,) * 4
    assert faces.border_sides(*faces.candidate_map(lost, 12.0), [], band)[2]           # left
