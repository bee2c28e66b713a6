"""The GPU kit (docs/gpu-kit.md): the pack, compact checkpoints, a CPU rehearsal of
tools/gpu_run.sh, and the CUDA checks it runs on the GPU machine (marked ``cuda``:
skipped here, ``pytest -m cuda`` there)."""
from __future__ import annotations

import copy
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from gan_anim.aus import AU_NAMES, AU_SCALE
from gan_anim.errors import GanAnimError
from gan_anim.model import PRESETS, Generator, load_generator
from gan_anim.training.data import detect_layout, load_dataset, read_landmarks
from gan_anim.training.pack import load_pack, read_pack
from gan_anim.training.pack_writer import encode_face, write_pack, write_pack_arrays

ROOT = Path(__file__).resolve().parents[1]
PACK = ROOT / "gpu-pack" / "faces128.pack"
EXAMPLE = ROOT / "examples" / "astronaut.jpg"
# the device of the tests marked cuda (GPU_KIT_TEST_DEVICE=cpu dry-runs them on the CPU)
DEV = torch.device(os.environ.get("GPU_KIT_TEST_DEVICE", "cuda"))


def _load_kit():
    spec = importlib.util.spec_from_file_location("gpu_kit", ROOT / "tools" / "gpu_kit.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


kit = _load_kit()


def synthetic_pack(path: Path, n_train: int, n_test: int, size: int = 128, seed: int = 0) -> Path:
    """A pack of smooth random faces (every 3rd greyscale), random AUs, plausible landmarks."""
    import cv2

    rng = np.random.default_rng(seed)
    n = n_train + n_test
    jpegs = []
    for k in range(n):
        img = cv2.resize(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), (size, size),
                         interpolation=cv2.INTER_CUBIC)
        if k % 3 == 0:
            img = np.repeat(img[..., :1], 3, axis=2)
        jpegs.append(encode_face(img, 90))
    aus = np.round(rng.uniform(0, AU_SCALE, (n, len(AU_NAMES))), 2)
    names = [f"face{k:03d}.png" for k in range(n)]
    split = np.array([0] * n_train + [1] * n_test, np.uint8)
    write_pack_arrays(path, jpegs, aus, names, split, kit.synthetic_landmarks(n, seed), size, 90)
    return path


# ------------------------------------------------------------------ the pack

@pytest.fixture(scope="module")
def prepared_tiny(shared_data, tmp_path_factory):
    """gan-anim prepare on 18 real photos at 128 px (3/4 train, 1/4 test)."""
    from gan_anim.training.prepare import prepare_dataset

    raw = tmp_path_factory.mktemp("raw")
    for p in sorted((shared_data / "utkface_crop_part1" / "images").glob("2*.jpg"))[:18]:
        shutil.copy(p, raw / p.name)
    out = tmp_path_factory.mktemp("prepared")
    summary = prepare_dataset(raw, out, size=128, workers=2, progress=False, test_fraction=0.25)
    assert summary["faces_kept"] >= 12
    return out


@pytest.fixture(scope="module")
def tiny_pack(prepared_tiny, tmp_path_factory):
    return write_pack(prepared_tiny, tmp_path_factory.mktemp("pack") / "tiny.pack", quality=90)["path"]


@pytest.fixture(scope="module")
def tiny_cfee_pack(prepared_tiny, shared_data, tmp_path_factory):
    """The tiny pack plus cfee's first 2 training people (person ids), as make gpu-pack builds it."""
    from gan_anim.training.cfee import cfee_rows

    cache = ROOT / "data" / "cfee_landmarks.npz"
    extra = cfee_rows(shared_data / "cfee", ROOT / "benchmarks" / "splits" / "cfee_heldout_people.txt",
                      cache=cache if cache.is_file() else None, people=2)
    path = tmp_path_factory.mktemp("pack") / "tiny-cfee.pack"
    return write_pack(prepared_tiny, path, quality=90, extra=extra)["path"]


