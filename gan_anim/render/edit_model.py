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
    change (1 - A)(L - Y) in 0..255 units and the chroma scale A + (1 - A)s, or (B,S,S,4)
    where a smile's teeth or a raised brow's band are painted: also the chroma added (Cb,
    Cr, 0..255 units).
    ``attention`` (B,S,S) float32; ``wide_flow`` (B,E,E,2) float32 crop pixels, the landmark
    motion on the grid of ``motion.EXTENT`` around the crop (motion models), or None;
    ``relax`` (B,S,S) float32 0..1: how much of the crease texture to take away where an AU
    falls (``motion.relax_mask``), or None. ``lids``: the lid shift (landmarks (B,68,2) crop
    units, upper (B,2), lower (B,2), ``motion.lid_shift``), which the blend evaluates per
    full-resolution pixel (``wide_flow`` leaves it out: interpolated, the closed lids' seam
    showed the eyeball), or None. ``seam`` (B,S,S) float32 0..1 and ``seam_colour``
    (B,3) RGB 0..255: where sealed lips meet (``lips.seam_mask``) and the colour of the line
    drawn there at full resolution, or None. ``lash`` (B,) float32 0..255: the luma of the
    closing eyes' lash line (``motion.lash_weight``), drawn by the blend per full-resolution
    pixel (``EditModel.lash_level``), or None.
    """

    paint: np.ndarray
    attention: np.ndarray
    wide_flow: np.ndarray | None = None
    luma: bool = False
    relax: np.ndarray | None = None
    lids: tuple | None = None
    seam: np.ndarray | None = None
    seam_colour: np.ndarray | None = None
    lash: np.ndarray | None = None

    def __getitem__(self, n: int) -> "FaceEdits":
        wide = None if self.wide_flow is None else self.wide_flow[n]
        relax = None if self.relax is None or not self.relax[n].any() else self.relax[n]
        lids = None
        if self.lids is not None and ((self.lids[1][n] != 0).any() or (self.lids[2][n] != 0).any()):
            lids = tuple(a[n] for a in self.lids)
        sealed = self.seam is not None and self.seam[n].any()
        lash = None if lids is None or self.lash is None else self.lash[n]
        return FaceEdits(self.paint[n], self.attention[n], wide, self.luma, relax, lids,
                         self.seam[n] if sealed else None, self.seam_colour[n] if sealed else None, lash)


# The landmark motion of these AUs' falls, times this: AU04's fall moves the brows by its
# cfee-fitted row (``motion_fall``) from the learned estimator's reading, and `neutral` from
# cfee *training* people's angry photos raised and parted the re-detected inner brows about
# half as far as their own neutral photos (+0.053 / +0.031 eye distance against +0.097 /
# +0.068, median of 40); 1.8 x meets them (docs/benchmarks.md). Calibrated on the shipped rows.
FALL_GAIN = {"AU04": 1.8}
# An AU12 rise that leaves the mouth corners short of the model's face asked for the goal
# moves its row further, by at most SMILE_REACH x the rise (``EditModel._smile_reach``).
SMILE_REACH = 1.0
# ... less on a smiling face, fully at an own AU12 of FALL_SMILE (0..1; 2.5 on 0..5): the
# learned estimator reads some AU04 on grins (the raised cheeks narrow the eyes; UTKFace grins
# up to 2.1 on 0..5, cfee's held-out smiling photos 1.15 at the 90th percentile), which is no
# frown, and its 1.8 x fall lifted those brows past the ones of the frowns it was calibrated on.
FALL_SMILE = 0.5
# The painted AUs whose paint follows only a rise (``EditModel.paint_change``).
RISE_ONLY = ("AU45",)
# An AU falling this much (0..1; 2 on the 0..5 scale) takes its creases away fully.
RELAX_FULL = 0.4
# AUs whose fall a rise of another AU keeps (fully from a rise of RELAX_FULL), as ``relax``
# keeps a region's creases: the kept fall moves the landmarks by the landmark-label
# ``basis`` instead of its cfee-fitted row (``motion_fall``). AU10's row lowers the upper lip
# 7 x as far, but a smile asked for (AU12) lifts the lip too, and lowered that far, `happy`
# from a disgusted face showed less of the smile's teeth.
FALL_KEPT = {"AU10": "AU12"}
# A smile's teeth (``EditModel._smile_teeth``): their luma against the whites of the eyes
# and against the face's median (``_teeth_colour``), at most TEETH_MAX and at least TEETH_MIN
# (dark skin: teeth are as bright as the light makes them, not as the skin) unless the crop's
# brightest hundredth x TEETH_OF_BRIGHT is darker (a dark photo); their chroma TEETH_IVORY
# (Cb, Cr; 0..255 units: real teeth on held-out cfee smiles measure about -4, +8..12, where
# the skin's median is SKIN_REF) moved by SKIN_SHARE of the face's skin chroma against
# SKIN_REF (the photo's colour cast: neutral teeth in a warm photo read blue-grey; the whites
# of the eyes in a 128 px crop mix in lid and skin, too unreliable a reference), or the
# mouth's own teeth's; kept ivory: Cb from -TEETH_CHROMA to 0 (never blue), Cr from
# TEETH_RED to TEETH_CHROMA (never green); the shadow below them against the darkest
# tenth of the warped mouth interior, no darker than SHADOW_FLOOR x the median of the crop's
# middle half, the face (a shadow, not a black slit).
TEETH_OF_SCLERA = 0.85
TEETH_OF_SKIN = 1.35
TEETH_MAX = 225.0
TEETH_MIN, TEETH_OF_BRIGHT = 165.0, 0.9
TEETH_IVORY = (-4.0, 8.0)
SKIN_REF, SKIN_SHARE = (-8.0, 23.0), 0.4
TEETH_CHROMA, TEETH_RED = 14.0, 5.0
SMILE_SHADOW = 0.7
SHADOW_FLOOR = 0.45
# A jaw that closes (AU26 falling) into a new smile (AU12 rising, fully by SMILE_RISE; the
# target's AU25 and AU12, fully from these up; 0..1) turns what is left of the opening into
# the smile's teeth.
SMILE_AU25, SMILE_AU12, SMILE_RISE = 0.1, 0.4, 0.4
# Raised brows' stretched band (``EditModel._brow_band``) takes the luma of the forehead
# above the brow times this (lid skin, under the brow ridge, is a little darker).
LID_OF_FOREHEAD = 1.0
# ... the forehead's luma no brighter than LID_OF_FACE x the median of the crop's middle half
# (a bright fringe); the chroma there becomes the face's median, in proportion to how far the
# luma is lifted, fully at LIFT_FULL grey levels (a band as bright as skin keeps its colour).
LID_OF_FACE = 1.1
LIFT_FULL = 30.0


class Motion(NamedTuple):
    """The landmark motion of a batch's AU change (``EditModel.warp``)."""

    face: "torch.Tensor"    # (B,3,S,S) in [-1,1]: the crops warped by the motion
    own: "torch.Tensor"     # (B,17) on 0..1: the faces' own AUs
    moved: "torch.Tensor"   # (B,68,2) crop-side units: the landmarks after the motion
    wide: "torch.Tensor"    # (B,2,E,E) grid units: the motion on the grid of motion.EXTENT
    landmarks: "torch.Tensor"  # (B,68,2) crop-side units: the landmarks before the motion
    lids: tuple | None = None  # the lid shift, left out of ``wide`` (``FaceEdits.lids``)
    crops: "torch.Tensor | None" = None  # (B,3,S,S) the crops before the motion
    seal: np.ndarray | None = None  # (B,) 0..1: how far the lips seal (``lips.seal_strength``)


