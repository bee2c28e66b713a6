"""Train the appearance AU estimator (``gan_anim.estimation.appearance``) on cfee's FACS codes.

    python tools/train_aus.py                      # fit on cfee, report, write weights/au-estimator.npz
    python tools/train_aus.py --no-flip --out /tmp/x.npz   # compare without mirrored copies

A development tool (not part of the installed package, not run by the tests). Data:
``$GAN_ANIM_SHARED/data/cfee`` (2,275 photos of 210 people, FACS intensities 0..5). The
people in ``benchmarks/splits/cfee_heldout_people.txt`` are never fitted on: they only
give the held-out table printed at the end (``benchmarks/bench_aus.py`` prints the same
table for the shipped file).

Per AU, a ridge regression on ``estimation.features.face_features`` (HOG of the aligned
grey crop + normalised landmarks, each feature standardised; the features are grey, so
greyscale augmentation would change nothing). Faces are found with the
detection cascade every command uses (landmarks cached in ``data/cfee_landmarks.npz``,
git-ignored). Each AU's ridge strength is chosen by 5-fold cross-validation grouped by
person on the training people; training folds add a mirrored copy of every face (flip
with renumbered landmarks) unless ``--no-flip``; ``--jitter`` gives those copies a random
gamma and a slightly rotated, scaled and shifted alignment. The same folds decide, per AU, whether
the regressor or the landmark-geometry estimator reads it (the one with the higher
cross-validated r; AU45, blink, is never coded in cfee and stays geometric). Seeded;
the weights file is written atomically.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gan_anim.aus import AU_NAMES  # noqa: E402
from gan_anim.estimation import appearance  # noqa: E402
from gan_anim.estimation.features import FEATURE_SIZE, face_features, mirror  # noqa: E402
from gan_anim.estimation.geometry import estimate_from_landmarks  # noqa: E402

SHARED = Path(os.environ.get("GAN_ANIM_SHARED", ROOT.parent / "shared")) / "data"
HELDOUT = ROOT / "benchmarks" / "splits" / "cfee_heldout_people.txt"
CACHE = ROOT / "data" / "cfee_landmarks.npz"
WEAK_CACHE = ROOT / "data" / "weak_landmarks.npz"
# facial_expressions label -> the FACS prototype (aus.PRESETS) it stands for (weak labels).
LABEL_PRESET = {"happiness": "happy", "surprise": "surprise", "sadness": "sad", "anger": "anger",
                "disgust": "disgust", "fear": "fear", "contempt": "contempt", "neutral": "neutral"}
WEAK_PER_LABEL = 400                # at most this many photos of each facial_expressions label
ALPHAS = np.logspace(-3, 1.5, 19)   # x the mean eigenvalue of the training Gram matrix
MIN_CODED = 40                      # training photos coded > 0 an AU needs to be learned


def load_cfee(root: Path = SHARED / "cfee") -> dict:
    """labels.csv: files, identity (N,), emotion (N,), labels (N, 17) on 0..5 (NaN: not scorable)."""
    with open(root / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    labels = np.array([[float(r[a]) if r[a] != "" else np.nan for a in AU_NAMES] for r in rows])
    return {"root": root, "files": [r["file"] for r in rows],
            "identity": np.array([int(r["identity"]) for r in rows]),
            "emotion": np.array([r["emotion"] for r in rows]), "labels": labels}


def heldout_people(path: Path = HELDOUT) -> set[int]:
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return {int(x) for x in lines if x}


def load_weak(root: Path = SHARED / "facial_expressions", seed: int = 0) -> dict:
    """Weak labels: up to WEAK_PER_LABEL seeded photos of each facial_expressions label, each
    labelled with its expression's FACS prototype (the same dict layout as ``load_cfee``)."""
    from gan_anim.aus import PRESETS, au_dict_to_vector

    with open(root / "labels.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["label"] in LABEL_PRESET]
    rng = np.random.default_rng(seed)
    files, labels = [], []
    for label in sorted(LABEL_PRESET):
        names = sorted(r["file"] for r in rows if r["label"] == label)
        for f in sorted(rng.permutation(names)[:WEAK_PER_LABEL]):
            files.append(str(f))
            labels.append(au_dict_to_vector(PRESETS[LABEL_PRESET[label]], label))
    return {"root": root, "files": files, "labels": np.array(labels, np.float64)}


def cfee_landmarks(data: dict, cache: Path | None = CACHE) -> tuple[np.ndarray, np.ndarray]:
    """(N, 68, 2) landmarks of the largest face of each photo of ``data`` (the detection
    cascade of ``gan-anim aus``) and (N,) found; cached by file name."""
    from gan_anim.faces.detect import detect_faces
    from gan_anim.media.images import read_image

    files = data["files"]
    if cache is not None and cache.exists():
        z = np.load(cache)
        if list(z["files"]) == files:
            return z["landmarks"], z["found"]
    lm = np.zeros((len(files), 68, 2), np.float32)
    found = np.zeros(len(files), bool)
    t = time.perf_counter()
    for i, f in enumerate(files):
        faces = detect_faces(read_image(data["root"] / "images" / f))
        if faces:
            lm[i], found[i] = faces[0].landmarks, True
        if (i + 1) % 250 == 0:
            print(f"  landmarks {i + 1}/{len(files)} ({time.perf_counter() - t:.0f} s)", flush=True)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(cache.stem + ".tmp.npz")
        np.savez(tmp, files=np.array(files), landmarks=lm, found=found)
        os.replace(tmp, cache)
    return lm, found


def jittered(image: np.ndarray, lm: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """A random gamma (0.6..1.6) and a small random similarity of the landmarks the crop is
    aligned to (rotation +-4 degrees, scale +-4 %, shift +-3 % of the eye distance)."""
    g = np.exp(rng.uniform(np.log(0.6), np.log(1.6)))
    lut = np.clip(255 * (np.arange(256) / 255) ** g + 0.5, 0, 255).astype(np.uint8)
    a, s = np.deg2rad(rng.uniform(-4, 4)), rng.uniform(0.96, 1.04)
    iod = np.hypot(*(lm[42:48].mean(0) - lm[36:42].mean(0)))
    c = lm.mean(0)
    rot = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return lut[image], (lm - c) @ rot.T + c + rng.uniform(-0.03, 0.03, 2) * iod


def feature_rows(data: dict, lm: np.ndarray, idx: np.ndarray, flip: bool,
                 jitter: bool = False, seed: int = 0) -> np.ndarray:
    """(len(idx), F) features of the photos ``idx``, or of their mirror images; ``jitter``:
    each with a random gamma and alignment (``jittered``)."""
    from gan_anim.media.images import read_image

    rng = np.random.default_rng(seed)
    out = np.empty((len(idx), FEATURE_SIZE), np.float32)
    for k, i in enumerate(idx):
        image, points = read_image(data["root"] / "images" / data["files"][i]), lm[i]
        if flip:
            image, points = mirror(image, points)
        if jitter:
            image, points = jittered(image, points, rng)
        out[k] = face_features(image, points)
    return out


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r of two vectors (NaN where either is constant)."""
    a, b = a - a.mean(), b - b.mean()
    d = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / d) if d > 0 else float("nan")


class GramRidge:
    """Ridge regressions of several targets for many strengths at once, from one
    eigendecomposition of the standardised training features' Gram matrix."""

    def __init__(self, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None):
        w = np.ones(len(x)) if weights is None else np.asarray(weights, np.float64)
        sw = np.sqrt(w / w.mean())[:, None]
        self.mu = np.average(x, 0, w)
        self.sd = np.sqrt(np.average((x - self.mu) ** 2, 0, w)) + 1e-6
        self.xs = ((x - self.mu) / self.sd).astype(np.float64) * sw
        self.ymean = np.average(y, 0, w)
        lam, self.q = np.linalg.eigh(self.xs @ self.xs.T)
        self.lam = np.maximum(lam, 0)
        self.scale = self.lam.mean()
        self.qty = self.q.T @ ((y - self.ymean) * sw)

    def dual(self, alpha: float) -> np.ndarray:
        """(n, targets) dual coefficients for strength ``alpha`` x the mean eigenvalue."""
        return self.q @ (self.qty / (self.lam + alpha * self.scale)[:, None])

    def predict(self, x: np.ndarray, alphas) -> np.ndarray:
        """(len(alphas), m, targets) predictions for the rows ``x``."""
        k = ((x - self.mu) / self.sd) @ self.xs.T
        return np.stack([k @ self.dual(a) + self.ymean for a in alphas])

    def weights(self, alpha_per_target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(F, targets) weights and (targets,) bias on raw features, one strength per target."""
        w = np.stack([self.xs.T @ self.dual(a)[:, t] for t, a in enumerate(alpha_per_target)], 1)
        w /= self.sd[:, None]
        return w.astype(np.float32), (self.ymean - self.mu @ w).astype(np.float32)


def training_rows(x: np.ndarray, xf: np.ndarray | None, y: np.ndarray, rows: np.ndarray,
                  weak: tuple | None = None):
    """Features, labels and row weights of ``rows``, plus their mirrored copies when given,
    plus the weak rows (features, labels, weight) when given."""
    xs, ys = [x[rows]] + ([] if xf is None else [xf[rows]]), [y[rows]] * (1 if xf is None else 2)
    ws = [np.ones(len(rows) * len(xs))]
    if weak is not None:
        xs.append(weak[0])
        ys.append(weak[1])
        ws.append(np.full(len(weak[0]), weak[2]))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)


def cross_validate(x, xf, y, groups, folds: int, seed: int, weak: tuple | None = None) -> np.ndarray:
    """(len(ALPHAS), n, 17) out-of-fold predictions, folds grouped by person."""
    people = np.unique(groups)
    rng = np.random.default_rng(seed)
    fold_of = dict(zip(rng.permutation(people), np.arange(len(people)) % folds))
    fold = np.array([fold_of[g] for g in groups])
    pred = np.zeros((len(ALPHAS),) + y.shape)
    for k in range(folds):
        tr, va = np.where(fold != k)[0], np.where(fold == k)[0]
        ridge = GramRidge(*training_rows(x, xf, y, tr, weak))
        pred[:, va] = ridge.predict(x[va], ALPHAS)
        print(f"  fold {k + 1}/{folds}: {len(tr)} photos of {len(np.unique(groups[tr]))} people", flush=True)
    return np.clip(pred, 0, 5)


def choose(pred_cv, geo, y) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Per AU: the ridge strength with the best cross-validated r, and whether the
    regressor (True) or the geometry reads the AU."""
    alphas, use_model, rows = np.zeros(len(AU_NAMES)), np.zeros(len(AU_NAMES), bool), []
    for a, name in enumerate(AU_NAMES):
        coded = int((y[:, a] > 0).sum())
        rs = np.array([pearson(p[:, a], y[:, a]) for p in pred_cv])
        best = int(np.nanargmax(rs)) if coded else len(ALPHAS) // 2
        alphas[a] = ALPHAS[best]
        r_geo = pearson(geo[:, a], y[:, a])
        use_model[a] = coded >= MIN_CODED and not rs[best] <= r_geo
        rows.append({"au": name, "coded": coded, "alpha": alphas[a], "r_model": rs[best],
                     "r_geometry": r_geo, "source": "model" if use_model[a] else "geometry"})
    return alphas, use_model, rows


def held_out_table(est: np.ndarray, geo: np.ndarray, y: np.ndarray) -> list[dict]:
    """Per AU r and MAE of the estimator and of the geometry on the same photos."""
    return [{"au": n, "coded": int((y[:, a] > 0).sum()),
             "r": pearson(est[:, a], y[:, a]), "mae": float(np.abs(est[:, a] - y[:, a]).mean()),
             "r_geo": pearson(geo[:, a], y[:, a]), "mae_geo": float(np.abs(geo[:, a] - y[:, a]).mean())}
            for a, n in enumerate(AU_NAMES)]


def print_table(rows: list[dict], min_coded: int = 10) -> tuple[float, float]:
    """Print the per-AU table; return mean r (estimator, geometry) over AUs coded in at
    least ``min_coded`` photos (the AUs that vary)."""
    print(f"{'AU':<6}{'coded':>6}{'r':>8}{'MAE':>7}{'r geo':>8}{'MAE geo':>9}")
    for r in rows:
        print(f"{r['au']:<6}{r['coded']:>6}{r['r']:>8.3f}{r['mae']:>7.2f}{r['r_geo']:>8.3f}{r['mae_geo']:>9.2f}")
    vary = [r for r in rows if r["coded"] >= min_coded]
    m, g = np.mean([r["r"] for r in vary]), np.mean([r["r_geo"] for r in vary])
    print(f"mean r over the {len(vary)} AUs coded in >= {min_coded} photos: "
          f"estimator {m:.3f}, landmark geometry {g:.3f}")
    return float(m), float(g)


def weak_rows(weight: float, seed: int) -> tuple:
    """(features, labels, weight) of the weak rows and their mirror images."""
    weak = load_weak(seed=seed)
    lm, found = cfee_landmarks(weak, WEAK_CACHE)
    idx = np.where(found)[0]
    x = np.concatenate([feature_rows(weak, lm, idx, flip=False), feature_rows(weak, lm, idx, flip=True)])
    print(f"weak labels: {len(idx)} facial_expressions photos with a face (and their mirror "
          f"images), weight {weight}", flush=True)
    return x, np.concatenate([weak["labels"][idx]] * 2), weight


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cfee", type=Path, default=SHARED / "cfee")
    p.add_argument("--out", type=Path, default=ROOT / "weights" / appearance.WEIGHTS_NAME)
    p.add_argument("--no-flip", action="store_true", help="no mirrored copies in training")
    p.add_argument("--jitter", action="store_true",
                   help="the mirrored copies also get a random gamma and alignment")
    p.add_argument("--weak", type=float, default=0.0,
                   help="weight of weak rows: facial_expressions photos labelled with their "
                        "expression's prototype (0: none)")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", type=Path, default=CACHE)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    data = load_cfee(args.cfee)
    lm, found = cfee_landmarks(data, args.cache)
    y = np.nan_to_num(data["labels"], nan=0.0)
    held = np.isin(data["identity"], list(heldout_people()))
    train, test = np.where(found & ~held)[0], np.where(found & held)[0]
    print(f"cfee: {len(data['files'])} photos, a face in {found.sum()}; training {len(train)} photos "
          f"of {len(np.unique(data['identity'][train]))} people, held out {len(test)} of "
          f"{len(np.unique(data['identity'][test]))}", flush=True)
    t = time.perf_counter()
    x = feature_rows(data, lm, train, flip=False)
    xf = None if args.no_flip else feature_rows(data, lm, train, flip=True, jitter=args.jitter,
                                                 seed=args.seed)
    print(f"features: {time.perf_counter() - t:.0f} s", flush=True)
    geo = np.zeros(y.shape, np.float32)
    geo[found] = estimate_from_landmarks(lm[found])
    weak = weak_rows(args.weak, args.seed) if args.weak > 0 else None
    pred_cv = cross_validate(x, xf, y[train], data["identity"][train], args.folds, args.seed, weak)
    alphas, use_model, rows = choose(pred_cv, geo[train], y[train])
    for r in rows:
        print(f"  {r['au']}: coded {r['coded']:4d}, alpha {r['alpha']:.4f}, CV r model "
              f"{r['r_model']:.3f} geometry {r['r_geometry']:.3f} -> {r['source']}")
    ridge = GramRidge(*training_rows(x, xf, y[train], np.arange(len(train)), weak))
    w, b = ridge.weights(alphas)
    meta = {"trained_on": f"cfee, {len(train)} photos of {len(np.unique(data['identity'][train]))} "
            f"people (held-out people excluded), flip={not args.no_flip}, jitter={args.jitter}, "
            f"weak={args.weak}, seed={args.seed}"}
    appearance.save(args.out, w, b, use_model, meta)
    model = appearance.load(str(args.out))
    x_test = feature_rows(data, lm, test, flip=False)
    est = appearance.combine(model, x_test, geo[test])
    print(f"\nheld-out people ({len(test)} photos), wrote {args.out} "
          f"({args.out.stat().st_size / 1e6:.2f} MB)")
    print_table(held_out_table(est, geo[test], y[test]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
