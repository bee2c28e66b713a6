"""Accuracy and speed of ``gan-anim aus``: per-AU r and MAE against human FACS codes on the
cfee people held out from training, then faces/s on photos (incl. 1080p) and frames/s on a
video, per stage.

    python benchmarks/bench_aus.py            # needs ../shared/data (or GAN_ANIM_SHARED)
    python benchmarks/bench_aus.py --accuracy # the accuracy table only

Accuracy: the shipped estimator (``estimation.appearance``: regressor, geometry where it
reads an AU better) and the landmark geometry alone (``estimation.geometry``) on the same
photos of the people in ``benchmarks/splits/cfee_heldout_people.txt`` (landmarks from the
cascade of ``gan-anim aus``, cached in data/cfee_landmarks.npz by ``tools/train_aus.py``).

Stages: decode (media.read_image_scaled: large JPEGs decoded at reduced size / ffmpeg),
detect (one dlib HOG pass on a copy of at most InferenceConfig.detect_max_side px; the end-to-end
line runs the whole detection cascade, faces.detect_faces), landmarks (68 points at full resolution), estimate
(``estimation.photo.estimate_face_aus``: features + regression + geometry). Baseline, measured in the same run: detection at full
resolution with upsample=1 (what a plain dlib script does), and the full-size decode
with detection at InferenceConfig.detect_max_side.

Small-face pass (``bench_small_faces``; ``--small-faces``: that section alone): ``gan-anim aus``
end to end on 1080p one-face photos with ``small_faces="on"`` (the whole photo scanned for
small faces), "auto before" (the auto cascade of commit BEFORE, loaded from git) and "auto"
of this tree, in one run (the two autos alternating; median and best round, CPU time, boxes
against "on"), and the faces each finds on 1080p group photos; OpenCV on its default threads
and OMP_NUM_THREADS as set, as the product runs. Photos, all
from real faces: 8 facial_expressions photos upscaled to 648 px high on their own blurred,
stretched copy (``make_1080p``); examples/astronaut.jpg zoomed 1-2x on the face, cropped to
1080 px high and edge-padded to 1920 (``astronaut_1080p``, a hard case: an orange suit and a
flag are skin-coloured detail); groups: that astronaut photo with four UTKFace chips pasted,
eyes 14-90 px apart, one cut by the right border (``group_1080p``).
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
from gan_anim.estimation import appearance  # noqa: E402
from gan_anim.estimation.features import face_features  # noqa: E402
from gan_anim.estimation.geometry import estimate_from_landmarks  # noqa: E402
from gan_anim.estimation.photo import AUS_DECODE_SIDE, estimate_aus_file, estimate_face_aus  # noqa: E402
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
    _, stages["estimate"] = timed(estimate_face_aus, img, np.array(lms).reshape(-1, 68, 2)) if lms else (None, 0.0)
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
            _, dt = timed(estimate_face_aus, frame, lm)
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


def train_aus_tool():
    """tools/train_aus.py as a module (its cfee loading and table)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_aus", ROOT / "tools" / "train_aus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def accuracy() -> None:
    """Per-AU r and MAE of the shipped estimator and of the geometry on held-out cfee people."""
    tool = train_aus_tool()
    data = tool.load_cfee()
    lm, found = tool.cfee_landmarks(data)
    held = np.isin(data["identity"], list(tool.heldout_people()))
    test = np.where(found & held)[0]
    model = appearance.load()
    print(f"Accuracy on cfee people held out from training: {len(test)} photos of "
          f"{len(np.unique(data['identity'][test]))} people (faces found in "
          f"{len(test)}/{int(held.sum())}); estimator file: {appearance.weights_path().name}, "
          f"{appearance.weights_path().stat().st_size / 1e6:.2f} MB, "
          f"AUs from the geometry: {', '.join(n for n, u in zip(tool.AU_NAMES, model['use_model']) if not u)}")
    x = tool.feature_rows(data, lm, test, flip=False)
    geo = estimate_from_landmarks(lm[test])
    est = appearance.combine(model, x, geo)
    tool.print_table(tool.held_out_table(est, geo, np.nan_to_num(data["labels"][test])))


