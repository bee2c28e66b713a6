"""The photo pipeline on real photos, with random weights (mechanics, not quality)."""
from __future__ import annotations

import hashlib
import json

import cv2
import imageio_ffmpeg
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import EXAMPLE
from PIL import Image

from gan_anim import aus
from gan_anim.cli import main
from gan_anim.faces.detect import detect_faces
from gan_anim.media.images import read_image
from gan_anim.pipeline.photo import Animator, default_output, select_faces
from gan_anim.render.blend import FaceBlender


def sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def png_frames(folder):
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("frame_*.png"))]


def outside_mask(image, animator: Animator, faces):
    """True for pixels outside every face's paste region."""
    mask = np.ones(image.shape[:2], bool)
    for job in animator.face_jobs(image, faces, "happy", "neutral"):
        b = FaceBlender(image.shape, job.transform, animator.model.size)
        mask[b.slices] = False
    return mask


@pytest.fixture(scope="module")
def two_faces(shared_data, tmp_path_factory):
    """Two real photos side by side: a two-face 'group shot'."""
    d = shared_data / "facial_expressions" / "images"
    pad = lambda x: np.pad(x, ((40, 40), (40, 40), (0, 0)), mode="edge")  # noqa: E731
    group = np.concatenate([pad(read_image(d / "AJ_Cook_0001.jpg")),
                            pad(read_image(d / "Aaron_Eckhart_0001.jpg"))], axis=1)
    path = tmp_path_factory.mktemp("group") / "group.png"
    Image.fromarray(group).save(path)
    return path


@pytest.fixture(scope="module")
def big_and_small(shared_data, tmp_path_factory):
    """Two real photos side by side, the left one 1.6x larger: a group with a clear largest face."""
    d = shared_data / "facial_expressions" / "images"
    big = cv2.resize(read_image(d / "AJ_Cook_0001.jpg"), None, fx=1.6, fy=1.6, interpolation=cv2.INTER_CUBIC)
    small = read_image(d / "Aaron_Eckhart_0001.jpg")
    top = (big.shape[0] - small.shape[0]) // 2
    small = np.pad(small, ((top, big.shape[0] - small.shape[0] - top), (200, 40), (0, 0)), mode="edge")
    big = np.pad(big, ((0, 0), (40, 200), (0, 0)), mode="edge")
    path = tmp_path_factory.mktemp("group") / "big-small.png"
    Image.fromarray(np.concatenate([big, small], axis=1)).save(path)
    return path


def test_face_selection_largest_is_1_and_2_is_the_other(random_weights, big_and_small, tmp_path):
    image = read_image(big_and_small)
    faces = detect_faces(image)
    assert len(faces) == 2
    largest = max(faces, key=lambda f: f.area)
    assert largest.box[0] < image.shape[1] // 2 < min(f.box[0] for f in faces if f is not largest)
    assert select_faces(faces, "largest") == select_faces(faces, "1") == [largest]
    assert select_faces(faces, "2") == [f for f in faces if f is not largest]
    # animate edits the selected face, and nothing outside its blend region (so not the other)
    animator = Animator(random_weights, device="cpu")
    for choice, chosen in (("largest", largest), ("1", largest), ("2", faces[1 - faces.index(largest)])):
        res = animator.animate(big_and_small, tmp_path / choice, to="happy", start="neutral",
                               frames=2, face=choice)
        last = png_frames(tmp_path / choice)[-1].astype(int)
        assert res.faces == 1
        inside = ~outside_mask(image, animator, [chosen])
        l, t, r, b = chosen.box
        assert np.abs(last[t:b, l:r] - image[t:b, l:r]).max() > 20
        assert np.array_equal(last[~inside], image[~inside])
        (other,) = [f for f in faces if f is not chosen]
        l, t, r, b = other.box
        assert (~inside[t:b, l:r]).mean() > 0.5  # most of the other face is left as it was


