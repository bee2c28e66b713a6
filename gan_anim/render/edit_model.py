"""The generator as an edit model: numpy face crops and AU targets in, paint ready to blend out.

    model = EditModel(InferenceConfig(device="cpu"))
    edits = model.generate(crops, targets, landmarks, own)   # (B,S,S,3) uint8, (B,17) 0..5
    FaceBlender(frame.shape, transform, model.size).blend(frame, edits[0])

``generate`` runs four stages, each a method with its shapes in its docstring:
``prepare`` (numpy -> tensors), ``warp`` (the landmark motion of the AU change, for motion
models), ``run`` (G on the rows that need it, in the chosen precision) and ``parse_output``
(the paint, gated to the painted AUs' regions, and the motion, back to numpy).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from .. import aus as au
from ..config import InferenceConfig
from ..errors import GanAnimError
from .device import check_composite, check_precision, resolve_composite, resolve_device, resolve_precision
from .weights import find_weights

if TYPE_CHECKING:
    import torch


@dataclass
class FaceEdits:
    """The generator's output for a batch of faces, ready to blend (crop resolution).

    ``paint``: RGB mode (B,S,S,3) uint8 colour C; luma mode (B,S,S,2) float32, the luma
    change (1 - A)(L - Y) in 0..255 units and the chroma scale A + (1 - A)s.
    ``attention`` (B,S,S) float32; ``wide_flow`` (B,E,E,2) float32 crop pixels, the landmark
    motion on the grid of ``motion.EXTENT`` around the crop (motion models), or None;
    ``relax`` (B,S,S) float32 0..1: how much of the crease texture to take away where an AU
    falls (``motion.relax_mask``), or None. ``seam`` (B,S,S) float32 0..1 and ``seam_colour``
    (B,3) RGB 0..255: where sealed lips meet (``lips.seam_mask``) and the colour of the line
    drawn there at full resolution, or None.
    """

    paint: np.ndarray
    attention: np.ndarray
    wide_flow: np.ndarray | None = None
    luma: bool = False
    relax: np.ndarray | None = None
    seam: np.ndarray | None = None
    seam_colour: np.ndarray | None = None

    def __getitem__(self, n: int) -> "FaceEdits":
        wide = None if self.wide_flow is None else self.wide_flow[n]
        relax = None if self.relax is None or not self.relax[n].any() else self.relax[n]
        sealed = self.seam is not None and self.seam[n].any()
        return FaceEdits(self.paint[n], self.attention[n], wide, self.luma, relax,
                         self.seam[n] if sealed else None, self.seam_colour[n] if sealed else None)


# An AU falling this much (0..1; 2 on the 0..5 scale) takes its creases away fully.
RELAX_FULL = 0.4
# A smile's upper teeth (``EditModel._smile_teeth``): their luma against the whites of the
# eyes and against the face's median (``_teeth_luma``), their chroma scale (near white), and
# the shadow below them against the darkest tenth of the warped mouth interior.
TEETH_OF_SCLERA = 0.85
TEETH_OF_SKIN = 1.35
TEETH_MAX = 225.0
TEETH_CHROMA = 0.4
SMILE_SHADOW = 0.7


class Motion(NamedTuple):
    """The landmark motion of a batch's AU change (``EditModel.warp``)."""

    face: "torch.Tensor"    # (B,3,S,S) in [-1,1]: the crops warped by the motion
    own: "torch.Tensor"     # (B,17) on 0..1: the faces' own AUs
    moved: "torch.Tensor"   # (B,68,2) crop-side units: the landmarks after the motion
    wide: "torch.Tensor"    # (B,2,E,E) grid units: the motion on the grid of motion.EXTENT
    landmarks: "torch.Tensor"  # (B,68,2) crop-side units: the landmarks before the motion
    seal: np.ndarray | None = None  # (B,) 0..1: how far the lips seal (``lips.seal_strength``)


