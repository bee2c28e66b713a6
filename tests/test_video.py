"""The video pipeline on clips made from real photos (camera motion, sensor noise, audio),
with a small random generator (mechanics, not quality)."""
from __future__ import annotations

import hashlib
import subprocess

import cv2
import imageio_ffmpeg
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from gan_anim import aus as au
from gan_anim.cli import main
from gan_anim.errors import GanAnimError
from gan_anim.faces.tracking import FaceTracker, transform_params
from gan_anim.media.images import read_image
from gan_anim.media.video_reader import VideoReader
from gan_anim.media.writer import FrameWriter
from gan_anim.pipeline.au_timeline import ConstantTimeline, CsvTimeline, face_target
from gan_anim.pipeline.photo import Animator
from gan_anim.pipeline.video import animate_video
from gan_anim.render.blend import FaceBlender

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
FPS = 25
FACE_FRAMES, BLANK_FRAMES = 22, 8


def sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def photo(shared_data, name="Aaron_Eckhart_0001.jpg"):
    return read_image(shared_data / "facial_expressions" / "images" / name)


def camera(canvas, n, size, pan=40.0, zoom=0.15, noise=4.0, seed=0):
    """``n`` frames of a camera panning and zooming over ``canvas``, with sensor noise."""
    rng = np.random.default_rng(seed)
    w, h = size
    cy, cx = canvas.shape[0] / 2, canvas.shape[1] / 2
    for i in range(n):
        a = i / max(n - 1, 1)
        s = 1.0 + zoom * np.sin(np.pi * a)
        dx = pan * np.sin(2 * np.pi * a)
        m = np.array([[s, 0, w / 2 - s * (cx + dx)], [0, s, h / 2 - s * cy]])
        f = cv2.warpAffine(canvas, m, size, flags=cv2.INTER_LINEAR)
        yield np.clip(f + rng.normal(0, noise, f.shape), 0, 255).astype(np.uint8)


def write_clip(path, frames, size, audio=True, lossless=True):
    """Encode frames (lossless H.264 4:4:4 by default), then add a 440 Hz sine as AAC."""
    frames = list(frames)
    video = path.with_name(path.stem + "-noaudio.mp4") if audio else path
    w = imageio_ffmpeg.write_frames(
        str(video), size, fps=FPS, codec="libx264", macro_block_size=1, quality=None,
        pix_fmt_out="yuv444p" if lossless else "yuv420p",
        output_params=["-qp", "0"] if lossless else ["-crf", "23"], ffmpeg_log_level="error")
    w.send(None)
    for f in frames:
        w.send(np.ascontiguousarray(f))
    w.close()
    if audio:
        subprocess.run([FFMPEG, "-y", "-loglevel", "error", "-i", str(video), "-f", "lavfi", "-i",
                        f"sine=frequency=440:duration={len(frames) / FPS}", "-c:v", "copy",
                        "-c:a", "aac", str(path)], check=True)
    return path


def decode(path):
    return [f.copy() for f in VideoReader(path)]


def has_audio(path) -> bool:
    gen = imageio_ffmpeg.read_frames(str(path))
    meta = next(gen)
    gen.close()
    return "audio_codec" in meta


