"""Per-stage timings of `gan-anim animate` on this machine (not a test).

    python benchmarks/bench_animate.py                 # example + 1080p + 12 MP photos
    python benchmarks/bench_animate.py --frames 30 --presets medium,small

For each photo and preset: decode, detect (the cascade, landmarks included), align, generate, blend, encode for
N frames to MP4; the generator batched versus one pass per frame (the naive
baseline) in the same run; each photo with the stages overlapped (generate, blend
and encode in their own threads, as shipped) and one after the other (overlap=False,
the serial baseline) in the same run; and an end-to-end run of the CLI on a
12-megapixel photo (wall time and peak memory of that process) against the same
in one process with serial stages. Random weights are used for
a preset without trained weights: speed does not depend on the values.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# as `gan-anim` runs (`import gan_anim` sets it before torch loads; torch is imported first here)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import cv2  # noqa: E402
import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gan_anim.config import InferenceConfig  # noqa: E402
from gan_anim.model import PRESETS, Generator, generator_state, load_generator  # noqa: E402
from gan_anim.pipeline.photo import Animator  # noqa: E402
from gan_anim.render.edit_model import EditModel  # noqa: E402

EXAMPLE = ROOT / "examples" / "astronaut.jpg"


def make_photo(folder: Path, name: str, w: int, h: int) -> Path:
    """The example portrait scaled to height h and centred on a w x h canvas of its own edges."""
    img = np.asarray(Image.open(EXAMPLE).convert("RGB"))
    s = h / img.shape[0]
    img = cv2.resize(img, (round(img.shape[1] * s), h), interpolation=cv2.INTER_CUBIC)
    pad = max(0, w - img.shape[1])
    img = cv2.copyMakeBorder(img, 0, 0, pad // 2, pad - pad // 2, cv2.BORDER_REFLECT)[:, :w]
    path = folder / f"{name}.jpg"
    Image.fromarray(img).save(path, quality=92)
    return path


def weights_for(preset: str, folder: Path) -> tuple[Path, str]:
    path = ROOT / "weights" / f"gan-anim-{preset}.pt"
    if path.is_file() and load_generator(path).cfg == PRESETS[preset]:
        return path, "shipped"
    torch.manual_seed(0)
    path = folder / f"random-{preset}.pt"
    torch.save(generator_state(Generator(PRESETS[preset])), path)
    return path, "random"


def time_stages(animator: Animator, photo: Path, frames: int, out: Path, overlap: bool = True) -> dict:
    res = animator.animate(photo, out, to="happy", start="neutral", frames=frames, quiet=True,
                           overlap=overlap)
    tm = res.timings  # detect: the whole cascade with landmarks, as the pipeline runs it
    stages = {k: tm[k] for k in ("decode", "detect", "align", "generate", "blend", "encode")}
    stages["total (pipeline)"] = res.seconds
    return stages


def generator_ratio(model: EditModel, frames: int) -> tuple[float, float]:
    """ms per face-frame: batched (model.batch_size) vs one generator pass per frame
    (motion models: landmark warp included)."""
    from gan_anim.faces.align import align, normalised_landmarks
    from gan_anim.faces.detect import detect_faces
    from gan_anim.media.images import read_image

    s = model.size
    crops = np.random.default_rng(0).integers(0, 255, (frames, s, s, 3), dtype=np.uint8)
    targets = np.linspace(0, 5, frames * 17, dtype=np.float32).reshape(frames, 17) % 5
    face = detect_faces(read_image(EXAMPLE))[0]
    lms = np.repeat(normalised_landmarks(face.landmarks, align(face.landmarks, s), s)[None], frames, 0)
    own = np.zeros_like(targets)
    b = model.batch_size
    model.generate(crops[:2], targets[:2], lms[:2], own[:2])  # warm-up
    t = time.perf_counter()
    for i in range(0, frames, b):
        model.generate(crops[i:i + b], targets[i:i + b], lms[i:i + b], own[i:i + b])
    batched = (time.perf_counter() - t) / frames * 1000
    t = time.perf_counter()
    for i in range(frames):
        model.generate(crops[i:i + 1], targets[i:i + 1], lms[i:i + 1], own[i:i + 1])
    single = (time.perf_counter() - t) / frames * 1000
    return batched, single


def end_to_end(photo: Path, weights: Path, frames: int, out: Path, overlap: bool = True,
               precision: str = "auto") -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one process animating ``photo``: `gan-anim animate`,
    or with overlap=False the same through the API with everything one after the other
    (the model loaded before the photo is decoded, then each stage in turn)."""
    if overlap:
        cmd = [sys.executable, "-m", "gan_anim", "animate", str(photo), "--from", "neutral", "--to",
               "happy", "--frames", str(frames), "--weights", str(weights), "-o", str(out), "-q",
               "--precision", precision]
    else:
        cmd = [sys.executable, "-c", "import gan_anim; gan_anim.Animator(%r, precision=%r).animate("
               "%r, %r, to='happy', start='neutral', frames=%d, overlap=False)"
               % (str(weights), precision, str(photo), str(out), frames)]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    if status:
        raise SystemExit(f"{cmd} failed")
    return wall, usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--presets", default="medium,small,paper")
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"cuda={'yes' if torch.cuda.is_available() else 'no'}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        photos = {"example 512x512": EXAMPLE, "1080p": make_photo(tmp, "p1080", 1920, 1080),
                  "12 MP": make_photo(tmp, "p12mp", 4000, 3000)}
        for preset in args.presets.split(","):
            weights, kind = weights_for(preset, tmp)
            animator = Animator(weights, device="auto", batch_size=args.batch_size)
            print(f"\n== preset {preset} ({kind} weights, {animator.model.size} px, {animator.model.precision}), "
                  f"{args.frames} frames -> MP4")
            b, s = generator_ratio(animator.model, args.frames)
            print(f"generator: {b:.1f} ms/face-frame batched ({args.batch_size}), {s:.1f} ms one pass "
                  f"per frame (naive): {s / b:.2f}x")
            for label, photo in photos.items():
                for overlap in (True, False):
                    st = time_stages(animator, photo, args.frames, tmp / "out.mp4", overlap)
                    total = st["total (pipeline)"]
                    row = "  ".join(f"{k} {v:.3f}s" for k, v in st.items())
                    if overlap:
                        print(f"{label:>16}: {row}")
                        fast = total
                    else:
                        print(f"{'serial':>16}: {row}  | overlapped vs serial {total / fast:.2f}x")
        precision = EditModel(InferenceConfig(device="cpu")).precision
        for preset in ("medium", "small"):
            weights, kind = weights_for(preset, tmp)
            runs = [(True, precision), (False, precision)] + ([(True, "fp32")] if precision != "fp32" else [])
            walls = {r: end_to_end(photos["12 MP"], weights, args.frames, tmp / "e2e.mp4", *r) for r in runs}
            fast = walls[(True, precision)]
            slow = walls[(False, precision)][0]
            print(f"\nend to end, 12 MP photo, {preset} preset ({kind}), {args.frames} frames to MP4 "
                  f"(process start included), {precision}: {fast[0]:.2f} s wall, peak RSS {fast[1]:.0f} MB; "
                  f"serial (model, then decode, detect, generate, blend, encode in turn) {slow:.2f} s: "
                  f"{slow / fast[0]:.2f}x")
            if (True, "fp32") in walls:
                print(f"  the same in fp32: {walls[(True, 'fp32')][0]:.2f} s")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
