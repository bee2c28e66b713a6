"""Writing animations: GIF, H.264 MP4 (through ffmpeg) or a folder of PNG frames, always
atomically (a temporary name renamed when complete)."""
from __future__ import annotations

import contextlib
import math
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import GanAnimError
from .paths import atomic_output, output_kind

# x264 preset of MP4 output (benchmarks/bench_encode.py: speed, size and quality per preset)
ENCODER_PRESET = "veryfast"


GIF_PALETTE_PIXELS = 1_000_000


def gif_palette(im: Image.Image) -> Image.Image:
    """A 256-colour median-cut palette of ``im``, taken from a copy of at most about
    ``GIF_PALETTE_PIXELS`` pixels (box-reduced): on a 12 MP frame the full-size median cut
    takes over a second, and a palette needs only the colour distribution."""
    k = math.ceil(math.sqrt(im.width * im.height / GIF_PALETTE_PIXELS))
    small = im.reduce(k) if k > 1 else im
    return small.quantize(colors=256, method=Image.Quantize.MEDIANCUT)


def to_i420(frame: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """An RGB uint8 frame as planar YUV 4:2:0 (BT.601, limited range: what ffmpeg makes of
    rgb24 by default), odd sides padded by repeating the last row/column. Converted here
    because OpenCV does it in 4 ms for 12 MP where ffmpeg's scaler takes ~30 ms, one
    thread, and half the bytes go through the pipe (bench_encode.py). ``out``: a buffer
    of the right shape to write into (a fresh 18 MB array per 12 MP frame cost 0.5 s of
    page faults over 30 frames)."""
    import cv2

    h, w = frame.shape[:2]
    if h % 2 or w % 2:
        frame = cv2.copyMakeBorder(frame, 0, h % 2, 0, w % 2, cv2.BORDER_REPLICATE)
    h, w = frame.shape[:2]
    if out is None or out.shape != (h * 3 // 2, w):
        out = np.empty((h * 3 // 2, w), np.uint8)
    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2YUV_I420, dst=out)


class FrameWriter:
    """Streams RGB uint8 frames to a GIF, an H.264 MP4 or a folder of PNGs.

    MP4 frames go straight to ffmpeg (no picture resizing; odd sizes padded by
    one pixel); PNG frames are written as they come; GIF frames share one
    palette taken from the first frame (``gif_palette``) so unchanged areas do not flicker.
    Use as a context manager: the file appears only when everything succeeded.
    Frames are encoded by a background thread (``background=True``), so the caller
    renders the next frame meanwhile; at most two frames wait.
    ``audio_from``: a file whose first audio stream (it must have one) is muxed
    into an MP4, copied as is or re-encoded with ``audio_codec`` (e.g. "aac").
    ``fps`` may be a ``fractions.Fraction`` (30000/1001).
    """

    IN_FLIGHT = 3  # frames queued or being encoded at most (the queue + the one in hand)

    def __init__(self, path, fps: float = 15.0, crf: int = 18, preset: str = ENCODER_PRESET,
                 loop: bool = True, audio_from=None, audio_codec: str = "copy",
                 background: bool = True, threads: int | None = None, i420: bool = True):
        self.path = Path(path)
        self.kind = output_kind(path)
        self.fps, self.crf, self.preset, self.loop = fps, crf, preset, loop
        self.audio_from, self.audio_codec = audio_from, audio_codec
        self.background, self.threads = background, threads
        self.i420 = i420  # MP4: YUV converted here (to_i420); False: RGB, ffmpeg converts (baseline)
        self.count = 0
        self._written = 0
        self._gif_frames: list[Image.Image] = []
        self._palette = None
        self._ffmpeg = None
        self._encoder = None
        self._yuv = None

    def __enter__(self):
        self._atomic = atomic_output(self.path)
        self.tmp = self._atomic.__enter__()
        if self.kind == "frames":
            self.tmp.mkdir()
        if self.background:
            from ..overlap import Consumer

            self._encoder = Consumer(self._write, size=self.IN_FLIGHT - 1, name="gan-anim-encoder")
        return self

    def write(self, frame: np.ndarray, copy: bool = True) -> None:
        """Queue one frame for the encoder thread, or write it now with ``background=False``.
        ``copy=False``: the caller leaves the buffer untouched until ``IN_FLIGHT`` more frames
        have been written (else it is copied, so the caller may reuse it at once)."""
        if self._encoder is None:
            self._write(frame)
        else:
            self._encoder.put(np.array(frame) if copy else frame)
        self.count += 1

    def _write(self, frame: np.ndarray) -> None:
        if self.kind == "frames":
            Image.fromarray(frame).save(self.tmp / f"frame_{self._written:05d}.png", compress_level=1)
        elif self.kind == "gif":
            im = Image.fromarray(frame)
            if self._palette is None:
                self._palette = gif_palette(im)
            self._gif_frames.append(im.quantize(palette=self._palette, dither=Image.Dither.NONE))
        else:
            if self._ffmpeg is None:
                self._start_ffmpeg(frame.shape[1], frame.shape[0])
            if self.i420:  # one buffer, reused: send() has written it to the pipe when it returns
                self._yuv = to_i420(frame, self._yuv)
                self._ffmpeg.send(self._yuv)
            else:
                self._ffmpeg.send(np.ascontiguousarray(frame))
        self._written += 1

    def _start_ffmpeg(self, w: int, h: int) -> None:
        import imageio_ffmpeg

        params = ["-crf", str(self.crf), "-preset", self.preset]
        if self.threads:
            params += ["-threads", str(self.threads)]
        if self.i420:
            w, h = w + w % 2, h + h % 2  # to_i420 pads odd sides
        elif w % 2 or h % 2:
            params += ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"]
        audio = None
        if self.audio_from is not None:  # write_frames maps 0:v:0 and 1:a:0 itself
            audio = str(self.audio_from)
        self._ffmpeg = imageio_ffmpeg.write_frames(
            str(self.tmp), (w, h), fps=self.fps, codec="libx264",
            pix_fmt_in="yuv420p" if self.i420 else "rgb24",
            pix_fmt_out="yuv420p", quality=None, macro_block_size=1, output_params=params,
            ffmpeg_log_level="error", audio_path=audio, audio_codec=self.audio_codec if audio else None)
        self._ffmpeg.send(None)  # start the generator

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                if self._encoder is not None:
                    self._encoder.finish()  # every queued frame written (or its error raised)
                self._finish()
        except BaseException as err:
            self._stop_encoder()
            self._close_ffmpeg()
            self._atomic.__exit__(type(err), err, err.__traceback__)
            raise
        self._stop_encoder()
        self._close_ffmpeg()
        return self._atomic.__exit__(exc_type, exc, tb)

    def _stop_encoder(self):
        if self._encoder is not None:
            self._encoder.abort()
            self._encoder = None

    def _finish(self) -> None:
        if self.count == 0:
            raise GanAnimError("no frames to write")
        if self.kind == "gif":
            first, *rest = self._gif_frames
            first.save(self.tmp, format="GIF", save_all=True, append_images=rest,
                       duration=round(1000 / self.fps), loop=0 if self.loop else 1,
                       optimize=False, disposal=1)
        elif self.kind == "mp4":
            self._ffmpeg.close()
            self._ffmpeg = None

    def _close_ffmpeg(self):
        if self._ffmpeg is not None:
            with contextlib.suppress(Exception):
                self._ffmpeg.close()
            self._ffmpeg = None
