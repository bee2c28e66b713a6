"""AU timelines: the target AUs (0..5) of every clip frame for ``gan-anim video --aus``.

A timeline is a constant expression (preset, JSON, inline), an OpenFace-format CSV or a
driving video. A driving video's AUs come from ``video_aus``, the same function that
``gan-anim aus clip.mp4 -o aus.csv`` writes to a CSV, and its rows are matched to clip
frames as a CSV's are, so both routes give the same targets.

Per face, ``face_target`` mixes a timeline row with the face's own AUs, which
``FaceAUSmoother`` estimates (``estimation.photo.estimate_face_aus``) and smooths over time.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .. import aus as au
from ..errors import GanAnimError
from ..estimation.photo import EDIT_METHOD, estimate_face_aus
from ..faces.smoothing import OneEuroFilter
from ..faces.tracking import FaceTracker
from ..media.paths import VIDEO_EXTS
from ..media.video_reader import VideoReader

# One-Euro filter on a face's AUs (0..5) estimated per frame: landmark and pixel noise make
# the estimate flicker from frame to frame, and a target built on it would pass that on
# to the rendered face.
AU_MIN_CUTOFF = 1.5  # Hz: smoothing of a still expression
AU_BETA = 0.5        # per AU unit/s of speed: less lag when the expression changes


def video_aus(path, detector: str = "hog", detect_every: int = 10, method: str = "model"):
    """Yield one row per frame of ``path`` for its largest face: (frame from 1, timestamp s,
    confidence, success, aus (17,) on 0..5 or None).

    The face is tracked (``FaceTracker``: detection every ``detect_every`` frames and on cuts,
    landmarks in between), its AUs estimated from the frame and landmarks
    (``estimation.photo.estimate_face_aus``) and smoothed with a One-Euro
    filter. The face followed is the largest when it first appears; when it is lost, the
    largest face found next. ``confidence`` is 1 with a face, else 0 (``success`` 0).
    ``method``: ``estimation.photo.METHODS``.
    """
    with VideoReader(path) as reader:
        fps = float(reader.info.fps)
        tracker = FaceTracker(64, fps, detect_every, detector)
        smooth = OneEuroFilter(AU_MIN_CUTOFF, AU_BETA)
        target_id, last = None, None
        for i, frame in enumerate(reader):
            faces = tracker.update(frame)
            face = next((f for f in faces if f.id == target_id), None)
            if face is None and faces:  # the largest face (by width) becomes the driver
                face = max(faces, key=lambda f: np.ptp(f.landmarks[:, 0]))
                target_id = face.id
            if face is None:
                yield i + 1, i / fps, 0.0, 0, None
                continue
            est = np.asarray(estimate_face_aus(frame, face.landmarks, method), np.float64)
            dt = (i - last if last is not None else 1) / fps
            last = i
            yield i + 1, i / fps, 1.0, 1, np.clip(smooth(est, dt), 0, au.AU_SCALE).astype(np.float32)


def estimate_video(path, detector: str = "hog", detect_every: int = 10,
                   method: str = "model") -> list[tuple]:
    """All rows of ``video_aus`` (for ``aus.write_openface_csv``)."""
    return list(video_aus(path, detector, detect_every, method))


class AUTimeline:
    """Target AUs per clip frame: (17,) on 0..5 with NaN where the timeline has no value."""

    first: np.ndarray        # the timeline's first row (for --relative)
    partial: bool            # some AUs are absent (NaN): faces keep their own there
    constant: bool = False

    def at(self, index: int, seconds: float) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        pass


class ConstantTimeline(AUTimeline):
    """A preset, JSON file or inline expression: the same target for every frame."""

    constant = True

    def __init__(self, spec: str):
        values, complete = au.parse_expression(spec)
        self.row = np.full(len(au.AU_NAMES), np.nan, np.float32)
        for name, v in values.items():
            self.row[au.AU_INDEX[name]] = v
        self.first = self.row
        self.partial = bool(np.isnan(self.row).any())

    def at(self, index, seconds):
        return self.row


def _fill_failed(aus: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Rows without a face (success 0) take the nearest earlier successful row (or the first)."""
    idx = np.where(ok, np.arange(len(ok)), -1)
    idx = np.maximum.accumulate(idx)
    idx[idx < 0] = int(np.argmax(ok))
    return aus[idx]


