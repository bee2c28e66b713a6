"""gan-anim studio: slider-to-preview latency in a real browser, against a direct Renderer
call in the same run (not a test).

    python benchmarks/bench_studio.py                  # 1 MP and 12 MP, small and default weights
    python benchmarks/bench_studio.py --changes 20 --sizes 1

For each weights file and photo size (the example portrait upscaled in memory to a
square of about 1 or 12 MP, saved once as a JPEG to upload), the same changes of one AU
(``--au``: AU26 by default, a painted AU, so the generator runs; AU12 is warped only) are
timed three ways, median and 95th percentile over ``--changes`` values:

* ``renderer``: ``Renderer.render`` of the full-resolution frame (what an export does per
  frame; the baseline);
* ``session``: ``PhotoSession.set_au`` + ``render``, the studio's own work per change (the
  preview at most 1280 px, and the zoom);
* ``page``: in headless Chromium (Playwright, system Chromium): typing the value into the
  slider's box until the new preview image has loaded. Its excess over ``session``
  is the page's overhead (Gradio's queue, the JPEG, the fetch and the decode).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gan_anim.media.images import read_image  # noqa: E402
from gan_anim.render.renderer import FrameRender, Renderer  # noqa: E402
from gan_anim.studio.server import start, stop  # noqa: E402
from gan_anim.studio.session import Studio  # noqa: E402

WEIGHTS = {"small": ROOT / "weights" / "gan-anim-small.pt", "default": ROOT / "weights" / "gan-anim-medium.pt"}


def make_photo(megapixels: float, folder: Path) -> Path:
    """The example portrait upscaled (bicubic) to a square of ``megapixels``, as a JPEG."""
    image = read_image(ROOT / "examples" / "astronaut.jpg")
    side = round((megapixels * 1e6) ** 0.5)
    path = folder / f"astronaut-{megapixels:g}mp.jpg"
    big = cv2.resize(image, (side, side), interpolation=cv2.INTER_CUBIC)
    cv2.imwrite(str(path), cv2.cvtColor(big, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    return path


def values(n: int) -> list[float]:
    """Targets, each different from the one before."""
    return [round(0.5 + (i * 7 % 40) * 0.1, 2) for i in range(n)]


def stats(seconds: list[float]) -> str:
    ms = np.array(seconds) * 1000
    return f"{np.median(ms):7.0f} {np.percentile(ms, 95):7.0f}"


def time_direct(studio: Studio, photo: Path, changes: list[float], au: str) -> tuple[list, list]:
    """(Renderer seconds, session seconds) per change."""
    s = studio.open(photo)
    renderer, direct, session = Renderer(s.model, overlap=False), [], []
    for v in changes:
        s.set_au(au, v)
        t = time.perf_counter()
        next(renderer.render([FrameRender(s.image, [s.jobs[0].at(s.goal(0))])]))
        direct.append(time.perf_counter() - t)
        t = time.perf_counter()
        s.render()
        session.append(time.perf_counter() - t)
    return direct, session


def time_page(page, photo: Path, changes: list[float], au: str) -> list:
    """Seconds from typing each value into the AU's box to the new preview, loaded."""
    wait = ("([old]) => { const i = document.querySelector('#preview img'); "
            "return i && i.src && i.src !== old && i.complete && i.naturalWidth > 0; }")
    src = None
    page.locator("#photo input[type=file]").set_input_files(str(photo))
    page.wait_for_function(wait, arg=[src], timeout=300_000)
    box, out = page.locator(f"#slider-{au} input[type=number]"), []
    for v in changes:
        src = page.locator("#preview img").get_attribute("src")
        t = time.perf_counter()
        box.fill(f"{v:g}")
        box.press("Enter")
        page.wait_for_function(wait, arg=[src], timeout=60_000, polling=5)
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--changes", type=int, default=50)
    ap.add_argument("--sizes", default="1,12", help="photo sizes in megapixels")
    ap.add_argument("--weights", default="small,default")
    ap.add_argument("--au", default="AU26", help="the AU changed: AU26 (default) is painted, so the "
                    "generator runs; AU12 is warped only")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    print(f"{args.au} changes; {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads "
          f"{os.environ.get('OMP_NUM_THREADS', 'default')}, load average {os.getloadavg()[0]:.1f} at start")
    changes = values(args.changes)
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        photos = {mp: make_photo(float(mp), Path(tmp)) for mp in args.sizes.split(",")}
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        print(f"{'weights':<8} {'photo':>6} | {'renderer':>15} | {'session':>15} | {'page':>15} | overhead")
        print(f"{'':<8} {'':>6} | {'median     p95':>15} | {'median     p95':>15} | {'median     p95':>15} | page - session (ms)")
        for name in args.weights.split(","):
            studio = Studio(weights=str(WEIGHTS[name]))
            demo, url, folder = start(studio=studio)
            try:
                for mp, photo in photos.items():
                    direct, session = time_direct(studio, photo, changes, args.au)
                    page = browser.new_page(viewport={"width": 1400, "height": 1000})
                    page.goto(url)
                    shown = time_page(page, photo, changes, args.au)
                    page.close()
                    print(f"{name:<8} {mp + ' MP':>6} | {stats(direct)} | {stats(session)} | {stats(shown)} | "
                          f"{(np.median(shown) - np.median(session)) * 1000:6.0f}", flush=True)
            finally:
                stop(demo, folder)
        browser.close()
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
