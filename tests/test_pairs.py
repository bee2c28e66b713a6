"""cfee's training people in the pack (human FACS AUs, person ids) and the pair loss: the
generator's output compared with a real photo of the same person showing the target AUs."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from gan_anim.aus import AU_NAMES, AU_SCALE
from gan_anim.training.cfee import read_labels, read_people
from gan_anim.training.data import STABLE_POINTS, _paired_rows, batch_indices, make_batch
from gan_anim.training.losses import face_region, pair_loss
from gan_anim.training.pack import load_pack, read_pack
from gan_anim.training.pack_writer import main as pack_main

ROOT = Path(__file__).resolve().parents[1]
HELDOUT = ROOT / "benchmarks" / "splits" / "cfee_heldout_people.txt"
CACHE = ROOT / "data" / "cfee_landmarks.npz"  # tools/train_aus.py's; detected when absent


@pytest.fixture(scope="module")
def cfee_pack(shared_data, tmp_path_factory):
    """6 UTKFace photos (gan-anim prepare) + cfee's first 2 training people, as make gpu-pack does."""
    from gan_anim.training.prepare import prepare_dataset

    tmp = tmp_path_factory.mktemp("cfee-pack")
    raw = tmp / "raw"
    raw.mkdir()
    for p in sorted((shared_data / "utkface_crop_part1" / "images").glob("2*.jpg"))[:6]:
        shutil.copy(p, raw / p.name)
    prepare_dataset(raw, tmp / "prepared", size=128, workers=1, progress=False, test_fraction=0.34)
    args = [str(tmp / "prepared"), str(tmp / "t.pack"), "--quality", "84", "--cfee", str(shared_data / "cfee"),
            "--cfee-heldout", str(HELDOUT), "--cfee-people", "2"]
    if CACHE.is_file():
        args += ["--cfee-landmarks", str(CACHE)]
    assert pack_main(args) == 0
    return tmp / "t.pack"


def test_cfee_rows_are_training_people_with_their_human_codes(cfee_pack, shared_data):
    arrays = read_pack(cfee_pack)
    person, source, split = arrays["person"], arrays["source"], arrays["split"]
    cfee = person >= 0
    assert [str(s) for s in arrays["source_names"]] == ["shared", "cfee"]
    assert cfee.sum() >= 15 and (~cfee).sum() >= 5
    assert (source[cfee] == 1).all() and (source[~cfee] == 0).all()
    assert (split[cfee] == 0).all()                                  # training split only
    assert not set(person[cfee].tolist()) & read_people(HELDOUT)      # never a held-out person
    assert len(set(person[cfee].tolist())) == 2
    aus = arrays["aus"]
    assert np.isfinite(aus).all() and aus.min() >= 0 and aus.max() <= AU_SCALE
    table = read_labels(shared_data / "cfee")
    by_file = {f"cfee__{Path(f).stem}.png": k for k, f in enumerate(table["files"])}
    names = arrays["names"]
    coded = [j for j, a in enumerate(AU_NAMES) if a != "AU45"]
    for i in np.flatnonzero(cfee):
        k = by_file[names[i]]
        assert table["identity"][k] == person[i]
        human = table["labels"][k]
        ok = [j for j in coded if np.isfinite(human[j])]
        np.testing.assert_allclose(aus[i, ok], human[ok], atol=0.006)  # the coders' values, as stored
    lms = arrays["landmarks"][cfee].astype(np.float32)
    eyes = lms[:, 36:48].mean(1)
    assert np.abs(eyes - eyes.mean(0)).max() < 0.05                  # aligned like the prepared faces


def test_paired_rows_are_another_photo_of_the_same_person(cfee_pack):
    ds = load_pack(cfee_pack, 64)
    assert ds.person is not None and any("person id" in n for n in ds.notes)
    seen = 0
    for step in range(5):
        idx, partner = _paired_rows(ds, batch_indices(len(ds), step, 8, 0), step, 0, 0.5, 1.0)
        paired = partner >= 0
        assert (ds.person[idx[paired]] == ds.person[partner[paired]]).all()
        assert (idx[paired] != partner[paired]).all()
        seen += int(paired.sum())
        x, real, target, lms, pair = make_batch(ds, step, 8, 0, pairs=(0.5, 1.0))
        assert torch.equal(pair.rows, paired) and pair.images.shape == x.shape
        assert torch.equal(real, ds.aus[idx])
        assert torch.equal(target[paired], ds.aus[partner[paired]])  # the partner's AUs, no noise
        off = make_batch(ds, step, 8, 0, pairs=(0.0, 0.0))           # pairs off: the batch as before
        base = make_batch(ds, step, 8, 0)
        assert off[4] is None and all(torch.equal(a, b) for a, b in zip(off[:4], base))
    assert seen >= 10


