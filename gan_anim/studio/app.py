"""The studio's page: a Gradio Blocks view of ``session.PhotoSession``.

Every handler is a thin call into the session; errors of the user's making
(``GanAnimError``, a full disk) become a message in the page (``gr.Error``), never a stack
trace, and the server goes on. Per-browser state lives in ``gr.State``. Live events use
``trigger_mode="always_last"``: while a render runs, only the newest slider value waits.
"""
from __future__ import annotations

import functools
import html
import shutil
import tempfile
import uuid
from pathlib import Path

import cv2
import gradio as gr
from gradio.utils import get_upload_folder

from .. import aus as au
from ..errors import GanAnimError
from .session import REGIONS, PhotoSession, Studio

LIVE = dict(trigger_mode="always_last", show_progress="hidden", concurrency_limit=4)
TITLE = "gan-anim studio"
JPEG_QUALITY = 92
KEEP_PICTURES = 8   # a session's newest preview files (the page may still be loading one)
CSS = """
#preview img, #before img {object-fit: contain;}
"""


def _message(exc: BaseException) -> str:
    if isinstance(exc, GanAnimError):
        return str(exc)
    where = f": {Path(exc.filename).name}" if getattr(exc, "filename", None) else ""
    return f"{exc.strerror or exc}{where}"


def friendly(fn):
    """Run a handler; a ``GanAnimError`` or ``OSError`` becomes one line in the page."""
    @functools.wraps(fn)
    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (GanAnimError, OSError) as exc:
            # gr.Error renders HTML: a file name must not become markup
            raise gr.Error(html.escape(_message(exc)), print_exception=False) from None
    return run


