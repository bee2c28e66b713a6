"""Measured quality of a weights file on held-out real faces (not a test).

    python benchmarks/quality.py --data data/shipped --faces 60
    python benchmarks/quality.py --weights weights/gan-anim-small.pt --targets happy,surprise,sad,anger
    python benchmarks/quality.py --table --faces 100 --json table.json --strip strip.png --video
    python benchmarks/quality.py --table --quick

Default mode: for every held-out face (the test split of a `gan-anim prepare`
folder, read back from its source photo) and every target preset, the face is
edited at full resolution and measured:
- expression control: the project's AU estimator on the edited face versus on
  the unedited face, mean absolute error to the target, per AU;
- identity: distance between dlib's 128-d face descriptors of input and output
  (same person below 0.6);
- attention: mean of A over the face crop (0 = repaint everything, 1 = copy).

``--table``: the acceptance table of believable expressions on
held-out colour UTKFace faces plus every photo in examples/, through the public
pipeline (``Animator.face_jobs`` + ``Animator.render``), with dlib landmarks
re-detected on the full-resolution output. One row per check: the figure, the
target, PASS/FAIL; ``--json`` also keeps every per-face number. Greyscale UTKFace
photos are skipped; the chips are edge-padded by 30 % and measured padded. torch
runs on one thread unless ``--threads`` says otherwise (the work is one face at a
time). ``--strip`` writes a contact sheet: examples/ and 3 test faces x presets.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
import torch
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gan_anim import aus as au  # noqa: E402
from gan_anim.estimation.geometry import estimate_from_landmarks  # noqa: E402
from gan_anim.faces.detect import Face, detect_faces, landmarks  # noqa: E402
from gan_anim.faces.identity import face_descriptor  # noqa: E402
from gan_anim.media.images import read_image  # noqa: E402
from gan_anim.media.paths import PHOTO_EXTS  # noqa: E402
from gan_anim.media.writer import FrameWriter  # noqa: E402
from gan_anim.pipeline.photo import Animator  # noqa: E402
from gan_anim.pipeline.video import animate_video  # noqa: E402
from gan_anim.render.weights import find_weights  # noqa: E402

REPORT_AUS = ("AU01", "AU02", "AU04", "AU05", "AU06", "AU12", "AU15", "AU25", "AU26")
EXAMPLES = ROOT / "examples"
UTK_PREFIX = "utkface_crop_part1__"

PRESET_EDITS = ("happy", "surprise", "sad", "anger")   # colour, sharpness, identity
RAMP_TARGETS = ("happy", "surprise")
BROW_AUS = ("AU01", "AU02", "AU04")
MOUTH_AUS = ("AU12", "AU25", "AU26", "AU15")
GRID_LEVEL = 5.0
STRIP_TARGETS = ("happy", "surprise", "sad", "anger", "neutral")

# Targets of the table.
HAPPY_MIN_RATIO, HAPPY_SHARE = 1.06, 0.90
SURPRISE_GAP, SURPRISE_BROW = 0.10, 0.03
NEUTRAL_MAX_RATIO = 0.96
BROW_DROP = 0.02
CORNER_DROP = 0.01            # "the lip corners drop": at least 0.01 eye distance (our choice)
BAD_COLOUR = 0.0005           # share of the face box
NEARBY = 0.2                  # eye distances: the "colour found nearby in the input" variant (info)
GIF_COLOUR = 0.0001          # the figure for GIF quantisation alone
SHARPNESS = 0.85
IDENTITY_MEDIAN, IDENTITY_MAX = 0.35, 0.6
ZERO_EDIT = 2.0
SMOOTHNESS = 3.0
STILL = 1.0
VIDEO_WIDEN = 1.04
SPEED_MS = 13.5


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def held_out_photos(data: Path, n: int | None, seed: int, prefix: str = "") -> list[Path]:
    """Source photos of the test split (names starting with ``prefix``), shuffled; the first ``n``."""
    names = [ln.strip() for ln in (data / "test.txt").read_text().splitlines() if ln.strip()]
    stems = {Path(x).stem for x in names if x.startswith(prefix)}
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


# ================================================================ AU report (default)

def au_report(args) -> None:
    animator = Animator(args.weights, device=args.device)
    targets = args.targets.split(",")
    photos = held_out_photos(Path(args.data), args.faces or 60, args.seed)
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
            attention = generate(animator, [job]).attention
            out = render_one(animator, image, job)
            est_out = estimate_from_landmarks(landmarks(out, face.box))
            err_in.append(np.abs(job.start - job.goal))
            err_out.append(np.abs(est_out - job.goal))
            ident.append(float(np.linalg.norm(face_descriptor(out, face) - desc_in)))
            s = animator.model.size
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


# ================================================================ subjects

@dataclass
class Subject:
    """One face of one photo; what is measured on the input is computed once."""

    name: str
    source: str                 # "utkface" or "examples"
    image: np.ndarray
    face: Face

    @cached_property
    def own(self) -> np.ndarray:
        """The face's own estimated AUs (0..5), what ``face_jobs`` starts from with start=None."""
        return np.asarray(estimate_from_landmarks(self.face.landmarks), np.float32)

    @cached_property
    def box(self) -> tuple[int, int, int, int]:
        """The detection box, clipped to the image."""
        h, w = self.image.shape[:2]
        x0, y0, x1, y1 = self.face.box
        return max(int(x0), 0), max(int(y0), 0), min(int(x1), w), min(int(y1), h)

    @property
    def eye(self) -> float:
        return self.face.eye_distance

    @cached_property
    def descriptor(self) -> np.ndarray:
        return face_descriptor(self.image, self.face)


