"""Measures of the quality benchmark: landmarks re-detected on an edited photo, the face's
geometry in eye distances, masks, colour, sharpness and codec round trips."""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gan_anim.faces.detect import Face, detect_faces, landmarks  # noqa: E402
from gan_anim.media.writer import FrameWriter  # noqa: E402


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / union if union > 0 else 0.0


def redetect(image: np.ndarray, face: Face) -> tuple[np.ndarray, bool]:
    """dlib landmarks of ``face`` on ``image``; the input box when detection does not find it."""
    found = [f for f in detect_faces(image) if iou(f.box, face.box) > 0.3]
    if not found:
        return landmarks(image, face.box), False
    return max(found, key=lambda f: iou(f.box, face.box)).landmarks, True


def face_frame(lm: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Points in the frame of ``ref``'s eyes: eye centre at 0, eyes level, y UP, eye distance 1."""
    lm, ref = np.asarray(lm, np.float64), np.asarray(ref, np.float64)
    eye_l, eye_r = ref[36:42].mean(0), ref[42:48].mean(0)
    axis = eye_r - eye_l
    iod = float(np.hypot(*axis))
    ux = axis / iod
    rel = lm - (eye_l + eye_r) / 2
    return np.stack([rel @ ux, -(rel @ np.array([-ux[1], ux[0]]))], 1) / iod


def geometry(lm: np.ndarray, ref: np.ndarray) -> dict:
    """Expression measures in eye distances of ``ref`` (the input's landmarks)."""
    p = face_frame(lm, ref)
    eyes_y = p[36:48, 1].mean()
    return {
        "mouth_width": float(np.hypot(*(p[54] - p[48]))),
        "lip_gap": float(np.hypot(*(p[66] - p[62]))),
        "brow_height": float(p[17:27, 1].mean() - eyes_y),
        "inner_brow_height": float(p[[21, 22], 1].mean() - eyes_y),
        "inner_brow_gap": float(p[22, 0] - p[21, 0]),
        # inner ends over outer ends: up in sad (oblique brows), down in anger (a V)
        "brow_slant": float(p[[21, 22], 1].mean() - p[[17, 26], 1].mean()),
        "corner_height": float(p[[48, 54], 1].mean() - (p[51, 1] + p[57, 1]) / 2),
    }


def geometry_change(lm_out: np.ndarray, lm_in: np.ndarray) -> dict:
    g_in, g_out = geometry(lm_in, lm_in), geometry(lm_out, lm_in)
    return {
        "mouth_ratio": g_out["mouth_width"] / g_in["mouth_width"],
        "lip_gap_change": g_out["lip_gap"] - g_in["lip_gap"],
        "brow_raise": g_out["brow_height"] - g_in["brow_height"],
        "inner_brow_drop": g_in["inner_brow_height"] - g_out["inner_brow_height"],
        "corner_drop": g_in["corner_height"] - g_out["corner_height"],
        "inner_brow_closer": g_in["inner_brow_gap"] - g_out["inner_brow_gap"],
        "brow_slant_change": g_out["brow_slant"] - g_in["brow_slant"],
    }


def box_view(image: np.ndarray, box) -> np.ndarray:
    x0, y0, x1, y1 = box
    return image[y0:y1, x0:x1]


def grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)


def grey_change(a: np.ndarray, b: np.ndarray, mask=None) -> float:
    """Mean absolute difference in grey levels (over ``mask`` if given)."""
    d = np.abs(grey(a).astype(np.float32) - grey(b))
    return float(d[mask].mean()) if mask is not None else float(d.mean())


def mouth_mask(shape, lms, eye: float) -> np.ndarray:
    """Union of the convex hulls of landmarks 48-59 of each of ``lms``, dilated by 0.1 eye distance."""
    mask = np.zeros(shape[:2], np.uint8)
    for lm in lms:
        cv2.fillConvexPoly(mask, cv2.convexHull(np.round(lm[48:60]).astype(np.int32)), 1)
    r = round(0.1 * eye)
    if r > 0:
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    return mask.astype(bool)


def brow_mask(shape, lm: np.ndarray) -> np.ndarray:
    """Bounding box of the brows (17-26), extended down to the top of the eyes."""
    mask = np.zeros(shape[:2], bool)
    x0, y0 = np.floor(lm[17:27].min(0)).astype(int)
    x1 = int(np.ceil(lm[17:27, 0].max()))
    y1 = int(np.ceil(lm[[37, 38, 43, 44], 1].min()))
    mask[max(y0, 0):max(y1, y0 + 1), max(x0, 0):x1 + 1] = True
    return mask


def lab(image: np.ndarray) -> np.ndarray:
    """CIE Lab, L 0..100, a* b* in their usual units."""
    return cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


