"""The torch composite (``render.torch_blend``, the GPU's) run on the CPU against the numpy
one (``render.blend``) on real photos and a real clip: every pixel within 1 grey level,
pixels outside the faces' regions bit for bit the photo's."""
from __future__ import annotations

from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

from gan_anim.config import InferenceConfig
from gan_anim.errors import GanAnimError
from gan_anim.faces.detect import detect_faces
from gan_anim.media.images import read_image
from gan_anim.pipeline.photo import Animator
from gan_anim.pipeline.video import animate_video
from gan_anim.render.blend import FaceBlender

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "astronaut.jpg"


def _animators(weights=None, generator=None):
    return {kind: Animator(config=InferenceConfig(weights=weights, device="cpu", composite=kind),
                           generator=generator) for kind in ("numpy", "torch")}


def _frames(animator, image, faces, to):
    jobs = animator.face_jobs(image, faces, to, None)
    return jobs, [f.copy() for f in animator.render(image, jobs, np.linspace(0, 1, 3), overlap=False)]


def _outside(image, jobs, size):
    """(H,W) bool: the pixels outside every face's region."""
    mask = np.ones(image.shape[:2], bool)
    for j in jobs:
        mask[FaceBlender(image.shape, j.transform, size).slices] = False
    return mask


def _check(image, animators, to):
    faces = detect_faces(image)
    assert faces
    jobs, ref = _frames(animators["numpy"], image, faces, to)
    _, got = _frames(animators["torch"], image, faces, to)
    outside = _outside(image, jobs, animators["numpy"].model.size)
    for a, b in zip(ref, got):
        diff = np.abs(a.astype(int) - b.astype(int))
        assert diff.max() <= 1, f"{to}: {diff.max()} grey levels, {(diff > 1).sum()} values over 1"
        assert np.array_equal(b[outside], image[outside]) and np.array_equal(a[outside], image[outside])
    assert (ref[-1] != image).any(-1).sum() > 1000  # the face did change


@pytest.fixture(scope="module")
def shipped():
    return _animators()


# an open jaw's cavity; creases relaxed; the lids evaluated per full-resolution pixel
@pytest.mark.parametrize("to", ["surprise", "neutral", "blink"])
def test_torch_composite_matches_numpy_on_the_example(shipped, to):
    _check(read_image(EXAMPLE), shipped, to)


def test_torch_composite_matches_numpy_on_a_shared_face(shipped, shared_data):
    image = read_image(shared_data / "facial_expressions" / "images" / "Aaron_Eckhart_0001.jpg")
    _check(image, shipped, "surprise")


@pytest.mark.parametrize("to", ["neutral", "surprise"])
def test_torch_composite_matches_numpy_on_a_frown(shipped, shared_data, to):
    """A held-out cfee angry face taken to neutral: the furrow's relaxation (a grey-level
    closing, the band and the crease cores) in torch matches OpenCV's; to surprise: the
    squinted lids part (``motion.lid_open``) alike."""
    from test_motion import _heldout_cfee

    _check(read_image(_heldout_cfee(shared_data, "Angry", n=1)[0]), shipped, to)


def test_torch_composite_matches_numpy_where_lips_seal(shipped, shared_data):
    """``neutral`` from a held-out cfee person's grin: the lips seal and their seam is capped
    into the lip line at full resolution (``_sealed``)."""
    image = read_image(shared_data / "cfee" / "images" / "0113.jpg")
    job = shipped["numpy"].face_jobs(image, detect_faces(image)[:1], "neutral", None)[0]
    edits = shipped["numpy"].model.generate(job.crop[None], job.goal[None], job.landmarks[None], job.start[None])
    assert edits[0].seam is not None
    _check(image, shipped, "neutral")


def test_torch_composite_matches_numpy_with_overlapping_faces(shipped, shared_data):
    """Two faces side by side whose regions overlap: each face's region is written in turn."""
    src = shared_data / "facial_expressions" / "images"
    image = np.hstack([read_image(src / "Aaron_Eckhart_0001.jpg"), read_image(src / "AJ_Cook_0001.jpg")])
    faces = detect_faces(image)
    assert len(faces) == 2
    size = shipped["numpy"].model.size
    (ay, ax), (by, bx) = (FaceBlender(image.shape, shipped["numpy"].face_jobs(image, [f], "happy", None)[0]
                                      .transform, size).slices for f in faces)
    assert max(ax.start, bx.start) < min(ax.stop, bx.stop)  # the regions overlap
    _check(image, shipped, "surprise")


