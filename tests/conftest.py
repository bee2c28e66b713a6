"""Shared fixtures: paths to the real photos in ../shared/data, random test weights
(with the shipped landmark motion).

Without the shared photos their tests skip, except under CI=true, where a missing
folder fails the session (a CI run must not pass by skipping them).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "astronaut.jpg"
SHIPPED_SMALL = ROOT / "weights" / "gan-anim-small.pt"  # same config as PRESETS["small"]
SHARED_DATA = Path(os.environ.get("GAN_ANIM_SHARED", ROOT.parent / "shared")) / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real face photos); tests that need it skip when it is absent
    (under CI=true the session has already failed, see pytest_collection_modifyitems)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (set GAN_ANIM_SHARED)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def random_weights(tmp_path_factory) -> Path:
    """A small generator with random weights (mechanics, not quality) and the shipped small
    model's AU -> landmark motion: an edit warps the face as a trained model's does."""
    from gan_anim.aus import AU_NAMES
    from gan_anim.model import PRESETS, Generator, generator_state

    torch.manual_seed(0)
    gen = Generator(PRESETS["small"])
    blob = torch.load(SHIPPED_SMALL, map_location="cpu", weights_only=True)
    shipped = blob["generator"]
    gen.motion.load_state_dict({k: shipped[f"motion.{k}"].float() for k in ("mean", "basis")})
    gen.motion.set_rise({AU_NAMES.index(n): v for n, v in blob.get("motion_rise", {}).items()})
    gen.motion.set_fall({AU_NAMES.index(n): v for n, v in blob.get("motion_fall", {}).items()})
    assert gen.motion.basis.abs().max() > 0.01
    path = tmp_path_factory.mktemp("weights") / "random-small.pt"
    torch.save(generator_state(gen), path)
    return path


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _needs_shared_data(item) -> bool:
    module = getattr(item, "module", None)
    return "shared_data" in getattr(item, "fixturenames", ()) or hasattr(module, "SHARED_DATA")


def pytest_collection_modifyitems(config, items):
    """Under CI=true, a missing shared data folder fails the session when any collected test
    needs it. Tests marked ``cuda`` skip where torch sees no CUDA GPU
    (GPU_KIT_TEST_DEVICE=cpu dry-runs them on the CPU)."""
    if _ci() and not SHARED_DATA.is_dir() and any(_needs_shared_data(i) for i in items):
        raise pytest.UsageError(
            f"CI=true but the shared data folder {SHARED_DATA} is missing: the tests on real "
            "photos would be skipped. Put the data at ../shared/data or set GAN_ANIM_SHARED.")
    if torch.cuda.is_available() or os.environ.get("GPU_KIT_TEST_DEVICE") == "cpu":
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (run on the GPU machine: pytest -m cuda)")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)
