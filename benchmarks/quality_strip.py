"""The strip: seven starting expressions of cfee held-out people (rows) x six presets
(columns), each cell a square around the face, labelled, as one JPEG."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

from quality_subjects import cfee_heldout_rows, cfee_subject

STRIP_PRESETS = ("neutral", "happy", "surprise", "sad", "anger", "disgust")
# start -> (cfee categories it is picked from, the score of a photo: its FACS codes that make
# the start strongest; the best-scoring photo of a person not yet in the strip is used)
STRIP_STARTS = {
    "neutral": (("Neutral",), lambda a: 0.0),
    "smiling": (("Happy",), lambda a: a["AU12"] + a["AU06"] - 2 * (a["AU25"] + a["AU26"])),
    "laughing": (("Happy", "Happily surprised"), lambda a: a["AU12"] + a["AU25"] + a["AU26"]),
    "frowning": (("Angry",), lambda a: a["AU04"] + a["AU07"] + a["AU23"]),
    "sad": (("Sad",), lambda a: a["AU15"] + a["AU01"] + a["AU04"]),
    "disgusted": (("Disgusted",), lambda a: a["AU09"] + a["AU10"]),
    "surprised": (("Surprised",), lambda a: a["AU26"] + a["AU01"] + a["AU02"] + a["AU05"]),
}


def strip_subjects() -> list:
    """One cfee held-out photo per start (different people where possible), as subjects."""
    rows, used, out = cfee_heldout_rows(), set(), []
    for start, (categories, score) in STRIP_STARTS.items():
        codes = lambda r: {k: float(v or 0) for k, v in r.items() if k.startswith("AU")}  # noqa: E731
        pool = sorted((r for r in rows if r["emotion"] in categories),
                      key=lambda r: (r["identity"] in used, -score(codes(r)), int(r["identity"])))
        for r in pool:
            subj = cfee_subject(r, start)
            if subj is not None:
                used.add(r["identity"])
                out.append(subj)
                break
    return out


def face_cell(image: np.ndarray, box, height: int = 192, zoom: float = 1.6) -> np.ndarray:
    """A square around the face box, ``zoom`` x its larger side, resized to ``height``."""
    x0, y0, x1, y1 = box
    side = int(round(zoom * max(x1 - x0, y1 - y0)))
    cell = cv2.getRectSubPix(image, (side, side), ((x0 + x1) / 2, (y0 + y1) / 2))
    return cv2.resize(cell, (height, height), interpolation=cv2.INTER_AREA)


def label_cell(cell: np.ndarray, text: str) -> np.ndarray:
    """``cell`` with ``text`` on a white tab in its top-left corner."""
    im = Image.fromarray(cell)
    draw = ImageDraw.Draw(im)
    x0, y0, x1, y1 = draw.textbbox((4, 4), text)
    draw.rectangle((x0 - 2, y0 - 2, x1 + 2, y1 + 2), fill="white")
    draw.text((4, 4), text, fill="black")
    return np.asarray(im)


def write_strip(edit, subjects: list, path: Path, presets=STRIP_PRESETS, height: int = 192) -> None:
    """One row per face: the input (labelled with its start), then ``edit(subject, preset)``
    for each preset; a header row names the columns. Written atomically (JPEG by extension)."""
    print(f"strip: {len(subjects)} faces x {len(presets)} presets -> {path}", file=sys.stderr, flush=True)
    rows = []
    for subj in subjects:
        cells = [label_cell(face_cell(subj.image, subj.face.box, height), subj.start)]
        cells += [face_cell(edit(subj, t), subj.face.box, height) for t in presets]
        rows.append(np.concatenate(cells, 1))
    header = Image.new("RGB", (rows[0].shape[1], 24), "white")
    draw = ImageDraw.Draw(header)
    for k, label in enumerate(("start",) + tuple(presets)):
        draw.text((k * height + 6, 6), label, fill="black")
    sheet = Image.fromarray(np.concatenate([np.asarray(header)] + rows, 0))
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    sheet.save(tmp, quality=90) if path.suffix.lower() in (".jpg", ".jpeg") else sheet.save(tmp)
    os.replace(tmp, path)