class CsvTimeline(AUTimeline):
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
        self.path = path

    def check_clip(self, frames: int | None, fps: float) -> str | None:
        """Check the track against a clip of ``frames`` frames (None: unknown, no check).
        A track that starts after the clip's last frame would give every frame its first
        row, silently: an error. One that starts after the clip's first frame gives the
        frames before it its first row: returns a warning line (else None)."""
        if not frames:
            return None
        start = self.keys[0] if self.unit == "frame" else self.keys[0] * fps  # clip frame, from 0
        key = "frame" if self.unit == "frame" else "timestamp"
        if start > frames + 1e-6:  # (a frame of slack: the count is estimated from the duration)
            raise GanAnimError(f"{self.path}: the track's first {key} falls on clip frame "
                               f"{start + 1:.0f}, after the clip's {frames} frames: "
                               f"the track does not overlap the clip")
        if start >= 1 - 1e-6:
            return (f"{self.path}: the track's first {key} falls on clip frame {start + 1:.0f}: "
                    f"the {start:.0f} frames before it take the track's first row")
        return None

    def at(self, index, seconds):
        x = float(index) if self.unit == "frame" else seconds
        if x > self.keys[-1] and self.end == "loop":
            x = x % self.period
        j = int(np.searchsorted(self.keys, x + self.tolerance + 1e-9, side="right")) - 1
        return self.aus[max(j, 0)]


class DrivingVideoTimeline(AUTimeline):
    """The rows of ``video_aus`` for a driving video, read as the clip needs them and matched
    to clip frames by frame number, as ``CsvTimeline`` matches the CSV those rows make (rows
    without a face take the nearest earlier row with one, else the first; past the end hold
    or loop). Only 17 numbers per driving frame are kept."""

    def __init__(self, path, end: str, detect_every: int = 10, detector: str = "hog"):
        self._rows = video_aus(path, detector, detect_every)
        self.end = end
        self.aus: list[np.ndarray] = []
        self.fill: list[int] = []        # index of the nearest row with a face, -1 if none yet
        self.done = False
        self.seconds = 0.0               # time spent reading and estimating the driver
        self.partial = False
        # Read up to the first face: a driver without any face is an error up front.
        while (not self.fill or self.fill[-1] < 0) and self._read_one():
            pass
        if not self.fill or self.fill[-1] < 0:
            raise GanAnimError(f"{path}: no face found in the driving video")
        self.first = self.aus[self.fill[-1]]

    def _read_one(self) -> bool:
        if self.done:
            return False
        t = time.perf_counter()
        row = next(self._rows, None)
        self.seconds += time.perf_counter() - t
        if row is None:
            self.done = True
            return False
        self.aus.append(row[4])
        self.fill.append(len(self.aus) - 1 if row[3] else (self.fill[-1] if self.fill else -1))
        return True

    def at(self, index, seconds):
        while len(self.aus) <= index and self._read_one():
            pass
        n = len(self.aus)
        j = index if index < n else (index % n if self.end == "loop" else n - 1)
        return self.first if self.fill[j] < 0 else self.aus[self.fill[j]]

    def close(self):
        self._rows.close()


def open_timeline(spec: str, fps: float, end: str = "hold", detect_every: int = 10,
                  detector: str = "hog") -> AUTimeline:
    """``--aus``: a .csv (OpenFace format), a video (driving), else a preset/JSON/inline."""
    if end not in ("hold", "loop"):
        raise GanAnimError(f"--track-end must be hold or loop, got {end!r}")
    suffix = Path(spec).suffix.lower()
    if suffix == ".csv":
        return CsvTimeline(spec, fps, end)
    if suffix in VIDEO_EXTS:
        return DrivingVideoTimeline(spec, end, detect_every, detector)
    return ConstantTimeline(spec)


class FaceAUSmoother:
    """Each face's own AUs in a video, frame by frame: estimated from the frame and its landmarks and
    smoothed with a One-Euro filter per face track id. A track missing from a frame has
    ended (the tracker never resumes one), so its filter is dropped."""

    def __init__(self, fps: float):
        self.dt = 1 / fps
        self.filters: dict[int, OneEuroFilter] = {}

    def __call__(self, frame: np.ndarray, faces) -> dict[int, np.ndarray]:
        """{track id: (17,) float64 own AUs, smoothed} for one frame (RGB uint8) and its
        ``faces`` (``faces.tracking.TrackedFace``)."""
        self.filters = {f.id: self.filters.get(f.id) or OneEuroFilter(AU_MIN_CUTOFF, AU_BETA)
                        for f in faces}
        if not faces:
            return {}
        est = estimate_face_aus(frame, np.stack([f.landmarks for f in faces]), EDIT_METHOD)
        return {f.id: self.filters[f.id](e, self.dt) for f, e in zip(faces, est)}


def face_target(own: np.ndarray | None, row: np.ndarray, first: np.ndarray,
                strength: float = 1.0, relative: bool = False) -> np.ndarray:
    """One face's target AUs (0..5) for one frame.

    Absolute: own + strength * (row - own). Relative: own + strength * (row - first).
    AUs absent from the timeline (NaN) keep the face's own. ``own`` may be None only
    for an absolute, complete timeline at strength 1 (then the target is the row).
    """
    if own is None:
        return np.clip(row, 0, au.AU_SCALE).astype(np.float32)
    change = (row - first) if relative else (row - own)
    target = own + strength * np.where(np.isnan(change), 0.0, change)
    return np.clip(target, 0, au.AU_SCALE).astype(np.float32)
