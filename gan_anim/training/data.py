"""Training data: face crops with 17 AU intensities, validated and preloaded into memory.

Two layouts are read:

* the project's (written by ``gan-anim prepare``): ``images/*.png|jpg``, ``aus.csv``
  (``file`` plus ``AU01..AU45`` or ``AU01_r..AU45_r`` on 0..5), ``train.txt``, ``test.txt``,
  and ``manifest.jsonl`` (each photo's 68 landmarks, which the motion models need);
* the official GANimation code's: ``imgs/*.jpg``, ``aus_openface.pkl`` (id -> 17 raw
  OpenFace intensities), ``train_ids.csv``, ``test_ids.csv``.

A pack file (``training.pack``: the same faces, AUs, landmarks and split as JPEG bytes in
one file, as ``make gpu-pack`` writes) is read in place of the project's folder.

Every problem is reported up front as a ``GanAnimError``. The whole split is decoded once,
resized to the model's side (``faceset.resize_square``) and kept as one uint8 tensor, so a
batch costs an index, a cast and a flip.
"""
from __future__ import annotations

import math
import pickle
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ..aus import AU_NAMES, AU_SCALE, canonical_au, read_csv
from ..errors import GanAnimError
from ..media.paths import PHOTO_EXTS
from .faceset import FaceDataset, resize_square
from .pack import is_pack, load_pack


def detect_layout(data_dir) -> str:
    """'project', 'official' or 'pack' (a file from ``pack_writer.write_pack``); raises
    GanAnimError if none is there."""
    d = Path(data_dir)
    if d.is_file():
        if is_pack(d):
            return "pack"
        raise GanAnimError(f"{d}: not a training set: a file must be a pack (make gpu-pack, "
                           f"python -m gan_anim.training.pack_writer); a folder needs images/ "
                           f"+ aus.csv")
    if not d.is_dir():
        raise GanAnimError(f"{d}: no such data folder")
    if (d / "aus.csv").exists() or (d / "images").is_dir():
        return "project"
    if (d / "aus_openface.pkl").exists() or (d / "imgs").is_dir():
        return "official"
    raise GanAnimError(f"{d}: not a training set: expected images/ + aus.csv (gan-anim prepare) "
                       f"or imgs/ + aus_openface.pkl (official GANimation layout)")


def load_dataset(data_dir, image_size: int, split: str = "train", min_images: int = 1,
                 workers: int = 4, landmarks_cache: Path | None = None,
                 need_landmarks: bool = False) -> FaceDataset:
    """Validate and preload one split ('train' or 'test') at ``image_size`` pixels.

    ``min_images`` is the number of images one (global) batch needs. ``need_landmarks``: the
    official layout's crops have none, so they are found on the crops (``crop_landmarks``),
    cached in ``landmarks_cache`` (a folder: the run's, never the data's); crops without a
    face are skipped and counted in the notes.
    """
    d = Path(data_dir)
    layout = detect_layout(d)
    if layout == "pack":
        return load_pack(d, image_size, split, min_images, workers=None)
    notes: list[str] = []
    if layout == "project":
        table = _read_project_aus(d / "aus.csv")
        ids = _read_id_list(d / ("train.txt" if split == "train" else "test.txt"), split)
        image_dir, missing_label = d / "images", "aus.csv"
        paths = {i: image_dir / i for i in ids}
    else:
        table = _read_official_aus(d / "aus_openface.pkl")
        ids = [_strip_ext(i) for i in
               _read_id_list(d / ("train_ids.csv" if split == "train" else "test_ids.csv"), split)]
        image_dir, missing_label = d / "imgs", "aus_openface.pkl"
        paths = {i: image_dir / f"{i}.jpg" for i in ids}
    if not image_dir.is_dir():
        raise GanAnimError(f"{image_dir}: image folder missing")

    no_aus = [i for i in ids if i not in table]
    if no_aus and layout == "official":  # the official code silently drops these; we say so
        notes.append(f"skipped {len(no_aus)} {split} ids with no AUs in {missing_label} "
                     f"(e.g. {no_aus[0]}), as the official code does")
        ids = [i for i in ids if i in table]
    elif no_aus:
        raise GanAnimError(f"{d / missing_label}: {len(no_aus)} {split} images have no AU row "
                           f"(e.g. {no_aus[0]})")
    no_image = [i for i in ids if not paths[i].is_file()]
    if no_image:
        raise GanAnimError(f"{image_dir}: {len(no_image)} {split} ids have no image "
                           f"(e.g. {paths[no_image[0]].name})")
    lms = None
    if layout == "official" and need_landmarks:
        ids, lms = _official_landmarks(ids, paths, split, landmarks_cache, notes)
    if len(ids) < min_images:
        raise GanAnimError(f"{d}: {len(ids)} {split} images, too few for one batch of {min_images}; "
                           f"add images or lower --batch-size")

    aus = np.stack([table[i] for i in ids]).astype(np.float32) / AU_SCALE
    images, resized = _load_images([paths[i] for i in ids], image_size, workers)
    if resized:
        notes.append(f"resized {resized} of {len(ids)} {split} images to {image_size}x{image_size} "
                     f"(INTER_AREA, once, in memory)")
    if layout == "project":
        lms = read_landmarks(d, ids)
    return FaceDataset(torch.from_numpy(images), torch.from_numpy(aus), list(ids), notes,
                       None if lms is None else torch.from_numpy(lms))


