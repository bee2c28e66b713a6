"""An expression recogniser for the quality benchmark (a measuring tool, not product code).

Seven classes: neutral, happiness, sadness, anger, surprise, disgust, fear. Features:
``gan_anim.estimation.features.face_features`` (HOG of the aligned grey face crop plus the
68 landmarks in crop units), standardised, into multinomial logistic regression (torch,
L-BFGS, L2), each training face also mirrored. Trained on people not used for measurement:
- cfee's 7 basic categories (``type`` simple), people NOT in
  ``benchmarks/splits/cfee_heldout_people.txt``;
- facial_expressions (contempt dropped), its photos in the shipped weights' train split.
Each (set, class) pair weighs the same in the loss, so the 4,600 happy faces of
facial_expressions do not drown the 15 fearful ones.

Held-out recall per class is measured on the cfee held-out people and on the
facial_expressions photos of the shipped test split:

    python benchmarks/recogniser.py          # fit (about a minute), cache, print recall

The fitted parameters and their held-out recall are kept in ``benchmarks/recogniser.npz``
(committed, about 200 KB: a fit needs the landmarks of every facial_expressions photo, which
``shipped_split.py`` computes in half an hour), keyed by the feature code, the fit and the
held-out people; ``Recogniser.load()`` refits when the key changes.
"""
from __future__ import annotations

import csv
import hashlib
import inspect
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from gan_anim.estimation import features as feat  # noqa: E402
from gan_anim.faces.detect import detect_faces  # noqa: E402
from gan_anim.media.images import read_image  # noqa: E402
import shipped_split  # noqa: E402

CLASSES = ("neutral", "happiness", "sadness", "anger", "surprise", "disgust", "fear")
CFEE_CLASS = {"Neutral": "neutral", "Happy": "happiness", "Sad": "sadness", "Angry": "anger",
              "Surprised": "surprise", "Disgusted": "disgust", "Fearful": "fear"}
CFEE = shipped_split.SHARED / "cfee"
FE = shipped_split.SHARED / "facial_expressions"
HELDOUT = ROOT / "benchmarks" / "splits" / "cfee_heldout_people.txt"
CACHE = ROOT / "benchmarks" / ".cache"
FITTED = ROOT / "benchmarks" / "recogniser.npz"
L2 = 0.03           # weight decay on the standardised features (3-fold cross-validation by person on
                    # the cfee training people: 0.001-0.3 all give 75-76 % accuracy)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def heldout_people() -> set[str]:
    return {ln.strip() for ln in HELDOUT.read_text().splitlines() if ln.strip() and not ln.startswith("#")}