@pytest.fixture(scope="module")
def clip(shared_data, tmp_path_factory):
    """320x240, 25 fps: 22 frames of a real face under a moving camera, then a cut to 8
    frames without a face; lossless video plus an AAC sine track."""
    face = cv2.resize(photo(shared_data), None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    canvas = cv2.copyMakeBorder(face, 150, 150, 200, 200, cv2.BORDER_REPLICATE)
    size = (320, 240)
    blank = np.tile(np.linspace(40, 200, size[0], dtype=np.float32)[None, :, None], (size[1], 1, 3))
    frames = list(camera(canvas, FACE_FRAMES, size, noise=2.0))
    frames += list(camera(blank.astype(np.uint8), BLANK_FRAMES, size, pan=0, zoom=0, seed=1))
    return write_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", frames, size)


@pytest.fixture(scope="module")
def animator(random_weights):
    return Animator(random_weights, device="cpu", batch_size=16)


def full_csv(path, rows, header=None):
    header = header or ["frame", "timestamp", "success"] + [f"{n}_r" for n in au.AU_NAMES]
    lines = [", ".join(header)] + [", ".join(str(c) for c in r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


# ------------------------------------------------------------------ the pipeline

def test_output_keeps_frames_fps_size_audio_and_outside_pixels(clip, animator, tmp_path):
    before = sha(clip)
    rows = [[k + 1, k / FPS, 1] + [round(k * 0.4, 2)] * 17 for k in range(10)]  # 0..3.6, held
    csv_path = full_csv(tmp_path / "track.csv", rows)
    out = tmp_path / "out.mp4"
    res = animate_video(clip, out, aus=str(csv_path), animator=animator, detect_every=5, crf=12)
    assert sha(clip) == before
    src, dst = decode(clip), decode(out)
    assert len(src) == len(dst) == res.frames == FACE_FRAMES + BLANK_FRAMES
    assert res.frames_with_faces == FACE_FRAMES and res.faces == 1
    assert dst[0].shape == src[0].shape == (240, 320, 3)
    assert VideoReader(out).info.fps == FPS == res.fps
    assert has_audio(out)
    assert set(res.timings) >= {"decode", "track", "generate", "blend", "encode"}

    # Where each face was pasted (the same tracking, re-run), the pixels changed;
    # everywhere else they differ from the input only as much as re-encoding the
    # untouched input with the same settings does (codec noise).
    ref_path = tmp_path / "reencoded.mp4"
    with FrameWriter(ref_path, fps=FPS, crf=12) as writer:
        for f in src:
            writer.write(f)
    tracker = FaceTracker(animator.model.size, FPS, detect_every=5)
    inside_diff, outside_diff, codec_diff, codec_inside, covered = [], [], [], [], []
    for a, b, r in zip(src, dst, decode(ref_path)):
        mask = np.zeros(a.shape[:2], bool)   # what the blend may touch
        crops = np.zeros(a.shape[:2], bool)  # the face crops themselves
        for face in tracker.update(a):
            mask[FaceBlender(a.shape, face.transform, animator.model.size).slices] = True
            crops[FaceBlender(a.shape, face.transform, animator.model.size, margin=0).slices] = True
        d = np.abs(a.astype(np.int16) - b).mean(2)
        outside_diff.append(d[~mask].mean())
        codec_diff.append(np.abs(a.astype(np.int16) - r).mean(2)[~mask].mean())
        if mask.any():
            inside_diff.append(d[crops].mean())
            codec_inside.append(np.abs(a.astype(np.int16) - r).mean(2)[crops].mean())
            covered.append(mask.mean())
    # the blend region reaches a quarter crop beyond the face crop (the landmark motion)
    assert len(inside_diff) == FACE_FRAMES and max(covered) < 0.99
    assert all(o < c + 0.3 for o, c in zip(outside_diff, codec_diff)), (outside_diff, codec_diff)
    # inside the crops, the edit stands well above what re-encoding alone changes there
    assert np.mean(inside_diff) > 3 * np.mean(codec_inside), (inside_diff, codec_inside)


def test_smoothing_lowers_crop_jitter_on_a_static_face_and_follows_motion(shared_data):
    canvas = cv2.copyMakeBorder(photo(shared_data), 100, 100, 100, 100, cv2.BORDER_REPLICATE)

    def params(frames, smooth):
        tracker = FaceTracker(64, FPS, smooth=smooth)
        out = []
        for f in frames:
            (face,) = tracker.update(f)
            out.append(transform_params(face.transform, 64, face.track.unit))
        return np.array(out)  # per frame: centre x, y (face sizes), log scale, angle

    still = list(camera(canvas, 24, (320, 240), pan=0, zoom=0, noise=6.0, seed=2))
    raw, smooth = (np.abs(np.diff(params(still, s), axis=0)).mean(0) for s in (False, True))
    assert (raw > 3e-4).all(), raw  # sensor noise moves the raw alignment measurably
    assert (smooth < 0.3 * raw).all(), (smooth, raw)  # every parameter (measured: 0.10-0.15x)
    # under a panning, zooming camera the smoothed alignment stays close to the raw one
    moving = list(camera(canvas, 24, (320, 240), pan=40, zoom=0.1, noise=2.0, seed=3))
    raw, smooth = params(moving, False), params(moving, True)
    lag, motion = np.abs(smooth - raw).max(0), np.ptp(raw, 0)
    assert lag[0] < 0.2 * motion[0] and lag[2] < 0.3 * motion[2], (lag, motion)


def test_two_faces_keep_their_identities(shared_data):
    pad = lambda x: cv2.copyMakeBorder(x, 80, 80, 30, 30, cv2.BORDER_REPLICATE)  # noqa: E731
    canvas = np.concatenate([pad(photo(shared_data)), pad(photo(shared_data, "AJ_Cook_0001.jpg"))], 1)
    tracker = FaceTracker(64, FPS, detect_every=4)
    first, ids = None, []
    for f in camera(canvas, 14, (560, 300), pan=25, zoom=0.1, seed=3):
        faces = tracker.update(f)
        ids.append([face.id for face in faces])
        centres = {face.id: face.landmarks.mean(0)[0] for face in faces}
        first = first or {i: x < f.shape[1] / 2 for i, x in centres.items()}  # left or right
        assert all((x < f.shape[1] / 2) == first[i] for i, x in centres.items())
    assert all(i == [0, 1] for i in ids), ids
    assert tracker.next_id == 2


@pytest.fixture(scope="module")
def driver(shared_data, tmp_path_factory):
    """A driving clip of one real person: 8 frames neutral, 10 smiling, 8 neutral again
    (two photos, each under a slowly moving camera with sensor noise)."""
    size = (320, 240)

    def shot(name, n, seed):
        canvas = cv2.copyMakeBorder(photo(shared_data, name), 60, 60, 80, 80, cv2.BORDER_REPLICATE)
        return list(camera(canvas, n, size, pan=6, zoom=0.03, noise=2.0, seed=seed))

    frames = shot(DRIVER_NEUTRAL, 8, 5) + shot(DRIVER_HAPPY, 10, 6) + shot(DRIVER_NEUTRAL, 8, 7)
    return write_clip(tmp_path_factory.mktemp("driver") / "driver.mp4", frames, size, audio=False)


DRIVER_NEUTRAL, DRIVER_HAPPY = "Allyson_Felix_0001.jpg", "Allyson_Felix_0003.jpg"


@pytest.mark.slow
def test_driving_video_and_its_csv_give_the_same_targets(clip, driver, animator, shared_data, tmp_path):
    """`video --aus driver.mp4` == `aus driver.mp4 -o d.csv` + `video --aus d.csv`, and the
    targets follow the driver's expression (absolute: the driver's AUs; relative: its change)."""
    from gan_anim.estimation.photo import estimate_face_aus
    from gan_anim.faces.detect import detect_faces

    csv_path = tmp_path / "driver.csv"
    result = CliRunner().invoke(main, ["aus", str(driver), "-o", str(csv_path)])
    assert result.exit_code == 0, result.stderr
    for relative in (False, True):
        runs = {}
        for name, spec in (("video", driver), ("csv", csv_path)):
            res = animate_video(clip, tmp_path / f"{name}.mp4", aus=str(spec), animator=animator,
                                relative=relative, keep_targets=True)
            assert res.frames == len(decode(tmp_path / f"{name}.mp4")) == FACE_FRAMES + BLANK_FRAMES
            runs[name] = res.targets
        assert [sorted(t) for t in runs["video"]] == [sorted(t) for t in runs["csv"]]
        for a, b in zip(runs["video"], runs["csv"]):
            for face_id in a:  # the CSV holds 2 decimals (relative: the row and the first row)
                np.testing.assert_allclose(a[face_id], b[face_id], atol=0.011 if relative else 0.006)
        au12 = np.array([t[0][au.AU_INDEX["AU12"]] for t in runs["video"][:FACE_FRAMES]])
        if not relative:
            # each shot's settled frames carry that photo's own AU12 (as `gan-anim aus` reads it)
            own = {n: estimate_face_aus(photo(shared_data, n), detect_faces(photo(shared_data, n))[0].landmarks)
                   [au.AU_INDEX["AU12"]] for n in (DRIVER_NEUTRAL, DRIVER_HAPPY)}
            assert own[DRIVER_HAPPY] - own[DRIVER_NEUTRAL] > 1.5, own   # 1.7 / 3.4 (parted lips read)
            np.testing.assert_allclose(au12[4:8], own[DRIVER_NEUTRAL], atol=0.5)
            np.testing.assert_allclose(au12[14:18], own[DRIVER_HAPPY], atol=0.5)
            np.testing.assert_allclose(au12[20:22], own[DRIVER_NEUTRAL], atol=1.0)
            absolute = au12
        else:  # the clip's own AU12 plus the driver's change since its first frame
            assert au12[14:18].mean() - au12[4:8].mean() > 0.7 * (absolute[14:18].mean() - absolute[4:8].mean())


def test_reader_keeps_vfr_frames_and_applies_rotation(clip, tmp_path):
    vfr, rot = tmp_path / "vfr.mp4", tmp_path / "rot.mp4"
    subprocess.run([FFMPEG, "-y", "-loglevel", "error", "-i", str(clip), "-vf",
                    r"select=lt(n\,10)+not(mod(n\,3))", "-fps_mode", "vfr", "-an", str(vfr)],
                   check=True)
    subprocess.run([FFMPEG, "-y", "-loglevel", "error", "-display_rotation", "90", "-i", str(clip),
                    "-c", "copy", str(rot)], check=True)
    n_vfr = imageio_ffmpeg.count_frames_and_secs(str(vfr))[0]
    assert n_vfr < FACE_FRAMES + BLANK_FRAMES
    assert len(decode(vfr)) == n_vfr
    reader = VideoReader(rot)
    assert reader.info.size == (240, 320)
    assert next(reader).shape == (320, 240, 3)
    reader.close()


# ------------------------------------------------------------------- AU tracks

def test_csv_track_matching_hold_loop_and_failed_rows(tmp_path):
    rows = [[k + 1, k / FPS, int(k != 2)] + [float(k)] * 17 for k in range(4)]
    path = full_csv(tmp_path / "t.csv", rows)
    hold, loop = CsvTimeline(path, FPS, "hold"), CsvTimeline(path, FPS, "loop")
    assert [hold.at(i, i / FPS)[0] for i in range(7)] == [0, 1, 1, 3, 3, 3, 3]  # row 3 failed
    assert [loop.at(i, i / FPS)[0] for i in range(7)] == [0, 1, 1, 3, 0, 1, 1]
    # timestamps only, at 10 rows/s: clip frames at 25 fps pick the row in force
    header = ["timestamp", "AU12_r"]
    path = full_csv(tmp_path / "ts.csv", [[k / 10, k / 2] for k in range(5)], header)
    t = CsvTimeline(path, FPS, "hold")
    assert t.unit == "time" and t.partial
    assert [t.at(i, i / FPS)[au.AU_INDEX["AU12"]] for i in (0, 2, 3, 5, 12, 99)] == [0, 0.5, 0.5, 1, 2, 2]
    assert np.isnan(t.at(0, 0)[0])  # absent AU columns stay NaN: faces keep their own


def test_csv_track_that_misses_the_clip_is_an_error_and_a_late_one_a_warning(tmp_path):
    rows = [[k + 1, k / FPS, 1] + [1.0] * 17 for k in range(4)]
    assert CsvTimeline(full_csv(tmp_path / "a.csv", rows), FPS, "hold").check_clip(30, FPS) is None
    late = [[k + 11, (k + 10) / FPS, 1] + [1.0] * 17 for k in range(4)]
    note = CsvTimeline(full_csv(tmp_path / "b.csv", late), FPS, "hold").check_clip(30, FPS)
    assert "clip frame 11" in note and "10 frames before it" in note
    with pytest.raises(GanAnimError, match="does not overlap"):
        CsvTimeline(full_csv(tmp_path / "b.csv", late), FPS, "hold").check_clip(8, FPS)
    seconds = full_csv(tmp_path / "c.csv", [[60.0 + k, 1.0] for k in range(3)], ["timestamp", "AU12_r"])
    with pytest.raises(GanAnimError, match="does not overlap"):  # 60 s into a 30-frame clip
        CsvTimeline(seconds, FPS, "hold").check_clip(30, FPS)


def test_au12_track_widens_the_mouth_of_a_real_talking_face(shared_data, tmp_path):
    """An OpenFace-format track ramping AU12 0 -> 4 over 8 frames, then holding it (other
    AUs 0), over a neutral MEAD talking face: the re-detected mouth of the last frames is
    8 % or more wider than the input's (the photo path's ``happy`` gives about +17 %)."""
    from gan_anim.faces.detect import detect_faces

    clip, n = tmp_path / "talk.mp4", 16
    subprocess.run([FFMPEG, "-v", "error", "-i", str(shared_data / "mead_clips" / "M030_front_neutral_level1_001.mp4"),
                    "-frames:v", str(n), "-c:v", "libx264", "-crf", "12", str(clip)], check=True)
    rows = [[k + 1, k / FPS, 1] + [4.0 * min(1, k / 7) if a == "AU12" else 0.0 for a in au.AU_NAMES]
            for k in range(n)]
    out = tmp_path / "smile.mp4"
    animate_video(clip, out, aus=str(full_csv(tmp_path / "smile.csv", rows)), device="cpu")

    def width(frame):
        lm = detect_faces(frame)[0].landmarks
        return np.linalg.norm(lm[54] - lm[48])
    before, after = decode(clip), decode(out)
    assert len(after) == n
    ratios = [width(b) / width(a) for a, b in zip(before[-4:], after[-4:])]
    assert ratios[-1] > 1.08 and np.median(ratios) > 1.08, ratios
    assert abs(width(after[0]) / width(before[0]) - 1) < 0.03  # AU12 0: (almost) as it was


def test_face_target_strength_relative_and_missing_aus():
    own = np.full(17, 1.0, np.float32)
    row = np.full(17, 3.0, np.float32)
    row[0] = np.nan
    first = np.full(17, 2.0, np.float32)
    t = face_target(own, row, first, strength=0.5)
    assert t[0] == 1.0 and t[1] == 2.0                     # own + 0.5 * (3 - 1)
    t = face_target(own, row, first, strength=1.0, relative=True)
    assert t[0] == 1.0 and t[1] == 2.0                     # own + (3 - 2)
    assert face_target(own, row * 2, first, strength=3.0).max() == au.AU_SCALE
    assert ConstantTimeline("AU12=3").partial and not ConstantTimeline("happy").partial


# ------------------------------------------------------------------- bad input

@pytest.fixture(scope="module")
def noface_clip(tmp_path_factory):
    size = (160, 120)
    ramp = np.tile(np.linspace(30, 220, size[0], dtype=np.float32)[None, :, None], (size[1], 1, 3))
    frames = camera(ramp.astype(np.uint8), 8, size, pan=10, zoom=0, seed=4)
    return write_clip(tmp_path_factory.mktemp("noface") / "noface.mp4", frames, size,
                      audio=False, lossless=False)


def bad_csvs(folder):
    cols = [f"{n}_r" for n in au.AU_NAMES]
    ok = ["1"] + ["1.0"] * 17
    return {
        "no AU columns": full_csv(folder / "missing.csv", [["1", "0.0"]], ["frame", "timestamp"]),
        "unknown AU column": full_csv(folder / "unknown.csv", [["1", "1.0"]], ["frame", "AU03_r"]),
        "is nan": full_csv(folder / "nan.csv", [["1"] + ["nan"] + ["1.0"] * 16], ["frame"] + cols),
        "outside 0..5": full_csv(folder / "neg.csv", [ok, ["2", "-0.5"] + ["1.0"] * 16], ["frame"] + cols),
        "outside 0..5 ": full_csv(folder / "big.csv", [["1", "5.5"] + ["1.0"] * 16], ["frame"] + cols),
        "no rows": full_csv(folder / "empty.csv", [], ["frame"] + cols),
        "does not overlap the clip": full_csv(folder / "late.csv", [["1000"] + ["1.0"] * 17], ["frame"] + cols),
    }


def run_cli(args):
    return CliRunner().invoke(main, ["video", *map(str, args), "-q"])


def assert_clean_failure(result, out, needle):
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gan-anim: error:"), result.stderr
    assert needle in lines[0]
    assert "Traceback" not in result.output
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.tmp*"))


def test_bad_tracks_fail_cleanly(clip, random_weights, tmp_path):
    before = sha(clip)
    out = tmp_path / "out.mp4"
    for needle, path in bad_csvs(tmp_path).items():
        result = run_cli([clip, "--aus", path, "-o", out, "--weights", random_weights])
        assert_clean_failure(result, out, needle.strip())
    result = run_cli([clip, "--aus", "AU12=9", "-o", out, "--weights", random_weights])
    assert_clean_failure(result, out, "outside 0..5")
    result = run_cli([clip, "--aus", "happy", "--relative", "-o", out, "--weights", random_weights])
    assert_clean_failure(result, out, "--relative")
    assert sha(clip) == before


def test_bad_videos_fail_cleanly(clip, noface_clip, random_weights, tmp_path):
    out = tmp_path / "out.mp4"
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 50)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(clip.read_bytes()[: clip.stat().st_size // 3])
    garbage = tmp_path / "garbage.mov"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, np.uint8).tobytes())
    for path, needle in [(text, "not a readable video"), (garbage, "not a readable video"),
                         (truncated, "video"), (tmp_path / "missing.mp4", "no such file"),
                         (noface_clip, "no face found")]:
        before = sha(path) if path.exists() else None
        result = run_cli([path, "--aus", "happy", "-o", out, "--weights", random_weights])
        assert_clean_failure(result, out, needle)
        assert before is None or sha(path) == before
    before = sha(clip)
    result = run_cli([clip, "--aus", "happy", "-o", clip, "--weights", random_weights])
    assert result.exit_code == 1 and "is the input file" in result.stderr
    assert sha(clip) == before


def test_api_rejects_bad_options(clip, animator, tmp_path):
    for kwargs, needle in [({"strength": -1.0}, "--strength"), ({"detect_every": 0}, "--detect-every"),
                           ({"timeline_end": "bounce"}, "--track-end")]:
        with pytest.raises(GanAnimError, match=needle):
            animate_video(clip, tmp_path / "o.mp4", aus="happy", animator=animator, **kwargs)
    assert not (tmp_path / "o.mp4").exists()


def test_overlapped_pipeline_equals_serial(clip, animator, tmp_path):
    """The threaded pipeline writes the serial run's frames, and they are edits: each face
    frame changed inside its face crop and nowhere outside its blend region (the same
    tracking, re-run), the frames without a face not at all."""
    for overlap in (True, False):
        res = animate_video(clip, tmp_path / f"v{overlap}", aus="AU12=4,AU26=2", animator=animator,
                            overlap=overlap, keep_targets=True)
        assert res.frames == FACE_FRAMES + BLANK_FRAMES
    a = [np.asarray(Image.open(p)) for p in sorted((tmp_path / "vTrue").glob("*.png"))]
    b = [np.asarray(Image.open(p)) for p in sorted((tmp_path / "vFalse").glob("*.png"))]
    assert len(a) == len(b) == FACE_FRAMES + BLANK_FRAMES
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    tracker = FaceTracker(animator.model.size, FPS)   # animate_video's defaults
    for k, (src, out) in enumerate(zip(decode(clip), a)):
        region, crops = np.zeros(src.shape[:2], bool), np.zeros(src.shape[:2], bool)
        for face in tracker.update(src):
            region[FaceBlender(src.shape, face.transform, animator.model.size).slices] = True
            crops[FaceBlender(src.shape, face.transform, animator.model.size, margin=0).slices] = True
        assert crops.any() == (k < FACE_FRAMES), k
        assert np.array_equal(out[~region], src[~region]), k
        if crops.any():
            assert np.abs(out[crops].astype(int) - src[crops]).mean() > 3, k


def test_encoder_thread_error_reaches_the_caller_and_leaves_no_output(tmp_path):
    out = tmp_path / "frames"
    with pytest.raises(TypeError):
        with FrameWriter(out, fps=FPS) as w:  # PNG frames, written by the encoder thread
            w.write(np.zeros((64, 64, 3), np.uint8))
            w.write(np.zeros((64, 64, 3), np.float64))  # PIL cannot write this: fails in the thread
            for _ in range(50):
                w.write(np.zeros((64, 64, 3), np.uint8))
    assert not out.exists() and not list(tmp_path.iterdir())
