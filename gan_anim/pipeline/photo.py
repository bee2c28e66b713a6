"""The photo pipeline: detect, align, generate for every frame x face, blend, write.

    from gan_anim import animate
    animate("photo.jpg", "smile.gif", to="happy", frames=30)
"""
from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import aus as au
from ..errors import GanAnimError
from ..faces.align import align, crop
from ..faces.detect import Face, detect_faces
from ..media.images import read_image
from ..media.paths import check_output_path, default_output, output_kind
from ..media.writer import FrameWriter
from ..progress import Reporter
from ..render.device import check_precision, resolve_device, resolve_precision
from ..render.renderer import FaceRender, FrameRender, Renderer


def _shipped_weights_dir() -> Path:
    """The default weights' folder: package data ``gan_anim.weights`` (a wheel; an editable
    install maps it onto the checkout's weights/), else the checkout's weights/."""
    import importlib.util

    spec = importlib.util.find_spec("gan_anim.weights")
    if spec is not None and spec.origin:
        return Path(spec.origin).parent
    return Path(__file__).resolve().parent.parent / "weights"


WEIGHTS_DIR = _shipped_weights_dir()
DEFAULT_WEIGHTS = "gan-anim-medium.pt"


def find_weights(path=None) -> Path:
    """The weights file to use: ``path``, $GAN_ANIM_WEIGHTS, or weights/gan-anim-medium.pt."""
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




# Motion models: the AUs whose change the generator is asked to paint. The others are
# rendered by the landmark warp alone, and G sees them unchanged: their training labels
# carry no texture signal (see the estimator table in README.md), and asked for them G
# paints dark strokes that only fool its critic (weights/README.md). AU12 is warped only
# too: its paint smudged the chin when a smile was taken back. Each painted AU's paint is
# confined to its own region (motion.region_masks). Override with $GAN_ANIM_PAINTED_AUS
# (comma-separated AU names).
PAINTED_AUS = ("AU25", "AU26", "AU45")
PAINT_RAMP = 0.1  # = 0.5 on the 0..5 scale


@dataclass
class FaceJob:
    """One face to animate: where it is, its crop, its own, start and goal AUs (0..5), and
    its landmarks in crop-side units."""

    face: Face
    transform: np.ndarray
    crop: np.ndarray
    start: np.ndarray
    goal: np.ndarray
    own: np.ndarray | None = None
    landmarks: np.ndarray | None = None

    def at(self, target: np.ndarray):
        """This face asked for ``target`` (17,) on 0..5: a ``render.FaceRender``."""
        return FaceRender(self.transform, self.crop, target, self.landmarks, self.own)


@dataclass
class FaceEdits:
    """The generator's output for a batch of faces, ready to blend (crop resolution).

    ``paint``: RGB mode (B,S,S,3) uint8 colour C; luma mode (B,S,S,2) float32, the luma
    change (1 - A)(L - Y) in 0..255 units and the chroma scale A + (1 - A)s.
    ``attention`` (B,S,S); ``flow`` (B,S,S,2) crop pixels or None; ``wide_flow`` the same
    motion on the grid of ``motion.EXTENT`` around the crop (motion models) or None.
    """

    paint: np.ndarray
    attention: np.ndarray
    flow: np.ndarray | None = None
    wide_flow: np.ndarray | None = None
    luma: bool = False

    def __getitem__(self, n: int) -> "FaceEdits":
        pick = lambda a: None if a is None else a[n]  # noqa: E731
        return FaceEdits(self.paint[n], self.attention[n], pick(self.flow), pick(self.wide_flow),
                         self.luma)


@dataclass
class AnimationResult:
    output: Path | None
    frames: int
    faces: int
    size: tuple[int, int]
    seconds: float
    timings: dict = field(default_factory=dict)








