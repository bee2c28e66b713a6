"""How often `happy` reads as happiness from cfee's surprised, fearful, neutral and angry starts.

    python benchmarks/happy_starts.py                      # held-out people, about 3 min
    python benchmarks/happy_starts.py --split train        # the people constants are fitted on
    python benchmarks/happy_starts.py --starts surprised --json out.json

Each start photo of the chosen cfee people is edited to `happy` through the public pipeline
(``Animator.face_jobs`` + ``render``), its landmarks re-detected on the output, and the
expression recogniser (``recogniser.py``, trained on other people) reads it. Two passes in
the same run: the wide-eye cheek lift off (``motion.AU06_WIDE`` = 0, the baseline) and as
shipped. Per start: how many read as happiness, and each misread with its probabilities;
per pass the seconds taken. The re-detected lids against the chord between each eye's
corners (``motion.lid_heights``, eye distances) are printed as medians, against each
person's own real Happy photo where they have one.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from gan_anim import motion  # noqa: E402
from gan_anim.pipeline.photo import Animator  # noqa: E402
from quality import edit  # noqa: E402
from quality_measures import redetect  # noqa: E402
from quality_subjects import CFEE, HELDOUT, cfee_subject  # noqa: E402
from recogniser import CLASSES, Recogniser, cfee_landmarks  # noqa: E402

EMOTIONS = {"surprised": "Surprised", "fearful": "Fearful", "neutral": "Neutral", "angry": "Angry"}


def cfee_rows(split: str) -> list[dict]:
    """cfee's basic-category rows of the held-out people (``split`` "held") or the others."""
    held = {ln.strip() for ln in HELDOUT.read_text().splitlines() if ln.strip() and not ln.startswith("#")}
    with open(CFEE / "labels.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["type"] == "simple"]
    rows = [r for r in rows if (r["identity"] in held) == (split == "held")]
    return sorted(rows, key=lambda r: (int(r["identity"]), r["file"]))


def lids(lm) -> tuple[float, float]:
    """(upper, lower) lid heights of landmarks ``lm`` (68, 2), both eyes' mean."""
    lm = np.asarray(lm, np.float32)
    both = [motion.lid_heights(lm, e) for e in (0, 1)]
    return float(np.mean([b[0] for b in both])), float(np.mean([b[1] for b in both]))


def run_pass(anim, rec, subjects) -> list[dict]:
    """Edit every (start, subject) to `happy` and read it."""
    out = []
    for start, subj in subjects:
        image = edit(anim, subj, "happy")
        lm, _ = redetect(image, subj.face)
        p = rec.probabilities(image, lm)
        out.append({"start": start, "name": subj.name, "read": CLASSES[int(np.argmax(p))],
                    "probabilities": [round(float(x), 3) for x in p], "lids": lids(lm)})
    return out


def report(label: str, results: list[dict], happy_lids: dict, seconds: float) -> None:
    print(f"\n{label} ({seconds:.0f} s)")
    for start in dict.fromkeys(r["start"] for r in results):
        rows = [r for r in results if r["start"] == start]
        good = sum(r["read"] == "happiness" for r in rows)
        diffs = [np.subtract(r["lids"], happy_lids[r["person"]]) for r in rows if r["person"] in happy_lids]
        lid = (f"; lids - own happy photo (upper, lower) {np.median([d[0] for d in diffs]):+.4f} "
               f"{np.median([d[1] for d in diffs]):+.4f} (n={len(diffs)})") if diffs else ""
        print(f"  happy from {start:9s} {good}/{len(rows)} = {100 * good / max(len(rows), 1):.0f} %{lid}")
        for r in rows:
            if r["read"] != "happiness":
                p = dict(zip(CLASSES, r["probabilities"]))
                print(f"    {r['name']}: {r['read']} (happiness {p['happiness']:.2f}, {r['read']} {p[r['read']]:.2f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--starts", default="surprised,fearful,neutral,angry")
    ap.add_argument("--split", choices=("held", "train"), default="held")
    ap.add_argument("--json", help="write both passes' per-face reads here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    starts = [s.strip() for s in args.starts.split(",") if s.strip()]
    bad = [s for s in starts if s not in EMOTIONS]
    if bad:
        sys.exit(f"happy_starts: unknown start {bad[0]!r}; known: {', '.join(EMOTIONS)}")
    rows = cfee_rows(args.split)
    landmarks = cfee_landmarks()
    happy_lids = {r["identity"]: lids(landmarks[r["file"]]) for r in rows
                  if r["emotion"] == "Happy" and landmarks.get(r["file"]) is not None}
    subjects = []
    for start in starts:
        for r in (r for r in rows if r["emotion"] == EMOTIONS[start]):
            subj = cfee_subject(r, start)
            if subj is not None:
                subjects.append((start, subj))
    anim, rec = Animator(None, device="cpu"), Recogniser.load()
    shipped, passes = motion.AU06_WIDE, {}
    for label, wide in (("baseline: AU06_WIDE = 0", 0.0), (f"shipped: AU06_WIDE = {shipped}", shipped)):
        motion.AU06_WIDE = wide
        t0 = time.perf_counter()
        results = run_pass(anim, rec, subjects)
        for res, (_, subj) in zip(results, subjects):
            res["person"] = subj.name.split("person ")[1].rstrip(")")
        report(label, results, happy_lids, time.perf_counter() - t0)
        passes[label] = results
    motion.AU06_WIDE = shipped
    if args.json:
        Path(args.json).write_text(json.dumps(passes, indent=1))


if __name__ == "__main__":
    main()