def is_colour(image: np.ndarray, min_spread: float = 2.0) -> bool:
    """False for greyscale photos stored as RGB."""
    rgb = image.astype(np.int16)
    spread = np.abs(rgb[..., 0] - rgb[..., 1]).mean() + np.abs(rgb[..., 1] - rgb[..., 2]).mean()
    return float(spread) > min_spread


def utk_subjects(data: Path, n: int, seed: int) -> tuple[list[Subject], dict]:
    """The first ``n`` colour UTKFace test photos (padded) with a detected face."""
    subjects, skipped = [], {"grey": 0, "no face": 0}
    for src in held_out_photos(data, None, seed, UTK_PREFIX):
        if len(subjects) == n:
            break
        image = read_image(src)
        if not is_colour(image):
            skipped["grey"] += 1
            continue
        image = pad(image)
        faces = detect_faces(image)
        if not faces:
            skipped["no face"] += 1
            continue
        subjects.append(Subject(src.name, "utkface", image, faces[0]))
    return subjects, skipped


def example_subjects(folder: Path = EXAMPLES) -> list[Subject]:
    """Every face of every photo in examples/ (unpadded)."""
    out = []
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_EXTS):
        image = read_image(path)
        for k, face in enumerate(detect_faces(image)):
            out.append(Subject(f"{path.name}#{k + 1}", "examples", image, face))
    return out


# ================================================================ pipeline + measures

def render_one(anim: Animator, image: np.ndarray, job) -> np.ndarray:
    """The full-resolution photo with ``job``'s face edited (alpha 1), through the public pipeline."""
    for frame in anim.render(image, [job], np.array([1.0])):
        out = frame.copy()
    return out


def edit(anim: Animator, subj: Subject, to: str | None, start: str | None = None) -> np.ndarray:
    return render_one(anim, subj.image, anim.face_jobs(subj.image, [subj.face], to, start)[0])


def generate(anim: Animator, jobs):
    """The generator on ``jobs``' crops and goals, as ``render`` calls it at alpha 1."""
    stack = lambda key: np.stack([getattr(j, key) for j in jobs])  # noqa: E731
    return anim.model.generate(stack("crop"), stack("goal"), landmarks=stack("landmarks"), own=stack("own"))


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / union if union > 0 else 0.0


def redetect(image: np.ndarray, face: Face) -> tuple[np.ndarray, bool]:
    """dlib landmarks of ``face`` on ``image``; the input box when detection does not find it."""
    found = [f for f in detect_faces(image) if iou(f.box, face.box) > 0.3]
    if not found:
        return landmarks(image, face.box), False
    return max(found, key=lambda f: iou(f.box, face.box)).landmarks, True