def per_face_costs(image: np.ndarray, lm: np.ndarray, n: int = 200) -> None:
    """ms per face of each part of the estimate, on one face."""
    model = appearance.load()
    feats = face_features(image, lm)
    parts = {"features (crop + HOG)": lambda: face_features(image, lm),
             "regression": lambda: feats @ model["w"] + model["b"],
             "geometry": lambda: estimate_from_landmarks(lm),
             "estimate_face_aus (all)": lambda: estimate_face_aus(image, lm)}
    line = []
    for name, fn in parts.items():
        fn()
        t = time.perf_counter()
        for _ in range(n):
            fn()
        line.append(f"{name} {1000 * (time.perf_counter() - t) / n:.2f} ms")
    print("per face: " + "  ".join(line))


# --- The small-face pass: the cascade of today ("on") against "auto", in the same run ---

def astronaut_1080p(zoom: float, dx: int) -> np.ndarray:
    """examples/astronaut.jpg (512 px, a real studio photo: flag, shuttle, an orange suit with
    badges) zoomed on its face by ``zoom``, cropped to 1080 px high (shifted ``dx`` px) and
    edge-padded to 1920x1080: a one-face 1080p photo with real texture around the face."""
    img = read_image(ROOT / "examples" / "astronaut.jpg")
    side = int(round(512 / zoom))
    x0 = int(np.clip(225 - side // 2 + dx, 0, 512 - side))
    img = cv2.resize(img[:side, x0:x0 + side], (1080, 1080), interpolation=cv2.INTER_CUBIC)
    return cv2.copyMakeBorder(img, 0, 0, 420, 420, cv2.BORDER_REPLICATE)


def source_eyes(image: np.ndarray) -> tuple[np.ndarray, float]:
    face = faces.detect_faces(image, upsample=1, small_faces="off")[0]
    return (face.landmarks[36:42].mean(0) + face.landmarks[42:48].mean(0)) / 2, face.eye_distance


def group_1080p(seed: int, chips: list[Path]) -> tuple[np.ndarray, list]:
    """A 1080p astronaut photo with four UTKFace chips pasted at random places, their eyes
    14-90 px apart (one at the right border, cut by it): (image, [(eye x, y, eye distance)])."""
    rng = np.random.default_rng(seed)
    canvas = astronaut_1080p(1.0, int(rng.integers(-40, 40)))
    truth = [(*source_eyes(canvas)[0], source_eyes(canvas)[1])]
    slots = [(40, 60), (1560, 80), (60, 700), (1800, 600)]     # clear of the astronaut's face
    for k, (x, y) in enumerate(slots):
        src = read_image(chips[(seed * 4 + k) % len(chips)])
        mid, d = source_eyes(src)
        eye = float(rng.uniform(14, 90)) if k < 3 else float(rng.uniform(30, 60))
        f = eye / d
        photo = cv2.resize(src, None, fx=f, fy=f, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC)
        ph, pw = photo.shape[:2]
        x1, y1 = min(1920, x + pw), min(1080, y + ph)
        canvas[y:y1, x:x1] = photo[:y1 - y, :x1 - x]
        truth.append((x + mid[0] * f, y + mid[1] * f, eye))
    return canvas, truth


def recall(found, truth) -> int:
    """How many true faces have a found face whose eye midpoint is within 0.25 eye distances."""
    eyes = [(f.landmarks[36:42].mean(0) + f.landmarks[42:48].mean(0)) / 2 for f in found]
    return sum(any(np.hypot(*(e - (x, y))) < 0.25 * d for e in eyes) for x, y, d in truth)


BEFORE = "7d01801"          # the last commit with the previous auto cascade
CPU_SECONDS: dict = {}      # CPU seconds of every aus_run, by mode (all threads)


def cascade_before():
    """``faces.detect`` as of BEFORE (the cascade of ``small_faces="auto"`` before the border
    gate and the run-based regions), loaded from git: the baseline of ``bench_small_faces``.
    None outside a git checkout."""
    import importlib.util
    import subprocess

    try:
        src = subprocess.run(["git", "-C", str(ROOT), "show", f"{BEFORE}:gan_anim/faces/detect.py"],
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader("gan_anim.faces.detect_before", None))
    module.__package__ = "gan_anim.faces"
    sys.modules[module.__name__] = module      # dataclasses look their module up there
    exec(compile(src, "detect_before.py", "exec"), module.__dict__)
    return module


def aus_run(photos: list[Path], mode: str, cascades: dict) -> tuple[float, list]:
    """(seconds, results) of ``gan-anim aus`` (``estimate_aus_file``) on ``photos`` with
    cascade ``mode``: "on" and "auto" of this tree, "auto before" (``cascade_before``)."""
    small = "on" if mode == "on" else "auto"
    saved = faces.detect_faces
    faces.detect_faces = cascades[mode]     # estimation.photo imports it at call time
    try:
        t, cpu = time.perf_counter(), time.process_time()
        found = [estimate_aus_file(p, small_faces=small) for p in photos]
        CPU_SECONDS[mode] = CPU_SECONDS.get(mode, 0.0) + time.process_time() - cpu
        return time.perf_counter() - t, found
    finally:
        faces.detect_faces = saved


def box_gap(a: list, b: list) -> float:
    """Largest coordinate difference (px) between the boxes of two runs, face by face."""
    return max((max(abs(u - v) for u, v in zip(x["box"], y["box"]))
                for fa, fb in zip(a, b) for x, y in zip(fa, fb)), default=0.0)


def au_gap(a: list, b: list) -> str:
    """Largest and mean AU difference (0..5) between two runs, face by face."""
    d = [abs(x["aus"][k] - y["aus"][k]) for fa, fb in zip(a, b) for x, y in zip(fa, fb) for k in x["aus"]]
    return f"{max(d, default=0.0):.2f} / {np.mean(d) if d else 0.0:.3f}"


def cascade_stages(photos: list[Path], reps: int = 3) -> None:
    """CPU-ms per photo of each stage of ``gan-anim aus`` with small_faces="auto" on a plain
    one-face 1080p photo, one after another on one thread (OpenCV's too; the product runs the
    candidate map beside the HOG pass), with the edge-padded pass it skips and the first pass
    of "on"."""
    from gan_anim.estimation.photo import decode_side

    totals: dict = {}
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)

    def stage(name, fn, *args):
        t = time.process_time()
        out = fn(*args)
        totals[name] = totals.get(name, 0.0) + time.process_time() - t
        return out

    for rep in range(reps + 1):       # the first round warms the models
        if rep == 1:
            totals.clear()
        for p in photos:
            img, _ = stage("decode", lambda: read_image_scaled(p, decode_side(p)))
            s0 = faces.pyramid_scale(min(1.0, InferenceConfig.detect_max_side / max(img.shape[:2])), max(img.shape[:2]))
            small = stage(f"shrink to {round(s0 * img.shape[1])} px", faces._resized, img, s0)
            first = stage("HOG first pass", faces._run, small, "hog")
            cand = stage("candidate map", faces.candidate_map, img, faces.MIN_EYE_DISTANCE)
            found = [(tuple(v / s0 for v in b), sc) for b, sc in first]
            stage("border gate + regions", lambda: (faces.border_sides(*cand, found, 3.2 * 26 / s0),
                                                    faces.small_face_regions(img.shape, *cand, found, 26 / s0)))
            lm = stage("landmarks", faces.landmarks, img, found[0][0])
            stage("estimate (crop, HOG, regression)", estimate_face_aus, img, lm[None])
            stage("(skipped: edge-padded pass)", faces._run, faces.pad_image(small, faces.BORDER_PAD)[0], "hog")
            stage("(on: first pass at 1280 px)", faces._run,
                  faces._resized(img, InferenceConfig.detect_max_side / max(img.shape[:2])), "hog")
    cv2.setNumThreads(threads)
    n = reps * len(photos)
    print("auto stages, CPU-ms per 1080p photo on one thread: " +
          ", ".join(f"{k} {1000 * v / n:.1f}" for k, v in totals.items()))


def bench_small_faces(tmp: Path, rounds: int = 5) -> None:
    """faces/s of ``gan-anim aus`` (estimate_aus_file, end to end) on 1080p one-face photos,
    and faces found on 1080p group photos, with ``small_faces`` "on" (the whole photo
    scanned for small faces), "auto before" (``cascade_before``) and "auto" of this tree, in
    one run: "on" once, the two autos alternating ``rounds`` times (median and best round)."""
    before = cascade_before()
    cascades = {"on": faces.detect_faces}
    if before is not None:
        cascades["auto before"] = before.detect_faces
    else:
        print("(not a git checkout: the auto-before baseline is left out)")
    cascades["auto"] = faces.detect_faces
    cv2.setNumThreads(-1)    # as the product runs: OpenCV's default threads
    print(f"small-face section: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
          f"OpenCV {cv2.getNumThreads()} threads, load average {os.getloadavg()[0]:.1f} at start")
    astro, fe_photos = [], []
    for i, (zoom, dx) in enumerate([(1.0, 0), (1.3, -30), (1.6, 20), (2.0, 0)]):
        astro.append(tmp / f"astro{i}.jpg")
        Image.fromarray(astronaut_1080p(zoom, dx)).save(astro[-1], quality=92)
    for i, p in enumerate(sorted((SHARED / "facial_expressions" / "images").glob("*.jpg"))[::400][:8]):
        fe_photos.append(tmp / f"fe{i}.jpg")
        make_1080p(p, fe_photos[-1], i)
    cascade_stages(fe_photos)
    for label, photos, n_rounds in (("facial_expressions on own blur", fe_photos, rounds),
                                    ("astronaut zoomed", astro, max(1, rounds // 2))):
        times, found = {}, {}
        for mode in cascades:
            aus_run(photos[:1], mode, cascades)    # warm the models
        CPU_SECONDS.clear()
        for r in range(n_rounds):
            for mode in cascades:
                if mode == "on" and r:
                    continue
                secs, found[mode] = aus_run(photos, mode, cascades)
                times.setdefault(mode, []).append(secs)
        cpu = {m: CPU_SECONDS[m] / len(t) / len(photos) for m, t in times.items()}   # per photo
        for mode, secs in times.items():
            n = sum(map(len, found[mode]))
            med, best = float(np.median(secs)), min(secs)
            print(f"{'1080p ' + label + ', ' + mode:<50} {len(photos)} photos, {n} faces, "
                  f"{n / med:6.1f} faces/s median, {n / best:6.1f} best of {len(secs)} "
                  f"({1000 * med / len(photos):.0f} ms/photo, {1000 * cpu[mode]:.0f} CPU-ms); boxes within "
                  f"{box_gap(found[mode], found['on']):.0f} px of on, AUs max / mean "
                  f"{au_gap(found[mode], found['on'])} from on")
    chips = sorted((SHARED / "utkface_crop_part1" / "images").glob("*.jpg"))[::701]
    scenes = [group_1080p(seed, chips) for seed in range(4)]
    for mode, detect in cascades.items():
        t = time.perf_counter()
        hits = [recall(detect(img, small_faces="on" if mode == "on" else "auto"), truth) for img, truth in scenes]
        secs = time.perf_counter() - t
        print(f"{'1080p group photos, ' + mode:<50} {len(scenes)} photos, found "
              f"{sum(hits)} of {sum(len(t) for _, t in scenes)} faces {hits}, {1000 * secs / len(scenes):.0f} ms/photo")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    cv2.setNumThreads(1)


def main() -> int:
    if not SHARED.is_dir():
        print(f"shared data not found at {SHARED}; set GAN_ANIM_SHARED", file=sys.stderr)
        return 1
    cv2.setNumThreads(1)
    if "--small-faces" in sys.argv[1:]:
        with tempfile.TemporaryDirectory() as tmp:
            bench_small_faces(Path(tmp))
        return 0
    accuracy()
    if "--accuracy" in sys.argv[1:]:
        return 0
    print()
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
        astronaut = read_image(ex[0])
        per_face_costs(astronaut, faces.detect_faces(astronaut)[0].landmarks)
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
        bench_small_faces(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
