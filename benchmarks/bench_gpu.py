"""Generator inference (and a few training steps) on the GPU: faces/s, FLOPs, share of peak.

    PYTHONPATH=. python benchmarks/bench_gpu.py                    # the GPU kit's stage, < 60 s
    python benchmarks/bench_gpu.py --json bench.json --max-seconds 40
    python benchmarks/bench_gpu.py --device cpu --presets small --batches 1 --min-time 0.02   # rehearsal

End to end (``animate``, ``video``, a photo folder) with the composite on the device against the
CPU composite: ``bench_gpu_pipeline.py``, run after these rows within ``--pipeline-seconds``.

Inference is ``training.losses.generate`` (for the motion presets: the landmark warp, then G and the
composition) under ``torch.inference_mode``, channels_last, at batch 1, 64 and 256, in fp32
and in bf16 autocast, CUDA-synchronised, after warm-up. FLOPs per face are what
``torch.utils.flop_counter.FlopCounterMode`` counts (convolutions and matmuls) at batch 8;
achieved TFLOP/s = faces/s x FLOPs per face, and its share of the card's dense bf16 peak
(an assumption from the device name, printed) is reported for every row, fp32 included.
"fp32" runs with PyTorch's defaults: cuDNN convolutions may use TF32, matmuls do not.

Training: ``training.trainer.GANTrainer.step`` on the medium preset (bf16 autocast on CUDA,
channels_last, the batch assembly included), 20 timed steps (4 generator updates, 5 gradient
penalties with --gp-every 4) after 5 warm-up steps (10 when compiled; the warm-up's seconds,
compilation included, are reported), side by side for the step variants of ``--train-variants``
(default today,fast: compiling takes longer than this stage's budget; the kit's ``compare``
stage trains both ways with ``torch.compile``):
``today`` (``make_batch``, plain Adam, eager: the step before the speed work), ``fast`` (batches
assembled on the device, fused Adam), ``compile`` (+ ``torch.compile``), ``graphs`` (+ CUDA
graphs); ``speedup`` is against ``today`` at the same batch.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

# dense bf16 tensor-core peaks (TFLOP/s, no sparsity), by device name; first match wins
PEAKS = (("H200", 989.0, "H200 (SXM): 989 dense bf16 TFLOP/s"),
         ("H100 PCIe", 756.0, "H100 PCIe: 756 dense bf16 TFLOP/s"),
         ("H100 NVL", 835.0, "H100 NVL: 835 dense bf16 TFLOP/s"),
         ("H100", 989.0, "H100 SXM: 989 dense bf16 TFLOP/s"),
         ("A100", 312.0, "A100: 312 dense bf16 TFLOP/s"),
         ("L40S", 362.0, "L40S: 362 dense bf16 TFLOP/s"))


def _kit():
    spec = importlib.util.spec_from_file_location("gpu_kit", ROOT / "tools" / "gpu_kit.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def peak_for(name: str) -> tuple[float | None, str]:
    for key, tflops, text in PEAKS:
        if key.lower() in name.lower():
            return tflops, f"assumed peak {text} (device '{name}')"
    return None, f"no peak known for '{name}': fractions of peak not reported"


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def time_call(fn, dev, min_time: float, warmup: int) -> tuple[float, int]:
    """Seconds per call (mean over enough calls to last ``min_time``), calls timed."""
    for _ in range(warmup):
        fn()
    sync(dev)
    t0 = time.perf_counter()
    fn()
    sync(dev)
    one = time.perf_counter() - t0
    n = max(1, min(2000, int(min_time / max(one, 1e-6))))
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    sync(dev)
    return (time.perf_counter() - t0) / n, n


def count_flops(fn) -> int:
    """FLOPs of ``fn()`` by ``FlopCounterMode``; where its module tracker cannot follow
    (``autograd.grad`` inside, as the gradient penalty does) the same per-op formulas
    (``flop_counter.flop_registry``) under a plain dispatch mode."""
    from torch.utils.flop_counter import FlopCounterMode

    try:
        with FlopCounterMode(display=False) as fc:
            fn()
        return int(fc.get_total_flops())
    except RuntimeError:
        pass
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import flop_registry

    class Plain(TorchDispatchMode):
        total = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            formula = flop_registry.get(func._overloadpacket)
            if formula is not None:
                Plain.total += int(formula(*args, **kwargs, out_val=out))
            return out

    with Plain():
        fn()
    return int(Plain.total)


def autocast(dev, dtype: str):
    if dtype == "bf16":
        return torch.autocast(dev.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def inference_rows(args, dev, peak, deadline, landmarks_fn, log) -> list[dict]:
    from gan_anim.model import PRESETS, Generator
    from gan_anim.training.losses import generate

    rows = []
    cl = torch.channels_last
    for preset in args.presets:
        cfg = PRESETS[preset]
        torch.manual_seed(0)
        G = Generator(cfg).to(dev).to(memory_format=cl).eval()
        if G.motion is not None:  # a non-zero AU -> landmark model, so the warp moves pixels
            with torch.no_grad():
                G.motion.basis.normal_(0, 0.01)
        s = cfg.image_size

        def inputs(b):
            x = (torch.rand(b, 3, s, s, device=dev) * 2 - 1).contiguous(memory_format=cl)
            lms = torch.from_numpy(landmarks_fn(b)).to(dev)
            return x, torch.rand(b, 17, device=dev), torch.rand(b, 17, device=dev), lms

        def call(x, y, src, lms, dtype, G=G):  # this preset's G, bound now
            with torch.inference_mode(), autocast(dev, dtype):
                return generate(G, x, y, lms, src)[0]

        if time.perf_counter() > deadline:
            rows += [{"preset": preset, "dtype": d, "batch": b, "skipped": "time budget"}
                     for d in args.dtypes for b in args.batches]
            continue
        nb = min(8, max(args.batches))
        xs = inputs(nb)
        flops = count_flops(lambda: call(*xs, "fp32")) / nb
        for dtype in args.dtypes:
            for b in args.batches:
                row = {"preset": preset, "dtype": dtype, "batch": b, "gflop_per_face": round(flops / 1e9, 3)}

                def measure(row, b=b, dtype=dtype):
                    if dev.type == "cuda":
                        torch.cuda.reset_peak_memory_stats(dev)
                    x = inputs(b)
                    sec, n = time_call(lambda: call(*x, dtype), dev, args.min_time, args.warmup)
                    fps = b / sec
                    row.update(ms_per_batch=round(sec * 1e3, 3), calls=n, faces_per_s=round(fps, 1))
                    add_throughput(row, fps * flops, peak, dev)

                rows.append(measured(row, measure, deadline, log))
        del G
    return rows


def measured(row: dict, measure, deadline: float, log) -> dict:
    """``measure(row)`` fills ``row`` unless the time budget is spent; out of memory is
    recorded in the row, not raised."""
    if time.perf_counter() > deadline:
        row["skipped"] = "time budget"
        return row
    try:
        measure(row)
    except torch.cuda.OutOfMemoryError:
        row["error"] = "out of memory"
        torch.cuda.empty_cache()
    log(row)
    return row


def add_throughput(row: dict, flop_per_s: float, peak, dev) -> None:
    """Achieved TFLOP/s, its share of the card's peak, and the peak GPU memory, into ``row``."""
    row["tflops"] = round(flop_per_s / 1e12, 2)
    if peak:
        row["peak_fraction"] = round(flop_per_s / 1e12 / peak, 4)
    if dev.type == "cuda":
        row["max_mem_gib"] = round(torch.cuda.max_memory_allocated(dev) / 2 ** 30, 2)


