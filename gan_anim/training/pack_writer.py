"""Writing a training-set pack (format and reader in ``training.pack``).

``python -m gan_anim.training.pack_writer PREPARED OUT`` (``make gpu-pack``) packs a
``gan-anim prepare`` folder into one file; ``--cfee DIR --cfee-heldout FILE`` adds cfee's
training people (``training.cfee``: human FACS AUs, person ids for the pair loss) to the
training split; ``--table`` prints JPEG size and PSNR per quality.
"""
from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..aus import AU_NAMES
from ..errors import GanAnimError
from ..media.paths import atomic_output
from .data import _read_id_list, _read_project_aus, detect_layout, read_landmarks
from .faceset import resize_square
from .pack import PACK_FORMAT, decode_face
from .runtime import thread_count


def _bgr_image(path: Path, size: int) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise GanAnimError(f"{path}: not a readable image")
    return resize_square(img, size)


def encode_face(bgr: np.ndarray, quality: int) -> bytes:
    """JPEG bytes of a BGR face: 1-channel when the three channels are equal."""
    import cv2

    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality), cv2.IMWRITE_JPEG_OPTIMIZE, 1]
    grey = bool((bgr[..., 0] == bgr[..., 1]).all() and (bgr[..., 1] == bgr[..., 2]).all())
    ok, buf = cv2.imencode(".jpg", bgr[..., 0] if grey else bgr, params)
    if not ok:
        raise GanAnimError("JPEG encoding failed")
    return buf.tobytes()


def _prepared_split(prepared: Path):
    """(names in train.txt + test.txt order, split flags, AUs 0..5 float32, image paths)."""
    if detect_layout(prepared) != "project":
        raise GanAnimError(f"{prepared}: a pack is made from a gan-anim prepare folder "
                           f"(images/, aus.csv, train.txt, test.txt)")
    table = _read_project_aus(prepared / "aus.csv")
    train = _read_id_list(prepared / "train.txt", "train")
    try:
        test = _read_id_list(prepared / "test.txt", "test")
    except GanAnimError:
        test = []
    names = train + test
    if len(set(names)) != len(names):
        raise GanAnimError(f"{prepared}: an image is listed twice in train.txt/test.txt")
    missing = [n for n in names if n not in table]
    if missing:
        raise GanAnimError(f"{prepared / 'aus.csv'}: {len(missing)} images have no AU row "
                           f"(e.g. {missing[0]})")
    paths = [prepared / "images" / n for n in names]
    absent = [p for p in paths if not p.is_file()]
    if absent:
        raise GanAnimError(f"{prepared / 'images'}: {len(absent)} listed images are missing "
                           f"(e.g. {absent[0].name})")
    split = np.array([0] * len(train) + [1] * len(test), np.uint8)
    # the same casts as data.load_dataset (float64 from the CSV -> float32)
    aus = np.stack([table[n] for n in names]).astype(np.float32)
    return names, split, aus, paths


def encode_all(paths: list[Path], size: int, quality: int, workers: int | None = None):
    """The JPEG bytes of each image file, resized to ``size``, in order."""
    def one(p: Path) -> bytes:
        return encode_face(_bgr_image(p, size), quality)

    with ThreadPoolExecutor(thread_count(workers)) as pool:
        blobs = list(pool.map(one, paths, chunksize=64))
    return blobs


def write_pack(prepared_dir, out_path, size: int = 128, quality: int = 84,
               workers: int | None = None, extra: dict | None = None) -> dict:
    """Write ``prepared_dir`` (a ``gan-anim prepare`` folder) as one pack file.

    ``extra``: rows from ``cfee.cfee_rows`` (BGR crops of ``size`` px) appended to the
    training split, with their person ids (source 1; the folder's faces: source 0, person -1).
    Returns a summary: faces, train/test counts, grey faces, bytes, quality.
    """
    prepared = Path(prepared_dir)
    if not 1 <= int(quality) <= 100:
        raise GanAnimError(f"JPEG quality must be 1..100, got {quality}")
    names, split, aus, paths = _prepared_split(prepared)
    blobs = encode_all(paths, size, quality, workers)
    lms = read_landmarks(prepared, names)
    if extra is None:
        return write_pack_arrays(out_path, blobs, aus, names, split, lms, size, quality)
    if lms is None:
        raise GanAnimError(f"{prepared}: no landmarks (manifest.jsonl) to pack beside cfee's")
    n, m = len(names), len(extra["names"])
    if set(names) & set(extra["names"]):
        raise GanAnimError("a cfee name is also in the prepared folder")
    person = np.concatenate([np.full(n, -1, np.int32), extra["person"]])
    source = np.concatenate([np.zeros(n, np.uint8), np.ones(m, np.uint8)])
    with ThreadPoolExecutor(thread_count(workers)) as pool:
        blobs += list(pool.map(lambda im: encode_face(im, quality), extra["images"], chunksize=64))
    return write_pack_arrays(out_path, blobs, np.concatenate([aus, extra["aus"]]),
                             names + extra["names"], np.concatenate([split, np.zeros(m, np.uint8)]),
                             np.concatenate([lms, extra["landmarks"]]), size, quality,
                             person=person, source=source, source_names=("shared", "cfee"))


