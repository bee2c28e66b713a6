"""The generator and critic, their optimisers, and one training step (``GANTrainer``).

One *step* is one batch: one critic update, plus a generator update every
``critic_steps`` steps (as the official code). On CUDA the forward passes run under
bf16 autocast; under torchrun both networks are wrapped in DistributedDataParallel.

Speed (``--compile``, ``--fused-adam``): ``compile="on"`` runs both networks through
``torch.compile`` (inductor fuses the instance norms, activations and their gradients),
and the landmark warp's flow is evaluated as one fused reduction (``spline_flow``);
``"graphs"`` also replays them as CUDA graphs (``mode="reduce-overhead"``). The gradient
penalty's critic pass stays eager: it is differentiated twice, which compiled graphs do
not support. ``fused`` selects Adam's one-kernel implementation. ``$GAN_ANIM_COMPILE_BACKEND``
picks torch.compile's backend (default inductor; the CPU tests use ``aot_eager``, which
traces the same graphs without generating code, as inductor takes minutes on 2 cores).
"""
from __future__ import annotations

import contextlib
import dataclasses
import inspect
import os

import torch

from ..aus import AU_NAMES, AU_SCALE
from ..errors import GanAnimError
from ..model import Critic, Generator, ModelConfig
from .checkpoints import CHECKPOINT_FORMAT
from .data import _generator
from .losses import critic_loss, generate, generator_loss
from .options import TrainOptions
from .runtime import Runtime
from .spline_flow import SplineFlow

COMPILE_MODES = ("off", "on", "graphs")

# The networks' buffers (the landmark motion) never change during training, so DDP need not
# sync them before every forward. Newer torch names that ``forward_sync_buffers`` and warns
# on ``broadcast_buffers``; the GPU machines may have a torch without it.
_NO_BUFFER_SYNC = ({"forward_sync_buffers": False}
                   if "forward_sync_buffers" in inspect.signature(
                       torch.nn.parallel.DistributedDataParallel.__init__).parameters
                   else {"broadcast_buffers": False})


def set_requires_grad(module: torch.nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


class GANTrainer:
    """Generator, critic, their optimisers and one training step."""

    def __init__(self, cfg: ModelConfig, opts: TrainOptions, rt: Runtime, *, compile: str = "off",
                 fused: bool = False):
        if compile not in COMPILE_MODES:
            raise ValueError(f"compile must be one of {', '.join(COMPILE_MODES)}, not {compile!r}")
        self.cfg, self.opts, self.rt = cfg, opts, rt
        self.compile, self.fused = compile, fused
        torch.manual_seed(opts.seed)  # same initial weights on every rank
        fmt = torch.channels_last if rt.channels_last else torch.contiguous_format
        self.G = Generator(cfg).to(rt.device, memory_format=fmt)
        self.D = Critic(cfg).to(rt.device, memory_format=fmt)
        adam = {"lr": opts.lr, "betas": tuple(opts.betas), "fused": True if fused else None}
        self.opt_g = torch.optim.Adam(self.G.parameters(), **adam)
        self.opt_d = torch.optim.Adam(self.D.parameters(), **adam)
        self.G_train, self.D_train = self.G, self.D
        if rt.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [rt.device.index] if rt.cuda else None
            self.G_train = DDP(self.G, device_ids=ids, **_NO_BUFFER_SYNC)
            self.D_train = DDP(self.D, device_ids=ids, **_NO_BUFFER_SYNC)
        # the passes that run compiled (the same modules, so weights and state are shared)
        self.G_fast, self.D_fast, self.G_nograd = self.G_train, self.D_train, self.G
        self.flow = None  # the landmark warp's flow: ThinPlate.flow, or fused (spline_flow)
        if compile != "off":
            backend = os.environ.get("GAN_ANIM_COMPILE_BACKEND", "inductor")
            # static shapes: the critic sees 2B faces (real + fake) and B (fake): two graphs,
            # not one with a symbolic batch
            kw = {"backend": backend, "dynamic": False}
            if backend == "inductor":
                kw["mode"] = "reduce-overhead" if compile == "graphs" else None
            self.G_fast = torch.compile(self.G_train, **kw)
            self.D_fast = torch.compile(self.D_train, **kw)
            self.G_nograd = self.G_fast if self.G_train is self.G else torch.compile(self.G, **kw)
            self.flow = SplineFlow(backend=backend, dynamic=False)

    def autocast(self):
        if self.rt.cuda:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def step(self, step: int, x: torch.Tensor, real_aus: torch.Tensor,
             target_aus: torch.Tensor, landmarks: torch.Tensor | None = None,
             pair=None) -> dict[str, torch.Tensor]:
        """One critic update (and a generator update every ``critic_steps``); the losses.
        ``pair``: a ``data.Pair`` for the generator's pair loss (``--lambda-pair``)."""
        if self.compile == "off":
            return self._step(step, x, real_aus, target_aus, landmarks, pair)
        try:
            return self._step(step, x, real_aus, target_aus, landmarks, pair)
        except torch._dynamo.exc.BackendCompilerFailed as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise GanAnimError(f"--compile {self.compile}: torch.compile failed ({first}); "
                               f"train with --compile off") from None

    def _step(self, step: int, x: torch.Tensor, real_aus: torch.Tensor,
              target_aus: torch.Tensor, landmarks: torch.Tensor | None,
              pair=None) -> dict[str, torch.Tensor]:
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

        if self.compile == "graphs":  # a new step: the graphs' previous outputs may be reused
            torch.compiler.cudagraph_mark_step_begin()
        with self.autocast():
            if g_step:  # made once with gradients: the critic sees it detached, G reuses it
                forward = generate(self.G_fast, x, target_aus, landmarks, real_aus, self.flow)
            else:
                with torch.no_grad():
                    forward = generate(self.G_nograd, x, target_aus, landmarks, real_aus, self.flow)
            fake, attn = forward[:2]
            d_loss, logs = critic_loss(self.D_fast, x, fake, real_aus, w, alpha, float(o.gp_every),
                                       gp_critic=self.D_train)
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
        logs = {k: v.detach() for k, v in logs.items()}
        logs["attention"] = attn.detach().float().mean()

        if g_step:
            set_requires_grad(self.D, False)  # no critic weight gradients in the G step
            try:
                with self.autocast():
                    g_loss, glogs = generator_loss(self.G_fast, self.D_fast, x, real_aus,
                                                   target_aus, w, forward=forward, flow=self.flow,
                                                   pair=pair)
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
        """Weights and optimiser state of a checkpoint; Adam stays fused or not as this
        trainer was made (a saved optimiser brings its own flags, and the fused kernel keeps
        its step counts on the parameters' device, the other one on the CPU)."""
        self.G.load_state_dict(blob["generator"])
        self.D.load_state_dict(blob["critic"])
        for opt, key in ((self.opt_g, "opt_g"), (self.opt_d, "opt_d")):
            opt.load_state_dict(blob[key])
            for group in opt.param_groups:
                group["fused"] = True if self.fused else None
                for p in group["params"]:
                    state = opt.state.get(p, {})
                    if torch.is_tensor(state.get("step")):
                        state["step"] = state["step"].to(p.device if self.fused else "cpu", torch.float32)


def _options_dict(o: TrainOptions) -> dict:
    d = dataclasses.asdict(o)
    d["betas"] = list(o.betas)
    return d
