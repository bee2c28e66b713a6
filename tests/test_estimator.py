"""AU estimator on real labelled photos (../shared/data/facial_expressions)."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner

from gan_anim.aus import AU_INDEX, AU_NAMES
from gan_anim.cli import main
from gan_anim.errors import GanAnimError
from gan_anim.estimation.geometry import CALIBRATION_PATH, estimate_from_landmarks
from gan_anim.estimation.photo import estimate_aus
from gan_anim.faces.detect import find_face
from gan_anim.media.images import read_image

CAL = json.loads(CALIBRATION_PATH.read_text())
SAMPLE = CAL["validation"]["held_out"]["sample_median_range"]


@pytest.fixture(scope="module")
def held_out_aus(shared_data):
    """AUs of 20 seeded held-out photos per label, through the whole pipeline
    (decode, pad, detect, landmarks, estimate) as the calibration ran it."""
    root = shared_data / "facial_expressions"
    with open(root / "labels.csv", newline="") as fh:
        labels = {r["file"]: r["label"] for r in csv.DictReader(fh)}
    held = CAL["held_out_files"]
    rng = np.random.default_rng(0)
    out = {}
    for label in ("neutral", "happiness", "surprise"):
        files = sorted(f for f in held if labels[f] == label)
        aus = []
        for f in rng.choice(files, 20, replace=False):
            status, _, lm = find_face(read_image(root / "images" / f), pad=CAL["meta"]["pad"])
            assert status == "ok", f  # held-out files are those where calibration found a face
            aus.append(estimate_from_landmarks(lm))
        out[label] = np.array(aus)
    return out


def median(aus, name):
    return float(np.median(aus[:, AU_INDEX[name]]))


def test_happy_scores_higher_au12_and_au06_than_neutral(held_out_aus):
    for name in ("AU12", "AU06"):
        assert median(held_out_aus["happiness"], name) > median(held_out_aus["neutral"], name) + 1.0, name


def test_surprise_scores_higher_brow_and_jaw_aus_than_neutral(held_out_aus):
    for name in ("AU01", "AU26"):
        assert median(held_out_aus["surprise"], name) > median(held_out_aus["neutral"], name) + 0.3, name
    assert median(held_out_aus["surprise"], "AU02") > median(held_out_aus["neutral"], "AU02")


def test_committed_calibration_reproduces_its_figures(held_out_aus):
    """Medians of a 20-photo sample fall inside the range the calibration reported for
    such samples (0.5..99.5 % of 2000 resamples of its held-out part)."""
    for label, aus in held_out_aus.items():
        for name in ("AU01", "AU02", "AU05", "AU06", "AU12", "AU25", "AU26"):
            lo, hi = SAMPLE[label][name]
            assert lo - 0.01 <= median(aus, name) <= hi + 0.01, (label, name, median(aus, name), lo, hi)


def test_neutral_faces_read_near_zero(held_out_aus):
    med = np.median(held_out_aus["neutral"], 0)
    assert med.max() < 1.0, dict(zip(AU_NAMES, med.round(2)))


def test_estimate_is_invariant_to_position_scale_and_roll(shared_data):
    image = read_image(shared_data / "facial_expressions" / "images" / "AJ_Lamas_0001.jpg")
    _, _, lm = find_face(image)
    a = np.deg2rad(12)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    moved = (lm @ rot.T) * 2.7 + np.array([300.0, -40.0])
    base = estimate_from_landmarks(lm)
    assert base.shape == (17,) and base.dtype == np.float32
    assert np.all((base >= 0) & (base <= 5))
    np.testing.assert_allclose(estimate_from_landmarks(moved), base, atol=1e-3)
    batch = estimate_from_landmarks(np.stack([lm, moved, lm]))
    assert batch.shape == (3, 17)
    np.testing.assert_allclose(batch[2], base, atol=1e-6)


def test_mouth_opening_raises_au25_and_au26(shared_data):
    image = read_image(shared_data / "facial_expressions" / "images" / "AJ_Lamas_0001.jpg")
    _, _, lm = find_face(image)
    opened = lm.copy()
    iod = np.hypot(*(lm[42:48].mean(0) - lm[36:42].mean(0)))
    opened[[56, 57, 58, 65, 66, 67] + list(range(5, 12))] += [0, 0.35 * iod]  # drop lower lip and jaw
    before, after = estimate_from_landmarks(lm), estimate_from_landmarks(opened)
    assert after[AU_INDEX["AU25"]] > before[AU_INDEX["AU25"]] + 0.5
    assert after[AU_INDEX["AU26"]] > before[AU_INDEX["AU26"]] + 0.5


def test_wrong_landmark_shape_is_a_clean_error():
    with pytest.raises(GanAnimError, match="68 landmarks"):
        estimate_from_landmarks(np.zeros((5, 2)))


def test_estimate_aus_finds_tightly_cropped_face(shared_data):
    image = read_image(shared_data / "utkface_crop_part1" / "images" / sorted(
        p.name for p in (shared_data / "utkface_crop_part1" / "images").glob("2*_*.jpg"))[0])
    faces = estimate_aus(image)
    assert len(faces) == 1
    assert set(faces[0]["aus"]) == set(AU_NAMES)
    l, t, r, b = faces[0]["box"]
    assert r > l and b > t


def test_cli_aus_on_photo_writes_json(shared_data, tmp_path):
    photo = shared_data / "facial_expressions" / "images" / "AJ_Lamas_0001.jpg"
    out = tmp_path / "aus.json"
    result = CliRunner().invoke(main, ["aus", str(photo), "-o", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert len(data) == 1 and len(data[0]["box"]) == 4
    assert all(0 <= data[0]["aus"][n] <= 5 for n in AU_NAMES)
    assert data[0]["aus"]["AU12"] > 1.0   # a smiling face


@pytest.mark.parametrize("make, args, message", [
    (lambda p: p.write_bytes(b"not an image"), [], "not an image"),
    (lambda p: None, [], "no such file"),
    (lambda p: __import__("PIL.Image").Image.new("RGB", (200, 200), (90, 120, 150)).save(p, "PNG"),
     ["-o", "OUT.json"], "no face"),
    (lambda p: p.write_bytes(b"not an image"), ["-o", "OUT.txt"], "unsupported output"),
])
def test_cli_aus_bad_input_is_one_line_exit_1(tmp_path, make, args, message):
    photo = tmp_path / "in.png"
    make(photo)
    args = [a.replace("OUT", str(tmp_path / "out")) for a in args]
    result = CliRunner().invoke(main, ["aus", str(photo), *args])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.output
    assert not (tmp_path / "out.json").exists() and not (tmp_path / "out.txt").exists()


def test_cli_aus_on_video_writes_openface_csv(shared_data, tmp_path):
    import imageio_ffmpeg

    from gan_anim.aus import read_openface_csv

    face = read_image(shared_data / "facial_expressions" / "images" / "AJ_Lamas_0001.jpg")
    video = tmp_path / "clip.mp4"
    writer = imageio_ffmpeg.write_frames(str(video), (384, 288), fps=10, macro_block_size=1,
                                         ffmpeg_log_level="error")
    writer.send(None)
    for i in range(4):
        frame = np.full((288, 384, 3), 70, np.uint8)
        if i != 2:   # frame 3 has no face
            frame[16:272, 40 + 20 * i:296 + 20 * i] = face
        writer.send(np.ascontiguousarray(frame))
    writer.close()
    out = tmp_path / "aus.csv"
    result = CliRunner().invoke(main, ["aus", str(video), "-o", str(out)])
    assert result.exit_code == 0, result.output
    track = read_openface_csv(out)
    assert list(track["success"]) == [True, True, False, True]
    assert list(track["frame"]) == [1, 2, 3, 4]
    assert track["present"].all()
    assert np.all(track["aus"][2] == 0) and track["aus"][0, AU_INDEX["AU12"]] > 1.0


@pytest.mark.slow
def test_large_photo_fast_path_matches_full_resolution(shared_data, tmp_path):
    """A 1920x1080 JPEG (through estimate_aus_file: decoded at the size the cascade needs)
    gives the face's box in file pixels and about the same AUs as the full-resolution image; a face too small for
    the fast detection size is still found by the fallback."""
    import cv2
    from PIL import Image

    from gan_anim.estimation.photo import estimate_aus_file

    face = read_image(shared_data / "facial_expressions" / "images" / "AJ_Lamas_0001.jpg")
    canvas = cv2.GaussianBlur(cv2.resize(face, (1920, 1080)), (0, 0), 25)
    big = cv2.resize(face, (600, 600), interpolation=cv2.INTER_CUBIC)
    canvas[300:900, 1100:1700] = big
    Image.fromarray(canvas).save(tmp_path / "big.jpg", quality=92)
    fast = estimate_aus_file(tmp_path / "big.jpg")
    full = estimate_aus(read_image(tmp_path / "big.jpg"), detect_side=1920)
    assert len(fast) == 1 and len(full) == 1
    np.testing.assert_allclose(fast[0]["box"], full[0]["box"], atol=0.15 * 600)  # HOG boxes vary by scale
    l, t, r, b = fast[0]["box"]
    assert 1100 <= (l + r) / 2 <= 1700 and 300 <= (t + b) / 2 <= 900
    for name in ("AU06", "AU12", "AU25", "AU26"):
        assert abs(fast[0]["aus"][name] - full[0]["aus"][name]) < 1.0, name

    small = cv2.GaussianBlur(cv2.resize(face, (1920, 1080)), (0, 0), 25)
    small[500:680, 900:1080] = cv2.resize(face, (180, 180), interpolation=cv2.INTER_AREA)
    Image.fromarray(small).save(tmp_path / "small.jpg", quality=92)
    found = estimate_aus_file(tmp_path / "small.jpg")
    assert len(found) == 1 and 900 <= (found[0]["box"][0] + found[0]["box"][2]) / 2 <= 1080
