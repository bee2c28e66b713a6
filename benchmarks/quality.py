"""Measured quality of a weights file on held-out real faces (not a test).

    python benchmarks/quality.py --data data/shipped --faces 60
    python benchmarks/quality.py --weights weights/gan-anim-small.pt --targets happy,surprise,sad,anger

For every held-out face (the test split of a `gan-anim prepare` folder, read
back from its source photo) and every target preset, the face is edited at
full resolution and measured:
- expression control: the project's AU estimator on the edited face versus on
  the unedited face, mean absolute error to the target, per AU;
- identity: distance between dlib's 128-d face descriptors of input and output
  (same person below 0.6);
- attention: mean of A over the face crop (0 = repaint everything, 1 = copy).
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gan_anim import aus as au  # noqa: E402
from gan_anim.animate import Animator  # noqa: E402
from gan_anim.blend import FaceBlender  # noqa: E402
from gan_anim.estimator import estimate_from_landmarks  # noqa: E402
from gan_anim.faces import detect_faces, face_descriptor, landmarks  # noqa: E402
from gan_anim.media import read_image  # noqa: E402

REPORT_AUS = ("AU01", "AU02", "AU04", "AU05", "AU06", "AU12", "AU15", "AU25", "AU26")


def held_out_photos(data: Path, n: int, seed: int) -> list[Path]:
    names = [ln.strip() for ln in (data / "test.txt").read_text().splitlines() if ln.strip()]
    stems = {Path(x).stem for x in names}
    srcs = []
    with open(data / "manifest.jsonl") as fh:
        for line in fh:
            rec = json.loads(line)
            if rec.get("status") == "ok" and rec["name"] in stems:
                srcs.append(Path(rec["src"]))
    random.Random(seed).shuffle(srcs)
    return srcs[:n]


def pad(image: np.ndarray, frac: float = 0.3) -> np.ndarray:
    """The shared photos are tight face chips: give the detector some margin, as prepare does."""
    h, w = image.shape[:2]
    py, px = round(h * frac), round(w * frac)
    return cv2.copyMakeBorder(image, py, py, px, px, cv2.BORDER_REPLICATE)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT / "data" / "shipped"))
    ap.add_argument("--weights", default=None)
    ap.add_argument("--faces", type=int, default=60)
    ap.add_argument("--targets", default="happy,surprise,sad,anger")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = ap.parse_args()

    animator = Animator(args.weights, device="auto")
    targets = args.targets.split(",")
    photos = held_out_photos(Path(args.data), args.faces, args.seed)
    err_in, err_out, ident, att_mean, lost = [], [], [], [], 0
    t0 = time.perf_counter()
    for src in photos:
        image = pad(read_image(src))
        faces = detect_faces(image)
        if not faces:
            lost += 1
            continue
        face = faces[0]
        desc_in = face_descriptor(image, face)
        for target in targets:
            job = animator.face_jobs(image, [face], target, None)[0]
            color, attention, flow = animator.generate(job.crop[None], job.goal[None])
            out = image.copy()
            FaceBlender(image.shape, job.transform, animator.size).blend(
                out, color[0], attention[0], None if flow is None else flow[0])
            est_out = estimate_from_landmarks(landmarks(out, face.box))
            err_in.append(np.abs(job.start - job.goal))
            err_out.append(np.abs(est_out - job.goal))
            ident.append(float(np.linalg.norm(face_descriptor(out, face) - desc_in)))
            s = animator.size
            att_mean.append(float(attention[0][s // 5: -s // 5, s // 5: -s // 5].mean()))
    err_in, err_out, ident = np.array(err_in), np.array(err_out), np.array(ident)
    n = len(ident)
    print(f"{n} edits ({len(photos) - lost} held-out faces x {len(targets)} targets: {', '.join(targets)}), "
          f"{lost} photos without a detected face, {time.perf_counter() - t0:.0f} s")
    print("\n| AU | MAE to target, input | MAE to target, output | reduction |")
    print("|---|---|---|---|")
    figures = {"edits": n, "per_au": {}}
    for name in REPORT_AUS:
        k = au.AU_INDEX[name]
        a, b = err_in[:, k].mean(), err_out[:, k].mean()
        red = (a - b) / a if a > 0 else 0.0
        figures["per_au"][name] = {"input": float(a), "output": float(b), "reduction": float(red)}
        print(f"| {name} | {a:.2f} | {b:.2f} | {red:+.0%} |")
    a, b = err_in.mean(), err_out.mean()
    print(f"| all 17 | {a:.2f} | {b:.2f} | {(a - b) / a:+.0%} |")
    figures.update(identity_median=float(np.median(ident)), identity_under_06=float((ident < 0.6).mean()),
                   identity_max=float(ident.max()), attention_mean=float(np.mean(att_mean)),
                   attention_p5=float(np.percentile(att_mean, 5)),
                   attention_p95=float(np.percentile(att_mean, 95)))
    print(f"\nidentity distance: median {figures['identity_median']:.3f}, "
          f"{figures['identity_under_06']:.1%} under 0.6, max {figures['identity_max']:.3f}")
    print(f"attention mean over the face: {figures['attention_mean']:.3f} "
          f"(5th-95th percentile {figures['attention_p5']:.3f}-{figures['attention_p95']:.3f})")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
