"""Sample grids: what the generator makes of a few fixed faces, written at every checkpoint
(``samples/step-<step>.png`` in the run folder) so a person can watch training progress."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..aus import AU_SCALE, au_dict_to_vector
from ..aus import PRESETS as EXPRESSIONS
from ..media.paths import atomic_output
from ..model import Generator
from .faceset import FaceDataset
from .losses import generate

GRID_EXPRESSIONS = ("happy", "surprise", "sad", "anger")


@dataclass
class GridFaces:
    """The faces of every grid: ``images`` (n,3,S,S) float in [-1,1] on the CPU, their ``aus``
    (n,17) on 0..1 and ``landmarks`` (n,68,2) or None."""

    images: torch.Tensor
    aus: torch.Tensor
    landmarks: torch.Tensor | None

    @classmethod
    def first(cls, ds: FaceDataset, count: int) -> "GridFaces":
        """The first ``count`` faces of ``ds``."""
        return cls(ds.images[:count].float().cpu() / 127.5 - 1.0, ds.aus[:count],
                   None if ds.landmarks is None else ds.landmarks[:count])


def write_grid(path: Path, generator: Generator, faces: GridFaces) -> None:
    """Write ``generator``'s grid of ``faces`` as a PNG (in eval mode, then back to training)."""
    generator.eval()
    rgb = sample_grid(generator, faces.images, aus=faces.aus, landmarks=faces.landmarks)
    generator.train()
    write_png(path, rgb)


@torch.no_grad()
def sample_grid(generator: Generator, images: torch.Tensor,
                expressions=GRID_EXPRESSIONS, aus: torch.Tensor | None = None,
                landmarks: torch.Tensor | None = None) -> np.ndarray:
    """RGB uint8 grid: input row, then for each expression its result and attention rows.

    ``aus``/``landmarks`` of the images drive the landmark motion of motion models."""
    import cv2

    dev = next(generator.parameters()).device
    x = images.to(dev)
    lms = None if landmarks is None else landmarks.to(dev).float()
    src = None if aus is None else aus.to(dev).float()
    rows = [x]
    for name in expressions:
        y = torch.from_numpy(au_dict_to_vector(EXPRESSIONS[name]) / AU_SCALE).float().to(dev)
        out, attn = generate(generator, x, y.expand(len(x), -1), lms, src)[:2]
        rows += [out.float(), attn.float().expand(-1, 3, -1, -1) * 2 - 1]
    s = x.shape[-1]
    grid = torch.stack(rows).clamp(-1, 1)                      # (rows, n, 3, s, s)
    grid = ((grid + 1) * 127.5).round().byte().cpu().numpy()
    r, n = grid.shape[:2]
    grid = grid.transpose(0, 3, 1, 4, 2).reshape(r * s, n * s, 3)
    label_w = 72
    canvas = np.full((r * s, label_w + n * s, 3), 255, np.uint8)
    canvas[:, label_w:] = grid
    labels = ["input"] + [f"{e}{t}" for e in expressions for t in ("", " A")]
    for i, text in enumerate(labels):
        cv2.putText(canvas, text, (3, i * s + s // 2 + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.38,
                    (0, 0, 0), 1, cv2.LINE_AA)
    if s < 96:
        canvas = cv2.resize(canvas, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    return canvas


def write_png(path: Path, rgb: np.ndarray) -> None:
    """Write an RGB uint8 (H,W,3) image as a PNG, atomically."""
    from PIL import Image

    with atomic_output(path) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG")
