"""The wheel carries the default weights: build it, install it into a fresh virtual
environment outside the checkout, animate the example photo from another folder."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from conftest import EXAMPLE, ROOT


@pytest.mark.slow
def test_wheel_installs_and_animates_with_its_own_weights(tmp_path):
    # Build from a copy of the sources only (no build/ or egg-info in the checkout), offline.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("gan_anim", "weights"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-index",
                    "--no-build-isolation", "-w", str(dist), str(src)], check=True, cwd=tmp_path)
    (wheel,) = dist.glob("gan_anim-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {"gan_anim/weights/gan-anim-medium.pt", "gan_anim/weights/gan-anim-small.pt",
            "gan_anim/weights/au-estimator.npz",
            "gan_anim/estimation/au_calibration.json"} <= set(names)

    # A fresh environment: the wheel alone (no dependencies resolved), with this
    # environment's site-packages appended for torch, dlib, ... (their .pth files, among
    # them this checkout's editable install, are not read that way).
    env_dir = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    py = env_dir / "bin" / "python"
    site = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-index",
                    "--no-deps", str(wheel)], check=True)

    work = tmp_path / "elsewhere"
    work.mkdir()
    shutil.copy(EXAMPLE, work / "photo.jpg")
    env = {k: v for k, v in os.environ.items() if k not in ("GAN_ANIM_WEIGHTS", "PYTHONPATH")}
    where = subprocess.run([py, "-c", "import importlib; print(importlib.import_module('gan_anim.render.weights').find_weights())"],
                           check=True, capture_output=True, text=True, cwd=work, env=env).stdout.strip()
    assert Path(where).is_relative_to(Path(site)) and Path(where).name == "gan-anim-medium.pt", where
    result = subprocess.run([env_dir / "bin" / "gan-anim", "animate", "photo.jpg", "--to", "happy",
                             "--frames", "2", "-o", "smile.gif", "--quiet"],
                            capture_output=True, text=True, cwd=work, env=env)
    assert result.returncode == 0, result.stderr
    assert (work / "smile.gif").stat().st_size > 1000
