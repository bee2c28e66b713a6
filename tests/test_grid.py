"""The single-AU control grid with the shipped weights."""
from __future__ import annotations

import numpy as np
from click.testing import CliRunner
from PIL import Image

from conftest import EXAMPLE
from gan_anim.animate import Animator
from gan_anim.cli import main
from gan_anim.faces import align, crop, detect_faces
from gan_anim.grid import GRID_AUS, GRID_LEVELS, GRID_PRESETS, grid_targets, render_cells
from gan_anim.media import read_image


def test_grid_zero_column_stays_close_and_edits_grow():
    image = read_image(EXAMPLE)
    animator = Animator(device="cpu")
    face = detect_faces(image)[0]
    job = animator.face_jobs(image, [face], None, None)[0]
    targets = grid_targets(job.start)
    assert np.allclose(targets[:, 0], job.start)  # column 0 is the face's own expression
    cells = render_cells(animator, image, job, targets.reshape(-1, 17), 96)
    cells = cells.reshape(len(GRID_AUS), len(GRID_LEVELS), 96, 96, 3).astype(float)
    original = crop(image, align(face.landmarks, 96), 96).astype(float)
    diffs = [np.abs(cells[:, c] - original).mean() for c in range(len(GRID_LEVELS))]
    assert diffs[0] < 3.0 and diffs[-1] > diffs[0]


def test_grid_command_writes_png(tmp_path):
    out = tmp_path / "grid.png"
    result = CliRunner().invoke(main, ["grid", str(EXAMPLE), "-o", str(out), "--cell", "48"])
    assert result.exit_code == 0, result.stderr
    with Image.open(out) as im:
        cols = 1 + max(len(GRID_LEVELS), len(GRID_PRESETS))
        assert im.size == (150 + cols * 48, 2 * 24 + (len(GRID_AUS) + 1) * 48)
    result = CliRunner().invoke(main, ["grid", str(EXAMPLE), "-o", str(EXAMPLE)])
    assert result.exit_code != 0 and "is the input file" in result.stderr
