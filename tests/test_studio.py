"""``gan-anim studio`` without a browser: the session's pictures are the Renderer's, its
exports are ``gan-anim animate``'s files, bad uploads get one clear message, sessions do
not mix. (The page in a real browser: test_studio_browser.py.)"""
from __future__ import annotations

import shlex
import subprocess
import sys

import numpy as np
import pytest
from conftest import EXAMPLE, ROOT, SHIPPED_SMALL
from PIL import Image

from gan_anim.errors import GanAnimError
from gan_anim.render.renderer import FrameRender, Renderer


@pytest.fixture(scope="module")
def studio():
    from gan_anim.studio.session import Studio

    return Studio(weights=str(SHIPPED_SMALL))


@pytest.fixture()
def session(studio):
    return studio.open(EXAMPLE)


def renderer_frame(s, goals: dict) -> np.ndarray:
    """What the Renderer makes of the photo with faces ``k`` at ``goals[k]``."""
    faces = [s.jobs[k].at(goal) for k, goal in goals.items()]
    return next(Renderer(s.model, overlap=False).render([FrameRender(s.image, faces)])).copy()


def test_preview_is_the_renderers_frame(session):
    session.set_au("AU12", 1.0)
    session.set_au("AU26", 3.5)
    preview, zoom = session.render()
    goal = session.goal(0)
    assert goal[8] == pytest.approx(1.0) and goal[15] == pytest.approx(3.5)
    assert np.array_equal(goal[:8], session.jobs[0].own[:8])  # the AUs not set stay the face's own
    assert np.array_equal(preview, renderer_frame(session, {0: goal}))
    assert not np.array_equal(preview, session.image)
    assert zoom.shape == (384, 768, 3)
    assert not np.array_equal(zoom[:, :384], zoom[:, 384:])  # before | after differ


def test_a_large_photo_previews_at_screen_size(studio, tmp_path):
    """A photo over the preview size is previewed downscaled, and the preview is the
    full-resolution render downscaled (to within resampling)."""
    import cv2

    big = tmp_path / "big.png"
    image = np.asarray(Image.open(EXAMPLE).convert("RGB"))
    Image.fromarray(cv2.resize(image, (2048, 2048), interpolation=cv2.INTER_CUBIC)).save(big)
    s = studio.open(big)
    s.set_au("AU26", 4.0)
    preview, _ = s.render()
    assert preview.shape == (1280, 1280, 3)
    full = renderer_frame(s, {0: s.goal(0)})
    small = cv2.resize(full, (1280, 1280), interpolation=cv2.INTER_AREA)
    mouth = s.preview.to_view(s.faces[0].landmarks[48:68])
    (x0, y0), (x1, y1) = mouth.min(0).astype(int), mouth.max(0).astype(int)
    changed = np.abs(small.astype(int) - s.preview.source)[y0:y1, x0:x1].mean()
    error = np.abs(small.astype(int) - preview)[y0:y1, x0:x1].mean()
    assert changed > 5 and error < changed / 5


def test_edit_actions(session):
    own = session.jobs[0].own.copy()
    assert session.to_spec() is None and np.array_equal(session.goal(0), own)
    session.apply_preset("happy")
    assert session.to_spec() == "happy"
    session.set_strength(0.5)
    half = session.goal(0)
    assert half[4] == pytest.approx(round(own[4] + 0.5 * (3.0 - own[4]), 2))  # AU06 halfway
    session.set_au("AU12", 2)
    session.set_au("AU12", 2.5)  # one drag: one undo step
    assert session.goal(0)[8] == pytest.approx(2.5)
    assert session.undo() and np.allclose(session.goal(0), half)
    assert session.undo() and session.to_spec() is None  # before the preset
    session.set_au("AU45", 5)
    session.reset()
    assert session.to_spec() is None and np.array_equal(session.goal(0), own)
    session.set_start("neutral")
    session.set_au("AU12", 3)
    assert session.goal(0).sum() == pytest.approx(3.0)  # unset AUs keep the start: neutral
    with pytest.raises(GanAnimError, match="outside 0..5"):
        session.set_au("AU12", 7)
    with pytest.raises(GanAnimError, match="1 face"):
        session.select_face("2")
    x, y = session.preview.to_view(session.faces[0].landmarks[30:31])[0]
    assert session.face_at(x, y) == "1" and session.face_at(2, 2) == "all"


