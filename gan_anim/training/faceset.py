"""What every training-set reader produces: a ``FaceDataset``, its faces resized by ``resize_square``."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class FaceDataset:
    """One split in memory: ``images`` (N,3,S,S) uint8 RGB, ``aus`` (N,17) float on 0..1,
    ``landmarks`` (N,68,2) float in crop-side units (0..1) or None, ``person`` (N,) int64
    ids (-1: none; photos of one person pair up, ``data.make_batch``) or None."""

    images: torch.Tensor
    aus: torch.Tensor
    names: list[str]
    notes: list[str] = field(default_factory=list)  # things worth telling the user once
    landmarks: torch.Tensor | None = None
    person: torch.Tensor | None = None  # on the CPU, like aus

    def __len__(self) -> int:
        return len(self.names)


def resize_square(img: np.ndarray, size: int) -> np.ndarray:
    """(H,W,C) uint8 -> (size,size,C): INTER_AREA to shrink, INTER_CUBIC to enlarge; ``img``
    itself when it already has that size."""
    if img.shape[:2] == (size, size):
        return img
    import cv2

    interp = cv2.INTER_AREA if min(img.shape[:2]) >= size else cv2.INTER_CUBIC
    return cv2.resize(img, (size, size), interpolation=interp)
