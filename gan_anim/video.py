"""The video pipeline: decode, track faces, follow an AU track, generate, blend, encode.

    from gan_anim.video import animate_video
    animate_video("clip.mp4", "out.mp4", aus="aus.csv")

Everything streams: frames are decoded by ffmpeg one at a time, a few are
buffered so the generator runs on a batch of face crops, and finished frames go
straight to the encoder. Memory does not grow with the clip's length.

Faces are detected every ``detect_every`` frames and on scene cuts; in between
each face is tracked by re-fitting dlib's 68 landmarks inside its previous box.
The alignment transform of every face is smoothed over time with a One-Euro
filter (Casiez et al., CHI 2012) on (centre, log scale, angle), so crops and
blended faces do not jitter while fast head motion is still followed.
"""
from __future__ import annotations


import contextlib
import logging
import math
import os
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from . import aus as au
from .blend import FaceBlender
from .errors import GanAnimError
from .faces import Face, align, crop, detect_faces, invert, landmarks
from .motion import normalised_landmarks
from .media import VIDEO_EXTS, FrameWriter, check_input_file, check_output_path, output_kind
from .progress import Reporter

PHOTO_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".heic"}
# Audio codecs that go into an MP4 as they are; anything else is re-encoded to AAC.
MP4_AUDIO = {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"}
# Mean absolute difference (0..255) between consecutive 64 px grey thumbnails above
# which a frame starts a new shot: tracks are dropped and faces detected afresh.
CUT_THRESHOLD = 30.0
# One-Euro defaults for the alignment (centre in face sizes, log scale, angle in radians).
MIN_CUTOFF = 0.5   # Hz: smoothing of a still face
BETA = 10.0        # per face-size/s of speed: less lag when the face moves
D_CUTOFF = 1.0     # Hz: smoothing of the speed estimate


# ---------------------------------------------------------------------- decoding

@dataclass
class VideoInfo:
    path: Path
    size: tuple[int, int]          # (width, height) as displayed (rotation applied)
    fps: Fraction                  # average frame rate
    duration: float                # seconds (0 if unknown)
    audio_codec: str | None

    @property
    def frames_estimate(self) -> int | None:
        return round(self.duration * self.fps) or None if self.duration else None


def _fps_fraction(fps: float) -> Fraction:
    """ffmpeg's rounded fps (29.97) -> the exact rate (30000/1001)."""
    for base in (24, 25, 30, 48, 50, 60, 100, 120, 240):
        if abs(fps - base * 1000 / 1001) < 0.006:
            return Fraction(base * 1000, 1001)
    return Fraction(fps).limit_denominator(1000)


class VideoReader:
    """Frames of a video file as RGB uint8 (H, W, 3) arrays, decoded one at a time.

    No frame-rate conversion (``-fps_mode passthrough``): variable-frame-rate
    footage gives exactly its own frames. Rotation metadata is applied by ffmpeg,
    so frames come upright (``info.size`` is the displayed size).
    """

    def __init__(self, path):
        import imageio_ffmpeg

        path = check_input_file(path, "video")
        if path.suffix.lower() in PHOTO_EXTS:
            raise GanAnimError(f"{path}: is a photo, not a video (use gan-anim animate)")
        self._gen = imageio_ffmpeg.read_frames(
            str(path), pix_fmt="rgb24", output_params=["-fps_mode", "passthrough"])
        log = logging.getLogger("imageio_ffmpeg")
        level = log.level
        log.setLevel(logging.ERROR)  # "frame size differs from the source" for rotated video
        try:
            meta = next(self._gen)
        except Exception as exc:
            self.close()
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip() and "===" not in ln]
            why = next((ln for ln in reversed(lines) if ":" in ln), "no video stream")
            raise GanAnimError(f"{path}: not a readable video ({why[-120:]})") from None
        finally:
            log.setLevel(level)
        fps = float(meta.get("fps") or 0.0)
        self.fps_known = fps > 0
        self.info = VideoInfo(path, tuple(meta["size"]), _fps_fraction(fps or 25.0),
                              float(meta.get("duration") or 0.0), meta.get("audio_codec"))
        w, h = self.info.size
        self._shape = (h, w, 3)
        self.count = 0

    def __iter__(self):
        return self

    def __next__(self) -> np.ndarray:
        try:
            buf = next(self._gen)
        except StopIteration:
            if self.count == 0:
                raise GanAnimError(f"{self.info.path}: no video frames could be decoded") from None
            raise
        except Exception as exc:
            raise GanAnimError(f"{self.info.path}: corrupt video, decoding failed at frame "
                               f"{self.count + 1} ({str(exc).splitlines()[0]})") from None
        self.count += 1
        return np.frombuffer(buf, np.uint8).reshape(self._shape)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._gen.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


