"""Cost of the detection cascade (faces.detect_faces) against the single pass it replaced.

    python benchmarks/bench_detect.py          # needs ../shared/data (or GAN_ANIM_SHARED)

Photos: the 12 MP test group photo (tests/scenes.py: four real faces, eyes 300, 90 (cut by
the border), 60 and 30 px apart), the same scene at 1920x1440 (eyes 144, 43, 29, 14 px), its
top 1280x720 at 1280x960 (a video frame's size: eyes 96, 29, 19 px) and the example
portrait. Baseline, same run: one HOG pass on a copy shrunk to 1280 px, no padding, plus
landmarks (what animate ran before). Times are the median of --repeat runs.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from scenes import group_photo  # noqa: E402

from gan_anim.config import InferenceConfig  # noqa: E402
from gan_anim.faces import detect as faces  # noqa: E402
from gan_anim.media.images import read_image  # noqa: E402

SHARED = Path(os.environ.get("GAN_ANIM_SHARED", ROOT.parent / "shared")) / "data"


def single_pass(image):
    return [faces.landmarks(image, b) for b, _ in faces.detect_boxes(image)]


def median_time(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)), out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    group, _ = group_photo(SHARED)
    photos = {"12 MP group (4000x3000)": group,
              "group at 1920x1440": cv2.resize(group, (1920, 1440), interpolation=cv2.INTER_AREA),
              "group at 1280x720 (crop)": cv2.resize(group, (1280, 960), interpolation=cv2.INTER_AREA)[:720],
              "512x512 example": read_image(ROOT / "examples" / "astronaut.jpg")}
    faces.detect_faces(photos["512x512 example"])   # load the models
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs, median of {args.repeat}")
    print(f"{'photo':<26} {'single pass':>16} {'cascade':>16} {'no small-face pass':>18} "
          f"{'ratio':>6}  small-face scale / floor")
    for name, image in photos.items():
        t0, base = median_time(lambda: single_pass(image), args.repeat)
        t1, found = median_time(lambda: faces.detect_faces(image), args.repeat)
        t2, first = median_time(lambda: faces.detect_faces(image, small_face_pixels=0), args.repeat)
        s0 = min(1.0, InferenceConfig.detect_max_side / max(image.shape[:2]))
        s1 = faces.small_face_scale(image.shape, "hog", faces.MIN_EYE_DISTANCE, s0)
        floor = faces.DETECTOR_MIN_EYE["hog"] / max(s1, s0)
        print(f"{name:<26} {t0:7.3f} s {len(base):2d} f {t1:7.3f} s {len(found):2d} f "
              f"{t2:7.3f} s {len(first):2d} f {t1 / t0:5.1f}x  {s1:.2f} / eyes >= {floor:.0f} px")


if __name__ == "__main__":
    main()
