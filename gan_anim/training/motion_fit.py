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
    basis = _region_ridge(yc, tc, au_names, ridge)
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


# Points that no AU of the 17 moves much (eye corners, top of the nose): a face's photos are
# put on its neutral photo's by a similarity through them before their landmarks are compared.
STABLE = [36, 39, 42, 45, 27]


def expression_deltas(neutral: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Landmark change of one person's expression photos against the person's neutral photo,
    in the neutral face's aligned crop units: ``neutral`` (68, 2) and ``faces`` (N, 68, 2)
    image pixels -> (N, 68, 2). Each photo is first put on the neutral one by the
    similarity through ``STABLE``, so head pose, distance and framing drop out."""
    from ..faces.align import align, normalised_landmarks

    m = align(neutral, 1)
    base = normalised_landmarks(neutral, m, 1)
    out = np.empty((len(faces), N_LANDMARKS, 2), np.float32)
    for i, lm in enumerate(faces):
        sim = _similarity(lm[STABLE], neutral[STABLE])
        moved = lm @ sim[:, :2].T + sim[:, 2]
        out[i] = normalised_landmarks(moved, m, 1) - base
    return out


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The least-squares similarity (2x3) taking points ``src`` onto ``dst`` (Umeyama)."""
    sm, dm = src.mean(0), dst.mean(0)
    s, d = src - sm, dst - dm
    u, sig, vt = np.linalg.svd(d.T @ s)
    r = u @ np.diag([1.0, np.sign(np.linalg.det(u @ vt))]) @ vt
    scale = sig.sum() / (s ** 2).sum()
    return np.concatenate([scale * r, (dm - scale * r @ sm)[:, None]], 1)


def fit_motion_deltas(deltas: np.ndarray, aus: np.ndarray, au_names, ridge: float = 0.01) -> dict:
    """Ridge least squares without intercept of expression deltas (N, 68, 2: each photo's
    landmarks minus the same person's neutral ones, ``expression_deltas``) on the photos'
    AUs (N, 17; 0..1, human FACS codes; a neutral face is 0). Each landmark is regressed
    only on the AUs whose region contains it; mirrored data make the model symmetric.
    Returns {"basis": (17, 68, 2), "r2": share of delta variance explained, "counts": (17,)
    photos where each AU is coded}."""
    d = np.asarray(deltas, np.float64)
    flipped = d[:, MIRROR].copy()
    flipped[..., 0] *= -1
    t = np.concatenate([d, flipped])
    y = np.nan_to_num(np.concatenate([aus, aus]).astype(np.float64))
    basis = _region_ridge(y, t, au_names, ridge)
    resid = t - np.einsum("nk,kij->nij", y, basis)
    return {"basis": basis.astype(np.float32), "r2": float(1 - (resid ** 2).sum() / (t ** 2).sum()),
            "counts": (np.nan_to_num(aus) > 0).sum(0)}


def _region_ridge(y: np.ndarray, t: np.ndarray, au_names, ridge: float) -> np.ndarray:
    """Ridge least squares of landmark targets t (N,68,2) on AUs y (N,17), each landmark on
    the AUs whose region (``motion.AU_REGIONS``) contains it: the (17,68,2) basis."""
    basis = np.zeros((y.shape[1], N_LANDMARKS, 2))
    for i in range(N_LANDMARKS):
        cols = [k for k, name in enumerate(au_names) if i in AU_REGIONS.get(name, ())]
        if not cols:
            continue
        x = y[:, cols]
        gram = x.T @ x + ridge * len(x) * np.eye(len(cols))
        basis[cols, i] = np.linalg.solve(gram, x.T @ t[:, i])
    return basis
