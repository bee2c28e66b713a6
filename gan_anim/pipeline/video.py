"""The video pipeline: decode, track faces, follow an AU timeline, render, encode.

    from gan_anim.pipeline.video import animate_video
    animate_video("clip.mp4", "out.mp4", aus="aus.csv")

Everything streams: frames are decoded one at a time (``media.video_reader``), faces
tracked and smoothed (``faces.tracking``), targets taken from the AU timeline
(``au_timeline``), a few frames buffered so the generator runs on a batch of face crops
(``render.renderer``), and finished frames go straight to the encoder
(``media.writer.FrameWriter``). Memory does not grow with the clip's length.

``animate_video`` reads top to bottom: the request is checked, a ``VideoJob`` opens the
clip and the timeline, ``FaceTargets`` turns each tracked frame into render jobs, and
``VideoJob.run`` renders, encodes and reports.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import InferenceConfig
from ..errors import GanAnimError
from ..faces.align import crop, normalised_landmarks
from ..faces.tracking import FaceTracker
from ..media.paths import check_output_path, output_kind
from ..media.video_reader import MP4_AUDIO, VideoReader
from ..media.writer import FrameWriter
from ..overlap import prefetch
from ..progress import Reporter
from ..render.renderer import FaceRender, FrameRender, Renderer
from .au_timeline import (
    AUTimeline,
    CsvTimeline,
    DrivingVideoTimeline,
    FaceAUSmoother,
    face_target,
    open_timeline,
)

# Timed stages, seconds each in ``VideoResult.timings`` ("driver" is added for a driving
# video: reading it and estimating its AUs, taken out of "track").
STAGES = ("decode", "track", "generate", "blend", "encode")
# Frames decoded and tracked ahead of the renderer: enough to keep the generator fed
# through a detection frame, few enough that memory stays flat whatever the clip's length.
TRACK_AHEAD = 4


@dataclass
class VideoResult:
    output: Path
    frames: int
    frames_with_faces: int
    faces: int                  # distinct face tracks
    fps: float
    size: tuple[int, int]
    seconds: float
    timings: dict = field(default_factory=dict)
    targets: list | None = None  # per frame {face track id: (17,) target}, with keep_targets

    @property
    def frames_without_faces(self) -> int:
        return self.frames - self.frames_with_faces

    def summary(self) -> str:
        """The command's one summary line."""
        w, h = self.size
        return (f"{self.frames} frames {w}x{h} @ {self.fps:.3g} fps, {self.frames_with_faces} with "
                f"faces ({self.frames_without_faces} without, passed through), {self.faces} face "
                f"track(s) -> {self.output} in {self.seconds:.1f} s "
                f"({self.frames / self.seconds:.1f} frames/s)")


def default_video_output(video, aus: str) -> Path:
    """``<clip stem>-<timeline name>.mp4`` in the current folder."""
    from .photo import default_output

    name = Path(aus).stem if Path(aus).suffix else aus
    return default_output(video, name, ".mp4")


def animate_video(video, output=None, *, aus: str, weights=None, device: str = InferenceConfig.device,
                  batch_size: int = InferenceConfig.batch_size,
                  precision: str = InferenceConfig.precision, detect_every: int = 10,
                  strength: float = 1.0, relative: bool = False, timeline_end: str = "hold",
                  crf: int = InferenceConfig.crf,
                  detector: str = "hog", smooth: bool = True, quiet: bool = True,
                  animator=None, keep_targets: bool = False, overlap: bool = True) -> VideoResult:
    """Re-render every face of ``video`` so its expression follows ``aus``; write ``output``.

    ``aus``: an OpenFace-format CSV, a driving video, or a preset / JSON / inline
    expression (constant). Output keeps the input's size, frame rate, frame count
    and audio. ``timeline_end``: "hold" or "loop" a timeline shorter than the clip.
    ``animator``: a ``pipeline.photo.Animator`` to reuse (else one is loaded, in
    ``precision``: see ``render.device.resolve_precision``).
    ``keep_targets``: record each frame's {face track id: target AUs} in ``targets``.
    ``overlap=False`` runs the stages one after the other, in one thread (the baseline).
    """
    t0 = time.perf_counter()
    out_path, kind = _checked_request(video, output, aus, strength, detect_every)
    with VideoJob(video, out_path, kind, t0, keep_targets) as job:
        timeline = job.open_timeline(aus, timeline_end, detect_every, detector, relative)
        size, motion, renderer = _renderer(animator, weights, device, batch_size, precision,
                                           job.timings, overlap)
        tracker = FaceTracker(size, job.fps, detect_every, detector, smooth=smooth)
        targets = FaceTargets(timeline, job.fps, size, motion, strength, relative)
        return job.run(renderer, job.frames(tracker, targets), tracker, crf, overlap, quiet)


