"""A run folder's checkpoints: written atomically, pruned, read back to resume or export.

A checkpoint (``checkpoint-<step>.pt``) holds the model config, both networks, both
optimisers, the ``TrainOptions`` and the step; it is read with ``weights_only=True``, so
loading one runs no code. ``export_weights`` keeps only what inference needs.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..aus import AU_NAMES
from ..errors import GanAnimError
from ..media.paths import atomic_output, check_output_path
from ..model import Generator, ModelConfig, generator_state

CHECKPOINT_FORMAT = "gan-anim-checkpoint-v1"


def checkpoint_paths(out_dir) -> list[Path]:
    """Checkpoints in ``out_dir``, oldest first."""
    return sorted(Path(out_dir).glob("checkpoint-*.pt"))


def read_checkpoint(path) -> dict:
    """Load a checkpoint (a file, or the newest one in a run folder) without running code;
    ``path`` in the result says which file it was."""
    path = Path(path)
    if path.is_dir():
        found = checkpoint_paths(path)
        if not found:
            raise GanAnimError(f"{path}: no checkpoint-*.pt in this folder")
        path = found[-1]
    if not path.is_file():
        raise GanAnimError(f"{path}: no such checkpoint")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise GanAnimError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(blob, dict) or "generator" not in blob or "config" not in blob:
        raise GanAnimError(f"{path}: not a gan-anim training checkpoint")
    blob["path"] = str(path)
    return blob


@dataclass
class Resume:
    """Where a run starts: step 0 with fresh weights, or a checkpoint (``blob``)."""

    step: int = 0
    wall_s: float = 0.0  # training time spent before this process started
    blob: dict | None = None


class CheckpointManager:
    """The checkpoints of one run folder; the newest ``keep`` are kept."""

    def __init__(self, out_dir, keep: int):
        self.out_dir, self.keep = Path(out_dir), keep
        self.last: Path | None = None  # the newest checkpoint this process wrote

    def paths(self) -> list[Path]:
        """Checkpoints in the folder, oldest first."""
        return checkpoint_paths(self.out_dir)

    def newest(self) -> Path | None:
        """The newest checkpoint in the folder (written by any process), or None."""
        found = self.paths()
        return found[-1] if found else None

    def resume(self, wanted: bool, steps: int) -> Resume:
        """The newest checkpoint if ``wanted`` (one must exist, below ``steps``), else a
        fresh start (the folder must hold no checkpoint, so no run is overwritten)."""
        if not wanted:
            if self.paths():
                raise GanAnimError(f"{self.out_dir} already holds checkpoints: add --resume, "
                                   f"or choose another --out")
            return Resume()
        if not self.paths():
            raise GanAnimError(f"--resume: no checkpoint in {self.out_dir}")
        blob = read_checkpoint(self.out_dir)
        step = int(blob["step"])
        if step >= steps:
            raise GanAnimError(f"--resume: the checkpoint is at step {step}; raise --steps above it")
        return Resume(step, float(blob.get("wall_s", 0.0)), blob)

    def write(self, step: int, state: dict) -> Path:
        """Save ``state`` as the checkpoint of ``step`` (atomically), then drop the oldest
        beyond ``keep``."""
        path = self.out_dir / f"checkpoint-{step:07d}.pt"
        with atomic_output(path) as tmp:
            torch.save(state, tmp)
        for old in self.paths()[:-self.keep]:
            old.unlink(missing_ok=True)
        self.last = path
        return path


def export_weights(checkpoint, output, half: bool = False) -> Path:
    """Write the inference weights (generator, config, AU list) of a checkpoint."""
    blob = read_checkpoint(checkpoint)
    if list(blob.get("au_names", AU_NAMES)) != list(AU_NAMES):
        raise GanAnimError(f"{blob['path']}: trained on a different AU list")
    gen = Generator(ModelConfig.from_dict(blob["config"]))
    gen.load_state_dict({k: v.float() if v.is_floating_point() else v
                         for k, v in blob["generator"].items()})
    state = generator_state(gen, half=half)
    state["trained_steps"] = int(blob.get("step", 0))
    output = check_output_path(output, [blob["path"]])
    with atomic_output(output) as tmp:
        torch.save(state, tmp)
    return output
