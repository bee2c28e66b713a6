"""GANimation networks (Pumarola et al., ECCV 2018): generator G and critic D.

Read alongside ``docs/method.md``: G maps an RGB face crop in [-1, 1] plus a
17-AU target vector (0..1) to a colour mask C (tanh) and an attention mask A
(sigmoid); the edited face is ``(1 - A) * C + A * input``.

Two extensions, both off in the ``paper`` preset:

* ``motion``: the kept input is first warped by the landmark motion of the AU change
  (``gan_anim.motion``: a fitted AU -> landmark model and a thin-plate spline), so the
  face's own pixels carry the geometry and G paints only what is new.
* ``color="luma"``: C is a luminance and a saturation factor instead of RGB; the
  output's chroma is the warped input's, scaled by ``A + (1 - A) * s`` (s in 0..1), so
  paint can darken, lighten or desaturate a face but never change its hue.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .aus import AU_NAMES, AU_SCALE
from .colour import from_ycbcr, to_ycbcr


@dataclass(frozen=True)
class ModelConfig:
    """Network sizes. Travels inside every checkpoint and weights file."""

    image_size: int = 128        # face crop side in pixels
    channels: int = 64           # generator base channels (doubled twice by downsampling)
    res_blocks: int = 6          # residual blocks in the generator bottleneck
    critic_channels: int = 64    # critic first-layer channels
    critic_layers: int = 6       # 4x4 stride-2 convs; realism map is image_size / 2**layers
    n_aus: int = len(AU_NAMES)
    motion: bool = False         # warp the input by the landmark motion of the AU change
    color: str = "rgb"           # "rgb": C is RGB; "luma": C is luminance + saturation factor
    upsample: str = "transpose"  # decoder: "transpose" (the paper's 4x4/2 transposed convs) or
                                 # "resize" (nearest x2 + 3x3 conv: no checkerboard dots)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        """The config of a weights file or checkpoint (unknown keys ignored). ValueError for
        a learned flow head ("flow": true), which these networks do not have."""
        if d.get("flow"):
            raise ValueError("trained with a learned flow head (config \"flow\": true), "
                             "which gan-anim does not run: use weights without it")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


PRESETS: dict[str, ModelConfig] = {
    # The paper's networks and formulation, 128 px.
    "paper": ModelConfig(),
    # Trains on a 2-core CPU: 64 px crops, 32 channels, 4 blocks, landmark motion, luma paint.
    "small": ModelConfig(image_size=64, channels=32, res_blocks=4, critic_channels=32,
                         critic_layers=5, motion=True, color="luma", upsample="resize"),
    # The GPU kit's model: the same generator at 128 px; a critic small enough that a
    # resumable checkpoint comes back from the GPU machine (4x4 realism map).
    "medium": ModelConfig(image_size=128, channels=32, res_blocks=4, critic_channels=32,
                          critic_layers=5, motion=True, color="luma", upsample="resize"),
}


def _norm(c: int) -> nn.InstanceNorm2d:
    return nn.InstanceNorm2d(c, affine=True, track_running_stats=False)


class ResidualBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c, c, 3, 1, 1, bias=False), _norm(c), nn.ReLU(inplace=True),
            nn.Conv2d(c, c, 3, 1, 1, bias=False), _norm(c),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Generator(nn.Module):
    """Encoder / residual bottleneck / decoder with colour and attention heads."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.channels
        layers: list[nn.Module] = [
            nn.Conv2d(3 + cfg.n_aus, c, 7, 1, 3, bias=False), _norm(c), nn.ReLU(inplace=True),
        ]
        for _ in range(2):  # two stride-2 downsamplings
            layers += [nn.Conv2d(c, c * 2, 4, 2, 1, bias=False), _norm(c * 2), nn.ReLU(inplace=True)]
            c *= 2
        layers += [ResidualBlock(c) for _ in range(cfg.res_blocks)]
        for _ in range(2):  # two stride-2 upsamplings
            if cfg.upsample == "resize":
                layers += [nn.Upsample(scale_factor=2, mode="nearest"),
                           nn.Conv2d(c, c // 2, 3, 1, 1, bias=False)]
            elif cfg.upsample == "transpose":
                layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False)]
            else:
                raise ValueError(f"unknown upsampling {cfg.upsample!r}")
            layers += [_norm(c // 2), nn.ReLU(inplace=True)]
            c //= 2
        self.body = nn.Sequential(*layers)
        if cfg.color not in ("rgb", "luma"):
            raise ValueError(f"unknown colour mode {cfg.color!r}")
        self.luma = cfg.color == "luma"
        self.color = nn.Conv2d(c, 2 if self.luma else 3, 7, 1, 3, bias=False)
        self.attention = nn.Conv2d(c, 1, 7, 1, 3, bias=False)
        self.motion = None
        if cfg.motion:
            from .motion import LandmarkMotion

            self.motion = LandmarkMotion(n_aus=cfg.n_aus)  # filled by fit or by load_state_dict

    def forward(self, image: torch.Tensor, aus: torch.Tensor):
        """image: (B,3,H,W) in [-1,1]; aus: (B,17) in [0,1].

        Returns (C, A): C (B,3,H,W) in [-1,1] (luma mode: (B,2,H,W), luminance in [-1,1]
        and saturation factor in [0,1]), A (B,1,H,W) in [0,1]. With ``motion`` the caller
        warps ``image`` first (``motion.LandmarkMotion.spline``); G sees the warped face.
        """
        feat = self.body[1:](self._input_conv(image, aus))
        # the two 7x7 heads as one convolution (one pass over the widest feature map)
        nc = self.color.out_channels
        out = F.conv2d(feat, torch.cat([self.color.weight, self.attention.weight]), padding=3)
        if self.luma:  # saturation starts near 1 (keep the face's colour)
            color = torch.cat([torch.tanh(out[:, :1]), torch.sigmoid(out[:, 1:2] + 3.0)], 1)
        else:
            color = torch.tanh(out[:, :3])
        attention = torch.sigmoid(out[:, nc:nc + 1])
        return color, attention

    def _input_conv(self, image: torch.Tensor, aus: torch.Tensor) -> torch.Tensor:
        """First 7x7 convolution of [image, AU maps], without building the AU maps.

        Each AU map is constant, so its convolution is ``y_k`` times the
        convolution of a ones-map (which differs from a constant only near the
        zero-padded border). Same result as ``body[0](cat([image, y maps]))``,
        at a fraction of the cost: the 17 AU channels are 85 % of the input.
        """
        conv = self.body[0]
        b, _, h, w = image.shape
        n, out_c = aus.shape[1], conv.out_channels
        w_au = conv.weight[:, 3:].transpose(0, 1).reshape(n * out_c, 1, *conv.kernel_size)
        ones = image.new_ones(1, 1, h, w)
        per_au = F.conv2d(ones, w_au.to(image.dtype), padding=conv.padding)  # (1, 17*C, h, w)
        y = aus.to(per_au.dtype)
        au_part = (y @ per_au.reshape(n, out_c * h * w)).view(b, out_c, h, w)
        return F.conv2d(image, conv.weight[:, :3], padding=conv.padding) + au_part


def compose(image: torch.Tensor, color: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
    """The GANimation output ``(1 - A) * C + A * input``.

    A 2-channel C (luma mode) paints luminance ``(1 - A) * L + A * Y`` and scales the
    input's chroma by ``A + (1 - A) * s``.
    """
    if color.shape[1] == 3:
        return (1 - attention) * color + attention * image
    y, cb, cr = to_ycbcr(image)
    keep_chroma = attention + (1 - attention) * color[:, 1:2]
    out = from_ycbcr((1 - attention) * color[:, :1] + attention * y, cb * keep_chroma, cr * keep_chroma)
    return out.clamp(-1, 1)


class Critic(nn.Module):
    """WGAN-GP critic: shared 4x4/stride-2 trunk, realism map D_I and AU regressor D_y."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        c = cfg.critic_channels
        layers: list[nn.Module] = [nn.Conv2d(3, c, 4, 2, 1), nn.LeakyReLU(0.01)]
        for _ in range(cfg.critic_layers - 1):
            layers += [nn.Conv2d(c, c * 2, 4, 2, 1), nn.LeakyReLU(0.01)]
            c *= 2
        self.trunk = nn.Sequential(*layers)
        k = cfg.image_size // 2 ** cfg.critic_layers
        if k < 1:
            raise ValueError(f"critic_layers={cfg.critic_layers} too deep for {cfg.image_size} px")
        self.realism = nn.Conv2d(c, 1, 3, 1, 1, bias=False)
        self.aus = nn.Conv2d(c, cfg.n_aus, k, bias=False)

    def forward(self, image: torch.Tensor):
        """Returns (realism map (B,1,k,k), AU estimate (B,17))."""
        h = self.trunk(image)
        return self.realism(h), self.aus(h).flatten(1)


# --------------------------------------------------------------------------- weights I/O

WEIGHTS_FORMAT = "gan-anim-weights-v1"


def generator_state(generator: Generator, half: bool = False) -> dict:
    """The inference weights: generator tensors, config, AU list and normalisation."""
    # the landmark-motion buffers stay fp32: they are tiny and set geometry to the pixel
    state = {k: (v.half() if half and v.is_floating_point() and not k.startswith("motion.")
                 else v).detach().cpu().clone()
             for k, v in generator.state_dict().items()}
    blob = {"format": WEIGHTS_FORMAT, "config": generator.cfg.to_dict(),
            "au_names": list(AU_NAMES), "au_scale": AU_SCALE, "generator": state}
    for key in ("rise", "fall"):
        rows = getattr(generator.motion, f"{key}_rows")() if generator.motion is not None else {}
        if rows:
            blob[f"motion_{key}"] = {AU_NAMES[k]: row.float() for k, row in rows.items()}
    return blob


def load_generator(path, device: str | torch.device = "cpu") -> Generator:
    """Load a weights file written by ``gan-anim export`` (or a training checkpoint).

    Uses ``torch.load(weights_only=True)``: no code from the file is executed.
    """
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # truncated file, not a torch file, pickled code...
        raise ValueError(f"{path}: not a gan-anim weights file ({type(exc).__name__})") from None
    if not isinstance(blob, dict) or "generator" not in blob or "config" not in blob:
        raise ValueError(f"{path}: not a gan-anim weights file (no generator/config)")
    if list(blob.get("au_names", AU_NAMES)) != list(AU_NAMES):
        raise ValueError(f"{path}: weights were trained on a different AU list")
    try:
        gen = Generator(ModelConfig.from_dict(blob["config"]))
    except ValueError as exc:  # a config these networks cannot build
        raise ValueError(f"{path}: {exc}") from None
    state = {k: v.float() if v.is_floating_point() else v for k, v in blob["generator"].items()}
    gen.load_state_dict(state)
    for key in ("rise", "fall"):  # AU rises / falls with their own landmark motion
        rows = blob.get(f"motion_{key}") or {}
        if rows and gen.motion is not None:
            if not isinstance(rows, dict) or any(n not in AU_NAMES or tuple(torch.as_tensor(v).shape) != (68, 2)
                                                 for n, v in rows.items()):
                raise ValueError(f"{path}: not a gan-anim weights file (bad motion_{key})")
            getattr(gen.motion, f"set_{key}")({AU_NAMES.index(n): v for n, v in rows.items()})
    return gen.to(device).eval()
