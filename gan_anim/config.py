"""Inference settings: one dataclass, each default written once (standard library only,
so the command line takes its defaults from here without loading anything heavy).

    from gan_anim import Animator
    from gan_anim.config import InferenceConfig
    Animator(config=InferenceConfig(device="cpu", painted_aus=("AU25", "AU26")))

Environment variables, for settings a user may want to fix outside a command line:

* ``GAN_ANIM_WEIGHTS``: the weights file (or a folder holding gan-anim-medium.pt) used
  when none is given (``render.weights.find_weights``).
* ``GAN_ANIM_PRECISION``: ``fp32`` or ``bf16`` where the precision is left at ``auto``,
  e.g. fp32 for the same pixels on every machine.
* ``GAN_ANIM_PAINTED_AUS``: comma-separated AU names that replace the default
  ``painted_aus``, for experiments.
* ``GAN_ANIM_COMPOSITE``: ``numpy`` or ``torch`` where ``composite`` is left at ``auto``,
  e.g. ``torch`` to run the GPU's composite code on the CPU.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class InferenceConfig:
    """How the generator is loaded and run, and the defaults of the commands around it."""

    weights: str | os.PathLike | None = None  # weights file or folder; None: $GAN_ANIM_WEIGHTS, else the packaged one
    device: str = "auto"          # "auto" (CUDA when torch sees a GPU), "cpu" or "cuda"
    precision: str = "auto"       # generator arithmetic: "fp32", "bf16", or "auto" (render.device.resolve_precision)
    batch_size: int = 16          # face crops per generator pass
    # The AUs whose change the generator is asked to paint; the others are rendered by the
    # landmark warp alone and G sees them unchanged: their training labels carry no texture
    # signal, and asked for them G paints dark strokes that only fool its critic
    # (weights/README.md). AU12 is warped only too: its paint smudges the chin when a smile
    # is taken back. Each painted AU's paint stays inside its own region (motion.region_masks).
    painted_aus: tuple[str, ...] = ("AU25", "AU26", "AU45")
    paint_ramp: float = 0.1       # a painted AU's paint fades in over this much of its change (0..1; 0.5 of 0..5)
    detect_max_side: int = 1280   # the detection cascade's first pass runs on a copy at most this many px
    crf: int = 18                 # H.264 quality of MP4 outputs (lower is better)
    # The full-resolution composite (warp, crease relaxation, paint): "numpy" (OpenCV on the
    # CPU), "torch" (render.torch_blend on the generator's device, within 1 grey level of
    # numpy), or "auto": torch on CUDA, numpy on the CPU (render.device.resolve_composite)
    composite: str = "auto"

    def with_env(self) -> "InferenceConfig":
        """This config with the environment variables of the module docstring applied:
        ``GAN_ANIM_PRECISION`` where ``precision`` is "auto", ``GAN_ANIM_PAINTED_AUS``
        where ``painted_aus`` is the default, ``GAN_ANIM_COMPOSITE`` where ``composite``
        is "auto" (``GAN_ANIM_WEIGHTS`` is read by ``find_weights``)."""
        from .aus import canonical_au

        changes = {}
        precision = os.environ.get("GAN_ANIM_PRECISION")
        if precision and self.precision == "auto":
            changes["precision"] = precision
        painted = os.environ.get("GAN_ANIM_PAINTED_AUS")
        if painted is not None and self.painted_aus == InferenceConfig.painted_aus:
            changes["painted_aus"] = tuple(canonical_au(n.strip()) for n in painted.split(",") if n.strip())
        composite = os.environ.get("GAN_ANIM_COMPOSITE")
        if composite and self.composite == "auto":
            changes["composite"] = composite
        return dataclasses.replace(self, **changes)
