"""Reading a training set packed in one file (the GPU kit's ``gpu-pack/faces128.pack``).

``pack_writer.write_pack`` turns a folder written by ``gan-anim prepare`` into one ``.npz``
(readable with ``np.load(allow_pickle=False)``; the JPEG bytes are stored, the small arrays
deflated) that holds, in the folder's order (train.txt, then test.txt):

* ``jpeg``: every face's JPEG bytes, one after the other (uint8), and ``offsets``
  (N+1, int64): face k is ``jpeg[offsets[k]:offsets[k+1]]``. Faces whose three
  channels are equal (most of facial_expressions) are 1-channel JPEGs;
* ``aus``: (N, 17) float32 on 0..5, the values of ``aus.csv`` (``load_pack`` divides by 5);
* ``landmarks``: (N, 68, 2) float16, aligned, in crop-side units (0..1), computed by
  ``data.read_landmarks`` from ``manifest.jsonl`` (absent if the folder has none);
* ``names``: the image names, UTF-8, one per line (uint8); ``split``: (N,) uint8,
  0 = train, 1 = test; plus ``format``, ``size``, ``quality`` and ``au_names``;
* optionally ``person`` (N,) int32: a person id per face (-1: unknown), so photos of the
  same person in other expressions pair up (the pair loss), and ``source`` (N,) uint8
  indices into ``source_names`` (``make gpu-pack``: 0 shared, 1 cfee).

``load_pack`` decodes one split (threads; ``cv2`` releases the GIL) into the same
``FaceDataset`` that ``data.load_dataset`` gives for the folder, which hands pack files
to it: ``gan-anim train --data gpu-pack/faces128.pack`` works like ``--data data/shipped``.
Nothing here imports dlib.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from ..aus import AU_NAMES, AU_SCALE
from ..errors import GanAnimError
from .faceset import FaceDataset, resize_square
from .runtime import thread_count

PACK_FORMAT = "gan-anim-pack-v1"
SPLITS = ("train", "test")


def is_pack(path) -> bool:
    """True for an existing file that looks like a pack (a zip, i.e. an .npz)."""
    p = Path(path)
    if not p.is_file():
        return False
    with open(p, "rb") as fh:
        return fh.read(4) == b"PK\x03\x04"


def decode_face(data: np.ndarray) -> np.ndarray:
    """BGR uint8 (H, W, 3) of JPEG bytes (a 1-channel JPEG comes back with 3 equal channels)."""
    import cv2

    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None:
        raise GanAnimError("a face in the pack is not a readable JPEG")
    return img


def read_pack(path) -> dict:
    """The pack's arrays (checked), with ``names`` as a list of str."""
    p = Path(path)
    if not p.is_file():
        raise GanAnimError(f"{p}: no such pack file")
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:
        raise GanAnimError(f"{p}: not a readable pack file ({type(exc).__name__})") from None
    need = ("format", "size", "names", "split", "aus", "offsets", "jpeg")
    missing = [k for k in need if k not in arrays]
    if missing or str(arrays.get("format", "")) != PACK_FORMAT:
        raise GanAnimError(f"{p}: not a gan-anim pack (format {PACK_FORMAT}; missing {missing})")
    names = bytes(arrays["names"]).decode("utf-8").split("\n") if arrays["names"].size else []
    n = len(names)
    if "au_names" in arrays and [str(a) for a in arrays["au_names"]] != list(AU_NAMES):
        raise GanAnimError(f"{p}: made with a different AU list")
    if (arrays["split"].shape != (n,) or arrays["aus"].shape != (n, len(AU_NAMES))
            or arrays["offsets"].shape != (n + 1,) or int(arrays["offsets"][-1]) != arrays["jpeg"].size
            or ("landmarks" in arrays and arrays["landmarks"].shape != (n, 68, 2))
            or any(k in arrays and arrays[k].shape != (n,) for k in ("person", "source"))):
        raise GanAnimError(f"{p}: inconsistent pack (truncated or damaged?)")
    arrays["names"] = names
    return arrays


def load_pack(path, image_size: int, split: str = "train", min_images: int = 1,
              workers: int | None = None) -> FaceDataset:
    """One split of a pack as a ``FaceDataset`` (faces resized by ``resize_square`` if needed)."""
    if split not in SPLITS:
        raise GanAnimError(f"split must be train or test, not {split!r}")
    arrays = read_pack(path)
    idx = np.flatnonzero(arrays["split"] == SPLITS.index(split))
    if len(idx) < max(1, min_images):
        if len(idx) == 0:
            raise GanAnimError(f"{path}: the {split} split lists no images")
        raise GanAnimError(f"{path}: {len(idx)} {split} images, too few for one batch of "
                           f"{min_images}; add images or lower --batch-size")
    jpeg, offsets = arrays["jpeg"], arrays["offsets"]
    stored = int(arrays["size"])
    out = np.empty((len(idx), 3, image_size, image_size), np.uint8)

    def load(k: int) -> None:
        i = idx[k]
        img = resize_square(decode_face(jpeg[offsets[i]:offsets[i + 1]]), image_size)
        out[k] = img[:, :, ::-1].transpose(2, 0, 1)  # BGR HWC -> RGB CHW

    with ThreadPoolExecutor(thread_count(workers)) as pool:
        list(pool.map(load, range(len(idx)), chunksize=256))
    notes = []
    if stored != image_size:
        notes.append(f"resized {len(idx)} {split} faces of the pack from {stored} to "
                     f"{image_size}x{image_size} (INTER_AREA, once, in memory)")
    aus = arrays["aus"][idx].astype(np.float32) / AU_SCALE
    lms = None
    if "landmarks" in arrays:
        lms = torch.from_numpy(arrays["landmarks"][idx].astype(np.float32))
    names = arrays["names"]
    person = None
    if "person" in arrays and (arrays["person"][idx] >= 0).any():
        person = torch.from_numpy(arrays["person"][idx].astype(np.int64))
        notes.append(f"{int((person >= 0).sum())} {split} faces of {len(set(person[person >= 0].tolist()))} "
                     f"people with a person id (pairs of the same face in other expressions)")
    return FaceDataset(torch.from_numpy(out), torch.from_numpy(aus), [names[i] for i in idx],
                       notes, lms, person)
