"""Decoding real photos in every common form, and atomic writing."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import EXAMPLE
from PIL import Image

from gan_anim.errors import GanAnimError
from gan_anim.media.images import read_image
from gan_anim.media.paths import atomic_output
from gan_anim.media.writer import FrameWriter


def test_exif_orientation_applied(tmp_path):
    image = read_image(EXAMPLE)[:, :400]  # not square, so a rotation shows in the shape
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rotated.jpg"
    Image.fromarray(image).save(path, exif=exif, quality=95)
    out = read_image(path)
    assert out.shape == (400, 512, 3)
    expected = np.rot90(image, k=-1)
    assert np.abs(out.astype(int) - expected).mean() < 3


def test_greyscale_rgba_and_16bit(shared_data, tmp_path):
    grey = next(p for p in sorted((shared_data / "facial_expressions" / "images").glob("*.jpg"))
                if Image.open(p).mode == "L")
    g = read_image(grey)
    assert g.ndim == 3 and g.shape[2] == 3 and np.array_equal(g[..., 0], g[..., 2])

    rgb = read_image(EXAMPLE)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    rgba[:10, :10, 3] = 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    assert out.shape == rgb.shape and np.array_equal(out[20:], rgb[20:])
    assert (out[:10, :10] == 255).all()  # transparent -> white

    sixteen = (g[..., 0].astype(np.uint16) * 257)
    Image.fromarray(sixteen).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    out = read_image(tmp_path / "g16.png")
    assert out.dtype == np.uint8 and np.abs(out[..., 0].astype(int) - g[..., 0]).max() <= 1


def test_atomic_output_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.gif"
    with pytest.raises(RuntimeError):
        with FrameWriter(target, fps=10) as w:
            w.write(read_image(EXAMPLE))
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(GanAnimError):
        with FrameWriter(tmp_path / "frames"):
            pass  # no frames
    assert list(tmp_path.iterdir()) == []
    with atomic_output(tmp_path / "x.txt") as tmp:
        tmp.write_text("done")
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test_read_image_reduced_decode_of_large_jpeg(tmp_path):
    """``min_side``: a large JPEG decodes at 1/2, 1/4 or 1/8 (longer side >= min_side), with
    the factor back to file pixels; small JPEGs and PNGs decode at full size."""
    from gan_anim.media.images import read_image_scaled

    image = read_image(EXAMPLE)
    big = np.ascontiguousarray(np.tile(image, (4, 6, 1)))          # 3072 x 2048
    Image.fromarray(big).save(tmp_path / "big.jpg", quality=90)
    Image.fromarray(big).save(tmp_path / "big.png")
    full = read_image(tmp_path / "big.jpg")
    assert full.shape == (2048, 3072, 3)
    for min_side, factor in ((700, 4), (1000, 2), (1536, 2), (1537, 1), (None, 1)):
        small, scale = read_image_scaled(tmp_path / "big.jpg", min_side)
        assert scale == factor and small.shape == (2048 // factor, 3072 // factor, 3)
        ref = np.asarray(Image.fromarray(full).reduce(factor), np.float64)
        assert np.abs(small - ref).mean() < 4.0                     # the same picture
    assert read_image(tmp_path / "big.png", min_side=700).shape == (2048, 3072, 3)
    (tmp_path / "notes.jpg").write_text("not a photo")
    with pytest.raises(GanAnimError, match="not an image"):
        read_image_scaled(tmp_path / "notes.jpg", 700)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_fast_decode_equals_pillow(orientation, tmp_path):
    """JPEGs are decoded by OpenCV (3x faster, GIL released): the same pixels as Pillow
    with ImageOps.exif_transpose, for every EXIF orientation."""
    from PIL import ImageOps

    image = read_image(EXAMPLE)[:, :400]
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "o.jpg"
    Image.fromarray(image).save(path, exif=exif, quality=90)
    with Image.open(path) as im:
        expected = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    assert np.array_equal(read_image(path), expected)


def test_jpeg_fast_decode_real_photos_and_truncation(shared_data, tmp_path):
    photos = sorted((shared_data / "facial_expressions" / "images").glob("*.jpg"))[:20]
    for p in photos + [EXAMPLE]:
        with Image.open(p) as im:
            assert np.array_equal(read_image(p), np.asarray(im.convert("RGB"))), p
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(photos[0].read_bytes()[:-200])  # no end-of-image marker: Pillow reports it
    with pytest.raises(GanAnimError, match="truncated or corrupt"):
        read_image(cut)


def test_mp4_colours_survive_the_yuv_conversion(tmp_path):
    """Frames go to x264 as YUV 4:2:0 converted by OpenCV (media.to_i420): decoded back they
    match the photo as closely as when ffmpeg converts RGB itself (the old path)."""
    from gan_anim.media.video_reader import VideoReader

    image = read_image(EXAMPLE)[:-1, :-3]  # odd sides: padded by one pixel, never resized
    decoded = {}
    for i420 in (True, False):
        out = tmp_path / f"{i420}.mp4"
        with FrameWriter(out, fps=10, i420=i420) as w:
            for _ in range(3):
                w.write(image)
        frames = list(VideoReader(out))
        assert len(frames) == 3 and frames[0].shape == (512, 510, 3)
        decoded[i420] = frames[1][:511, :509].astype(np.float64)
    psnr = {k: 10 * np.log10(255 ** 2 / np.mean((f - image) ** 2)) for k, f in decoded.items()}
    assert psnr[True] > 35 and psnr[True] > psnr[False] - 1.0  # crf 18, 4:2:0 chroma: ~38 dB
    for frame in decoded.values():
        assert np.abs((frame - image).mean((0, 1))).max() < 2.0  # no colour cast


def test_mp4_frames_come_back_in_order(tmp_path):
    """The writer reuses one YUV buffer: every frame must still reach the file as itself."""
    from gan_anim.media.video_reader import VideoReader

    image = read_image(EXAMPLE)
    frames = [np.clip(image.astype(int) + 40 * k - 80, 0, 255).astype(np.uint8) for k in range(5)]
    for background in (True, False):
        out = tmp_path / f"{background}.mp4"
        with FrameWriter(out, fps=10, background=background) as w:
            for f in frames:
                w.write(f, copy=False)
        back = list(VideoReader(out))
        assert len(back) == 5
        for k, f in enumerate(back):
            err = [np.abs(f.astype(int) - g).mean() for g in frames]
            assert int(np.argmin(err)) == k and err[k] < 3
