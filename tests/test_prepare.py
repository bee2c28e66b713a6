"""gan-anim prepare on a small real folder: outputs, skips with reasons, resume, CLI."""
from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from gan_anim.aus import AU_NAMES, write_openface_csv
from gan_anim.cli import main
from gan_anim.errors import GanAnimError
from gan_anim.training.prepare import prepare_dataset


@pytest.fixture()
def photo_folder(shared_data, tmp_path):
    """4 + 4 real photos (one in a subfolder), a corrupt JPEG and a face-less PNG."""
    src = tmp_path / "raw"
    (src / "sub").mkdir(parents=True)
    fe = sorted((shared_data / "facial_expressions" / "images").glob("A*.jpg"))[:4]
    utk = sorted((shared_data / "utkface_crop_part1" / "images").glob("3*.jpg"))[:4]
    for p in fe:
        shutil.copy(p, src / p.name)
    for p in utk:
        shutil.copy(p, src / "sub" / p.name)
    (src / "corrupt.jpg").write_bytes(fe[0].read_bytes()[:400])          # truncated JPEG
    # background without a face: a blurred, flat-ish crop of a real photo's corner
    corner = np.asarray(Image.open(fe[1]).convert("RGB"))[:40, :40]
    Image.fromarray(corner).resize((220, 220), Image.BILINEAR).save(src / "background.png")
    (src / "notes.txt").write_text("not a photo, ignored")
    return src, [p.stem for p in fe] + [f"sub__{p.stem}" for p in utk]


def read_aus(path):
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def test_prepare_writes_consistent_dataset_and_resumes(photo_folder, tmp_path):
    src, names = photo_folder
    out = tmp_path / "ds"
    summary = prepare_dataset(src, out, size=64, workers=2, progress=False, test_fraction=0.25)
    assert summary["images_read"] == 10
    assert summary["skipped"].get("corrupt") == 1
    assert summary["skipped"].get("no face") == 1
    assert "corrupt.jpg" in summary["skipped_examples"]["corrupt"]
    assert "background.png" in summary["skipped_examples"]["no face"]
    kept = summary["faces_kept"]
    assert kept >= 7 and kept == summary["train"] + summary["test"] and summary["test"] == round(0.25 * kept)

    header, rows = read_aus(out / "aus.csv")
    assert header == ["file", *AU_NAMES]
    files = [r[0] for r in rows]
    assert len(files) == kept and set(files) <= {f"{n}.png" for n in names}
    values = np.array([[float(v) for v in r[1:]] for r in rows])
    assert values.min() >= 0 and values.max() <= 5
    assert all(len(v.split(".")[1]) == 2 for r in rows for v in r[1:])
    pngs = sorted(p.name for p in (out / "images").glob("*.png"))
    assert pngs == sorted(files)
    assert Image.open(out / "images" / files[0]).size == (64, 64)
    assert Image.open(out / "images" / files[0]).mode == "RGB"
    train = (out / "train.txt").read_text().split()
    test = (out / "test.txt").read_text().split()
    assert sorted(train + test) == sorted(files) and not set(train) & set(test)
    assert json.loads((out / "summary.json").read_text())["faces_kept"] == kept

    # Re-run: nothing processed again, files untouched, same split.
    mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "images").iterdir()}
    again = prepare_dataset(src, out, size=64, workers=2, progress=False, test_fraction=0.25)
    assert again["processed_this_run"] == 0 and again["faces_kept"] == kept
    assert {p.name: p.stat().st_mtime_ns for p in (out / "images").iterdir()} == mtimes
    assert (out / "test.txt").read_text().split() == test

    # A new photo: only that one is processed.
    new = sorted((src.parent / "raw" / "sub").glob("*.jpg"))[0]
    shutil.copy(new, src / "extra.jpg")
    third = prepare_dataset(src, out, size=64, workers=1, progress=False, test_fraction=0.25)
    assert third["processed_this_run"] == 1 and third["faces_kept"] == kept + 1

    # Different options on the same folder are refused, not mixed.
    with pytest.raises(GanAnimError, match="size=64"):
        prepare_dataset(src, out, size=128, progress=False)

    # --openface: AUs from OpenFace CSVs by photo stem, from the manifest (no re-detection).
    of = tmp_path / "openface"
    of.mkdir()
    stem = files[0][:-4]
    if "__" in stem:
        stem = stem.split("__")[-1]
    vec = np.linspace(0, 4.8, 17)
    write_openface_csv(of / f"{stem}.csv", [(1, 0.0, 0.9, 1, vec), (2, 0.04, 0.0, 0, None)])
    ofs = prepare_dataset(src, out, size=64, openface=of, progress=False)
    assert ofs["processed_this_run"] == 0
    assert ofs["faces_kept"] == 1 and ofs["skipped"]["no OpenFace CSV"] == kept
    _, rows = read_aus(out / "aus.csv")
    np.testing.assert_allclose([float(v) for v in rows[0][1:]], vec, atol=0.005)


def test_cli_prepare_and_bad_inputs(photo_folder, tmp_path):
    src, _ = photo_folder
    for p in src.rglob("*"):
        if p.is_file() and p.name not in ("corrupt.jpg",) and "sub" not in p.parts:
            p.unlink()   # keep it quick: the 4 UTKFace chips and the corrupt file
    out = tmp_path / "cli"
    runner = CliRunner()
    result = runner.invoke(main, ["prepare", str(src), "-o", str(out), "--size", "64", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "images read 5" in result.output and "skipped 1: corrupt" in result.output
    assert "AUs from estimator (model)" in result.output
    assert len((out / "aus.csv").read_text().splitlines()) == 1 + 4

    # --labels geometry relabels from the manifest (no re-detection): other values, same faces.
    model_rows = read_aus(out / "aus.csv")[1]
    result = runner.invoke(main, ["prepare", str(src), "-o", str(out), "--size", "64", "--quiet",
                                  "--labels", "geometry"])
    assert result.exit_code == 0 and "AUs from estimator (geometry)" in result.output, result.output
    geo_rows = read_aus(out / "aus.csv")[1]
    assert [r[0] for r in geo_rows] == [r[0] for r in model_rows]
    model_v = np.array([[float(v) for v in r[1:]] for r in model_rows])
    geo_v = np.array([[float(v) for v in r[1:]] for r in geo_rows])
    assert np.abs(model_v - geo_v).max() > 0.5
    assert (geo_v >= 0).all() and (geo_v <= 5).all() and (model_v >= 0).all() and (model_v <= 5).all()

    for args, message in [([str(tmp_path / "missing"), "-o", str(out)], "not a folder of photos"),
                          ([str(src), "-o", str(out), "--size", "128"], "size=64"),
                          ([str(src), "-o", str(tmp_path / "o2"), "--pad", "-1"], "--pad"),
                          ([str(src), "-o", str(tmp_path / "o2"), "--labels", "openface"], "--labels"),
                          ([str(tmp_path), "-o", str(tmp_path / "inside")], "inside a source")]:
        result = runner.invoke(main, ["prepare", *args, "--quiet"])
        assert result.exit_code == 1, args
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, result.stderr)
    assert not (tmp_path / "o2").exists()
