"""Pictures of a photo at the page's resolution, edited by the same blend as the exports.

A ``View`` is a box of the photo resized to at most a given side (the preview: the whole
photo at screen size; the zoom: the face). A face's alignment (photo -> crop) becomes the
view's (view -> crop), so ``render.blend.FaceBlender`` composites the generator's output
straight into the view's pixels: a 12 MP photo's preview costs what a 1 MP one does. A view
of the whole photo at its own size is the photo itself, and its pixels are the
``Renderer``'s bit for bit (tested).
"""
from __future__ import annotations

import cv2
import numpy as np

from ..render.blend import FaceBlender


class View:
    """``box`` (x0, y0, x1, y1, photo pixels) of ``image`` resized so that its longer side
    is ``side`` (``enlarge=False``: never above its own size)."""

    def __init__(self, image: np.ndarray, box=None, side: int = 1280, enlarge: bool = False):
        h, w = image.shape[:2]
        x0, y0, x1, y1 = box if box is not None else (0, 0, w, h)
        x0, y0, x1, y1 = max(0, int(x0)), max(0, int(y0)), min(w, int(x1)), min(h, int(y1))
        self.origin = (x0, y0)
        region = image[y0:y1, x0:x1]
        k = side / max(x1 - x0, y1 - y0)
        if not enlarge:
            k = min(k, 1.0)
        size = (max(1, round((x1 - x0) * k)), max(1, round((y1 - y0) * k)))
        self.identity = size == (x1 - x0, y1 - y0) and (x0, y0) == (0, 0) and (x1, y1) == (w, h)
        if self.identity:
            self.source = image
        else:
            shrink = size[0] < x1 - x0
            self.source = cv2.resize(np.ascontiguousarray(region), size,
                                     interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
        self.scale = (size[0] / (x1 - x0), size[1] / (y1 - y0))  # view px per photo px
        self.out = self.source.copy()
        self._blenders: dict = {}
        self._model_size = None

    def transform(self, m: np.ndarray) -> np.ndarray:
        """A face's alignment (2x3, photo -> crop) as view -> crop (pixel centres kept)."""
        m = np.asarray(m, np.float64)
        if self.identity:
            return m
        sx, sy = self.scale
        # photo x = (view x + 0.5) / sx - 0.5 + x0 (cv2.resize's pixel-centre convention)
        a = np.array([[1 / sx, 0, 0.5 / sx - 0.5 + self.origin[0]],
                      [0, 1 / sy, 0.5 / sy - 0.5 + self.origin[1]], [0, 0, 1]])
        return m @ a

    def render(self, transforms: dict, edits: dict, size: int) -> np.ndarray:
        """The view with each face ``k`` of ``edits`` (``FaceEdits`` items) blended at its
        alignment ``transforms[k]``; the other faces as in the photo. Returns ``self.out``
        (overwritten by the next call)."""
        if size != self._model_size:
            self._blenders, self._model_size = {}, size
        for b in self._blenders.values():  # undo the last render's faces
            if not b.empty:
                self.out[b.slices] = self.source[b.slices]
        for k, edit in edits.items():
            b = self._blenders.get(k)
            if b is None:
                b = self._blenders[k] = FaceBlender(self.source.shape, self.transform(transforms[k]), size)
            b.blend(self.out, edit, source=self.source)
        return self.out

    def to_view(self, points: np.ndarray) -> np.ndarray:
        """Photo (x, y) points (N,2) -> view pixels."""
        p = np.asarray(points, np.float64)
        s = np.array(self.scale)
        return (p - np.array(self.origin) + 0.5) * s - 0.5

    def to_photo(self, x: float, y: float) -> tuple[float, float]:
        """A view pixel -> photo (x, y)."""
        sx, sy = self.scale
        return (x + 0.5) / sx - 0.5 + self.origin[0], (y + 0.5) / sy - 0.5 + self.origin[1]
