"""Training statistics: named values reported every step, their means over a window, and
images per second.

As in stylegan2-ada's ``torch_utils/training_stats``, a step reports its losses as they
are (device tensors); they are read, which waits for the GPU, only when ``collect`` is
called, every few steps, so reporting does not stall the GPU.
"""
from __future__ import annotations

import time
from collections.abc import Mapping


class Collector:
    """One report of named values per step; each name's mean over the steps of a window
    that reported it."""

    def __init__(self):
        self._pending: list[Mapping] = []  # reports not read yet
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}

    def report(self, values: Mapping) -> None:
        """One step's values ({name: scalar tensor or float}), read at the next ``collect``."""
        self._pending.append(values)

    def collect(self) -> dict[str, float]:
        """Add the pending reports to the window; returns the newest one as floats ({} if none)."""
        for values in self._pending:
            for k, v in values.items():
                self._sums[k] = self._sums.get(k, 0.0) + float(v)
                self._counts[k] = self._counts.get(k, 0) + 1
        latest = {k: float(v) for k, v in self._pending[-1].items()} if self._pending else {}
        self._pending.clear()
        return latest

    def means(self) -> dict[str, float]:
        """Each name's mean over the collected steps that reported it: the generator's
        losses come every ``critic_steps`` steps and the gradient penalty every
        ``gp_every``, and each is averaged over its own steps."""
        return {k: v / self._counts[k] for k, v in self._sums.items()}

    def reset(self) -> None:
        """Start a new window (pending reports stay pending)."""
        self._sums.clear()
        self._counts.clear()


class Throughput:
    """Images per second between calls of ``lap``."""

    def __init__(self, images_per_step: int, step: int):
        self.images_per_step, self.step, self.t = images_per_step, step, time.perf_counter()

    def lap(self, step: int) -> float:
        """Images per second since the last lap (or the start), which ends here."""
        now = time.perf_counter()
        ips = (step - self.step) * self.images_per_step / max(now - self.t, 1e-9)
        self.step, self.t = step, now
        return ips
