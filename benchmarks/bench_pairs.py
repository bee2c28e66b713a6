"""How close an edit comes to the real photo of the same person in the target expression,
on the cfee people held out from training (the pair loss of training, measured).

    python benchmarks/bench_pairs.py                              # the shipped medium weights
    python benchmarks/bench_pairs.py --weights a.pt b.pt --pairs 300 --json /tmp/pairs.json

For each held-out person, pairs (start photo, target photo) among the seven basic
expressions (Neutral, Happy, Sad, Angry, Surprised, Disgusted, Fearful), seeded: the
generator edits the start towards the target photo's AUs (its FACS codes; AU45 and codes
not scorable read by the learned estimator, as in ``make gpu-pack``), and
``losses.pair_loss`` compares the edit with the target photo moved onto the start's
framing (``data.register``). The naive baseline, measured in the same run, is no edit at
all (the start itself). Lower is better; "gain" is the share of the baseline's error the
edit removes. Per target expression too: ``neutral`` is taking an expression away.
Stages timed: crops (align + estimator), each generator.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gan_anim.aus import AU_SCALE  # noqa: E402
from gan_anim.training.cfee import cfee_rows  # noqa: E402
from gan_anim.training.data import Pair, register  # noqa: E402
from gan_anim.training.losses import generate, pair_loss  # noqa: E402

SHARED = Path(os.environ.get("GAN_ANIM_SHARED", ROOT.parent / "shared")) / "data"
HELDOUT = ROOT / "benchmarks" / "splits" / "cfee_heldout_people.txt"
CACHE = ROOT / "data" / "cfee_landmarks.npz"
BASIC = ("Neutral", "Happy", "Sad", "Angry", "Surprised", "Disgusted", "Fearful")


def pick_pairs(rows: dict, count: int, seed: int) -> list[tuple[int, int]]:
    """Seeded (start, target) index pairs of one person's two basic-expression photos."""
    by_person: dict[int, list[int]] = {}
    for k, (p, e) in enumerate(zip(rows["person"], rows["emotion"])):
        if e in BASIC:
            by_person.setdefault(int(p), []).append(k)
    every = [(a, b) for ks in by_person.values() for a in ks for b in ks if a != b]
    rng = np.random.default_rng(seed)
    return [every[i] for i in sorted(rng.permutation(len(every))[:count])]


def tensors(rows: dict, idx: list[int]):
    """(images in [-1,1] RGB, AUs 0..1, landmarks) of rows ``idx``."""
    img = np.stack([rows["images"][k][:, :, ::-1] for k in idx]).transpose(0, 3, 1, 2)
    x = torch.from_numpy(np.ascontiguousarray(img)).float() / 127.5 - 1
    aus = torch.from_numpy(rows["aus"][idx] / AU_SCALE).float()
    return x, aus, torch.from_numpy(rows["landmarks"][idx])


@torch.no_grad()
def score(generator, rows: dict, pairs: list[tuple[int, int]], batch: int = 16) -> np.ndarray:
    """pair_loss of each pair's edit (None: no edit) against its registered target photo."""
    out = []
    for s in range(0, len(pairs), batch):
        chunk = pairs[s:s + batch]
        x, src, lms = tensors(rows, [a for a, _ in chunk])
        truth, tgt, tl = tensors(rows, [b for _, b in chunk])
        pair = register(Pair(truth, torch.ones(len(chunk), dtype=torch.bool), tl), lms)
        fake = x if generator is None else generate(generator, x, tgt, lms, src)[0]
        for k in range(len(chunk)):
            one = torch.zeros(len(chunk), dtype=torch.bool)
            one[k] = True
            out.append(pair_loss(fake, pair.images, one, pair.landmarks).item())
    return np.array(out)


def report(name: str, losses: np.ndarray, base: np.ndarray, targets: list[str], seconds: float) -> dict:
    row = {"weights": name, "pairs": len(losses), "pair_loss": round(float(losses.mean()), 4),
           "gain": round(float(1 - losses.mean() / base.mean()), 4), "seconds": round(seconds, 1),
           "per_target": {}}
    for e in BASIC:
        sel = np.array([t == e for t in targets])
        if sel.any():
            row["per_target"][e] = round(float(1 - losses[sel].mean() / base[sel].mean()), 4)
    per = " ".join(f"{e[:4]} {g:+.3f}" for e, g in row["per_target"].items())
    print(f"{name:<32} pair loss {row['pair_loss']:.4f}  gain {row['gain']:+.3f}  ({per})  "
          f"{seconds:.1f} s, {len(losses) / max(seconds, 1e-9):.1f} pairs/s", flush=True)
    return row


def main() -> None:
    from gan_anim.model import load_generator

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", nargs="+", default=[str(ROOT / "weights" / "gan-anim-medium.pt")])
    ap.add_argument("--pairs", type=int, default=400, help="pairs measured (seeded sample)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    gens = [(w, load_generator(w).float().eval()) for w in args.weights]
    sizes = {g.cfg.image_size for _, g in gens}
    if len(sizes) != 1:
        sys.exit("bench_pairs: give weights of one image size")
    t = time.perf_counter()
    rows = cfee_rows(SHARED / "cfee", HELDOUT, sizes.pop(), CACHE if CACHE.is_file() else None, measure=True)
    pairs = pick_pairs(rows, args.pairs, args.seed)
    targets = [rows["emotion"][b] for _, b in pairs]
    print(f"crops: {len(rows['names'])} photos of {rows['people']} held-out people, {len(pairs)} pairs "
          f"({time.perf_counter() - t:.1f} s)", flush=True)
    t = time.perf_counter()
    base = score(None, rows, pairs)
    results = [report("no edit (baseline)", base, base, targets, time.perf_counter() - t)]
    for name, g in gens:
        t = time.perf_counter()
        results.append(report(Path(name).name, score(g, rows, pairs), base, targets, time.perf_counter() - t))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
