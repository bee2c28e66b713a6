"""Speed of ``gan-anim aus``: faces/s on photos (incl. 1080p) and frames/s on a video, per stage.

    python benchmarks/bench_aus.py            # needs ../shared/data (or GAN_ANIM_SHARED)

Stages: decode (media.read_image_scaled: large JPEGs decoded at reduced size / ffmpeg),
detect (one dlib HOG pass on a copy of at most InferenceConfig.detect_max_side px; the end-to-end
line runs the whole detection cascade, faces.detect_faces), landmarks (68 points at full resolution), estimate
(estimate_from_landmarks). Baseline, measured in the same run: detection at full
resolution with upsample=1 (what a plain dlib script does), and the full-size decode
with detection at InferenceConfig.detect_max_side.
"""
from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gan_anim.config import InferenceConfig  # noqa: E402
from gan_anim.estimator import (  # noqa: E402
    AUS_DECODE_SIDE,
    estimate_aus_file,
    estimate_from_landmarks,
)
from gan_anim.faces import detect as faces  # noqa: E402
from gan_anim.media.images import read_image, read_image_scaled  # noqa: E402

SHARED = Path(os.environ.get("GAN_ANIM_SHARED", ROOT.parent / "shared")) / "data"


def timed(fn, *args, **kw):
    t = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t


def make_1080p(face_photo: Path, path: Path, seed: int) -> None:
    """A 1920x1080 JPEG: a real face photo upscaled to 648 px high, at a random place in a
    frame made of the blurred, stretched photo itself (a plausible background, no second face)."""
    img = read_image(face_photo)
    bg = cv2.GaussianBlur(cv2.resize(img, (1920, 1080)), (0, 0), 25)
    face = cv2.resize(img, (648 * img.shape[1] // img.shape[0], 648), interpolation=cv2.INTER_CUBIC)
    rng = np.random.default_rng(seed)
    x, y = rng.integers(0, 1920 - face.shape[1]), rng.integers(0, 1080 - 648)
    bg[y:y + 648, x:x + face.shape[1]] = face
    Image.fromarray(bg).save(path, quality=92)


def one_photo(path: Path, detect_kw: dict) -> tuple[dict, int]:
    stages = {}
    if detect_kw.get("fast"):
        (img, _), stages["decode"] = timed(read_image_scaled, path, AUS_DECODE_SIDE)
        detect_kw = {"max_side": InferenceConfig.detect_max_side}
    else:
        img, stages["decode"] = timed(read_image, path)
    boxes, stages["detect"] = timed(faces.detect_boxes, img, **detect_kw)
    t = time.perf_counter()
    lms = [faces.landmarks(img, b) for b, _ in boxes]
    stages["landmarks"] = time.perf_counter() - t
    _, stages["estimate"] = timed(estimate_from_landmarks, np.array(lms).reshape(-1, 68, 2)) if lms else (None, 0.0)
    return stages, len(boxes)


def bench_photos(paths: list[Path], label: str, detect_kw: dict) -> None:
    one_photo(paths[0], detect_kw)   # warm the models
    total, n_faces = {}, 0
    for p in paths:
        st, n = one_photo(p, detect_kw)
        n_faces += n
        for k, v in st.items():
            total[k] = total.get(k, 0.0) + v
    secs = sum(total.values())
    per = "  ".join(f"{k} {1000 * v / len(paths):.1f} ms" for k, v in total.items())
    print(f"{label:<44} {len(paths)} photos, {n_faces} faces, {n_faces / secs:6.1f} faces/s | {per}")


def end_to_end(paths: list[Path], label: str) -> None:
    estimate_aus_file(paths[0])
    t = time.perf_counter()
    n = sum(len(estimate_aus_file(p)) for p in paths)
    secs = time.perf_counter() - t
    print(f"{label:<44} {len(paths)} photos, {n} faces, {n / secs:6.1f} faces/s")


def bench_video(path: Path, label: str) -> None:
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    w, h = meta["size"]
    total = {"decode": 0.0, "detect": 0.0, "landmarks": 0.0, "estimate": 0.0}
    n = found = 0
    while True:
        t = time.perf_counter()
        try:
            buf = next(reader)
        except StopIteration:
            break
        frame = np.frombuffer(buf, np.uint8).reshape(h, w, 3)
        total["decode"] += time.perf_counter() - t
        boxes, dt = timed(faces.detect_boxes, frame, max_side=InferenceConfig.detect_max_side)
        total["detect"] += dt
        if boxes:
            lm, dt = timed(faces.landmarks, frame, boxes[0][0])
            total["landmarks"] += dt
            _, dt = timed(estimate_from_landmarks, lm)
            total["estimate"] += dt
            found += 1
        n += 1
    secs = sum(total.values())
    per = "  ".join(f"{k} {1000 * v / n:.1f} ms" for k, v in total.items())
    print(f"{label:<44} {n} frames ({w}x{h}), face in {found}, {n / secs:6.1f} frames/s | {per}")


def make_video(face_photos: list[Path], path: Path, frames: int = 60) -> None:
    import imageio_ffmpeg

    w, h = 1280, 720
    writer = imageio_ffmpeg.write_frames(str(path), (w, h), fps=25, macro_block_size=1,
                                         ffmpeg_log_level="error")
    writer.send(None)
    img = read_image(face_photos[0])
    img = cv2.resize(img, (512, 512), interpolation=cv2.INTER_CUBIC)
    bg = cv2.GaussianBlur(cv2.resize(img, (w, h)), (0, 0), 25)
    for i in range(frames):
        f = bg.copy()
        x = 200 + 6 * i
        f[100:612, x:x + 512] = img
        writer.send(np.ascontiguousarray(f))
    writer.close()


def main() -> int:
    if not SHARED.is_dir():
        print(f"shared data not found at {SHARED}; set GAN_ANIM_SHARED", file=sys.stderr)
        return 1
    cv2.setNumThreads(1)
    fe = sorted((SHARED / "facial_expressions" / "images").glob("*.jpg"))[::400][:16]
    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; one process; "
          f"aus detects at <= {InferenceConfig.detect_max_side} px (InferenceConfig.detect_max_side)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        big = []
        for i, p in enumerate(fe[:8]):
            big.append(tmp / f"big{i}.jpg")
            make_1080p(p, big[-1], i)
        ex = [ROOT / "examples" / "astronaut.jpg"] * 8
        bench_photos(big, "1080p photos (gan-anim aus stages)", {"fast": True})
        end_to_end(big, "1080p photos, estimate_aus_file end to end")
        bench_photos(big, "1080p, full decode, detect at 1280 px", {})
        bench_photos(big, "1080p, baseline full-res upsample=1",
                     {"upsample": 1, "max_side": 10 ** 5})
        bench_photos(ex, "examples/astronaut.jpg 512 px", {"fast": True})
        bench_photos(ex, "examples/astronaut.jpg, baseline upsample=1", {"upsample": 1, "max_side": 10 ** 5})
        bench_photos(fe, "facial_expressions 256 px", {"fast": True})
        video = tmp / "clip.mp4"
        make_video(fe, video)
        bench_video(video, "720p video, 60 frames")
    return 0


if __name__ == "__main__":
    sys.exit(main())
