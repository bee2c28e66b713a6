"""Reading video files: frames decoded one at a time by ffmpeg, with the clip's metadata.

The one video reader of gan-anim (``video`` and ``aus`` both use it); frames are
written by ``media.writer.FrameWriter``.
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import GanAnimError
from .paths import PHOTO_EXTS, check_input_file

# Audio codecs that go into an MP4 as they are; anything else is re-encoded to AAC.
MP4_AUDIO = {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"}


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


