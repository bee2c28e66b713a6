"""Fit the AU -> landmark motion on cfee's FACS-coded faces and write it into weights files.

    python tools/fit_motion_cfee.py                       # fit, report, no files written
    python tools/fit_motion_cfee.py --write weights/gan-anim-medium.pt weights/gan-anim-small.pt

A development tool (not part of the installed package). Each cfee person was photographed
neutral and in 21 expressions, each coded by FACS experts (``../shared/data/cfee``). Every
expression photo's landmarks are compared with the same person's neutral photo
(``training.motion_fit.expression_deltas``: put on it by a similarity through the eye
corners and the top of the nose, in its aligned crop units), and the deltas are regressed
on the coded AUs without intercept, per FACS region, mirrored (``fit_motion_deltas``).
People in ``benchmarks/splits/cfee_heldout_people.txt`` are left out of the fit and used to
report its error. AUs coded on fewer than ``--min-coded`` photos keep the weights file's
own fitted motion (AU14, AU23; AU45 is never coded and blinks are ``motion.lid_flow``'s).
``--write`` replaces only the ``motion.basis`` buffer of each file (same keys, shapes and
dtypes: the files keep their size); with ``--corners-only`` only the sideways motion of the
mouth corners under AU25 and AU26 (the shipped weights: the landmark-label fit widened the
mouth as the jaw dropped, where FACS and the coded faces narrow it). ``--rise AU12`` writes
the fitted rows of those AUs as the file's ``motion_rise`` (how a rise of the AU moves the
landmarks; its fall keeps ``motion.basis``, ``motion.LandmarkMotion.set_rise``) and leaves
the basis alone: the shipped weights' AU12 (the coded smiles lift the corners 2.7x as far as
the landmark-label fit). ``--fall AU04 AU07 AU10`` likewise writes ``motion_fall``: the
shipped weights' AUs read by the learned estimator on the coded scale, whose coded frowns
lower the brows 1.7x as far as the landmark-label fit and whose coded raised upper lips
(AU10) lift the lip 7x as far. Landmarks come from
``tools/train_aus.py``'s cache, ``data/cfee_landmarks.npz`` (git-ignored).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gan_anim.aus import AU_NAMES, AU_SCALE  # noqa: E402
from gan_anim.training.motion_fit import expression_deltas, fit_motion_deltas  # noqa: E402

SHARED = Path(os.environ.get("GAN_ANIM_SHARED", ROOT.parent / "shared")) / "data" / "cfee"
HELDOUT = ROOT / "benchmarks" / "splits" / "cfee_heldout_people.txt"
CORNERS = [48, 54, 60, 64]  # outer and inner mouth corners


def landmarks() -> dict:
    """Every cfee photo with a face: identity, emotion, aus (17, 0..5; NaN uncoded), lm (68, 2
    px), from ``tools/train_aus.py``'s loader and its landmark cache."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_aus", ROOT / "tools" / "train_aus.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    data = tool.load_cfee(SHARED)
    lm, found = tool.cfee_landmarks(data)
    return {"identity": data["identity"][found], "emotion": data["emotion"][found],
            "aus": data["labels"][found], "lm": lm[found]}


def person_deltas(data: dict, people: set[int]):
    """(deltas (N,68,2), AUs (N,17) on 0..1) of the expression photos of ``people`` against
    each one's neutral photo (people without one are skipped)."""
    deltas, aus = [], []
    for person in sorted(people):
        rows = np.nonzero(data["identity"] == person)[0]
        neutral = [i for i in rows if data["emotion"][i] == "Neutral"]
        if not neutral:
            continue
        others = [i for i in rows if data["emotion"][i] != "Neutral"]
        deltas.append(expression_deltas(data["lm"][neutral[0]], data["lm"][others]))
        aus.append(data["aus"][others] / AU_SCALE)
    return np.concatenate(deltas), np.concatenate(aus)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--write", nargs="*", default=[], help="weights files whose motion.basis to replace")
    ap.add_argument("--ridge", type=float, default=0.01)
    ap.add_argument("--min-coded", type=int, default=100)
    ap.add_argument("--corners-only", action="store_true",
                    help="write only how AU25 and AU26 move the mouth corners sideways (48, 54, "
                         "60, 64; x), keeping the rest of each file's motion")
    ap.add_argument("--rise", nargs="*", default=[], metavar="AU",
                    help="write only these AUs' fitted rows, as the motion of their rises "
                         "(the file's motion_rise), keeping motion.basis")
    ap.add_argument("--fall", nargs="*", default=[], metavar="AU",
                    help="write only these AUs' fitted rows, as the motion of their falls "
                         "(the file's motion_fall), keeping motion.basis")
    args = ap.parse_args(argv)
    import torch

    data = landmarks()
    held = {int(line) for line in HELDOUT.read_text().splitlines() if line.strip() and not line.startswith("#")}
    ids = set(data["identity"].tolist())
    train, test = person_deltas(data, ids - held), person_deltas(data, ids & held)
    fit = fit_motion_deltas(*train, AU_NAMES, ridge=args.ridge)
    keep = [k for k, n in enumerate(fit["counts"]) if n < args.min_coded]
    print(f"fitted on {len(train[0])} photos of {len(ids - held)} people (R^2 {fit['r2']:.2f}); "
          f"kept from the file: {' '.join(AU_NAMES[k] for k in keep)}")
    for path in args.write:
        state = torch.load(path, map_location="cpu", weights_only=True)
        old = state["generator"]["motion.basis"]
        basis = torch.from_numpy(fit["basis"]).to(old.dtype)
        basis[keep] = old[keep]
        if args.corners_only:
            new, basis = basis, old.clone()
            for name in ("AU25", "AU26"):
                k = AU_NAMES.index(name)
                basis[k, CORNERS, 0] = new[k, CORNERS, 0]
        rows = args.rise + args.fall
        if rows:  # every coded photo is a rise from the neutral: report with these rows
            new, basis = basis, old.clone()
            for name in rows:
                basis[AU_NAMES.index(name)] = new[AU_NAMES.index(name)]
        for name, (d, y) in (("train", train), ("held out", test)):
            for label, b in (("file", old.float().numpy()), ("new", basis.float().numpy())):
                err = np.abs(d - np.einsum("nk,kij->nij", np.nan_to_num(y), b)).mean() * 100
                print(f"{path}: {name} people, {label} motion: mean landmark error {err:.2f} % of the crop")
        for key, names in (("motion_rise", args.rise), ("motion_fall", args.fall)):
            if names:
                state[key] = {name: basis[AU_NAMES.index(name)].float().clone() for name in names}
        if not rows:
            state["generator"]["motion.basis"] = basis
        # same file name inside the archive (torch names its records after it): same size
        tmp = Path(path).parent / ".fit-tmp" / Path(path).name
        tmp.parent.mkdir(exist_ok=True)
        torch.save(state, tmp)
        os.replace(tmp, path)
        tmp.parent.rmdir()


if __name__ == "__main__":
    main()