def _official_landmarks(ids: list[str], paths: dict, split: str, cache: Path | None, notes: list):
    """(ids with a face, their landmarks) of official-layout crops; the others noted."""
    from ..media.images import read_image
    from .crop_landmarks import cached_crop_landmarks

    where = None if cache is None else Path(cache) / f"crop_landmarks-{split}.npz"
    found = cached_crop_landmarks([paths[i] for i in ids], ids, where, read=read_image)
    ok = ~np.isnan(found).any(axis=(1, 2))
    if not ok.all():
        notes.append(f"skipped {int((~ok).sum())} of {len(ids)} {split} crops where no face was found "
                     f"(e.g. {paths[ids[int(np.argmin(ok))]].name})")
    notes.append(f"landmarks of {int(ok.sum())} {split} crops found on the crops"
                 + (f" (cached in {where})" if where else ""))
    return [i for i, k in zip(ids, ok) if k], found[ok]


def read_landmarks(data_dir: Path, ids: list[str]) -> np.ndarray | None:
    """Aligned landmarks (N,68,2, crop-side units) of ``ids`` from ``manifest.jsonl``, or
    None when the folder has no manifest or misses some of them."""
    import json

    from ..faces.align import align, normalised_landmarks

    path = Path(data_dir) / "manifest.jsonl"
    if not path.is_file():
        return None
    found: dict[str, np.ndarray] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("status") == "ok" and "landmarks" in rec:
                found[rec["name"]] = np.asarray(rec["landmarks"], np.float32)
    out = np.empty((len(ids), 68, 2), np.float32)
    for k, i in enumerate(ids):
        lm = found.get(_strip_ext(i))
        if lm is None:
            return None
        out[k] = normalised_landmarks(lm, align(lm, 1), 1)
    return out


def _strip_ext(name: str) -> str:
    return name[: -len(Path(name).suffix)] if Path(name).suffix.lower() in PHOTO_EXTS else name


def _read_id_list(path: Path, split: str) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GanAnimError(f"{path}: missing (the {split} split: one image name per line)") from None
    ids = [line.strip().split("\t")[0].strip() for line in text.splitlines()]
    ids = [i for i in ids if i and not i.startswith("#")]
    if not ids:
        raise GanAnimError(f"{path}: the {split} split lists no images")
    return ids


def _check_intensities(values: np.ndarray, where: str) -> np.ndarray:
    bad = ~np.isfinite(values)
    if bad.any():
        raise GanAnimError(f"{where}: {AU_NAMES[int(np.argwhere(bad)[0][0])]} is NaN or not finite")
    out = (values < 0) | (values > AU_SCALE)
    if out.any():
        j = int(np.argwhere(out)[0][0])
        raise GanAnimError(f"{where}: {AU_NAMES[j]}={values[j]:g} is outside 0..{AU_SCALE:g}")
    return values


