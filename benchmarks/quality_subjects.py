"""The faces the quality benchmark edits: held-out colour UTKFace photos, every face in
examples/, and the cfee held-out people's basic expressions."""
from __future__ import annotations

import csv
import json
import random
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gan_anim.aus import AU_INDEX, AU_NAMES  # noqa: E402
from gan_anim.estimation.geometry import estimate_from_landmarks  # noqa: E402
from gan_anim.faces.detect import Face, detect_faces  # noqa: E402
from gan_anim.faces.identity import face_descriptor  # noqa: E402
from gan_anim.media.images import read_image  # noqa: E402
from gan_anim.media.paths import PHOTO_EXTS  # noqa: E402
import shipped_split  # noqa: E402

EXAMPLES = ROOT / "examples"
UTK_PREFIX = "utkface_crop_part1__"
CFEE = shipped_split.SHARED / "cfee"
HELDOUT = ROOT / "benchmarks" / "splits" / "cfee_heldout_people.txt"
# cfee basic category -> the name of the start in the table (the words)
CFEE_STARTS = {"Neutral": "neutral", "Happy": "smiling", "Sad": "sad", "Angry": "angry",
               "Surprised": "surprised", "Disgusted": "disgusted", "Fearful": "fearful"}
CLOSE_UP = 0.4      # a close-up: the face box's larger side over 40 % of the image's


def held_out_photos(data: Path, n: int | None, seed: int, prefix: str = "") -> list[Path]:
    """Source photos of the test split (names starting with ``prefix``), shuffled; the first ``n``.
    Without ``data`` (a ``gan-anim prepare`` folder), the rebuilt split of ``shipped_split``."""
    if not (data / "test.txt").exists():
        srcs = shipped_split.held_out_sources(prefix.rstrip("_"))
        random.Random(seed).shuffle(srcs)
        return srcs[:n]
    names = [ln.strip() for ln in (data / "test.txt").read_text().splitlines() if ln.strip()]
    stems = {Path(x).stem for x in names if x.startswith(prefix)}
    srcs = []
    with open(data / "manifest.jsonl") as fh:
        for line in fh:
            rec = json.loads(line)
            if rec.get("status") == "ok" and rec["name"] in stems:
                srcs.append(Path(rec["src"]))
    random.Random(seed).shuffle(srcs)
    return srcs[:n]


def pad(image: np.ndarray, frac: float = 0.3) -> np.ndarray:
    """The shared photos are tight face chips: give the detector some margin, as prepare does."""
    h, w = image.shape[:2]
    py, px = round(h * frac), round(w * frac)
    return cv2.copyMakeBorder(image, py, py, px, px, cv2.BORDER_REPLICATE)


@dataclass
class Subject:
    """One face of one photo; what is measured on the input is computed once."""

    name: str
    source: str                 # "utkface", "examples" or "cfee"
    image: np.ndarray
    face: Face
    start: str = ""             # the starting expression (cfee: "smiling", "angry", ...), else ``source``
    coded: dict | None = None   # cfee: the human FACS AU codes of the photo

    def __post_init__(self):
        self.start = self.start or self.source

    @property
    def au12(self) -> float:
        """AU12 of the start: human-coded (cfee), else the estimator's."""
        return self.coded["AU12"] if self.coded else float(self.own[au_index("AU12")])

    @property
    def closeup(self) -> bool:
        x0, y0, x1, y1 = self.box
        h, w = self.image.shape[:2]
        return max((x1 - x0) / w, (y1 - y0) / h) > CLOSE_UP

    @cached_property
    def own(self) -> np.ndarray:
        """The face's own estimated AUs (0..5), what ``face_jobs`` starts from with start=None."""
        return np.asarray(estimate_from_landmarks(self.face.landmarks), np.float32)

    @cached_property
    def box(self) -> tuple[int, int, int, int]:
        """The detection box, clipped to the image."""
        h, w = self.image.shape[:2]
        x0, y0, x1, y1 = self.face.box
        return max(int(x0), 0), max(int(y0), 0), min(int(x1), w), min(int(y1), h)

    @property
    def eye(self) -> float:
        return self.face.eye_distance

    @cached_property
    def descriptor(self) -> np.ndarray:
        return face_descriptor(self.image, self.face)


def is_colour(image: np.ndarray, min_spread: float = 2.0) -> bool:
    """False for greyscale photos stored as RGB."""
    rgb = image.astype(np.int16)
    spread = np.abs(rgb[..., 0] - rgb[..., 1]).mean() + np.abs(rgb[..., 1] - rgb[..., 2]).mean()
    return float(spread) > min_spread


def utk_subjects(data: Path, n: int, seed: int) -> tuple[list[Subject], dict]:
    """The first ``n`` colour UTKFace test photos (padded) with a detected face."""
    subjects, skipped = [], {"grey": 0, "no face": 0}
    for src in held_out_photos(data, None, seed, UTK_PREFIX):
        if len(subjects) == n:
            break
        image = read_image(src)
        if not is_colour(image):
            skipped["grey"] += 1
            continue
        image = pad(image)
        faces = detect_faces(image)
        if not faces:
            skipped["no face"] += 1
            continue
        subjects.append(Subject(src.name, "utkface", image, faces[0]))
    return subjects, skipped


def example_subjects(folder: Path = EXAMPLES) -> list[Subject]:
    """Every face of every photo in examples/ (unpadded)."""
    out = []
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_EXTS):
        image = read_image(path)
        for k, face in enumerate(detect_faces(image)):
            out.append(Subject(f"{path.name}#{k + 1}", "examples", image, face))
    return out


def au_index(name: str) -> int:
    return AU_INDEX[name]


def cfee_heldout_rows() -> list[dict]:
    """cfee rows of the held-out people (all 22 categories), sorted by person then file."""
    people = {ln.strip() for ln in HELDOUT.read_text().splitlines() if ln.strip() and not ln.startswith("#")}
    with open(CFEE / "labels.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["identity"] in people]
    return sorted(rows, key=lambda r: (int(r["identity"]), r["file"]))


def cfee_subject(row: dict, start: str) -> Subject | None:
    """A cfee photo as a subject (unpadded: the 320 px crop has the face's width around it)."""
    image = read_image(CFEE / "images" / row["file"])
    faces = detect_faces(image)
    if not faces:
        return None
    coded = {n: float(row[n] or 0) for n in AU_NAMES}
    face = max(faces, key=lambda f: f.area)
    return Subject(f"cfee/{row['file']} (person {row['identity']})", "cfee", image, face, start, coded)


def cfee_subjects(per_start: int | None) -> tuple[list[Subject], int]:
    """The held-out people's photos of the 7 basic categories (the first ``per_start`` of each,
    by person): (subjects, photos without a detected face)."""
    subjects, lost, count = [], 0, {}
    for row in cfee_heldout_rows():
        start = CFEE_STARTS.get(row["emotion"])
        if start is None or (per_start is not None and count.get(start, 0) >= per_start):
            continue
        subj = cfee_subject(row, start)
        if subj is None:
            lost += 1
            continue
        count[start] = count.get(start, 0) + 1
        subjects.append(subj)
    return subjects, lost
