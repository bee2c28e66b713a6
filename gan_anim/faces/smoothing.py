"""Temporal smoothing: the One-Euro filter (Casiez et al., CHI 2012).

A low-pass filter whose cutoff rises with the signal's speed: a still signal is smoothed
hard (no jitter), a fast one follows with little lag. The video tracker runs one on each
face's alignment, the video pipeline and the AU timelines one on each face's AUs.
"""
from __future__ import annotations

import math

import numpy as np

# Cutoff (Hz) of the speed estimate that sets the cutoff; Casiez et al.'s default.
D_CUTOFF = 1.0


class OneEuroFilter:
    """One-Euro low-pass filter on a vector: ``filter(x, dt)`` -> smoothed x (float64).

    ``min_cutoff`` (Hz): smoothing of a still signal; ``beta``: how much the cutoff rises
    per unit/s of speed; ``d_cutoff`` (Hz): smoothing of the speed estimate. ``x`` holds
    the last smoothed value (None before the first call).
    """

    def __init__(self, min_cutoff: float, beta: float, d_cutoff: float = D_CUTOFF):
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.x = self.dx = None

    @staticmethod
    def _alpha(cutoff, dt):
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: np.ndarray, dt: float) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self.x is None:
            self.x, self.dx = x.copy(), np.zeros_like(x)
            return x.copy()
        a_d = self._alpha(self.d_cutoff, dt)
        self.dx = self.dx + a_d * ((x - self.x) / dt - self.dx)
        a = self._alpha(self.min_cutoff + self.beta * np.abs(self.dx), dt)
        self.x = self.x + a * (x - self.x)
        return self.x.copy()
