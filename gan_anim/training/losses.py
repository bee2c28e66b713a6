"""The GANimation objective (``docs/method.md``), and nothing else.

Defaults are the official code's, except the AU term's form: the official code
multiplies ``MSELoss`` (mean over batch x 17) by 4000 and divides by the batch
size (25), i.e. 160 times the plain mean squared error. Here the AU term is the
plain MSE on the 0..1 scale with weight ``au`` = 160 for both critic and generator,
so the weight does not change with the batch size.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..model import compose
from ..motion import warp
from .options import LossWeights  # noqa: F401 (defaults live there)


def total_variation(a: torch.Tensor) -> torch.Tensor:
    """Sum over the batch of squared neighbour differences, as in the official code."""
    return ((a[:, :, 1:, :] - a[:, :, :-1, :]) ** 2).sum() + ((a[:, :, :, 1:] - a[:, :, :, :-1]) ** 2).sum()


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor,
                     alpha: torch.Tensor) -> torch.Tensor:
    """E[(||grad D_I(x~)||_2 - 1)^2] at x~ = alpha * real + (1 - alpha) * fake."""
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    score, _ = critic(mixed)
    (grad,) = torch.autograd.grad(score.float().sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def critic_loss(critic, real: torch.Tensor, fake: torch.Tensor, real_aus: torch.Tensor,
                w: LossWeights, alpha: torch.Tensor | None = None, gp_scale: float = 1.0,
                gp_critic=None):
    """Critic objective on a real and a (detached) generated batch.

    One critic pass on real and fake together (the critic has no batch
    statistics, so this equals two passes). ``alpha`` (B,1,1,1) enables the
    gradient penalty, weighted ``w.gp * gp_scale`` (``gp_scale`` = k when it is
    applied every k steps, so its average strength is unchanged). ``gp_critic``: the
    same critic for the penalty's pass, which is differentiated twice (a compiled critic
    cannot be; default ``critic``). Returns (loss, dict of float tensors).
    """
    b = real.shape[0]
    scores, aus = critic(torch.cat([real, fake.detach()]))
    scores, aus = scores.float(), aus.float()
    d_real, d_fake = scores[:b].mean(), scores[b:].mean()
    au = F.mse_loss(aus[:b], real_aus)
    loss = d_fake - d_real + w.au * au
    logs = {"d_real": d_real, "d_fake": d_fake, "d_au": au}
    if alpha is not None:
        gp = gradient_penalty(critic if gp_critic is None else gp_critic, real, fake.detach(), alpha)
        loss = loss + w.gp * gp_scale * gp
        logs["gp"] = gp
    logs["d_loss"] = loss
    return loss, logs


def generator_loss(generator, critic, real: torch.Tensor, real_aus: torch.Tensor,
                   target_aus: torch.Tensor, w: LossWeights, forward=None, landmarks=None, flow=None,
                   pair=None):
    """Generator objective: adversarial + AU + cycle + attention on both passes, plus
    ``w.pair`` x ``pair_loss`` when a ``data.Pair`` is given.

    ``forward`` = (fake, A, C, moved landmarks) from ``generate`` reuses a batch already
    made with gradients for the critic step. With a motion model the cycle pass warps the
    fake back from the moved landmarks. ``flow``: see ``generate``. Returns (loss, dict of
    float tensors).
    """
    if forward is None:
        forward = generate(generator, real, target_aus, landmarks, real_aus, flow)
    fake, attn, _, moved = forward
    score, aus = critic(fake)
    adv = -score.float().mean()
    au = F.mse_loss(aus.float(), target_aus)
    cyc, attn2 = generate(generator, fake, real_aus, moved, target_aus, flow)[:2]
    cycle = F.l1_loss(cyc.float(), real)
    a1, a2 = attn.float(), attn2.float()
    att_mean = a1.mean() + a2.mean()
    att_tv = total_variation(a1) + total_variation(a2)
    loss = (w.adversarial * adv + w.au * au + w.cycle * cycle
            + w.attention * att_mean + w.attention_tv * att_tv)
    logs = {"g_adv": adv, "g_au": au, "cycle": cycle, "att_tv": att_tv, "attention": a1.mean().detach()}
    if pair is not None and w.pair > 0:
        logs["pair"] = pair_loss(fake, pair.images, pair.rows, pair.landmarks)
        loss = loss + w.pair * logs["pair"]
    logs["g_loss"] = loss
    return loss, logs


def face_region(landmarks: torch.Tensor, size: int) -> torch.Tensor:
    """(B,1,S,S) 1 inside each face's box, 0 outside: the landmarks' extent (crop-side
    units) grown by 4 % of the side, and upwards by a third of the face's height so the
    forehead (brow raise, furrow) is in."""
    lo, hi = landmarks.amin(1), landmarks.amax(1)                # (B, 2)
    top = lo[:, 1] - (hi[:, 1] - lo[:, 1]) / 3
    u = (torch.arange(size, device=landmarks.device, dtype=torch.float32) + 0.5) / size
    inside_x = (u[None] >= lo[:, :1] - 0.04) & (u[None] <= hi[:, :1] + 0.04)      # (B, S)
    inside_y = (u[None] >= top[:, None] - 0.04) & (u[None] <= hi[:, 1:] + 0.04)
    return (inside_y[:, :, None] & inside_x[:, None, :]).float()[:, None]


def pair_loss(fake: torch.Tensor, truth: torch.Tensor, rows: torch.Tensor,
              landmarks: torch.Tensor | None = None) -> torch.Tensor:
    """Masked L1 between G's output and a real photo of the same person showing the target
    AUs, for the batch's ``rows``: on a low-pass (mean over size/32-pixel squares: the
    two photos' framings differ by a pixel or two) plus on the horizontal and vertical
    differences of a milder one (size/64: furrows, folds, teeth). ``landmarks`` (of
    ``truth``) limit it to the face (``face_region``); 0 when no row is paired. Whole-batch
    arithmetic, no indexing by ``rows``: nothing waits for the GPU."""
    f, t = fake.float(), truth.float()
    size = f.shape[-1]
    mask = rows.to(f.dtype).view(-1, 1, 1, 1)
    mask = mask * (torch.ones_like(f[:, :1]) if landmarks is None else face_region(landmarks.float(), size))
    total = f.new_zeros(())
    for k, gradient in ((max(1, size // 32), False), (max(1, size // 64), True)):
        fl, tl, ml = (F.avg_pool2d(v, k) for v in (f * mask, t * mask, mask))
        if not gradient:
            total = total + ((fl - tl).abs() * ml).sum() / (3 * ml.sum()).clamp(min=1e-6)
            continue
        for dim in (2, 3):
            df, dt = fl.diff(dim=dim), tl.diff(dim=dim)
            m = torch.minimum(ml.narrow(dim, 1, ml.shape[dim] - 1), ml.narrow(dim, 0, ml.shape[dim] - 1))
            total = total + ((df - dt).abs() * m).sum() / (3 * m.sum()).clamp(min=1e-6)
    return total


def generate(generator, image: torch.Tensor, aus: torch.Tensor, landmarks=None, source_aus=None,
             flow=None):
    """(edited image, attention A, colour C, moved landmarks) for target ``aus``.

    With a motion model and ``landmarks`` (B,68,2) of ``image`` whose AUs are
    ``source_aus``, the image is first warped by the landmark motion of the change;
    ``flow(spline, size)`` evaluates the warp (default ``spline.flow(size)``).
    """
    g = generator.module if hasattr(generator, "module") else generator
    if g.motion is not None and landmarks is not None:
        spline, moved = g.motion.spline(landmarks, source_aus, aus)
        field = spline.flow(image.shape[-1]) if flow is None else flow(spline, image.shape[-1])
        image = warp(image, field.to(image.dtype))
    else:
        moved = landmarks
    color, attn = generator(image, aus)
    return compose(image, color, attn), attn, color, moved
