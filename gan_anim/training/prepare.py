"""``gan-anim prepare``: turn folders of photos into a training set.

For every photo: find the largest face with the detection cascade of every command
(``faces.detect.detect_faces``; its first pass edge-padded by ``--pad`` for tight face chips), align
and crop it with ``faces.align.align``/``crop`` (the same framing ``animate`` uses), and
write ``images/<name>.png``. Then ``aus.csv`` (estimator or OpenFace CSVs),
``train.txt``/``test.txt`` (seeded split) and ``summary.json``.

Resumable: each processed photo is appended to ``manifest.jsonl`` (with its
landmarks), so a re-run only processes new photos and rebuilds the AU table and the
splits from the manifest (which also picks up a new calibration without re-detecting).
"""
from __future__ import annotations

import csv
import json
import os
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from ..aus import AU_NAMES, read_openface_csv
from ..errors import GanAnimError
from ..faces.align import align, crop
from ..faces.detect import find_face, pad_image
from ..faces.dlib_models import DETECTORS
from ..media.images import read_image
from ..media.paths import PHOTO_EXTS, atomic_output
from .workers import init_worker, worker_pool

MANIFEST = "manifest.jsonl"
CONFIG = "prepare.json"


def list_images(src: Path) -> list[Path]:
    """Image files under ``src`` (recursive, sorted; hidden folders skipped)."""
    out = []
    for root, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out.extend(Path(root) / f for f in sorted(files)
                   if Path(f).suffix.lower() in PHOTO_EXTS and not f.startswith("."))
    return out


def _name_for(rel: Path, prefix: str) -> str:
    return prefix + "__".join(rel.with_suffix("").parts)


def _prefixes(sources: list[Path]) -> list[str]:
    """Name prefixes for several sources: the last path component that tells them apart
    (``a/images`` and ``b/images`` -> ``a__``, ``b__``)."""
    if len(sources) == 1:
        return [""]
    parts = [s.resolve().parts for s in sources]
    for k in range(1, max(map(len, parts)) + 1):
        tails = [p[-k] if len(p) >= k else "_".join(p) for p in parts]
        if len(set(tails)) == len(tails):
            return [t + "__" for t in tails]
    raise GanAnimError("the same source folder is given twice")


