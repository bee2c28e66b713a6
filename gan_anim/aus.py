"""Action Units: names, presets, parsing of user expressions, OpenFace-format CSV.

User-facing intensities use OpenFace's 0..5 scale; networks see them divided by
``AU_SCALE`` (0..1), as in GANimation.
"""
from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import numpy as np

from .errors import GanAnimError

# The 17 intensity AUs that OpenFace estimates, in OpenFace's order.
AU_NAMES: tuple[str, ...] = (
    "AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU12",
    "AU14", "AU15", "AU17", "AU20", "AU23", "AU25", "AU26", "AU45",
)
AU_SCALE = 5.0
AU_INDEX = {name: i for i, name in enumerate(AU_NAMES)}

AU_DESCRIPTIONS = {
    "AU01": "inner brow raiser", "AU02": "outer brow raiser", "AU04": "brow lowerer",
    "AU05": "upper lid raiser", "AU06": "cheek raiser", "AU07": "lid tightener",
    "AU09": "nose wrinkler", "AU10": "upper lip raiser", "AU12": "lip corner puller",
    "AU14": "dimpler", "AU15": "lip corner depressor", "AU17": "chin raiser",
    "AU20": "lip stretcher", "AU23": "lip tightener", "AU25": "lips part",
    "AU26": "jaw drop", "AU45": "blink",
}

# FACS/EMFACS prototypes (Ekman, Friesen & Hager 2002) on the 0..5 scale.
# Unnamed AUs are 0. Presets are complete expressions, not partial edits.
# sad, fear, anger and disgust follow the human FACS codes of real posed faces (cfee, the 142
# people not held out who posed them): an AU coded in half or more of a category's photos, at
# its median coded intensity; sad's AU01 at the top of its coded range, without AU06
# (docs/method.md, "Presets").
PRESETS: dict[str, dict[str, float]] = {
    "neutral": {},
    "happy": {"AU06": 3.0, "AU12": 4.0, "AU25": 1.5},                       # 6+12
    "laugh": {"AU06": 4.0, "AU12": 5.0, "AU25": 4.0, "AU26": 3.0},           # 6+12+25+26
    "sad": {"AU01": 3.0, "AU04": 3.0, "AU15": 3.0, "AU17": 3.0},             # 1+4+15+17
    "surprise": {"AU01": 3.5, "AU02": 3.5, "AU05": 3.0, "AU25": 2.5, "AU26": 3.5},  # 1+2+5B+26
    "fear": {"AU01": 2.0, "AU02": 2.0, "AU04": 2.5, "AU05": 2.0, "AU20": 2.0,
             "AU25": 3.0},                                                    # 1+2+4+5+20+25
    "anger": {"AU04": 3.0, "AU07": 3.0, "AU17": 2.0},                        # 4+7+17 (+24)
    "disgust": {"AU09": 3.0, "AU10": 3.0, "AU17": 3.0},                      # 9+10+17
    "contempt": {"AU12": 2.0, "AU14": 3.0},                                  # (R)12A+14A, bilateral here
    "blink": {"AU45": 5.0},
}


def canonical_au(name: str) -> str:
    """'AU12', 'au12', 'AU12_r', 'AU6' or '12' -> 'AU12'; unknown names raise GanAnimError."""
    m = re.fullmatch(r"\s*(?:au)?0*(\d{1,2})(?:_r)?\s*", name, flags=re.IGNORECASE)
    canon = f"AU{int(m.group(1)):02d}" if m else None
    if canon not in AU_INDEX:
        raise GanAnimError(f"unknown AU name {name.strip()!r}; known: {' '.join(AU_NAMES)}")
    return canon


