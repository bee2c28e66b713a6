"""The single-AU control grid with the shipped weights."""
from __future__ import annotations

import numpy as np
from click.testing import CliRunner
from conftest import EXAMPLE
from PIL import Image

from gan_anim import aus as au
from gan_anim.cli import main
from gan_anim.faces.align import align, crop
from gan_anim.faces.detect import detect_faces
from gan_anim.media.images import read_image
from gan_anim.pipeline.grid import (
    GRID_AUS,
    GRID_LEVELS,
    GRID_PRESETS,
    grid_targets,
    render_cells,
)
from gan_anim.pipeline.photo import Animator

# The face region each AU's row must change most (AUs whose fitted motion is clear).
AU_REGION = {"AU01": "brows", "AU02": "brows", "AU04": "brows", "AU09": "mouth", "AU15": "mouth",
             "AU20": "mouth", "AU25": "mouth", "AU26": "mouth", "AU45": "eyes"}


def test_grid_rows_move_their_au_and_columns_grow():
    """Column 0 is the input face bit for bit; along each row the edit grows with the level;
    each row changes the face where its AU acts (so the rows follow GRID_AUS)."""
    image = read_image(EXAMPLE)
    animator = Animator(device="cpu")
    face = detect_faces(image)[0]
    job = animator.face_jobs(image, [face], None, None)[0]
    targets = grid_targets(job.start)
    assert np.allclose(targets[:, 0], job.start)  # column 0 is the face's own expression
    cell = 96
    cells = render_cells(animator, image, job, targets.reshape(-1, 17), cell)
    cells = cells.reshape(len(GRID_AUS), len(GRID_LEVELS), cell, cell, 3).astype(float)
    view = align(face.landmarks, cell)
    original = crop(image, view, cell).astype(float)
    assert np.array_equal(cells[:, 0], np.broadcast_to(original, cells[:, 0].shape))

    lm = face.landmarks @ view[:, :2].T + view[:, 2]  # landmarks in cell pixels
    yy, xx = np.mgrid[:cell, :cell]

    def near(points, r=0.08 * cell):
        return np.any([(xx - x) ** 2 + (yy - y) ** 2 < r * r for x, y in points], axis=0)

    regions = {"brows": near(lm[17:27]), "eyes": near(lm[36:48]), "mouth": near(lm[48:68])}
    checked = 0
    for r, name in enumerate(GRID_AUS):
        if au.AU_SCALE - job.start[au.AU_INDEX[name]] < 1.0:
            continue  # already near 5 on this face (the astronaut smiles: AU12): nothing to raise
        diff = [np.abs(cells[r, c] - cells[r, 0]).mean(2) for c in range(len(GRID_LEVELS))]
        means = [d.mean() for d in diff]
        assert all(b > a for a, b in zip(means, means[1:])), (name, means)
        if name in AU_REGION:
            where = {k: diff[-1][m].mean() for k, m in regions.items()}
            assert max(where, key=where.get) == AU_REGION[name] and where[AU_REGION[name]] > 2, (name, where)
            checked += 1
    assert checked >= 7


def test_grid_command_writes_png(tmp_path):
    """The PNG holds rows x columns of cells, each showing the face: column 0 the unedited
    crop bit for bit, no blank cell, and cells that change along a row whose AU moves pixels."""
    out = tmp_path / "grid.png"
    cell = 48
    result = CliRunner().invoke(main, ["grid", str(EXAMPLE), "-o", str(out), "--cell", str(cell)])
    assert result.exit_code == 0, result.stderr
    cols = 1 + max(len(GRID_LEVELS), len(GRID_PRESETS))
    with Image.open(out) as im:
        assert im.size == (150 + cols * cell, 2 * 24 + (len(GRID_AUS) + 1) * cell)
        grid = np.asarray(im.convert("RGB")).astype(float)
    image = read_image(EXAMPLE)
    original = crop(image, align(detect_faces(image)[0].landmarks, cell), cell).astype(float)
    # the cells as au_grid lays them out: a 150 px label column, a 24 px header above the
    # AU rows and another above the preset row
    tops = [24 + r * cell for r in range(len(GRID_AUS))] + [48 + len(GRID_AUS) * cell]
    rows = [[grid[y:y + cell, 150 + c * cell:150 + (c + 1) * cell] for c in range(1 + n)]
            for y, n in zip(tops, [len(GRID_LEVELS)] * len(GRID_AUS) + [len(GRID_PRESETS)])]
    for name, cells in zip(GRID_AUS + ("presets",), rows):
        assert np.array_equal(cells[0], original), name
        for c, x in enumerate(cells):
            assert x.std() > 0.5 * original.std(), (name, c)            # not blank
            assert np.corrcoef(x.ravel(), original.ravel())[0, 1] > 0.8, (name, c)  # the face
    # brows and jaw move with their AU: each level's cell differs from the one before
    for name in ("AU01", "AU26"):
        cells = rows[GRID_AUS.index(name)][1:]
        steps = [np.abs(b - a).mean() for a, b in zip(cells, cells[1:])]
        assert min(steps) > 1.0, (name, steps)
    presets = rows[-1][1:]
    assert min(np.abs(b - a).mean() for a, b in zip(presets, presets[1:])) > 1.0
    result = CliRunner().invoke(main, ["grid", str(EXAMPLE), "-o", str(EXAMPLE)])
    assert result.exit_code != 0 and "is the input file" in result.stderr
