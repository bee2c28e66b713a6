"""Measured quality of a weights file on held-out real faces (not a test).

    python benchmarks/quality.py --data data/shipped --faces 60
    python benchmarks/quality.py --table --faces 100 --video --json table.json
    python benchmarks/quality.py --table --quick          # a few minutes
    python benchmarks/quality.py --strip strip.jpg        # 7 starting expressions x 6 presets

Default mode: for every held-out face (the test split of a `gan-anim prepare`
folder, read back from its source photo) and every target preset, the face is
edited at full resolution and measured:
- expression control: the project's AU estimator on the edited face versus on
  the unedited face, mean absolute error to the target, per AU;
- identity: distance between dlib's 128-d face descriptors of input and output
  (same person below 0.6);
- attention: mean of A over the face crop (0 = repaint everything, 1 = copy).

``--table``: the acceptance table (docs/benchmarks.md says what each row means) on
held-out colour UTKFace faces, every face in examples/ and the cfee held-out people's
basic expressions as starts, through the public pipeline (``Animator.face_jobs`` +
``Animator.render``), with dlib landmarks re-detected on the full-resolution output and
the last frame read by an expression recogniser trained on other people
(``recogniser.py``). One row per check: the figure, the target, PASS/FAIL; ``--json``
also keeps every per-face number. Greyscale UTKFace photos are skipped; the chips are
edge-padded by 30 % and measured padded; cfee photos are used as they are. torch runs
on one thread unless ``--threads`` says otherwise (the work is one face at a time).
Helpers: ``quality_subjects`` (the faces), ``quality_measures`` (geometry, masks,
colour), ``quality_checks`` (the rows), ``quality_strip`` (the strip).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from gan_anim import aus as au  # noqa: E402
from gan_anim.config import InferenceConfig  # noqa: E402
from gan_anim.estimation.geometry import estimate_from_landmarks  # noqa: E402
from gan_anim.faces.detect import detect_faces, landmarks  # noqa: E402
from gan_anim.faces.identity import face_descriptor  # noqa: E402
from gan_anim.media.images import read_image  # noqa: E402
from gan_anim.pipeline.photo import Animator  # noqa: E402
from gan_anim.pipeline.video import animate_video  # noqa: E402
from gan_anim.render.weights import find_weights  # noqa: E402
from quality_checks import (NEARBY, PRESET_EDITS, RAMP_TARGETS, BROW_AUS, MOUTH_AUS,  # noqa: E402
                            build_expression_table, build_table, check_redetection, example_lines,
                            markdown)
from quality_measures import (bad_colour_share, box_view, brow_mask, dark_paint_share,  # noqa: E402
                              eye_aspect, geometry_change, gif_roundtrip, grey, grey_change,
                              inner_mouth_ratio, laplacian_var, lips_mask, mouth_mask, near_black_lips,
                              outside_change, redetect)
from quality_strip import strip_subjects, write_strip  # noqa: E402
from quality_subjects import (Subject, cfee_subjects, example_subjects, held_out_photos, pad,  # noqa: E402
                              utk_subjects)
from recogniser import CLASSES, Recogniser, recall_markdown  # noqa: E402
from shipped_split import SHARED  # noqa: E402

REPORT_AUS = ("AU01", "AU02", "AU04", "AU05", "AU06", "AU12", "AU15", "AU25", "AU26")
GRID_LEVEL = 5.0
# Every face gets these edits (the recogniser reads each); "blink" measures the eyes.
EXPRESSION_TARGETS = ("happy", "surprise", "sad", "anger", "disgust", "fear", "neutral", "blink")
DARK_PAINT_TARGETS = ("surprise", "happy")
DARK_STEP = 40.0     # grey levels: darker than the same edit warped only = dark paint
LIPS_GROW = 0.05     # eye distances around the lips' hull where paint may darken
SKULL_GROW = 1.0     # the face box grown by its own size (half on each side) for "still skull";
                     # both skull rows count only rows above the box's bottom: a dropped jaw
                     # may push the neck (the exception "below the chin")
NEAR_GROW = 0.5     # info: a quarter of the box on each side, above the chin (the hair and temples)
TALK_CLIP = SHARED / "mead_clips" / "M030_front_neutral_level1_001.mp4"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


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


# ================================================================ per-face measurements

@dataclass
class Tools:
    """What measures an edit: the animator, the same settings warping only (the paint's
    reference), the expression recogniser; ``full`` subjects also get colour, sharpness, identity."""

    anim: Animator
    warp: Animator
    recogniser: Recogniser


def measure_preset(tools: Tools, subj: Subject, target: str, full: bool, codec=None) -> dict:
    """One preset edit: geometry against the input, what the recogniser reads, the surprise
    mouth, dark paint outside the lips, and (close-ups) the change outside the face."""
    out = edit(tools.anim, subj, target)
    lm_out, ok = redetect(out, subj.face)
    lm_in = subj.face.landmarks
    probs = tools.recogniser.probabilities(out, lm_out)
    rec = {"redetected": ok, **geometry_change(lm_out, lm_in), "inner_ratio": inner_mouth_ratio(lm_out),
           "read": CLASSES[int(np.argmax(probs))], "probabilities": np.round(probs, 3).tolist()}
    if target == "blink":
        rec["eye_ratio"] = eye_aspect(lm_out) / max(eye_aspect(lm_in), 1e-6)
    if target == "happy":
        rec["black_lips"] = near_black_lips(out, lm_out, subj.box)
    if target in DARK_PAINT_TARGETS:
        lips = lips_mask(out.shape, [lm_in, lm_out], LIPS_GROW * subj.eye)
        rec["dark_paint"] = dark_paint_share(out, edit(tools.warp, subj, target), lips, subj.box, DARK_STEP)
    if codec is not None:
        gif = gif_roundtrip(out)
        rec["skull"] = outside_change(subj.image, gif, subj.box, SKULL_GROW, True)[0] - codec[0]
        rec["skull_near"] = outside_change(subj.image, gif, subj.box, NEAR_GROW, True)[0] - codec[1]
    if full and target in PRESET_EDITS:
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


def measure_subject(tools: Tools, subj: Subject, ramps: bool) -> dict:
    """Every edit of one face. UTKFace and examples/ faces ("full") also get the zero edit,
    GIF colour, the grid and the ramps; cfee faces only the expression edits."""
    anim, full = tools.anim, subj.source != "cfee"
    rec = {"name": subj.name, "set": subj.source, "start": subj.start, "eye_distance": subj.eye,
           "au12": subj.au12, "closeup": subj.closeup,
           "own": {n: round(float(v), 3) for n, v in zip(au.AU_NAMES, subj.own)}, "edits": {}}
    zero = edit(anim, subj, None)
    codec = None
    if subj.closeup:
        gif = gif_roundtrip(zero)
        (far, rec["outside_share"]), (near, rec["near_share"]) = (
            outside_change(subj.image, gif, subj.box, SKULL_GROW, True),
            outside_change(subj.image, gif, subj.box, NEAR_GROW, True))
        codec = rec["codec_outside"] = (far, near)
    for target in EXPRESSION_TARGETS:
        rec["edits"][target] = measure_preset(tools, subj, target, full, codec)
    if not full:
        return rec
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


def openface_track(path: Path, au12: np.ndarray) -> None:
    """An OpenFace-format CSV: AU12 per frame from ``au12``, every other AU 0."""
    with open(path, "w", newline="") as fh:
        rows = csv.writer(fh)
        rows.writerow(["frame", "success"] + [f"{n}_r" for n in au.AU_NAMES])
        for k, v in enumerate(au12):
            rows.writerow([k + 1, 1] + [f"{v:.3f}" if n == "AU12" else "0" for n in au.AU_NAMES])


def last_frame(clip: Path) -> tuple[np.ndarray, int]:
    """The last frame of ``clip`` (RGB) and the number of frames."""
    gen = imageio_ffmpeg.read_frames(str(clip))
    w, h = next(gen)["size"]
    n, last = 0, None
    for buf in gen:
        n, last = n + 1, buf
    return np.frombuffer(last, np.uint8).reshape(h, w, 3).copy(), n


def measure_talking(anim: Animator, clip: Path = TALK_CLIP) -> dict:
    """A real neutral talking clip driven by an OpenFace track ramping AU12 0 -> 4 (other AUs 0):
    re-detected mouth width on the last output frame / on the last input frame; and, for
    comparison, the photo path's ``--to AU12=4`` on that input frame."""
    last_in, n = last_frame(clip)
    face = max(detect_faces(last_in), key=lambda f: f.area)
    with tempfile.TemporaryDirectory() as tmp:
        track, out = Path(tmp) / "ramp.csv", Path(tmp) / "frames"
        openface_track(track, np.linspace(0, 4, n))
        res = animate_video(clip, out, aus=str(track), animator=anim, quiet=True)
        last_out = read_image(sorted(out.iterdir())[-1])
    width = lambda lm: float(np.hypot(*(lm[54] - lm[48])))  # noqa: E731
    lm_out, ok = redetect(last_out, face)
    photo = render_one(anim, last_in, anim.face_jobs(last_in, [face], "AU12=4", None)[0])
    lm_photo, ok_photo = redetect(photo, face)
    return {"clip": clip.name, "frames": res.frames, "mouth_ratio": width(lm_out) / width(face.landmarks),
            "photo_ratio": width(lm_photo) / width(face.landmarks), "redetected": ok and ok_photo}