def face_frame(lm: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Points in the frame of ``ref``'s eyes: eye centre at 0, eyes level, y UP, eye distance 1."""
    lm, ref = np.asarray(lm, np.float64), np.asarray(ref, np.float64)
    eye_l, eye_r = ref[36:42].mean(0), ref[42:48].mean(0)
    axis = eye_r - eye_l
    iod = float(np.hypot(*axis))
    ux = axis / iod
    rel = lm - (eye_l + eye_r) / 2
    return np.stack([rel @ ux, -(rel @ np.array([-ux[1], ux[0]]))], 1) / iod


def geometry(lm: np.ndarray, ref: np.ndarray) -> dict:
    """Expression measures in eye distances of ``ref`` (the input's landmarks)."""
    p = face_frame(lm, ref)
    eyes_y = p[36:48, 1].mean()
    return {
        "mouth_width": float(np.hypot(*(p[54] - p[48]))),
        "lip_gap": float(np.hypot(*(p[66] - p[62]))),
        "brow_height": float(p[17:27, 1].mean() - eyes_y),
        "inner_brow_height": float(p[[21, 22], 1].mean() - eyes_y),
        "corner_height": float(p[[48, 54], 1].mean() - (p[51, 1] + p[57, 1]) / 2),
    }


def geometry_change(lm_out: np.ndarray, lm_in: np.ndarray) -> dict:
    g_in, g_out = geometry(lm_in, lm_in), geometry(lm_out, lm_in)
    return {
        "mouth_ratio": g_out["mouth_width"] / g_in["mouth_width"],
        "lip_gap_change": g_out["lip_gap"] - g_in["lip_gap"],
        "brow_raise": g_out["brow_height"] - g_in["brow_height"],
        "inner_brow_drop": g_in["inner_brow_height"] - g_out["inner_brow_height"],
        "corner_drop": g_in["corner_height"] - g_out["corner_height"],
    }


def box_view(image: np.ndarray, box) -> np.ndarray:
    x0, y0, x1, y1 = box
    return image[y0:y1, x0:x1]


def grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)


def grey_change(a: np.ndarray, b: np.ndarray, mask=None) -> float:
    """Mean absolute difference in grey levels (over ``mask`` if given)."""
    d = np.abs(grey(a).astype(np.float32) - grey(b))
    return float(d[mask].mean()) if mask is not None else float(d.mean())


def mouth_mask(shape, lms, eye: float) -> np.ndarray:
    """Union of the convex hulls of landmarks 48-59 of each of ``lms``, dilated by 0.1 eye distance."""
    mask = np.zeros(shape[:2], np.uint8)
    for lm in lms:
        cv2.fillConvexPoly(mask, cv2.convexHull(np.round(lm[48:60]).astype(np.int32)), 1)
    r = round(0.1 * eye)
    if r > 0:
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    return mask.astype(bool)


def brow_mask(shape, lm: np.ndarray) -> np.ndarray:
    """Bounding box of the brows (17-26), extended down to the top of the eyes."""
    mask = np.zeros(shape[:2], bool)
    x0, y0 = np.floor(lm[17:27].min(0)).astype(int)
    x1 = int(np.ceil(lm[17:27, 0].max()))
    y1 = int(np.ceil(lm[[37, 38, 43, 44], 1].min()))
    mask[max(y0, 0):max(y1, y0 + 1), max(x0, 0):x1 + 1] = True
    return mask


def lab(image: np.ndarray) -> np.ndarray:
    """CIE Lab, L 0..100, a* b* in their usual units."""
    return cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


def bad_colour_share(inp: np.ndarray, out: np.ndarray, box, mouth: np.ndarray, radius: int = 0) -> float:
    """Share of the face box whose colour no real expression produces (the table's definition).

    ``radius`` > 0 compares each output pixel with the input's colours within that many
    pixels (the least a*, b* and the most chroma there) instead of the same pixel only, so
    that moving a boundary (face over a blue collar) is not counted as paint.
    """
    a, b = lab(box_view(inp, box)), lab(box_view(out, box))
    ref_a, ref_b, ref_chroma = a[..., 1], a[..., 2], np.hypot(a[..., 1], a[..., 2])
    if radius > 0:
        disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        ref_a, ref_b = cv2.erode(ref_a, disk), cv2.erode(ref_b, disk)
        ref_chroma = cv2.dilate(ref_chroma, disk)
    chroma_gain = np.hypot(b[..., 1], b[..., 2]) - ref_chroma
    bad = ((b[..., 1] - ref_a < -5) & (b[..., 1] < -2)) | ((b[..., 2] - ref_b < -5) & (b[..., 2] < -2)) | \
          ((chroma_gain > 25) & ~box_view(mouth, box))
    return float(bad.mean())


