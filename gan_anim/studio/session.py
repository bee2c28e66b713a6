"""The studio's state and actions, without any UI: one ``Studio`` per server (the loaded
model), one ``PhotoSession`` per browser session (a photo, its faces and the edit).

    studio = Studio(weights="weights/gan-anim-small.pt")
    s = studio.open("examples/astronaut.jpg")
    s.set_au("AU12", 4)
    preview, zoom = s.render()
    s.command("gif", frames=24, loop=True)   # gan-anim animate astronaut.jpg --to AU12=4 ...
    s.export("gif", out_dir, frames=24, loop=True)

The edit is a ``--to`` expression (``to_spec``) and a ``--face`` choice, so everything the
page shows is what ``gan-anim animate`` makes of that command line: the preview runs the
same ``EditModel`` and blend on the faces the ``Animator`` found and aligned, and the export
calls the command's own function, ``pipeline.batch.animate_photos``.
"""
from __future__ import annotations

import json
import shlex
import threading
from pathlib import Path

import numpy as np

from .. import aus as au
from ..config import InferenceConfig
from ..errors import GanAnimError
from ..faces.detect import detect_faces
from ..media.images import read_image
from ..pipeline.batch import animate_photos
from ..pipeline.photo import Animator
from .views import View

PREVIEW_SIDE = 1280   # the preview's longer side at most (px): a 1 MP photo shows at full size
ZOOM_SIDE = 384       # the zoom on the face (px, before and after side by side)
EXPORTS = {"png": ".png", "gif": ".gif", "mp4": ".mp4"}
# The slider groups of the page: AU names by face region.
REGIONS = {
    "Brows": ("AU01", "AU02", "AU04"),
    "Eyes": ("AU05", "AU07", "AU45"),
    "Nose and cheeks": ("AU06", "AU09", "AU10"),
    "Mouth": ("AU12", "AU14", "AU15", "AU17", "AU20", "AU23", "AU25", "AU26"),
}


class Studio:
    """What all sessions share: the loaded ``Animator`` and the command line's options."""

    def __init__(self, weights=None, device: str = InferenceConfig.device,
                 precision: str = InferenceConfig.precision, detector: str = "hog", animator=None):
        self.weights, self.device, self.precision, self.detector = weights, device, precision, detector
        self.animator = animator or Animator(weights, device, precision=precision, background=True)

    def open(self, path, name: str | None = None) -> PhotoSession:
        """A session on the photo at ``path`` (``name``: how the page and the command line
        call it; default the path). GanAnimError, worded with ``name``, for a file that is
        not a photo, is truncated, is over the pixel limit or has no face."""
        name = str(name or path)
        try:
            image = read_image(path)
            faces = detect_faces(image, self.detector)
        except GanAnimError as exc:
            raise GanAnimError(str(exc).replace(str(path), name)) from None
        if not faces:
            raise GanAnimError(f"{name}: no face found (try a larger or more frontal face)")
        return PhotoSession(self, Path(path), name, image, faces)


