"""End to end on the device: `animate` of a 12 MP photo, `video` at 1080p, a folder of one-face
photos, each with the composite in torch on the device (``composite="torch"``, the default on
CUDA) against the CPU composite (``composite="numpy"``, the naive baseline) in the same run,
the generator on the device in both.

    PYTHONPATH=. python benchmarks/bench_gpu_pipeline.py --device cuda --json pipe.json
    PYTHONPATH=. python benchmarks/bench_gpu_pipeline.py --device cpu --small   # rehearsal, ~1 min
    PYTHONPATH=. python benchmarks/bench_gpu_pipeline.py --write-faces gpu-pack/bench-faces
    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/bench_gpu_pipeline.py --device cpu --composite-only

``benchmarks/bench_gpu.py`` (the GPU kit's bench stage) calls ``pipeline_rows`` after its own
rows, and the composite alone in milliseconds per frame. The inputs are made from ``examples/astronaut.jpg``: the photo scaled to 4000x3000
(12 MP), and 1080p frames of it under a slow camera pan. The photo folder is
``--faces-dir`` (default ``gpu-pack/bench-faces``, which ``--write-faces`` fills with 100
UTKFace crops of the shared data and their faces, else the shared folder itself).

What is not measured where it cannot run, and says so in each row's ``notes``:
* **detection and landmarks need dlib**, which the GPU machine does not have: there the
  faces come from detection run beforehand on the CPU machine (the example's in
  ``benchmarks/astronaut_faces.json``, scaled with the photo; the folder's in its
  ``faces.json``), and the video's faces are those landmarks moved with the camera, in
  place of tracking; the rows then time everything after detection;
* **encoding needs ffmpeg** (the imageio-ffmpeg package): without it the MP4 rows convert
  each frame to YUV 4:2:0 (the writer's own step) and drop it; the folder writes GIFs,
  which need no ffmpeg.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np

EXAMPLE = ROOT / "examples" / "astronaut.jpg"
EXAMPLE_FACES = ROOT / "benchmarks" / "astronaut_faces.json"
FACES_DIR = ROOT / "gpu-pack" / "bench-faces"
SHARED = Path(os.environ.get("GAN_ANIM_SHARED", ROOT.parent / "shared")) / "data"
TARGETS = {"animate_12mp_s": 1.5, "video_1080p_fps": 60.0, "photos_per_s": 20.0}
KINDS = ("torch", "numpy")   # the composite on the device; the CPU composite (baseline)
WITHOUT: set = set()         # "dlib", "ffmpeg": taken as absent (--without, the rehearsal of the GPU machine)


def have_dlib() -> bool:
    if "dlib" in WITHOUT:
        return False
    try:
        import dlib  # noqa: F401
    except ImportError:
        return False
    return True


def have_ffmpeg() -> bool:
    if "ffmpeg" in WITHOUT:
        return False
    try:
        import imageio_ffmpeg

        return bool(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError):
        return False


def _faces(items):
    from gan_anim.faces.detect import Face

    return [Face(tuple(f["box"]), np.asarray(f["landmarks"], np.float64), f.get("score", 0.0)) for f in items]


def example_faces(scale: float, dx: float = 0.0, dy: float = 0.0):
    """The example's faces (found with dlib beforehand) in the example scaled by ``scale``
    (cv2.resize's pixel centres) and moved by (dx, dy)."""
    from gan_anim.faces.detect import Face

    out = []
    for f in _faces(json.loads(EXAMPLE_FACES.read_text())["faces"]):
        lm = (f.landmarks + 0.5) * scale - 0.5 + (dx, dy)
        box = tuple(round(v * scale + o) for v, o in zip(f.box, (dx, dy, dx, dy)))
        out.append(Face(box, lm, f.score))
    return out


# ------------------------------------------------------------------ inputs

def photo_12mp(folder: Path, side: int = 3000, width: int = 4000):
    """(path, faces or None): the example scaled to side x side and widened to
    ``width`` (edges repeated), as a quality-95 JPEG; faces None where dlib can find them."""
    import cv2

    img = cv2.imread(str(EXAMPLE))
    big = cv2.resize(img, (side, side), interpolation=cv2.INTER_CUBIC)
    pad = (width - side) // 2
    big = cv2.copyMakeBorder(big, 0, 0, pad, width - side - pad, cv2.BORDER_REPLICATE)
    path = folder / f"photo-{width}x{side}.jpg"
    cv2.imwrite(str(path), big, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return path, None if have_dlib() else example_faces(side / img.shape[0], pad)


def video_frames(n: int, size=(1920, 1080)):
    """``n`` RGB frames (H,W,3) of the example under a slow horizontal pan, and the pan (px)."""
    import cv2

    w, h = size
    img = cv2.cvtColor(cv2.imread(str(EXAMPLE)), cv2.COLOR_BGR2RGB)
    face = cv2.resize(img, (h, h), interpolation=cv2.INTER_CUBIC)
    pad = (w - h) // 2
    canvas = cv2.copyMakeBorder(face, 0, 0, pad + 40, w - h - pad + 40, cv2.BORDER_REPLICATE)
    shifts = [round(40 * np.sin(2 * np.pi * k / max(n, 2))) for k in range(n)]
    frames = [np.ascontiguousarray(canvas[:, 40 + s:40 + s + w]) for s in shifts]
    return frames, [pad - s for s in shifts], h / img.shape[0]


def photo_folder(faces_dir: Path | None, count: int):
    """(the photos, {name: faces} or None where dlib finds them): ``faces_dir`` with its
    faces.json, else the shared UTKFace crops (dlib needed); ([], None) when neither is there."""
    if faces_dir is not None and (faces_dir / "faces.json").is_file():
        known = json.loads((faces_dir / "faces.json").read_text())
        photos = sorted(faces_dir / n for n in known)[:count]
        return photos, {p.name: _faces(known[p.name]) for p in photos}
    shared = SHARED / "utkface_crop_part1" / "images"
    if have_dlib() and shared.is_dir():
        return sorted(shared.glob("1*.jpg"))[:count], None
    return [], None


def write_faces(out: Path, count: int = 100) -> int:
    """Copy ``count`` one-face UTKFace crops of the shared data into ``out`` with their
    faces (dlib, here) in ``out/faces.json``, for the GPU machine (no dlib there)."""
    from gan_anim.faces.detect import detect_faces
    from gan_anim.media.images import read_image

    out.mkdir(parents=True, exist_ok=True)
    known = {}
    for p in sorted((SHARED / "utkface_crop_part1" / "images").glob("1*.jpg")):
        faces = detect_faces(read_image(p))
        if len(faces) != 1:
            continue
        shutil.copy(p, out / p.name)
        known[p.name] = [{"box": [int(v) for v in f.box], "score": round(float(f.score), 4),
                          "landmarks": np.round(f.landmarks, 3).tolist()} for f in faces]
        if len(known) == count:
            break
    (out / "faces.json").write_text(json.dumps(known))
    return len(known)


# ------------------------------------------------------------------ the rows

def _animator(device: str, kind: str):
    from gan_anim.config import InferenceConfig
    from gan_anim.pipeline.photo import Animator

    return Animator(config=InferenceConfig(device=device, composite=kind))


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def _null_encode(frames) -> int:
    """The writer's conversion to YUV 4:2:0 without ffmpeg: frames converted, then dropped."""
    from gan_anim.media.writer import to_i420

    buf, n = None, 0
    for f in frames:
        buf = to_i420(f, buf)
        n += 1
    return n


def animate_row(animator, device: str, photo: Path, faces, frames: int, out: Path) -> dict:
    """`animate` of ``photo`` to a ``frames``-frame MP4: seconds end to end, per stage."""
    from gan_anim import aus as au

    t = time.perf_counter()
    if have_ffmpeg():
        res = animator.animate(photo, out / "a.mp4", to="happy", frames=frames, faces=faces)
        _sync(device)
        return _timed(time.perf_counter() - t, res.timings, frames)
    from gan_anim.media.images import read_image

    image = read_image(photo)
    jobs = animator.face_jobs(image, faces, "happy", None)
    timings = {}
    _null_encode(animator.render(image, jobs, au.interpolation_weights(frames, "linear", False), timings))
    _sync(device)
    return _timed(time.perf_counter() - t, timings, frames)


def _timed(seconds: float, timings: dict, frames: int) -> dict:
    """Wall seconds, seconds per stage, and the composite's milliseconds per frame."""
    return {"seconds": round(seconds, 3), "stages_s": {k: round(v, 3) for k, v in timings.items()},
            "blend_ms_per_frame": round(1e3 * timings.get("blend", 0.0) / max(frames, 1), 2)}


def video_row(animator, device: str, n: int, out: Path) -> dict:
    """`video` of ``n`` 1080p frames (tracking, or the known faces moved with the pan),
    target happy: frames/s end to end."""
    from gan_anim.overlap import prefetch
    from gan_anim.render.renderer import Renderer

    frames, offsets, scale = video_frames(n)
    if have_dlib() and have_ffmpeg():
        from gan_anim.media.writer import FrameWriter
        from gan_anim.pipeline.video import animate_video

        clip = out / "clip.mp4"
        with FrameWriter(clip, fps=25, crf=12) as w:
            for f in frames:
                w.write(f)
        t = time.perf_counter()
        res = animate_video(clip, out / "v.mp4", aus="happy", animator=animator)
        _sync(device)
        sec = time.perf_counter() - t
        return {"frames": res.frames, "frames_per_s": round(res.frames / sec, 1), **_timed(sec, res.timings, n)}

    from gan_anim.render.renderer import FrameRender

    def items():  # the CPU side: the known faces moved with the pan, aligned, own AUs estimated
        for f, dx in zip(frames, offsets):
            jobs = animator.face_jobs(f, example_faces(scale, dx), "happy", None)
            yield FrameRender(f, [j.at(j.goal) for j in jobs])

    timings = {}
    t = time.perf_counter()
    rendered = Renderer(animator.model, timings, buffers=2).render(prefetch(items(), 4))
    if have_ffmpeg():
        from gan_anim.media.writer import FrameWriter

        with FrameWriter(out / "v.mp4", fps=25) as w:
            for f in rendered:
                w.write(f)
    else:
        _null_encode(rendered)
    _sync(device)
    sec = time.perf_counter() - t
    return {"frames": n, "frames_per_s": round(n / sec, 1), **_timed(sec, timings, n)}


def composite_row(animators: dict, device: str, tmp: Path, small: bool, frames: int = 5) -> dict:
    """The composite alone (the renderer's "blend" stage, stages one after the other), in
    milliseconds per frame, for a 1 MP and a 12 MP photo and a 1080p video frame."""
    from gan_anim.media.images import read_image
    from gan_anim.render.renderer import FrameRender, Renderer

    cases = {"1mp": (1000, 1000)} if small else {"1mp": (1000, 1000), "12mp": (3000, 4000)}
    photos = {}
    for name, (side, width) in cases.items():
        path, _ = photo_12mp(tmp, side, width)
        photos[name] = (read_image(path), example_faces(side / 512, (width - side) // 2))
    video, offsets, scale = video_frames(1)
    photos["1080p"] = (video[0], example_faces(scale, offsets[0]))
    row = {"row": "composite", "frames": frames}
    for kind, a in animators.items():
        row[kind] = {}
        for name, (image, faces) in photos.items():
            jobs = a.face_jobs(image, faces, "happy", None)
            item = [FrameRender(image, [j.at(j.goal * x + j.start * (1 - x)) for j in jobs])
                    for x in np.linspace(0.2, 1, frames)]
            timings = {}
            for _ in Renderer(a.model, timings, overlap=False).render(item):
                pass
            _sync(device)
            row[kind][f"{name}_ms_per_frame"] = round(1e3 * timings["blend"] / frames, 1)
    return row


def folder_row(animator, device: str, photos, known, frames: int, out: Path) -> dict:
    """Each photo of the folder to a ``frames``-frame GIF, one model: photos/s."""
    from gan_anim.pipeline.batch import animate_photos

    t = time.perf_counter()
    if known is None:
        results = animate_photos(photos, out, to="happy", frames=frames, animator=animator)
        ok = sum(r.ok for r in results)
    else:
        ok = 0
        for p in photos:
            animator.animate(p, out / f"{p.stem}.gif", to="happy", frames=frames, faces=known[p.name])
            ok += 1
    _sync(device)
    sec = time.perf_counter() - t
    return {"photos": len(photos), "ok": ok, "seconds": round(sec, 3), "photos_per_s": round(ok / sec, 2)}


# Long: one flat sequence of the three measurements, each torch vs numpy, within a deadline
def pipeline_rows(device: str, deadline: float, log=print, small: bool = False,
                  faces_dir: Path | None = FACES_DIR, without=()) -> list[dict]:
    """The three end-to-end rows, each for the torch (device) and numpy (CPU) composite;
    ``small``: rehearsal sizes (a 1 MP photo, 6 frames, 4 video frames at 1080p, 4 photos);
    ``without``: "dlib" and/or "ffmpeg" taken as absent, as on the GPU machine."""
    WITHOUT.update(without)
    notes = []
    if not have_dlib():
        notes.append("no dlib: detection and tracking not run; faces found beforehand with dlib")
    if not have_ffmpeg():
        notes.append("no ffmpeg: MP4 frames converted to YUV 4:2:0 and dropped, not encoded")
    frames = 6 if small else 30
    rows = []
    with tempfile.TemporaryDirectory(prefix="gan-anim-bench-") as tmp:
        tmp = Path(tmp)
        photo, faces = photo_12mp(tmp, *((1000, 1200) if small else (3000, 4000)))
        photos, known = photo_folder(faces_dir, 4 if small else 100)
        animators = {kind: _animator(device, kind) for kind in KINDS}
        for kind, a in animators.items():  # warm-up: weights, kernels, the pool of the GPU
            animate_row(a, device, photo, faces, 2, _fresh(tmp, f"warm-{kind}"))
        plan = [("animate", "animate_12mp_s", lambda a, o: animate_row(a, device, photo, faces, frames, o)),
                ("video", "video_1080p_fps", lambda a, o: video_row(a, device, 4 if small else 90, o))]
        if photos:
            plan.append(("folder", "photos_per_s",
                         lambda a, o: folder_row(a, device, photos, known, frames, o)))
        for name, target_key, run in plan:
            row = {"row": name, "target": {target_key: TARGETS[target_key]}, "notes": notes,
                   "size": "small rehearsal" if small else "full"}
            for kind in KINDS:
                if time.perf_counter() > deadline:
                    row[kind] = {"skipped": "time budget"}
                    continue
                row[kind] = run(animators[kind], _fresh(tmp, f"{name}-{kind}"))
            _ratio(row, target_key)
            log(row)
            rows.append(row)
        if time.perf_counter() < deadline:
            rows.append(composite_row(animators, device, tmp, small))
            log(rows[-1])
    if not photos:
        rows.append({"row": "folder", "skipped": "no photo folder (make gpu-pack writes gpu-pack/bench-faces)"})
        log(rows[-1])
    return rows


def _fresh(tmp: Path, name: str) -> Path:
    p = tmp / name
    shutil.rmtree(p, ignore_errors=True)
    p.mkdir()
    return p


def _ratio(row: dict, key: str) -> None:
    """torch over numpy, as a speed-up (seconds: numpy / torch; rates: torch / numpy)."""
    a, b = row.get("torch", {}), row.get("numpy", {})
    field = {"animate_12mp_s": "seconds", "video_1080p_fps": "frames_per_s", "photos_per_s": "photos_per_s"}[key]
    if field in a and field in b and a[field] and b[field]:
        row["speedup_vs_cpu_composite"] = round(b[field] / a[field] if field == "seconds" else a[field] / b[field], 2)
        row[key] = a[field]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--small", action="store_true", help="rehearsal sizes (CPU)")
    ap.add_argument("--max-seconds", type=float, default=120.0)
    ap.add_argument("--faces-dir", type=Path, default=FACES_DIR)
    ap.add_argument("--write-faces", type=Path, default=None, metavar="DIR",
                    help="copy 100 one-face shared photos and their faces into DIR, then stop")
    ap.add_argument("--composite-only", action="store_true",
                    help="only the composite's milliseconds per frame, torch against numpy")
    ap.add_argument("--without", default="", help="dlib,ffmpeg: take them as absent (rehearses the GPU machine)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.write_faces:
        print(f"bench_gpu_pipeline: {write_faces(args.write_faces)} photos -> {args.write_faces}")
        return 0
    import torch

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    t0 = time.perf_counter()
    if args.composite_only:
        with tempfile.TemporaryDirectory(prefix="gan-anim-bench-") as tmp:
            row = composite_row({k: _animator(device, k) for k in KINDS}, device, Path(tmp), args.small)
        print(json.dumps(row))
        return 0
    rows = pipeline_rows(device, t0 + args.max_seconds, log=lambda r: print(json.dumps(r), flush=True),
                         small=args.small, faces_dir=args.faces_dir,
                         without=[w for w in args.without.split(",") if w])
    if args.json:
        Path(args.json).write_text(json.dumps({"device": device, "rows": rows}, indent=1))
    print(f"bench_gpu_pipeline: {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