def test_pack_round_trip_matches_the_prepared_folder(prepared_tiny, tiny_pack):
    assert detect_layout(tiny_pack) == "pack"
    with np.load(tiny_pack, allow_pickle=False) as z:  # a plain .npz, no pickles
        assert {"jpeg", "offsets", "aus", "landmarks", "names", "split"} <= set(z.files)
        assert z["landmarks"].dtype == np.float16 and z["aus"].dtype == np.float32
    with zipfile.ZipFile(tiny_pack) as zf:  # JPEG bytes stored, the rest deflated
        kinds = {i.filename: i.compress_type for i in zf.infolist()}
    assert kinds["jpeg.npy"] == zipfile.ZIP_STORED and kinds["landmarks.npy"] == zipfile.ZIP_DEFLATED
    for split in ("train", "test"):
        folder = load_dataset(prepared_tiny, 128, split)
        pack = load_dataset(tiny_pack, 128, split)
        assert pack.names == folder.names                      # same faces, same order, same split
        assert torch.equal(pack.aus, folder.aus)               # exact
        expected = read_landmarks(prepared_tiny, folder.names).astype(np.float16).astype(np.float32)
        assert torch.equal(pack.landmarks, torch.from_numpy(expected))  # exact float16 of the folder's
        assert (pack.landmarks - folder.landmarks).abs().max() < 5e-4
        diff = pack.images.float() - folder.images.float()
        psnr = 10 * np.log10(255 ** 2 / diff.square().mean().item())
        assert psnr > 36, psnr                                  # JPEG quality 90
    small = load_dataset(tiny_pack, 64, "test")
    assert small.images.shape[-1] == 64 and "INTER_AREA" in small.notes[0]


def test_synthetic_pack_greyscale_resize_and_errors(tmp_path):
    path = synthetic_pack(tmp_path / "s.pack", 6, 3)
    arrays = read_pack(path)
    train = load_pack(path, 128, "train")
    assert train.names == [f"face{k:03d}.png" for k in range(6)]
    assert torch.equal(train.aus, torch.from_numpy(arrays["aus"][:6] / np.float32(AU_SCALE)))
    grey = train.images[0]
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])  # 1-channel JPEG
    assert load_pack(path, 128, "test").landmarks.shape == (3, 68, 2)
    with pytest.raises(GanAnimError, match="too few"):
        load_dataset(path, 128, "train", min_images=7)
    (tmp_path / "notes.pack").write_text("not a pack")
    with pytest.raises(GanAnimError, match="not a training set"):
        load_dataset(tmp_path / "notes.pack", 128)
    cut = tmp_path / "cut.pack"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(GanAnimError):
        load_dataset(cut, 128)


# ---------------------------------------------------------- compact checkpoints

def test_compact_checkpoint_expands_and_resumes(tmp_path):
    from gan_anim.model import ModelConfig
    from gan_anim.training.data import make_batch
    from gan_anim.training.faceset import FaceDataset
    from gan_anim.training.options import TrainOptions
    from gan_anim.training.runtime import Runtime
    from gan_anim.training.trainer import GANTrainer

    cfg = ModelConfig(image_size=32, channels=8, res_blocks=1, critic_channels=8, critic_layers=3,
                      motion=True, color="luma")
    trainer = GANTrainer(cfg, TrainOptions(batch_size=2), Runtime(torch.device("cpu")))
    ds = FaceDataset(torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8), torch.rand(4, 17),
                     list("abcd"), [], torch.from_numpy(kit.synthetic_landmarks(4)))
    trainer.step(0, *make_batch(ds, 0, 2, 0))
    full = trainer.state(1, {"wall_s": 1.0})
    small = kit.compact_checkpoint(full)
    assert small["compact"] == kit.COMPACT_FORMAT
    state = small["opt_d"]["state"][0]
    assert "exp_avg" not in state and state["exp_avg_sq"].dtype == torch.bfloat16
    torch.save(small, tmp_path / "c.pt")
    (tmp_path / "parts").mkdir()
    parts = kit.split_file(tmp_path / "c.pt", tmp_path / "parts", "checkpoint.pt", part_bytes=20_000)
    assert len(parts) > 1 and all(p.stat().st_size <= 20_000 for p in parts)
    resume = tmp_path / "resume"
    resume.mkdir()
    for p in parts:
        shutil.copy(p, resume / p.name)
    blob, where = kit.find_resume(resume)  # joins the parts, expands
    assert where.endswith("checkpoint.pt") and blob["step"] == 1 and "compact" not in blob
    st = blob["opt_d"]["state"][0]
    assert st["exp_avg"].abs().sum() == 0 and st["exp_avg_sq"].dtype == torch.float32
    torch.testing.assert_close(st["exp_avg_sq"], full["opt_d"]["state"][0]["exp_avg_sq"], rtol=1e-2, atol=0)
    again = GANTrainer(cfg, TrainOptions(batch_size=2), Runtime(torch.device("cpu")))
    again.load_state(blob)
    again.step(1, *make_batch(ds, 1, 2, 0))  # Adam continues from the expanded state