TRAIN_VARIANTS = {  # step variant -> (data_on_device, fused Adam, compile)
    "today": ("off", False, "off"),     # the step before the speed work: make_batch, Adam, eager
    "fast": ("on", True, "off"),        # batches assembled on the device, fused Adam
    "compile": ("on", True, "on"),      # + torch.compile
    "graphs": ("on", True, "graphs"),   # + CUDA graphs (torch.compile mode reduce-overhead)
}


def training_rows(args, dev, peak, deadline, landmarks_fn, log) -> list[dict]:
    """The medium preset's training step, each variant of ``TRAIN_VARIANTS`` at each batch,
    side by side; ``speedup`` is against ``today`` at the same batch."""
    from gan_anim.model import PRESETS
    from gan_anim.training.faceset import FaceDataset

    cfg = PRESETS["medium"]
    s = cfg.image_size
    rows = []
    flops_per_image = None
    for b in args.train_batches:
        n = max(2 * b, 64)
        g = torch.Generator().manual_seed(0)
        ds = FaceDataset(torch.randint(0, 256, (n, 3, s, s), dtype=torch.uint8, generator=g),
                         torch.rand(n, 17, generator=g), [str(i) for i in range(n)], [],
                         torch.from_numpy(landmarks_fn(n)))
        base = None
        for variant in args.train_variants:
            on_device, fused, compile_mode = TRAIN_VARIANTS[variant]
            row = {"preset": "medium", "step": variant, "batch": b, "gp_every": 4, "critic_steps": 5,
                   "dtype": "bf16 autocast" if dev.type == "cuda" else "fp32",
                   "data_on_device": on_device == "on", "fused_adam": fused, "compile": compile_mode}

            def measure(row, b=b, ds=ds, on_device=on_device, fused=fused, compile_mode=compile_mode):
                nonlocal flops_per_image
                trainer, batches = _trainer(cfg, b, dev, ds, on_device, fused, compile_mode)
                k = 0

                def steps(count):
                    nonlocal k
                    for _ in range(count):
                        trainer.step(k, *batches(k))
                        k += 1

                t0 = time.perf_counter()  # warm-up: every kind of step (G and penalty) at least once
                steps(args.train_warmup if compile_mode == "off" else max(args.train_warmup, 10))
                sync(dev)
                row["warmup_s"] = round(time.perf_counter() - t0, 1)
                t0 = time.perf_counter()
                steps(args.train_steps)
                sync(dev)
                sec = time.perf_counter() - t0
                ips = args.train_steps * b / sec
                if flops_per_image is None and compile_mode == "off":  # counted once, eager
                    flops_per_image = count_flops(lambda: steps(args.train_steps)) / (args.train_steps * b)
                row.update(steps=args.train_steps, ms_per_step=round(sec / args.train_steps * 1e3, 2),
                           images_per_s=round(ips, 1))
                if flops_per_image:
                    row["gflop_per_image"] = round(flops_per_image / 1e9, 3)
                    add_throughput(row, ips * flops_per_image, peak, dev)

            rows.append(measured(row, measure, deadline, log))
            if variant == "today" and row.get("images_per_s"):
                base = row["images_per_s"]
            if base and row.get("images_per_s"):
                row["speedup"] = round(row["images_per_s"] / base, 2)
    return rows