class EditModel:
    """A loaded generator: its device, precision and painted AUs, and ``generate``.

    ``background=True``: torch and the weights (and dlib's landmark model, which the photo
    job needs first) load in a background thread, so that a caller decodes its photo and
    finds its faces meanwhile (~1 s of a 12 MP photo's start-up on 2 cores). The attributes
    wait for the loading; a missing weights file is reported at once, a bad one when the
    model is first needed. ``generator``: a module to use instead of loading weights.
    """

    def __init__(self, config: InferenceConfig | None = None, generator=None, background: bool = False):
        config = (config or InferenceConfig()).with_env()
        if config.batch_size < 1:
            raise GanAnimError(f"--batch-size must be at least 1, got {config.batch_size}")
        check_precision(config.precision)  # before a background load, so the error comes at once
        check_composite(config.composite)
        self.config = config
        path = find_weights(config.weights) if generator is None else None
        self._loading = None
        if background:
            from ..overlap import Background

            self._loading = Background(lambda: self._load(path, generator), name="gan-anim-load")
        else:
            self._load(path, generator)

    def _load(self, path, generator) -> None:
        if self._loading is not None:
            from ..faces.dlib_models import load_models

            load_models("landmarks")
        import torch

        from ..model import load_generator

        self._device = resolve_device(self.config.device)
        self._precision = resolve_precision(self.config.precision, self._device)
        if generator is None:
            try:
                generator = load_generator(path, self._device)
            except ValueError as exc:
                raise GanAnimError(str(exc)) from None
        self._generator = generator.to(self._device).eval()
        painted = self.config.painted_aus
        self._painted = torch.tensor([n in painted for n in au.AU_NAMES], device=self._device)

    def wait(self) -> "EditModel":
        """Wait for a background load (a no-op otherwise); its error is raised here."""
        if self._loading is not None:
            self._loading.result()
        return self

    @property
    def generator(self):
        return self.wait()._generator

    @property
    def device(self) -> "torch.device":
        return self.wait()._device

    @property
    def precision(self) -> str:
        """"fp32" or "bf16": what the generator runs in (``resolve_precision``)."""
        return self.wait()._precision

    @property
    def composite(self) -> str:
        """"numpy" or "torch": where the full-resolution composite runs (``resolve_composite``)."""
        return resolve_composite(self.config.composite, self.device)

    @property
    def painted(self) -> "torch.Tensor":
        """(17,) bool: the AUs whose change G paints (``InferenceConfig.painted_aus``)."""
        return self.wait()._painted

    @property
    def batch_size(self) -> int:
        return self.config.batch_size

    @property
    def size(self) -> int:
        """The side of the generator's face crops, in pixels."""
        return self.generator.cfg.image_size

    # ------------------------------------------------------------------ stages
    def generate(self, crops: np.ndarray, targets: np.ndarray, landmarks: np.ndarray | None = None,
                 own: np.ndarray | None = None) -> FaceEdits:
        """Edit uint8 crops (B,S,S,3) towards AU targets (B,17) on 0..5.

        ``landmarks`` (B,68,2, crop-side units) and ``own`` (B,17, the faces' own AUs,
        0..5) drive the landmark motion of motion models; without them the face is not
        warped. Returns a ``FaceEdits`` batch.
        """
        import torch

        with torch.inference_mode():
            x, y = self.prepare(crops, targets)
            if self.generator.motion is None or landmarks is None:
                color, attention = self.run(x, y)
                return self.parse_output(x, color, attention)
            motion = self.warp(x, y, landmarks, own)
            relax = self.relax(y, motion)
            target = y
            y = torch.where(self.painted, y, motion.own)  # G sees only the painted AUs change
            change = self.paint_change(y, motion.own) if self.generator.luma else None
            color, attention = self.run(motion.face, y, None if change is None else (change > 0).any(1))
            edits = self.parse_output(motion.face, color, attention, motion, change, target)
            edits.relax = relax
            edits.seam, edits.seam_colour = self.seam(motion)
            return edits

    def prepare(self, crops: np.ndarray, aus: np.ndarray) -> tuple["torch.Tensor", "torch.Tensor"]:
        """uint8 crops (B,S,S,3) -> (B,3,S,S) in [-1,1]; AUs (B,17) on 0..5 -> (B,17) on 0..1,
        both on the model's device."""
        import torch

        x = torch.from_numpy(crops).to(self.device).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
        return x, self._aus(aus)

    def _aus(self, aus: np.ndarray) -> "torch.Tensor":
        import torch

        return torch.from_numpy(np.asarray(aus, np.float32) / au.AU_SCALE).to(self.device).clamp(0, 1)

    def warp(self, x: "torch.Tensor", y: "torch.Tensor", landmarks: np.ndarray, own: np.ndarray) -> Motion:
        """The landmark motion from ``own`` (B,17, 0..5) to ``y`` (B,17, 0..1) of faces with
        ``landmarks`` (B,68,2, crop-side units), and the crops ``x`` (B,3,S,S) warped by it."""
        import torch

        from ..lips import seal_flow
        from ..motion import AU45, EXTENT, lid_flow, lid_motion, still_mask
        from ..motion import warp as warp_image

        src = torch.from_numpy(np.asarray(landmarks, np.float32)).to(self.device)
        y0 = self._aus(own)
        blink = (y - y0)[:, AU45].cpu().numpy()
        y_spline = y.clone()
        y_spline[:, AU45] = y0[:, AU45]  # the eyes close by lid_flow, not by the spline
        spline, moved, seal = self._spline(src, y0, y_spline)
        lm0 = src.cpu().numpy()
        lm1 = moved.cpu().numpy() + lid_motion(lm0, blink)
        moved = torch.from_numpy(lm1).to(self.device)

        def flow(n, extent=(0.0, 1.0)):
            # the spline on a grid a quarter of the crop's side, upsampled: 10x faster,
            # landmarks land within 0.6 px (99th percentile) of the full evaluation; the
            # motion fades out beyond the face's contour, so hair and background stay put
            f = spline.flow(n, extent, resolution=max(32, n // 4))
            f = f * torch.from_numpy(still_mask(lm0, lm1, n, extent)).to(self.device)[:, None]
            if seal.any():
                f = torch.from_numpy(seal_flow(f.cpu().numpy(), lm0, lm1, seal, extent)).to(self.device)
            if (blink > 0).any():
                f = f + torch.from_numpy(lid_flow(lm0, blink, n, extent)).to(self.device)
            return f
        face = warp_image(x, flow(self.size))
        wide = flow(round(self.size * (EXTENT[1] - EXTENT[0])), EXTENT)
        return Motion(face, y0, moved, wide, src, seal)

    def _spline(self, src: "torch.Tensor", y0: "torch.Tensor", y: "torch.Tensor"):
        """(the warp's spline, moved landmarks (B,68,2), seal (B,)) of the AU change from ``y0``
        to ``y`` (B,17, 0..1) of faces with landmarks ``src``: the fitted motion, and where the
        goal closes the lips (``lips.seal_strength``), the lips sealed (``lips.seal_motion``)."""
        import torch

        from ..lips import seal_motion, seal_sources, seal_strength
        from ..motion import ThinPlate, head_anchors

        motion = self.generator.motion
        seal = seal_strength(y0.cpu().numpy(), y.cpu().numpy(), src.cpu().numpy())
        if not bool(motion.basis.any()):  # no fitted motion: no geometry, the lips included
            seal = np.zeros_like(seal)
        if not seal.any():
            return (*motion.spline(src, y0, y), seal)
        moved = src.float() + motion.displacement(y - y0)
        moved = moved + torch.from_numpy(seal_motion(moved.cpu().numpy(), seal)).to(moved)
        spline_src = torch.from_numpy(seal_sources(src.cpu().numpy(), seal)).to(moved)
        return ThinPlate(spline_src, moved, fixed=head_anchors(src.float())), moved, seal

    def relax(self, y: "torch.Tensor", motion: Motion) -> np.ndarray | None:
        """(B,S,S) how much crease texture to take away (``motion.relax_mask``): each AU of
        ``motion.RELAX_REGIONS`` that falls from the face's own level towards ``y`` (B,17,
        0..1) relaxes its region in proportion, fully at a fall of ``RELAX_FULL``; None
        when none falls."""
        from ..motion import RELAX_REGIONS, relax_mask

        if not bool(self.generator.motion.basis.any()):  # no fitted motion: no geometry, no texture
            return None
        idx = [au.AU_INDEX[n] for n in RELAX_REGIONS]
        falls = ((motion.own - y)[:, idx] / RELAX_FULL).clamp(0, 1).cpu().numpy()
        if not (falls > 0).any():
            return None
        return relax_mask(motion.moved.cpu().numpy(), falls, self.size)

    def paint_change(self, y: "torch.Tensor", own: "torch.Tensor") -> "torch.Tensor":
        """(B,P) in 0..1, for the P painted AUs: how far each one's paint has faded in. It
        fades in over the first ``paint_ramp`` (0..1 scale) of the AU's change, so a face
        whose painted AUs do not change is warped only and G is not run for it."""
        return ((y - own).abs()[:, self.painted] / self.config.paint_ramp).clamp(max=1.0)

    def run(self, x: "torch.Tensor", y: "torch.Tensor", need: "torch.Tensor | None" = None):
        """G on the rows of x (B,3,S,S) and y (B,17) where ``need`` (B,) bool (all when None),
        in ``self.precision``: colour (B,3 or 2,S,S) and attention (B,1,S,S), float32. Rows
        not run get colour 0 and attention 1 (keep the input)."""
        import torch

        def forward(xs, ys):
            with torch.autocast(self.device.type, dtype=torch.bfloat16,
                                enabled=self.precision == "bf16"):
                c, a = self.generator(xs, ys)
            return c.float(), a.float()

        if need is None or bool(need.all()):
            return forward(x, y)
        b, _, h, w = x.shape
        color = x.new_zeros(b, 2 if self.generator.luma else 3, h, w)
        attention = x.new_ones(b, 1, h, w)
        if bool(need.any()):
            color[need], attention[need] = forward(x[need], y[need])
        return color, attention

    def parse_output(self, x: "torch.Tensor", color: "torch.Tensor", attention: "torch.Tensor",
                     motion: Motion | None = None, change: "torch.Tensor | None" = None,
                     target: "torch.Tensor | None" = None) -> FaceEdits:
        """G's output on the (warped) crops x (B,3,S,S) as a numpy ``FaceEdits``: RGB paint as
        uint8, or the luma change and chroma scale, gated by ``change`` (B,P) to the painted
        AUs' regions, with the mouth's cavity where ``target`` (B,17, 0..1) opens it
        (``_cavity``); the motion in crop pixels."""
        import torch

        if self.generator.luma:
            paint, keep = self._luma_paint(x, color, attention)
            if change is not None:
                paint, keep = self._gate(paint, keep, change, motion.moved)
            if motion is not None and change is not None and target is not None:
                paint, keep = self._cavity(x, paint, keep, motion, change, target)
            paint = torch.cat([paint, keep], 1).permute(0, 2, 3, 1).float()
        else:
            paint = color.add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)
            paint = paint.permute(0, 2, 3, 1)
        wide = None
        if motion is not None:
            to_px = self.size / 2  # grid units -> crop pixels
            wide = (motion.wide.float() * to_px).permute(0, 2, 3, 1).contiguous().cpu().numpy()
        return FaceEdits(paint=paint.contiguous().cpu().numpy(),
                         attention=attention[:, 0].float().cpu().numpy(),
                         wide_flow=wide, luma=self.generator.luma)

    @staticmethod
    def _luma_paint(x, color, attention):
        """(luma change (1 - A)(L - Y) in 0..255 units, chroma scale A + (1 - A)s), each (B,1,S,S)."""
        from ..colour import to_ycbcr

        luma, _, _ = to_ycbcr(x)
        return (1 - attention) * (color[:, :1] - luma) * 127.5, attention + (1 - attention) * color[:, 1:2]

    def _cavity(self, x, paint, keep, motion, change, target):
        """The mouth's new interior where it opens wider than it was (``change`` (B,P) as in
        ``_gate``, ``target`` (B,17) 0..1).

        Where the jaw drops (AU26 rising), the interior below the upper teeth becomes a dark
        cavity (``motion.cavity_mask``): the luma goes towards CAVITY_LUMA x the darkest
        tenth of the face's own mouth interior and the chroma halves, so a grin's lower
        teeth and the stretched teeth do not survive a dropped jaw. Where the lips part
        without it (AU25 rising alone, as in ``happy``) they part over the upper teeth
        (``_smile_teeth``): a cavity there reads as a black slit, a grimace."""
        import torch

        from ..colour import to_ycbcr
        from ..motion import CAVITY_LUMA, cavity_mask

        opens = self._opening(change, target, motion.own)
        if opens is None:
            return paint, keep
        jaw, lips = opens
        src, dst = motion.landmarks.cpu().numpy(), motion.moved.cpu().numpy()
        luma = (to_ycbcr(x)[0] + 1) * 127.5                          # (B,1,S,S) 0..255
        if bool((lips > 0).any()):
            paint, keep = self._smile_teeth(luma, paint, keep, src, dst, lips)
        if not bool((jaw > 0).any()):
            return paint, keep
        mask = cavity_mask(src, dst, self.size)
        if not mask.any():
            return paint, keep
        w = torch.from_numpy(mask).to(x.device)[:, None] * jaw.view(-1, 1, 1, 1)
        dark = self._darkest_tenth(luma, w)
        now = luma + paint                                           # the luma after G's paint
        paint = paint + w * (CAVITY_LUMA * dark - now).clamp(max=0)
        return paint, keep * (1 - 0.5 * w)

    def seam(self, motion: Motion):
        """(mask (B,S,S), colour (B,3)) of the line where sealed lips meet (``motion.seal``,
        ``lips.seam_mask``), or (None, None): the blend draws it at full resolution in
        SEAM_LUMA x the lips' median colour (the outer lips' hull of the moved landmarks on
        the warped crop), so what the warp squeezes into the seam reads as the line between
        the lips, not a pale or grey streak."""
        import cv2

        from ..lips import SEAM_LUMA, seam_mask

        if motion.seal is None or not motion.seal.any():
            return None, None
        dst = motion.moved.cpu().numpy()
        rgb = ((motion.face.float() + 1) * 127.5).permute(0, 2, 3, 1).cpu().numpy()
        colour = np.zeros((len(dst), 3), np.float32)
        for b in range(len(dst)):
            m = np.zeros((self.size, self.size), np.uint8)
            cv2.fillConvexPoly(m, cv2.convexHull(np.round(dst[b, 48:60] * self.size).astype(np.int32)), 1)
            if m.any():
                colour[b] = SEAM_LUMA * np.median(rgb[b][m > 0], 0)
        return seam_mask(motion.landmarks.cpu().numpy(), dst, motion.seal, self.size), colour

    def _opening(self, change, target, own):
        """(jaw, lips), each (B,): how far the jaw drops (AU26 rising, its paint's fade-in)
        and how far the lips part without it (AU25 rising, less where the jaw drops too);
        None when neither AU is painted or rises."""
        import torch

        names = [n for n, p in zip(au.AU_NAMES, self.painted.tolist()) if p]
        rise = []
        for name in ("AU26", "AU25"):
            if name not in names:
                rise.append(change.new_zeros(len(change)))
                continue
            k = names.index(name)
            rise.append(change[:, k] * ((target - own)[:, au.AU_INDEX[name]] > 0))
        jaw, lips = rise
        lips = lips * (1 - jaw)
        if not bool((torch.stack([jaw, lips]) > 0).any()):
            return None
        return jaw, lips

    @staticmethod
    def _darkest_tenth(luma, w):
        """(B,1,1,1): the darkest tenth of ``luma`` (B,1,S,S) where ``w`` > 0.05 (40 elsewhere)."""
        import torch

        inner = w > 0.05
        return torch.stack([luma[b][inner[b]].quantile(0.1) if inner[b].any() else luma.new_tensor(40.0)
                            for b in range(len(luma))]).view(-1, 1, 1, 1)

    def _smile_teeth(self, luma, paint, keep, src, dst, lips):
        """Lips parted without the jaw by ``lips`` (B,): the top of the new opening shows the
        upper teeth (``motion.smile_teeth_mask``), its luma raised towards ``_teeth_luma``
        and its chroma towards TEETH_CHROMA; the rest is shadow, its luma brought to
        SMILE_SHADOW x the darkest tenth of the warped interior (G's paint there, darker or
        lighter)."""
        import torch

        from ..motion import smile_teeth_mask

        teeth, shadow = (torch.from_numpy(m).to(luma.device)[:, None] * lips.view(-1, 1, 1, 1)
                         for m in smile_teeth_mask(src, dst, self.size))
        now = luma + paint
        white = self._teeth_luma(luma, dst)
        dark = SMILE_SHADOW * self._darkest_tenth(luma, teeth + shadow)
        paint = paint + teeth * (white - now).clamp(min=0) + shadow * (dark - now)
        keep = keep * (1 - teeth * (1 - TEETH_CHROMA)) * (1 - 0.5 * shadow)
        return paint, keep

    def _teeth_luma(self, luma, dst):
        """(B,1,1,1): the luma of a smile's teeth on crops ``luma`` (B,1,S,S) with landmarks
        ``dst`` (B,68,2 crop units): TEETH_OF_SCLERA x the whites of the eyes (the brightest
        2 % inside the eye contours) or TEETH_OF_SKIN x the crop's median, whichever is
        brighter (squinting or small eyes show little white), at most TEETH_MAX."""
        import cv2
        import torch

        out = []
        for b in range(len(luma)):
            m = np.zeros((self.size, self.size), np.uint8)
            for eye in (slice(36, 42), slice(42, 48)):
                cv2.fillPoly(m, [np.round(dst[b, eye] * self.size * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
            px = luma[b, 0][torch.from_numpy(m > 0).to(luma.device)]
            skin = TEETH_OF_SKIN * luma[b].flatten().median()
            out.append(torch.maximum(TEETH_OF_SCLERA * px.quantile(0.98), skin) if len(px) >= 8 else skin)
        return torch.stack(out).clamp(max=TEETH_MAX).view(-1, 1, 1, 1)

    def _gate(self, paint, keep, change, moved):
        """Paint only where a painted AU changed, inside its own region (the moved landmarks'
        hull), so an edit to the face's own AUs is exact and a mouth edit cannot touch the brows."""
        import torch

        from ..motion import region_masks

        names = [n for n, p in zip(au.AU_NAMES, self.painted.tolist()) if p]
        if not names:  # no AU is painted: the warp alone
            return torch.zeros_like(paint), torch.ones_like(keep)
        masks = torch.from_numpy(region_masks(moved.cpu().numpy(), names, self.size))
        fade = (masks.to(self.device) * change[:, :, None, None]).amax(1, keepdim=True)
        return paint * fade, 1 - fade * (1 - keep)