# ------------------------------------------------------------- CPU rehearsal

@pytest.mark.slow
def test_gpu_run_weights_first_call_skips_the_figure_stages(tiny_cfee_pack, tmp_path):
    """The next lease's first call (docs/gpu-kit.md): no CUDA tests, no compare, no end-to-end
    rows, so the budget goes to training; weights, checkpoint and the bench still come back."""
    out = tmp_path / "out"
    base = {k: v for k, v in os.environ.items() if k not in ("GPU_KIT_TRAIN_ARGS", "GPU_KIT_ARM_B")}
    env = dict(base, GPU_KIT_DEVICE="cpu", GPU_KIT_PACK=str(tiny_cfee_pack), GPU_KIT_WORK=str(tmp_path / "work"),
               GPU_KIT_RESUME=str(tmp_path / "no-resume"), GPU_KIT_PYTHON=sys.executable,
               GPU_KIT_BATCH="2", GPU_KIT_STEPS="1", GPU_KIT_TOTAL_S="300", GPU_KIT_BENCH_S="30",
               GPU_KIT_BENCH_ARGS="--presets small --batches 1 --min-time 0.01 --warmup 1 --train-batches 2 "
                                  "--train-steps 1 --train-warmup 1",
               GPU_KIT_PYTEST="0", GPU_KIT_COMPARE_STEPS="0", GPU_KIT_PIPELINE_S="0")
    proc = subprocess.run(["bash", str(ROOT / "tools" / "gpu_run.sh"), str(out), "7.7"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    figures = json.loads((out / "figures.json").read_text())
    assert set(figures["stages"]) == {"env", "train", "export", "bench"}, figures["stages"]
    assert not figures.get("compare") and not figures["bench"].get("pipeline")
    assert figures["train"]["ok"] and (out / "weights-medium-fp16.pt").stat().st_size > 0
    assert any(p.name.startswith("checkpoint.pt") for p in out.iterdir())


@pytest.mark.slow
def test_gpu_run_rehearsal_on_cpu(tiny_cfee_pack, tmp_path):
    """tools/gpu_run.sh end to end on the CPU: a tiny pack with cfee pairs, seconds of budget,
    the main run's default options (the pair loss among them)."""
    out, work = tmp_path / "out", tmp_path / "work"
    base = {k: v for k, v in os.environ.items() if k != "GPU_KIT_TRAIN_ARGS"}
    env = dict(base, GPU_KIT_DEVICE="cpu", GPU_KIT_PACK=str(tiny_cfee_pack), GPU_KIT_WORK=str(work),
               GPU_KIT_RESUME=str(tmp_path / "no-resume"), GPU_KIT_PYTHON=sys.executable,
               GPU_KIT_BATCH="2", GPU_KIT_STEPS="1", GPU_KIT_TOTAL_S="300", GPU_KIT_BENCH_S="30",
               GPU_KIT_BENCH_ARGS="--presets small --batches 1 --min-time 0.01 --warmup 1 --train-batches 2 "
                                  "--train-steps 1 --train-warmup 1 --pipeline-small --pipeline-without dlib,ffmpeg",
               GPU_KIT_PIPELINE_S="40", GPU_KIT_ARM_B="--lambda-au 40",
               GPU_KIT_COMPARE_STEPS="2", GPU_KIT_COMPARE_ARGS="--window 1",
               GAN_ANIM_COMPILE_BACKEND="aot_eager")  # inductor takes minutes on 2 cores
    proc = subprocess.run(["bash", str(ROOT / "tools" / "gpu_run.sh"), str(out), "0.5"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    files = {p.name: p.stat().st_size for p in out.iterdir()}
    assert len(files) <= 8 and max(files.values()) <= 16 * 2 ** 20, files
    assert {"weights-medium-fp16.pt", "weights-medium-b-fp16.pt", "samples.png", "log.jsonl",
            "figures.json", "run.log"} <= set(files)
    assert any(n.startswith("checkpoint.pt") for n in files)
    figures = json.loads((out / "figures.json").read_text())
    assert {"stages", "env", "tests", "train", "bench", "checkpoint", "files", "problems"} <= set(figures)
    assert figures["problems"] == []
    assert set(figures["stages"]) == {"env", "tests", "train", "export", "export-b", "compare", "bench"}
    assert figures["arm_b"]["step"] >= 1
    assert all(s["rc"] == 0 for s in figures["stages"].values()), figures["stages"]
    assert figures["env"]["no_dlib_ok"] and not figures["env"]["dlib_imported"]
    assert figures["env"]["pack"]["with_person_id"] >= 15
    assert figures["train"]["final_step"] == 1 and figures["train"]["ok"]
    assert figures["bench"]["inference"][0]["faces_per_s"] > 0
    assert figures["bench"]["training"][0]["images_per_s"] > 0
    animate = figures["bench"]["pipeline"][0]  # the end-to-end rows, as on the GPU machine (no dlib)
    assert animate["row"] == "animate" and animate["torch"]["seconds"] > 0 and "no dlib" in animate["notes"][0]
    assert [r["step"] for r in figures["bench"]["training"]] == ["today", "fast"]
    assert all(r["images_per_s"] > 0 for r in figures["bench"]["training"])
    compare = figures["compare"]  # today's step and the fast one (compiled), both loss curves
    assert compare["fast"]["compile"] == "on" and compare["fast"]["fused"] and compare["speedup"] > 0
    for arm in ("today", "fast"):
        assert [r["step"] for r in compare[arm]["log"]] == [1, 2] and compare[arm]["images_per_s"] > 0
    assert compare["today"]["log"][0]["d_loss"] == pytest.approx(compare["fast"]["log"][0]["d_loss"], rel=1e-4)
    assert set(compare["second_half_means"]) >= {"d_loss", "attention"}
    spec = importlib.util.spec_from_file_location("train_compare", ROOT / "tools" / "train_compare.py")
    tc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tc)
    assert tc.main(["plot", str(out / "figures.json"), "-o", str(tmp_path / "compare.png")]) == 0
    import cv2

    assert cv2.imread(str(tmp_path / "compare.png")).shape[1] == 900
    assert figures["tests"]["ran"]
    gen = load_generator(out / "weights-medium-fp16.pt")
    assert gen.cfg == PRESETS["medium"]
    blob = torch.load(out / "weights-medium-fp16.pt", weights_only=True)
    assert blob["generator"]["body.0.weight"].dtype == torch.float16
    from gan_anim.pipeline.photo import Animator

    result = Animator(out / "weights-medium-fp16.pt", "cpu").animate(EXAMPLE, tmp_path / "a.gif",
                                                                   to="happy", frames=2)
    assert (tmp_path / "a.gif").stat().st_size > 0 and result is not None
    # the checkpoint that came back resumes: join + expand
    resumed = kit.find_resume(out)
    assert resumed is not None and resumed[0]["step"] == 1
    weights = resumed[0]["options"]["weights"]  # the main run's default options reached it
    assert weights["attention"] == 0.2 and weights["au"] == 40 and weights["pair"] == 5
    assert resumed[0]["options"]["paired_share"] == 0.25
    assert "pair" in figures["train"]["last_losses"]  # the pair loss ran


# ------------------------------------------------------ CUDA (the GPU machine)

@pytest.fixture()
def exact_cuda():
    """fp32 without TF32 for cuda-vs-cpu comparisons; the flags are restored afterwards."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _motion_generator(preset: str) -> Generator:
    torch.manual_seed(0)
    gen = Generator(PRESETS[preset]).eval()
    with torch.no_grad():
        gen.motion.basis.normal_(0, 0.01)
    return gen


@pytest.mark.cuda
@pytest.mark.parametrize("preset", ["small", "medium"])
def test_generator_cuda_matches_cpu_fp32(preset, exact_cuda):
    from gan_anim.training.losses import generate

    gen = _motion_generator(preset)
    s = gen.cfg.image_size
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 3, s, s, generator=g) * 2 - 1
    y, src = torch.rand(4, 17, generator=g), torch.rand(4, 17, generator=g)
    lms = torch.from_numpy(kit.synthetic_landmarks(4))
    with torch.no_grad():
        ref = generate(gen, x, y, lms, src)
        cuda = copy.deepcopy(gen).to(DEV)
        out = generate(cuda, x.to(DEV), y.to(DEV), lms.to(DEV), src.to(DEV))
        cl = copy.deepcopy(gen).to(DEV).to(memory_format=torch.channels_last)
        out_cl = generate(cl, x.to(DEV).contiguous(memory_format=torch.channels_last), y.to(DEV), lms.to(DEV),
                          src.to(DEV))
    for name, a, b, c in zip(("image", "attention", "colour"), ref[:3], out[:3], out_cl[:3]):
        torch.testing.assert_close(b.cpu(), a, atol=1e-3, rtol=1e-3, msg=f"{preset} {name}")
        torch.testing.assert_close(c.cpu(), a, atol=1e-3, rtol=1e-3, msg=f"{preset} {name} channels_last")


@pytest.mark.cuda
def test_bf16_training_step_on_cuda_is_finite():
    from gan_anim.training.data import make_batch
    from gan_anim.training.faceset import FaceDataset
    from gan_anim.training.options import LossWeights, TrainOptions
    from gan_anim.training.runtime import Runtime
    from gan_anim.training.trainer import GANTrainer

    cfg = PRESETS["medium"]
    torch.manual_seed(0)
    trainer = GANTrainer(cfg, TrainOptions(batch_size=8, lr=2e-4, gp_every=4, weights=LossWeights(pair=5)),
                         Runtime(DEV, channels_last=True))
    with torch.no_grad():
        trainer.G.motion.basis.normal_(0, 0.01)
    n = 16
    ds = FaceDataset(torch.randint(0, 256, (n, 3, 128, 128), dtype=torch.uint8).to(DEV), torch.rand(n, 17).to(DEV),
                     [str(i) for i in range(n)], [], torch.from_numpy(kit.synthetic_landmarks(n)).to(DEV),
                     torch.arange(n) // 4)  # 4 people: the pair loss runs too
    before = trainer.G.body[0].weight.detach().clone()
    seen = set()
    for k in range(6):  # steps 0 and 5 update G; 0 and 4 add the gradient penalty
        logs = trainer.step(k, *make_batch(ds, k, 8, 0, pairs=(0.0, 0.5)))
        seen |= set(logs)
        bad = {key: float(v) for key, v in logs.items() if not torch.isfinite(v).all()}
        assert not bad, f"step {k}: {bad}"
    assert {"d_loss", "gp", "g_adv", "cycle", "pair"} <= seen
    assert not torch.equal(before, trainer.G.body[0].weight)
    assert all(torch.isfinite(p).all() for p in trainer.G.parameters())


@pytest.mark.cuda
def test_device_batches_on_cuda_are_make_batch():
    """--data-on-device on CUDA: the batches of make_batch on the CPU, bit for bit, built
    from two asynchronous copies of pinned memory."""
    from gan_anim.training.data import make_batch
    from gan_anim.training.device_batches import DeviceBatches
    from gan_anim.training.faceset import FaceDataset

    n = 40
    g = torch.Generator().manual_seed(0)
    ds = FaceDataset(torch.randint(0, 256, (n, 3, 128, 128), dtype=torch.uint8, generator=g),
                     torch.rand(n, 17, generator=g), [str(i) for i in range(n)], [],
                     torch.from_numpy(kit.synthetic_landmarks(n)))
    source = DeviceBatches(ds, DEV, 8, seed=1)
    assert source.ds.images.device.type == DEV.type
    batches = [source(step) for step in range(12)]  # queued without waiting, then compared
    for step, ours in enumerate(batches):
        for name, a, b in zip(("x", "real", "target", "landmarks"), ours, make_batch(ds, step, 8, 1)):
            assert a.device.type == DEV.type and torch.equal(a.cpu(), b), (step, name)


@pytest.mark.cuda
def test_fast_step_on_cuda_never_waits_for_the_gpu():
    """With --data-on-device (the CUDA default) a whole step, batch included, is queued
    without one host-device synchronisation, so the CPU runs ahead of the GPU
    (torch.cuda.set_sync_debug_mode("error") raises at the first one and names it)."""
    from gan_anim.training.device_batches import DeviceBatches
    from gan_anim.training.faceset import FaceDataset
    from gan_anim.training.options import TrainOptions
    from gan_anim.training.runtime import Runtime
    from gan_anim.training.trainer import GANTrainer

    n = 32
    g = torch.Generator().manual_seed(0)
    ds = FaceDataset(torch.randint(0, 256, (n, 3, 128, 128), dtype=torch.uint8, generator=g),
                     torch.rand(n, 17, generator=g), [str(i) for i in range(n)], [],
                     torch.from_numpy(kit.synthetic_landmarks(n)))
    trainer = GANTrainer(PRESETS["medium"], TrainOptions(batch_size=8, gp_every=2, critic_steps=2),
                         Runtime(DEV, channels_last=True), fused=True)
    with torch.no_grad():
        trainer.G.motion.basis.normal_(0, 0.01)
    source = DeviceBatches(ds, DEV, 8, 0)
    for step in range(4):  # warm-up: allocations, cuDNN's choices
        trainer.step(step, *source(step))
    if DEV.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
    try:
        logs = [trainer.step(step, *source(step)) for step in range(4, 8)]
    finally:
        if DEV.type == "cuda":
            torch.cuda.set_sync_debug_mode("default")
    assert all(torch.isfinite(v).all() for rec in logs for v in rec.values())


def _flow_case(n: int = 64):
    """(src, dst) landmarks: real faces of the pack moved by a motion model fitted on them,
    or synthetic ones moved by a few percent of the crop."""
    from gan_anim.training.motion_fit import fit_motion

    if PACK.is_file():
        arrays = read_pack(PACK)
        test = arrays["split"] == 1
        lms = arrays["landmarks"][test].astype(np.float32)
        aus = arrays["aus"][test] / np.float32(AU_SCALE)
        fit = fit_motion(lms, aus, AU_NAMES)
        src = torch.from_numpy(lms[:n])
        delta = torch.rand(n, 17, generator=torch.Generator().manual_seed(0)) - torch.from_numpy(aus[:n])
        move = (delta @ torch.from_numpy(fit["basis"]).flatten(1)).view(n, 68, 2)
        return src, src + move
    src = torch.from_numpy(kit.synthetic_landmarks(n))
    return src, src + 0.02 * torch.randn(n, 68, 2, generator=torch.Generator().manual_seed(0))


@pytest.mark.cuda
@pytest.mark.parametrize("tf32", [False, True], ids=["fp32", "tf32-as-train-sets-it"])
def test_landmark_flow_cuda_matches_cpu(tf32):
    """The thin-plate-spline warp on CUDA equals the CPU's within 1e-4 grid units (0.006 px
    at 128 px), also with matmul TF32 on, as ``training.runtime.setup_runtime`` sets it on CUDA: the
    spline is fitted and evaluated in float64 (its coefficients reach ~900 and cancel;
    rounding them to TF32 moved it by ~0.4 grid units, 25 px)."""
    from gan_anim.motion import ThinPlate

    src, dst = _flow_case()
    ref = ThinPlate(src, dst).flow(128)
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        out = ThinPlate(src.to(DEV), dst.to(DEV)).flow(128).cpu()
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved
    err = (out - ref).abs().max().item()
    assert err < 1e-4, f"max |cuda - cpu| = {err:.4g} grid units ({err * 64:.3g} px at 128 px)"


@pytest.mark.cuda
def test_fused_spline_flow_on_cuda_is_thin_plate_flow():
    """--compile's flow (training/spline_flow.py through inductor, one fused float64
    reduction) equals ThinPlate.flow's matmul form on the GPU."""
    from gan_anim.motion import ThinPlate
    from gan_anim.training.spline_flow import SplineFlow

    src, dst = _flow_case()
    spline = ThinPlate(src.to(DEV), dst.to(DEV))
    ref = spline.flow(128)
    with torch.autocast(DEV.type, dtype=torch.bfloat16):  # as in training: the flow stays float64
        ours = SplineFlow(dynamic=False)(spline, 128)
    err = (ours - ref).abs().max().item()
    assert ref.abs().max() > 1e-3 and err < 1e-6, err


@pytest.mark.cuda
def test_train_two_steps_on_cuda_writes_checkpoint(tmp_path):
    from gan_anim.training.checkpoints import read_checkpoint
    from gan_anim.training.loop import train

    pack = synthetic_pack(tmp_path / "tiny.pack", 12, 4)
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        last = train(pack, tmp_path / "run", preset="medium", steps=2, batch_size=4, checkpoint_every=1,
                     device=DEV.type, gp_every=1, progress=False, log=lambda m: None)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
    blob = read_checkpoint(last)
    assert blob["step"] == 2 and blob["config"]["image_size"] == 128
    assert all(torch.isfinite(v).all() for v in blob["generator"].values() if v.is_floating_point())
    assert len((tmp_path / "run" / "log.jsonl").read_text().splitlines()) == 2
    assert (tmp_path / "run" / "samples" / "step-0000002.png").is_file()


# ------------------------------------------- the composite on the device (end to end)

def _example_job(device: str, composite: str):
    """(animator, photo, its one face's job, facing "surprise") from the example and its faces
    found beforehand (benchmarks/astronaut_faces.json: the GPU machine has no dlib)."""
    from gan_anim.config import InferenceConfig
    from gan_anim.media.images import read_image
    from gan_anim.pipeline.photo import Animator

    faces = _bench_pipeline().example_faces(1.0)
    animator = Animator(config=InferenceConfig(device=device, composite=composite, precision="fp32"))
    image = read_image(EXAMPLE)
    return animator, image, animator.face_jobs(image, faces, "surprise", None)[0]


def _bench_pipeline():
    spec = importlib.util.spec_from_file_location("bench_gpu_pipeline", ROOT / "benchmarks" / "bench_gpu_pipeline.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.cuda
def test_torch_composite_on_cuda_matches_the_cpu_composite(exact_cuda):
    """The same edits blended by FaceBlender (OpenCV, CPU) and TorchBlender on the device:
    within 1 grey level, the rest of the photo untouched."""
    from gan_anim.render.blend import FaceBlender
    from gan_anim.render.torch_blend import TorchBlender, TorchCompositor

    animator, image, job = _example_job("cpu", "numpy")
    edit = animator.model.generate(job.crop[None], job.goal[None], job.landmarks[None], job.own[None])[0]
    ref, got = image.copy(), image.copy()
    fb = FaceBlender(image.shape, job.transform, animator.model.size)
    fb.blend(ref, edit, source=image)
    TorchCompositor(DEV).blend(got, TorchBlender(image.shape, job.transform, animator.model.size, DEV), edit, image)
    diff = np.abs(ref.astype(int) - got.astype(int))
    assert diff.max() <= 1, (diff.max(), (diff > 1).sum())
    outside = np.ones(image.shape[:2], bool)
    outside[fb.slices] = False
    assert np.array_equal(got[outside], image[outside])
    assert (ref != image).any(-1).sum() > 1000


@pytest.mark.cuda
def test_animate_on_cuda_composites_on_the_device(tmp_path):
    """``--device cuda``: the composite runs in torch on the GPU by default; a GIF (no ffmpeg
    needed) of the example, faces found beforehand."""
    animator = _example_job(DEV.type, "auto")[0]
    assert animator.model.composite == ("torch" if DEV.type == "cuda" else "numpy")  # the dry run: numpy
    res = animator.animate(EXAMPLE, tmp_path / "a.gif", to="surprise", frames=3,
                           faces=_bench_pipeline().example_faces(1.0))
    assert res.frames == 3 and res.timings["blend"] > 0 and (tmp_path / "a.gif").stat().st_size > 0


@pytest.mark.slow
def test_pipeline_bench_rehearses_the_gpu_machine_path(tmp_path):
    """bench_gpu_pipeline as the GPU machine runs it (no dlib, no ffmpeg: faces found
    beforehand, frames converted and dropped), at rehearsal sizes on the CPU."""
    pipe = _bench_pipeline()
    if not pipe.SHARED.is_dir():
        pytest.skip("shared data not found")
    assert pipe.write_faces(tmp_path / "faces", count=3) == 3
    rows = pipe.pipeline_rows("cpu", float("inf"), log=lambda r: None, small=True,
                              faces_dir=tmp_path / "faces", without=("dlib", "ffmpeg"))
    assert [r["row"] for r in rows] == ["animate", "video", "folder", "composite"]
    assert all(v > 0 for kind in ("torch", "numpy") for v in rows[3][kind].values())
    for r in rows[:3]:
        assert "no dlib" in r["notes"][0] and "no ffmpeg" in r["notes"][1]
        assert r["torch"]["seconds"] > 0 and r["numpy"]["seconds"] > 0 and r["speedup_vs_cpu_composite"] > 0
    assert rows[1]["torch"]["frames"] == 4 and rows[2]["torch"]["ok"] == 3
# the compiling tests last: if the stage's time runs out, the others have run
@pytest.mark.cuda
@pytest.mark.parametrize("compile_mode", ["on", "graphs"])
def test_compiled_fast_step_on_cuda_trains_as_today(compile_mode):
    """The fast step (data on the device, fused Adam, torch.compile / CUDA graphs) against
    today's on a small 128 px model in bf16: the same losses within bf16 noise, step by step."""
    from gan_anim.model import ModelConfig
    from gan_anim.training.data import make_batch
    from gan_anim.training.device_batches import DeviceBatches
    from gan_anim.training.faceset import FaceDataset
    from gan_anim.training.options import TrainOptions
    from gan_anim.training.runtime import Runtime
    from gan_anim.training.trainer import GANTrainer

    cfg = ModelConfig(image_size=128, channels=16, res_blocks=1, critic_channels=16, critic_layers=5,
                      motion=True, color="luma", upsample="resize")
    n = 32
    g = torch.Generator().manual_seed(0)
    ds = FaceDataset(torch.randint(0, 256, (n, 3, 128, 128), dtype=torch.uint8, generator=g),
                     torch.rand(n, 17, generator=g), [str(i) for i in range(n)], [],
                     torch.from_numpy(kit.synthetic_landmarks(n)))
    opts = TrainOptions(batch_size=8, lr=2e-4, gp_every=2, critic_steps=2)
    rt = Runtime(DEV, channels_last=True)
    today, fast = GANTrainer(cfg, opts, rt), GANTrainer(cfg, opts, rt, compile=compile_mode, fused=True)
    for t in (today, fast):
        with torch.no_grad():
            t.G.motion.basis.normal_(0, 0.01, generator=torch.Generator().manual_seed(1))
    source, placed = DeviceBatches(ds, DEV, 8, 0), FaceDataset(ds.images.to(DEV), ds.aus, ds.names, [],
                                                               ds.landmarks.to(DEV))
    for step in range(6):  # every kind of step: G update, gradient penalty, both, neither
        a = today.step(step, *make_batch(placed, step, 8, 0))
        b = fast.step(step, *source(step))
        for key in a:
            assert torch.isfinite(b[key]).all(), (step, key)
            if step < 3:  # bf16, other kernels: the runs drift apart slowly
                torch.testing.assert_close(b[key].float().cpu(), a[key].float().cpu(), rtol=5e-2, atol=5e-3,
                                           msg=f"{compile_mode} step {step} {key}")