@pytest.mark.parametrize("start", ["Neutral", "Surprised"])
def test_torch_composite_matches_numpy_with_smile_teeth(shipped, shared_data, start):
    """``happy`` from a held-out cfee person's closed and open mouth: the teeth's paint
    carries the chroma it adds (four channels), composited alike by both."""
    import csv

    split = ROOT / "benchmarks" / "splits" / "cfee_heldout_people.txt"
    people = {x.split("#")[0].strip() for x in split.read_text().splitlines() if x.split("#")[0].strip()}
    with open(shared_data / "cfee" / "labels.csv", newline="") as fh:
        row = min((r for r in csv.DictReader(fh) if r["identity"] in people and r["emotion"] == start),
                  key=lambda r: int(r["identity"]))
    image = read_image(shared_data / "cfee" / "images" / row["file"])
    job = shipped["numpy"].face_jobs(image, detect_faces(image)[:1], "happy", None)[0]
    edits = shipped["numpy"].model.generate(job.crop[None], job.goal[None], job.landmarks[None], job.own[None])
    assert edits.paint.shape[-1] == 4 and np.abs(edits.paint[..., 2:]).max() > 1
    _check(image, shipped, "happy")


def test_torch_rgb_paint_matches_numpy(random_weights):
    """The RGB-paint generators' composite (``_paint_rgb``), with a random RGB generator."""
    import dataclasses

    import torch

    from gan_anim.model import PRESETS, Generator, load_generator

    motion = load_generator(random_weights).motion
    torch.manual_seed(1)
    cfg = dataclasses.replace(PRESETS["small"], color="rgb")
    gen = Generator(cfg)
    gen.motion.load_state_dict(motion.state_dict())
    _check(read_image(EXAMPLE), _animators(generator=gen.eval()), "happy")


def test_torch_composite_matches_numpy_in_the_grid(random_weights, tmp_path):
    """``gan-anim grid`` through the torch composite: the cells within 1 grey level."""
    from gan_anim.pipeline.grid import au_grid

    grids = {kind: np.asarray(au_grid(a, EXAMPLE, tmp_path / f"{kind}.png", names=("AU12", "AU26"),
                                      levels=(0.0, 1.0), presets=("surprise",)))
             for kind, a in _animators(random_weights).items()}
    diff = np.abs(grids["numpy"].astype(int) - grids["torch"].astype(int))
    assert diff.max() <= 1 and grids["numpy"].shape == grids["torch"].shape


def test_composite_is_chosen_by_config_and_environment(monkeypatch, random_weights):
    import torch

    from gan_anim.render.device import resolve_composite

    assert resolve_composite("auto", torch.device("cpu")) == "numpy"
    assert resolve_composite("auto", torch.device("cuda")) == "torch"
    monkeypatch.setenv("GAN_ANIM_COMPOSITE", "torch")
    assert Animator(random_weights, "cpu").model.composite == "torch"
    assert Animator(config=InferenceConfig(weights=random_weights, device="cpu",
                                           composite="numpy")).model.composite == "numpy"
    with pytest.raises(GanAnimError, match="unknown composite 'gpu'"):
        Animator(config=InferenceConfig(weights=random_weights, composite="gpu"))


def test_torch_composite_matches_numpy_on_a_real_clip(shared_data, random_weights, tmp_path):
    """``animate_video`` of 24 frames of a MEAD clip to PNG frames, both composites."""
    import cv2

    src = shared_data / "mead_clips" / "M030_front_surprised_level3_001.mp4"
    reader = imageio_ffmpeg.read_frames(str(src))
    meta = next(reader)
    frames = [np.frombuffer(f, np.uint8).reshape(meta["size"][1], meta["size"][0], 3)
              for _, f in zip(range(24), reader)]
    reader.close()
    clip = tmp_path / "clip.mp4"
    writer = imageio_ffmpeg.write_frames(str(clip), meta["size"], fps=25, codec="libx264", quality=None,
                                         macro_block_size=1, pix_fmt_out="yuv444p",
                                         output_params=["-qp", "0"], ffmpeg_log_level="error")
    writer.send(None)
    for f in frames:
        writer.send(np.ascontiguousarray(f))
    writer.close()
    outs = {}
    for kind, animator in _animators(random_weights).items():
        res = animate_video(clip, tmp_path / kind, aus="surprise", animator=animator, detect_every=5)
        assert res.frames == 24 and res.frames_with_faces == 24
        outs[kind] = [cv2.imread(str(p)) for p in sorted((tmp_path / kind).glob("*.png"))]
    assert len(outs["numpy"]) == len(outs["torch"]) == 24
    changed = 0
    for a, b in zip(outs["numpy"], outs["torch"]):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
        changed += int((a != frames[0][..., ::-1]).any())
    assert changed > 0
