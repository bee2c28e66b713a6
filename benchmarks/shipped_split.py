"""The held-out (test) photos of the shipped weights' training set, without that set.

The shipped weights were trained on ``gan-anim prepare facial_expressions/images
utkface_crop_part1/images -o data/shipped`` (``--pad 0.3``, seed 0, test fraction 0.1; see
weights/README.md). ``quality.py`` reads the test split from ``data/shipped``; where that
folder is absent, this module rebuilds the same split: the same detection on every photo
(``faces.detect.find_face``, as ``prepare`` runs it), the same names and the same seeded
permutation (``training.prepare._finish``). Today's detection keeps 16,033 faces where the
model card's run kept 16,029 (the cascade changed since), so the seeded permutation, and
with it the split, differs: the rebuilt "held-out" photos are a random tenth, most of
which the shipped weights saw in training. Only a ``data/shipped`` folder from the run
itself gives the true split. The held-out list is written to
``splits/shipped_test.txt`` (committed); the landmarks of facial_expressions (the
recogniser's training data) are cached as JSON (git-ignored):

    python benchmarks/shipped_split.py            # about 6 min on one core, once
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gan_anim.faces.detect import find_face  # noqa: E402
from gan_anim.media.images import read_image  # noqa: E402

SHARED = Path(os.environ.get("GAN_ANIM_SHARED", ROOT.parent / "shared")) / "data"
CACHE = ROOT / "benchmarks" / ".cache" / "shipped_split.json"     # with landmarks, git-ignored
TEST_LIST = ROOT / "benchmarks" / "splits" / "shipped_test.txt"    # the held-out photos, committed
SOURCES = ("facial_expressions", "utkface_crop_part1")
EXPECTED = {"kept": 16029, "test": 1603}          # weights/README.md, "Data and labels"


def _tasks(data: Path) -> list[tuple[str, Path]]:
    """(name, path) as prepare names them: ``<set>__<stem>`` in prepare's order."""
    from gan_anim.training.prepare import list_images

    out = []
    for s in SOURCES:
        folder = data / s / "images"
        out += [(f"{s}__{p.relative_to(folder).with_suffix('')}", p) for p in list_images(folder)]
    return out


def rebuild(data: Path, log=print) -> dict:
    """{"test": [src paths], "kept": n, "landmarks": {facial_expressions src: (68, 2)}}:
    prepare's detection and split (the landmarks feed the benchmark's expression recogniser)."""
    kept, landmarks = [], {}
    tasks = _tasks(data)
    t0 = time.perf_counter()
    for k, (name, path) in enumerate(tasks):
        status, _, lm = find_face(read_image(path), 0.3, "hog", threads=1)
        if status == "ok":
            kept.append((name, str(path.resolve())))
            if name.startswith(SOURCES[0]):
                landmarks[str(path.resolve())] = np.round(lm, 1).tolist()
        if (k + 1) % 1000 == 0:
            log(f"  {k + 1}/{len(tasks)} photos, {len(kept)} faces ({time.perf_counter() - t0:.0f} s)")
    kept.sort(key=lambda x: x[0])
    perm = np.random.default_rng(0).permutation(len(kept))
    n_test = int(round(0.1 * len(kept)))
    test = sorted(kept[i][1] for i in perm[:n_test])
    return {"kept": len(kept), "test": test, "matches_model_card": len(kept) == EXPECTED["kept"],
            "landmarks": landmarks}


def load() -> dict:
    """The cached rebuild (``main`` writes it)."""
    if not CACHE.exists():
        raise SystemExit(f"no data/shipped and no {CACHE}: run python benchmarks/shipped_split.py")
    return json.loads(CACHE.read_text())


def held_out_sources(prefix: str = "") -> list[Path]:
    """Test-split source photos whose set name starts with ``prefix`` (``TEST_LIST``)."""
    if not TEST_LIST.exists():
        raise SystemExit(f"no data/shipped and no {TEST_LIST}: run python benchmarks/shipped_split.py")
    names = [ln.strip() for ln in TEST_LIST.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    return [SHARED / n for n in names if n.startswith(prefix)]


def main() -> None:
    split = rebuild(SHARED)
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    tmp = CACHE.with_suffix(".tmp")
    tmp.write_text(json.dumps(split, indent=0))
    tmp.replace(CACHE)
    write_test_list(split)
    print(f"{split['kept']} faces kept (model card: {EXPECTED['kept']}), {len(split['test'])} held out "
          f"-> {CACHE}, {TEST_LIST}")


def write_test_list(split: dict) -> None:
    names = sorted(str(Path(p).relative_to(SHARED.resolve())) for p in split["test"])
    match = ("matches the model card" if split["kept"] == EXPECTED["kept"] else
             f"the model card kept {EXPECTED['kept']}: the permutation differs, so most of these photos "
             "were NOT held out from the shipped weights' training")
    TEST_LIST.write_text(f"# the shipped weights' held-out photos, rebuilt by benchmarks/shipped_split.py: "
                         f"{split['kept']} faces kept ({match}), {len(names)} held out\n"
                         + "\n".join(names) + "\n")


if __name__ == "__main__":
    main()
