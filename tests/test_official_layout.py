"""The official GANimation layout (imgs/ of aligned crops, aus_openface.pkl, train_ids.csv,
test_ids.csv) trains with the landmark-warp presets: landmarks found on the crops, cached in
the run folder; crops without a face skipped and counted. Real faces: cfee crops (people not
held out) with their FACS AU codes."""
from __future__ import annotations

import csv
import pickle
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import EXAMPLE

from gan_anim.aus import AU_NAMES
from gan_anim.cli import main
from gan_anim.training import crop_landmarks
from gan_anim.training.data import load_dataset

HELDOUT = Path(__file__).resolve().parents[1] / "benchmarks" / "splits" / "cfee_heldout_people.txt"


@pytest.fixture(scope="module")
def official(shared_data, tmp_path_factory) -> Path:
    """24 cfee crops at 128 px (20 train, 4 test) and one crop without a face (a corner of
    the astronaut photo's flag) in the train split, with their AUs in aus_openface.pkl."""
    import cv2

    root = tmp_path_factory.mktemp("emotionnet")
    (root / "imgs").mkdir()
    held = {line.strip() for line in HELDOUT.read_text().splitlines() if line.strip() and line[0] != "#"}
    with open(shared_data / "cfee" / "labels.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["identity"] not in held][:24 * 9:9]
    table = {}
    for k, r in enumerate(rows):
        img = cv2.imread(str(shared_data / "cfee" / "images" / r["file"]))
        cv2.imwrite(str(root / "imgs" / f"N_{k:04d}.jpg"), cv2.resize(img, (128, 128), interpolation=cv2.INTER_AREA))
        table[f"N_{k:04d}"] = np.array([float(r[n] or 0) for n in AU_NAMES])
    flag = cv2.imread(str(EXAMPLE))[300:428, 0:128]
    cv2.imwrite(str(root / "imgs" / "N_9000.jpg"), flag)
    table["N_9000"] = np.zeros(17)
    (root / "train_ids.csv").write_text("".join(f"N_{k:04d}.jpg\n" for k in range(20)) + "N_9000.jpg\n")
    (root / "test_ids.csv").write_text("".join(f"N_{k:04d}.jpg\n" for k in range(20, 24)))
    with open(root / "aus_openface.pkl", "wb") as fh:
        pickle.dump(table, fh, protocol=2)
    return root


def test_landmarks_found_on_crops_and_cached_in_the_run_folder(official, tmp_path, monkeypatch):
    before = sorted(p.name for p in official.rglob("*"))
    ds = load_dataset(official, 64, "train", landmarks_cache=tmp_path, need_landmarks=True)
    assert len(ds) == 20 and "N_9000" not in ds.names
    assert any("skipped 1 of 21 train crops where no face was found (e.g. N_9000.jpg)" in n for n in ds.notes)
    lm = ds.landmarks.numpy()
    assert lm.shape == (20, 68, 2) and np.isfinite(lm).all()
    eyes = (lm[:, 36:42].mean(1) + lm[:, 42:48].mean(1)) / 2
    assert (eyes > 0.2).all() and (eyes < 0.8).all()          # eyes inside the crop, in crop units
    assert (tmp_path / "crop_landmarks-train.npz").is_file()
    assert sorted(p.name for p in official.rglob("*")) == before  # nothing written to the data
    # a second read takes them from the cache: no detection at all
    monkeypatch.setattr(crop_landmarks, "crop_landmarks", lambda image: pytest.fail("detected again"))
    again = load_dataset(official, 64, "train", landmarks_cache=tmp_path, need_landmarks=True)
    assert np.array_equal(again.landmarks.numpy(), lm)
    # without a landmark-warp preset nothing is detected and every crop is kept
    assert len(load_dataset(official, 64, "train")) == 21


@pytest.mark.slow
def test_official_layout_trains_exports_and_animates(official, tmp_path):
    run, weights = tmp_path / "run", tmp_path / "w.pt"
    result = CliRunner().invoke(main, ["train", "--data", str(official), "--out", str(run), "--steps", "2",
                                       "--batch-size", "4", "--quiet"])
    assert result.exit_code == 0, result.output + str(result.exception)
    assert "skipped 1 of 21 train crops where no face was found" in result.stderr
    assert (run / "crop_landmarks-train.npz").is_file() and (run / "crop_landmarks-test.npz").is_file()
    result = CliRunner().invoke(main, ["export", str(run), "-o", str(weights)])
    assert result.exit_code == 0, result.stderr
    out = tmp_path / "smile.gif"
    result = CliRunner().invoke(main, ["animate", str(EXAMPLE), "--to", "happy", "--frames", "3",
                                       "--weights", str(weights), "-o", str(out), "--quiet"])
    assert result.exit_code == 0, result.stderr
    from PIL import Image

    with Image.open(out) as im:
        assert im.n_frames == 3 and im.size == (512, 512)