def test_png_frames_keep_size_and_outside_pixels(random_weights, tmp_path):
    before = sha(EXAMPLE)
    animator = Animator(random_weights, device="cpu", batch_size=8)
    out = tmp_path / "frames"
    res = animator.animate(EXAMPLE, out, to="happy", start="neutral", frames=5)
    frames = png_frames(out)
    image = read_image(EXAMPLE)
    assert len(frames) == res.frames == 5
    assert res.faces == 1
    outside = outside_mask(image, animator, detect_faces(image))
    assert outside.mean() > 0.5
    for f in frames:
        assert f.shape == image.shape
        assert np.array_equal(f[outside], image[outside])
    # the random generator really changes the face
    assert np.abs(frames[-1].astype(int) - image).max() > 20
    assert sha(EXAMPLE) == before


def test_attention_one_gives_back_original(random_weights, tmp_path):
    """A = 1 everywhere and no landmark motion: every frame is the photo, bit for bit."""
    from gan_anim.motion import LandmarkMotion

    gen = Animator(random_weights, device="cpu").model.generator

    class KeepAll(torch.nn.Module):
        cfg, luma, motion = gen.cfg, gen.luma, LandmarkMotion(n_aus=gen.cfg.n_aus)

        def forward(self, x, y):
            c, a = gen(x, y)
            return c, torch.ones_like(a)

    keep = Animator(generator=KeepAll(), device="cpu")
    keep.animate(EXAMPLE, tmp_path / "same", to="surprise", start="neutral", frames=3)
    image = read_image(EXAMPLE)
    for f in png_frames(tmp_path / "same"):
        assert np.array_equal(f, image)


