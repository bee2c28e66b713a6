"""Training options: the one place where their defaults and help live (no torch here).

``TrainOptions`` (stored in each checkpoint) with its ``LossWeights``, and
``RunOptions`` (how a run is carried out). ``gan-anim train`` derives its options
from these fields (``cli.py``), and ``loop.train`` takes them or keyword
overrides of any field, so a default changed here changes everywhere.

Field metadata: ``help``; ``cli``: the option name (default ``--field-name``), a
tuple of names for a tuple field, or None for no command-line option; ``type``:
the value type where the default is None.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass


def option(default=dataclasses.MISSING, help: str = "", cli=..., type=None, factory=None):
    """A dataclass field with its command-line help (see the module docstring)."""
    meta = {"help": help, "type": type}
    if cli is not ...:
        meta["cli"] = cli
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class LossWeights:
    """Weights of the GANimation objective's terms (``losses.py``)."""

    gp: float = option(10.0, "WGAN-GP gradient penalty weight.", cli="--lambda-gp")
    au: float = option(160.0, "AU regression weight on plain MSE (official: 4000 / batch 25).",
                       cli="--lambda-au")
    cycle: float = option(10.0, "Identity (cycle) L1 weight.", cli="--lambda-cycle")
    attention: float = option(0.1, "Weight of the mean of A.", cli="--lambda-attention")
    attention_tv: float = option(1e-5, "Weight of the total variation of A.", cli="--lambda-tv")
    adversarial: float = option(1.0, "Generator's WGAN term.", cli=None)
    pair: float = option(0.0, "Weight of the L1 between G's output and a real photo of the same "
                              "person with the target AUs (needs person ids: the kit's cfee pack); 0: off.",
                         cli="--lambda-pair")


@dataclass
class TrainOptions:
    """Everything that defines a run besides the data (stored in each checkpoint)."""

    steps: int = option(20000, "Total steps (one batch each).")
    batch_size: int = option(16, "Images per step per process.")
    lr: float = option(1e-4, "Adam learning rate.")
    betas: tuple = option((0.5, 0.999), "Adam betas.", cli=("--beta1", "--beta2"))
    critic_steps: int = option(5, "Generator updated once every this many critic steps.")
    decay_start: int | None = option(
        None, "Step where the LR starts its linear decay to 0 [default: 2/3 of --steps].", type=int)
    gp_every: int = option(1, "Gradient penalty every k steps, weighted k times (lazy regularisation).")
    seed: int = option(0, "Seed of the initial weights and the data order.")
    flip: bool = option(True, "Random horizontal flips.", cli=None)
    target_noise: float = option(0.1, "Uniform noise on sampled target AUs (0..1 scale).")
    paired_share: float = option(0.0, "Share of each batch's rows replaced by random faces with a "
                                      "person id (the kit pack's cfee photos); 0: none.")
    pair_share: float = option(0.5, "With --lambda-pair: share of the rows with a person id whose "
                                    "target is another photo of that person, compared with it.")
    weights: LossWeights = option(help="Loss weights.", factory=LossWeights)

    def lr_at(self, step: int) -> float:
        start = self.decay_start if self.decay_start is not None else (2 * self.steps) // 3
        if step < start or self.steps <= start:
            return self.lr
        return self.lr * max(0.0, (self.steps - step) / (self.steps - start))


PRESET_HELP = "small: 64 px, CPU; medium: 128 px, GPU; paper: the paper's 128 px networks."


@dataclass
class RunOptions:
    """How a run is carried out: model preset, checkpoints, device, budget (not stored)."""

    preset: object = option("small", PRESET_HELP, type=("small", "medium", "paper"))
    checkpoint_every: int = option(500, "Steps between checkpoints.")
    keep: int = option(3, "Checkpoints kept.")
    resume: bool = option(False, "Continue from the newest checkpoint in --out.")
    device: str = option("auto", "Where to train.", type=("auto", "cpu", "cuda"))
    max_minutes: float | None = option(
        None, "Wall-clock budget: stop cleanly (checkpoint, resumable) after this many minutes.",
        type=float)
    compile: str = option("off", "torch.compile the networks (on), and replay them as CUDA graphs "
                          "(graphs); the first steps compile.", type=("off", "on", "graphs"))
    fused_adam: str = option("auto", "Adam in one fused kernel per network [auto: on CUDA].",
                             type=("auto", "on", "off"))
    data_on_device: str = option("auto", "The whole training set on the device, batches assembled "
                                 "there without waiting for it [auto: on CUDA].", type=("auto", "on", "off"))