def test_batches_on_the_device_pair_as_make_batch_does(cfee_pack):
    """--data-on-device with the pair loss: the same rows, partners, targets and registered
    partner photos as make_batch, bit for bit (the same code on the CPU)."""
    from gan_anim.training.device_batches import DeviceBatches

    ds = load_pack(cfee_pack, 64)
    source = DeviceBatches(ds, torch.device("cpu"), 8, seed=0, pairs=(0.5, 1.0))
    paired = 0
    for step in range(4):
        ours, ref = source(step), make_batch(ds, step, 8, 0, pairs=(0.5, 1.0))
        for a, b in zip(ours[:4], ref[:4]):
            assert torch.equal(a, b), step
        for a, b in zip(ours[4], ref[4]):
            assert torch.equal(a, b), step
        paired += int(ref[4].rows.sum())
    assert paired >= 8
    off = DeviceBatches(ds, torch.device("cpu"), 8, seed=0, pairs=(0.0, 0.0))(0)
    assert off[4] is None and all(torch.equal(a, b) for a, b in zip(off[:4], make_batch(ds, 0, 8, 0)))


def test_register_moves_the_partner_onto_the_rows_framing(cfee_pack):
    ds = load_pack(cfee_pack, 128)
    _, _, _, lms, pair = make_batch(ds, 0, 16, 0, pairs=(1.0, 1.0))
    rows = pair.rows
    assert rows.sum() >= 8
    k = list(STABLE_POINTS)
    err = (pair.landmarks[rows][:, k] - lms[rows][:, k]).norm(dim=-1).mean() * 128
    assert err < 2.5, f"stable points {err:.2f} px apart after registration"


def test_pair_loss_is_zero_on_the_truth_and_positive_otherwise(cfee_pack):
    ds = load_pack(cfee_pack, 128)
    x, _, _, _, pair = make_batch(ds, 1, 16, 0, pairs=(1.0, 1.0))
    rows, truth, lms = pair.rows, pair.images, pair.landmarks
    assert rows.any()
    assert pair_loss(truth, truth, rows, lms).item() == 0.0
    fake = x.clone().requires_grad_(True)
    loss = pair_loss(fake, truth, rows, lms)
    assert loss.item() > 0.05                                        # another expression of the person
    loss.backward()
    assert fake.grad[rows].abs().sum() > 0 and fake.grad[~rows].abs().sum() == 0
    # outside the face region nothing counts
    region = face_region(lms, 128).bool().expand_as(truth)
    shifted = torch.where(region, truth, truth + 0.5)
    assert pair_loss(shifted, truth, rows, lms).item() == pytest.approx(0.0, abs=1e-6)
    assert pair_loss(truth + 0.1, truth, rows, lms).item() > 0.09
    none = torch.zeros_like(rows)
    assert pair_loss(x, truth, none, lms).item() == 0.0


def test_training_steps_with_the_pair_loss_on_a_real_pack(cfee_pack, tmp_path):
    from gan_anim.training.checkpoints import read_checkpoint
    from gan_anim.training.loop import train
    from gan_anim.training.options import LossWeights

    said = []
    last = train(cfee_pack, tmp_path / "run", preset="small", steps=2, batch_size=4, critic_steps=1,
                 checkpoint_every=2, weights=LossWeights(pair=5.0), paired_share=0.5, progress=False,
                 log=said.append, sample_count=2)
    blob = read_checkpoint(last)
    assert blob["options"]["weights"]["pair"] == 5.0 and blob["options"]["paired_share"] == 0.5
    record = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[-1])
    assert record["pair"] > 0 and np.isfinite(record["g_loss"])
    assert any("person id" in m for m in said)


def test_pack_writer_cfee_errors(cfee_pack, tmp_path, capsys, shared_data):
    prepared = cfee_pack.parent / "prepared"
    with pytest.raises(SystemExit):
        pack_main([str(prepared), str(tmp_path / "a.pack"), "--cfee", str(shared_data / "cfee")])
    assert "--cfee-heldout" in capsys.readouterr().err
    missing = tmp_path / "none.txt"
    assert pack_main([str(prepared), str(tmp_path / "b.pack"), "--cfee", str(shared_data / "cfee"),
                      "--cfee-heldout", str(missing)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "none.txt" in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "b.pack").exists()