def test_random_weights_warp_the_face(random_weights, tmp_path):
    """The test weights carry a real landmark motion: `--to surprise` drops the jaw past the
    bottom of the face crop (where no paint reaches: only the warp moves those pixels) and
    lifts the unpainted brows, while every pixel outside the blend region stays as it was."""
    code, err = run_cli(["animate", str(EXAMPLE), "--to", "surprise", "--frames", "2", "-q",
                         "--weights", str(random_weights), "-o", str(tmp_path / "s")])
    assert code == 0, err
    image = read_image(EXAMPLE)
    diff = np.abs(png_frames(tmp_path / "s")[-1].astype(int) - image).max(-1)
    animator = Animator(random_weights, device="cpu")
    (face,) = detect_faces(image)
    (job,) = animator.face_jobs(image, [face], "surprise", None)
    region = np.zeros(image.shape[:2], bool)
    region[FaceBlender(image.shape, job.transform, animator.model.size).slices] = True
    assert not diff[~region].any()
    left, _, right, bottom = FaceBlender(image.shape, job.transform, animator.model.size, margin=0).roi
    lm = face.landmarks
    x0, x1 = int(lm[48:60, 0].min()), int(lm[48:60, 0].max())   # the mouth's width
    below = diff[bottom:bottom + (right - left) // 15, x0:x1]    # just below the crop
    assert below.size and (below > 10).mean() > 0.5, (below > 10).mean()
    brows = diff[int(lm[17:27, 1].min()) - 5:int(lm[17:27, 1].max()), int(lm[17, 0]):int(lm[26, 0])]
    assert (brows > 10).mean() > 0.3, (brows > 10).mean()


def test_gif_and_mp4_frame_counts(random_weights, tmp_path):
    animator = Animator(random_weights, device="cpu")
    res = animator.animate(EXAMPLE, tmp_path / "a.gif", to="surprise", start="neutral", frames=6, loop=True)
    with Image.open(tmp_path / "a.gif") as im:
        assert im.n_frames == res.frames == 10  # 6 there, 4 back
        assert im.size == (512, 512)
        assert im.info.get("loop") == 0
    # odd-sized photo -> MP4 padded by one pixel, never resized
    odd = tmp_path / "odd.png"
    Image.fromarray(read_image(EXAMPLE)[:-1, :-3]).save(odd)
    animator.animate(odd, tmp_path / "a.mp4", to="happy", start="neutral", frames=7)
    reader = imageio_ffmpeg.read_frames(str(tmp_path / "a.mp4"))
    meta = next(reader)
    assert tuple(meta["size"]) == (510, 512)
    n = sum(1 for _ in reader)
    assert n == 7


def test_two_faces_both_animated(random_weights, two_faces, tmp_path):
    animator = Animator(random_weights, device="cpu", batch_size=4)
    res = animator.animate(two_faces, tmp_path / "g", to="happy", start="neutral", frames=3)
    assert res.faces == 2
    image = read_image(two_faces)
    last = png_frames(tmp_path / "g")[-1]
    half = image.shape[1] // 2
    assert np.abs(last[:, :half].astype(int) - image[:, :half]).max() > 20
    assert np.abs(last[:, half:].astype(int) - image[:, half:]).max() > 20
    res = animator.animate(two_faces, tmp_path / "one", to="happy", start="neutral", frames=2, face="largest")
    assert res.faces == 1


def test_interpolation_and_expressions(tmp_path):
    a = aus.interpolation_weights(5)
    assert a[0] == 0 and a[-1] == 1 and np.all(np.diff(a) > 0)
    s = aus.interpolation_weights(5, "smooth")
    assert s[0] == 0 and s[-1] == 1 and s[1] < a[1]
    assert len(aus.interpolation_weights(5, loop=True)) == 8
    vals, complete = aus.parse_expression("AU12=3,au6=2.5,AU25_r=1")
    assert vals == {"AU12": 3.0, "AU06": 2.5, "AU25": 1.0} and not complete
    vals, complete = aus.parse_expression("happy")
    assert complete and vals["AU12"] == aus.PRESETS["happy"]["AU12"] and vals["AU01"] == 0
    vals, _ = aus.parse_expression(str(EXAMPLE.parent / "surprise.json"))
    assert vals["AU26"] == 3.5
    start = aus.au_dict_to_vector({"AU01": 1.0, "AU12": 1.0})
    goal = aus.au_dict_to_vector({"AU12": 4.0}, "--to", base=start)  # a partial --to keeps the rest
    assert goal[aus.AU_INDEX["AU01"]] == 1.0 and goal[aus.AU_INDEX["AU12"]] == 4.0
    assert default_output("dir/photo.jpg", "happy").name == "photo-happy.gif"


BAD_TARGETS = {
    "unknown AU": ("AU99=2", "unknown AU name"),
    "out of range": ("AU12=7", "outside 0..5"),
    "negative": ("AU12=-1", "outside 0..5"),
    "not a number": ("AU12=lots", "must be a number"),
}


def run_cli(args):
    result = CliRunner().invoke(main, args)
    return result.exit_code, result.stderr


def assert_clean_failure(code, err, tmp_path, needle):
    assert code != 0
    assert needle in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not any(p.name.startswith(".") or p.suffix in (".gif", ".mp4") for p in tmp_path.iterdir())


@pytest.mark.parametrize("case", sorted(BAD_TARGETS))
def test_bad_targets(case, random_weights, tmp_path):
    target, needle = BAD_TARGETS[case]
    code, err = run_cli(["animate", str(EXAMPLE), "--to", target, "--weights", str(random_weights),
                         "-o", str(tmp_path / "x.gif"), "-q"])
    assert_clean_failure(code, err, tmp_path, needle)


def test_bad_json(random_weights, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"AU12": 3,')
    code, err = run_cli(["animate", str(EXAMPLE), "--to", str(bad), "--weights", str(random_weights),
                         "-o", str(tmp_path / "x.gif"), "-q"])
    assert_clean_failure(code, err, tmp_path, "malformed JSON")
    bad.write_text(json.dumps({"AU12": 9}))
    code, err = run_cli(["animate", str(EXAMPLE), "--to", str(bad), "--weights", str(random_weights),
                         "-o", str(tmp_path / "x.gif"), "-q"])
    assert_clean_failure(code, err, tmp_path, "outside 0..5")


def test_bad_photos(random_weights, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "empty.jpg").write_bytes(b"")
    (inputs / "text.jpg").write_text("this is not a picture\n")
    (inputs / "truncated.jpg").write_bytes(EXAMPLE.read_bytes()[:5000])
    Image.fromarray(read_image(EXAMPLE)[:150, :120]).save(inputs / "noface.png")  # the flag corner
    cases = {"missing.jpg": "no such file", "empty.jpg": "empty file", "text.jpg": "not an image",
             "truncated.jpg": "truncated or corrupt", "noface.png": "no face found"}
    out = tmp_path / "out"
    out.mkdir()
    for name, needle in cases.items():
        src = inputs / name
        before = sha(src) if src.exists() else None
        code, err = run_cli(["animate", str(src), "--from", "neutral", "--weights", str(random_weights),
                             "-o", str(out / "x.gif"), "-q"])
        assert_clean_failure(code, err, out, needle)
        assert (sha(src) if src.exists() else None) == before


def test_bad_options_and_outputs(random_weights, tmp_path):
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(EXAMPLE.read_bytes())
    before = sha(photo)
    w = ["--weights", str(random_weights), "-q", "--from", "neutral"]
    code, err = run_cli(["animate", str(photo), "--frames", "0", "-o", str(tmp_path / "x.gif"), *w])
    assert_clean_failure(code, err, tmp_path, "--frames must be at least 1")
    code, err = run_cli(["animate", str(photo), "-o", str(photo), *w])
    assert code != 0 and "is the input file" in err
    code, err = run_cli(["animate", str(photo), "-o", str(tmp_path / "nodir" / "x.gif"), *w])
    assert code != 0 and "does not exist" in err
    code, err = run_cli(["animate", str(photo), "-o", "/proc/x.gif", *w])  # unwritable even for root
    assert code != 0 and err.count("\n") == 1 and "Traceback" not in err
    code, err = run_cli(["animate", str(photo), "-o", str(tmp_path / "x.txt"), *w])
    assert code != 0 and "unsupported output type" in err
    code, err = run_cli(["animate", str(photo), "--weights", str(tmp_path / "none.pt"), "-o", str(tmp_path / "y.gif")])
    assert code != 0 and "not found" in err
    (tmp_path / "junk.pt").write_bytes(b"not weights")
    code, err = run_cli(["animate", str(photo), "--weights", str(tmp_path / "junk.pt"), "-o", str(tmp_path / "y.gif")])
    assert code != 0 and "not a gan-anim weights file" in err
    assert sha(photo) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.pt", "photo.jpg"]


def test_no_weights_message(tmp_path, monkeypatch):
    import importlib

    anim = importlib.import_module("gan_anim.render.weights")

    monkeypatch.setattr(anim, "WEIGHTS_DIR", tmp_path)
    monkeypatch.delenv("GAN_ANIM_WEIGHTS", raising=False)
    code, err = run_cli(["animate", str(EXAMPLE), "-o", str(tmp_path / "x.gif")])
    assert code != 0 and "no trained weights" in err and "gan-anim train" in err


def test_presets_command():
    result = CliRunner().invoke(main, ["presets"])
    assert result.exit_code == 0
    for name in ("neutral", "happy", "sad", "surprise", "fear", "anger", "disgust", "contempt"):
        assert name in result.output


def test_overlapped_render_equals_serial_and_gif_palette(random_weights, tmp_path):
    """Generate, blend and encode in their own threads give the frames of the serial run,
    and those frames are edits: the face changed, nothing outside its blend region."""
    animator = Animator(random_weights, device="cpu", batch_size=4)
    for overlap in (True, False):
        animator.animate(EXAMPLE, tmp_path / f"f{overlap}", to="surprise", start="neutral",
                         frames=7, overlap=overlap)
        animator.animate(EXAMPLE, tmp_path / f"g{overlap}.gif", to="surprise", start="neutral",
                         frames=7, overlap=overlap)
    a, b = png_frames(tmp_path / "fTrue"), png_frames(tmp_path / "fFalse")
    assert len(a) == len(b) == 7 and all(np.array_equal(x, y) for x, y in zip(a, b))
    assert np.abs(a[-1].astype(int) - a[0]).max() > 20
    image = read_image(EXAMPLE)
    outside = outside_mask(image, animator, detect_faces(image))
    for f in a:
        assert np.abs(f[~outside].astype(int) - image[~outside]).max() > 20
        assert np.array_equal(f[outside], image[outside])
    assert sha(tmp_path / "gTrue.gif") == sha(tmp_path / "gFalse.gif")


def test_gif_palette_of_a_large_frame_matches_the_full_one(tmp_path):
    from gan_anim.media.writer import gif_palette

    big = Image.fromarray(np.asarray(Image.open(EXAMPLE).convert("RGB").resize((2048, 2048))))
    full = big.quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small = gif_palette(big)
    truth = np.asarray(big).astype(float)
    err = [np.abs(np.asarray(big.quantize(palette=p, dither=Image.Dither.NONE).convert("RGB")) - truth).mean()
           for p in (full, small)]
    assert err[1] < 1.1 * err[0], err


def test_precision_choice(monkeypatch):
    """auto: bf16 only where the CPU computes it natively (else it would be emulated, slower)."""
    from gan_anim.errors import GanAnimError
    from gan_anim.render.device import resolve_precision

    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.setattr(torch.cpu, name, lambda: False, raising=False)
    assert resolve_precision("auto", cpu) == "fp32"
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True, raising=False)
    assert resolve_precision("auto", cpu) == "bf16"
    # the CPU has it but oneDNN does not use it (e.g. ONEDNN_MAX_CPU_ISA=AVX2): emulated, fp32
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False, raising=False)
    assert resolve_precision("auto", cpu) == "fp32"
    with pytest.raises(GanAnimError, match="unknown precision"):
        Animator(precision="fp16")
    code, err = run_cli(["animate", str(EXAMPLE), "--precision", "fp16"])
    assert code != 0 and len(err.strip().splitlines()) == 1


