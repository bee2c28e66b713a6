"""cfee's training people as pack rows: aligned crops, human FACS AUs, person ids.

cfee (``$GAN_ANIM_SHARED/data/cfee``, SOURCE.md there) holds 2,275 studio photos of 210
people, each coded by FACS coders (``labels.csv``: ``file, identity, emotion, type`` and
the 17 AUs on 0..5, empty where a code was not scorable). ``cfee_rows`` turns the photos
of every person *not* in the held-out list into rows for ``pack_writer``:

* the face is aligned and cropped exactly as ``gan-anim prepare`` does (the same
  landmarks -> ``faces.align.align`` framing, from the photo edge-padded by 0.3);
* its AUs are the human codes for the 16 AUs cfee codes; AU45 (blink: cfee never codes
  it) and codes marked not scorable take the learned estimator's reading of the crop
  (``estimation.photo.estimate_face_aus``, the labels the rest of the pack has);
* its person id (cfee's ``identity``) pairs it with the same person's other photos:
  the same face and studio light in another expression (the pair loss, ``losses.pair_loss``).

Landmarks come from the file ``tools/train_aus.py`` caches (``data/cfee_landmarks.npz``:
``files``, ``landmarks``, ``found``), or from the detection cascade for photos it lacks.
"""
from __future__ import annotations

import csv
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..aus import AU_NAMES, AU_SCALE
from ..errors import GanAnimError
from .runtime import thread_count

CFEE_SOURCE = "cfee"
# AUs cfee's coders never code: their value is the learned estimator's reading.
UNCODED = ("AU45",)


def read_labels(root) -> dict:
    """``labels.csv``: files, identity (N,) int, emotion (N,), labels (N, 17) on 0..5
    (NaN where not scorable)."""
    path = Path(root) / "labels.csv"
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except FileNotFoundError:
        raise GanAnimError(f"{path}: missing (cfee's labels: file, identity, emotion, AU01..AU45)") from None
    need = {"file", "identity", "emotion", *AU_NAMES}
    if not rows or not need <= set(rows[0]):
        raise GanAnimError(f"{path}: expected the columns file, identity, emotion, {', '.join(AU_NAMES)}")
    try:
        labels = np.array([[float(r[a]) if r[a].strip() else np.nan for a in AU_NAMES] for r in rows])
        identity = np.array([int(r["identity"]) for r in rows])
    except ValueError:
        raise GanAnimError(f"{path}: an AU or identity is not a number") from None
    bad = np.isfinite(labels) & ((labels < 0) | (labels > AU_SCALE))
    if bad.any():
        raise GanAnimError(f"{path}: an AU is outside 0..{AU_SCALE:g} (row {int(np.argwhere(bad)[0][0]) + 2})")
    return {"files": [r["file"] for r in rows], "identity": identity,
            "emotion": [r["emotion"] for r in rows], "labels": labels}


def read_people(path) -> set[int]:
    """Person ids, one per line (``#`` comments), e.g. benchmarks/splits/cfee_heldout_people.txt."""
    p = Path(path)
    try:
        lines = (line.split("#")[0].strip() for line in p.read_text(encoding="utf-8").splitlines())
        people = {int(x) for x in lines if x}
    except FileNotFoundError:
        raise GanAnimError(f"{p}: missing (held-out person ids, one per line)") from None
    except ValueError:
        raise GanAnimError(f"{p}: a line is not a person id") from None
    if not people:
        raise GanAnimError(f"{p}: lists no people")
    return people


def photo_landmarks(root, files: list[str], cache=None) -> np.ndarray:
    """(N, 68, 2) landmarks of the largest face of each photo, NaN where none is found:
    from ``cache`` (tools/train_aus.py's format) where it has the photo, else detected."""
    out = np.full((len(files), 68, 2), np.nan, np.float32)
    known: dict[str, np.ndarray] = {}
    if cache is not None and Path(cache).is_file():
        with np.load(cache, allow_pickle=False) as z:
            for f, lm, ok in zip(z["files"], z["landmarks"], z["found"]):
                known[str(f)] = lm if ok else None
    todo = []
    for k, f in enumerate(files):
        if f in known:
            if known[f] is not None:
                out[k] = known[f]
        else:
            todo.append(k)
    if todo:
        from ..faces.detect import detect_faces
        from ..media.images import read_image

        for k in todo:
            faces = detect_faces(read_image(Path(root) / "images" / files[k]))
            if faces:
                out[k] = faces[0].landmarks
    return out


def _aligned(image: np.ndarray, lm: np.ndarray, size: int, pad: float = 0.3):
    """(RGB crop, landmarks in the crop's pixels, landmarks in crop-side units): the framing
    of ``gan-anim prepare``."""
    from ..faces.align import align, crop
    from ..faces.detect import pad_image

    padded, p = pad_image(image, pad)
    m = align(lm + p, size)
    chip = crop(padded, m, size)
    px = (lm + p) @ m[:, :2].T + m[:, 2]
    return chip, px.astype(np.float32), (px / size).astype(np.float32)


def cfee_rows(root, heldout, size: int = 128, cache=None, people: int | None = None,
              workers: int | None = None, measure: bool = False) -> dict:
    """The training people's photos as pack rows: ``images`` (BGR crops, ``size`` px),
    ``aus`` (N, 17) 0..5, ``names`` (``cfee__0001.png``), ``landmarks`` (N, 68, 2 crop-side
    units), ``person`` (N,), ``emotion`` (N,) and counts. ``heldout``: a file of person ids
    never used; ``people``: only the first this many training people (small packs for
    tests); ``measure``: the held-out people's photos instead (benchmarks only)."""
    from ..estimation.photo import estimate_face_aus
    from ..media.images import read_image

    root = Path(root)
    table = read_labels(root)
    held = read_people(heldout)
    everyone = {int(i) for i in table["identity"]}
    ids = sorted(everyone & held if measure else everyone - held)
    if people is not None:
        ids = ids[:people]
    keep = [k for k, i in enumerate(table["identity"]) if int(i) in set(ids)]
    files = [table["files"][k] for k in keep]
    lms = photo_landmarks(root, files, cache)
    found = ~np.isnan(lms).any(axis=(1, 2))
    rows = np.flatnonzero(found)  # positions in keep
    uncoded = [AU_NAMES.index(a) for a in UNCODED]

    def one(j: int):
        k = keep[rows[j]]
        chip, px, unit = _aligned(read_image(root / "images" / table["files"][k]), lms[rows[j]], size)
        aus = table["labels"][k].copy()
        fill = np.zeros(len(AU_NAMES), bool)
        fill[uncoded] = True
        fill |= np.isnan(aus)
        estimated = np.asarray(estimate_face_aus(chip, px, "model"), np.float64)
        aus[fill] = estimated[fill]
        return np.ascontiguousarray(chip[:, :, ::-1]), np.clip(aus, 0, AU_SCALE), unit, int(fill.sum())

    with ThreadPoolExecutor(thread_count(workers)) as pool:
        done = list(pool.map(one, range(len(rows))))
    return {"images": [d[0] for d in done],
            "aus": np.round(np.array([d[1] for d in done], np.float32), 2),
            "names": [f"{CFEE_SOURCE}__{Path(files[j]).stem}.png" for j in rows],
            "landmarks": np.array([d[2] for d in done], np.float32).reshape(-1, 68, 2),
            "person": np.array([int(table["identity"][keep[j]]) for j in rows], np.int32),
            "emotion": [table["emotion"][keep[j]] for j in rows],
            "people": len(ids), "photos": len(keep), "no_face": int((~found).sum()),
            "estimated_values": int(sum(d[3] for d in done))}