def _read_project_aus(path: Path) -> dict[str, np.ndarray]:
    header, rows = read_csv(path, "missing (columns file,AU01,...,AU45 on 0..5)")
    if "file" not in header:
        raise GanAnimError(f"{path}: no 'file' column")
    cols: dict[str, int] = {}
    for k, h in enumerate(header):
        if h.upper().startswith("AU"):
            try:
                cols[canonical_au(h)] = k
            except GanAnimError:
                pass  # AUs outside the 17 (e.g. OpenFace's AU28_c) are not ours
    missing = [n for n in AU_NAMES if n not in cols]
    if missing:
        raise GanAnimError(f"{path}: missing AU columns {' '.join(missing)}")
    fcol = header.index("file")
    order = [cols[n] for n in AU_NAMES]
    table: dict[str, np.ndarray] = {}
    for lineno, r in enumerate(rows, start=2):
        if not any(c.strip() for c in r):
            continue
        if len(r) < len(header):
            raise GanAnimError(f"{path}: line {lineno} has {len(r)} cells, header has {len(header)}")
        try:
            vals = np.array([float(r[k]) if r[k].strip() else math.nan for k in order], np.float64)
        except ValueError:
            raise GanAnimError(f"{path}: line {lineno}: an AU value is not a number") from None
        table[r[fcol].strip()] = _check_intensities(vals, f"{path}: line {lineno} ({r[fcol].strip()})")
    return table


class _AUUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, strings, numbers and numpy arrays; refuses everything else."""

    _ALLOWED = {
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("collections", "OrderedDict"),
        ("_codecs", "encode"),  # how protocol-2 pickles store bytes (array buffers)
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module.startswith("numpy.core"):
            module = "numpy._core" + module[len("numpy.core"):]
        return super().find_class(module, name)


def _read_official_aus(path: Path) -> dict[str, np.ndarray]:
    try:
        with open(path, "rb") as fh:
            # latin1: the official pickles were written by Python 2
            blob = _AUUnpickler(fh, encoding="latin1").load()
    except FileNotFoundError:
        raise GanAnimError(f"{path}: missing (dict id -> 17 OpenFace AU intensities)") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise GanAnimError(f"{path}: not an AU pickle ({exc})") from None
    if not isinstance(blob, dict):
        raise GanAnimError(f"{path}: expected a dict id -> 17 AU intensities, got {type(blob).__name__}")
    table: dict[str, np.ndarray] = {}
    for key, value in blob.items():
        key = key.decode() if isinstance(key, bytes) else str(key)
        try:
            vals = np.asarray(value, np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise GanAnimError(f"{path}: {key}: AUs are not numbers") from None
        if vals.size != len(AU_NAMES):
            raise GanAnimError(f"{path}: {key}: {vals.size} AU values, expected {len(AU_NAMES)} "
                               f"({' '.join(AU_NAMES)})")
        table[_strip_ext(key)] = _check_intensities(vals, f"{path}: {key}")
    return table


def _load_images(paths: list[Path], size: int, workers: int) -> tuple[np.ndarray, int]:
    import cv2

    out = np.empty((len(paths), 3, size, size), np.uint8)

    def load(k: int) -> bool:
        img = cv2.imread(str(paths[k]), cv2.IMREAD_COLOR)
        if img is None:
            raise GanAnimError(f"{paths[k]}: not a readable image")
        resized = img.shape[:2] != (size, size)
        out[k] = resize_square(img, size)[:, :, ::-1].transpose(2, 0, 1)  # BGR HWC -> RGB CHW
        return resized

    with ThreadPoolExecutor(max(1, workers)) as pool:  # cv2 releases the GIL
        resized = sum(pool.map(load, range(len(paths))))
    return out, int(resized)


# ----------------------------------------------------------------------- batches

def _generator(*keys: int) -> torch.Generator:
    g = torch.Generator()
    seed = 0
    for k in keys:  # a fixed mix, so the stream is a pure function of the keys
        seed = (seed * 1_000_003 + int(k) + 1) % (2 ** 63 - 1)
    return g.manual_seed(seed)


def batch_indices(n: int, step: int, batch_size: int, seed: int, rank: int = 0,
                  world: int = 1) -> torch.Tensor:
    """Indices of this rank's batch at ``step``: epochs of seeded permutations, last partial batch dropped."""
    per_step = batch_size * world
    steps_per_epoch = n // per_step
    if steps_per_epoch < 1:
        raise GanAnimError(f"{n} images, too few for one batch of {per_step}")
    epoch, k = divmod(step, steps_per_epoch)
    perm = torch.randperm(n, generator=_generator(seed, 1, epoch))
    start = k * per_step + rank * batch_size
    return perm[start:start + batch_size]