def test_two_sessions_do_not_mix(studio, tmp_path):
    flipped = tmp_path / "flipped.png"
    Image.open(EXAMPLE).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(flipped)
    a, b = studio.open(EXAMPLE), studio.open(flipped)
    b_before, _ = b.render()
    b_before = b_before.copy()
    a.set_au("AU26", 4)
    a_preview, _ = a.render()
    b_again, _ = b.render()
    assert b.to_spec() is None and a.to_spec() == "AU26=4"
    assert np.array_equal(b_again, b_before) and np.array_equal(b_before, b.image)
    assert not np.array_equal(a_preview, a.image)
    assert a.preview is not b.preview and a.history is not b.history


def run_cli(args: list[str]) -> None:
    from gan_anim.cli import main

    main(args, standalone_mode=False)


@pytest.mark.parametrize("kind", ["png", "gif", "mp4"])
def test_export_is_what_the_command_line_writes(studio, tmp_path, monkeypatch, kind):
    s = studio.open(EXAMPLE, name=str(EXAMPLE))
    s.apply_preset("surprise", 0.6)
    s.set_au("AU12", 2)
    opts = dict(frames=5, fps=12, loop=True, ease="smooth")
    folder = tmp_path / "studio"
    folder.mkdir()
    exported = s.export(kind, folder, **opts)
    assert exported.name == "astronaut-edit." + kind
    line = s.command(kind, **opts)
    args = shlex.split(line)
    assert args[:3] == ["gan-anim", "animate", str(EXAMPLE)] and "AU12=2" in args[args.index("--to") + 1]
    monkeypatch.chdir(tmp_path)
    run_cli(args[1:])
    written = tmp_path / args[-1]
    if kind == "png":  # the command writes a folder with one frame
        assert sorted(p.name for p in written.iterdir()) == ["frame_00000.png"]
        written = written / "frame_00000.png"
    if kind == "mp4":
        import imageio.v3 as iio

        a, b = iio.imread(exported), iio.imread(written)
        assert a.shape == b.shape == (8, 512, 512, 3) and np.array_equal(a, b)
    else:
        assert exported.read_bytes() == written.read_bytes()
    if kind == "png":  # and the still is the preview, at full resolution
        assert np.array_equal(np.asarray(Image.open(exported)), s.render()[0])


def test_saved_expression_is_a_to_file(session, tmp_path):
    session.set_au("AU06", 3)
    session.set_au("AU12", 4.25)
    path = tmp_path / "smile.json"
    path.write_text(session.expression_json())
    from gan_anim import aus

    assert aus.parse_expression(str(path)) == ({"AU06": 3.0, "AU12": 4.25}, False)


