"""gan-anim train / export: networks, data validation, training mechanics, resume, DDP."""
from __future__ import annotations

import json
import math
import os
import pickle
import re
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA

from gan_anim.aus import AU_NAMES
from gan_anim.errors import GanAnimError
from gan_anim.model import PRESETS, Critic, Generator, ModelConfig, load_generator
from gan_anim.training.data import batch_indices, load_dataset, make_batch

SHARED = SHARED_DATA / "utkface_crop_part1" / "images"
TINY = ModelConfig(image_size=64, channels=8, res_blocks=1, critic_channels=8, critic_layers=3,
                   motion=True, color="luma")


# ----------------------------------------------------------------------- networks

@pytest.mark.parametrize("name", ["small", "medium", "paper"])
def test_network_shapes_and_ranges(name):
    cfg = PRESETS[name]
    torch.manual_seed(0)
    gen, critic = Generator(cfg), Critic(cfg)
    s = cfg.image_size
    x = torch.rand(2, 3, s, s) * 2 - 1
    color, attn = gen(x, torch.rand(2, 17))
    nc = 2 if cfg.color == "luma" else 3  # luma: luminance in [-1,1] + saturation in [0,1]
    assert color.shape == (2, nc, s, s) and attn.shape == (2, 1, s, s)
    assert color.min() >= -1 and color.max() <= 1
    if nc == 2:
        assert color[:, 1].min() >= 0
    assert attn.min() >= 0 and attn.max() <= 1
    score, aus = critic(x)
    k = s // 2 ** cfg.critic_layers
    assert score.shape == (2, 1, k, k) and aus.shape == (2, len(AU_NAMES))


def test_generator_fast_paths_match_plain_formulation():
    """The AU-map shortcut and merged heads compute the paper's G exactly."""
    import dataclasses

    torch.manual_seed(1)
    gen = Generator(dataclasses.replace(TINY, motion=False, color="rgb"))
    x, y = torch.rand(3, 3, 64, 64) * 2 - 1, torch.rand(3, 17)
    color, attn = gen(x, y)
    feat = gen.body(torch.cat([x, y.view(3, 17, 1, 1).expand(3, 17, 64, 64)], 1))
    torch.testing.assert_close(color, torch.tanh(gen.color(feat)), atol=1e-5, rtol=0)
    torch.testing.assert_close(attn, torch.sigmoid(gen.attention(feat)), atol=1e-5, rtol=0)


# ------------------------------------------------------------------------ data

def _write_project(root: Path, n: int = 12, size: int = 64, seed: int = 0) -> Path:
    import cv2

    from gan_anim.faces.detect import find_face

    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(seed)
    rows = ["file," + ",".join(AU_NAMES)]
    files, manifest = [], []
    for name in sorted(os.listdir(SHARED)):
        if len(files) == n:
            break
        img = cv2.imread(str(SHARED / name))
        status, _, lm = find_face(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
        if status != "ok":  # the motion models need each face's landmarks
            continue
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
        f = f"face{len(files):02d}.png"
        cv2.imwrite(str(root / "images" / f), img)
        files.append(f)
        rows.append(f + "," + ",".join(f"{v:.2f}" for v in rng.uniform(0, 5, 17)))
        manifest.append(json.dumps({"name": Path(f).stem, "status": "ok", "landmarks": lm.tolist()}))
    (root / "aus.csv").write_text("\n".join(rows) + "\n")
    (root / "manifest.jsonl").write_text("\n".join(manifest) + "\n")
    (root / "train.txt").write_text("\n".join(files[:-2]) + "\n")
    (root / "test.txt").write_text("\n".join(files[-2:]) + "\n")
    return root


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} absent (shared face data)")
    return _write_project(tmp_path_factory.mktemp("faces") / "set")


@pytest.fixture
def broken(faces, tmp_path):
    dst = tmp_path / "set"
    shutil.copytree(faces, dst)
    return dst


