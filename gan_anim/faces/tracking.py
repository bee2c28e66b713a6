"""Faces through time: detection every few frames, landmark tracking in between, and a
One-Euro filter on each face's alignment.

Faces are detected every ``detect_every`` frames and on scene cuts (the whole detection
cascade on the first frame, on cuts and every ``FULL_DETECT_S`` seconds; its cheap first
pass otherwise); in between each face is followed by re-fitting dlib's 68 landmarks
inside its previous box. The alignment transform of every face is smoothed with a
One-Euro filter (``smoothing``) on (centre, log scale, angle), so crops and blended faces
do not jitter while fast head motion is still followed. A "track" is always one face
followed through time (AU targets over time are "timelines", ``pipeline.au_timeline``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import GanAnimError
from .align import align, invert
from .detect import Face, box_overlap, detect_faces, landmarks
from .smoothing import OneEuroFilter

# Mean absolute difference (0..255) between consecutive 64 px grey thumbnails above
# which a frame starts a new shot: tracks are dropped and faces detected afresh.
CUT_THRESHOLD = 30.0
# Seconds between whole-cascade detections: its border and small-face passes cost 0.5-1 s
# a frame, so the detections in between run only its shrunk-frame pass.
FULL_DETECT_S = 2.0
# One-Euro settings for the alignment (centre in face sizes, log scale, angle in radians).
MIN_CUTOFF = 0.5   # Hz: smoothing of a still face
BETA = 10.0        # per face-size/s of speed: less lag when the face moves


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


def _landmark_box(lm: np.ndarray):
    (x0, y0), (x1, y1) = lm.min(0), lm.max(0)
    return (x0 + x1) / 2, (y0 + y1) / 2, max(math.sqrt(max(x1 - x0, 1) * max(y1 - y0, 1)), 1.0)


@dataclass
class FaceTrack:
    """One face followed through time."""

    id: int
    box: tuple                       # left, top, right, bottom (float, image px)
    landmarks: np.ndarray            # raw (68, 2) of the current frame
    box_rel: np.ndarray              # detector box relative to the landmark box
    unit: float                      # face size at the start (px), the smoothing unit
    filter: OneEuroFilter | None     # on the alignment's (centre, log scale, angle)
    transform: np.ndarray = None     # smoothed 2x3 image -> crop


@dataclass
class TrackedFace:
    """One face in one frame: its track id, raw (68, 2) landmarks, smoothed 2x3 transform."""

    id: int
    landmarks: np.ndarray
    transform: np.ndarray
    track: FaceTrack


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
        self.tracks: list[FaceTrack] = []
        self.next_id = 0
        self.index = -1
        self.last_detect = self.last_full = None
        # the whole cascade (border and small-face passes: 0.5-1 s a frame) on the first
        # frame, on cuts and every FULL_DETECT_S; the shrunk-frame pass at the other detections
        self.full_every = max(detect_every, round(FULL_DETECT_S * fps))
        self._thumb = None
        self.detections = 0  # detector runs so far

    # -- helpers
    def _is_cut(self, frame: np.ndarray) -> bool:
        h, w = frame.shape[:2]
        step = max(1, min(h, w) // 72)
        grey = cv2.cvtColor(np.ascontiguousarray(frame[::step, ::step]), cv2.COLOR_RGB2GRAY)
        thumb = cv2.resize(grey, (64, 36), interpolation=cv2.INTER_AREA).astype(np.float32)
        prev, self._thumb = self._thumb, thumb
        return prev is not None and float(np.abs(thumb - prev).mean()) > self.cut_threshold

    def _new_track(self, face: Face) -> FaceTrack:
        cx, cy, s = _landmark_box(face.landmarks)
        rel = (np.array(face.box, np.float64) - [cx, cy, cx, cy]) / s
        unit = self.size / math.hypot(*align(face.landmarks, self.size)[0, :2])
        track = FaceTrack(self.next_id, tuple(map(float, face.box)), face.landmarks, rel, unit,
                      OneEuroFilter(self.min_cutoff, self.beta) if self.smooth else None)
        self.next_id += 1
        return track

    def _follow(self, track: FaceTrack, frame: np.ndarray) -> bool:
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

    def _smooth(self, track: FaceTrack) -> None:
        m = align(track.landmarks, self.size)
        if track.filter is None:
            track.transform = m
            return
        p = transform_params(m, self.size, track.unit)
        if track.filter.x is not None:  # keep the angle continuous
            p[3] = track.filter.x[3] + (p[3] - track.filter.x[3] + math.pi) % (2 * math.pi) - math.pi
        track.transform = params_transform(track.filter(p, self.dt), self.size, track.unit)

    def _detect(self, frame: np.ndarray, full: bool = True) -> None:
        """Match fresh detections to tracks (greedy IoU). ``full``: the whole cascade, and
        unmatched tracks end; else the shrunk-frame pass only, and unmatched tracks are
        followed (faces only the cascade's border or small-face passes see go on)."""
        self.detections += 1
        if full:
            faces = detect_faces(frame, self.detector)  # the tracker's only detection calls
        else:
            faces = detect_faces(frame, self.detector, pad=0.0, small_face_pixels=0)
        pairs = sorted(((box_overlap(t.box, f.box)[0], i, j) for i, t in enumerate(self.tracks)
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
        if not full:
            kept += [t for i, t in enumerate(self.tracks) if i not in used_t and self._follow(t, frame)]
        kept += [self._new_track(f) for j, f in enumerate(faces) if j not in used_f]
        self.tracks = sorted(kept, key=lambda t: t.id)

    # -- the step
    def update(self, frame: np.ndarray) -> list[TrackedFace]:
        self.index += 1
        cut = self._is_cut(frame)
        if cut:
            self.tracks = []
        if cut or self.last_detect is None or self.index - self.last_detect >= self.detect_every:
            full = cut or self.last_full is None or self.index - self.last_full >= self.full_every
            self.last_detect = self.index
            if full:
                self.last_full = self.index
            self._detect(frame, full)
        else:
            self.tracks = [t for t in self.tracks if self._follow(t, frame)]
            # two tracks that drifted onto the same face: keep the older
            kept = []
            for t in self.tracks:
                if all(box_overlap(t.box, k.box)[0] < 0.5 for k in kept):
                    kept.append(t)
            self.tracks = kept
        for t in self.tracks:
            self._smooth(t)
        return [TrackedFace(t.id, t.landmarks, t.transform, t) for t in self.tracks]