def _checked_request(video, output, aus: str, strength: float,
                     detect_every: int) -> tuple[Path, str]:
    """The output path and its kind ("mp4" or "frames"), after the checks that need no
    decoding: the options, the output (not an input, not a GIF)."""
    if not math.isfinite(strength) or strength < 0:
        raise GanAnimError(f"--strength must be 0 or more, got {strength}")
    if detect_every < 1:
        raise GanAnimError(f"--detect-every must be at least 1, got {detect_every}")
    out_path = Path(output) if output else default_video_output(video, aus)
    check_output_path(out_path, [video] + ([aus] if Path(aus).is_file() else []))
    kind = output_kind(out_path)
    if kind == "gif":
        raise GanAnimError(f"{out_path}: write a video to .mp4 (or a folder of PNG frames); "
                           "GIF is for short photo animations")
    return out_path, kind


def _renderer(animator, weights, device: str, batch_size: int, precision: str,
              timings: dict, overlap: bool) -> tuple[int, bool, Renderer]:
    """The generator's side: (crop size S, whether it moves landmarks, the ``Renderer``
    over ``animator``, loaded from ``weights`` when None)."""
    from .photo import Animator

    if animator is None:
        animator = Animator(weights, device, batch_size, precision=precision)
    model = animator.model
    motion = getattr(model.generator, "motion", None) is not None
    return model.size, motion, Renderer(model, timings, overlap=overlap)


class FaceTargets:
    """Each tracked face of a frame -> its ``FaceRender``: the (S,S,3) crop, the (17,)
    target AUs from the timeline row and, for a motion generator, its (68,2) normalised
    landmarks and (17,) own AUs.

    The faces' own AUs (``FaceAUSmoother``) are estimated only when a target needs them:
    ``relative``, ``strength`` other than 1, a timeline missing some AUs, or motion.
    """

    def __init__(self, timeline: AUTimeline, fps: float, size: int, motion: bool,
                 strength: float, relative: bool):
        self.timeline, self.size, self.motion = timeline, size, motion
        self.strength, self.relative = strength, relative
        need_own = relative or strength != 1.0 or timeline.partial or motion
        self.own_aus = FaceAUSmoother(fps) if need_own else None

    def frame(self, frame: np.ndarray, faces: list, row: np.ndarray) -> FrameRender:
        """``frame`` (H,W,3 uint8) with its ``faces`` (``TrackedFace``) and timeline ``row``."""
        own_aus = self.own_aus(frame, faces) if self.own_aus is not None else {}
        item = FrameRender(frame)
        for face in faces:
            own = own_aus.get(face.id)
            item.faces.append(FaceRender(
                face.transform, crop(frame, face.transform, self.size),
                face_target(own, row, self.timeline.first, self.strength, self.relative),
                normalised_landmarks(face.landmarks, face.transform, self.size) if self.motion else None,
                np.asarray(own, np.float32) if self.motion else None))
        return item