def test_project_layout_loads_and_batches(faces):
    ds = load_dataset(faces, 64, "train", min_images=4)
    assert ds.images.shape == (10, 3, 64, 64) and ds.images.dtype == torch.uint8
    assert ds.aus.shape == (10, 17) and 0 <= ds.aus.min() and ds.aus.max() <= 1
    assert ds.notes == []
    assert ds.landmarks.shape == (10, 68, 2)  # from manifest.jsonl, crop-side units
    assert 0.1 < ds.landmarks[:, 30].mean() < 0.9
    x, real, target, lms = make_batch(ds, 3, 4, seed=0)
    assert x.shape == (4, 3, 64, 64) and -1 <= x.min() and x.max() <= 1
    assert lms.shape == (4, 68, 2)
    assert 0 <= target.min() and target.max() <= 1
    x2, _, target2, _ = make_batch(ds, 3, 4, seed=0)
    assert torch.equal(x, x2) and torch.equal(target, target2)  # a pure function of (seed, step)


def test_target_sampling_covers_presets_and_single_aus():
    from gan_anim.training.data import _preset_table, sample_targets

    g = torch.Generator().manual_seed(0)
    real = torch.zeros(4000, 17)
    others = torch.full((4000, 17), 0.5)
    t = sample_targets(real, others, g, noise=0.1, preset_share=0.25, single_share=0.15)
    from_others = ((t - others).abs().amax(1) <= 0.1 + 1e-6).float().mean()
    single = ((t > 0).sum(1) == 1).float().mean()
    presets = _preset_table()
    is_preset = (((t[:, None, :] == 0) == (presets[None] == 0)).all(-1) & (presets.sum(1) > 0)).any(1)
    assert 0.55 < from_others < 0.65 and 0.1 < single < 0.2 and 0.18 < is_preset.float().mean() < 0.3
    # every AU reaches full strength somewhere
    assert (t.amax(0) > 0.9).all()
    # each epoch visits every image once; ranks take disjoint slices
    seen = torch.cat([batch_indices(10, s, 2, seed=0) for s in range(5)])
    assert sorted(seen.tolist()) == list(range(10))
    assert not set(batch_indices(10, 0, 2, 0, rank=0, world=2).tolist()) & set(
        batch_indices(10, 0, 2, 0, rank=1, world=2).tolist())


def test_resize_is_reported_once(faces):
    ds = load_dataset(faces, 32, "train")
    assert ds.images.shape[-1] == 32
    assert len(ds.notes) == 1 and "resized 10 of 10" in ds.notes[0]


def _edit_csv(path: Path, fn):
    lines = path.read_text().splitlines()
    path.write_text("\n".join(fn(lines)) + "\n")


def _set_cell(col: int, value: str):
    def fn(lines):
        cells = lines[1].split(",")
        cells[col] = value
        return [lines[0], ",".join(cells)] + lines[2:]
    return fn


def _drop_column(col: int):
    return lambda lines: [",".join(c for k, c in enumerate(r.split(",")) if k != col) for r in lines]


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "aus.csv").unlink(), "aus.csv: missing"),
    (lambda d: (d / "images" / "face03.png").unlink(), "have no image (e.g. face03.png)"),
    (lambda d: _edit_csv(d / "aus.csv", _drop_column(1 + AU_NAMES.index("AU12"))), "missing AU columns AU12"),
    (lambda d: _edit_csv(d / "aus.csv", _set_cell(1 + AU_NAMES.index("AU05"), "nan")), "AU05 is NaN"),
    (lambda d: _edit_csv(d / "aus.csv", _set_cell(17, "7.5")), "AU45=7.5 is outside 0..5"),
    (lambda d: _edit_csv(d / "aus.csv", lambda L: L[:3]), "8 train images have no AU row"),
    (lambda d: (d / "train.txt").unlink(), "train.txt: missing"),
])
def test_invalid_project_dataset(broken, damage, message):
    damage(broken)
    with pytest.raises(GanAnimError, match=re.escape(message)):
        load_dataset(broken, 64, "train")


