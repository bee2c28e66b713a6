"""Serving the studio: a private temporary folder for uploads and exports, a free port on
127.0.0.1 unless told otherwise, the browser, and a clean exit on Ctrl-C.

Gradio is imported here, inside ``serve``, so ``gan-anim --help`` never loads it.
"""
from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
import time
import webbrowser
from pathlib import Path

from ..errors import GanAnimError

UPLOAD_LIMIT = "64mb"   # largest accepted upload (Gradio's max_file_size)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on at ``host`` now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def gradio_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("gradio") is not None


def start(photo=None, host: str = "127.0.0.1", port: int | None = None, weights=None,
          device: str = "auto", precision: str = "auto", detector: str = "hog", quiet: bool = True,
          studio=None):
    """Launch the page without blocking: (the Gradio app, its URL, the temporary folder).
    Close with ``stop``. ``studio``: a ``session.Studio`` to serve instead of loading one."""
    if not gradio_available():
        raise GanAnimError("the studio needs Gradio: pip install 'gan-anim[studio]'")
    if photo is not None:
        from ..media.paths import check_input_file

        check_input_file(photo, "photo")
    tmp = Path(tempfile.mkdtemp(prefix="gan-anim-studio-"))
    # Uploads, previews and exports all go under tmp, removed by stop(); nothing else is served.
    os.environ["GRADIO_TEMP_DIR"] = str(tmp / "gradio")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio as gr
        import gradio.route_utils
        import gradio.routes

        # Gradio fixes these at its import: a second server in one process (tests, the
        # benchmark) would write into the first one's removed folder.
        for module in (gradio.routes, gradio.route_utils):
            if hasattr(module, "DEFAULT_TEMP_DIR"):
                module.DEFAULT_TEMP_DIR = os.environ["GRADIO_TEMP_DIR"]

        from .app import CSS, build
        from .session import Studio

        studio = studio or Studio(weights, device, precision, detector)
        demo = build(studio, photo, export_root=tmp / "exports")
        demo.queue(default_concurrency_limit=2)
        port = port or free_port(host)
        theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["monospace"])  # no web fonts
        try:
            demo.launch(server_name=host, server_port=port, prevent_thread_lock=True, quiet=quiet,
                        max_file_size=UPLOAD_LIMIT, show_error=False, theme=theme, css=CSS,
                        allowed_paths=[], ssr_mode=False, footer_links=[])
        except OSError as exc:  # Gradio's message names its own environment variable
            raise GanAnimError(f"cannot serve on {host}:{port} ({exc.strerror or 'port in use'}); "
                               "choose another --port or --host") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    url_host = f"[{host}]" if ":" in host else host
    return demo, f"http://{url_host}:{port}/", tmp


def stop(demo, tmp) -> None:
    """Close the server and remove its temporary folder."""
    try:
        demo.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def serve(photo=None, host: str = "127.0.0.1", port: int | None = None, open_browser: bool = True,
          **options) -> None:
    """Serve the studio until Ctrl-C, then close it and clean up (returns normally)."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        # a parent that ignores SIGINT (a background shell, a test runner) passes that on: Ctrl-C must stop it
        signal.signal(signal.SIGINT, signal.default_int_handler)
    demo, url, tmp = start(photo, host, port, **options)
    try:
        print(f"gan-anim studio: {url}  (Ctrl-C to stop)", file=sys.stderr, flush=True)
        if open_browser:
            webbrowser.open(url)
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("gan-anim studio: stopped", file=sys.stderr)
    finally:
        stop(demo, tmp)