def test_environment_overrides_settings_left_at_their_defaults(monkeypatch):
    from gan_anim.config import InferenceConfig

    monkeypatch.setenv("GAN_ANIM_PRECISION", "fp32")
    monkeypatch.setenv("GAN_ANIM_PAINTED_AUS", "au25, 12")
    cfg = InferenceConfig().with_env()
    assert cfg.precision == "fp32" and cfg.painted_aus == ("AU25", "AU12")
    cfg = InferenceConfig(precision="bf16", painted_aus=("AU26",)).with_env()
    assert cfg.precision == "bf16" and cfg.painted_aus == ("AU26",)


def test_no_painted_aus_warps_only(monkeypatch, tmp_path):
    """GAN_ANIM_PAINTED_AUS= (empty) paints nothing: the face is warped, no paint, no error."""
    monkeypatch.setenv("GAN_ANIM_PAINTED_AUS", "")
    a = Animator(device="cpu", precision="fp32")
    assert a.model.config.painted_aus == () and not bool(a.model.painted.any())
    a.animate(EXAMPLE, tmp_path / "warp", to="surprise", start="neutral", frames=2)
    first, last = png_frames(tmp_path / "warp")
    moved = np.abs(last.astype(int) - first.astype(int)).max(-1) > 10
    assert moved.mean() > 0.005                           # the jaw dropped and the brows rose