def test_too_few_images_for_a_batch(faces):
    with pytest.raises(GanAnimError, match="10 train images, too few for one batch of 16"):
        load_dataset(faces, 64, "train", min_images=16)


def _write_official(root: Path, faces: Path) -> Path:
    (root / "imgs").mkdir(parents=True)
    table = {}
    for i, f in enumerate(sorted((faces / "images").iterdir())[:6]):
        import cv2

        cv2.imwrite(str(root / "imgs" / f"N_{i:04d}.jpg"), cv2.resize(cv2.imread(str(f)), (128, 128)))
        table[f"N_{i:04d}"] = np.full(17, i * 0.5)
    (root / "train_ids.csv").write_text("".join(f"N_{i:04d}.jpg\n" for i in range(5)) + "N_9999.jpg\n")
    (root / "test_ids.csv").write_text("N_0005.jpg\n")
    with open(root / "aus_openface.pkl", "wb") as fh:
        pickle.dump(table, fh, protocol=2)
    return root


def test_official_layout(faces, tmp_path):
    root = _write_official(tmp_path / "official", faces)
    ds = load_dataset(root, 64, "train")
    assert ds.names == [f"N_{i:04d}" for i in range(5)]
    assert torch.allclose(ds.aus[:, 0], torch.tensor([0, 0.1, 0.2, 0.3, 0.4]))
    assert any("skipped 1 train ids with no AUs" in n for n in ds.notes)
    assert any("resized 5 of 5" in n for n in ds.notes)


def test_official_pickle_cannot_run_code(faces, tmp_path):
    root = _write_official(tmp_path / "official", faces)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > /dev/null",))

    with open(root / "aus_openface.pkl", "wb") as fh:
        pickle.dump({"N_0000": Evil()}, fh)
    with pytest.raises(GanAnimError, match="refusing to load"):
        load_dataset(root, 64, "train")


# ---------------------------------------------------------------------- training

@pytest.fixture(scope="module")
def run4(faces, tmp_path_factory):
    """4 steps of a tiny model in one go (the reference for resume)."""
    from gan_anim.training.loop import train

    out = tmp_path_factory.mktemp("run") / "a"
    last = train(faces, out, preset=TINY, steps=4, batch_size=4, critic_steps=2, decay_start=4,
                 checkpoint_every=2, keep=1, device="cpu", progress=False, log=lambda m: None)
    return out, last


def test_training_steps(run4, tmp_path):
    from gan_anim.training.checkpoints import export_weights

    out, last = run4
    assert last == out / "checkpoint-0000004.pt"
    assert [p.name for p in out.glob("checkpoint-*.pt")] == ["checkpoint-0000004.pt"]  # keep=1
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4]
    for r in records:
        for key in ("d_loss", "gp", "d_au", "g_loss", "g_au", "cycle", "attention"):
            assert math.isfinite(r[key]), key
        assert 0 < r["attention"] < 1 and r["images_per_s"] > 0
    from PIL import Image

    grid = Image.open(out / "samples" / "step-0000004.png")
    assert grid.size == (2 * (72 + 2 * 64), 2 * 9 * 64)  # 2 test faces; input + 4 x (result, A); x2
    torch.manual_seed(0)
    initial = Generator(TINY).state_dict()
    blob = torch.load(last, weights_only=True)
    changed = [k for k, v in initial.items() if not torch.equal(v, blob["generator"][k])]
    assert len(changed) > len(initial) // 2
    for half in (False, True):
        path = export_weights(out, tmp_path / f"w{half}.pt", half=half)
        gen = load_generator(path)
        ref = Generator(TINY)
        ref.load_state_dict(blob["generator"])
        x, y = torch.rand(1, 3, 64, 64) * 2 - 1, torch.rand(1, 17)
        torch.testing.assert_close(gen(x, y)[0], ref(x, y)[0], atol=2e-2 if half else 1e-6, rtol=0)


