"""The photo pipeline: detect, align, generate for every frame x face, blend, write.

    from gan_anim import animate
    animate("photo.jpg", "smile.gif", to="happy", frames=30)
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import aus as au
from .blend import FaceBlender
from .errors import GanAnimError
from .faces import Face, align, crop, detect_faces, select_faces
from .media import FrameWriter, check_output_path, output_kind, read_image
from .model import Generator, load_generator
from .progress import Reporter

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_WEIGHTS = "gan-anim-small.pt"


def find_weights(path=None) -> Path:
    """The weights file to use: ``path``, $GAN_ANIM_WEIGHTS, or weights/gan-anim-small.pt."""
    path = path or os.environ.get("GAN_ANIM_WEIGHTS")
    if path:
        p = Path(path)
        if p.is_dir():
            p = p / DEFAULT_WEIGHTS
        if not p.is_file():
            raise GanAnimError(f"weights file {p} not found")
        return p
    p = WEIGHTS_DIR / DEFAULT_WEIGHTS
    if not p.is_file():
        raise GanAnimError(f"no trained weights at {p}: train and export some "
                           "(gan-anim train, gan-anim export) or pass --weights PATH")
    return p


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise GanAnimError("--device cuda: no CUDA device is available")
    if device not in ("cpu", "cuda"):
        raise GanAnimError(f"unknown device {device!r}: use auto, cpu or cuda")
    return torch.device(device)


@dataclass
class FaceJob:
    """One face to animate: where it is, its crop, and its start and goal AUs (0..5)."""

    face: Face
    transform: np.ndarray
    crop: np.ndarray
    start: np.ndarray
    goal: np.ndarray


@dataclass
class AnimationResult:
    output: Path | None
    frames: int
    faces: int
    size: tuple[int, int]
    seconds: float
    timings: dict = field(default_factory=dict)


class Animator:
    """A loaded generator plus the photo pipeline around it."""

    def __init__(self, weights=None, device: str = "auto", batch_size: int = 16,
                 generator: Generator | None = None):
        self.device = resolve_device(device)
        if generator is None:
            path = find_weights(weights)
            try:
                generator = load_generator(path, self.device)
            except ValueError as exc:
                raise GanAnimError(str(exc)) from None
        self.generator = generator.to(self.device).eval()
        self.size = generator.cfg.image_size
        if batch_size < 1:
            raise GanAnimError(f"--batch-size must be at least 1, got {batch_size}")
        self.batch_size = batch_size

    # ------------------------------------------------------------------ stages
    def generate(self, crops: np.ndarray, targets: np.ndarray):
        """Run G on uint8 crops (B,S,S,3) for AU targets (B,17) on 0..5.

        Returns colour (B,S,S,3) uint8, attention (B,S,S) float32 and flow
        (B,S,S,2) float32 in crop pixels, or None without a flow head.
        """
        with torch.inference_mode():
            x = torch.from_numpy(crops).to(self.device).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
            y = torch.from_numpy(np.asarray(targets, np.float32) / au.AU_SCALE).to(self.device)
            color, attention, flow = self.generator(x, y.clamp(0, 1))
            color = color.add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)
            color = color.permute(0, 2, 3, 1).contiguous().cpu().numpy()
            attention = attention[:, 0].float().cpu().numpy()
            if flow is not None:
                flow = (flow.float() * (self.size / 2)).permute(0, 2, 3, 1).contiguous().cpu().numpy()
        return color, attention, flow

    def face_jobs(self, image: np.ndarray, faces: list[Face], to: str | None,
                  start: str | None) -> list[FaceJob]:
        """Align and crop each face and work out its start and goal expressions."""
        start_values = au.parse_expression(start)[0] if start else None
        goal_values, goal_complete = au.parse_expression(to) if to else ({}, False)
        jobs = []
        for face in faces:
            m = align(face.landmarks, self.size)
            if start_values is None:
                from .estimator import estimate_from_landmarks
                y_r = np.asarray(estimate_from_landmarks(face.landmarks), np.float32)
            else:
                y_r = au.au_dict_to_vector(start_values, "--from")
            y_g = au.au_dict_to_vector(goal_values, "--to", base=None if goal_complete else y_r)
            jobs.append(FaceJob(face, m, crop(image, m, self.size), y_r, y_g))
        return jobs

    def render(self, image: np.ndarray, jobs: list[FaceJob], alphas: np.ndarray,
               timings: dict | None = None):
        """Yield one full-resolution frame per alpha (the same buffer, overwritten each time).

        ``timings`` (optional) accumulates seconds spent in "generate" and "blend".
        """
        timings = {} if timings is None else timings
        timings.setdefault("generate", 0.0)
        timings.setdefault("blend", 0.0)
        blenders = [FaceBlender(image.shape, j.transform, self.size) for j in jobs]
        out = image.copy()
        per_batch = max(1, self.batch_size // max(1, len(jobs)))
        crops = np.stack([j.crop for j in jobs]) if jobs else None
        for i in range(0, len(alphas), per_batch):
            chunk = alphas[i:i + per_batch]
            if not jobs:
                for _ in chunk:
                    yield out
                continue
            a = chunk[:, None, None]
            starts = np.stack([j.start for j in jobs])[None]
            goals = np.stack([j.goal for j in jobs])[None]
            targets = (a * goals + (1 - a) * starts).reshape(-1, len(au.AU_NAMES))
            t = time.perf_counter()
            color, attention, flow = self.generate(np.tile(crops, (len(chunk), 1, 1, 1)), targets)
            timings["generate"] += time.perf_counter() - t
            for f in range(len(chunk)):
                t = time.perf_counter()
                for b in blenders:  # restore every face region before blending anew
                    out[b.slices] = image[b.slices]
                for k, b in enumerate(blenders):
                    n = f * len(jobs) + k
                    b.blend(out, color[n], attention[n], None if flow is None else flow[n])
                timings["blend"] += time.perf_counter() - t
                yield out

    # --------------------------------------------------------------- the job
    def animate(self, photo, output=None, to: str = "happy", start: str | None = None,
                frames: int = 30, fps: float = 15.0, ease: str = "linear", loop: bool = False,
                face: str = "all", detector: str = "hog", crf: int = 18,
                quiet: bool = True) -> AnimationResult:
        """Animate every selected face of ``photo`` from ``start`` to ``to`` into ``output``."""
        t0 = time.perf_counter()
        timings = {}
        alphas = au.interpolation_weights(frames, ease, loop)
        au.parse_expression(to)  # fail on a bad target before any heavy work
        if start:
            au.parse_expression(start)
        out_path = Path(output) if output else default_output(photo, to)
        check_output_path(out_path, [photo])
        output_kind(out_path)
        with Reporter(quiet) as rep:
            with rep.stage("faces", total=2) as advance:
                t = time.perf_counter()
                image = read_image(photo)
                timings["decode"] = time.perf_counter() - t
                advance()
                t = time.perf_counter()
                faces = detect_faces(image, detector, warn=rep.warn)
                timings["detect"] = time.perf_counter() - t
                advance()
            if not faces:
                raise GanAnimError(f"{photo}: no face found (try --detector cnn for small or turned faces)")
            faces = select_faces(faces, face)
            t = time.perf_counter()
            jobs = self.face_jobs(image, faces, to, start)
            timings["align"] = time.perf_counter() - t
            timings["encode"] = 0.0
            with rep.stage("render", total=len(alphas)) as advance, \
                    FrameWriter(out_path, fps=fps, crf=crf, loop=True) as writer:
                for frame in self.render(image, jobs, alphas, timings):
                    t = time.perf_counter()
                    writer.write(frame)
                    timings["encode"] += time.perf_counter() - t
                    advance()
                t = time.perf_counter()
            timings["encode"] += time.perf_counter() - t
            seconds = time.perf_counter() - t0
            h, w = image.shape[:2]
            rep.summary(f"{len(faces)} face(s), {len(alphas)} frames {w}x{h} -> {out_path} "
                        f"in {seconds:.1f} s")
        return AnimationResult(out_path, len(alphas), len(faces), (w, h), seconds, timings)


def default_output(photo, to: str | None, ext: str = ".gif") -> Path:
    """``<photo stem>-<target>.gif`` in the current folder (never the photo itself)."""
    target = to or "animated"
    name = Path(target).stem if target.lower().endswith(".json") else target
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:40] or "animated"
    return Path(f"{Path(photo).stem}-{name}{ext}")


def animate(photo, output=None, to: str = "happy", start: str | None = None, *,
            weights=None, device: str = "auto", batch_size: int = 16, **kwargs) -> AnimationResult:
    """Animate ``photo`` into ``output`` (.gif, .mp4 or a PNG folder). See ``Animator.animate``."""
    return Animator(weights, device, batch_size).animate(photo, output, to, start, **kwargs)