class Page:
    """The components and handlers of one page (one per server; state per session)."""

    def __init__(self, studio: Studio, photo=None, export_root=None):
        self.studio, self.photo = studio, photo
        self.export_root = Path(export_root or tempfile.mkdtemp(prefix="gan-anim-exports-"))
        self.export_root.mkdir(parents=True, exist_ok=True)

    # ---------------------------------------------------------------- updates
    def slider_updates(self, s: PhotoSession | None) -> list:
        if s is None:
            return [gr.skip()] * len(au.AU_NAMES)
        k = s.reference()
        goal, own = s.goal(k), s.jobs[k].own
        return [gr.update(value=round(float(goal[i]), 2), info=f"{au.AU_DESCRIPTIONS[n]}; own {own[i]:.2f}")
                for i, n in enumerate(au.AU_NAMES)]

    def pictures(self, s: PhotoSession | None, kind, frames, fps, loop, ease) -> list:
        """[after, zoom, command] for the session's current edit."""
        if s is None:
            return [gr.skip()] * 3
        preview, zoom = s.render()
        return [self.jpeg(s, preview), self.jpeg(s, zoom), self.command_text(s, kind, frames, fps, loop, ease)]

    def jpeg(self, s: PhotoSession, image) -> str:
        """``image`` as a JPEG in Gradio's cache, where the page fetches it. JPEG: a 1 MP PNG
        takes Pillow 0.3-0.8 s to compress, this 10-30 ms. A session keeps its last
        ``KEEP_PICTURES`` files (older previews are deleted)."""
        folder = Path(get_upload_folder()) / "previews"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{uuid.uuid4().hex}.jpg"
        _, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                                [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        path.write_bytes(data.tobytes())
        kept = s.scratch
        kept.append(path)
        while len(kept) > KEEP_PICTURES:
            kept.pop(0).unlink(missing_ok=True)
        return str(path)

    @staticmethod
    def command_text(s: PhotoSession, kind, frames, fps, loop, ease) -> str:
        if s.to_spec() is None:
            return "(move a slider or choose a preset)"
        try:
            return s.command(kind, frames=int(frames), fps=float(fps), loop=bool(loop), ease=ease)
        except GanAnimError as exc:
            return str(exc)

    def everything(self, s, *opts) -> list:
        """[state, face choice, before, after, zoom, command, info, *sliders] after a new
        photo, face or start."""
        faces = ["all"] + [str(k + 1) for k in range(len(s.faces))]
        info = (f"**{s.name}**: {s.image.shape[1]}x{s.image.shape[0]}, {len(s.faces)} face(s). "
                "Click a face to edit it alone.")
        return [s, gr.update(choices=faces, value=s.face), self.jpeg(s, s.outlined()), *self.pictures(s, *opts),
                info, *self.slider_updates(s)]

    # --------------------------------------------------------------- handlers
    def open_upload(self, file, *opts):
        if file is None:
            return [gr.skip()] * (7 + len(au.AU_NAMES))
        path = Path(file if isinstance(file, str) else file.name)
        return self.everything(self.studio.open(path, name=path.name), *opts)

    def open_start(self, *opts):
        if self.photo is None:
            return [gr.skip()] * (7 + len(au.AU_NAMES))
        return self.everything(self.studio.open(self.photo), *opts)

    def move(self, name, value, s, *opts):
        if s is None:
            return [gr.skip()] * 4
        s.set_au(name, value)
        return [s, *self.pictures(s, *opts)]

    def preset(self, name, strength, s, *opts):
        if s is None:
            raise GanAnimError("open a photo first")
        s.apply_preset(name, strength)
        return [s, *self.pictures(s, *opts), *self.slider_updates(s)]

    def strength(self, strength, s, *opts):
        if s is None or not s.set_strength(strength):
            return [gr.skip()] * (4 + len(au.AU_NAMES))
        return [s, *self.pictures(s, *opts), *self.slider_updates(s)]

    def reset(self, s, *opts):
        if s is None:
            return [gr.skip()] * (4 + len(au.AU_NAMES))
        s.reset()
        return [s, *self.pictures(s, *opts), *self.slider_updates(s)]

    def undo(self, s, *opts):
        if s is None or not s.undo():
            return [gr.skip()] * (4 + len(au.AU_NAMES))
        return [s, *self.pictures(s, *opts), *self.slider_updates(s)]

    def choose_face(self, which, s, *opts):
        if s is None:
            return [gr.skip()] * (7 + len(au.AU_NAMES))
        s.select_face(which)
        return self.everything(s, *opts)

    def click(self, evt: gr.SelectData, s, *opts):
        if s is None or evt is None or evt.index is None:
            return [gr.skip()] * (7 + len(au.AU_NAMES))
        s.select_face(s.face_at(*evt.index[:2]))
        return self.everything(s, *opts)

    def choose_start(self, start, s, *opts):
        if s is None:
            return [gr.skip()] * (7 + len(au.AU_NAMES))
        s.set_start(start)
        return self.everything(s, *opts)

    def export(self, s, kind, frames, fps, loop, ease, progress=gr.Progress()):
        if s is None:
            raise GanAnimError("open a photo first")
        opts = dict(frames=int(frames), fps=float(fps), loop=bool(loop), ease=ease)
        s.options(kind, **opts)  # a bad request fails before any folder is made
        progress(0, desc=f"writing the {kind.upper()}")
        folder = Path(tempfile.mkdtemp(dir=self.export_root))
        try:
            return str(s.export(kind, folder, **opts))
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def save_expression(self, s):
        if s is None:
            raise GanAnimError("open a photo first")
        folder = Path(tempfile.mkdtemp(dir=self.export_root))
        out = folder / f"{Path(s.name).stem or 'photo'}-expression.json"
        out.write_text(s.expression_json())
        return str(out)


def build(studio: Studio, photo=None, export_root=None) -> gr.Blocks:
    """The page: photo and controls on the left, the preview, zoom and export on the right."""
    page = Page(studio, photo, export_root)
    with gr.Blocks(title=TITLE, delete_cache=(600, 3600)) as demo:
        state = gr.State(None, time_to_live=6 * 3600)
        gr.Markdown(f"## {TITLE}\nOpen a photo, move the sliders (Action Units, 0..5), export "
                    "what `gan-anim animate` makes of the same settings.")
        with gr.Row():
            with gr.Column(scale=1, min_width=340):
                c = _controls()
            with gr.Column(scale=2):
                v = _pictures()
                e = _export()
        _wire(page, demo, state, c, v, e)
    return demo


def _controls() -> dict:
    c = {"file": gr.File(label="Photo (JPEG, PNG, WebP, TIFF, BMP)", file_count="single",
                         type="filepath", elem_id="photo"),
         "info": gr.Markdown("No photo yet."),
         "face": gr.Radio(["all"], value="all", label="Face (or click one)", elem_id="face"),
         "start": gr.Dropdown(["own"] + list(au.PRESETS), value="own", label="Start (--from)",
                              info="AUs you do not set keep their start value")}
    gr.Markdown("**Presets**")
    with gr.Row():
        c["presets"] = [gr.Button(name, size="sm", min_width=60) for name in au.PRESETS]
    c["strength"] = gr.Slider(0, 1, value=1, step=0.05, label="Preset strength",
                              info="0: the start, 1: the preset", elem_id="strength")
    with gr.Row():
        c["reset"] = gr.Button("Reset to the face's own", size="sm")
        c["undo"] = gr.Button("Undo", size="sm")
    sliders = {}
    for region, names in REGIONS.items():
        with gr.Accordion(region, open=True), gr.Row():
            for name in names:
                sliders[name] = gr.Slider(0, 5, value=0, step=0.05, label=name, info=au.AU_DESCRIPTIONS[name],
                                          elem_id=f"slider-{name}", min_width=180, buttons=[])
    c["sliders"] = [sliders[n] for n in au.AU_NAMES]
    return c


def _pictures() -> dict:
    with gr.Row():
        before = gr.Image(label="Before (faces outlined; click one)", interactive=False, elem_id="before", buttons=["fullscreen"])
        after = gr.Image(label="After", interactive=False, elem_id="preview",
                         buttons=["fullscreen", "download"])
    zoom = gr.Image(label="Zoom on the face: before | after", interactive=False,
                    elem_id="zoom", buttons=["fullscreen"])
    return {"before": before, "after": after, "zoom": zoom}


def _export() -> dict:
    with gr.Group():
        with gr.Row():
            e = {"kind": gr.Radio(["gif", "mp4", "png"], value="gif", label="Export as", elem_id="kind"),
                 "frames": gr.Number(30, label="Frames", precision=0, minimum=1, maximum=600),
                 "fps": gr.Number(15, label="fps", minimum=1, maximum=60),
                 "loop": gr.Checkbox(False, label="Loop (and back)"),
                 "ease": gr.Radio(["linear", "smooth"], value="linear", label="Ease")}
        with gr.Row():
            e["go"] = gr.Button("Export", variant="primary", elem_id="export")
            e["save"] = gr.Button("Save expression (--to JSON)", elem_id="save")
        e["command"] = gr.Textbox(label="Command line", interactive=False, buttons=["copy"],
                                  elem_id="command")
        e["download"] = gr.File(label="Download", interactive=False, elem_id="download")
    return e


def _wire(page: Page, demo, state, c, v, e) -> None:
    opts = [e["kind"], e["frames"], e["fps"], e["loop"], e["ease"]]
    pics = [v["after"], v["zoom"], e["command"]]
    whole = [state, c["face"], v["before"], *pics, c["info"], *c["sliders"]]
    live = [state, *pics]
    f = friendly
    c["file"].upload(f(page.open_upload), [c["file"], *opts], whole)
    demo.load(f(page.open_start), opts, whole)
    for name, slider in zip(au.AU_NAMES, c["sliders"]):
        slider.input(f(functools.partial(page.move, name)), [slider, state, *opts], live, **LIVE)
    for button in c["presets"]:
        button.click(f(functools.partial(page.preset, button.value)), [c["strength"], state, *opts],
                     live + c["sliders"], **LIVE)
    c["strength"].input(f(page.strength), [c["strength"], state, *opts], live + c["sliders"], **LIVE)
    c["reset"].click(f(page.reset), [state, *opts], live + c["sliders"], **LIVE)
    c["undo"].click(f(page.undo), [state, *opts], live + c["sliders"], **LIVE)
    c["face"].input(f(page.choose_face), [c["face"], state, *opts], whole, **LIVE)
    v["before"].select(f(page.click), [state, *opts], whole, **LIVE)
    c["start"].input(f(page.choose_start), [c["start"], state, *opts], whole, **LIVE)
    for o in opts:
        o.change(lambda s, *a: page.command_text(s, *a) if s else gr.skip(), [state, *opts], e["command"],
                 show_progress="hidden")
    e["go"].click(f(page.export), [state, *opts], e["download"])
    e["save"].click(f(page.save_expression), [state], e["download"])