# ================================================================ the table

def load_subjects(args) -> tuple[list[Subject], dict]:
    """examples/ + held-out colour UTKFace + cfee held-out starts, and their counts."""
    n = 20 if args.quick else (args.faces or 100)
    per_start = args.cfee if args.cfee is not None else (5 if args.quick else None)
    log(f"loading {n} colour UTKFace test-split faces, examples/ and cfee held-out starts ...")
    utk, skipped = utk_subjects(Path(args.data), n, args.seed)
    cfee, cfee_lost = cfee_subjects(per_start)
    subjects = example_subjects() + utk + cfee
    counts = {"utkface": len(utk), "examples": len(subjects) - len(utk) - len(cfee), "cfee": len(cfee),
              "cfee_per_start": per_start, "cfee_no_face": cfee_lost, "skipped": skipped,
              "closeups": sum(s.closeup for s in subjects)}
    log(f"{len(utk)} UTKFace faces ({skipped['grey']} grey and {skipped['no face']} faceless photos "
        f"skipped), {counts['examples']} example face(s), {len(cfee)} cfee starts ({cfee_lost} without a face)")
    return subjects, counts


def make_tools(args) -> Tools:
    config = InferenceConfig(weights=args.weights, device=args.device)
    return Tools(Animator(config=config), Animator(config=replace(config, painted_aus=())), Recogniser.load())


