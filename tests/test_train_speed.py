"""The fast training step (--data-on-device, --fused-adam, --compile) against today's, on
real faces on the CPU: the same batches, the same losses and weights. torch.compile runs
with the aot_eager backend here (the same graphs as inductor, no code generation: inductor
takes minutes on 2 cores); the CUDA checks are in test_gpu_kit.py (marked cuda)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from test_train import SHARED, TINY, _write_project

from gan_anim.motion import mirror_landmarks
from gan_anim.training.data import make_batch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} absent (shared face data)")
    return _write_project(tmp_path_factory.mktemp("faces") / "set")


def test_device_batches_are_make_batch_bit_for_bit(faces):
    from gan_anim.training.data import batch_plan, load_dataset
    from gan_anim.training.device_batches import DeviceBatches

    ds = load_dataset(faces, 64, "train", min_images=4)
    for rank, world in ((0, 1), (0, 2), (1, 2)):
        source = DeviceBatches(ds, torch.device("cpu"), 2, seed=3, rank=rank, world=world)
        flips = 0
        for step in range(8):  # more than an epoch (10 faces, 4 per step): a new permutation too
            ours, ref = source(step), make_batch(ds, step, 2, 3, rank, world)
            for name, a, b in zip(("x", "real", "target", "landmarks"), ours, ref):
                assert a.dtype == b.dtype and torch.equal(a, b), (rank, world, step, name)
            flips += int(batch_plan(ds, step, 2, 3, rank, world)[1].sum())
        assert 0 < flips < 16  # flipped and plain rows both compared
    # the mirror kept on the device is motion.mirror_landmarks
    lms = ds.landmarks[:3]
    mirrored = lms[:, source.mirror].clone()
    mirrored[..., 0] = 1 - mirrored[..., 0]
    assert torch.equal(mirrored, mirror_landmarks(lms))


def test_fast_step_gives_todays_losses_and_weights(faces):
    """GANTrainer with fused Adam on DeviceBatches against plain Adam on make_batch: 4
    steps (2 generator updates, 2 gradient penalties)."""
    from gan_anim.training.data import load_dataset
    from gan_anim.training.device_batches import DeviceBatches
    from gan_anim.training.options import TrainOptions
    from gan_anim.training.runtime import Runtime
    from gan_anim.training.trainer import GANTrainer

    ds = load_dataset(faces, 64, "train", min_images=4)
    opts = TrainOptions(batch_size=4, critic_steps=2, gp_every=2)
    rt = Runtime(torch.device("cpu"))
    plain, fused = GANTrainer(TINY, opts, rt), GANTrainer(TINY, opts, rt, fused=True)
    assert fused.opt_g.defaults["fused"] and not plain.opt_g.defaults["fused"]
    for t in (plain, fused):
        with torch.no_grad():
            t.G.motion.basis.normal_(0, 0.01, generator=torch.Generator().manual_seed(1))
    start = _flat({"generator": plain.G.state_dict(), "critic": plain.D.state_dict()})
    source = DeviceBatches(ds, torch.device("cpu"), 4, opts.seed)
    for step in range(4):
        a = plain.step(step, *make_batch(ds, step, 4, opts.seed))
        b = fused.step(step, *source(step))
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-6, msg=f"step {step} {key}")
    ref, ours = ({"generator": t.G.state_dict(), "critic": t.D.state_dict()} for t in (plain, fused))
    moved, diff = (_flat(ref) - start).abs(), (_flat(ours) - _flat(ref)).abs()
    assert moved.mean() > 1e-5 and diff.mean() < 0.02 * moved.mean(), (diff.mean(), moved.mean())


def test_resume_keeps_adam_fused_or_not_as_asked(faces):
    """A checkpoint of plain Adam resumes fused, and one of fused Adam resumes plain."""
    from gan_anim.training.data import load_dataset
    from gan_anim.training.options import TrainOptions
    from gan_anim.training.runtime import Runtime
    from gan_anim.training.trainer import GANTrainer

    ds = load_dataset(faces, 64, "train", min_images=2)
    opts, rt = TrainOptions(batch_size=2, critic_steps=1), Runtime(torch.device("cpu"))
    for saved_fused in (False, True):
        first = GANTrainer(TINY, opts, rt, fused=saved_fused)
        first.step(0, *make_batch(ds, 0, 2, 0))
        blob = first.state(1, {})
        again = GANTrainer(TINY, opts, rt, fused=not saved_fused)
        again.load_state(blob)
        again.step(1, *make_batch(ds, 1, 2, 0))
        assert all(bool(g["fused"]) is (not saved_fused) for g in again.opt_g.param_groups)
        steps = [st["step"] for st in again.opt_d.state.values()]
        assert steps and all(float(s) == 2 for s in steps)


def _flat(blob: dict) -> torch.Tensor:
    return torch.cat([v.flatten().float() for part in ("generator", "critic")
                      for v in blob[part].values() if v.is_floating_point()])


def _run(faces, out: Path, **speed):
    from gan_anim.training.loop import train

    lines = []
    last = train(faces, out, preset=TINY, steps=4, batch_size=4, critic_steps=2, gp_every=2,
                 checkpoint_every=2, device="cpu", progress=False, log=lines.append, **speed)
    logs = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    return torch.load(last, weights_only=True), logs, lines


def _assert_same_run(ref, fast, start, rtol: float):
    (a, a_logs, _), (b, b_logs, _) = ref, fast
    assert [r["step"] for r in a_logs] == [r["step"] for r in b_logs] == [2, 4]
    for ra, rb in zip(a_logs, b_logs):
        for key in ("d_loss", "gp", "d_au", "g_adv", "g_au", "cycle", "attention"):
            assert rb[key] == pytest.approx(ra[key], rel=rtol, abs=1e-6), key
    moved = (_flat(a) - start).abs()
    diff = (_flat(b) - _flat(a)).abs()
    # Adam's first steps move each weight by about lr whatever its gradient, so a weight whose
    # gradient is ~0 may go either way on float noise: the bulk must agree
    assert moved.mean() > 1e-5
    assert diff.mean() < 0.02 * moved.mean(), (diff.mean(), moved.mean())


@pytest.fixture(scope="module")
def today(faces, tmp_path_factory):
    """Today's step (make_batch, plain Adam, eager: the CPU defaults), and the weights it
    started from (seed 0, with the motion model fitted on the data before step 0)."""
    from gan_anim.model import Critic, Generator

    run = _run(faces, tmp_path_factory.mktemp("today") / "run")
    torch.manual_seed(0)
    g, d = Generator(TINY), Critic(TINY)
    g.load_state_dict({k: (v if k.startswith("motion.") else g.state_dict()[k])
                       for k, v in run[0]["generator"].items()})
    return run, _flat({"generator": g.state_dict(), "critic": d.state_dict()})


@pytest.mark.slow
def test_fused_adam_and_device_batches_train_as_today(faces, today, tmp_path):
    ref, start = today
    fast = _run(faces, tmp_path / "fast", fused_adam="on", data_on_device="on")
    assert "data on the device, fused Adam" in " ".join(fast[2])
    assert not any("data on the device" in line for line in ref[2])  # the CPU default is unchanged
    _assert_same_run(ref, fast, start, rtol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["on", "graphs"])
def test_compiled_step_trains_as_today(faces, today, tmp_path, monkeypatch, mode):
    monkeypatch.setenv("GAN_ANIM_COMPILE_BACKEND", "aot_eager")
    ref, start = today
    fast = _run(faces, tmp_path / mode, fused_adam="on", data_on_device="on", compile=mode)
    assert "compiled" in " ".join(fast[2])
    _assert_same_run(ref, fast, start, rtol=1e-4)


def test_speed_options_parse_and_bad_values_fail_cleanly(tmp_path):
    import subprocess

    from click.testing import CliRunner

    from gan_anim.cli import main
    from gan_anim.training.options import RunOptions
    from gan_anim.training.trainer import GANTrainer

    res = CliRunner().invoke(main, ["train", "--help"])
    for opt in ("--compile [off|on|graphs]", "--fused-adam [auto|on|off]", "--data-on-device [auto|on|off]"):
        assert opt in res.output
    assert (RunOptions().compile, RunOptions().fused_adam, RunOptions().data_on_device) == ("off", "auto", "auto")
    res = subprocess.run([sys.executable, "-m", "gan_anim", "train", "--data", str(tmp_path), "--out",
                          str(tmp_path / "r"), "--compile", "fast"], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 1 and "Invalid value for '--compile'" in res.stderr
    with pytest.raises(ValueError, match="compile must be one of"):
        GANTrainer(TINY, None, None, compile="max")


def test_fused_spline_flow_is_thin_plate_flow(faces, monkeypatch):
    """The broadcast-sum form of the warp's flow (compiled in a --compile run) is
    ThinPlate.flow within float64 rounding, on real faces' landmarks moved by real AUs."""
    from gan_anim.aus import AU_NAMES
    from gan_anim.motion import LandmarkMotion
    from gan_anim.training.data import load_dataset
    from gan_anim.training.motion_fit import fit_motion
    from gan_anim.training.spline_flow import SplineFlow, evaluate

    ds = load_dataset(faces, 64, "train", min_images=4)
    fit = fit_motion(ds.landmarks.numpy(), ds.aus.numpy(), AU_NAMES)
    motion = LandmarkMotion(fit["mean"], fit["basis"])
    target = torch.rand(len(ds), 17, generator=torch.Generator().manual_seed(0))
    spline, _ = motion.spline(ds.landmarks, ds.aus, target)
    ref = spline.flow(64)
    assert ref.abs().max() > 1e-3  # the faces move
    torch.testing.assert_close(evaluate(spline.ctrl, spline.coef, 64), ref, atol=1e-6, rtol=0)
    monkeypatch.setenv("GAN_ANIM_COMPILE_BACKEND", "aot_eager")
    torch.testing.assert_close(SplineFlow(backend="aot_eager", dynamic=False)(spline, 64), ref, atol=1e-6, rtol=0)