class Animator:
    """A loaded generator plus the photo pipeline around it.

    ``background=True``: torch and the weights (and dlib's landmark model) load in a
    background thread, so that ``animate`` decodes the photo and runs the face detection
    meanwhile (~1 s of a 12 MP photo's start-up on 2 cores; both hold the GIL only part of
    the time). The model's attributes wait for the loading; a missing weights file is
    reported at once, a bad one when the model is first needed.
    """

    def __init__(self, weights=None, device: str = "auto", batch_size: int = 16,
                 generator=None, precision: str = "auto", background: bool = False):
        if batch_size < 1:
            raise GanAnimError(f"--batch-size must be at least 1, got {batch_size}")
        self.batch_size = batch_size
        if precision == "auto":
            precision = os.environ.get("GAN_ANIM_PRECISION", "auto")
        check_precision(precision)  # before a background load, so the error comes at once
        path = find_weights(weights) if generator is None else None
        names = os.environ.get("GAN_ANIM_PAINTED_AUS")
        names = PAINTED_AUS if names is None else tuple(
            au.canonical_au(n.strip()) for n in names.split(",") if n.strip())
        load = lambda: self._load(path, generator, device, precision, names)  # noqa: E731
        self._loading = None
        if background:
            from ..overlap import Background

            self._loading = Background(load, name="gan-anim-load")
        else:
            load()

    def _load(self, path, generator, device: str, precision: str, painted_names) -> None:
        if self._loading is not None:  # the pipeline needs dlib's landmarks first
            from ..faces.dlib_models import load_models

            load_models("landmarks")
        import torch

        from ..model import load_generator

        self._device = resolve_device(device)
        self._precision = resolve_precision(precision, self._device)
        if generator is None:
            try:
                generator = load_generator(path, self._device)
            except ValueError as exc:
                raise GanAnimError(str(exc)) from None
        self._generator = generator.to(self._device).eval()
        self._painted = torch.tensor([n in painted_names for n in au.AU_NAMES], device=self._device)

    def wait(self) -> "Animator":
        """Wait for a background load (a no-op otherwise); its error is raised here."""
        if self._loading is not None:
            self._loading.result()
        return self

    @property
    def generator(self):
        return self.wait()._generator

    @property
    def device(self):
        return self.wait()._device

    @property
    def precision(self) -> str:
        """"fp32" or "bf16": what the generator runs in (``resolve_precision``)."""
        return self.wait()._precision

    @property
    def painted(self):
        return self.wait()._painted

    @property
    def size(self) -> int:
        return self.generator.cfg.image_size

    # ------------------------------------------------------------------ stages
    def generate(self, crops: np.ndarray, targets: np.ndarray, landmarks: np.ndarray | None = None,
                 own: np.ndarray | None = None) -> FaceEdits:
        """Run G on uint8 crops (B,S,S,3) for AU targets (B,17) on 0..5.

        ``landmarks`` (B,68,2, crop-side units) and ``own`` (B,17, the faces' own AUs,
        0..5) drive the landmark motion of motion models; without them the face is not
        warped. Returns a ``FaceEdits`` batch.
        """
        import torch

        from ..colour import to_ycbcr
        from ..motion import warp

        g = self.generator
        with torch.inference_mode():
            x = torch.from_numpy(crops).to(self.device).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
            y = torch.from_numpy(np.asarray(targets, np.float32) / au.AU_SCALE).to(self.device).clamp(0, 1)
            flow = wide = None
            moving = g.motion is not None and landmarks is not None
            if moving:
                from ..motion import EXTENT

                src = torch.from_numpy(np.asarray(landmarks, np.float32)).to(self.device)
                y0 = torch.from_numpy(np.asarray(own, np.float32) / au.AU_SCALE).to(self.device).clamp(0, 1)
                spline, moved = g.motion.spline(src, y0, y)
                # the spline on a grid a quarter of the crop's side, upsampled: 10x faster,
                # landmarks land within 0.6 px (99th percentile) of the full evaluation
                flow = spline.flow(self.size, resolution=max(32, self.size // 4))
                x = warp(x, flow)
                side = round(self.size * (EXTENT[1] - EXTENT[0]))
                wide = spline.flow(side, EXTENT, resolution=max(32, side // 4))
                y = torch.where(self.painted, y, y0)  # see PAINTED_AUS
            change = need = None
            if moving and g.luma:
                # each painted AU's paint fades in over the first PAINT_RAMP (0..1 scale) of
                # its change; a face whose painted AUs do not change is warped only, and G
                # is not run for it (its output would be multiplied by zero)
                change = ((y - y0).abs()[:, self.painted] / PAINT_RAMP).clamp(max=1.0)
                need = (change > 0).any(1) if getattr(g, "flow", None) is None else None
            color, attention, head_flow = self._run(x, y, need)
            if head_flow is not None:
                flow = head_flow
            if g.luma:
                luma, _, _ = to_ycbcr(x)
                paint = (1 - attention) * (color[:, :1] - luma) * 127.5       # luma change, 0..255 units
                keep = attention + (1 - attention) * color[:, 1:2]            # chroma scale
                if change is not None:
                    # paint only where a painted AU changed, inside its own region (the moved
                    # landmarks' hull), so an edit to the face's own AUs is exact and a mouth
                    # edit cannot touch the brows
                    from ..motion import region_masks

                    names = [n for n, p in zip(au.AU_NAMES, self.painted.tolist()) if p]
                    masks = torch.from_numpy(region_masks(moved.cpu().numpy(), names, self.size))
                    fade = (masks.to(self.device) * change[:, :, None, None]).amax(1, keepdim=True)
                    paint, keep = paint * fade, 1 - fade * (1 - keep)
                paint = torch.cat([paint, keep], 1).permute(0, 2, 3, 1).float()
            else:
                paint = color.add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)
                paint = paint.permute(0, 2, 3, 1)
            to_px = self.size / 2  # grid units -> crop pixels
            edits = FaceEdits(
                paint=paint.contiguous().cpu().numpy(),
                attention=attention[:, 0].float().cpu().numpy(),
                flow=None if flow is None else (flow.float() * to_px).permute(0, 2, 3, 1).contiguous().cpu().numpy(),
                wide_flow=None if wide is None else (wide.float() * to_px).permute(0, 2, 3, 1).contiguous().cpu().numpy(),
                luma=g.luma)
        return edits

    def _run(self, x, y, need=None):
        """G on the rows of (x, y) where ``need`` (all when None), in ``self.precision``:
        (colour, attention, flow head or None) as float32; rows not run get colour 0 and
        attention 1 (keep the input)."""
        import torch

        def run(xs, ys):
            with torch.autocast(self.device.type, dtype=torch.bfloat16,
                                enabled=self.precision == "bf16"):
                c, a, f = self.generator(xs, ys)
            return c.float(), a.float(), f

        if need is None or bool(need.all()):
            return run(x, y)
        b, _, h, w = x.shape
        color = x.new_zeros(b, 2 if self.generator.luma else 3, h, w)
        attention = x.new_ones(b, 1, h, w)
        if bool(need.any()):
            color[need], attention[need], _ = run(x[need], y[need])
        return color, attention, None

    def face_jobs(self, image: np.ndarray, faces: list[Face], to: str | None,
                  start: str | None) -> list[FaceJob]:
        """Align and crop each face and work out its start and goal expressions."""
        start_values = au.parse_expression(start)[0] if start else None
        goal_values, goal_complete = au.parse_expression(to) if to else ({}, False)
        from ..estimator import estimate_from_landmarks
        from ..faces.align import normalised_landmarks

        jobs = []
        for face in faces:
            m = align(face.landmarks, self.size)
            own = np.asarray(estimate_from_landmarks(face.landmarks), np.float32)
            y_r = own if start_values is None else au.au_dict_to_vector(start_values, "--from")
            y_g = au.au_dict_to_vector(goal_values, "--to", base=None if goal_complete else y_r)
            jobs.append(FaceJob(face, m, crop(image, m, self.size), y_r, y_g, own,
                                normalised_landmarks(face.landmarks, m, self.size)))
        return jobs

    def render(self, image: np.ndarray, jobs: list[FaceJob], alphas: np.ndarray,
               timings: dict | None = None, overlap: bool = True, buffers: int = 1):
        """Yield one full-resolution frame per alpha (``buffers`` buffers, overwritten in
        turn): every face at ``alpha * goal + (1 - alpha) * start``, through
        ``render.Renderer``.

        ``timings`` (optional) accumulates seconds spent in "generate" and "blend";
        ``overlap``: generate the next frames while blending these (see ``Renderer``).
        """
        def frames():
            for a in alphas:
                yield FrameRender(image, [j.at(a * j.goal + (1 - a) * j.start) for j in jobs])

        return Renderer(self, timings, overlap=overlap, buffers=buffers).render(frames())

    # --------------------------------------------------------------- the job
    def animate(self, photo, output=None, to: str = "happy", start: str | None = None,
                frames: int = 30, fps: float = 15.0, ease: str = "linear", loop: bool = False,
                face: str = "all", detector: str = "hog", crf: int = 18,
                quiet: bool = True, overlap: bool = True) -> AnimationResult:
        """Animate every selected face of ``photo`` from ``start`` to ``to`` into ``output``.

        ``overlap``: generate, blend and encode side by side (threads); False runs them one
        after the other (the serial baseline of the benchmarks)."""
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
                    FrameWriter(out_path, fps=fps, crf=crf, loop=True, background=overlap) as writer, \
                    contextlib.closing(self.render(image, jobs, alphas, timings, overlap,
                                                   buffers=FrameWriter.IN_FLIGHT + 1)) as frames:
                for frame in frames:
                    t = time.perf_counter()
                    writer.write(frame, copy=False)  # the renderer rotates IN_FLIGHT + 1 buffers
                    timings["encode"] += time.perf_counter() - t
                    advance()
                t = time.perf_counter()
            timings["encode"] += time.perf_counter() - t
            seconds = time.perf_counter() - t0
            h, w = image.shape[:2]
            rep.summary(f"{len(faces)} face(s), {len(alphas)} frames {w}x{h} -> {out_path} "
                        f"in {seconds:.1f} s")
        return AnimationResult(out_path, len(alphas), len(faces), (w, h), seconds, timings)


def select_faces(faces: list[Face], which: str) -> list[Face]:
    """``--face all|largest|N`` of ``faces`` in largest-first order (N counts from 1)."""
    if which == "all":
        return faces
    if which == "largest":
        return faces[:1]
    try:
        n = int(which)
    except ValueError:
        raise GanAnimError(f"--face must be all, largest or a number, got {which!r}") from None
    if not 1 <= n <= len(faces):
        raise GanAnimError(f"--face {n}: the photo has {len(faces)} face(s)")
    return [faces[n - 1]]


def animate(photo, output=None, to: str = "happy", start: str | None = None, *,
            weights=None, device: str = "auto", batch_size: int = 16, precision: str = "auto",
            **kwargs) -> AnimationResult:
    """Animate ``photo`` into ``output`` (.gif, .mp4 or a PNG folder). See ``Animator.animate``."""
    return Animator(weights, device, batch_size, precision=precision,
                    background=True).animate(photo, output, to, start, **kwargs)