def _check_value(name: str, value, where: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise GanAnimError(f"{where}: {name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or not 0.0 <= v <= AU_SCALE:
        raise GanAnimError(f"{where}: {name}={value} is outside 0..{AU_SCALE:g}")
    return v


def au_dict_to_vector(values: dict, where: str = "AUs", base=None) -> np.ndarray:
    """Partial {name: 0..5} dict -> full (17,) vector on 0..5; unnamed AUs from ``base`` (or 0)."""
    vec = np.zeros(len(AU_NAMES), np.float32) if base is None else np.array(base, np.float32)
    for name, value in values.items():
        canon = canonical_au(str(name))
        vec[AU_INDEX[canon]] = _check_value(canon, value, where)
    return vec


def parse_expression(spec: str) -> tuple[dict[str, float], bool]:
    """Parse a preset name, a JSON file or inline ``AU12=3,AU06=2``.

    Returns (values on 0..5 keyed by canonical AU name, complete) where
    ``complete`` is True for presets (every AU defined) and False for partial edits.
    """
    spec = spec.strip()
    if not spec:
        raise GanAnimError("empty expression: give a preset name, a .json file or AU12=3,AU06=2")
    if spec.lower() in PRESETS:
        vec = au_dict_to_vector(PRESETS[spec.lower()], f"preset {spec}")
        return {n: float(v) for n, v in zip(AU_NAMES, vec)}, True
    path = Path(spec)
    if spec.lower().endswith(".json") or path.is_file():
        return _read_json(path), False
    if "=" in spec:
        values = {}
        for part in spec.split(","):
            if not part.strip():
                continue
            if "=" not in part:
                raise GanAnimError(f"cannot read {part!r} in {spec!r}: expected AU12=3")
            name, value = part.split("=", 1)
            canon = canonical_au(name)
            values[canon] = _check_value(canon, value.strip(), spec)
        return values, False
    raise GanAnimError(f"{spec!r} is not a preset ({', '.join(PRESETS)}), a JSON file or AU12=3,AU06=2")


def _read_json(path: Path) -> dict[str, float]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GanAnimError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GanAnimError(f"{path}: cannot read ({exc.__class__.__name__})") from None
    except json.JSONDecodeError as exc:
        raise GanAnimError(f"{path}: malformed JSON at line {exc.lineno}: {exc.msg}") from None
    if not isinstance(data, dict) or not data:
        raise GanAnimError(f'{path}: expected a JSON object like {{"AU06": 2.5, "AU12": 3.5}}')
    values = {}
    for name, value in data.items():
        canon = canonical_au(str(name))
        values[canon] = _check_value(canon, value, str(path))
    return values


def interpolation_weights(frames: int, ease: str = "linear", loop: bool = False) -> np.ndarray:
    """alpha for each frame, 0 -> 1 (``--loop`` adds the way back without repeating ends)."""
    if frames < 1:
        raise GanAnimError(f"--frames must be at least 1, got {frames}")
    a = np.linspace(0.0, 1.0, frames) if frames > 1 else np.ones(1)
    if ease == "smooth":
        a = a * a * (3 - 2 * a)
    elif ease != "linear":
        raise GanAnimError(f"unknown ease {ease!r}: use linear or smooth")
    if loop and frames > 2:
        a = np.concatenate([a, a[-2:0:-1]])
    return a.astype(np.float32)


# ----------------------------------------------------------------- OpenFace-format CSV

CSV_META = ("frame", "timestamp", "confidence", "success")
CSV_AU_COLUMNS = tuple(f"{n}_r" for n in AU_NAMES)


def write_openface_csv(path, rows) -> None:
    """Write rows of (frame, timestamp, confidence, success, aus(17,) on 0..5 or None).

    Columns follow OpenFace's FeatureExtraction output (``AU01_r`` ...). Atomic.
    """
    from .media.paths import atomic_output

    with atomic_output(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(CSV_META + CSV_AU_COLUMNS)
            for frame, ts, conf, success, aus in rows:
                vals = ["0.00"] * len(AU_NAMES) if aus is None else [f"{v:.2f}" for v in aus]
                w.writerow([int(frame), f"{ts:.3f}", f"{conf:.2f}", int(success), *vals])


def read_csv(path, missing: str = "no such file") -> tuple[list[str], list[list[str]]]:
    """(stripped header, non-blank rows) of a UTF-8 CSV; GanAnimError if it is missing
    (``missing`` says what was expected), unreadable or has no header."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            rows = [r for r in reader if any(c.strip() for c in r)]
    except FileNotFoundError:
        raise GanAnimError(f"{path}: {missing}") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise GanAnimError(f"{path}: cannot read as CSV ({exc.__class__.__name__})") from None
    if not header:
        raise GanAnimError(f"{path}: empty CSV (no header)")
    return [h.strip() for h in header], rows


def read_openface_csv(path) -> dict:
    """Read an OpenFace-format AU CSV (real OpenFace or gan-anim's own).

    Returns {"frame": int array or None, "timestamp": float array or None,
    "success": bool array, "aus": (N,17) float array on 0..5 with NaN where a
    column is absent, "present": (17,) bool}. Column names may carry spaces
    (OpenFace writes ", AU01_r"). Bad cells raise GanAnimError.
    """
    table = _CsvTable(Path(path))
    present = np.array([n in table.cols for n in AU_NAMES])
    if not present.any():
        raise GanAnimError(f"{path}: no AU columns (expected AU01_r ... AU45_r)")
    if not table.rows:
        raise GanAnimError(f"{path}: the track has no rows")
    aus = table.aus()
    frame = table.column("frame", lambda s: int(float(s)))
    timestamp = table.column("timestamp", float)
    success = table.column("success", lambda s: float(s) > 0)
    if success is None:
        success = np.ones(len(table.rows), bool)
    return {"frame": frame, "timestamp": timestamp, "success": success.astype(bool),
            "aus": aus, "present": present}


class _CsvTable:
    """An OpenFace-format CSV's columns by name (AUs canonical, meta columns lower-case)."""

    META = ("frame", "timestamp", "confidence", "success", "face_id", "face")

    def __init__(self, path: Path):
        self.path = path
        self.header, self.rows = read_csv(path)
        self.cols = {}
        for i, h in enumerate(self.header):
            if re.fullmatch(r"AU\d+_r", h, flags=re.IGNORECASE):
                try:
                    self.cols[canonical_au(h)] = i
                except GanAnimError:
                    raise GanAnimError(f"{path}: unknown AU column {h!r}") from None
            elif h.lower() in self.META:
                self.cols[h.lower()] = i

    def cell(self, k: int, i: int) -> str:
        """Row ``k``'s cell in column ``i``, stripped (file line k + 2)."""
        r = self.rows[k]
        try:
            return r[i].strip()
        except IndexError:
            raise GanAnimError(f"{self.path}: line {k + 2} has {len(r)} cells, "
                               f"header has {len(self.header)}") from None

    def aus(self) -> np.ndarray:
        """(N,17) float32 on 0..5, NaN for absent columns; a bad value raises GanAnimError."""
        out = np.full((len(self.rows), len(AU_NAMES)), np.nan, np.float32)
        for k in range(len(self.rows)):
            for name in AU_NAMES:
                if name in self.cols:
                    out[k, AU_INDEX[name]] = self._intensity(k, name)
        return out

    def _intensity(self, k: int, name: str) -> float:
        raw, where = self.cell(k, self.cols[name]), f"{self.path}: line {k + 2}"
        try:
            v = float(raw)
        except ValueError:
            raise GanAnimError(f"{where}: {name}_r={raw!r} is not a number") from None
        if not math.isfinite(v):
            raise GanAnimError(f"{where}: {name}_r is {raw}")
        if not 0.0 <= v <= AU_SCALE:
            raise GanAnimError(f"{where}: {name}_r={raw} is outside 0..5")
        return v

    def column(self, key: str, cast):
        """The meta column ``key`` cast per cell, or None if the file has no such column."""
        if key not in self.cols:
            return None
        try:
            return np.array([cast(self.cell(k, self.cols[key])) for k in range(len(self.rows))])
        except ValueError:
            raise GanAnimError(f"{self.path}: column {key!r} holds a value that is not a number") from None
