"""Which photos a command was given and where their animations go (no torch here)."""
from __future__ import annotations

from pathlib import Path

from .errors import GanAnimError

# The photo types a folder contributes (GIF left out: it is also an output format).
PHOTO_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


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