def write_pack_arrays(out_path, jpegs: list[bytes], aus: np.ndarray, names: list[str],
                      split: np.ndarray, landmarks: np.ndarray | None, size: int,
                      quality: int, person=None, source=None, source_names=None) -> dict:
    """Write a pack from its parts: JPEG bytes of ``size``-pixel faces (``encode_face``),
    AUs (N,17) on 0..5, names, split (0 train, 1 test), aligned landmarks (N,68,2) or None;
    optionally ``person`` (N,) ids (-1: none) and ``source`` (N,) indices into ``source_names``."""
    n = len(jpegs)
    aus = np.asarray(aus, np.float32)
    split = np.asarray(split, np.uint8)
    if aus.shape != (n, len(AU_NAMES)) or split.shape != (n,) or len(names) != n:
        raise GanAnimError(f"pack parts disagree: {n} images, AUs {aus.shape}, split {split.shape}, "
                           f"{len(names)} names")
    if any("\n" in name for name in names):
        raise GanAnimError("image names may not contain line breaks")
    offsets = np.zeros(n + 1, np.int64)
    offsets[1:] = np.cumsum([len(b) for b in jpegs])
    arrays = {
        "format": np.array(PACK_FORMAT),
        "size": np.array(size, np.int32),
        "quality": np.array(int(quality), np.int32),
        "au_names": np.array(list(AU_NAMES)),
        "names": np.frombuffer("\n".join(names).encode("utf-8"), np.uint8),
        "split": split,
        "aus": aus,
        "offsets": offsets,
        "jpeg": np.frombuffer(b"".join(jpegs), np.uint8),
    }
    if landmarks is not None:
        arrays["landmarks"] = np.asarray(landmarks, np.float32).astype(np.float16)
    if person is not None:
        arrays["person"] = np.asarray(person, np.int32)
        arrays["source"] = np.asarray(source, np.uint8)
        arrays["source_names"] = np.array(list(source_names))
        if arrays["person"].shape != (n,) or arrays["source"].shape != (n,):
            raise GanAnimError(f"pack parts disagree: {n} images, person {arrays['person'].shape}")
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(out) as tmp:
        _write_npz(tmp, arrays, stored=("jpeg",))
    grey = sum(1 for b in jpegs if _jpeg_channels(b) == 1)
    return {"path": str(out), "faces": n, "train": int((split == 0).sum()),
            "test": int((split == 1).sum()), "grey": grey, "quality": int(quality), "size": size,
            "landmarks": landmarks is not None, "bytes": out.stat().st_size,
            "jpeg_bytes": int(offsets[-1]),
            "paired": 0 if person is None else int((np.asarray(person) >= 0).sum())}


def _write_npz(path, arrays: dict, stored=()) -> None:
    """An .npz (what ``np.savez`` writes) whose members in ``stored`` are not deflated
    (JPEG bytes do not shrink) and the others are (landmarks, AUs and names do)."""
    import zipfile

    with zipfile.ZipFile(path, "w", allowZip64=True) as zf:
        for key, value in arrays.items():
            kind = zipfile.ZIP_STORED if key in stored else zipfile.ZIP_DEFLATED
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = kind
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asanyarray(value), allow_pickle=False)


def _jpeg_channels(data: bytes) -> int:
    """Number of components in a JPEG's frame header (SOF marker)."""
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xC0, 0xC1, 0xC2):
            return data[i + 9]
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return 3