def table_report(args) -> None:
    t0 = time.perf_counter()
    tools = make_tools(args)
    recall = tools.recogniser.recall
    subjects, counts = load_subjects(args)
    ramp_faces = (5 if args.quick else len(subjects)) if args.ramps is None else args.ramps
    records = []
    for k, subj in enumerate(subjects):
        records.append(measure_subject(tools, subj, ramps=k < ramp_faces))
        if (k + 1) % 10 == 0 or k + 1 == len(subjects):
            log(f"  measured {k + 1}/{len(subjects)} faces ({time.perf_counter() - t0:.0f} s)")
    video = talk = None
    if args.video:
        log("video: AU12 ramp clips ...")
        video = measure_video(tools.anim, subjects[0])
        talk = measure_talking(tools.anim)
    wild = [r for r in records if r["set"] != "cfee"]
    speed = measure_speed(tools.anim, [s for s in subjects if s.source != "cfee"])
    surprise_recall = recall["cfee held-out people"]["surprise"][0]
    rows = (build_expression_table(records, talk, surprise_recall) + build_table(wild, video, speed)
            + check_redetection(records))
    seconds = time.perf_counter() - t0
    weights = str(find_weights(args.weights))
    print_report(args, counts, weights, seconds, rows, recall, wild)
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"weights": weights, "mode": mode(args), "faces": counts, "seconds": seconds, "checks": rows,
             "recogniser": {"key": tools.recogniser.key, "recall": recall}, "video": video, "talking": talk,
             "speed": speed, "per_face": records}, indent=1, default=float))


