"""Fitting the AU -> landmark model (``motion.LandmarkMotion``) on a training split."""
from __future__ import annotations

import numpy as np
import torch

from ..aus import AU_NAMES
from ..errors import GanAnimError
from ..model import Generator
from ..motion import AU_REGIONS, MIRROR, N_LANDMARKS
from .faceset import FaceDataset


def fit_motion(landmarks: np.ndarray, aus: np.ndarray, au_names, ridge: float = 0.02) -> dict:
    """Ridge least squares of aligned landmarks (N, 68, 2; 0..1) on AUs (N, 17; 0..1).

    Each landmark is regressed only on the AUs whose region (``AU_REGIONS``) contains
    it. The data are used twice, once mirrored, so the model is left-right symmetric.
    ``ridge`` is per face. Returns {"mean": (68, 2), "basis": (17, 68, 2), "r2": share of
    landmark variance explained}.
    """
    lm = np.asarray(landmarks, np.float64)
    flipped = lm[:, MIRROR].copy()
    flipped[..., 0] = 1 - flipped[..., 0]
    y = np.concatenate([aus, aus]).astype(np.float64)
    t = np.concatenate([lm, flipped])                   # (2N, 68, 2)
    ym, tm = y.mean(0), t.mean(0)
    yc, tc = y - ym, t - tm
    basis = np.zeros((y.shape[1], N_LANDMARKS, 2))
    for i in range(N_LANDMARKS):
        cols = [k for k, name in enumerate(au_names) if i in AU_REGIONS.get(name, ())]
        if not cols:
            continue
        x = yc[:, cols]
        gram = x.T @ x + ridge * len(x) * np.eye(len(cols))
        basis[cols, i] = np.linalg.solve(gram, x.T @ tc[:, i])
    mean = tm - np.einsum("k,kij->ij", ym, basis)       # shape at y = 0
    resid = tc - np.einsum("nk,kij->nij", yc, basis)
    return {"mean": mean.astype(np.float32), "basis": basis.astype(np.float32),
            "r2": float(1 - (resid ** 2).sum() / (tc ** 2).sum())}


def fit_motion_into(generator: Generator, ds: FaceDataset) -> str:
    """Fit the AU -> landmark model on a training split and store it in the generator;
    returns a line for the user."""
    if ds.landmarks is None:
        raise GanAnimError("this preset warps faces by their landmarks, and the training data has "
                           "none: prepare it with gan-anim prepare (manifest.jsonl) or a gpu pack")
    fit = fit_motion(ds.landmarks.numpy(), ds.aus.numpy(), AU_NAMES)
    dev = generator.motion.mean.device
    generator.motion.mean.copy_(torch.from_numpy(fit["mean"]).to(dev))
    generator.motion.basis.copy_(torch.from_numpy(fit["basis"]).to(dev))
    return f"landmark motion fitted on {len(ds)} faces (R^2 {fit['r2']:.2f})"