class PhotoSession:
    """One photo being edited: its faces (found and aligned once), the edit (``values``: the
    AUs set, a partial ``--to``; or a preset's name), the face choice, the start and undo.

    ``render`` regenerates only the selected faces at the page's resolution."""

    def __init__(self, studio: Studio, path: Path, name: str, image: np.ndarray, faces: list):
        self.studio, self.path, self.name, self.image, self.faces = studio, path, name, image, faces
        self.jobs = studio.animator.face_jobs(image, faces, None, None)  # own AUs, crops, landmarks
        self.model = studio.animator.model
        self.values: dict[str, float] = {}
        self.preset: str | None = None      # the values are this preset, named in --to
        self.last_preset: tuple[str, float] | None = None  # for the strength slider
        self.face = "all"                   # "all" or "1".."N" (largest first), as --face
        self.start: str | None = None       # --from: None (each face's own) or a preset
        self.history: list = []
        self._last_au: str | None = None
        self._lock = threading.Lock()
        self.preview = View(image, side=PREVIEW_SIDE)
        self._zoom = None
        self.scratch: list = []             # the page's files of this session (app.Page.jpeg)

    # ---------------------------------------------------------------- the edit
    def to_spec(self) -> str | None:
        """The edit as ``--to``: a preset name, ``AU06=3,AU12=4`` (AUs in order), or None."""
        if self.preset:
            return self.preset
        return ",".join(f"{n}={self.values[n]:g}" for n in au.AU_NAMES if n in self.values) or None

    def selected(self) -> list[int]:
        """The indices of the faces the edit applies to."""
        return list(range(len(self.faces))) if self.face == "all" else [int(self.face) - 1]

    def reference(self) -> int:
        """The face the sliders show: the selected one, or the largest for all."""
        return self.selected()[0]

    def start_vector(self, k: int) -> np.ndarray:
        """Face ``k``'s start AUs (17,): its own, or the ``--from`` preset."""
        if self.start is None:
            return self.jobs[k].own
        return au.au_dict_to_vector(au.parse_expression(self.start)[0], "--from")

    def goal(self, k: int) -> np.ndarray:
        """Face ``k``'s target AUs (17,) for the current edit, as ``Animator.face_jobs``
        works them out from ``--to`` and ``--from``."""
        start = self.start_vector(k)
        spec = self.to_spec()
        if spec is None:
            return start
        values, complete = au.parse_expression(spec)
        return au.au_dict_to_vector(values, "--to", base=None if complete else start)

    def _remember(self, au_name: str | None = None) -> None:
        """An undo point, except while the same slider keeps moving (one drag, one step)."""
        if au_name is None or au_name != self._last_au:
            self.history.append((dict(self.values), self.preset, self.last_preset))
            del self.history[:-100]
        self._last_au = au_name

    def set_au(self, name: str, value: float) -> None:
        name = au.canonical_au(name)
        value = round(float(value), 2)
        au.au_dict_to_vector({name: value}, "slider")  # GanAnimError outside 0..5
        self._remember(name)
        if self.preset:  # a named preset becomes its values, then the edit
            self.values = {n: round(float(v), 2) for n, v in zip(au.AU_NAMES, self.goal(self.reference()))}
        self.preset, self.last_preset = None, None
        self.values[name] = value

    def apply_preset(self, name: str, strength: float = 1.0, remember: bool = True) -> None:
        """The preset, ``strength`` of the way from the reference face's start (1: the preset
        itself, named in ``--to``)."""
        if name not in au.PRESETS:
            raise GanAnimError(f"unknown preset {name!r}")
        strength = min(max(float(strength), 0.0), 1.0)
        if remember:
            self._remember()
        self.last_preset = (name, strength)
        if strength == 1.0:
            self.values, self.preset = dict(au.parse_expression(name)[0]), name
            return
        start = self.start_vector(self.reference())
        target = au.au_dict_to_vector(au.PRESETS[name], "preset")
        mixed = np.clip(start + strength * (target - start), 0.0, au.AU_SCALE)
        self.values, self.preset = {n: round(float(v), 2) for n, v in zip(au.AU_NAMES, mixed)}, None

    def set_strength(self, strength: float) -> bool:
        """Re-apply the last preset at ``strength``; False if the sliders moved since."""
        if self.last_preset is None:
            return False
        self.apply_preset(self.last_preset[0], strength, remember=False)  # one undo step per preset
        return True

    def reset(self) -> None:
        """Back to each face's own expression (no edit)."""
        self._remember()
        self.values, self.preset, self.last_preset = {}, None, None

    def undo(self) -> bool:
        if not self.history:
            return False
        self.values, self.preset, self.last_preset = self.history.pop()
        self._last_au = None
        return True

    def select_face(self, which: str) -> None:
        """``"all"`` or a face number (1 = largest), as ``--face``."""
        if which != "all" and not (str(which).isdigit() and 1 <= int(which) <= len(self.faces)):
            raise GanAnimError(f"face {which}: the photo has {len(self.faces)} face(s)")
        self.face, self._zoom = str(which), None

    def face_at(self, x: float, y: float) -> str:
        """The face under a preview pixel (the smallest box holding it), or "all"."""
        px, py = self.preview.to_photo(x, y)
        hits = [k for k, f in enumerate(self.faces)
                if f.box[0] <= px <= f.box[2] and f.box[1] <= py <= f.box[3]]
        return str(min(hits, key=lambda k: self.faces[k].area) + 1) if hits else "all"

    def set_start(self, start: str | None) -> None:
        """``--from``: None or "own" (each face's own AUs) or a preset name."""
        if start in (None, "", "own"):
            self.start = None
        elif start in au.PRESETS:
            self.start = start
        else:
            raise GanAnimError(f"unknown start {start!r}: own or a preset")

    # -------------------------------------------------------------- pictures
    def render(self) -> tuple[np.ndarray, np.ndarray]:
        """(the preview, the zoom: before | after), both RGB uint8, for the current edit."""
        with self._lock:
            sel = self.selected()
            edits = self._generate(sel)
            transforms = {k: self.jobs[k].transform for k in sel}
            preview = self.preview.render(transforms, edits, self.model.size)
            zoom = self.zoom()
            after = zoom.render(transforms, edits, self.model.size)
            return preview, np.hstack([zoom.source, after])

    def _generate(self, faces: list[int]) -> dict:
        """{face index: its ``FaceEdits``} at the current goals, in the model's batches."""
        out, b = {}, self.model.batch_size
        for i in range(0, len(faces), b):
            ks = faces[i:i + b]
            jobs = [self.jobs[k] for k in ks]
            edits = self.model.generate(np.stack([j.crop for j in jobs]),
                                        np.stack([self.goal(k) for k in ks]),
                                        np.stack([j.landmarks for j in jobs]),
                                        np.stack([j.own for j in jobs]))
            out.update({k: edits[n] for n, k in enumerate(ks)})
        return out

    def zoom(self) -> View:
        """The view of the reference face: its box and as much again around it."""
        if self._zoom is None:
            x0, y0, x1, y1 = self.faces[self.reference()].box
            cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0)
            box = (cx - half, cy - half, cx + half, cy + half)
            self._zoom = View(self.image, box, side=ZOOM_SIDE, enlarge=True)
        return self._zoom

    def outlined(self) -> np.ndarray:
        """The preview of the photo as it is, every face boxed and numbered (the selected
        ones in yellow)."""
        import cv2

        out = self.preview.source.copy()
        sel = set(self.selected())
        width = max(2, round(max(out.shape[:2]) / 400))
        for k, f in enumerate(self.faces):
            (x0, y0), (x1, y1) = self.preview.to_view(np.array(f.box, np.float64).reshape(2, 2)).round().astype(int)
            colour = (255, 210, 0) if k in sel else (0, 200, 255)
            cv2.rectangle(out, (x0, y0), (x1, y1), colour, width)
            cv2.putText(out, str(k + 1), (x0 + width, max(0, y0) + 12 * width), cv2.FONT_HERSHEY_SIMPLEX,
                        0.5 * width, colour, width, cv2.LINE_AA)
        return out

    # ------------------------------------------------------------------ output
    def options(self, kind: str, frames: int = 30, fps: float = 15.0, loop: bool = False,
                ease: str = "linear") -> dict:
        """``animate_photos`` keyword arguments for an export of ``kind`` (png, gif, mp4)."""
        if kind not in EXPORTS:
            raise GanAnimError(f"unknown export {kind!r}: png, gif or mp4")
        if self.to_spec() is None:
            raise GanAnimError("nothing to export yet: move a slider or choose a preset")
        if kind == "png":  # a still: one frame at the goal, in a folder, as the command writes it
            frames, loop = 1, False
        return dict(to=self.to_spec(), start=self.start, frames=int(frames), fps=float(fps),
                    ease=ease, loop=bool(loop), face=self.face, detector=self.studio.detector)

    def output_name(self, kind: str) -> str:
        stem = Path(self.name).stem or "photo"
        return f"{stem}-edit" + ("" if kind == "png" else EXPORTS[kind])

    def command(self, kind: str = "gif", **opts) -> str:
        """The ``gan-anim animate`` line that writes what ``export`` writes."""
        o = self.options(kind, **opts)
        args = ["gan-anim", "animate", self.name, "--to", o["to"]]
        if o["start"]:
            args += ["--from", o["start"]]
        if o["face"] != "all":
            args += ["--face", o["face"]]
        args += ["--frames", str(o["frames"])]
        if kind != "png":
            args += ["--fps", f"{o['fps']:g}", "--ease", o["ease"]] + (["--loop"] if o["loop"] else [])
        if o["detector"] != "hog":
            args += ["--detector", o["detector"]]
        for flag, value, default in (("--weights", self.studio.weights, None),
                                     ("--device", self.studio.device, InferenceConfig.device),
                                     ("--precision", self.studio.precision, InferenceConfig.precision)):
            if value != default:
                args += [flag, str(value)]
        name = self.output_name(kind)
        return shlex.join(args + ["-o", name + ("/" if kind == "png" else "")])

    def expression_json(self) -> str:
        """The edit as a ``--to`` JSON file ({"AU06": 3.0, ...}: the AUs set)."""
        if self.to_spec() is None:
            raise GanAnimError("nothing to save yet: move a slider or choose a preset")
        values = au.parse_expression(self.to_spec())[0]
        return json.dumps({n: float(values[n]) for n in au.AU_NAMES if n in values}, indent=1) + "\n"

    def export(self, kind: str, folder, **opts) -> Path:
        """Write the export of ``kind`` into ``folder`` with ``gan-anim animate``'s own function
        and return its path (png: the still itself, moved out of the command's frame folder)."""
        o = self.options(kind, **opts)
        out = Path(folder) / self.output_name(kind)
        animate_photos([self.path], out, animator=self.studio.animator, quiet=True, **o)
        if kind != "png":
            return out
        still = out.with_suffix(".png")
        (out / "frame_00000.png").replace(still)
        out.rmdir()
        return still
