"""The generator and critic, their optimisers, and one training step (``GANTrainer``).

One *step* is one batch: one critic update, plus a generator update every
``critic_steps`` steps (as the official code). On CUDA the forward passes run under
bf16 autocast; under torchrun both networks are wrapped in DistributedDataParallel.
"""
from __future__ import annotations

import contextlib
import dataclasses

import torch

from ..aus import AU_NAMES, AU_SCALE
from ..model import Critic, Generator, ModelConfig
from .checkpoints import CHECKPOINT_FORMAT
from .data import _generator
from .losses import critic_loss, generate, generator_loss
from .options import TrainOptions
from .runtime import Runtime


def set_requires_grad(module: torch.nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


class GANTrainer:
    """Generator, critic, their optimisers and one training step."""

    def __init__(self, cfg: ModelConfig, opts: TrainOptions, rt: Runtime):
        self.cfg, self.opts, self.rt = cfg, opts, rt
        torch.manual_seed(opts.seed)  # same initial weights on every rank
        fmt = torch.channels_last if rt.channels_last else torch.contiguous_format
        self.G = Generator(cfg).to(rt.device, memory_format=fmt)
        self.D = Critic(cfg).to(rt.device, memory_format=fmt)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=opts.lr, betas=tuple(opts.betas))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=opts.lr, betas=tuple(opts.betas))
        self.G_train, self.D_train = self.G, self.D
        if rt.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [rt.device.index] if rt.cuda else None
            self.G_train = DDP(self.G, device_ids=ids, broadcast_buffers=False)
            self.D_train = DDP(self.D, device_ids=ids, broadcast_buffers=False)

    def autocast(self):
        if self.rt.cuda:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def step(self, step: int, x: torch.Tensor, real_aus: torch.Tensor,
             target_aus: torch.Tensor, landmarks: torch.Tensor | None = None,
             pair=None) -> dict[str, torch.Tensor]:
        """One critic update (and a generator update every ``critic_steps``); ``pair``: a
        ``data.Pair`` for the generator's pair loss (``--lambda-pair``)."""
        o, w = self.opts, self.opts.weights
        lr = o.lr_at(step)
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups:
                group["lr"] = lr
        if self.rt.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        g_step = step % o.critic_steps == 0
        alpha = None
        if step % o.gp_every == 0:
            # drawn for the global batch, this rank's slice: any world size sees the same alphas
            b = x.shape[0]
            alpha = torch.rand(b * self.rt.world, 1, 1, 1, generator=_generator(o.seed, 3, step))
            alpha = alpha[self.rt.rank * b:(self.rt.rank + 1) * b]
            alpha = alpha.to(self.rt.device, non_blocking=True)

        with self.autocast():
            if g_step:  # made once with gradients: the critic sees it detached, G reuses it
                forward = generate(self.G_train, x, target_aus, landmarks, real_aus)
            else:
                with torch.no_grad():
                    forward = generate(self.G, x, target_aus, landmarks, real_aus)
            fake, attn = forward[:2]
            d_loss, logs = critic_loss(self.D_train, x, fake, real_aus, w, alpha, float(o.gp_every))
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
        logs = {k: v.detach() for k, v in logs.items()}
        logs["attention"] = attn.detach().float().mean()

        if g_step:
            set_requires_grad(self.D, False)  # no critic weight gradients in the G step
            try:
                with self.autocast():
                    g_loss, glogs = generator_loss(self.G_train, self.D_train, x, real_aus,
                                                   target_aus, w, forward=forward, pair=pair)
                self.opt_g.zero_grad(set_to_none=True)
                g_loss.backward()
                self.opt_g.step()
            finally:
                set_requires_grad(self.D, True)
            logs.update({k: v.detach() for k, v in glogs.items()})
        return logs

    # ------------------------------------------------------------------ state

    def state(self, step: int, extra: dict) -> dict:
        blob = {"format": CHECKPOINT_FORMAT, "config": self.cfg.to_dict(),
                "au_names": list(AU_NAMES), "au_scale": AU_SCALE, "step": step,
                "generator": {k: v.detach().cpu() for k, v in self.G.state_dict().items()},
                "critic": {k: v.detach().cpu() for k, v in self.D.state_dict().items()},
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                "options": _options_dict(self.opts), "world": self.rt.world}
        blob.update(extra)
        return blob

    def load_state(self, blob: dict) -> None:
        self.G.load_state_dict(blob["generator"])
        self.D.load_state_dict(blob["critic"])
        self.opt_g.load_state_dict(blob["opt_g"])
        self.opt_d.load_state_dict(blob["opt_d"])


def _options_dict(o: TrainOptions) -> dict:
    d = dataclasses.asdict(o)
    d["betas"] = list(o.betas)
    return d