def cfee_rows(held: bool | None = None) -> list[dict]:
    """cfee's basic-category rows (``held``: only held-out people, only the others, or all)."""
    people = heldout_people()
    with open(CFEE / "labels.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["type"] == "simple"]
    return [r for r in rows if held is None or (r["identity"] in people) == held]


def largest_face(image: np.ndarray):
    faces = detect_faces(image)
    return max(faces, key=lambda f: f.area) if faces else None


def cfee_landmarks() -> dict[str, list]:
    """{file: landmarks} of every cfee basic-category photo with a face (cached)."""
    path = CACHE / "cfee_landmarks.json"
    if path.exists():
        return json.loads(path.read_text())
    out = {}
    for r in cfee_rows():
        face = largest_face(read_image(CFEE / "images" / r["file"]))
        if face is not None:
            out[r["file"]] = np.round(face.landmarks, 1).tolist()
    CACHE.mkdir(exist_ok=True)
    path.write_text(json.dumps(out))
    return out


def fe_rows() -> list[tuple[Path, str, bool]]:
    """(path, class, held out) of facial_expressions photos with a face in the shipped split."""
    split = shipped_split.load()
    test = set(split["test"])
    out = []
    with open(FE / "labels.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            path = str((FE / "images" / r["file"]).resolve())
            if r["label"] in CLASSES and path in split["landmarks"]:
                out.append((Path(path), r["label"], path in test))
    return out


def dataset(held: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features, class index, set 0 = cfee / 1 = facial_expressions) of training (``held``
    False, mirrored copies added) or held-out faces."""
    lms, fe_lms = cfee_landmarks(), shipped_split.load()["landmarks"]
    items = [(CFEE / "images" / r["file"], CFEE_CLASS[r["emotion"]], 0, lms[r["file"]])
             for r in cfee_rows(held) if r["file"] in lms]
    items += [(p, c, 1, fe_lms[str(p)]) for p, c, h in fe_rows() if h == held]
    X, y, s = [], [], []
    for path, cls, src, lm in items:
        image, lm = read_image(path), np.asarray(lm, np.float64)
        views = [(image, lm)] if held else [(image, lm), feat.mirror(image, lm)]
        for im, l in views:
            X.append(feat.face_features(im, l))
            y.append(CLASSES.index(cls))
            s.append(src)
    return np.stack(X), np.array(y), np.array(s)


def fit_logistic(X: np.ndarray, y: np.ndarray, weights: np.ndarray, l2: float = L2) -> tuple:
    """Multinomial logistic regression on standardised ``X``: (mean, scale, W, b)."""
    import torch

    mean, scale = X.mean(0), X.std(0) + 1e-3
    Xt = torch.tensor((X - mean) / scale, dtype=torch.float32)
    yt, wt = torch.tensor(y), torch.tensor(weights / weights.sum(), dtype=torch.float32)
    W = torch.zeros(X.shape[1], len(CLASSES), requires_grad=True)
    b = torch.zeros(len(CLASSES), requires_grad=True)
    opt = torch.optim.LBFGS([W, b], max_iter=300, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        nll = torch.nn.functional.cross_entropy(Xt @ W + b, yt, reduction="none")
        loss = (nll * wt).sum() + l2 * (W ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return mean, scale, W.detach().numpy(), b.detach().numpy()


def balanced_weights(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Each (set, class) pair weighs the same in total."""
    w = np.zeros(len(y))
    for src in np.unique(s):
        for c in np.unique(y[s == src]):
            m = (s == src) & (y == c)
            w[m] = 1.0 / m.sum()
    return w


class Recogniser:
    """Fitted recogniser: ``probabilities(image, landmarks)`` -> (7,) over ``CLASSES``."""

    def __init__(self, mean, scale, W, b, key: str = "", recall: dict | None = None):
        self.mean, self.scale, self.W, self.b, self.key = mean, scale, W, b, key
        self.recall = recall

    def probabilities_of(self, X: np.ndarray) -> np.ndarray:
        z = ((X - self.mean) / self.scale) @ self.W + self.b
        z = np.exp(z - z.max(-1, keepdims=True))
        return z / z.sum(-1, keepdims=True)

    def probabilities(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        return self.probabilities_of(feat.face_features(image, landmarks)[None])[0]

    def label(self, image: np.ndarray, landmarks: np.ndarray) -> str:
        return CLASSES[int(np.argmax(self.probabilities(image, landmarks)))]

    @staticmethod
    def cache_key() -> str:
        """Changes when the features, the fit or the held-out people change."""
        text = inspect.getsource(feat) + inspect.getsource(fit_logistic) + HELDOUT.read_text() + f"{L2}"
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    @classmethod
    def load(cls, refit: bool = False) -> "Recogniser":
        """The kept fit (``FITTED``), or a new one with its held-out recall (written there)."""
        key = cls.cache_key()
        if FITTED.exists() and not refit:
            z = np.load(FITTED)
            if str(z["key"]) == key:
                return cls(z["mean"], z["scale"], z["W"].astype(np.float32), z["b"], key,
                           json.loads(str(z["recall"])))
            log(f"recogniser: {FITTED.name} is for other features or people; fitting again")
        t0 = time.perf_counter()
        log("recogniser: computing training features ...")
        X, y, s = dataset(held=False)
        mean, scale, W, b = fit_logistic(X, y, balanced_weights(y, s))
        log(f"recogniser: fitted on {len(y)} faces (with mirrors) in {time.perf_counter() - t0:.0f} s")
        rec = cls(mean, scale, W, b, key)
        rec.recall = recall_table(rec)
        tmp = FITTED.with_name("recogniser.tmp.npz")
        np.savez_compressed(tmp, mean=mean, scale=scale, W=W, b=b, key=key, recall=json.dumps(rec.recall))
        tmp.replace(FITTED)
        return rec


def recall_table(rec: Recogniser) -> dict:
    """{set: {class: (recall, n)}} on the held-out faces of each set."""
    X, y, s = dataset(held=True)
    pred = rec.probabilities_of(X).argmax(1)
    out = {}
    for src, name in ((0, "cfee held-out people"), (1, "facial_expressions test split")):
        m = s == src
        out[name] = {c: (float((pred[m & (y == k)] == k).mean()) if (m & (y == k)).any() else None,
                         int((m & (y == k)).sum())) for k, c in enumerate(CLASSES)}
        out[name]["all"] = (float((pred[m] == y[m]).mean()), int(m.sum()))
    return out


def recall_markdown(table: dict) -> str:
    lines = ["| held-out set | " + " | ".join(CLASSES) + " | all |", "|---" * (len(CLASSES) + 2) + "|"]
    for name, per in table.items():
        cells = [f"{r:.0%} ({n})" if r is not None else "- (0)" for r, n in per.values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--refit", action="store_true", help="fit again even if the cache is current")
    ap.add_argument("--json", default=None, help="also write the recall table to this JSON file")
    args = ap.parse_args()
    rec = Recogniser.load(refit=args.refit)
    table = rec.recall
    print(recall_markdown(table))
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