def _preset_table() -> torch.Tensor:
    from ..aus import PRESETS, au_dict_to_vector

    return torch.from_numpy(np.stack([au_dict_to_vector(v) for v in PRESETS.values()]) / AU_SCALE).float()


def sample_targets(real: torch.Tensor, others: torch.Tensor, g: torch.Generator,
                   noise: float = 0.1, preset_share: float = 0.25,
                   single_share: float = 0.15) -> torch.Tensor:
    """Target AUs (B,17, 0..1) for a batch whose own AUs are ``real``.

    Mostly another training face's AUs plus +-``noise`` (the reference code's sampling).
    A ``preset_share`` of rows is a built-in expression at 50-100 % strength and a
    ``single_share`` sets one random AU of the face's own to a random level, so every
    AU and every preset is asked for at full strength, not only the mixes in the data.
    """
    b, n = real.shape
    kind = torch.rand(b, generator=g)
    u = (torch.rand(b, n, generator=g) * 2 - 1) * noise
    presets = _preset_table()
    pick = torch.randint(0, len(presets), (b,), generator=g)
    strength = 0.5 + 0.5 * torch.rand(b, 1, generator=g)
    au = torch.randint(0, n, (b,), generator=g)
    level = torch.rand(b, generator=g)
    real_c = real.cpu().float()
    target = (others.cpu().float() + u).clamp(0, 1)
    as_preset = kind < preset_share
    target[as_preset] = (presets[pick] * strength)[as_preset]
    single = (kind >= preset_share) & (kind < preset_share + single_share)
    one = real_c.clone()
    one[torch.arange(b), au] = level
    target[single] = one[single]
    return target


class Pair(NamedTuple):
    """The paired half of a batch: for the rows in ``rows`` (B,) bool, ``images`` (B,3,S,S)
    in [-1,1] is a real photo of the same person showing the row's target AUs, with its
    ``landmarks`` (B,68,2) or None (other rows hold their own face; the loss skips them)."""

    images: torch.Tensor
    rows: torch.Tensor
    landmarks: torch.Tensor | None


_GROUPS: list = []  # [(person tensor, its groups)]: a training set's groups, made once


def _person_groups(person: torch.Tensor):
    """(order, start, count, slot) of a person-id vector: ``order[start[i] + slot[i]] == i``
    and ``count[i]`` photos share i's id (ids < 0: count 0)."""
    if _GROUPS and _GROUPS[0][0] is person:
        return _GROUPS[0][1]
    groups = _groups_of(person)
    _GROUPS[:] = [(person, groups)]
    return groups


def _groups_of(person: torch.Tensor):
    order = torch.argsort(person, stable=True)
    sorted_ids = person[order]
    first = torch.ones_like(sorted_ids, dtype=torch.bool)
    first[1:] = sorted_ids[1:] != sorted_ids[:-1]
    group_start = torch.cummax(torch.where(first, torch.arange(len(person)), 0), 0).values
    _, inverse, counts = torch.unique_consecutive(sorted_ids, return_inverse=True, return_counts=True)
    start, count, slot = (torch.empty_like(person) for _ in range(3))
    start[order], count[order] = group_start, counts[inverse]
    slot[order] = torch.arange(len(person)) - group_start
    count[person < 0] = 0
    return order, start, count, slot


