"""Frames per second of `gan-anim video` on this machine (not a test).

    python benchmarks/bench_video.py                  # 720p and 1080p, one face
    python benchmarks/bench_video.py --frames 150 --sizes 720

For each size a clip is made from the example portrait under a moving camera
(pan + zoom, sensor noise). The pipeline (`animate_video`: detect every 10
frames and track in between, batched generator, streaming encode) is timed per
stage against a naive loop measured in the same run (detect + landmarks on every
frame, one generator pass per frame). Resident memory is sampled during each
pipeline run: flat means the same RSS half-way as at the end. The serial baseline is
the same pipeline with its stages one after the other in one thread (overlap=False),
measured in the same run.
The shipped weights of --preset (medium by default) are used; random ones of the
same preset when weights/ holds none (speed does not depend on the values).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

# as `gan-anim` runs (`import gan_anim` sets it before torch loads; torch is imported first here)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import cv2  # noqa: E402
import imageio_ffmpeg
import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gan_anim import aus  # noqa: E402
from gan_anim.estimation.geometry import estimate_from_landmarks  # noqa: E402
from gan_anim.faces.align import (  # noqa: E402
    align,
    crop,
    normalised_landmarks,  # noqa: E402
)
from gan_anim.faces.detect import detect_faces  # noqa: E402
from gan_anim.media.video_reader import VideoReader  # noqa: E402
from gan_anim.media.writer import FrameWriter  # noqa: E402
from gan_anim.model import PRESETS, Generator, load_generator  # noqa: E402
from gan_anim.pipeline.photo import Animator  # noqa: E402
from gan_anim.pipeline.video import animate_video  # noqa: E402
from gan_anim.render.blend import FaceBlender  # noqa: E402
from gan_anim.render.edit_model import EditModel  # noqa: E402

EXAMPLE = ROOT / "examples" / "astronaut.jpg"
SIZES = {720: (1280, 720), 1080: (1920, 1080)}
STAGES = ("decode", "track", "generate", "blend", "encode")


def make_clip(path: Path, size, frames: int, fps: int = 30) -> Path:
    """The example portrait (face ~ 40 % of the height) under a panning, zooming camera."""
    w, h = size
    img = np.asarray(Image.open(EXAMPLE).convert("RGB"))
    img = cv2.resize(img, None, fx=0.9 * h / img.shape[0], fy=0.9 * h / img.shape[0],
                     interpolation=cv2.INTER_AREA)
    canvas = cv2.copyMakeBorder(img, h // 4, h // 4, w // 2, w // 2, cv2.BORDER_REPLICATE)
    cy, cx = canvas.shape[0] / 2, canvas.shape[1] / 2
    rng = np.random.default_rng(0)
    writer = imageio_ffmpeg.write_frames(str(path), size, fps=fps, codec="libx264", quality=None,
                                         macro_block_size=1, output_params=["-crf", "18"],
                                         ffmpeg_log_level="error")
    writer.send(None)
    for i in range(frames):
        a = i / max(frames - 1, 1)
        s = 1.0 + 0.1 * np.sin(np.pi * a)
        m = np.array([[s, 0, w / 2 - s * (cx + 0.05 * w * np.sin(2 * np.pi * a))],
                      [0, s, h / 2 - s * cy]])
        f = cv2.warpAffine(canvas, m, size, flags=cv2.INTER_LINEAR)
        noise = rng.integers(-3, 4, (h // 4, w // 4, 1), dtype=np.int16)
        f = np.clip(f + cv2.resize(noise, size, interpolation=cv2.INTER_NEAREST)[..., None], 0, 255)
        writer.send(np.ascontiguousarray(f.astype(np.uint8)))
    writer.close()
    return path


def shipped_generator(preset: str) -> tuple[Generator, str]:
    path = ROOT / "weights" / f"gan-anim-{preset}.pt"
    if path.is_file():
        return load_generator(path), f"trained weights {path.name}"
    torch.manual_seed(0)
    return Generator(PRESETS[preset]).eval(), f"RANDOM {preset}-preset weights (none in weights/)"


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class RssSampler(threading.Thread):
    def __init__(self, every: float = 0.1):
        super().__init__(daemon=True)
        self.every, self.samples, self.stop = every, [], threading.Event()

    def run(self):
        t0 = time.perf_counter()
        while not self.stop.is_set():
            self.samples.append((time.perf_counter() - t0, rss_mb()))
            time.sleep(self.every)


def run_pipeline(animator: Animator, clip: Path, out: Path, overlap: bool = True) -> tuple[dict, dict]:
    """``animate_video``; overlap=False: its stages one after the other (the serial baseline)."""
    sampler = RssSampler()
    sampler.start()
    cpu0 = os.times()
    res = animate_video(clip, out, aus="happy", animator=animator, detect_every=10, overlap=overlap)
    cpu1 = os.times()
    sampler.stop.set()
    sampler.join()
    s = sampler.samples
    half = next((m for t, m in s if t >= 0.5 * res.seconds), s[-1][1])
    mem = {"rss at 50 %": half, "rss peak": max(m for _, m in s), "rss end": s[-1][1]}
    mem["cpu self"] = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / res.frames
    mem["cpu ffmpeg"] = (cpu1.children_user + cpu1.children_system
                         - cpu0.children_user - cpu0.children_system) / res.frames
    return {"frames": res.frames, "seconds": res.seconds, **res.timings}, mem


def run_naive(model: EditModel, clip: Path, out: Path) -> dict:
    """Every frame: detect + landmarks, align, crop, one generator pass, blend, encode."""
    target = aus.au_dict_to_vector(aus.PRESETS["happy"])[None]
    size = model.size
    tm = dict.fromkeys(STAGES, 0.0)
    t0 = time.perf_counter()
    reader = VideoReader(clip)
    with FrameWriter(out, fps=reader.info.fps, crf=18, background=False) as writer:
        while True:
            t = time.perf_counter()
            frame = next(reader, None)
            tm["decode"] += time.perf_counter() - t
            if frame is None:
                break
            t = time.perf_counter()
            faces = detect_faces(frame)
            jobs = [(m, crop(frame, m, size), normalised_landmarks(f.landmarks, m, size),
                     estimate_from_landmarks(f.landmarks))
                    for f, m in ((f, align(f.landmarks, size)) for f in faces)]
            tm["track"] += time.perf_counter() - t
            source, frame = frame, frame.copy()
            for m, c, lm, own in jobs:
                t = time.perf_counter()
                edits = model.generate(c[None], target, lm[None], np.asarray(own, np.float32)[None])
                tm["generate"] += time.perf_counter() - t
                t = time.perf_counter()
                FaceBlender(frame.shape, m, size).blend(frame, edits[0], source=source)
                tm["blend"] += time.perf_counter() - t
            t = time.perf_counter()
            writer.write(frame)
            tm["encode"] += time.perf_counter() - t
        t = time.perf_counter()
    tm["encode"] += time.perf_counter() - t
    return {"frames": reader.count, "seconds": time.perf_counter() - t0, **tm}


def report(name: str, r: dict) -> None:
    n = r["frames"]
    stages = "  ".join(f"{s} {1000 * r[s] / n:5.1f}" for s in STAGES)
    print(f"  {name:<9} {n / r['seconds']:6.1f} frames/s   ms/frame: {stages}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="720,1080", help="comma-separated: 720, 1080")
    ap.add_argument("--frames", type=int, default=60, help="frames per clip (30 fps)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--preset", default="medium", choices=["medium", "small"],
                    help="which shipped weights (weights/gan-anim-PRESET.pt)")
    args = ap.parse_args()

    gen, source = shipped_generator(args.preset)
    animator = Animator(device=args.device, batch_size=args.batch_size, generator=gen)
    print(f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} CPUs ({torch.get_num_threads()} "
          f"torch threads), device {animator.model.device}, {animator.model.precision}; torch {torch.__version__}")
    print(f"weights: {source}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for key in (int(s) for s in args.sizes.split(",")):
            size = SIZES[key]
            clip = make_clip(tmp / f"clip{key}.mp4", size, args.frames)
            detect_faces(np.zeros((64, 64, 3), np.uint8))  # load the dlib models outside the timings
            print(f"{size[0]}x{size[1]}, {args.frames} frames, one face:")
            pipe, mem = run_pipeline(animator, clip, tmp / "pipe.mp4")
            serial, _ = run_pipeline(animator, clip, tmp / "serial.mp4", overlap=False)
            naive = run_naive(animator.model, clip, tmp / "naive.mp4")
            report("pipeline", pipe)
            report("serial", serial)
            report("naive", naive)
            rate = lambda r: r["frames"] / r["seconds"]  # noqa: E731
            print(f"  overlapped stages vs the same stages one after the other: "
                  f"{rate(pipe) / rate(serial):.2f}x (stage times overlap, so they add up to more "
                  "than the wall time)")
            speedup = rate(pipe) / rate(naive)
            print(f"  speed-up vs naive {speedup:.1f}x; RSS {mem['rss at 50 %']:.0f} MB at 50 % of the frames, "
                  f"{mem['rss end']:.0f} MB at the end, peak {mem['rss peak']:.0f} MB "
                  "(this process; ffmpeg runs in its own)")
            own, ff = 1000 * mem["cpu self"], 1000 * mem["cpu ffmpeg"]
            bound = 1000 / max(own, (own + ff) / len(os.sched_getaffinity(0)))
            print(f"  CPU time per frame: {own:.0f} ms here + {ff:.0f} ms in ffmpeg -> at most "
                  f"{bound:.1f} frames/s on these CPUs when nothing else runs")
    print(f"load average during the run: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
