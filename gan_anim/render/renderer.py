"""The render core: generate -> restore -> blend, shared by ``animate``, ``grid`` and ``video``.

    renderer = Renderer(model)   # an edit_model.EditModel
    for frame in renderer.render(FrameRender(image, [FaceRender(m, crop, target, lms, own)]) ...):
        writer.write(frame)

Face crops of several frames go through the generator together (up to the model's
batch size), then each face is blended back onto its frame at full resolution
(``blend.FaceBlender``). Frames that share one source image (a photo animation, the grid)
reuse one output buffer, on which only the face regions are restored between frames,
and one blender per face (its maps are built once). The composite runs where
``model.composite`` says: OpenCV on the CPU (``blend.FaceBlender``) or torch on the
model's device (``torch_blend``, the default on CUDA: the source frame goes to the GPU
once and only the face regions come back).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Iterator

import numpy as np

from ..overlap import prefetch
from .blend import FaceBlender

if TYPE_CHECKING:
    from .edit_model import EditModel


@dataclass
class FaceRender:
    """One face of one frame: its alignment (2x3, image -> crop), its crop (S,S,3 uint8),
    the target AUs (17,) on 0..5, and for motion models its landmarks (68,2, crop-side
    units) and own AUs (17,)."""

    transform: np.ndarray
    crop: np.ndarray
    target: np.ndarray
    landmarks: np.ndarray | None = None
    own: np.ndarray | None = None


@dataclass
class FrameRender:
    """A source frame (H,W,3 uint8, never modified) and the faces to render on it."""

    image: np.ndarray
    faces: list[FaceRender] = field(default_factory=list)


class Renderer:
    """Turns ``FrameRender`` items into composited full-resolution frames.

    ``render`` yields one frame per item, in order: the source itself where there is no
    face, else an output buffer that stays valid until ``buffers`` more frames have been
    requested (copy it to keep it longer; ``buffers`` > 1 lets an encoder thread read a
    frame while the next ones are rendered, without copying it). ``timings`` accumulates
    seconds in "generate" and "blend". With
    ``overlap`` the generator runs in a background thread, one batch ahead of the blend
    (``overlap=False``: one stage after the other).
    """

    def __init__(self, model: EditModel, timings: dict | None = None, max_frames: int = 16,
                 overlap: bool = True, buffers: int = 1):
        self.model = model
        self.timings = {} if timings is None else timings
        self.timings.setdefault("generate", 0.0)
        self.timings.setdefault("blend", 0.0)
        self.max_frames = max(1, max_frames)
        self.overlap = overlap
        self.buffers = max(1, buffers)
        self._source = None
        self._outs: list[np.ndarray] = []   # output buffers of the current source, in turn
        self._turn = -1
        self._blenders: dict = {}
        self._torch = None  # torch_blend.TorchCompositor when model.composite is "torch"

    def render(self, frames: Iterable[FrameRender]) -> Iterator[np.ndarray]:
        batches = self._generated(self._batches(frames))
        if self.overlap:  # the next batch is generated while this one is blended
            batches = prefetch(batches, 1)
        for pending, edits in batches:
            yield from self._blended(pending, edits)

    def _batches(self, frames: Iterable[FrameRender]) -> Iterator[list[FrameRender]]:
        pending, n_faces = [], 0
        for item in frames:
            pending.append(item)
            n_faces += len(item.faces)
            if n_faces >= self.model.batch_size or len(pending) >= self.max_frames:
                yield pending
                pending, n_faces = [], 0
        if pending:
            yield pending

    def _generated(self, batches: Iterable[list[FrameRender]]):
        """(frames, their faces' edits in order, or None) for each batch."""
        for pending in batches:
            faces = [f for p in pending for f in p.faces]
            edits = None
            if faces:
                t = time.perf_counter()
                moving = all(f.landmarks is not None and f.own is not None for f in faces)
                edits = self.model.generate(
                    np.stack([f.crop for f in faces]), np.stack([f.target for f in faces]),
                    np.stack([f.landmarks for f in faces]) if moving else None,
                    np.stack([f.own for f in faces]) if moving else None)
                self.timings["generate"] += time.perf_counter() - t
            yield pending, edits

    def _blended(self, pending: list[FrameRender], edits) -> Iterator[np.ndarray]:
        n = 0
        for p in pending:
            if not p.faces:
                yield p.image
                continue
            t = time.perf_counter()
            out = self._restored(p.image)
            for f in p.faces:
                blender = self._blender(p.image, f.transform)
                if self._torch is not None:
                    self._torch.blend(out, blender, edits[n], p.image)
                else:
                    blender.blend(out, edits[n], source=p.image)
                n += 1
            self.timings["blend"] += time.perf_counter() - t
            yield out

    def _restored(self, image: np.ndarray) -> np.ndarray:
        """The next output buffer for ``image``, equal to it: when the source is the same,
        only the face regions of the buffer's earlier frame are restored."""
        if image is not self._source:
            self._source, self._outs, self._turn, self._blenders = image, [], -1, {}
        self._turn = (self._turn + 1) % self.buffers
        if self._turn == len(self._outs):
            self._outs.append(image.copy())
        else:
            out = self._outs[self._turn]
            for b in self._blenders.values():
                out[b.slices] = image[b.slices]
        return self._outs[self._turn]

    def _blender(self, image: np.ndarray, transform: np.ndarray):
        """The face's ``FaceBlender`` (or ``torch_blend.TorchBlender``), built once per source."""
        key = np.asarray(transform, np.float64).tobytes()
        b = self._blenders.get(key)
        if b is None:
            if self.model.composite == "torch":
                from .torch_blend import TorchBlender, TorchCompositor

                if self._torch is None:
                    self._torch = TorchCompositor(self.model.device)
                b = TorchBlender(image.shape, transform, self.model.size, self.model.device)
            else:
                b = FaceBlender(image.shape, transform, self.model.size)
            self._blenders[key] = b
        return b
