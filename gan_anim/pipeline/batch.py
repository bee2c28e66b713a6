"""Animate several photos in one process: the model loads once, each photo succeeds or
fails on its own.

    from gan_anim import animate_photos
    for r in animate_photos(["a.jpg", "photos/"], "out/", to="happy"):
        print(r.photo, r.output if r.ok else r.error)

Everything that needs no model (expressions, options, output paths, missing or empty
files) is checked before torch is imported, so those errors come back at once.
"""
from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .. import aus as au
from ..config import InferenceConfig
from ..errors import GanAnimError
from ..media.paths import (
    check_input_file,
    check_output_path,
    expand_photos,
    output_kind,
    plan_outputs,
)


@dataclass
class PhotoResult:
    """One photo's outcome: its output and ``AnimationResult``, or the error message."""

    photo: Path
    output: Path
    error: str | None = None
    result: object = None  # photo.AnimationResult on success

    @property
    def ok(self) -> bool:
        return self.error is None


def check_request(to: str | None, start: str | None, frames: int, ease: str, loop: bool,
                  batch_size: int) -> None:
    """Raise GanAnimError for a bad expression or option (no model, no photo needed)."""
    au.interpolation_weights(frames, ease, loop)
    if to:
        au.parse_expression(to)
    if start:
        au.parse_expression(start)
    if batch_size < 1:
        raise GanAnimError(f"--batch-size must be at least 1, got {batch_size}")


def _message(photo: Path, exc: BaseException) -> str:
    if isinstance(exc, OSError) and not isinstance(exc, GanAnimError):
        text = f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    else:
        text = str(exc)
    return text if str(photo) in text else f"{photo}: {text}"


def animate_photos(photos, output=None, to: str = "happy", start: str | None = None, *,
                   weights=None, device: str = InferenceConfig.device,
                   batch_size: int = InferenceConfig.batch_size,
                   precision: str = InferenceConfig.precision, frames: int = 30,
                   fps: float = 15.0, ease: str = "linear", loop: bool = False, face: str = "all",
                   detector: str = "hog", crf: int = InferenceConfig.crf, quiet: bool = True, animator=None,
                   on_result=None, detect_workers: int | None = None) -> list[PhotoResult]:
    """Animate each photo of ``photos`` (files and/or folders) with one loaded model.

    One photo: ``output`` is its output (default ``<stem>-<target>.gif`` here) and any
    problem raises GanAnimError. Several photos or a folder: ``output`` is a folder
    (created if needed; default: the current folder) and each photo gets a
    ``PhotoResult``, with its error message if it failed; ``on_result(result)`` is called
    as each one finishes. A bad request (expression, option, output folder, missing
    weights) raises GanAnimError before any photo is rendered; ``precision``: see
    ``render.device.resolve_precision``. ``animator``: an ``Animator`` to use
    instead of loading ``weights``. Several photos: the next ones are decoded and their faces
    found in ``detect_workers`` threads (default ``default_workers()``) while one renders.
    """
    check_request(to, start, frames, ease, loop, batch_size)
    results, several = _planned(photos, output, to)
    todo = [r for r in results if r.ok]
    if several and todo:
        _output_folder(output, todo[0].output)
    if todo and animator is None:
        from .photo import Animator

        # loads in the background while the first photo is decoded and its faces found
        animator = Animator(weights, device, batch_size, precision=precision, background=True)
    job = dict(to=to, start=start, frames=frames, fps=fps, ease=ease, loop=loop, face=face,
               detector=detector, crf=crf, quiet=quiet or several)
    ahead = FacesAhead([r.photo for r in todo], detector, detect_workers) if several and todo else None
    try:
        for res in results:
            if res.ok:
                try:
                    image, faces = ahead.take(res.photo) if ahead is not None else (None, None)
                    res.result = animator.animate(res.photo, res.output, faces=faces, image=image, **job)
                except (GanAnimError, OSError) as exc:
                    if not several:
                        raise
                    animator.model.wait()  # bad weights fail the whole request, not each photo
                    res.error = _message(res.photo, exc)
            if on_result is not None:
                on_result(res)
    finally:
        if ahead is not None:
            ahead.close()
    return results


def default_workers() -> int:
    """Threads that decode photos and find their faces ahead of the renderer: half the
    cores, 1 to 8 (1 on two cores: the next photo is ready when this one is rendered)."""
    return max(1, min(8, (os.cpu_count() or 2) // 2))


class FacesAhead:
    """Decoding and detection of the next photos in a thread pool, up to twice ``workers``
    photos ahead of the one being rendered (dlib's detector releases the GIL). ``take``,
    called for the photos in their order, returns one photo's (pixels, faces), or raises
    its error."""

    def __init__(self, photos, detector: str, workers: int | None = None):
        self.workers = default_workers() if workers is None else max(1, workers)
        self.detector, self.queue, self.futures = detector, deque(photos), deque()
        self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="gan-anim-faces")
        self._fill()

    def _fill(self) -> None:
        while self.queue and len(self.futures) < 2 * self.workers:
            photo = self.queue.popleft()
            self.futures.append((photo, self.pool.submit(self._find, photo)))

    def _find(self, photo):
        from ..faces.detect import detect_faces
        from ..media.images import read_image

        image = read_image(photo)
        return image, detect_faces(image, self.detector)

    def take(self, photo):
        expected, future = self.futures.popleft()
        assert expected == photo, (expected, photo)
        self._fill()
        return future.result()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _planned(photos, output, to: str | None) -> tuple[list[PhotoResult], bool]:
    """(one ``PhotoResult`` per photo, several?): the photos and their outputs, checked.

    One photo: any problem raises GanAnimError. Several: a missing or empty photo gets
    its error message and the others go on; outputs that clash or are inputs still raise.
    """
    paths, several = expand_photos(photos)
    outs = plan_outputs(paths, several, output, to)
    inputs = {p.absolute() for p in paths}
    for out in outs:
        if out.absolute() in inputs:
            raise GanAnimError(f"output {out} is the input file; choose another -o")
        output_kind(out)
    results = []
    for photo, out in zip(paths, outs):
        try:
            if not several:
                check_output_path(out, [photo])
            check_input_file(photo, "photo")
        except GanAnimError as exc:
            if not several:
                raise
            results.append(PhotoResult(photo, out, _message(photo, exc)))
            continue
        results.append(PhotoResult(photo, out))
    return results, several


def _output_folder(output, first_output: Path) -> None:
    """Create the output folder of several photos (if named) and check it is writable."""
    if output:
        try:
            Path(output).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise GanAnimError(f"cannot create output folder {output}: {exc.strerror or exc}") from None
    check_output_path(first_output)
