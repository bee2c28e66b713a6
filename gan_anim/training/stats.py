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
    """One report of named values per step; means per step over a window of steps."""

    def __init__(self):
        self._pending: list[Mapping] = []  # reports not read yet
        self._sums: dict[str, float] = {}
        self._steps = 0

    def report(self, values: Mapping) -> None:
        """One step's values ({name: scalar tensor or float}), read at the next ``collect``."""
        self._pending.append(values)

    def collect(self) -> dict[str, float]:
        """Add the pending reports to the window; returns the newest one as floats ({} if none)."""
        for values in self._pending:
            for k, v in values.items():
                self._sums[k] = self._sums.get(k, 0.0) + float(v)
            self._steps += 1
        latest = {k: float(v) for k, v in self._pending[-1].items()} if self._pending else {}
        self._pending.clear()
        return latest

    def means(self) -> dict[str, float]:
        """Each name's sum over the collected window divided by the window's steps (a name
        reported on some steps only, as the generator's every ``critic_steps``, counts 0 on
        the others)."""
        n = max(self._steps, 1)
        return {k: v / n for k, v in self._sums.items()}

    def reset(self) -> None:
        """Start a new window (pending reports stay pending)."""
        self._sums.clear()
        self._steps = 0


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
