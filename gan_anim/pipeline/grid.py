"""Single-AU control grid, as in the GANimation paper's figure.

Rows: one AU each (plus a row of presets); columns: intensities 0, 0.33, 0.66, 1
added on top of the face's own expression (0 leaves the face as it is). Each
cell is the full-resolution blended result, cut around the face.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from .. import aus as au
from ..errors import GanAnimError
from ..faces.align import align, crop
from ..faces.detect import detect_faces
from ..media.images import read_image
from ..media.paths import atomic_output, check_output_path
from ..render.renderer import FrameRender, Renderer
from .photo import Animator, FaceJob, select_faces

GRID_AUS = ("AU01", "AU02", "AU04", "AU05", "AU06", "AU09", "AU12", "AU15", "AU20", "AU25", "AU26", "AU45")
GRID_LEVELS = (0.0, 0.33, 0.66, 1.0)
GRID_PRESETS = ("neutral", "happy", "surprise", "sad", "anger", "disgust", "fear")


def grid_targets(start: np.ndarray, names=GRID_AUS, levels=GRID_LEVELS) -> np.ndarray:
    """(len(names), len(levels), 17) targets: start with AU k raised by level x (5 - start_k)."""
    out = np.repeat(np.repeat(start[None, None], len(names), 0), len(levels), 1).astype(np.float32)
    for r, name in enumerate(names):
        k = au.AU_INDEX[au.canonical_au(name)]
        for c, level in enumerate(levels):
            out[r, c, k] = start[k] + level * (au.AU_SCALE - start[k])
    return out


def render_cells(animator: Animator, image: np.ndarray, job: FaceJob, targets: np.ndarray,
                 cell: int) -> np.ndarray:
    """Blend each target into the full photo and cut the face out at ``cell`` px: (N, cell, cell, 3)."""
    view = align(job.face.landmarks, cell)
    frames = (FrameRender(image, [job.at(t)]) for t in targets)
    return np.stack([crop(out, view, cell) for out in Renderer(animator.model).render(frames)])


def au_grid(animator: Animator, photo, output, face: str = "largest", cell: int = 128,
            names=GRID_AUS, levels=GRID_LEVELS, presets=GRID_PRESETS, start: str | None = None) -> Image.Image:
    """Write the grid PNG for one face of ``photo``; returns the image."""
    out_path = check_output_path(output, [photo])
    image = read_image(photo)
    faces = detect_faces(image)
    if not faces:
        raise GanAnimError(f"{photo}: no face found")
    faces = select_faces(faces, face)
    job = animator.face_jobs(image, faces[:1], None, start)[0]
    targets = grid_targets(job.start, names, levels).reshape(-1, len(au.AU_NAMES))
    preset_targets = np.stack([au.au_dict_to_vector(au.PRESETS[p]) for p in presets])
    cells = render_cells(animator, image, job, np.concatenate([targets, preset_targets]), cell)
    au_cells = cells[:len(targets)].reshape(len(names), len(levels), cell, cell, 3)
    preset_cells = cells[len(targets):]

    original = crop(image, align(job.face.landmarks, cell), cell)
    label_w, head_h = 150, 24
    cols = 1 + max(len(levels), len(presets))  # first column: the unedited face
    canvas = Image.new("RGB", (label_w + cols * cell, 2 * head_h + (len(names) + 1) * cell), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((label_w + 4, 6), "input", fill="black")
    for c, level in enumerate(levels):
        draw.text((label_w + (c + 1) * cell + 4, 6), f"+{level:.2f}", fill="black")
    for r, name in enumerate(names):
        y = head_h + r * cell
        draw.text((6, y + cell // 2 - 12), f"{name}\n{au.AU_DESCRIPTIONS[name]}", fill="black")
        canvas.paste(Image.fromarray(original), (label_w, y))
        for c in range(len(levels)):
            canvas.paste(Image.fromarray(au_cells[r, c]), (label_w + (c + 1) * cell, y))
    y = 2 * head_h + len(names) * cell
    draw.text((6, y + cell // 2 - 6), "presets", fill="black")
    canvas.paste(Image.fromarray(original), (label_w, y))
    for c, p in enumerate(presets):
        canvas.paste(Image.fromarray(preset_cells[c]), (label_w + (c + 1) * cell, y))
        draw.text((label_w + (c + 1) * cell + 4, y - head_h + 6), p, fill="black")
    with atomic_output(out_path) as tmp:
        canvas.save(tmp, format="PNG")
    return canvas
