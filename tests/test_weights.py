"""The shipped weights: they load, describe themselves, and really edit a real face."""
from __future__ import annotations

import re
import shlex

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import EXAMPLE, ROOT
from PIL import Image, ImageSequence

from gan_anim.cli import main
from gan_anim.faces.detect import detect_faces
from gan_anim.faces.identity import face_descriptor
from gan_anim.media.images import read_image
from gan_anim.model import load_generator
from gan_anim.pipeline.photo import Animator
from gan_anim.render.blend import FaceBlender
from gan_anim.render.weights import DEFAULT_WEIGHTS, WEIGHTS_DIR

SHIPPED = WEIGHTS_DIR / DEFAULT_WEIGHTS


def test_shipped_weights_load_and_report_config():
    assert SHIPPED.is_file(), "weights/gan-anim-medium.pt is part of the repository"
    gen = load_generator(SHIPPED)
    assert gen.cfg.image_size == 128 and gen.cfg.motion and gen.cfg.color == "luma"
    # the fitted AU -> landmark motion travels in the file: AU26 drops the chin (landmark 8)
    from gan_anim.aus import AU_NAMES
    assert gen.motion.basis[AU_NAMES.index("AU26"), 8, 1] * 128 > 5
    result = CliRunner().invoke(main, ["info"])
    assert result.exit_code == 0
    assert "image_size      128" in result.output and "AU45" in result.output
    import torch

    from gan_anim.render.device import resolve_precision

    expected = resolve_precision("auto", torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    assert f", {expected} (--precision auto" in result.output


def test_weights_with_a_flow_head_are_refused_in_one_line(tmp_path):
    """A config with the learned flow head ("flow": true), which the networks do not have."""
    import torch

    from gan_anim.model import PRESETS, Generator, generator_state

    blob = generator_state(Generator(PRESETS["small"]))
    blob["config"]["flow"] = True
    path = tmp_path / "flow.pt"
    torch.save(blob, path)
    with pytest.raises(ValueError, match="flow head"):
        load_generator(path)
    result = CliRunner().invoke(main, ["info", "--weights", str(path)])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and str(path) in result.stderr and "flow head" in result.stderr


def test_smile_and_jaw_rises_travel_in_the_weights_file(tmp_path):
    """The shipped files carry their own motion for AU12 and AU26 rises (``motion_rise``, fitted
    on cfee's coded faces: a smile lifts the corners, a dropped jaw narrows them); it survives
    ``generator_state`` and a malformed one is refused in one line."""
    import torch

    from gan_anim.aus import AU_NAMES

    for name in ("gan-anim-medium.pt", "gan-anim-small.pt"):
        gen = load_generator(ROOT / "weights" / name)
        rows = gen.motion.rise_rows()
        assert set(rows) == {AU_NAMES.index("AU12"), AU_NAMES.index("AU26")}
        au12, au26 = rows[AU_NAMES.index("AU12")], rows[AU_NAMES.index("AU26")]
        basis = gen.motion.basis
        lift = lambda b: -(b[48, 1] + b[54, 1]) / 2  # noqa: E731 - mouth corners up
        assert lift(au12) > 2 * lift(basis[AU_NAMES.index("AU12")]) > 0
        assert au26[54, 0] - au26[48, 0] < 0 < basis[AU_NAMES.index("AU26"), 54, 0] - basis[AU_NAMES.index("AU26"), 48, 0]
    _rows_travel(gen, "rise", {"AU12": torch.zeros(5, 2)}, tmp_path)


def _rows_travel(gen, key: str, malformed: dict, tmp_path) -> None:
    """``gen``'s ``motion_<key>`` rows survive ``generator_state`` and a reload; a file with
    ``malformed`` rows instead is refused, naming them."""
    import torch

    from gan_anim.model import generator_state

    path = tmp_path / "copy.pt"
    torch.save(generator_state(gen), path)
    torch.testing.assert_close(getattr(load_generator(path).motion, key), getattr(gen.motion, key))
    blob = generator_state(gen)
    blob[f"motion_{key}"] = malformed
    torch.save(blob, path)
    with pytest.raises(ValueError, match=f"motion_{key}"):
        load_generator(path)


def test_brow_lowerer_falls_by_its_coded_motion_and_travels_in_the_weights_file(tmp_path):
    """AU04 is read by the learned estimator, on cfee's coded scale, so its fall moves the
    brows by the cfee-fitted row (``motion_fall``), which lowers them further than the
    landmark-label ``basis``; the row survives ``generator_state``; a malformed one is refused."""
    import torch

    from gan_anim.aus import AU_NAMES

    k = AU_NAMES.index("AU04")
    for name in ("gan-anim-medium.pt", "gan-anim-small.pt"):
        gen = load_generator(ROOT / "weights" / name)
        rows = gen.motion.fall_rows()
        assert set(rows) == {AU_NAMES.index(n) for n in ("AU04", "AU07", "AU10")}
        inner = lambda b: (b[21, 1] + b[22, 1]) / 2  # noqa: E731 - inner brows down
        assert inner(rows[k]) > 1.3 * inner(gen.motion.basis[k]) > 0
    _rows_travel(gen, "fall", {"AU04": torch.zeros(68, 3)}, tmp_path)


def test_raised_upper_lip_falls_by_its_coded_motion():
    """AU10 is read by the learned estimator, on cfee's coded scale, so its fall moves the
    upper lip by the cfee-fitted row (``motion_fall``): the coded raised upper lip lifts the
    lip's top (51) over 5 x as far as the landmark-label ``basis``, so `surprise` or `neutral`
    from a disgusted face lowers it."""
    from gan_anim.aus import AU_NAMES

    k10 = AU_NAMES.index("AU10")
    for name in ("gan-anim-medium.pt", "gan-anim-small.pt"):
        gen = load_generator(ROOT / "weights" / name)
        rows, basis = gen.motion.fall_rows(), gen.motion.basis
        assert -rows[k10][51, 1] > 5 * -basis[k10, 51, 1] > 0


def test_surprise_from_a_frown_raises_the_inner_brows(shared_data):
    """`surprise` on held-out angry cfee faces (lowered, knitted brows) lifts the re-detected
    inner brows (21-22) over the eyes by 0.175 eye distance or more (median of 6; the
    landmark-label AU04 fall gave 0.16; real surprised faces sit 0.22 above angry ones)."""
    import csv

    cfee = shared_data / "cfee"
    held = {ln.strip() for ln in (ROOT / "benchmarks" / "splits" / "cfee_heldout_people.txt").read_text().splitlines()
            if ln.strip() and not ln.startswith("#")}
    with open(cfee / "labels.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["identity"] in held and r["emotion"] == "Angry"]
    rows = sorted(rows, key=lambda r: (int(r["identity"]), r["file"]))[:6]
    assert len(rows) == 6

    def inner(lm):
        eye = np.linalg.norm(lm[42:48].mean(0) - lm[36:42].mean(0))
        return (lm[36:48, 1].mean() - lm[[21, 22], 1].mean()) / eye

    anim = Animator(device="cpu")
    rises = []
    for row in rows:
        image = read_image(cfee / "images" / row["file"])
        face = max(detect_faces(image), key=lambda f: f.area)
        job = anim.face_jobs(image, [face], "surprise", None)[0]
        out = next(iter(anim.render(image, [job], np.array([1.0])))).copy()
        again = max(detect_faces(out), key=lambda f: f.area)
        rises.append(inner(again.landmarks) - inner(face.landmarks))
    assert np.median(rises) >= 0.175, np.round(rises, 3)


@pytest.fixture(scope="module")
def edited(tmp_path_factory):
    out = tmp_path_factory.mktemp("shipped") / "frames"
    Animator(device="cpu").animate(EXAMPLE, out, to="surprise", start="neutral", frames=3)
    frames = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(out.glob("*.png"))]
    return read_image(EXAMPLE), frames


def test_shipped_weights_edit_the_face_and_keep_identity(edited):
    image, frames = edited
    face = detect_faces(image)[0]
    animator = Animator(device="cpu")
    job = animator.face_jobs(image, [face], "happy", "neutral")[0]
    region = FaceBlender(image.shape, job.transform, animator.model.size).slices
    diff = np.abs(frames[-1][region].astype(float) - image[region]).mean(2)
    # a real edit: a visible share of the face region changes by more than 8 grey levels
    assert (diff > 8).mean() > 0.01, f"only {(diff > 8).mean():.2%} of the face changed"
    # the first frame (alpha 0, neutral -> neutral) changes much less than the last
    diff0 = np.abs(frames[0][region].astype(float) - image[region]).mean()
    assert diff0 < diff.mean()
    distance = np.linalg.norm(face_descriptor(frames[-1], face) - face_descriptor(image, face))
    assert distance < 0.6, f"identity distance {distance:.3f}"


def test_demo_command_reproduces_readme_gif(tmp_path):
    """`make demo`'s GIF command, run here, gives the GIF shown in the README."""
    makefile = (ROOT / "Makefile").read_text()
    line = next(ln for ln in makefile.splitlines() if "animate" in ln and ".gif" in ln)
    args = shlex.split(re.sub(r"^\s*\$\(BIN\)/gan-anim\s+", "", line))
    out_index = args.index("-o") + 1
    reference = ROOT / "docs" / "astronaut-happy.gif"
    args[out_index] = str(tmp_path / "demo.gif")
    result = CliRunner().invoke(main, [*args, "-q"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    with Image.open(reference) as ref, Image.open(tmp_path / "demo.gif") as new:
        assert new.n_frames == ref.n_frames and new.size == ref.size
        for a, b in zip(ImageSequence.Iterator(ref), ImageSequence.Iterator(new)):
            d = np.abs(np.asarray(a.convert("RGB"), float) - np.asarray(b.convert("RGB"), float))
            assert d.mean() < 1.0