def _process(task: dict) -> dict:
    """Worker: one photo -> a manifest record (writes the PNG crop when a face is kept)."""
    rec = {"src": task["src"], "name": task["name"]}
    try:
        image = read_image(task["path"])
    except GanAnimError as exc:
        return {**rec, "status": "corrupt", "reason": str(exc)}
    except Exception as exc:  # any decoder failure is a corrupt file, never fatal
        return {**rec, "status": "corrupt", "reason": f"{exc.__class__.__name__}: {exc}"}
    status, box, lm = find_face(image, task["pad"], task["detector"], threads=1)
    if status != "ok":
        reason = status if lm is None else f"eyes {np.hypot(*(lm[42:48].mean(0) - lm[36:42].mean(0))):.0f} px apart"
        return {**rec, "status": status, "reason": reason}
    size = task["size"]
    # Crop from the padded image so the area outside the photo is replicated edge pixels.
    padded, p = pad_image(image, task["pad"])
    transform = align(lm + p, size)
    chip = crop(padded, transform, size)
    out = Path(task["out"])
    tmp = out.with_name(f".{out.stem}.tmp-{os.getpid()}.png")
    cv2.imwrite(str(tmp), cv2.cvtColor(chip, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    os.replace(tmp, out)
    return {**rec, "status": "ok", "box": list(box), "landmarks": np.round(lm, 2).tolist()}


def read_manifest(out_dir: Path) -> dict[str, dict]:
    """{src: record} from ``manifest.jsonl``; a truncated last line (killed run) is ignored."""
    records = {}
    path = Path(out_dir) / MANIFEST
    if path.exists():
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                records[rec["src"]] = rec
    return records


def _check_config(out_dir: Path, config: dict) -> None:
    path = out_dir / CONFIG
    if path.exists():
        old = json.loads(path.read_text())
        for key in ("size", "pad", "detector"):
            if old.get(key) != config[key]:
                raise GanAnimError(f"{out_dir} was prepared with {key}={old.get(key)}, not "
                                   f"{config[key]}; use the same options or another -o")
    else:
        path.write_text(json.dumps(config, indent=1) + "\n")


def prepare_dataset(src_dir, out_dir, size: int = 128, pad: float = 0.3, detector: str = "hog",
                    workers: int = 2, openface=None, test_fraction: float = 0.1, seed: int = 0,
                    progress: bool = True, labels: str = "model") -> dict:
    """Build a training set in ``out_dir`` from one folder (or a list of folders) of photos.

    ``labels``: "model" (the appearance AU estimator, default) or "geometry" (landmarks alone)
    label the faces unless ``openface`` is given. Several sources prefix each name with the
    source folder's name. Returns the summary
    (also written to ``out_dir/summary.json``).
    """
    sources = [Path(s) for s in ([src_dir] if isinstance(src_dir, (str, os.PathLike)) else src_dir)]
    out_dir = Path(out_dir)
    _check_arguments(sources, out_dir, size, pad, detector, workers, openface, test_fraction)
    if labels not in ("model", "geometry"):
        raise GanAnimError(f"--labels must be model or geometry, got {labels!r}")
    tasks = _tasks(sources)

    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    _check_config(out_dir, {"size": size, "pad": pad, "detector": detector})
    done = read_manifest(out_dir)
    todo = []
    for t in tasks:
        rec = done.get(t["src"])
        if rec is not None and (rec["status"] != "ok" or (out_dir / "images" / f"{rec['name']}.png").exists()):
            continue
        todo.append({**t, "out": str(out_dir / "images" / f"{t['name']}.png"),
                     "size": size, "pad": pad, "detector": detector})

    if todo:
        _run(todo, out_dir, workers, progress)
    done = read_manifest(out_dir)
    wanted = {t["src"] for t in tasks}
    records = [done[t["src"]] for t in tasks if t["src"] in done]
    summary = _finish(out_dir, records, openface, test_fraction, seed, labels)
    summary["processed_this_run"] = len(todo)
    summary["sources"] = [str(s) for s in sources]
    summary["manifest_other_sources"] = len(set(done) - wanted)
    with atomic_output(out_dir / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def _check_arguments(sources: list[Path], out_dir: Path, size: int, pad: float, detector: str,
                     workers: int, openface, test_fraction: float) -> None:
    """Raise GanAnimError for the first argument of ``prepare_dataset`` that cannot work."""
    if not sources:
        raise GanAnimError("no source folder given")
    for s in sources:
        if not s.is_dir():
            raise GanAnimError(f"{s}: not a folder of photos")
    if not 16 <= size <= 1024:
        raise GanAnimError(f"--size must be between 16 and 1024, got {size}")
    if not 0.0 <= pad <= 2.0:
        raise GanAnimError(f"--pad must be between 0 and 2, got {pad}")
    if not 0.0 <= test_fraction < 1.0:
        raise GanAnimError(f"test fraction must be in [0, 1), got {test_fraction}")
    if workers < 1:
        raise GanAnimError(f"--workers must be at least 1, got {workers}")
    if detector not in DETECTORS:
        raise GanAnimError(f"unknown detector {detector!r}: use {' or '.join(DETECTORS)}")
    if openface is not None and not Path(openface).is_dir():
        raise GanAnimError(f"--openface {openface}: not a folder")
    if out_dir.exists() and not out_dir.is_dir():
        raise GanAnimError(f"{out_dir}: exists and is not a folder")
    if any(out_dir.resolve() == s.resolve() or s.resolve() in out_dir.resolve().parents for s in sources):
        raise GanAnimError(f"output {out_dir} is inside a source folder; choose another -o")


def _tasks(sources: list[Path]) -> list[dict]:
    """Every photo of ``sources`` with a unique output name."""
    tasks, seen = [], set()
    prefixes = _prefixes(sources)
    for s, prefix in zip(sources, prefixes):
        for path in list_images(s):
            rel = path.relative_to(s)
            name = _name_for(rel, prefix)
            if name in seen:
                name = prefix + "__".join(rel.parts).replace(".", "_")
            seen.add(name)
            tasks.append({"path": str(path), "src": str(path.resolve()), "name": name})
    if not tasks:
        raise GanAnimError(f"no photos ({', '.join(sorted(PHOTO_EXTS))}) in {', '.join(map(str, sources))}")
    return tasks


def _run(todo: list[dict], out_dir: Path, workers: int, progress: bool) -> None:
    from ..progress import progress_bar

    bar = progress_bar("{task.fields[kept]} faces", enabled=progress)
    kept = 0
    with open(out_dir / MANIFEST, "a", encoding="utf-8") as log, bar:
        job = bar.add_task("prepare", total=len(todo), kept=0)

        def record(rec):
            nonlocal kept
            log.write(json.dumps(rec, separators=(",", ":")) + "\n")
            log.flush()
            kept += rec["status"] == "ok"
            bar.update(job, advance=1, kept=kept)

        if workers == 1 or len(todo) < 8:
            init_worker()
            for t in todo:
                record(_process(t))
        else:
            with worker_pool(workers, preload=("gan_anim.training.prepare",)) as pool:
                for rec in pool.imap_unordered(_process, todo, chunksize=8):
                    record(rec)


def _openface_aus(openface: Path, name_stem: str):
    path = openface / f"{name_stem}.csv"
    if not path.exists():
        return None
    track = read_openface_csv(path)
    rows = track["aus"][track["success"]]
    if not len(rows) or not track["present"].all():
        return None
    return rows.mean(0)


def _estimated_aus(out_dir: Path, records: list[dict], labels: str) -> list[np.ndarray]:
    """The AUs of each kept face: ``labels`` "geometry" from its landmarks alone, "model" from
    its crop ``images/<name>.png`` and its landmarks moved into the crop (the framing is
    the one the estimator aligns to, so the crop holds everything it looks at)."""
    from ..estimation.photo import estimate_face_aus

    lm = np.array([r["landmarks"] for r in records], np.float32)
    if labels == "geometry":
        return list(estimate_face_aus(None, lm, "geometry"))
    table = []
    for r, points in zip(records, lm):
        chip = read_image(out_dir / "images" / f"{r['name']}.png")
        m = align(points, chip.shape[0])
        table.append(estimate_face_aus(chip, points @ m[:, :2].T + m[:, 2], labels))
    return table


def _finish(out_dir: Path, records: list[dict], openface, test_fraction: float, seed: int,
            labels: str = "model") -> dict:
    """Write aus.csv, train.txt, test.txt from manifest records; return counts."""
    ok = [r for r in records if r["status"] == "ok"]
    reasons = Counter(r["status"] for r in records if r["status"] != "ok")
    examples = {}
    for r in records:
        if r["status"] != "ok":
            examples.setdefault(r["status"], f"{Path(r['src']).name}: {r.get('reason', r['status'])}")
    names, table = [], []
    if openface is not None:
        openface = Path(openface)
        for r in ok:
            stem = Path(r["src"]).stem
            aus = _openface_aus(openface, stem)
            if aus is None:
                reasons["no OpenFace CSV"] += 1
                examples.setdefault("no OpenFace CSV", f"{stem}.csv missing, without a successful "
                                    "frame or without all 17 AU columns")
                continue
            names.append(r["name"])
            table.append(aus)
    elif ok:
        table = _estimated_aus(out_dir, ok, labels)
        names = [r["name"] for r in ok]
    order = np.argsort(names, kind="stable")
    names = [names[i] for i in order]
    table = [table[i] for i in order]

    with atomic_output(out_dir / "aus.csv") as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(("file",) + AU_NAMES)
            for n, v in zip(names, table):
                w.writerow([f"{n}.png", *(f"{float(x):.2f}" for x in np.clip(v, 0, 5))])
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(names))
    n_test = int(round(test_fraction * len(names)))
    test = sorted(names[i] + ".png" for i in perm[:n_test])
    train = sorted(names[i] + ".png" for i in perm[n_test:])
    for fname, items in (("train.txt", train), ("test.txt", test)):
        with atomic_output(out_dir / fname) as tmp:
            tmp.write_text("".join(f"{x}\n" for x in items))
    return {"images_read": len(records), "faces_found": len(ok), "faces_kept": len(names),
            "skipped": dict(reasons), "skipped_examples": examples,
            "train": len(train), "test": len(test),
            "aus_from": "openface" if openface is not None else f"estimator ({labels})"}


def format_summary(summary: dict) -> str:
    """Human-readable lines for the CLI."""
    lines = [f"images read {summary['images_read']} (processed now {summary['processed_this_run']}), "
             f"faces found {summary['faces_found']}, kept {summary['faces_kept']} "
             f"(train {summary['train']}, test {summary['test']}; AUs from {summary['aus_from']})"]
    for reason, count in sorted(summary["skipped"].items()):
        lines.append(f"skipped {count}: {reason}, e.g. {summary['skipped_examples'][reason]}")
    return "\n".join(lines)
