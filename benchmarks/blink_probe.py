"""How far ``--to blink`` shuts the eyes as dlib reads them, on a sample: the re-detected eye
aspect ratio out/in (``quality_measures.eye_aspect``, the quality table's blink row) per face,
its median and the share of faces at or under 0.40 (a fall of 60 % or more).

    python benchmarks/blink_probe.py                 # 20 UTKFace test faces + 10 + 10 cfee
                                                     # held-out smiling and disgusted starts
    python benchmarks/blink_probe.py --train 12      # cfee TRAINING people (fit constants here)
    python benchmarks/blink_probe.py --strip /tmp/eyes.png   # eye crops: in | out, per face
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality import edit
from quality_measures import eye_aspect, redetect
from quality_subjects import (
    CFEE,
    CFEE_STARTS,
    HELDOUT,
    cfee_subject,
    cfee_subjects,
    utk_subjects,
)

from gan_anim.pipeline.photo import Animator

ROOT = Path(__file__).resolve().parent.parent
GOAL = 0.40


def train_subjects(per_start: int, starts=("smiling", "disgusted", "neutral")) -> list:
    """cfee photos of people NOT held out (the fitting set), ``per_start`` of each start."""
    held = {ln.strip() for ln in HELDOUT.read_text().splitlines() if ln.strip() and not ln.startswith("#")}
    with open(CFEE / "labels.csv", newline="") as fh:
        rows = sorted((r for r in csv.DictReader(fh) if r["identity"] not in held),
                      key=lambda r: (int(r["identity"]), r["file"]))
    out, count = [], {}
    for row in rows:
        start = CFEE_STARTS.get(row["emotion"])
        if start not in starts or count.get(start, 0) >= per_start:
            continue
        subj = cfee_subject(row, start)
        if subj is not None:
            count[start] = count.get(start, 0) + 1
            out.append(subj)
    return out


def heldout_subjects(n_utk: int, per_start: int) -> list:
    """``n_utk`` UTKFace test faces and ``per_start`` held-out cfee smiling and disgusted starts."""
    utk, _ = utk_subjects(ROOT / "data" / "shipped", n_utk, 0)
    cfee, _ = cfee_subjects(None)
    picked, count = [], {}
    for s in cfee:
        if s.start in ("smiling", "disgusted") and count.get(s.start, 0) < per_start:
            count[s.start] = count.get(s.start, 0) + 1
            picked.append(s)
    return utk + picked


def eye_crops(image: np.ndarray, lm: np.ndarray, eye: float, height: int = 96) -> np.ndarray:
    """Both eyes of ``image`` (around ``lm``'s eye points) side by side, ``height`` px tall."""
    import cv2

    pts = lm[36:48]
    cx, cy = pts.mean(0)
    half_w, half_h = 0.95 * eye, 0.3 * eye
    x0, x1 = int(max(cx - half_w, 0)), int(min(cx + half_w, image.shape[1]))
    y0, y1 = int(max(cy - half_h, 0)), int(min(cy + half_h, image.shape[0]))
    crop = image[y0:y1, x0:x1]
    return cv2.resize(crop, (round(height * crop.shape[1] / crop.shape[0]), height), interpolation=cv2.INTER_CUBIC)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--utk", type=int, default=20)
    ap.add_argument("--cfee", type=int, default=10, help="held-out smiling and disgusted starts each")
    ap.add_argument("--train", type=int, default=0, help="cfee training people per start instead")
    ap.add_argument("--strip", help="write eye crops (input | blink) of every face to this PNG")
    args = ap.parse_args(argv)
    subjects = train_subjects(args.train) if args.train else heldout_subjects(args.utk, args.cfee)
    anim = Animator(None, device="cpu")
    ratios, rows, t0 = [], [], time.perf_counter()
    for s in subjects:
        out = edit(anim, s, "blink")
        lm, _ = redetect(out, s.face)
        r = eye_aspect(lm) / max(eye_aspect(s.face.landmarks), 1e-6)
        ratios.append(r)
        print(f"{r:.3f}  {s.start or s.set:9s} {s.name}", flush=True)
        if args.strip:
            rows.append(np.hstack([eye_crops(s.image, s.face.landmarks, s.eye),
                                   eye_crops(out, s.face.landmarks, s.eye)]))
    r = np.array(ratios)
    by = {}
    for s, v in zip(subjects, r):
        by.setdefault(s.start or s.set, []).append(v)
    print(f"{len(r)} faces in {time.perf_counter() - t0:.0f} s: median ratio {np.median(r):.3f}, "
          f"{np.mean(r <= GOAL):.0%} at or under {GOAL}; "
          + ", ".join(f"{k} {np.median(v):.3f}" for k, v in by.items()))
    if args.strip and rows:
        import cv2

        width = max(x.shape[1] for x in rows)
        rows = [np.pad(x, ((0, 0), (0, width - x.shape[1]), (0, 0))) for x in rows]
        cv2.imwrite(args.strip, cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR))


if __name__ == "__main__":
    main()
