"""Reading photos: any format Pillow reads, EXIF orientation applied, as RGB uint8."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import GanAnimError
from .paths import check_input_file

# The largest photo read (width x height): Pillow's decompression-bomb limit, which it
# enforces itself on open above this; checked here for every format and decoder.
MAX_PIXELS = 2 * Image.MAX_IMAGE_PIXELS


def read_image(path, min_side: int | None = None) -> np.ndarray:
    """Decode a photo to RGB uint8 (H, W, 3): EXIF orientation applied; greyscale,
    palette, RGBA (on white) and 16-bit converted. The file is only read.

    ``min_side``: a JPEG whose longer side is at least twice this is decoded at 1/2, 1/4
    or 1/8 size (DCT scaling, several times faster) with its longer side still at least
    ``min_side``: for detection-only uses; ``read_image_scaled`` also gives the factor.
    """
    return read_image_scaled(path, min_side)[0]


def read_image_scaled(path, min_side: int | None = None) -> tuple[np.ndarray, float]:
    """``read_image`` and the factor from its pixels to the file's (1.0 at full size)."""
    path = check_input_file(path, "photo")
    try:
        with Image.open(path) as im:  # reads the header only
            if im.width * im.height > MAX_PIXELS:
                raise GanAnimError(f"{path}: {im.width}x{im.height} is over the limit of "
                                   f"{MAX_PIXELS / 1e6:.0f} megapixels")
            full = max(im.size)
            reduce = im.format == "JPEG" and bool(min_side) and full >= 2 * min_side
            if im.format == "JPEG" and im.mode in ("RGB", "L") and not reduce:
                fast = _decode_jpeg(path)
                if fast is not None:
                    return fast, 1.0
            if reduce:
                k = max(f for f in (1, 2, 4, 8) if full / f >= min_side)
                im.draft("RGB", (im.size[0] // k, im.size[1] // k))
            im = ImageOps.exif_transpose(im)
            im.load()
    except Image.DecompressionBombError:  # Pillow's own check, on open
        raise GanAnimError(f"{path}: over the limit of {MAX_PIXELS / 1e6:.0f} megapixels") from None
    except UnidentifiedImageError:
        raise GanAnimError(f"{path}: not an image (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise GanAnimError(f"{path}: truncated or corrupt image ({exc})") from None
    return to_rgb(im), full / max(im.size)


def _decode_jpeg(path: Path) -> np.ndarray | None:
    """A complete JPEG decoded by OpenCV (EXIF orientation applied, as by Pillow; same
    pixels, same libjpeg-turbo): 3x faster than Pillow, and in one call that releases the
    GIL, so it runs beside the model loading (``animate``). None for a file that does not
    end in an end-of-image marker: Pillow then reports it as truncated."""
    import cv2

    data = path.read_bytes()
    if data.rstrip(b"\0")[-2:] != b"\xff\xd9":
        return None
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def to_rgb(im: Image.Image) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, np.float64)
        top = 65535.0 if a.max() > 255 else 255.0
        a = np.clip(a / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(a[..., None], 3, axis=2))
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im)
    return np.ascontiguousarray(np.asarray(im.convert("RGB"), np.uint8))