def bad_upload(tmp_path, kind: str):
    data = EXAMPLE.read_bytes()
    path = tmp_path / f"upload-{kind}.jpg"
    if kind == "text":
        path.write_text("not a photo\n")
    elif kind == "truncated":
        path.write_bytes(data[: len(data) // 3])
    elif kind == "no face":  # the sky and the flag of the example photo
        Image.open(EXAMPLE).crop((0, 0, 150, 200)).save(path)
    return path


@pytest.mark.parametrize("kind,message", [("text", "not an image"), ("truncated", "truncated or corrupt"),
                                          ("no face", "no face found")])
def test_bad_uploads_get_one_clear_message(studio, tmp_path, kind, message):
    path = bad_upload(tmp_path, kind)
    with pytest.raises(GanAnimError, match=message) as err:
        studio.open(path, name="holiday.jpg")
    assert str(err.value).startswith("holiday.jpg: ") and str(tmp_path) not in str(err.value)


def test_a_photo_over_the_pixel_limit_is_refused(studio, monkeypatch):
    import gan_anim.media.images as images

    monkeypatch.setattr(images, "MAX_PIXELS", 512 * 512 - 1)
    with pytest.raises(GanAnimError, match="512x512 is over the limit"):
        studio.open(EXAMPLE, name="big.jpg")


def test_cli_help_loads_no_gradio():
    code = ("import sys\nfrom gan_anim.cli import main\n"
            "try:\n    main(['studio', '--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'gradio' not in sys.modules, 'gradio imported'\nprint('ok')")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr
    assert "--no-browser" in out.stdout and "127.0.0.1" in out.stdout


def test_the_page_shows_errors_as_one_line(studio, tmp_path):
    """Handlers wrap GanAnimError as gr.Error (a message in the page, escaped: it is HTML)."""
    import gradio as gr

    from gan_anim.studio.app import Page, friendly

    page = Page(studio, export_root=tmp_path / "exports")
    path = bad_upload(tmp_path, "text").rename(tmp_path / "<i>notes.jpg")
    with pytest.raises(gr.Error) as err:
        friendly(page.open_upload)(str(path), "gif", 30, 15, False, "linear")
    assert err.value.message == "&lt;i&gt;notes.jpg: not an image (unrecognised format)"
    s = studio.open(EXAMPLE)
    with pytest.raises(gr.Error, match="nothing to export yet"):
        friendly(page.export)(s, "gif", 30, 15, False, "linear")


def test_an_export_to_a_full_disk_is_a_message(studio, tmp_path):
    """A real full disk: a 64 KB tmpfs (needs root, as on CI; skipped elsewhere)."""
    import os

    import gradio as gr

    from gan_anim.studio.app import Page, friendly

    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        page = Page(studio, export_root=disk)
        s = studio.open(EXAMPLE)
        s.set_au("AU26", 4)
        with pytest.raises(gr.Error, match="No space left on device"):
            friendly(page.export)(s, "gif", 10, 15, False, "linear")
        assert [p.name for p in disk.rglob("*") if p.is_file()] == []  # no partial file
    finally:
        subprocess.run(["umount", str(disk)], check=True)


@pytest.mark.slow
def test_serve_until_ctrl_c_then_exit_0_and_leave_nothing(tmp_path):
    """``gan-anim studio --no-browser``: prints the URL, serves the page on 127.0.0.1, and on
    Ctrl-C (SIGINT) exits with status 0, its temporary files gone."""
    import os
    import signal
    import urllib.request

    from gan_anim.studio.server import free_port

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    port = free_port()
    env = dict(os.environ, TMPDIR=str(tmp), PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, "-m", "gan_anim", "studio", str(EXAMPLE), "--no-browser",
                             "--port", str(port), "--weights", str(SHIPPED_SMALL)],
                            cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        assert line.startswith(f"gan-anim studio: http://127.0.0.1:{port}/"), line
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as r:
            assert r.status == 200 and b"gan-anim studio" in r.read()
        assert any(tmp.iterdir())  # its temporary folder, while it runs
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    finally:
        proc.kill()
    assert "Traceback" not in proc.stderr.read()
    assert list(tmp.iterdir()) == []


def test_servers_in_one_process_leave_no_files(studio):
    """start/stop twice in one process (as the tests and the benchmark do): each server's
    temporary folder is gone after its stop, and stays gone."""
    from gan_anim.studio.server import start, stop

    folders = []
    for _ in range(2):
        demo, url, tmp = start(studio=studio)
        assert url.startswith("http://127.0.0.1:") and tmp.is_dir()
        folders.append(tmp)
        stop(demo, tmp)
    assert not any(f.exists() for f in folders)
