"""File names and checks: which photos a command was given, where their outputs go, input
and output checks, and atomic writes. Standard library only, so the command line checks
its arguments before anything heavy loads."""
from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from ..errors import GanAnimError

# The photo types a folder contributes (GIF left out: it is also an output format).
PHOTO_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_EXTS = {".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi"}


def default_output(photo, to: str | None, ext: str = ".gif") -> Path:
    """``<photo stem>-<target>.gif`` in the current folder (never the photo itself)."""
    target = to or "animated"
    name = Path(target).stem if target.lower().endswith(".json") else target
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:40] or "animated"
    return Path(f"{Path(photo).stem}-{name}{ext}")


def is_batch(inputs) -> bool:
    """True for several inputs or a folder: outputs then go into a folder, and each photo
    succeeds or fails on its own."""
    inputs = list(inputs)
    return len(inputs) > 1 or (len(inputs) == 1 and Path(inputs[0]).is_dir())


def expand_photos(inputs) -> tuple[list[Path], bool]:
    """The photos named by ``inputs`` (files, and folders: their photo files, sorted by name).

    Returns (photos, ``is_batch(inputs)``). A missing file is kept (it fails on its own); a
    folder without photos is an error.
    """
    inputs = [Path(p) for p in inputs]
    if not inputs:
        raise GanAnimError("no photo given")
    photos: list[Path] = []
    for p in inputs:
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.is_file() and not q.name.startswith(".")
                           and q.suffix.lower() in PHOTO_EXTS)
            if not found:
                raise GanAnimError(f"{p}: no photos in this folder ({', '.join(sorted(PHOTO_EXTS))})")
            photos += found
        else:
            photos.append(p)
    return photos, is_batch(inputs)


def plan_outputs(photos: list[Path], several: bool, output=None, to: str | None = None) -> list[Path]:
    """One output path per photo.

    One photo: ``output`` or ``default_output``. Several: ``output`` is a folder (it need
    not exist yet) holding each photo's default name; without it, the current folder.
    Two photos that would write the same file are an error.
    """
    if not several:
        return [Path(output) if output else default_output(photos[0], to)]
    folder = Path(output) if output else Path()
    if output and (folder.suffix.lower() in (".gif", ".mp4", ".m4v", ".mov") or
                   (folder.exists() and not folder.is_dir())):
        raise GanAnimError(f"-o {output}: with several photos, -o must be a folder")
    outs = [folder / default_output(p, to).name for p in photos]
    seen: dict[Path, Path] = {}
    for photo, out in zip(photos, outs):
        if out in seen:
            raise GanAnimError(f"{seen[out]} and {photo} would both write {out}; "
                               "rename one or animate them separately")
        seen[out] = photo
    return outs

def check_input_file(path, kind: str) -> Path:
    """The input as a Path, or a GanAnimError if it is missing, a directory or empty."""
    path = Path(path)
    if not path.exists():
        raise GanAnimError(f"{path}: no such file")
    if path.is_dir():
        raise GanAnimError(f"{path}: is a directory, not a {kind}")
    if path.stat().st_size == 0:
        raise GanAnimError(f"{path}: empty file")
    return path


def check_output_path(output, inputs=()) -> Path:
    """Refuse an output that is one of the inputs or whose folder cannot be written."""
    out = Path(output)
    for inp in inputs:
        if inp is not None and Path(inp).exists() and out.exists() and out.resolve() == Path(inp).resolve():
            raise GanAnimError(f"output {out} is the input file; choose another -o")
        if inp is not None and out.absolute() == Path(inp).absolute():
            raise GanAnimError(f"output {out} is the input file; choose another -o")
    parent = out.absolute().parent
    if not parent.is_dir():
        raise GanAnimError(f"output folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise GanAnimError(f"output folder {parent} is not writable")
    return out


@contextlib.contextmanager
def atomic_output(path):
    """Yield a temporary sibling path; rename it onto ``path`` only on success.

    Works for files and for directories (PNG frame folders). On error the
    temporary is removed, so no partial output is ever left behind.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        if path.is_dir() and tmp.is_dir():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def output_kind(path) -> str:
    """'gif', 'mp4' or 'frames' (a folder of PNGs) from the output name."""
    suffix = Path(path).suffix.lower()
    if suffix == ".gif":
        return "gif"
    if suffix in (".mp4", ".m4v", ".mov"):
        return "mp4"
    if suffix == "":
        return "frames"
    raise GanAnimError(f"{path}: unsupported output type {suffix!r}: use .gif, .mp4 or a folder name")