def _overlap(a: list, b: list) -> bool:
    """Whether two ``motion.RELAX_REGIONS`` entries share a polygon."""
    return any(p != "mirror" and p in b for p in a)


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
        from ..motion import AU05, AU06, AU45, EXTENT, lid_flow, lid_motion, lid_open, lid_shift
        from ..motion import smile_brows, still_mask
        from ..motion import warp as warp_image

        src = torch.from_numpy(np.asarray(landmarks, np.float32)).to(self.device)
        y0 = self._aus(own)
        lm0 = src.cpu().numpy()
        delta = (y - y0).cpu().numpy()
        if not bool(self.generator.motion.basis.any()):  # no fitted motion: only a blink moves the lids
            delta[:, [AU05, AU06]] = 0
        upper, lower = lid_shift(lm0, delta)
        y_spline = y.clone()
        y_spline[:, AU45] = y0[:, AU45]  # the eyes close by lid_flow, not by the spline
        for name, gain in FALL_GAIN.items():
            k = au.AU_INDEX[name]
            fall = (y - y0)[:, k].clamp(max=0)
            smile = (y0[:, au.AU_INDEX["AU12"]] / FALL_SMILE).clamp(0, 1)
            y_spline[:, k] = y_spline[:, k] + (gain - 1) * fall * (1 - smile)
        kept = self._kept_falls(y0, y, y_spline)
        extra = torch.from_numpy(smile_brows(lm0, delta)).to(self.device)
        if kept is not None:
            extra = extra + kept
        if bool(self.generator.motion.basis.any()):  # a smile that reaches its corners
            extra = extra + self._smile_reach(src, y0, y, y_spline)
            extra = extra + self._jaw_close(src, y0, y, y_spline, extra)
        spline, moved, seal = self._spline(src, y0, y_spline, extra)
        if bool(self.generator.motion.basis.any()):  # widening eyes part their lids (after the spline)
            wide_up, wide_low = lid_open(lm0, moved.cpu().numpy(), delta, y.cpu().numpy())
            upper, lower = upper + wide_up, lower + wide_low
        lm1 = moved.cpu().numpy() + lid_motion(lm0, upper, lower)
        moved = torch.from_numpy(lm1).to(self.device)
        lids = bool((upper != 0).any() or (lower != 0).any())

        def flow(n, extent=(0.0, 1.0), with_lids=True):
            # the spline on a grid a quarter of the crop's side, upsampled: 10x faster,
            # landmarks land within 0.6 px (99th percentile) of the full evaluation; the
            # motion fades out beyond the face's contour, so hair and background stay put
            f = spline.flow(n, extent, resolution=max(32, n // 4))
            f = f * torch.from_numpy(still_mask(lm0, lm1, n, extent)).to(self.device)[:, None]
            if seal.any():
                f = torch.from_numpy(seal_flow(f.cpu().numpy(), lm0, lm1, seal, extent)).to(self.device)
            if lids and with_lids:
                f = f + torch.from_numpy(lid_flow(lm0, upper, lower, n, extent)).to(self.device)
            return f
        face = warp_image(x, flow(self.size))
        wide = flow(round(self.size * (EXTENT[1] - EXTENT[0])), EXTENT, with_lids=False)
        return Motion(face, y0, moved, wide, src, (lm0, upper, lower) if lids else None, x, seal)

    def _smile_reach(self, src: "torch.Tensor", y0: "torch.Tensor", y: "torch.Tensor",
                     y_spline: "torch.Tensor") -> "torch.Tensor":
        """(B,68,2) crop units: the further motion along the smile's row (AU12's rise row) of
        faces with landmarks ``src`` whose AU12 rises from ``y0`` to ``y`` (``y_spline``: the
        change the spline makes so far), so that their mouth corners reach those of the
        model's face asked for ``y`` (``motion.smile_shortfall``), at most SMILE_REACH x the
        rise. A start narrower or lower at the corners than its reading says (a dropped jaw,
        pressed or down-turned lips, read at 0 where the geometry clips) otherwise smiled short
        of a real smile."""
        import torch

        from ..motion import smile_shortfall

        k = au.AU_INDEX["AU12"]
        rise = (y - y0)[:, k].clamp(min=0)
        motion = self.generator.motion
        if not bool((rise > 0).any()):
            return torch.zeros_like(src)
        moved = src.float() + motion.displacement(y_spline - y0)
        goal = motion.mean[None] + motion.displacement(y)
        row = (motion.basis if motion.rise is None else motion.rise)[k]
        short = torch.from_numpy(smile_shortfall(moved.cpu().numpy(), goal.cpu().numpy(), row.cpu().numpy()))
        reach = torch.minimum(short.to(rise).clamp(min=0), SMILE_REACH * rise)
        return reach[:, None, None] * row[None].to(src)

    def _jaw_close(self, src: "torch.Tensor", y0: "torch.Tensor", y: "torch.Tensor",
                   y_spline: "torch.Tensor", extra: "torch.Tensor") -> "torch.Tensor":
        """(B,68,2) crop units: the lips of faces with landmarks ``src`` whose jaw (AU26) falls
        from ``y0`` to ``y`` brought together (``lips.seal_motion``) by the share of their
        opening, after the fitted motion from ``y_spline`` and ``extra``, that lies beyond the
        model's face asked for ``y`` (``lips.jaw_share``)."""
        import torch

        from ..lips import jaw_share, seal_motion

        fall = (y0 - y)[:, au.AU_INDEX["AU26"]].clamp(min=0)
        if not bool((fall > 0).any()):
            return torch.zeros_like(src)
        motion = self.generator.motion
        moved = (src.float() + motion.displacement(y_spline - y0) + extra).cpu().numpy()
        goal = (motion.mean[None] + motion.displacement(y)).cpu().numpy()
        share = jaw_share(moved, goal, fall.cpu().numpy())
        return torch.from_numpy(seal_motion(moved, share)).to(src)

    def _kept_falls(self, y0: "torch.Tensor", y: "torch.Tensor", y_spline: "torch.Tensor"):
        """Where a rise keeps a fall of FALL_KEPT's AUs (fully from a rise of RELAX_FULL), take
        that much of the fall out of ``y_spline`` (B,17, 0..1, in place) and return the
        landmark motion (B,68,2) the same fall has by ``basis`` (the landmark-label row), which
        the kept fall moves instead of its cfee row, or None."""
        basis, extra = self.generator.motion.basis, None
        for name, rival in FALL_KEPT.items():
            k, r = au.AU_INDEX[name], au.AU_INDEX[rival]
            kept = ((y - y0)[:, r] / RELAX_FULL).clamp(0, 1) * (y_spline - y0)[:, k].clamp(max=0)
            if not bool(kept.any()):
                continue
            y_spline[:, k] = y_spline[:, k] - kept
            step = kept[:, None, None] * basis[k].to(kept)
            extra = step if extra is None else extra + step
        return extra

    def _spline(self, src: "torch.Tensor", y0: "torch.Tensor", y: "torch.Tensor", extra: "torch.Tensor"):
        """(the warp's spline, moved landmarks (B,68,2), seal (B,)) of the AU change from ``y0``
        to ``y`` (B,17, 0..1) of faces with landmarks ``src``: the fitted motion plus ``extra``
        (B,68,2, crop units: the brows a smile lowers, ``motion.smile_brows``, the smile's reach,
        ``_smile_reach``, the falls a rise keeps, ``_kept_falls``, and a falling jaw's lips,
        ``_jaw_close``), and where the goal
        closes the lips (``lips.seal_strength``), the lips sealed (``lips.seal_motion``)."""
        import torch

        from ..lips import seal_motion, seal_sources, seal_strength
        from ..motion import ThinPlate, head_anchors

        motion = self.generator.motion
        seal = seal_strength(y0.cpu().numpy(), y.cpu().numpy(), src.cpu().numpy())
        if not bool(motion.basis.any()):  # no fitted motion: no geometry, the lips included
            seal = np.zeros_like(seal)
        moved = src.float() + motion.displacement(y - y0) + extra
        spline_src = src.float()
        if seal.any():
            moved = moved + torch.from_numpy(seal_motion(moved.cpu().numpy(), seal)).to(moved)
            spline_src = torch.from_numpy(seal_sources(src.cpu().numpy(), seal)).to(moved)
        return ThinPlate(spline_src, moved, fixed=head_anchors(src.float())), moved, seal

    def relax(self, y: "torch.Tensor", motion: Motion) -> np.ndarray | None:
        """(B,S,S) how much crease texture to take away (``motion.relax_mask``): each AU of
        ``motion.RELAX_REGIONS`` that falls from the face's own level towards ``y`` (B,17,
        0..1) relaxes its region in proportion, fully at a fall of ``RELAX_FULL``, less the
        largest rise among the AUs whose regions share a polygon with it (a smile asked for
        keeps its folds when the raised upper lip of disgust falls); None when none falls."""
        import torch

        from ..motion import RELAX_REGIONS, relax_mask

        if not bool(self.generator.motion.basis.any()):  # no fitted motion: no geometry, no texture
            return None
        names = list(RELAX_REGIONS)
        change = (y - motion.own)[:, [au.AU_INDEX[n] for n in names]]
        rises = change.clamp(min=0)
        shared = torch.tensor([[_overlap(RELAX_REGIONS[a], RELAX_REGIONS[b]) for b in names] for a in names],
                              device=change.device)
        rival = (rises[:, None, :] * shared).amax(-1)      # (B, R): the largest rise sharing each region
        falls = ((-change - rival) / RELAX_FULL).clamp(0, 1).cpu().numpy()
        if not (falls > 0).any():
            return None
        return relax_mask(motion.moved.cpu().numpy(), falls, self.size)

    def paint_change(self, y: "torch.Tensor", own: "torch.Tensor") -> "torch.Tensor":
        """(B,P) in 0..1, for the P painted AUs: how far each one's paint has faded in. It
        fades in over the first ``paint_ramp`` (0..1 scale) of the AU's change, so a face
        whose painted AUs do not change is warped only and G is not run for it. An AU of
        RISE_ONLY paints only where it rises: G cannot open a squint (a fall of AU45), and its
        paint darkened the lids and the brows' edges."""
        import torch

        change = (y - own)[:, self.painted]
        names = [n for n, p in zip(au.AU_NAMES, self.painted.tolist()) if p]
        only = change.new_tensor([n in RISE_ONLY for n in names], dtype=bool)
        change = torch.where(only, change.clamp(min=0), change.abs())
        return (change / self.config.paint_ramp).clamp(max=1.0)

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
        (``_cavity``) and the band under raised brows as lid skin (``_brow_band``); the
        motion in crop pixels."""
        import torch

        if self.generator.luma:
            paint, keep = self._luma_paint(x, color, attention)
            if change is not None:
                paint, keep = self._gate(paint, keep, change, motion.moved, self._smiling(target, motion))
            tint = None
            if motion is not None and change is not None and target is not None:
                paint, keep, tint = self._cavity(x, paint, keep, motion, change, target)
            if motion is not None:
                paint, keep, tint = self._brow_band(x, paint, keep, tint, motion)
            paint = torch.cat([paint, keep] + ([] if tint is None else [tint]), 1).permute(0, 2, 3, 1).float()
        else:
            paint = color.add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)
            paint = paint.permute(0, 2, 3, 1)
        wide = None
        if motion is not None:
            to_px = self.size / 2  # grid units -> crop pixels
            wide = (motion.wide.float() * to_px).permute(0, 2, 3, 1).contiguous().cpu().numpy()
        return FaceEdits(paint=paint.contiguous().cpu().numpy(),
                         attention=attention[:, 0].float().cpu().numpy(),
                         wide_flow=wide, luma=self.generator.luma,
                         lids=None if motion is None else motion.lids,
                         lash=None if motion is None or motion.lids is None else self.lash_level(motion))

    @staticmethod
    def _luma_paint(x, color, attention):
        """(luma change (1 - A)(L - Y) in 0..255 units, chroma scale A + (1 - A)s), each (B,1,S,S)."""
        from ..colour import to_ycbcr

        luma, _, _ = to_ycbcr(x)
        return (1 - attention) * (color[:, :1] - luma) * 127.5, attention + (1 - attention) * color[:, 1:2]

    def _cavity(self, x, paint, keep, motion, change, target):
        """The mouth's new interior where it opens wider than it was (``change`` (B,P) as in
        ``_gate``, ``target`` (B,17) 0..1), and the chroma added to it (B,2,S,S) or None.

        Where the jaw drops (AU26 rising), the interior below the upper teeth becomes a dark
        cavity (``motion.cavity_mask``): the luma goes towards CAVITY_LUMA x the darkest
        tenth of the face's own mouth interior and the chroma halves, so a grin's lower
        teeth and the stretched teeth do not survive a dropped jaw. Where the lips part
        without it (AU25 rising alone, as in ``happy``), or the jaw closes into a smile,
        the opening shows the teeth (``_smile_teeth``): a cavity there reads as a black
        slit, a grimace, or as surprise."""
        import torch

        from ..colour import to_ycbcr
        from ..motion import CAVITY_LUMA, cavity_mask

        opens = self._opening(change, target, motion.own)
        if opens is None:
            return paint, keep, None
        jaw, lips, smile = opens
        src, dst = motion.landmarks.cpu().numpy(), motion.moved.cpu().numpy()
        luma = (to_ycbcr(x)[0] + 1) * 127.5                          # (B,1,S,S) 0..255
        tint = None
        if bool((torch.maximum(lips, smile) > 0).any()):
            paint, keep, tint = self._smile_teeth(x, luma, paint, keep, src, dst, lips, smile)
        if not bool((jaw > 0).any()):
            return paint, keep, tint
        mask = cavity_mask(src, dst, self.size)
        if not mask.any():
            return paint, keep, tint
        w = torch.from_numpy(mask).to(x.device)[:, None] * jaw.view(-1, 1, 1, 1)
        dark = self._darkest_tenth(luma, w)
        now = luma + paint                                           # the luma after G's paint
        paint = paint + w * (CAVITY_LUMA * dark - now).clamp(max=0)
        return paint, keep * (1 - 0.5 * w), tint

    def lash_level(self, motion) -> np.ndarray:
        """(B,) float32 0..255: the luma the lash line of closing eyes goes towards, LASH_LUMA
        x the darkest tenth of the eyes' own pixels in the unwarped crops (lashes, pupil), so a
        shut eye reads as a dark line, not a fold of skin (``FaceBlender._lashed``)."""
        import cv2
        import torch

        from ..colour import to_ycbcr
        from ..motion import LASH_LUMA

        lm0 = motion.lids[0]
        eyes = np.zeros((len(lm0), self.size, self.size), np.float32)
        for b in range(len(lm0)):
            for eye in (slice(36, 42), slice(42, 48)):
                pts = np.round(lm0[b, eye] * self.size * 16).astype(np.int32)
                cv2.fillPoly(eyes[b], [pts], 1.0, cv2.LINE_8, shift=4)
        own = (to_ycbcr(motion.crops)[0] + 1) * 127.5                   # the eyes before they close
        dark = self._darkest_tenth(own, torch.from_numpy(eyes).to(own.device)[:, None])
        return (LASH_LUMA * dark).reshape(-1).float().cpu().numpy()

    def _brow_band(self, x, paint, keep, tint, motion):
        """Raised brows that stretch the band between the brow and the upper lid
        (``motion.brow_band_mask``): there the luma is brought up to LID_OF_FOREHEAD x the
        median of the forehead just above that brow (never down: a band already as bright
        as skin stays as it is) times the crease's shade, and where it is lifted the chroma
        goes to the face's median (fully at a lift of 30), so the brow's stretched hair and
        shadow read as lid skin. Returns
        (paint, keep, tint) with the chroma added (B,2,S,S), or ``tint`` as it was."""
        import torch

        from ..colour import to_ycbcr
        from ..motion import brow_band_mask

        weight, shade, above = brow_band_mask(motion.landmarks.cpu().numpy(), motion.moved.cpu().numpy(),
                                              self.size)
        if not weight.any():
            return paint, keep, tint
        ycc = torch.cat(to_ycbcr(x), 1) * 127.5
        ycc[:, 0] += 127.5                                            # Y 0..255, Cb and Cr around 0
        w = torch.from_numpy(weight).to(x.device)                     # (B,2,S,S)
        shade = torch.from_numpy(shade).to(x.device)[:, None]
        now = ycc[:, :1] + paint
        add = torch.zeros_like(ycc[:, 1:])
        q = self.size // 4                                            # the crop's middle: the face
        face = ycc[:, :, q:-q, q:-q].flatten(2).median(2).values      # (B,3)
        for b, side in zip(*np.nonzero(weight.reshape(len(weight), 2, -1).max(-1) > 0)):
            strip = torch.from_numpy(above[b, side] > 0).to(x.device)
            if int(strip.sum()) < 8:
                continue
            # the forehead's luma (its side's light), no brighter than the face's (a fringe)
            ref = torch.minimum(ycc[b, 0][strip].median(), LID_OF_FACE * face[b, 0])
            lift = (LID_OF_FOREHEAD * ref * shade[b] - now[b]).clamp(min=0)
            wb = w[b, side][None]
            wc = wb * (lift / LIFT_FULL).clamp(max=1)                 # dark hair, shadow: the skin's chroma
            paint[b] = paint[b] + wb * lift
            keep[b] = keep[b] * (1 - wc)
            add[b] = add[b] + wc * face[b, 1:, None, None]
        tint = add if tint is None else tint + add
        return paint, keep, tint

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
        """(jaw, lips, smile), each (B,) 0..1: how far the jaw drops (AU26 rising, its
        paint's fade-in), how far the lips part without it (AU25 rising, less where the jaw
        drops too), and how far the jaw closes into a new smile (AU26 falling, by
        ``paint_ramp``, AU12 rising, by SMILE_RISE, and the target's AU25 and AU12, fully from SMILE_AU25
        and SMILE_AU12 up: a laughing face keeps its own teeth); None when none of them
        moves. Each fades in continuously, so a ramp of frames has no jump."""
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
        k26, k25, k12 = (au.AU_INDEX[n] for n in ("AU26", "AU25", "AU12"))
        ramp = self.config.paint_ramp
        smile = (((own - target)[:, k26] / ramp).clamp(0, 1) * ((target - own)[:, k12] / SMILE_RISE).clamp(0, 1)
                 * (target[:, k25] / SMILE_AU25).clamp(0, 1) * (target[:, k12] / SMILE_AU12).clamp(0, 1))
        if not bool((torch.stack([jaw, lips, smile]) > 0).any()):
            return None
        return jaw, lips, smile

    @staticmethod
    def _darkest_tenth(luma, w):
        """(B,1,1,1): the darkest tenth of ``luma`` (B,1,S,S) where ``w`` > 0.05 (40 elsewhere)."""
        import torch

        inner = w > 0.05
        return torch.stack([luma[b][inner[b]].quantile(0.1) if inner[b].any() else luma.new_tensor(40.0)
                            for b in range(len(luma))]).view(-1, 1, 1, 1)

    def _smile_teeth(self, x, luma, paint, keep, src, dst, lips, smile):
        """Lips parted without the jaw by ``lips`` (B,), or a jaw closed into a smile by
        ``smile`` (B,): the opening shows teeth (``motion.smile_teeth_mask``), their luma
        and chroma replaced by ``_teeth_colour``'s (the luma times the mask's shade: dimmer
        towards the corners, faint lines between teeth); the rest is shadow, its luma
        brought to SMILE_SHADOW x the darkest tenth of the warped interior, or SHADOW_FLOOR x
        the median of the crop's middle half if brighter (G's paint there, darker or
        lighter), its chroma halved. Returns (paint, keep, tint (B,2,S,S): the
        chroma added, Cb and Cr in 0..255 units)."""
        import torch

        from ..motion import smile_teeth_mask

        teeth, shadow, shade = smile_teeth_mask(src, dst, self.size, smile.cpu().numpy())
        w = torch.maximum(lips, smile).view(-1, 1, 1, 1)
        teeth, shadow = (torch.from_numpy(m).to(luma.device)[:, None] * w for m in (teeth, shadow))
        shade = torch.from_numpy(shade).to(luma.device)[:, None]
        now = luma + paint
        white, chroma = self._teeth_colour(x, dst)
        q = self.size // 4                                            # the crop's middle: the face
        face = luma[:, :, q:-q, q:-q].flatten(1).median(1).values.view(-1, 1, 1, 1)
        dark = torch.maximum(SMILE_SHADOW * self._darkest_tenth(luma, teeth + shadow), SHADOW_FLOOR * face)
        paint = paint + teeth * (white * shade - now) + shadow * (dark - now)
        keep = keep * (1 - teeth) * (1 - 0.5 * shadow)
        return paint, keep, teeth * chroma

    def _teeth_colour(self, x, dst):
        """(luma (B,1,1,1), chroma (B,2,1,1): Cb, Cr) of a smile's teeth on crops ``x``
        (B,3,S,S in [-1,1]) with landmarks ``dst`` (B,68,2 crop units), 0..255 units. The
        luma: TEETH_OF_SCLERA x the whites of the eyes (the brightest 2 % inside the eye
        contours) or TEETH_OF_SKIN x the crop's median, whichever is brighter (squinting or
        small eyes show little white), between TEETH_MIN (or TEETH_OF_BRIGHT x the crop's
        brightest hundredth, if darker) and TEETH_MAX; the chroma TEETH_IVORY plus
        SKIN_SHARE x (the median chroma of the crop's middle half, the skin, - SKIN_REF).
        Where the mouth already shows brighter teeth (the brightest 5 % inside the inner
        lips, an open start), their own luma and chroma. The chroma kept ivory: Cb in
        [-TEETH_CHROMA, 0], Cr in [TEETH_RED, TEETH_CHROMA]."""
        import torch

        from ..colour import to_ycbcr

        ycc = torch.cat(to_ycbcr(x), 1) * 127.5
        ycc[:, 0] += 127.5                                            # Y 0..255, Cb and Cr around 0
        lumas, chromas = [], []
        for b in range(len(x)):
            flat = ycc[b, 0].flatten()
            floor = torch.clamp(TEETH_OF_BRIGHT * flat.quantile(0.99), max=TEETH_MIN)
            luma = torch.maximum(TEETH_OF_SKIN * flat.median(), floor)
            q = self.size // 4
            skin = ycc[b, 1:, q:-q, q:-q].flatten(1).median(1).values
            chroma = ycc.new_tensor(TEETH_IVORY) + SKIN_SHARE * (skin - ycc.new_tensor(SKIN_REF))
            px = self._inside(ycc[b], dst[b], (slice(36, 42), slice(42, 48)))   # the eyes
            if px.shape[1] >= 8:
                luma = torch.maximum(TEETH_OF_SCLERA * px[0].quantile(0.98), luma)
            luma = luma.clamp(max=TEETH_MAX)
            px = self._inside(ycc[b], dst[b], (slice(60, 68),))                # the mouth's own teeth
            if px.shape[1] >= 20 and px[0].quantile(0.95) > luma:
                own = px[:, px[0] >= px[0].quantile(0.95)]
                luma, chroma = own[0].median(), own[1:].median(1).values
            lumas.append(luma)
            chromas.append(torch.stack([chroma[0].clamp(-TEETH_CHROMA, 0), chroma[1].clamp(TEETH_RED, TEETH_CHROMA)]))
        return torch.stack(lumas).view(-1, 1, 1, 1), torch.stack(chromas).view(-1, 2, 1, 1)

    def _inside(self, img, lm, parts):
        """(C, N): the pixels of ``img`` (C,S,S) inside the polygons of landmarks ``lm``
        (68,2 crop units) sliced by ``parts``."""
        import cv2
        import torch

        m = np.zeros((self.size, self.size), np.uint8)
        for part in parts:
            cv2.fillPoly(m, [np.round(lm[part] * self.size * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
        return img[:, torch.from_numpy(m > 0).to(img.device)]

    @staticmethod
    def _smiling(target, motion) -> "torch.Tensor | None":
        """(B,) bool: the edit forms a smile (AU12 rising towards ``target``), or None."""
        if target is None:
            return None
        k = au.AU_INDEX["AU12"]
        return (target - motion.own)[:, k] > 0

    def _gate(self, paint, keep, change, moved, smiling=None):
        """Paint only where a painted AU changed, inside its own region (the moved landmarks'
        hull), so an edit to the face's own AUs is exact and a mouth edit cannot touch the brows;
        a mouth AU's paint darkens only around the lips (``_lips_only``) unless the edit forms
        a smile (``smiling`` (B,) bool)."""
        import torch

        from ..motion import region_masks

        names = [n for n, p in zip(au.AU_NAMES, self.painted.tolist()) if p]
        if not names:  # no AU is painted: the warp alone
            return torch.zeros_like(paint), torch.ones_like(keep)
        masks = torch.from_numpy(region_masks(moved.cpu().numpy(), names, self.size)).to(self.device)
        fade = (masks * change[:, :, None, None]).amax(1, keepdim=True)
        dark = (masks * self._lips_only(names, moved, smiling) * change[:, :, None, None]).amax(1, keepdim=True)
        return torch.where(paint < 0, paint * dark, paint * fade), 1 - fade * (1 - keep)

    def _lips_only(self, names, moved, smiling=None):
        """(B,P,S,S), one per painted AU of ``names``: where its paint may darken. A mouth AU's
        only around the lips (``lips.lips_hull`` of the ``moved`` landmarks), so G's shading of
        a mouth that opens or closes does not spill past the lip corners as dark strokes;
        except on faces that form a smile (``smiling`` (B,) bool), whose corners' shading
        reaches past the lips; other AUs darken as far as their region reaches (1)."""
        import torch

        from ..lips import lips_hull
        from ..motion import AU_REGIONS

        mouth = [set(AU_REGIONS[n]) & set(range(48, 68)) != set() for n in names]
        hull = torch.from_numpy(lips_hull(moved.cpu().numpy(), self.size)).to(self.device)
        ones = torch.ones_like(hull)
        out = torch.stack([hull if m else ones for m in mouth], 1)
        if smiling is None:
            return out
        return torch.where(smiling[:, None, None, None], ones[:, None], out)