def bad_colour_share(inp: np.ndarray, out: np.ndarray, box, mouth: np.ndarray, radius: int = 0) -> float:
    """Share of the face box whose colour no real expression produces (the table's definition).

    ``radius`` > 0 compares each output pixel with the input's colours within that many
    pixels (the least a*, b* and the most chroma there) instead of the same pixel only, so
    that moving a boundary (face over a blue collar) is not counted as paint.
    """
    a, b = lab(box_view(inp, box)), lab(box_view(out, box))
    ref_a, ref_b, ref_chroma = a[..., 1], a[..., 2], np.hypot(a[..., 1], a[..., 2])
    if radius > 0:
        disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        ref_a, ref_b = cv2.erode(ref_a, disk), cv2.erode(ref_b, disk)
        ref_chroma = cv2.dilate(ref_chroma, disk)
    chroma_gain = np.hypot(b[..., 1], b[..., 2]) - ref_chroma
    bad = ((b[..., 1] - ref_a < -5) & (b[..., 1] < -2)) | ((b[..., 2] - ref_b < -5) & (b[..., 2] < -2)) | \
          ((chroma_gain > 25) & ~box_view(mouth, box))
    return float(bad.mean())


def laplacian_var(image: np.ndarray, box) -> float:
    return float(cv2.Laplacian(grey(box_view(image, box)), cv2.CV_64F).var())


def gif_roundtrip(image: np.ndarray) -> np.ndarray:
    """``image`` written through the project's GIF writer (one palette) and read back."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "q.gif"
        with FrameWriter(path) as writer:
            writer.write(image)
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))


# ---------------------------------------------------------------- expressions that read

def inner_mouth_ratio(lm: np.ndarray) -> float:
    """Inner-lip height / inner-lip width: |62-66| / |60-64| (an oval open mouth is >= 0.5)."""
    width = float(np.hypot(*(lm[64] - lm[60])))
    return float(np.hypot(*(lm[66] - lm[62]))) / max(width, 1e-6)


def eye_aspect(lm: np.ndarray) -> float:
    """Eye aspect ratio, both eyes: (|37-41| + |38-40|) / (2 |36-39|), averaged."""
    def one(e):
        return (np.hypot(*(e[1] - e[5])) + np.hypot(*(e[2] - e[4]))) / (2 * max(np.hypot(*(e[0] - e[3])), 1e-6))
    return float((one(lm[36:42]) + one(lm[42:48])) / 2)


def grown_box(box, shape, grow: float) -> tuple[int, int, int, int]:
    """``box`` grown by ``grow`` x its own size (half on each side), clipped to ``shape``."""
    x0, y0, x1, y1 = box
    dx, dy = grow * (x1 - x0) / 2, grow * (y1 - y0) / 2
    h, w = shape[:2]
    return (max(int(x0 - dx), 0), max(int(y0 - dy), 0), min(int(np.ceil(x1 + dx)), w),
            min(int(np.ceil(y1 + dy)), h))


def outside_change(inp: np.ndarray, out: np.ndarray, box, grow: float,
                   above_chin: bool = False) -> tuple[float, float]:
    """(mean absolute grey change outside ``box`` grown by ``grow`` x its size, share of the
    image that is outside); (nan, 0) when nothing is outside. ``above_chin``: only rows above
    the box's bottom (temples, hair, background beside the head; not the dropped jaw's neck)."""
    x0, y0, x1, y1 = grown_box(box, inp.shape, grow)
    mask = np.ones(inp.shape[:2], bool)
    mask[y0:y1, x0:x1] = False
    if above_chin:
        mask[int(box[3]):] = False
    if not mask.any():
        return float("nan"), 0.0
    return grey_change(inp, out, mask), float(mask.mean())


def lips_mask(shape, lms, grow_px: float) -> np.ndarray:
    """Union of the convex hulls of the outer lips (48-59) of each of ``lms``, grown by ``grow_px``."""
    mask = np.zeros(shape[:2], np.uint8)
    for lm in lms:
        cv2.fillConvexPoly(mask, cv2.convexHull(np.round(lm[48:60]).astype(np.int32)), 1)
    r = int(round(grow_px))
    if r > 0:
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    return mask.astype(bool)


def dark_paint_share(out: np.ndarray, warped: np.ndarray, lips: np.ndarray, box, step: float) -> float:
    """Pixels the paint darkened by more than ``step`` grey levels (``out`` against the same edit
    warped only) outside ``lips``, as a share of the face box's area."""
    dark = (grey(out).astype(np.float32) - grey(warped)) < -step
    x0, y0, x1, y1 = box
    return float((dark & ~lips).sum()) / max((x1 - x0) * (y1 - y0), 1)


def near_black_lips(image: np.ndarray, lm: np.ndarray, box, level: float = 0.35) -> float:
    """Share of the outer lips' hull (48-59 of ``lm``) darker than ``level`` x the face box's
    median grey: a smile's teeth and a closed mouth's line stay above it, a black slit does not."""
    g = grey(image).astype(np.float32)
    x0, y0, x1, y1 = box
    mask = np.zeros(g.shape, np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(lm[48:60]).astype(np.int32)), 1)
    return float((g[mask > 0] < level * np.median(g[y0:y1, x0:x1])).mean()) if mask.any() else 0.0
