"""The photo pipeline: detect, align, generate for every frame x face, blend, write.

    from gan_anim import animate
    animate("photo.jpg", "smile.gif", to="happy", frames=30)
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import aus as au
from ..config import InferenceConfig
from ..errors import GanAnimError
from ..faces.align import align, crop
from ..faces.detect import Face, detect_faces
from ..media.images import read_image
from ..media.paths import check_output_path, default_output, output_kind
from ..media.writer import FrameWriter
from ..progress import Reporter
from ..render.edit_model import EditModel
from ..render.renderer import FaceRender, FrameRender, Renderer


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
        """This face asked for ``target`` (17,) on 0..5: a ``render.renderer.FaceRender``."""
        return FaceRender(self.transform, self.crop, target, self.landmarks, self.own)


@dataclass
class AnimationResult:
    """What ``Animator.animate`` wrote: the output, frame and face counts, the photo's
    (width, height), wall seconds and seconds per stage."""

    output: Path | None
    frames: int
    faces: int
    size: tuple[int, int]
    seconds: float
    timings: dict = field(default_factory=dict)


class Animator:
    """The photo job around an ``EditModel`` (``self.model``): find and align the faces,
    render every frame x face, write the animation.

    ``weights``, ``device``, ``batch_size`` and ``precision``: see ``InferenceConfig``;
    ``config``: all the inference settings at once, in their place. ``background=True``:
    the model loads in a background thread while ``animate`` decodes the photo and finds
    its faces (``EditModel``). ``generator``: a module to use instead of loading weights.
    """

    def __init__(self, weights=None, device: str = InferenceConfig.device,
                 batch_size: int = InferenceConfig.batch_size, generator=None,
                 precision: str = InferenceConfig.precision, background: bool = False, *,
                 config: InferenceConfig | None = None):
        if config is None:
            config = InferenceConfig(weights=weights, device=device, batch_size=batch_size,
                                     precision=precision)
        self.model = EditModel(config, generator=generator, background=background)

    def face_jobs(self, image: np.ndarray, faces: list[Face], to: str | None,
                  start: str | None) -> list[FaceJob]:
        """Align and crop each face and work out its start and goal expressions."""
        start_values = au.parse_expression(start)[0] if start else None
        goal_values, goal_complete = au.parse_expression(to) if to else ({}, False)
        from ..estimation.photo import edit_start
        from ..faces.align import normalised_landmarks

        # a whole goal from the face's own AUs (a preset): the start may read falls differently
        preset = au.au_dict_to_vector(goal_values, "--to") if goal_complete and start_values is None else None
        size = self.model.size
        jobs = []
        for face in faces:
            m = align(face.landmarks, size)
            own = edit_start(image, face.landmarks, preset)
            y_r = own if start_values is None else au.au_dict_to_vector(start_values, "--from")
            y_g = preset.copy() if preset is not None else au.au_dict_to_vector(
                goal_values, "--to", base=None if goal_complete else y_r)
            jobs.append(FaceJob(face, m, crop(image, m, size), y_r, y_g, own,
                                normalised_landmarks(face.landmarks, m, size)))
        return jobs

    def render(self, image: np.ndarray, jobs: list[FaceJob], alphas: np.ndarray,
               timings: dict | None = None, overlap: bool = True, buffers: int = 1):
        """Yield one full-resolution frame per alpha (``buffers`` buffers, overwritten in
        turn): every face at ``alpha * goal + (1 - alpha) * start``, through
        ``render.renderer.Renderer``.

        ``timings`` (optional) accumulates seconds spent in "generate" and "blend";
        ``overlap``: generate the next frames while blending these (see ``Renderer``).
        """
        def frames():
            for a in alphas:
                yield FrameRender(image, [j.at(a * j.goal + (1 - a) * j.start) for j in jobs])

        return Renderer(self.model, timings, overlap=overlap, buffers=buffers).render(frames())

    # --------------------------------------------------------------- the job
    def animate(self, photo, output=None, to: str = "happy", start: str | None = None,
                frames: int = 30, fps: float = 15.0, ease: str = "linear", loop: bool = False,
                face: str = "all", detector: str = "hog", crf: int = InferenceConfig.crf,
                quiet: bool = True, overlap: bool = True, faces: list[Face] | None = None,
                image: np.ndarray | None = None) -> AnimationResult:
        """Animate every selected face of ``photo`` from ``start`` to ``to`` into ``output``.

        ``overlap``: generate, blend and encode side by side (threads); False runs them one
        after the other (the serial baseline of the benchmarks). ``faces``: the photo's
        faces found beforehand (``detect_faces``), so detection is skipped; ``image``: the
        photo decoded beforehand (``read_image``)."""
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
            image, faces = self._find_faces(photo, detector, face, rep, timings, faces, image)
            t = time.perf_counter()
            jobs = self.face_jobs(image, faces, to, start)
            timings["align"] = time.perf_counter() - t
            timings["encode"] = 0.0
            with rep.stage("render", total=len(alphas)) as advance, \
                    FrameWriter(out_path, fps=fps, crf=crf, loop=True, background=overlap) as writer:
                self._write(writer, self.render(image, jobs, alphas, timings, overlap,
                                                buffers=FrameWriter.IN_FLIGHT + 1), advance, timings)
                t = time.perf_counter()
            timings["encode"] += time.perf_counter() - t  # the writer's close: the last frames
            seconds = time.perf_counter() - t0
            h, w = image.shape[:2]
            rep.summary(f"{len(faces)} face(s), {len(alphas)} frames {w}x{h} -> {out_path} "
                        f"in {seconds:.1f} s")
        return AnimationResult(out_path, len(alphas), len(faces), (w, h), seconds, timings)

    @staticmethod
    def _find_faces(photo, detector: str, face: str, rep: Reporter, timings: dict, found=None,
                    image=None):
        """(the photo (H,W,3) uint8, its selected faces); "decode" and "detect" seconds in
        ``timings``. ``found``, ``image``: its faces and pixels, found beforehand (not timed)."""
        with rep.stage("faces", total=2) as advance:
            t = time.perf_counter()
            image = read_image(photo) if image is None else image
            timings["decode"] = time.perf_counter() - t
            advance()
            t = time.perf_counter()
            faces = detect_faces(image, detector, warn=rep.warn) if found is None else list(found)
            timings["detect"] = time.perf_counter() - t
            advance()
        if not faces:
            raise GanAnimError(f"{photo}: no face found (try --detector cnn for small or turned faces)")
        return image, select_faces(faces, face)

    @staticmethod
    def _write(writer: FrameWriter, frames, advance, timings: dict) -> None:
        """Hand each rendered frame to ``writer`` without a copy (the renderer rotates
        ``FrameWriter.IN_FLIGHT + 1`` buffers); adds to "encode" seconds in ``timings``."""
        with contextlib.closing(frames):
            for frame in frames:
                t = time.perf_counter()
                writer.write(frame, copy=False)
                timings["encode"] += time.perf_counter() - t
                advance()


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
            weights=None, device: str = InferenceConfig.device,
            batch_size: int = InferenceConfig.batch_size,
            precision: str = InferenceConfig.precision, **kwargs) -> AnimationResult:
    """Animate ``photo`` into ``output`` (.gif, .mp4 or a PNG folder). See ``Animator.animate``."""
    return Animator(weights, device, batch_size, precision=precision,
                    background=True).animate(photo, output, to, start, **kwargs)