def _paired_rows(ds: FaceDataset, idx_all: torch.Tensor, step: int, seed: int, paired_share: float,
                 pair_share: float):
    """(batch indices, partner indices or -1) of the global batch: a ``paired_share`` of rows
    replaced by random photos with a person id, and a ``pair_share`` of the rows with a
    person id given another photo of that person as partner. Its own random stream, so
    the rest of the batch is as without pairs."""
    g = _generator(seed, 4, step)
    whole = len(idx_all)
    swap, partner_u = torch.rand(whole, generator=g), torch.rand(whole, generator=g)
    pick, offset = (torch.randint(0, 2 ** 62, (whole,), generator=g) for _ in range(2))
    order, start, count, slot = _person_groups(ds.person)
    with_id = torch.nonzero(count > 0).flatten()
    idx_all = idx_all.clone()
    if paired_share > 0 and len(with_id):
        swapped = swap < paired_share
        idx_all[swapped] = with_id[pick % len(with_id)][swapped]
    c = count[idx_all]
    paired = (c > 1) & (partner_u < pair_share)
    step_in = 1 + offset % (c - 1).clamp(min=1)  # another photo of the group, never itself
    partner = order[start[idx_all] + (slot[idx_all] + step_in) % c.clamp(min=1)]
    return idx_all, torch.where(paired, partner, torch.full_like(partner, -1))


def batch_plan(ds: FaceDataset, step: int, batch_size: int, seed: int, rank: int = 0,
               world: int = 1, target_noise: float = 0.1, pairs=None):
    """What ``make_batch`` draws for ``step``, on the CPU: (this rank's indices, flips,
    target AUs (B,17) 0..1, partner indices (B,) with -1 for none, or None without
    ``pairs``). ``ds.aus`` may live on any device; ``ds.person`` is on the CPU."""
    g = _generator(seed, 2, step)
    whole = batch_size * world
    idx_all = batch_indices(len(ds), step, whole, seed)
    partner_all = None
    if pairs is not None and ds.person is not None and (pairs[0] > 0 or pairs[1] > 0):
        idx_all, partner_all = _paired_rows(ds, idx_all, step, seed, *pairs)
    mine = slice(rank * batch_size, (rank + 1) * batch_size)
    flips = (torch.rand(whole, generator=g) < 0.5)[mine]
    tgt_all = torch.randint(0, len(ds), (whole,), generator=g)
    aus = ds.aus
    every = aus[idx_all.to(aus.device)]
    target = sample_targets(every, aus[tgt_all.to(aus.device)], g, target_noise)
    partner = None
    if partner_all is not None:
        has = partner_all >= 0
        target[has.to(target.device)] = aus[partner_all[has].to(aus.device)].to(target.device, target.dtype)
        partner = partner_all[mine]
    return idx_all[mine], flips, target[mine], partner


def assemble_batch(ds: FaceDataset, idx: torch.Tensor, flips: torch.Tensor, target: torch.Tensor,
                   partner: torch.Tensor | None = None, flip: bool = True, mirror=None):
    """The batch of rows ``idx`` of ``ds`` on its images' device (see ``make_batch``), with a
    ``Pair`` as fifth item when ``partner`` (-1: none) is given. ``idx``, ``flips``,
    ``target`` and ``partner`` may be on the CPU (copied, waiting for them) or already on
    that device; ``mirror``: ``MIRROR`` as a tensor there (else made here)."""
    from ..motion import MIRROR

    dev = ds.images.device
    f = flips.to(dev) if flip else None
    if ds.landmarks is not None and flip and mirror is None:
        mirror = torch.as_tensor(MIRROR, device=dev)
    idx = idx.to(dev)
    x, lms = _images(ds, idx, f), _landmarks(ds, idx, f, mirror)
    real = ds.aus[idx.to(ds.aus.device)].to(dev)
    if partner is None:
        return x, real, target.to(dev), lms
    partner = partner.to(dev)
    rows = partner >= 0
    other = torch.where(rows, partner, idx)
    pair = Pair(_images(ds, other, f), rows, _landmarks(ds, other, f, mirror))
    if lms is not None:
        pair = register(pair, lms)
    return x, real, target.to(dev), lms, pair