class VideoJob:
    """One clip through the pipeline: the reader and the AU timeline (closed on exit),
    the stage timings and the frame counts.

    ``open_timeline`` -> ``frames`` (decode + track + targets, a generator) -> ``run``
    (render, encode, the result).
    """

    def __init__(self, video, out_path: Path, kind: str, t0: float, keep_targets: bool = False):
        self.video, self.out_path, self.kind, self.t0 = video, out_path, kind, t0
        self.timings = dict.fromkeys(STAGES, 0.0)
        self.targets = [] if keep_targets else None  # per frame {face track id: (17,) target}
        self.frames_done = self.frames_with_faces = 0
        self.timeline: AUTimeline | None = None
        self.notes: list[str] = []  # warnings shown with the summary
        self.reader = VideoReader(video)

    def __enter__(self) -> VideoJob:
        return self

    def __exit__(self, *exc) -> None:
        self.reader.close()
        if self.timeline is not None:
            self.timeline.close()

    def open_timeline(self, aus: str, end: str, detect_every: int, detector: str,
                      relative: bool) -> AUTimeline:
        """Read the clip's header and open ``aus`` at its frame rate."""
        self.info = self.reader.info
        self.fps = float(self.info.fps)
        self.timeline = open_timeline(aus, self.fps, end, detect_every, detector)
        if isinstance(self.timeline, CsvTimeline):
            note = self.timeline.check_clip(self.info.frames_estimate, self.fps)
            self.notes += [note] if note else []
        if relative and self.timeline.constant:
            raise GanAnimError("--relative needs an AU CSV or a driving video "
                               "(a constant expression has no change)")
        return self.timeline

    def frames(self, tracker: FaceTracker, targets: FaceTargets):
        """Decode and track each frame: yields its ``FrameRender`` (faces with targets)."""
        while True:
            t = time.perf_counter()
            frame = next(self.reader, None)
            self.timings["decode"] += time.perf_counter() - t
            if frame is None:
                return
            t = time.perf_counter()
            i = self.reader.count - 1
            faces = tracker.update(frame)
            item = targets.frame(frame, faces, self.timeline.at(i, i / self.fps))
            if self.targets is not None:
                self.targets.append({face.id: f.target for face, f in zip(faces, item.faces)})
            self.frames_with_faces += bool(faces)
            self.timings["track"] += time.perf_counter() - t
            yield item

    def run(self, renderer: Renderer, frames, tracker: FaceTracker, crf: int, overlap: bool,
            quiet: bool) -> VideoResult:
        """Render ``frames`` and encode them to the output, keeping the clip's audio; the
        result (``tracker`` counts the face tracks), its summary line printed unless ``quiet``."""
        audio = self.video if self.info.audio_codec and self.kind == "mp4" else None
        writer = FrameWriter(self.out_path, fps=self.info.fps, crf=crf, audio_from=audio,
                             audio_codec="copy" if self.info.audio_codec in MP4_AUDIO else "aac",
                             background=overlap)
        with Reporter(quiet) as rep, writer, rep.stage("video", self.info.frames_estimate) as advance:
            for note in self.notes:
                rep.warn(note)
            # decode + track, generate, blend and encode each run in their own thread,
            # joined by short queues; torch uses every core while it runs (with
            # OMP_WAIT_POLICY=PASSIVE its idle threads give the cores back: one torch thread
            # is 20-40 % slower: docs/benchmarks.md)
            rendered = renderer.render(prefetch(frames, TRACK_AHEAD) if overlap else frames)
            with contextlib.closing(rendered):
                for out in rendered:
                    t = time.perf_counter()
                    writer.write(out)
                    self.timings["encode"] += time.perf_counter() - t
                    self.frames_done += 1
                    advance(rate=f"{self.frames_done / (time.perf_counter() - self.t0):.1f} frames/s")
            if self.frames_with_faces == 0:
                raise GanAnimError(f"{self.video}: no face found in any of its {self.frames_done} frames")
            t = time.perf_counter()
        self.timings["encode"] += time.perf_counter() - t
        res = self.result(tracker.next_id)
        rep.summary(res.summary())
        return res

    def result(self, tracks: int) -> VideoResult:
        """The counts and timings so far (the driving video's own time apart)."""
        if isinstance(self.timeline, DrivingVideoTimeline):
            self.timings["driver"] = self.timeline.seconds
            self.timings["track"] -= self.timeline.seconds
        return VideoResult(self.out_path, self.frames_done, self.frames_with_faces, tracks, self.fps,
                           self.info.size, time.perf_counter() - self.t0, self.timings, self.targets)