def mode(args) -> str:
    """"quick", "full" (every default count) or "reduced" (counts set by hand)."""
    if args.quick:
        return "quick"
    full = (args.faces or 100) >= 100 and args.cfee is None and args.ramps is None and args.video
    return "full" if full else "reduced"


def print_report(args, counts, weights, seconds, rows, recall, wild) -> None:
    per = counts["cfee_per_start"]
    print(f"mode: {mode(args)} ({counts['utkface']} colour UTKFace test-split faces, {counts['examples']} "
          f"example face(s), {counts['cfee']} cfee held-out starts ({'all' if per is None else per} per "
          f"category), {counts['closeups']} close-ups); weights {weights}; {seconds:.0f} s\n")
    print(markdown(rows))
    if not args.video:
        print("\n(video checks skipped: pass --video)")
    print("\nexpression recogniser (benchmarks/recogniser.py), held-out recall per class:\n")
    print(recall_markdown(recall))
    print("\nexamples/:\n" + "\n".join(example_lines(wild)))


def strip_report(args) -> None:
    anim = Animator(args.weights, device=args.device)
    subjects = [] if args.strip_rows == "public" else strip_subjects()
    if args.strip_rows in ("all", "public"):
        utk, _ = utk_subjects(Path(args.data), 3, args.seed)
        subjects += example_subjects() + utk
    write_strip(lambda subj, t: edit(anim, subj, t), subjects, Path(args.strip))


# ================================================================ CLI

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT / "data" / "shipped"),
                    help="a `gan-anim prepare` folder whose test split is held out (absent: the shipped "
                         "split rebuilt by benchmarks/shipped_split.py)")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--faces", type=int, default=None, help="held-out UTKFace faces (default 60; 100 with --table)")
    ap.add_argument("--cfee", type=int, default=None,
                    help="--table: cfee held-out photos per starting expression (default all; 5 with --quick)")
    ap.add_argument("--targets", default="happy,surprise,sad,anger", help="AU report only")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    ap.add_argument("--table", action="store_true", help="the acceptance table of believable expressions")
    ap.add_argument("--quick", action="store_true", help="--table on 20 UTKFace faces and 5 cfee photos per start")
    ap.add_argument("--ramps", type=int, default=None,
                    help="faces that get the 30-frame ramps (default all; 5 with --quick)")
    ap.add_argument("--video", action="store_true", help="--table: also the AU12-track video checks")
    ap.add_argument("--strip", default=None,
                    help="write a JPEG: 7 cfee held-out starts x 6 presets (alone, or beside --table)")
    ap.add_argument("--strip-rows", choices=("cfee", "all", "public"), default="cfee",
                    help="--strip rows: the 7 cfee starts, also examples/ and 3 UTKFace faces (all), "
                         "or only those (public: the README's strip; cfee photos may not be redistributed)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default with --table: 1; the work is one face at a time, and "
                         "two threads on a busy 2-core CPU are several times slower)")
    args = ap.parse_args()
    if args.threads or args.table or args.quick:
        torch.set_num_threads(args.threads or 1)
    if args.strip:
        strip_report(args)
    if args.table or args.quick:
        table_report(args)
    elif not args.strip:
        au_report(args)


if __name__ == "__main__":
    main()