def make_batch(ds: FaceDataset, step: int, batch_size: int, seed: int, rank: int = 0,
               world: int = 1, flip: bool = True, target_noise: float = 0.1, pairs=None):
    """The batch of ``step``: (images in [-1,1] float, real AUs 0..1, target AUs 0..1,
    landmarks (B,68,2) or None), flipped together.

    Targets come from ``sample_targets``. Everything is a pure function of (seed, step) for
    the global batch of ``batch_size x world`` rows, of which this rank takes its slice: so
    resuming needs no state, and ``world`` ranks of batch B see exactly the rows one process
    of batch B x world sees (a run may resume on another world size, same global batch).

    ``pairs`` = (paired_share, pair_share) adds a fifth item, a ``Pair`` or None: with a
    dataset that has person ids, ``_paired_rows`` oversamples and pairs its rows, and a
    paired row's target is its partner photo's AUs (without noise).
    """
    idx, flips, target, partner = batch_plan(ds, step, batch_size, seed, rank, world, target_noise, pairs)
    batch = assemble_batch(ds, idx, flips, target, partner, flip=flip)
    if pairs is not None and partner is None:
        return (*batch, None)
    return batch


def _images(ds: FaceDataset, idx: torch.Tensor, flips: torch.Tensor | None) -> torch.Tensor:
    """Rows ``idx`` (on the images' device) as float in [-1,1], flipped where ``flips``."""
    x = ds.images[idx]
    if x.device.type == "cuda":
        x = x.contiguous()
    x = x.float().mul_(1 / 127.5).sub_(1.0)
    if flips is not None:
        x = torch.where(flips.view(-1, 1, 1, 1), x.flip(3), x)
    return x


def _landmarks(ds: FaceDataset, idx: torch.Tensor, flips: torch.Tensor | None, mirror=None):
    """Rows ``idx`` of the landmarks on the images' device, mirrored where ``flips``
    (``mirror``: ``motion.MIRROR`` there, so the index stays on the device), or None."""
    if ds.landmarks is None:
        return None
    dev = ds.images.device
    lms = ds.landmarks[idx.to(ds.landmarks.device)].to(dev).float()
    if flips is not None:
        mirrored = lms[:, mirror].clone()  # motion.mirror_landmarks
        mirrored[..., 0] = 1 - mirrored[..., 0]
        lms = torch.where(flips.view(-1, 1, 1), mirrored, lms)
    return lms


# Points that an expression hardly moves: jaw ends at the ears, nose bridge, eye corners.
STABLE_POINTS = (0, 16, 27, 28, 29, 30, 36, 39, 42, 45)


def register(pair: Pair, landmarks: torch.Tensor) -> Pair:
    """``pair`` with each photo moved onto its row's framing: the similarity that best maps
    its ``STABLE_POINTS`` onto those of ``landmarks`` (the row's, crop-side units), since
    ``align`` frames each photo by its own mouth and eyes, which an expression moves."""
    k = list(STABLE_POINTS)
    p, q = pair.landmarks[:, k].double(), landmarks[:, k].double()     # (B, K, 2)
    mp, mq = p.mean(1, keepdim=True), q.mean(1, keepdim=True)
    pc, qc = p - mp, q - mq
    # q - mq = [[a, -b], [b, a]] (p - mp), least squares
    den = pc.square().sum((1, 2)).clamp(min=1e-12)
    a = (pc * qc).sum((1, 2)) / den
    b = (pc[..., 0] * qc[..., 1] - pc[..., 1] * qc[..., 0]).sum(1) / den
    fwd = torch.stack([torch.stack([a, -b], -1), torch.stack([b, a], -1)], -2)   # (B, 2, 2)
    inv = torch.linalg.inv(fwd)
    c = mp[:, 0] - (inv @ mq[:, 0, :, None])[..., 0]                  # p = inv u + c (units)
    # in grid_sample's normalised coordinates (2u - 1): p_n = inv u_n + inv 1 + 2c - 1
    shift = (inv @ torch.ones_like(c)[..., None])[..., 0] + 2 * c - 1
    theta = torch.cat([inv, shift[..., None]], -1).to(pair.images.dtype)
    grid = torch.nn.functional.affine_grid(theta, list(pair.images.shape), align_corners=False)
    images = torch.nn.functional.grid_sample(pair.images, grid, padding_mode="border", align_corners=False)
    moved = ((pair.landmarks.double() - mp) @ fwd.transpose(1, 2) + mq).to(pair.landmarks.dtype)
    return Pair(images, pair.rows, moved)