def test_bf16_renders_like_fp32(tmp_path):
    """The shipped weights in bf16 (the default on CPUs with native bf16) and in fp32: the
    same frames within a few grey levels, the same pixels outside the face."""
    frames = {}
    for precision in ("fp32", "bf16"):
        a = Animator(device="cpu", precision=precision)
        assert a.model.precision == precision
        # 2 frames: on a CPU without native bf16 (CI) it is emulated, 3.5 s a face
        a.animate(EXAMPLE, tmp_path / precision, to="surprise", start="neutral", frames=2)
        frames[precision] = np.stack(png_frames(tmp_path / precision)).astype(int)
    diff = np.abs(frames["fp32"] - frames["bf16"])
    moved = np.abs(frames["fp32"][-1] - frames["fp32"][0]).max(-1) > 10
    assert moved.mean() > 0.01                            # the mouth opened
    assert diff.max() <= 12 and diff.mean() < 0.05
    assert np.percentile(diff.max(-1)[:, moved], 99) <= 2


def test_background_loading(random_weights, tmp_path):
    """Loading in the background (decode and detection meanwhile) renders the same frames;
    a missing weights file is reported at once, a corrupt one when the model is needed,
    without an output file."""
    from gan_anim.errors import GanAnimError

    for background in (False, True):
        a = Animator(random_weights, device="cpu", background=background)
        a.animate(EXAMPLE, tmp_path / f"b{background}", to="happy", start="neutral", frames=3)
    a, b = png_frames(tmp_path / "bFalse"), png_frames(tmp_path / "bTrue")
    assert len(a) == 3 and all(np.array_equal(x, y) for x, y in zip(a, b))
    with pytest.raises(GanAnimError, match="not found"):
        Animator(tmp_path / "missing.pt", background=True)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    animator = Animator(junk, device="cpu", background=True)  # no error yet
    with pytest.raises(GanAnimError, match="not a gan-anim weights file"):
        animator.animate(EXAMPLE, tmp_path / "x.gif", to="happy")
    assert not (tmp_path / "x.gif").exists()