def quality_table(prepared_dir, qualities=(70, 75, 80, 85, 90, 95), size: int = 128,
                  limit: int | None = None, workers: int | None = None, extra=()) -> list[dict]:
    """Size of the JPEG bytes (all faces, or the first ``limit``) and PSNR against the
    PNGs, per JPEG quality: what ``make gpu-pack`` chooses its quality from. ``extra``:
    more BGR faces (cfee's crops) counted with them."""
    _, _, _, paths = _prepared_split(Path(prepared_dir))
    if limit:
        paths = paths[:limit]
    rows = []
    with ThreadPoolExecutor(thread_count(workers)) as pool:
        originals = list(pool.map(lambda p: _bgr_image(p, size), paths, chunksize=64)) + list(extra)
        for q in qualities:
            blobs = list(pool.map(lambda im: encode_face(im, q), originals, chunksize=64))
            decoded = list(pool.map(lambda b: decode_face(np.frombuffer(b, np.uint8)), blobs,
                                    chunksize=64))
            se = [float(((d.astype(np.int32) - o) ** 2).sum()) for d, o in zip(decoded, originals)]
            row = {"quality": q, "faces": len(blobs), "jpeg_bytes": sum(map(len, blobs)),
                   "psnr_db": _psnr(sum(se), len(se) * size * size * 3)}
            if len(extra):
                k = len(paths)
                row.update(folder_bytes=sum(map(len, blobs[:k])), folder_psnr_db=_psnr(sum(se[:k]), k * size * size * 3),
                           extra_bytes=sum(map(len, blobs[k:])),
                           extra_psnr_db=_psnr(sum(se[k:]), len(extra) * size * size * 3))
            rows.append(row)
    return rows


def _psnr(squared_error: float, values: int) -> float:
    return round(10 * np.log10(255 ** 2 / max(squared_error / max(values, 1), 1e-12)), 2)


def main(argv=None) -> int:
    """Pack a gan-anim prepare folder into one file, or (--table) compare JPEG qualities."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m gan_anim.training.pack_writer",
                                 description=main.__doc__)
    ap.add_argument("prepared", help="a gan-anim prepare folder")
    ap.add_argument("output", nargs="?", help="pack file to write, e.g. gpu-pack/faces128.pack")
    ap.add_argument("--quality", type=int, default=84,
                    help="JPEG quality (84: the 16,029 shared faces in 47.6 MiB, 41.2 dB PSNR)")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--table", default=None,
                    help="comma-separated qualities: print size and PSNR of each instead of writing")
    ap.add_argument("--cfee", default=None,
                    help="cfee folder (labels.csv, images/): add its training people to the train split")
    ap.add_argument("--cfee-heldout", default=None,
                    help="file of cfee person ids never packed (needed with --cfee)")
    ap.add_argument("--cfee-landmarks", default=None,
                    help="landmark cache of tools/train_aus.py (data/cfee_landmarks.npz); detected if absent")
    ap.add_argument("--cfee-people", type=int, default=None,
                    help="only the first N cfee training people (small packs)")
    args = ap.parse_args(argv)
    if args.cfee and not args.cfee_heldout:
        ap.error("--cfee needs --cfee-heldout (the people kept out for measurement)")
    if not args.table and not args.output:
        ap.error("give an output file (or --table)")
    try:
        return _run_main(args)
    except GanAnimError as exc:
        print(f"gan-anim pack: error: {exc}", file=sys.stderr)
        return 1


def _run_main(args) -> int:
    import json

    extra = None
    if args.cfee:
        from .cfee import cfee_rows

        extra = cfee_rows(args.cfee, args.cfee_heldout, args.size, args.cfee_landmarks, args.cfee_people)
        print(f"cfee: {len(extra['names'])} photos of {extra['people']} training people "
              f"({extra['no_face']} without a face; {extra['estimated_values']} AU values read by "
              f"the estimator: AU45 and codes not scorable)")
    if args.table:
        for row in quality_table(args.prepared, [int(q) for q in args.table.split(",")], args.size,
                                 extra=extra["images"] if extra else ()):
            print(json.dumps(row))
        return 0
    summary = write_pack(args.prepared, args.output, args.size, args.quality, extra=extra)
    print(f"wrote {summary['path']}: {summary['faces']} faces ({summary['train']} train, "
          f"{summary['test']} test, {summary['grey']} greyscale, {summary['paired']} with a person id), "
          f"JPEG quality {summary['quality']}, {summary['bytes'] / 2 ** 20:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