# ------------------------------------------------------------------- smoothing

class OneEuroFilter:
    """One-Euro low-pass filter on a vector: cutoff grows with speed (Casiez 2012)."""

    def __init__(self, min_cutoff: float = MIN_CUTOFF, beta: float = BETA,
                 d_cutoff: float = D_CUTOFF):
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.x = self.dx = None

    @staticmethod
    def _alpha(cutoff, dt):
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: np.ndarray, dt: float) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self.x is None:
            self.x, self.dx = x.copy(), np.zeros_like(x)
            return x.copy()
        a_d = self._alpha(self.d_cutoff, dt)
        self.dx = self.dx + a_d * ((x - self.x) / dt - self.dx)
        a = self._alpha(self.min_cutoff + self.beta * np.abs(self.dx), dt)
        self.x = self.x + a * (x - self.x)
        return self.x.copy()


def transform_params(m: np.ndarray, size: int, unit: float) -> np.ndarray:
    """2x3 similarity (image -> crop) -> (centre x, centre y in ``unit`` px, log scale, angle)."""
    c = invert(m) @ np.array([size / 2, size / 2, 1.0])
    return np.array([c[0] / unit, c[1] / unit, math.log(math.hypot(m[0, 0], m[0, 1])),
                     math.atan2(m[0, 1], m[0, 0])])


def params_transform(p: np.ndarray, size: int, unit: float) -> np.ndarray:
    """Inverse of ``transform_params``."""
    s, a = math.exp(p[2]), p[3]
    rot = s * np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
    t = size / 2 - rot @ (np.asarray(p[:2]) * unit)
    return np.concatenate([rot, t[:, None]], axis=1)


# -------------------------------------------------------------------- tracking

def _landmark_box(lm: np.ndarray):
    (x0, y0), (x1, y1) = lm.min(0), lm.max(0)
    return (x0 + x1) / 2, (y0 + y1) / 2, max(math.sqrt(max(x1 - x0, 1) * max(y1 - y0, 1)), 1.0)


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Track:
    """One face followed through time."""

    id: int
    box: tuple                       # left, top, right, bottom (float, image px)
    landmarks: np.ndarray            # raw (68, 2) of the current frame
    box_rel: np.ndarray              # detector box relative to the landmark box
    unit: float                      # face size at the start (px), the smoothing unit
    filter: OneEuroFilter | None
    transform: np.ndarray = None     # smoothed 2x3 image -> crop
    own_filter: OneEuroFilter | None = None
    own: np.ndarray | None = None    # the face's own AUs (0..5), smoothed


@dataclass
class TrackedFace:
    id: int
    landmarks: np.ndarray
    transform: np.ndarray
    track: Track


