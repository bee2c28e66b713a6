"""The video pipeline: decode, track faces, follow an AU timeline, render, encode.

    from gan_anim.video import animate_video
    animate_video("clip.mp4", "out.mp4", aus="aus.csv")

Everything streams: frames are decoded one at a time (``video_io``), faces tracked and
smoothed (``face_tracking``), targets taken from the AU timeline (``au_timeline``), a
few frames buffered so the generator runs on a batch of face crops (``render``), and
finished frames go straight to the encoder (``media.FrameWriter``). Memory does not
grow with the clip's length.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import GanAnimError
from ..faces.align import crop, normalised_landmarks
from ..faces.tracking import FaceTracker, OneEuroFilter
from ..media.paths import check_output_path, output_kind
from ..media.video_reader import MP4_AUDIO, VideoReader
from ..media.writer import FrameWriter
from ..overlap import prefetch
from ..progress import Reporter
from ..render.renderer import FaceRender, FrameRender, Renderer
from .au_timeline import (
    AU_BETA,
    AU_MIN_CUTOFF,
    DrivingVideoTimeline,
    face_target,
    open_timeline,
)


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


def default_video_output(video, aus: str) -> Path:
    """``<clip stem>-<timeline name>.mp4`` in the current folder."""
    from .photo import default_output

    name = Path(aus).stem if Path(aus).suffix else aus
    return default_output(video, name, ".mp4")


def animate_video(video, output=None, *, aus: str, weights=None, device: str = "auto",
                  batch_size: int = 16, precision: str = "auto", detect_every: int = 10,
                  strength: float = 1.0,
                  relative: bool = False, timeline_end: str = "hold", crf: int = 18,
                  detector: str = "hog", smooth: bool = True, quiet: bool = True,
                  animator=None, keep_targets: bool = False, overlap: bool = True) -> VideoResult:
    """Re-render every face of ``video`` so its expression follows ``aus``; write ``output``.

    ``aus``: an OpenFace-format CSV, a driving video, or a preset / JSON / inline
    expression (constant). Output keeps the input's size, frame rate, frame count
    and audio. ``timeline_end``: "hold" or "loop" a timeline shorter than the clip.
    ``animator``: an ``animate.Animator`` to reuse (else one is loaded, in ``precision``:
    see ``render.device.resolve_precision``).
    ``keep_targets``: record each frame's {face track id: target AUs} in ``targets``.
    ``overlap=False`` runs the stages one after the other, in one thread (the baseline).
    """
    from .photo import Animator

    t0 = time.perf_counter()
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
    timings = dict.fromkeys(("decode", "track", "generate", "blend", "encode"), 0.0)

    reader = VideoReader(video)
    timeline = None
    try:
        info = reader.info
        fps = float(info.fps)
        timeline = open_timeline(aus, fps, timeline_end, detect_every, detector)
        if relative and timeline.constant:
            raise GanAnimError("--relative needs an AU CSV or a driving video "
                               "(a constant expression has no change)")
        if animator is None:
            animator = Animator(weights, device, batch_size, precision=precision)
        model = animator.model
        size = model.size
        motion = model.generator.motion is not None
        need_own = relative or strength != 1.0 or timeline.partial or motion
        tracker = FaceTracker(size, fps, detect_every, detector, smooth=smooth)
        estimate = None
        if need_own:
            from ..estimator import estimate_from_landmarks as estimate
        audio = video if info.audio_codec and kind == "mp4" else None
        writer = FrameWriter(out_path, fps=info.fps, crf=crf, audio_from=audio,
                             audio_codec="copy" if info.audio_codec in MP4_AUDIO else "aac",
                             background=overlap)
        stats = {"frames": 0, "with_faces": 0}
        targets = [] if keep_targets else None

        def frames():
            """Decode and track each frame; its faces with their targets."""
            while True:
                t = time.perf_counter()
                frame = next(reader, None)
                timings["decode"] += time.perf_counter() - t
                if frame is None:
                    return
                t = time.perf_counter()
                i = reader.count - 1
                faces = tracker.update(frame)
                row = timeline.at(i, i / fps)
                item = FrameRender(frame)
                for face in faces:
                    own = None
                    if need_own:  # the face's own AUs in this frame, smoothed over time
                        tr = face.track
                        tr.own_filter = tr.own_filter or OneEuroFilter(AU_MIN_CUTOFF, AU_BETA)
                        own = tr.own = tr.own_filter(estimate(face.landmarks), 1 / fps)
                    item.faces.append(FaceRender(
                        face.transform, crop(frame, face.transform, size),
                        face_target(own, row, timeline.first, strength, relative),
                        normalised_landmarks(face.landmarks, face.transform, size) if motion else None,
                        np.asarray(own, np.float32) if motion else None))
                if targets is not None:
                    targets.append({face.id: f.target for face, f in zip(faces, item.faces)})
                stats["with_faces"] += bool(faces)
                timings["track"] += time.perf_counter() - t
                yield item

        with Reporter(quiet) as rep, writer, rep.stage("video", info.frames_estimate) as advance:
            # decode + track, generate, blend and encode each run in their own thread,
            # joined by short queues; torch uses every core while it runs (with
            # OMP_WAIT_POLICY=PASSIVE its idle threads give the cores back: one torch thread
            # was 20-40 % slower, README "Speed")
            rendered = Renderer(model, timings, overlap=overlap).render(
                prefetch(frames(), 4) if overlap else frames())
            with contextlib.closing(rendered):
                for out in rendered:
                    t = time.perf_counter()
                    writer.write(out)
                    timings["encode"] += time.perf_counter() - t
                    stats["frames"] += 1
                    advance(rate=f"{stats['frames'] / (time.perf_counter() - t0):.1f} frames/s")
            if stats["with_faces"] == 0:
                raise GanAnimError(f"{video}: no face found in any of its {stats['frames']} frames")
            t = time.perf_counter()
        timings["encode"] += time.perf_counter() - t
        if isinstance(timeline, DrivingVideoTimeline):
            timings["driver"] = timeline.seconds
            timings["track"] -= timeline.seconds
        seconds = time.perf_counter() - t0
        res = VideoResult(out_path, stats["frames"], stats["with_faces"], tracker.next_id, fps,
                          info.size, seconds, timings, targets)
        if not quiet:
            w, h = info.size
            rep.summary(f"{res.frames} frames {w}x{h} @ {fps:.3g} fps, {res.frames_with_faces} with "
                        f"faces ({res.frames_without_faces} without, passed through), {res.faces} face "
                        f"track(s) -> {out_path} in {seconds:.1f} s ({res.frames / seconds:.1f} frames/s)")
        return res
    finally:
        reader.close()
        if timeline is not None:
            timeline.close()