def pipeline(args, dev, log) -> list[dict]:
    """The end-to-end rows of ``bench_gpu_pipeline.py``; an error is recorded, not raised."""
    spec = importlib.util.spec_from_file_location("bench_gpu_pipeline", ROOT / "benchmarks" / "bench_gpu_pipeline.py")
    mod = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(mod)
        return mod.pipeline_rows(dev.type, time.perf_counter() + args.pipeline_seconds, log,
                                 small=args.pipeline_small,
                                 without=[w for w in args.pipeline_without.split(",") if w])
    except Exception as exc:  # the other rows are kept
        row = {"row": "pipeline", "error": f"{type(exc).__name__}: {exc}"}
        log(row)
        return [row]
def _trainer(cfg, batch: int, dev, ds, on_device: str, fused: bool, compile_mode: str):
    """(GANTrainer, step -> batch) as ``gan-anim train`` makes them, with a non-zero motion model."""
    from gan_anim.training.loop import batch_source
    from gan_anim.training.options import TrainOptions
    from gan_anim.training.runtime import Runtime
    from gan_anim.training.trainer import GANTrainer

    opts = TrainOptions(batch_size=batch, lr=2e-4, gp_every=4)
    rt = Runtime(dev, channels_last=dev.type == "cuda")
    trainer = GANTrainer(cfg, opts, rt, compile=compile_mode, fused=fused)
    with torch.no_grad():
        trainer.G.motion.basis.normal_(0, 0.01)
    return trainer, batch_source(ds, opts, rt, on_device)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--presets", default="small,medium,paper")
    ap.add_argument("--batches", default="1,64,256")
    ap.add_argument("--dtypes", default="fp32,bf16")
    ap.add_argument("--min-time", type=float, default=0.25, help="seconds timed per configuration")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--train-batches", default="64,128,256", help="'' to skip the training steps")
    ap.add_argument("--train-variants", default="today,fast",
                    help=f"training step variants, side by side: {','.join(TRAIN_VARIANTS)}")
    ap.add_argument("--train-steps", type=int, default=20)
    ap.add_argument("--train-warmup", type=int, default=5)
    ap.add_argument("--max-seconds", type=float, default=60.0, help="skip what would start after this")
    ap.add_argument("--pipeline-seconds", type=float, default=60.0,
                    help="budget of the end-to-end rows (bench_gpu_pipeline.py) after these; 0 skips them")
    ap.add_argument("--pipeline-small", action="store_true", help="rehearsal sizes of the end-to-end rows")
    ap.add_argument("--pipeline-without", default="", help="dlib,ffmpeg: take them as absent there")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    args.presets = [p for p in args.presets.split(",") if p]
    args.batches = [int(b) for b in args.batches.split(",") if b]
    args.dtypes = [d for d in args.dtypes.split(",") if d]
    args.train_batches = [int(b) for b in args.train_batches.split(",") if b]
    args.train_variants = [v for v in args.train_variants.split(",") if v]
    unknown = [v for v in args.train_variants if v not in TRAIN_VARIANTS]
    if unknown:
        ap.error(f"unknown --train-variants {unknown}: use {', '.join(TRAIN_VARIANTS)}")
    t0 = time.perf_counter()
    deadline = t0 + args.max_seconds
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    dev = torch.device("cuda" if use_cuda else "cpu")
    if use_cuda:
        torch.backends.cudnn.benchmark = True
        name = torch.cuda.get_device_name(dev)
    else:
        import platform

        name = f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    peak, assumption = peak_for(name) if use_cuda else (None, "CPU: no peak assumed")
    print(f"bench_gpu: {name}; torch {torch.__version__}; {assumption}", flush=True)
    kit = _kit()

    out: dict = {}

    def log(row):
        print("  " + "  ".join(f"{k} {v}" for k, v in row.items()), flush=True)
        out.setdefault("rows_so_far", []).append(row)
        save()

    def save():  # after every row: a benchmark stopped by a timeout keeps what it measured
        out["wall_s"] = round(time.perf_counter() - t0, 1)
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=1))

    out.update({"device": name, "torch": torch.__version__, "peak_bf16_tflops": peak,
                "peak_assumption": assumption,
                "settings": {"channels_last": True, "inference_mode": True,
                             "cudnn_tf32": bool(torch.backends.cudnn.allow_tf32),
                             "matmul_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
                             "min_time_s": args.min_time, "warmup": args.warmup}})
    out["inference"] = inference_rows(args, dev, peak, deadline, kit.synthetic_landmarks, log)
    out["training"] = training_rows(args, dev, peak, deadline, kit.synthetic_landmarks, log) \
        if args.train_batches else []
    if args.pipeline_seconds > 0:
        out["pipeline"] = pipeline(args, dev, log)
    out.pop("rows_so_far", None)
    save()
    print(f"bench_gpu: {out['wall_s']} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