class FaceTracker:
    """Detect every ``detect_every`` frames and on cuts, track with landmarks in between.

    ``update(frame)`` returns the faces of that frame with a smoothed alignment
    transform; ids stay the same for the same face across frames (IoU matching).
    ``smooth=False`` gives the raw per-frame alignment (for comparison).
    """

    def __init__(self, size: int, fps: float, detect_every: int = 10, detector: str = "hog",
                 smooth: bool = True, min_cutoff: float = MIN_CUTOFF, beta: float = BETA,
                 cut_threshold: float = CUT_THRESHOLD):
        if detect_every < 1:
            raise GanAnimError(f"--detect-every must be at least 1, got {detect_every}")
        self.size, self.dt = size, 1.0 / float(fps)
        self.detect_every, self.detector = detect_every, detector
        self.smooth, self.min_cutoff, self.beta = smooth, min_cutoff, beta
        self.cut_threshold = cut_threshold
        self.tracks: list[Track] = []
        self.next_id = 0
        self.index = -1
        self.last_detect = None
        self._thumb = None
        self.detections = self.cuts = 0

    # -- helpers
    def _is_cut(self, frame: np.ndarray) -> bool:
        h, w = frame.shape[:2]
        step = max(1, min(h, w) // 72)
        grey = cv2.cvtColor(np.ascontiguousarray(frame[::step, ::step]), cv2.COLOR_RGB2GRAY)
        thumb = cv2.resize(grey, (64, 36), interpolation=cv2.INTER_AREA).astype(np.float32)
        prev, self._thumb = self._thumb, thumb
        return prev is not None and float(np.abs(thumb - prev).mean()) > self.cut_threshold

    def _new_track(self, face: Face) -> Track:
        cx, cy, s = _landmark_box(face.landmarks)
        rel = (np.array(face.box, np.float64) - [cx, cy, cx, cy]) / s
        unit = self.size / math.hypot(*align(face.landmarks, self.size)[0, :2])
        track = Track(self.next_id, tuple(map(float, face.box)), face.landmarks, rel, unit,
                      OneEuroFilter(self.min_cutoff, self.beta) if self.smooth else None)
        self.next_id += 1
        return track

    def _follow(self, track: Track, frame: np.ndarray) -> bool:
        """Re-fit landmarks inside the previous box; False when the face is lost."""
        h, w = frame.shape[:2]
        lm = landmarks(frame, track.box)
        cx, cy, s = _landmark_box(lm)
        box = tuple(np.array([cx, cy, cx, cy]) + track.box_rel * s)
        old_w = track.box[2] - track.box[0]
        new_w = box[2] - box[0]
        moved = math.hypot((box[0] + box[2] - track.box[0] - track.box[2]) / 2,
                           (box[1] + box[3] - track.box[1] - track.box[3]) / 2)
        ix = max(0.0, min(box[2], w) - max(box[0], 0))
        iy = max(0.0, min(box[3], h) - max(box[1], 0))
        inside = ix * iy / max((box[2] - box[0]) * (box[3] - box[1]), 1.0)
        if not (0.67 < new_w / max(old_w, 1) < 1.5) or moved > 0.5 * old_w or inside < 0.3:
            return False
        track.box, track.landmarks = box, lm
        return True

    def _smooth(self, track: Track) -> None:
        m = align(track.landmarks, self.size)
        if track.filter is None:
            track.transform = m
            return
        p = transform_params(m, self.size, track.unit)
        if track.filter.x is not None:  # keep the angle continuous
            p[3] = track.filter.x[3] + (p[3] - track.filter.x[3] + math.pi) % (2 * math.pi) - math.pi
        track.transform = params_transform(track.filter(p, self.dt), self.size, track.unit)

    def _detect(self, frame: np.ndarray) -> None:
        """Match fresh detections to tracks (greedy IoU); unmatched tracks end."""
        self.detections += 1
        faces = detect_faces(frame, self.detector)
        pairs = sorted(((_iou(t.box, f.box), i, j) for i, t in enumerate(self.tracks)
                        for j, f in enumerate(faces)), reverse=True)
        used_t, used_f, kept = set(), set(), []
        for iou, i, j in pairs:
            if iou < 0.2 or i in used_t or j in used_f:
                continue
            used_t.add(i)
            used_f.add(j)
            track, face = self.tracks[i], faces[j]
            cx, cy, s = _landmark_box(face.landmarks)
            track.box_rel = (np.array(face.box, np.float64) - [cx, cy, cx, cy]) / s
            track.box, track.landmarks = tuple(map(float, face.box)), face.landmarks
            kept.append(track)
        kept += [self._new_track(f) for j, f in enumerate(faces) if j not in used_f]
        self.tracks = sorted(kept, key=lambda t: t.id)

    # -- the step
    def update(self, frame: np.ndarray) -> list[TrackedFace]:
        self.index += 1
        cut = self._is_cut(frame)
        if cut:
            self.cuts += 1
            self.tracks = []
        if cut or self.last_detect is None or self.index - self.last_detect >= self.detect_every:
            self.last_detect = self.index
            self._detect(frame)
        else:
            self.tracks = [t for t in self.tracks if self._follow(t, frame)]
            # two tracks that drifted onto the same face: keep the older
            kept = []
            for t in self.tracks:
                if all(_iou(t.box, k.box) < 0.5 for k in kept):
                    kept.append(t)
            self.tracks = kept
        for t in self.tracks:
            self._smooth(t)
        return [TrackedFace(t.id, t.landmarks, t.transform, t) for t in self.tracks]


# ------------------------------------------------------------------- AU tracks

class AUTrack:
    """Target AUs per clip frame: (17,) on 0..5 with NaN where the track has no value."""

    first: np.ndarray        # the track's first row (for --relative)
    partial: bool            # some AUs are absent (NaN): faces keep their own there
    constant: bool = False
    description: str = ""

    def at(self, index: int, seconds: float) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        pass


class ConstantTrack(AUTrack):
    """A preset, JSON file or inline expression: the same target for every frame."""

    constant = True

    def __init__(self, spec: str):
        values, complete = au.parse_expression(spec)
        self.row = np.full(len(au.AU_NAMES), np.nan, np.float32)
        for name, v in values.items():
            self.row[au.AU_INDEX[name]] = v
        self.first = self.row
        self.partial = bool(np.isnan(self.row).any())
        self.description = spec

    def at(self, index, seconds):
        return self.row


def _fill_failed(aus: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Rows without a face (success 0) take the nearest earlier successful row (or the first)."""
    idx = np.where(ok, np.arange(len(ok)), -1)
    idx = np.maximum.accumulate(idx)
    idx[idx < 0] = int(np.argmax(ok))
    return aus[idx]


class CsvTrack(AUTrack):
    """An OpenFace-format CSV, matched to clip frames by ``frame``, else ``timestamp``,
    else row order. Frame numbers count from 1 as in OpenFace (from 0 if a row has 0)."""

    def __init__(self, path, fps: float, end: str):
        d = au.read_openface_csv(path)
        ok = d["success"]
        if not ok.any():
            raise GanAnimError(f"{path}: no row has a face (every success is 0)")
        aus = _fill_failed(d["aus"], ok)
        if d["frame"] is not None:
            keys = d["frame"].astype(np.float64)
            if (keys < 0).any():
                raise GanAnimError(f"{path}: negative frame number {int(keys.min())}")
            keys -= 0 if (keys == 0).any() else 1
            self.unit, self.tolerance = "frame", 0.0
        elif d["timestamp"] is not None:
            keys = d["timestamp"].astype(np.float64)
            if (keys < 0).any() or not np.isfinite(keys).all():
                raise GanAnimError(f"{path}: timestamps must be finite and not negative")
            self.unit, self.tolerance = "time", 0.5 / fps
        else:
            keys = np.arange(len(aus), dtype=np.float64)
            self.unit, self.tolerance = "frame", 0.0
        order = np.argsort(keys, kind="stable")
        keys, aus = keys[order], aus[order]
        keys, first = np.unique(keys, return_index=True)  # first row of a repeated frame
        self.keys, self.aus = keys, aus[first]
        step = float(np.median(np.diff(keys))) if len(keys) > 1 else (1.0 if self.unit == "frame" else 1 / fps)
        self.period = keys[-1] + step
        self.end = end
        self.first = self.aus[0]
        self.partial = not d["present"].all()
        self.description = f"{Path(path).name} ({len(keys)} rows by {self.unit})"

    def at(self, index, seconds):
        x = float(index) if self.unit == "frame" else seconds
        if x > self.keys[-1] and self.end == "loop":
            x = x % self.period
        j = int(np.searchsorted(self.keys, x + self.tolerance + 1e-9, side="right")) - 1
        return self.aus[max(j, 0)]


class DrivingVideoTrack(AUTrack):
    """AUs of the largest face of a driving video, estimated on the fly as the clip
    is processed (streaming; only 17 numbers per driving frame are kept, for looping)."""

    def __init__(self, path, end: str, detect_every: int = 10, detector: str = "hog"):
        self.reader = VideoReader(path)
        self.fps = float(self.reader.info.fps)
        self.tracker = FaceTracker(64, self.fps, detect_every, detector)
        self.end = end
        self.rows: list[np.ndarray] = []
        self.filter = OneEuroFilter(min_cutoff=1.5, beta=0.5)
        self.done = False
        self.target_id = None
        self.last = None
        self.seconds = 0.0
        self.partial = False
        self.description = f"{Path(path).name} (driving video)"
        # Read up to the first face: a driver without any face is an error up front.
        while self.last is None and self._read_one():
            pass
        if self.last is None:
            raise GanAnimError(f"{path}: no face found in the driving video")
        self.first = next(r for r in self.rows if not np.isnan(r).any())

    def _read_one(self) -> bool:
        if self.done:
            return False
        t = time.perf_counter()
        try:
            frame = next(self.reader)
        except StopIteration:
            self.done = True
            self.reader.close()
            return False
        faces = self.tracker.update(frame)
        if faces:
            face = next((f for f in faces if f.id == self.target_id), None)
            if face is None:  # the largest face (by eye distance) becomes the driver
                face = max(faces, key=lambda f: np.ptp(f.landmarks[:, 0]))
                self.target_id = face.id
                self.filter.x = None if self.last is None else self.filter.x
            from .estimator import estimate_from_landmarks

            est = np.asarray(estimate_from_landmarks(face.landmarks), np.float64)
            self.last = np.clip(self.filter(est, 1 / self.fps), 0, au.AU_SCALE).astype(np.float32)
        self.rows.append(self.last if self.last is not None else
                         np.full(len(au.AU_NAMES), np.nan, np.float32))
        self.seconds += time.perf_counter() - t
        return True

    def at(self, index, seconds):
        j = int(round(seconds * self.fps))
        while len(self.rows) <= j and self._read_one():
            pass
        n = len(self.rows)
        if j >= n:
            j = j % n if self.end == "loop" else n - 1
        row = self.rows[j]
        return self.first if np.isnan(row).any() else row

    def close(self):
        self.reader.close()


def open_track(spec: str, fps: float, end: str = "hold", detect_every: int = 10,
               detector: str = "hog") -> AUTrack:
    """``--aus``: a .csv (OpenFace format), a video (driving), else a preset/JSON/inline."""
    if end not in ("hold", "loop"):
        raise GanAnimError(f"--track-end must be hold or loop, got {end!r}")
    suffix = Path(spec).suffix.lower()
    if suffix == ".csv":
        return CsvTrack(spec, fps, end)
    if suffix in VIDEO_EXTS:
        return DrivingVideoTrack(spec, end, detect_every, detector)
    return ConstantTrack(spec)


def face_target(own: np.ndarray | None, row: np.ndarray, first: np.ndarray,
                strength: float = 1.0, relative: bool = False) -> np.ndarray:
    """One face's target AUs (0..5) for one frame.

    Absolute: own + strength * (row - own). Relative: own + strength * (row - first).
    AUs absent from the track (NaN) keep the face's own. ``own`` may be None only
    for an absolute, complete track at strength 1 (then the target is the row).
    """
    if own is None:
        return np.clip(row, 0, au.AU_SCALE).astype(np.float32)
    change = (row - first) if relative else (row - own)
    target = own + strength * np.where(np.isnan(change), 0.0, change)
    return np.clip(target, 0, au.AU_SCALE).astype(np.float32)


# -------------------------------------------------------------------- pipeline

@contextlib.contextmanager
def generator_threads(device):
    """On CPU, let torch use half the cores while it runs: ffmpeg's decoder and
    encoder and dlib run alongside (two torch threads on a busy 2-core machine
    are several times slower than one)."""
    import torch

    if getattr(device, "type", str(device)) != "cpu":
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // 2))
    try:
        yield
    finally:
        torch.set_num_threads(old)


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

    @property
    def frames_without_faces(self) -> int:
        return self.frames - self.frames_with_faces


@dataclass
class _Pending:
    frame: np.ndarray
    transforms: list
    crops: list
    targets: list
    landmarks: list = field(default_factory=list)
    owns: list = field(default_factory=list)


def default_video_output(video, aus: str) -> Path:
    """``<clip stem>-<track name>.mp4`` in the current folder."""
    from .animate import default_output

    name = Path(aus).stem if Path(aus).suffix else aus
    return default_output(video, name, ".mp4")


def animate_video(video, output=None, *, aus: str, weights=None, device: str = "auto",
                  batch_size: int = 16, detect_every: int = 10, strength: float = 1.0,
                  relative: bool = False, track_end: str = "hold", crf: int = 18,
                  detector: str = "hog", smooth: bool = True, quiet: bool = True,
                  animator=None) -> VideoResult:
    """Re-render every face of ``video`` so its expression follows ``aus``; write ``output``.

    ``aus``: an OpenFace-format CSV, a driving video, or a preset / JSON / inline
    expression (constant). Output keeps the input's size, frame rate, frame count
    and audio. ``animator``: an ``animate.Animator`` to reuse (else one is loaded).
    """
    from .animate import Animator

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
    track = None
    try:
        info = reader.info
        fps = float(info.fps)
        track = open_track(aus, fps, track_end, detect_every, detector)
        if relative and track.constant:
            raise GanAnimError("--relative needs a CSV track or a driving video "
                               "(a constant expression has no change)")
        if animator is None:
            animator = Animator(weights, device, batch_size)
        size, batch_size = animator.size, animator.batch_size
        motion = getattr(animator.generator, "motion", None) is not None
        need_own = relative or strength != 1.0 or track.partial or motion
        tracker = FaceTracker(size, fps, detect_every, detector, smooth=smooth)
        estimate = None
        if need_own:
            from .estimator import estimate_from_landmarks as estimate
        audio = None
        if info.audio_codec and kind == "mp4":
            audio = video
        writer = FrameWriter(out_path, fps=info.fps, crf=crf, audio_from=audio,
                             audio_codec="copy" if info.audio_codec in MP4_AUDIO else "aac")
        stats = {"frames": 0, "with_faces": 0}
        pending: list[_Pending] = []
        max_pending = max(1, min(batch_size, 16))

        with Reporter(quiet) as rep, writer, rep.stage("video", info.frames_estimate) as advance, \
                generator_threads(animator.device):

            def flush():
                jobs = [(p, k) for p in pending for k in range(len(p.crops))]
                if jobs:
                    t = time.perf_counter()
                    crops = np.stack([p.crops[k] for p, k in jobs])
                    targets = np.stack([p.targets[k] for p, k in jobs])
                    lms = np.stack([p.landmarks[k] for p, k in jobs]) if motion else None
                    owns = np.stack([p.owns[k] for p, k in jobs]) if motion else None
                    edits = animator.generate(crops, targets, lms, owns)
                    timings["generate"] += time.perf_counter() - t
                n = 0
                for p in pending:
                    frame = p.frame
                    if p.crops:
                        t = time.perf_counter()
                        frame = p.frame.copy()
                        for m in p.transforms:
                            FaceBlender(frame.shape, m, size).blend(frame, edits[n], source=p.frame)
                            n += 1
                        timings["blend"] += time.perf_counter() - t
                    t = time.perf_counter()
                    writer.write(frame)
                    timings["encode"] += time.perf_counter() - t
                    stats["frames"] += 1
                    elapsed = time.perf_counter() - t0
                    advance(rate=f"{stats['frames'] / elapsed:.1f} frames/s")
                pending.clear()

            while True:
                t = time.perf_counter()
                frame = next(reader, None)
                timings["decode"] += time.perf_counter() - t
                if frame is None:
                    break
                t = time.perf_counter()
                i = reader.count - 1
                faces = tracker.update(frame)
                row = track.at(i, i / fps)
                p = _Pending(frame, [], [], [])
                for face in faces:
                    own = None
                    if need_own:  # the face's own AUs in this frame, smoothed over time
                        tr = face.track
                        tr.own_filter = tr.own_filter or OneEuroFilter(min_cutoff=1.5, beta=0.5)
                        own = tr.own = tr.own_filter(estimate(face.landmarks), 1 / fps)
                    p.transforms.append(face.transform)
                    p.crops.append(crop(frame, face.transform, size))
                    p.targets.append(face_target(own, row, track.first, strength, relative))
                    if motion:
                        p.landmarks.append(normalised_landmarks(face.landmarks, face.transform, size))
                        p.owns.append(np.asarray(own, np.float32))
                stats["with_faces"] += bool(faces)
                pending.append(p)
                timings["track"] += time.perf_counter() - t
                if sum(len(q.crops) for q in pending) >= batch_size or len(pending) >= max_pending:
                    flush()
            flush()
            if stats["with_faces"] == 0:
                raise GanAnimError(f"{video}: no face found in any of its {stats['frames']} frames")
            t = time.perf_counter()
        timings["encode"] += time.perf_counter() - t
        if isinstance(track, DrivingVideoTrack):
            timings["driver"] = track.seconds
            timings["track"] -= track.seconds
        seconds = time.perf_counter() - t0
        res = VideoResult(out_path, stats["frames"], stats["with_faces"], tracker.next_id, fps,
                          info.size, seconds, timings)
        if not quiet:
            w, h = info.size
            rep.summary(f"{res.frames} frames {w}x{h} @ {fps:.3g} fps, {res.frames_with_faces} with "
                        f"faces ({res.frames_without_faces} without, passed through), {res.faces} face "
                        f"track(s) -> {out_path} in {seconds:.1f} s ({res.frames / seconds:.1f} frames/s)")
        return res
    finally:
        reader.close()
        if track is not None:
            track.close()
