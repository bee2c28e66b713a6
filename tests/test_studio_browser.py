"""``gan-anim studio`` in a real headless browser: Debian's Chromium driven by Playwright.

Without Chromium the test skips (install the Debian package ``chromium``); under CI=true
it fails instead. GAN_ANIM_STUDIO_SCREENSHOT=docs/studio.png also writes the README's
screenshot.
"""
from __future__ import annotations

import io
import os
import shutil
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLE, ROOT, SHIPPED_SMALL, _ci
from PIL import Image

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        message = ("Chromium not found: install the Debian package chromium "
                   "(apt-get install -y chromium) to run the studio's browser test")
        if _ci():
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def server():
    from gan_anim.studio.server import start, stop

    demo, url, tmp = start(weights=SHIPPED_SMALL)
    yield url
    stop(demo, tmp)
    assert not tmp.exists()


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read()


def shown(page, selector: str, old: str | None = None, timeout: float = 60_000) -> tuple[str, np.ndarray]:
    """(src, RGB pixels) of the image in ``selector`` once its src differs from ``old``."""
    page.wait_for_function(
        "([sel, old]) => { const i = document.querySelector(sel); "
        "return i && i.src && i.src !== old && i.complete; }", arg=[selector, old], timeout=timeout)
    src = page.locator(selector).get_attribute("src")
    return src, np.asarray(Image.open(io.BytesIO(fetch(src))).convert("RGB"))


def mouth_box(image: np.ndarray) -> tuple[int, int, int, int]:
    from gan_anim.faces.detect import detect_faces

    lm = detect_faces(image)[0].landmarks[48:68]
    (x0, y0), (x1, y1) = lm.min(0).astype(int), lm.max(0).astype(int)
    return x0, y0, x1 + 1, y1 + 1


def test_studio_page_edits_and_exports(browser, server, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(server)
    page.locator("#photo input[type=file]").set_input_files(str(EXAMPLE))
    src, before = shown(page, "#preview img")
    original = np.asarray(Image.open(EXAMPLE).convert("RGB"))
    assert before.shape == original.shape  # no edit yet: the photo (as a JPEG)
    assert np.abs(before.astype(int) - original).mean() < 2

    box = page.locator("#slider-AU12 input[type=number]")  # the face's own AU12 is 5: the smile goes
    box.fill("1")
    box.press("Enter")
    _, after = shown(page, "#preview img", old=src)
    x0, y0, x1, y1 = mouth_box(original)
    diff = np.abs(after.astype(int) - before).max(axis=2)
    assert diff[y0:y1, x0:x1].mean() > 3, "the mouth did not move"
    assert diff[: y0 - 120].max() == 0, "pixels far above the face changed"  # JPEG blocks alike
    command = page.locator("#command textarea").input_value()
    assert "--to AU12=1" in command and command.startswith("gan-anim animate astronaut.jpg")

    page.locator("#export").click()
    page.wait_for_selector("#download a", timeout=120_000)
    href = page.locator("#download a").first.get_attribute("href")
    gif = Image.open(io.BytesIO(fetch(href if href.startswith("http") else server.rstrip("/") + href)))
    assert gif.format == "GIF" and gif.n_frames == 30 and gif.size == (512, 512)

    shot = tmp_path / "studio.png"
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(shot))
    im = Image.open(shot).convert("RGB")
    assert im.size == (1400, 1000)
    if os.environ.get("GAN_ANIM_STUDIO_SCREENSHOT"):
        im = im.resize((1050, 750), Image.Resampling.LANCZOS)
        im.quantize(colors=192, method=Image.Quantize.MEDIANCUT).save(
            ROOT / os.environ["GAN_ANIM_STUDIO_SCREENSHOT"], optimize=True)
    page.close()
