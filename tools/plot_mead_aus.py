"""AU tracks of the mead_clips videos as ``gan-anim aus clip.mp4`` estimates them; a PNG and a table.

    python tools/plot_mead_aus.py                  # writes docs/mead-au-tracks.png
    python tools/plot_mead_aus.py --method geometry -o /tmp/geometry.png

For each of the 16 clips (2 actors x 8 expressions, ``$GAN_ANIM_SHARED/data/mead_clips``)
the per-frame AUs of ``pipeline.au_timeline.video_aus`` (the rows of ``gan-anim aus``),
drawn with OpenCV (one panel per clip, the AUs each expression should raise). The table
gives each clip's mean of those AUs next to the same actor's neutral clip.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gan_anim.aus import AU_INDEX  # noqa: E402
from gan_anim.media.paths import atomic_output  # noqa: E402
from gan_anim.pipeline.au_timeline import estimate_video  # noqa: E402

CLIPS = Path(os.environ.get("GAN_ANIM_SHARED", ROOT.parent / "shared")) / "data" / "mead_clips"
ACTORS = ("M030", "W009")
EXPRESSIONS = ("neutral", "angry", "disgusted", "sad", "surprised", "happy", "fear", "contempt")
EXPECTED = {"angry": ("AU04",), "disgusted": ("AU09", "AU10"), "sad": ("AU15",),
            "surprised": ("AU01", "AU02", "AU26"), "happy": ("AU12",)}
SHOWN = ("AU01", "AU02", "AU04", "AU09", "AU10", "AU12", "AU15", "AU26")
COLOURS = {"AU01": (31, 119, 180), "AU02": (23, 190, 207), "AU04": (214, 39, 40),
           "AU09": (44, 160, 44), "AU10": (148, 103, 189), "AU12": (255, 127, 14),
           "AU15": (140, 86, 75), "AU26": (127, 127, 127)}   # RGB
PANEL_W, PANEL_H, PAD = 360, 170, 34


def clip_path(actor: str, expression: str) -> Path:
    level = 1 if expression == "neutral" else 3
    return CLIPS / f"{actor}_front_{expression}_level{level}_001.mp4"


def tracks(method: str) -> dict[tuple[str, str], np.ndarray]:
    """{(actor, expression): (frames, 17) AUs, NaN where no face}."""
    out = {}
    for actor in ACTORS:
        for expr in EXPRESSIONS:
            rows = estimate_video(clip_path(actor, expr), method=method)
            out[actor, expr] = np.array([r[4] if r[3] else np.full(17, np.nan) for r in rows], np.float32)
            print(f"  {actor} {expr}: {len(rows)} frames", file=sys.stderr, flush=True)
    return out


def draw_panel(track: np.ndarray, title: str, highlight: tuple[str, ...]) -> np.ndarray:
    """One clip: the SHOWN AUs over time on a 0..5 axis; expected AUs drawn thick."""
    img = np.full((PANEL_H + PAD, PANEL_W, 3), 255, np.uint8)
    x0, y0, w, h = 30, 22, PANEL_W - 40, PANEL_H - 10
    cv2.rectangle(img, (x0, y0), (x0 + w, y0 + h), (180, 180, 180), 1)
    for v in range(6):
        y = int(y0 + h - v / 5 * h)
        cv2.line(img, (x0, y), (x0 + w, y), (235, 235, 235), 1)
        cv2.putText(img, str(v), (x0 - 14, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (90, 90, 90), 1)
    cv2.putText(img, title, (x0, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    n = len(track)
    for name in SHOWN:
        v = track[:, AU_INDEX[name]]
        ok = np.isfinite(v)
        pts = np.stack([x0 + np.arange(n) / max(n - 1, 1) * w, y0 + h - np.clip(v, 0, 5) / 5 * h], 1)
        pts = pts[ok].round().astype(np.int32)
        thick = 2 if name in highlight else 1
        cv2.polylines(img, [pts], False, COLOURS[name], thick, cv2.LINE_AA)
    return img


def legend() -> np.ndarray:
    img = np.full((26, PANEL_W * len(ACTORS), 3), 255, np.uint8)
    for k, name in enumerate(SHOWN):
        x = 10 + k * 88
        cv2.line(img, (x, 13), (x + 22, 13), COLOURS[name], 3)
        cv2.putText(img, name, (x + 26, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def figure(data: dict, method: str) -> np.ndarray:
    rows = []
    for expr in EXPRESSIONS:
        rows.append(np.concatenate([draw_panel(data[a, expr], f"{a} {expr} ({method}; thick: expected)",
                                               EXPECTED.get(expr, ())) for a in ACTORS], 1))
    return np.concatenate([legend()] + rows, 0)


def summary(data: dict) -> list[str]:
    """Per clip with expected AUs: clip mean vs the actor's neutral clip mean."""
    lines = ["actor  expression  AU    clip mean  neutral mean  rises"]
    for actor in ACTORS:
        base = np.nanmean(data[actor, "neutral"], 0)
        for expr, names in EXPECTED.items():
            m = np.nanmean(data[actor, expr], 0)
            for name in names:
                a = AU_INDEX[name]
                lines.append(f"{actor}   {expr:<11} {name}  {m[a]:9.2f}  {base[a]:12.2f}  "
                             f"{'yes' if m[a] > base[a] + 0.3 else 'NO'}")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--method", choices=("model", "geometry"), default="model")
    p.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "mead-au-tracks.png")
    args = p.parse_args(argv)
    data = tracks(args.method)
    print("\n".join(summary(data)))
    with atomic_output(args.output) as tmp:
        ok, buf = cv2.imencode(".png", cv2.cvtColor(figure(data, args.method), cv2.COLOR_RGB2BGR))
        Path(tmp).write_bytes(buf.tobytes())
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
