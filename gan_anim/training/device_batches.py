"""Batches assembled on the training device without waiting for it (``--data-on-device``).

``data.make_batch`` moves each batch's indices, flips, AUs and targets to the GPU with
ordinary copies, and every such copy waits until the GPU has finished all the work queued
before it: the CPU cannot queue the next step while the GPU runs this one. Here the whole
set (faces, AUs, landmarks) lives on the device; the CPU draws only what ``data.batch_plan``
draws (a pure function of seed and step, so the batches are ``make_batch``'s, bit for bit),
sends it in two asynchronous copies from pinned memory, and the device gathers, flips and
mirrors. On the CPU the same code runs without the copies.
"""
from __future__ import annotations

import torch

from ..motion import MIRROR
from .data import assemble_batch, batch_plan
from .faceset import FaceDataset


class DeviceBatches:
    """``make_batch(ds, step, ...)`` for every step, from a copy of ``ds`` on ``device``."""

    def __init__(self, ds: FaceDataset, device: torch.device, batch_size: int, seed: int,
                 rank: int = 0, world: int = 1, flip: bool = True, target_noise: float = 0.1,
                 pairs=None):
        # targets and pairs are drawn on the CPU
        person = None if ds.person is None else ds.person.cpu()
        self.plan_ds = FaceDataset(ds.images[:0], ds.aus.cpu(), ds.names, person=person)
        lms = None if ds.landmarks is None else ds.landmarks.to(device)
        self.ds = FaceDataset(ds.images.to(device), ds.aus.to(device), ds.names, ds.notes, lms)
        self.device = torch.device(device)
        self.args = (batch_size, seed, rank, world)
        self.flip, self.target_noise, self.pairs = flip, target_noise, pairs
        self.mirror = torch.as_tensor(MIRROR, device=self.device)
        self.pin = self.device.type == "cuda"

    def __len__(self) -> int:
        return len(self.ds)

    def __call__(self, step: int):
        """(x, real AUs, target AUs, landmarks or None[, Pair or None with ``pairs``]) of
        ``step``, on the device."""
        idx, flips, target, partner = batch_plan(self.plan_ds, step, *self.args,
                                                 target_noise=self.target_noise, pairs=self.pairs)
        ints = torch.stack([idx, flips.long()] + ([] if partner is None else [partner]))
        floats = target.float()
        if self.pin:  # a fresh pinned buffer each step: the caching host allocator keeps it
            # until its copy has run, so no step overwrites a batch still in flight
            ints = ints.pin_memory().to(self.device, non_blocking=True)
            floats = floats.pin_memory().to(self.device, non_blocking=True)
        batch = assemble_batch(self.ds, ints[0], ints[1].bool(), floats,
                               None if partner is None else ints[2], self.flip, self.mirror)
        return (*batch, None) if self.pairs is not None and partner is None else batch