def test_resume_is_identical(faces, run4, tmp_path):
    from gan_anim.training.loop import train

    out = tmp_path / "b"
    kw = dict(preset=TINY, batch_size=4, critic_steps=2, decay_start=4, checkpoint_every=2,
              device="cpu", progress=False, log=lambda m: None)
    train(faces, out, steps=2, **kw)
    with pytest.raises(GanAnimError, match="already holds checkpoints"):
        train(faces, out, steps=4, **kw)
    train(faces, out, steps=4, resume=True, **kw)
    a = torch.load(run4[1], weights_only=True)
    b = torch.load(out / "checkpoint-0000004.pt", weights_only=True)
    for part in ("generator", "critic"):
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), (part, k)
    assert a["opt_g"]["state"][0]["step"] == b["opt_g"]["state"][0]["step"]


def test_cli_train_and_export_errors(tmp_path):
    from click.testing import CliRunner

    from gan_anim.cli import main

    res = CliRunner().invoke(main, ["train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "r")])
    assert res.exit_code == 1 and "no such data folder" in res.output
    res = CliRunner().invoke(main, ["export", str(tmp_path), "-o", str(tmp_path / "w.pt")])
    assert res.exit_code == 1 and "no checkpoint" in res.output


# --------------------------------------------------------------------------- DDP

def _ddp_worker(rank: int, world: int, port: int, data: str, out: str):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    from gan_anim.training.data import load_dataset, make_batch
    from gan_anim.training.loop import train
    from gan_anim.training.options import TrainOptions
    from gan_anim.training.runtime import setup_runtime
    from gan_anim.training.trainer import GANTrainer

    rt = setup_runtime("cpu")
    opts = TrainOptions(batch_size=2, critic_steps=1, seed=0)
    ds = load_dataset(data, TINY.image_size, "train", min_images=4)
    tr = GANTrainer(TINY, opts, rt)
    for step in range(2):  # every step updates both networks
        tr.step(step, *make_batch(ds, step, 2, 0, rt.rank, rt.world))
    torch.save({"G": tr.G.state_dict(), "D": tr.D.state_dict()}, f"{out}/rank{rank}.pt")
    # the whole loop under torchrun-style variables: rank 0 writes the checkpoint
    train(data, f"{out}/run", preset=TINY, steps=2, batch_size=2, critic_steps=1, device="cpu",
          progress=False, log=lambda m: None)


@pytest.mark.slow
def test_ddp_two_cpu_processes_stay_identical(faces, tmp_path):
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(faces), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    torch.manual_seed(0)
    initial = Generator(TINY).state_dict()
    for part in ("G", "D"):
        for k in r0[part]:
            assert torch.equal(r0[part][k], r1[part][k]), (part, k)
    assert not torch.equal(r0["G"]["body.0.weight"], initial["body.0.weight"])
    assert [p.name for p in (tmp_path / "run").glob("checkpoint-*.pt")] == ["checkpoint-0000002.pt"]


def test_log_means_average_each_loss_over_the_steps_that_report_it():
    """The generator's losses come every critic_steps steps and the gradient penalty every
    gp_every: each is averaged over its own steps, not diluted by the others."""
    from gan_anim.training.stats import Collector

    stats = Collector()
    for step in range(10):
        values = {"d_loss": float(step)}
        if step % 5 == 0:
            values["g_loss"] = 2.0 + step
        stats.report(values)
    stats.collect()
    assert stats.means() == {"d_loss": 4.5, "g_loss": 4.5}   # (2 + 7) / 2, not 9 / 10
    stats.reset()
    stats.report({"gp": 3.0})
    stats.collect()
    assert stats.means() == {"gp": 3.0}