def laplacian_var(image: np.ndarray, box) -> float:
    return float(cv2.Laplacian(grey(box_view(image, box)), cv2.CV_64F).var())


def gif_roundtrip(image: np.ndarray) -> np.ndarray:
    """``image`` written through the project's GIF writer (one palette) and read back."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "q.gif"
        with FrameWriter(path) as writer:
            writer.write(image)
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))


# ================================================================ per-face measurements

def measure_preset(anim: Animator, subj: Subject, target: str) -> dict:
    out = edit(anim, subj, target)
    lm_out, ok = redetect(out, subj.face)
    lm_in = subj.face.landmarks
    rec = {"redetected": ok, **geometry_change(lm_out, lm_in)}
    if target in PRESET_EDITS:
        mouth = mouth_mask(out.shape, [lm_in, lm_out], subj.eye)
        rec["bad_colour"] = bad_colour_share(subj.image, out, subj.box, mouth)
        rec["bad_colour_nearby"] = bad_colour_share(subj.image, out, subj.box, mouth,
                                                    round(NEARBY * subj.eye))
        rec["sharpness"] = laplacian_var(out, subj.box) / max(laplacian_var(subj.image, subj.box), 1e-9)
        rec["identity"] = float(np.linalg.norm(face_descriptor(out, subj.face) - subj.descriptor))
    return rec


def measure_grid(anim: Animator, subj: Subject, own: np.ndarray) -> dict:
    """Single-AU edits at 5 on top of the face's own AUs: mean change inside the mouth and brow
    regions, against the render at the face's own AUs (``own``, the grid's first column) and
    against the input photo."""
    shape, lm = subj.image.shape, subj.face.landmarks
    regions = {"mouth": mouth_mask(shape, [lm], subj.eye), "brows": brow_mask(shape, lm)}
    out = {}
    for name in BROW_AUS + MOUTH_AUS:
        edited = edit(anim, subj, f"{name}={GRID_LEVEL:g}")
        out[name] = {k: grey_change(own, edited, m) for k, m in regions.items()}
        out[name].update({f"{k}_vs_input": grey_change(subj.image, edited, m) for k, m in regions.items()})
    return out


def measure_ramp(anim: Animator, subj: Subject, target: str, frames: int = 30) -> dict:
    """Per consecutive-frame pair of a ramp: the mean absolute change in the face box."""
    jobs = anim.face_jobs(subj.image, [subj.face], target, None)
    prev, steps = None, []
    for frame in anim.render(subj.image, jobs, np.linspace(0, 1, frames)):
        g = grey(box_view(frame, subj.box)).astype(np.float32)
        if prev is not None:
            steps.append(float(np.abs(g - prev).mean()))
        prev = g
    med, big = float(np.median(steps)), float(max(steps))
    ratio = big / med if med > 0 else (1.0 if big == 0 else float("inf"))
    return {"ratio": ratio, "largest": big, "median": med}


def measure_subject(anim: Animator, subj: Subject, ramps: bool) -> dict:
    rec = {"name": subj.name, "set": subj.source, "eye_distance": subj.eye,
           "own": {n: round(float(v), 3) for n, v in zip(au.AU_NAMES, subj.own)}, "edits": {}}
    for target in PRESET_EDITS:
        rec["edits"][target] = measure_preset(anim, subj, target)
    if subj.own[au.AU_INDEX["AU12"]] > 3:
        rec["edits"]["neutral"] = measure_preset(anim, subj, "neutral")
    zero = edit(anim, subj, None)
    rec["zero_edit"] = grey_change(box_view(subj.image, subj.box), box_view(zero, subj.box))
    gif = gif_roundtrip(subj.image)
    rec["gif_bad_colour"] = bad_colour_share(subj.image, gif, subj.box,
                                             mouth_mask(gif.shape, [subj.face.landmarks], subj.eye))
    rec["grid"] = measure_grid(anim, subj, zero)
    if ramps:
        rec["ramps"] = {t: measure_ramp(anim, subj, t) for t in RAMP_TARGETS}
    return rec


# ================================================================ video and speed

def measure_video(anim: Animator, subj: Subject, frames: int = 30) -> dict:
    """A still clip of ``subj``'s photo driven by an AU12 ramp 0 -> 5 (a CSV track through
    ``animate_video``): re-detected mouth width on the last frame / on the first."""
    h, w = subj.image.shape[:2]
    with tempfile.TemporaryDirectory() as tmp:
        clip, track, out = Path(tmp) / "clip.mp4", Path(tmp) / "ramp.csv", Path(tmp) / "frames"
        writer = imageio_ffmpeg.write_frames(
            str(clip), (w, h), fps=25, codec="libx264", macro_block_size=1, quality=None,
            pix_fmt_out="yuv444p", output_params=["-qp", "0"], ffmpeg_log_level="error")
        writer.send(None)
        for _ in range(frames):
            writer.send(np.ascontiguousarray(subj.image))
        writer.close()
        with open(track, "w", newline="") as fh:
            rows = csv.writer(fh)
            rows.writerow(["frame", "success", "AU12_r"])
            rows.writerows([k + 1, 1, f"{v:.3f}"] for k, v in enumerate(np.linspace(0, 5, frames)))
        res = animate_video(clip, out, aus=str(track), animator=anim, quiet=True)
        names = sorted(out.iterdir())
        first, last = (read_image(names[0]), read_image(names[-1]))
    (lm0, ok0), (lm1, ok1) = redetect(first, subj.face), redetect(last, subj.face)
    ratio = float(np.hypot(*(lm1[54] - lm1[48])) / np.hypot(*(lm0[54] - lm0[48])))
    return {"photo": subj.name, "frames": res.frames, "mouth_ratio": ratio, "redetected": ok0 and ok1}


def measure_speed(anim: Animator, subjects: list[Subject], batch: int = 16, repeats: int = 5) -> dict:
    """Generator milliseconds per face on a batch of real crops (median of ``repeats``)."""
    jobs = [anim.face_jobs(s.image, [s.face], "happy", None)[0] for s in subjects[:batch]]
    jobs = [jobs[k % len(jobs)] for k in range(batch)]
    generate(anim, jobs)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        generate(anim, jobs)
        times.append(time.perf_counter() - t)
    return {"ms_per_face": 1000 * float(np.median(times)) / batch, "batch": batch, "repeats": repeats,
            "threads": torch.get_num_threads(), "load_average": os.getloadavg()[0]}


# ================================================================ the table

def row(check: str, figure: str, target: str, passed, **values) -> dict:
    return {"check": check, "figure": figure, "target": target,
            "result": "n/a" if passed is None else ("PASS" if passed else "FAIL"), **values}


def edits_of(records, target: str, where=lambda r: True) -> list[dict]:
    return [r["edits"][target] for r in records if target in r["edits"] and where(r)]


def own_au12(r) -> float:
    return r["own"]["AU12"]


def check_happy(records) -> list[dict]:
    e = edits_of(records, "happy", lambda r: own_au12(r) < 1)
    if not e:
        return [row("happy (own AU12 < 1): mouth corners 48-54", "no face with AU12 < 1",
                    ">= +6 % in >= 90 %", None)]
    ratios = np.array([x["mouth_ratio"] for x in e])
    share = float((ratios >= HAPPY_MIN_RATIO).mean())
    return [row("happy (own AU12 < 1): mouth corners 48-54",
                f"{share:.0%} of {len(e)} faces >= +6 % (median {np.median(ratios) - 1:+.1%})",
                ">= +6 % in >= 90 %", share >= HAPPY_SHARE, n=len(e), share=share,
                median_ratio=float(np.median(ratios)))]


def check_surprise(records) -> list[dict]:
    e = edits_of(records, "surprise")
    gap = np.median([x["lip_gap_change"] for x in e])
    brow = np.median([x["brow_raise"] for x in e])
    return [row("surprise: inner-lip gap 62-66", f"{gap:+.3f} eye dist. (median of {len(e)})",
                ">= +0.10", gap >= SURPRISE_GAP, n=len(e), median=float(gap)),
            row("surprise: brow-to-eye height", f"{brow:+.3f} eye dist. (median)",
                ">= +0.03", brow >= SURPRISE_BROW, n=len(e), median=float(brow))]


def check_neutral(records) -> list[dict]:
    e = edits_of(records, "neutral")
    if not e:
        return [row("neutral (own AU12 > 3): mouth corners 48-54", "no face with AU12 > 3", "<= -4 %", None)]
    ratios = np.array([x["mouth_ratio"] for x in e])
    med, share = float(np.median(ratios)), float((ratios <= NEUTRAL_MAX_RATIO).mean())
    return [row("neutral (own AU12 > 3): mouth corners 48-54",
                f"{med - 1:+.1%} median; {share:.0%} of {len(e)} faces <= -4 %", "<= -4 %",
                med <= NEUTRAL_MAX_RATIO, n=len(e), median_ratio=med, share=share)]


def check_brows_down(records) -> list[dict]:
    rows = []
    for target in ("anger", "sad"):
        e = edits_of(records, target)
        v = np.array([x["inner_brow_drop"] for x in e])
        rows.append(row(f"{target}: inner brows 21-22 lower",
                        f"{np.median(v):+.3f} eye dist. (median of {len(e)}); "
                        f"{(v >= BROW_DROP).mean():.0%} >= 0.02",
                        ">= +0.02", np.median(v) >= BROW_DROP,
                        n=len(e), median=float(np.median(v)), share=float((v >= BROW_DROP).mean())))
    v = np.array([x["corner_drop"] for x in edits_of(records, "sad")])
    rows.append(row("sad: lip corners drop vs lip centre", f"{np.median(v):+.3f} eye dist. (median)",
                    f">= +{CORNER_DROP:g}", np.median(v) >= CORNER_DROP, median=float(np.median(v)),
                    share=float((v >= CORNER_DROP).mean())))
    return rows


def pct(x: float) -> str:
    return f"{100 * x:.3f} %"


def check_colour(records) -> list[dict]:
    rows = []
    for target in PRESET_EDITS:
        v = np.array([x["bad_colour"] for x in edits_of(records, target)])
        rows.append(row(f"colour, {target}: bad pixels in the face box",
                        f"max {pct(v.max())}, median {pct(np.median(v))}", "<= 0.05 % per face",
                        v.max() <= BAD_COLOUR, max=float(v.max()), median=float(np.median(v)),
                        over=int((v > BAD_COLOUR).sum())))
    v = preset_values(records, "bad_colour_nearby")
    rows.append(row(f"colour, info: as above, but any input colour within {NEARBY:g} eye dist. allowed",
                    f"max {pct(v.max())}, median {pct(np.median(v))} (all four targets)", "(info)", None,
                    max=float(v.max()), median=float(np.median(v)), over=int((v > BAD_COLOUR).sum())))
    v = np.array([r["gif_bad_colour"] for r in records])
    rows.append(row("colour, reference: GIF quantisation of the input", f"max {pct(v.max())}, "
                    f"median {pct(np.median(v))}, {(v > GIF_COLOUR).mean():.0%} of faces > 0.01 %",
                    "(reference; issue: <= 0.01 %)", None,
                    max=float(v.max()), median=float(np.median(v))))
    return rows


def preset_values(records, key: str) -> np.ndarray:
    return np.array([x[key] for t in PRESET_EDITS for x in edits_of(records, t)])


def check_sharpness(records) -> list[dict]:
    v = preset_values(records, "sharpness")
    return [row("sharpness: Laplacian variance out / in", f"{np.median(v):.2f} median "
                f"(5th pct {np.percentile(v, 5):.2f}, {len(v)} edits)", ">= 0.85",
                np.median(v) >= SHARPNESS, median=float(np.median(v)), p5=float(np.percentile(v, 5)))]


def check_identity(records) -> list[dict]:
    v = preset_values(records, "identity")
    return [row("identity: dlib descriptor distance", f"median {np.median(v):.3f}, max {v.max():.3f}, "
                f"{(v < IDENTITY_MAX).mean():.1%} < 0.6", "median <= 0.35, max < 0.6",
                np.median(v) <= IDENTITY_MEDIAN and v.max() < IDENTITY_MAX,
                median=float(np.median(v)), max=float(v.max()))]


def check_zero(records) -> list[dict]:
    v = np.array([r["zero_edit"] for r in records])
    return [row("zero edit (own AUs): change in the face box",
                f"max {v.max():.2f}, median {np.median(v):.2f} grey levels", "<= 2 per face",
                v.max() <= ZERO_EDIT,
                max=float(v.max()), median=float(np.median(v)))]


def check_smoothness(records) -> list[dict]:
    rows = []
    for target in RAMP_TARGETS:
        v = np.array([r["ramps"][target]["ratio"] for r in records if "ramps" in r])
        if not len(v):
            continue
        rows.append(row(f"smoothness, 30-frame ramp to {target}: largest / median step",
                        f"max {v.max():.2f}, median {np.median(v):.2f} ({len(v)} faces)", "<= 3",
                        v.max() <= SMOOTHNESS, max=float(v.max()), median=float(np.median(v))))
    return rows


def check_grid(records) -> list[dict]:
    rows = []
    for names, still, own, label in ((BROW_AUS, "mouth", "brows", "brow AUs leave the mouth still"),
                                     (MOUTH_AUS, "brows", "mouth", "mouth AUs leave the brows still")):
        per_au = {n: {"still": float(np.median([r["grid"][n][still] for r in records])),
                      "own": float(np.median([r["grid"][n][own] for r in records]))} for n in names}
        worst = max(per_au, key=lambda n: per_au[n]["still"])
        figure = ", ".join(f"{n} {v['still']:.2f} ({own} {v['own']:.2f})" for n, v in per_au.items())
        rows.append(row(f"grid, AU at 5 vs own AUs: {label}", f"median change {figure}",
                        f"< 1 grey level in the {still}", per_au[worst]["still"] < STILL, per_au=per_au))
    return rows


def check_video(video: dict | None) -> list[dict]:
    if video is None:
        return []
    r = video["mouth_ratio"]
    return [row("video: AU12 ramp 0 -> 5 (CSV track), mouth width last / first",
                f"{r - 1:+.1%} ({video['photo']}, {video['frames']} frames)", ">= +4 %",
                r >= VIDEO_WIDEN, **video)]


def check_speed(speed: dict) -> list[dict]:
    ms = speed["ms_per_face"]
    return [row("speed: generator per face (batch of 16)",
                f"{ms:.1f} ms ({speed['threads']} thread(s), load average {speed['load_average']:.1f})",
                "<= 13.5 ms (this CPU)", ms <= SPEED_MS, **speed)]


def check_redetection(records) -> list[dict]:
    e = [x for r in records for x in r["edits"].values()]
    lost = sum(not x["redetected"] for x in e)
    return [row("re-detection failures (landmarks fitted in the input box)", f"{lost} of {len(e)} edits",
                "(info)", None, failed=lost, edits=len(e))]


def build_table(records, video, speed) -> list[dict]:
    return (check_happy(records) + check_surprise(records) + check_neutral(records)
            + check_brows_down(records) + check_colour(records) + check_sharpness(records)
            + check_identity(records) + check_zero(records) + check_smoothness(records)
            + check_grid(records) + check_video(video) + check_speed(speed) + check_redetection(records))


def markdown(rows) -> str:
    lines = ["| check | measured | target | result |", "|---|---|---|---|"]
    lines += [f"| {r['check']} | {r['figure']} | {r['target']} | {r['result']} |" for r in rows]
    return "\n".join(lines)


def example_lines(records) -> list[str]:
    """A short line per example photo face (they are also inside the table)."""
    out = []
    for r in records:
        if r["set"] != "examples":
            continue
        e = r["edits"]
        out.append(f"- {r['name']}: happy mouth {e['happy']['mouth_ratio'] - 1:+.1%}, surprise lip gap "
                   f"{e['surprise']['lip_gap_change']:+.3f}, brows {e['surprise']['brow_raise']:+.3f}, "
                   "bad colour max " + pct(max(e[t]['bad_colour'] for t in PRESET_EDITS)))
    return out


def table_report(args) -> None:
    t0 = time.perf_counter()
    anim = Animator(args.weights, device=args.device)
    n = 20 if args.quick else (args.faces or 100)
    log(f"loading {n} held-out colour UTKFace faces and examples/ ...")
    utk, skipped = utk_subjects(Path(args.data), n, args.seed)
    subjects = example_subjects() + utk
    log(f"{len(utk)} UTKFace faces ({skipped['grey']} grey and {skipped['no face']} faceless photos "
        f"skipped), {len(subjects) - len(utk)} example face(s)")
    if args.strip:
        write_strip(anim, [s for s in subjects if s.source == "examples"] + utk[:3], Path(args.strip))
    ramp_faces = len(subjects) if args.ramps is None else args.ramps
    records = []
    for k, subj in enumerate(subjects):
        records.append(measure_subject(anim, subj, ramps=k < ramp_faces))
        if (k + 1) % 10 == 0 or k + 1 == len(subjects):
            log(f"  measured {k + 1}/{len(subjects)} faces ({time.perf_counter() - t0:.0f} s)")
    video = None
    if args.video:
        log("video: AU12 ramp clip ...")
        video = measure_video(anim, subjects[0])
    speed = measure_speed(anim, subjects)
    rows = build_table(records, video, speed)
    seconds = time.perf_counter() - t0
    weights = str(find_weights(args.weights))
    print(f"{len(utk)} held-out colour UTKFace faces + {len(subjects) - len(utk)} example face(s), "
          f"weights {weights}, {seconds:.0f} s\n")
    print(markdown(rows))
    if not args.video:
        print("\n(video check skipped: pass --video)")
    print("\nexamples/:\n" + "\n".join(example_lines(records)))
    if args.json:
        faces = {"utkface": len(utk), "examples": len(subjects) - len(utk), "skipped": skipped}
        Path(args.json).write_text(json.dumps(
            {"weights": weights, "faces": faces, "seconds": seconds, "checks": rows, "video": video,
             "speed": speed, "per_face": records}, indent=1, default=float))


def strip_report(args) -> None:
    anim = Animator(args.weights, device=args.device)
    utk, _ = utk_subjects(Path(args.data), 3, args.seed)
    write_strip(anim, example_subjects() + utk, Path(args.strip))


# ================================================================ strip

def face_cell(image: np.ndarray, box, height: int = 192, zoom: float = 1.6) -> np.ndarray:
    """A square around the face box, ``zoom`` x its larger side, resized to ``height``."""
    x0, y0, x1, y1 = box
    side = int(round(zoom * max(x1 - x0, y1 - y0)))
    cell = cv2.getRectSubPix(image, (side, side), ((x0 + x1) / 2, (y0 + y1) / 2))
    return cv2.resize(cell, (height, height), interpolation=cv2.INTER_AREA)


def write_strip(anim: Animator, subjects: list[Subject], path: Path, height: int = 192) -> None:
    """One row per face: input, then each of STRIP_TARGETS; a header row of labels."""
    log(f"strip: {len(subjects)} faces -> {path}")
    rows = []
    for subj in subjects:
        cells = [face_cell(subj.image, subj.face.box, height)]
        cells += [face_cell(edit(anim, subj, t), subj.face.box, height) for t in STRIP_TARGETS]
        rows.append(np.concatenate(cells, 1))
    header = Image.new("RGB", (rows[0].shape[1], 24), "white")
    draw = ImageDraw.Draw(header)
    for k, label in enumerate(("input",) + STRIP_TARGETS):
        draw.text((k * height + 6, 6), label, fill="black")
    sheet = np.concatenate([np.asarray(header)] + rows, 0)
    Image.fromarray(sheet).save(path)


# ================================================================ CLI

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT / "data" / "shipped"))
    ap.add_argument("--weights", default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--faces", type=int, default=None, help="held-out faces (default 60; 100 with --table)")
    ap.add_argument("--targets", default="happy,surprise,sad,anger", help="AU report only")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    ap.add_argument("--table", action="store_true", help="the acceptance table of believable expressions")
    ap.add_argument("--quick", action="store_true", help="--table on 20 faces")
    ap.add_argument("--ramps", type=int, default=None, help="faces that get the 30-frame ramps (default all)")
    ap.add_argument("--video", action="store_true", help="--table: also the AU12-track video check")
    ap.add_argument("--strip", default=None, help="write a PNG of examples + 3 test faces x presets")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default with --table: 1; the work is one face at a time, and "
                         "two threads on a busy 2-core CPU are several times slower)")
    args = ap.parse_args()
    if args.threads or args.table or args.quick:
        torch.set_num_threads(args.threads or 1)
    if args.table or args.quick:
        table_report(args)
    elif args.strip:
        strip_report(args)
    else:
        au_report(args)


if __name__ == "__main__":
    main()
