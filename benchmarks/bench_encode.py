"""x264 preset and threads for MP4 output: encoding time, file size and quality (not a test).

    python benchmarks/bench_encode.py                       # 12 MP photo, 12 frames
    python benchmarks/bench_encode.py --size 1920x1080 --frames 30

The frames reach ffmpeg as planar YUV 4:2:0, converted by OpenCV in the writer
(``media.writer.to_i420``); the last row is the baseline, RGB converted by ffmpeg.

Renders the example portrait (scaled onto a canvas of the given size) from neutral to
happy with the shipped weights, keeps the frames in memory, then encodes them with
each preset at --crf (what ``FrameWriter`` does) and compares the decoded result with
the rendered frames: PSNR over the whole frame and SSIM (luma, 7x7 Gaussian) on the
face region. The slow preset is the quality reference.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_animate import make_photo  # noqa: E402

from gan_anim.faces.detect import detect_faces  # noqa: E402
from gan_anim.media.images import read_image  # noqa: E402
from gan_anim.media.video_reader import VideoReader  # noqa: E402
from gan_anim.media.writer import FrameWriter  # noqa: E402
from gan_anim.pipeline.photo import Animator  # noqa: E402


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two grey images (Wang et al. 2004, Gaussian window sigma 1.5)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    blur = lambda x: cv2.GaussianBlur(x, (7, 7), 1.5)  # noqa: E731
    ma, mb = blur(a), blur(b)
    va, vb, cov = blur(a * a) - ma * ma, blur(b * b) - mb * mb, blur(a * b) - ma * mb
    s = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2))
    return float(s.mean())


def encode(frames, path: Path, preset: str, threads: str | None, crf: int, i420: bool = True) -> float:
    """Seconds to encode ``frames``; ``i420=False``: RGB through the pipe, converted by
    ffmpeg (the baseline) instead of by OpenCV in the writer."""
    t = time.perf_counter()
    with FrameWriter(path, fps=15, crf=crf, preset=preset, background=False,
                     threads=int(threads) if threads else None, i420=i420) as w:
        for f in frames:
            w.write(f)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="4000x3000")
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--crf", type=int, default=18)
    ap.add_argument("--presets", default="ultrafast,superfast,veryfast,faster,medium,slow")
    ap.add_argument("--threads", default="auto,2,1", help="x264 -threads values to try with veryfast")
    args = ap.parse_args()
    w, h = map(int, args.size.split("x"))
    print(f"{w}x{h}, {args.frames} frames, crf {args.crf}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        photo = make_photo(tmp, "photo", w, h)
        image = read_image(photo)
        animator = Animator(device="cpu")
        face = detect_faces(image)[0]
        jobs = animator.face_jobs(image, [face], "happy", "neutral")
        alphas = np.linspace(0, 1, args.frames)
        frames = [f.copy() for f in animator.render(image, jobs, alphas)]
        l, t, r, b = face.box
        runs = [(p, None, True) for p in args.presets.split(",")]
        runs += [("veryfast", th, True) for th in args.threads.split(",") if th != "auto"]
        runs += [("veryfast", None, False)]  # baseline: ffmpeg converts RGB (as before)
        rows = []
        for preset, threads, i420 in runs:
            out = tmp / f"{preset}-{threads}-{i420}.mp4"
            seconds = encode(frames, out, preset, threads, args.crf, i420)
            dec = [f.copy() for f in VideoReader(out)]
            mse = np.mean([np.mean((a.astype(np.float32) - d[:h, :w]) ** 2) for a, d in zip(frames, dec)])
            shift = np.mean([(d[:h, :w].astype(np.float32) - a).mean((0, 1)) for a, d in zip(frames, dec)], 0)
            grey = lambda x: cv2.cvtColor(np.ascontiguousarray(x[t:b, l:r]), cv2.COLOR_RGB2GRAY)  # noqa: E731
            s = np.mean([ssim(grey(a), grey(d)) for a, d in zip(frames, dec)])
            rows.append((preset, threads or "auto", "OpenCV" if i420 else "ffmpeg", seconds,
                         out.stat().st_size, 10 * np.log10(255 ** 2 / mse), s, shift))
        print(f"{'preset':>10} {'threads':>7} {'to YUV':>7} {'ms/frame':>9} {'MB':>7} {'PSNR dB':>8} "
              f"{'SSIM face':>9}  mean RGB shift")
        for preset, threads, conv, seconds, size, psnr, s, shift in rows:
            print(f"{preset:>10} {threads:>7} {conv:>7} {seconds / args.frames * 1000:9.1f} {size / 1e6:7.2f} "
                  f"{psnr:8.2f} {s:9.4f}  {' '.join(f'{v:+.2f}' for v in shift)}")
        base = rows[-1][3]
        fast = next(r[3] for r in rows if r[0] == "veryfast" and r[1] == "auto" and r[2] == "OpenCV")
        print(f"veryfast: YUV by OpenCV {fast / args.frames * 1000:.1f} ms/frame vs by ffmpeg (RGB pipe, "
              f"the baseline) {base / args.frames * 1000:.1f}: {base / fast:.2f}x")


if __name__ == "__main__":
    main()
