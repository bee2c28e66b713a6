"""The appearance AU estimator (``gan_anim.estimation``) on real cfee photos of people held
out from its training: disgust and anger read as their AUs, the shipped file loads
without the training code, and a bad estimator file is one clear line."""
from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import EXAMPLE, ROOT

from gan_anim.aus import AU_INDEX, AU_NAMES
from gan_anim.cli import main
from gan_anim.errors import GanAnimError
from gan_anim.estimation import appearance
from gan_anim.estimation.features import FEATURE_SIZE, HOG_SIZE, face_features, hog, mirror
from gan_anim.estimation.photo import estimate_aus, estimate_face_aus
from gan_anim.faces.detect import detect_faces
from gan_anim.media.images import read_image

HELDOUT = ROOT / "benchmarks" / "splits" / "cfee_heldout_people.txt"


@pytest.fixture(scope="module")
def heldout_photos(shared_data):
    """{person: {emotion: path}} for the first 3 held-out people with a neutral, a
    disgusted and an angry photo."""
    root = shared_data / "cfee"
    people = {int(x.split("#")[0]) for x in HELDOUT.read_text().splitlines() if x.split("#")[0].strip()}
    by_person: dict[int, dict[str, object]] = {}
    with open(root / "labels.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            if int(r["identity"]) in people:
                by_person.setdefault(int(r["identity"]), {})[r["emotion"]] = root / "images" / r["file"]
    wanted = ("Neutral", "Disgusted", "Angry")
    chosen = [p for p in sorted(by_person) if all(e in by_person[p] for e in wanted)][:3]
    assert len(chosen) == 3
    return {p: by_person[p] for p in chosen}


def aus_of(path) -> dict:
    found = estimate_aus(read_image(path))
    assert len(found) == 1, path
    return found[0]["aus"]


def test_disgust_raises_au09_and_anger_au04_over_the_same_persons_neutral(heldout_photos):
    """Each person's disgust photo reads more AU09, and the anger photo more AU04, than the
    neutral one (on all held-out pairs: 16 of 16 and 18 of 18), by 1 on average here."""
    gains = {"AU09": [], "AU04": []}
    for person, photos in heldout_photos.items():
        neutral, disgust, anger = (aus_of(photos[e]) for e in ("Neutral", "Disgusted", "Angry"))
        assert disgust["AU09"] > neutral["AU09"], (person, disgust["AU09"], neutral["AU09"])
        assert anger["AU04"] > neutral["AU04"], (person, anger["AU04"], neutral["AU04"])
        gains["AU09"].append(disgust["AU09"] - neutral["AU09"])
        gains["AU04"].append(anger["AU04"] - neutral["AU04"])
    assert min(np.mean(g) for g in gains.values()) > 1.0, gains


def test_geometry_alone_misses_the_nose_wrinkle_the_model_sees(heldout_photos):
    """The landmark geometry barely moves AU09 between neutral and disgust (why the model exists)."""
    gains = {"model": [], "geometry": []}
    for photos in heldout_photos.values():
        for method in gains:
            n, d = (estimate_aus(read_image(photos[e]), method=method)[0]["aus"]["AU09"]
                    for e in ("Neutral", "Disgusted"))
            gains[method].append(d - n)
    assert np.mean(gains["model"]) > np.mean(gains["geometry"]) + 0.5, gains


def test_shipped_estimator_is_small_plain_and_loads_without_training_code():
    path = appearance.weights_path()
    assert path.name == appearance.WEIGHTS_NAME and path.stat().st_size < 5e6
    code = ("import sys, numpy as np; from gan_anim.estimation.photo import estimate_aus; "
            "from gan_anim.media.images import read_image; "
            f"f = estimate_aus(read_image({str(EXAMPLE)!r})); "
            "assert len(f) == 1 and 0 <= min(f[0]['aus'].values()) and max(f[0]['aus'].values()) <= 5; "
            "bad = [m for m in sys.modules if m.startswith(('gan_anim.training', 'torch'))]; "
            "assert not bad, bad; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_features_hog_mirror_and_batch_agree():
    image = read_image(EXAMPLE)
    lm = detect_faces(image)[0].landmarks
    f = face_features(image, lm)
    assert f.shape == (FEATURE_SIZE,) and f.dtype == np.float32 and np.isfinite(f).all()
    flat = hog(np.full((96, 96), 128, np.uint8))
    assert flat.shape == (HOG_SIZE,) and not flat.any()          # no gradient, no histogram
    twice = face_features(*mirror(*mirror(image, lm)))
    np.testing.assert_array_equal(twice, f)                       # mirroring twice is identity
    one = estimate_face_aus(image, lm)
    both = estimate_face_aus(image, np.stack([lm, lm]))
    assert one.shape == (17,) and both.shape == (2, 17)
    np.testing.assert_allclose(both[1], one, atol=1e-5)
    flipped = estimate_face_aus(*mirror(image, lm))
    assert np.abs(flipped - one).max() < 1.0                      # a mirrored face, about the same AUs
    model = appearance.load()
    assert not model["use_model"][AU_INDEX["AU45"]]               # blink stays geometric


def test_edits_start_from_the_hybrid_reading(heldout_photos):
    """Edits read a face by "hybrid": the learned estimator for the AUs the geometry cannot see
    (LEARNED_AUS), the geometry for the rest, so an angry face's furrow is there to take away."""
    from gan_anim.estimation.photo import EDIT_METHOD, LEARNED_AUS

    assert EDIT_METHOD == "hybrid"
    use = np.isin(np.array(list(AU_INDEX)), LEARNED_AUS)
    gain = []
    for photos in heldout_photos.values():
        image = read_image(photos["Angry"])
        lm = detect_faces(image)[0].landmarks
        hybrid, model, geometry = (estimate_face_aus(image, lm, m) for m in ("hybrid", "model", "geometry"))
        np.testing.assert_array_equal(hybrid[use], model[use])
        np.testing.assert_array_equal(hybrid[~use], geometry[~use])
        gain.append(hybrid[AU_INDEX["AU04"]] - geometry[AU_INDEX["AU04"]])
    assert np.mean(gain) > 0.5, gain


def test_bad_estimator_file_is_one_line(tmp_path, monkeypatch):
    bad = tmp_path / "au.npz"
    bad.write_bytes(b"not a numpy file")
    with pytest.raises(GanAnimError, match="cannot read the AU estimator"):
        appearance.load(str(bad))
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, w=np.zeros((3, 17), np.float32), b=np.zeros(17, np.float32),
             use_model=np.ones(17, bool), au_names=np.array(AU_NAMES))
    with pytest.raises(GanAnimError, match="not an AU estimator"):
        appearance.load(str(wrong))
    monkeypatch.setenv(appearance.ENV, str(tmp_path / "missing.npz"))
    result = CliRunner().invoke(main, ["aus", str(EXAMPLE)])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "AU estimator weights missing" in lines[0], result.stderr
