"""The GANimation training loop: schedule, checkpoints, sample grids, logs.

Knows nothing about the command line. One *step* is one batch: one critic
update, plus a generator update every ``critic_steps`` steps (as the official
code). Everything random in a step is a pure function of (seed, step, rank), so
``resume`` continues bit for bit. DistributedDataParallel is used only when the
process was launched by torchrun (``RANK``/``WORLD_SIZE`` set), as in nanoGPT.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..aus import AU_NAMES, AU_SCALE, au_dict_to_vector
from ..aus import PRESETS as EXPRESSIONS
from ..errors import GanAnimError
from ..media.paths import atomic_output
from ..model import PRESETS, Critic, Generator, ModelConfig, generator_state
from ..render.device import resolve_device
from .data import FaceDataset, _generator, fixed_samples, load_dataset, make_batch
from .losses import critic_loss, generate, generator_loss
from .options import LossWeights, RunOptions, TrainOptions

CHECKPOINT_FORMAT = "gan-anim-checkpoint-v1"
GRID_EXPRESSIONS = ("happy", "surprise", "sad", "anger")


@dataclass
class Runtime:
    device: torch.device
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    channels_last: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def setup_runtime(device: str = "auto", channels_last: bool | None = None) -> Runtime:
    """Pick the device, thread count and (under torchrun) the process group."""
    use_cuda = resolve_device(device).type == "cuda"
    rank, world, local = 0, 1, 0
    if int(os.environ.get("RANK", -1)) != -1 and "WORLD_SIZE" in os.environ:
        import torch.distributed as dist

        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local = int(os.environ.get("LOCAL_RANK", rank))
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        dev = torch.device("cpu")
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        torch.set_num_threads(max(1, _cpu_count() // max(1, local_world)))
    # channels_last: faster convolutions on GPUs; on this 2-core AVX2 CPU it was slower
    # (see benchmarks/bench_train.py), so it is off there by default.
    cl = use_cuda if channels_last is None else channels_last
    return Runtime(dev, rank, world, local, cl)


def set_requires_grad(module: torch.nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


class GANTrainer:
    """Generator, critic, their optimisers and one training step."""

    def __init__(self, cfg: ModelConfig, opts: TrainOptions, rt: Runtime):
        self.cfg, self.opts, self.rt = cfg, opts, rt
        torch.manual_seed(opts.seed)  # same initial weights on every rank
        fmt = torch.channels_last if rt.channels_last else torch.contiguous_format
        self.G = Generator(cfg).to(rt.device, memory_format=fmt)
        self.D = Critic(cfg).to(rt.device, memory_format=fmt)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=opts.lr, betas=tuple(opts.betas))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=opts.lr, betas=tuple(opts.betas))
        self.G_train, self.D_train = self.G, self.D
        if rt.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [rt.device.index] if rt.cuda else None
            self.G_train = DDP(self.G, device_ids=ids, broadcast_buffers=False)
            self.D_train = DDP(self.D, device_ids=ids, broadcast_buffers=False)

    def autocast(self):
        if self.rt.cuda:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def step(self, step: int, x: torch.Tensor, real_aus: torch.Tensor,
             target_aus: torch.Tensor, landmarks: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One critic update (and a generator update every ``critic_steps``)."""
        o, w = self.opts, self.opts.weights
        lr = o.lr_at(step)
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups:
                group["lr"] = lr
        if self.rt.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        g_step = step % o.critic_steps == 0
        alpha = None
        if step % o.gp_every == 0:
            alpha = torch.rand(x.shape[0], 1, 1, 1, generator=_generator(o.seed, 3, step, self.rt.rank))
            alpha = alpha.to(self.rt.device, non_blocking=True)

        with self.autocast():
            if g_step:  # made once with gradients: the critic sees it detached, G reuses it
                forward = generate(self.G_train, x, target_aus, landmarks, real_aus)
            else:
                with torch.no_grad():
                    forward = generate(self.G, x, target_aus, landmarks, real_aus)
            fake, attn = forward[:2]
            d_loss, logs = critic_loss(self.D_train, x, fake, real_aus, w, alpha, float(o.gp_every))
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
        logs = {k: v.detach() for k, v in logs.items()}
        logs["attention"] = attn.detach().float().mean()

        if g_step:
            set_requires_grad(self.D, False)  # no critic weight gradients in the G step
            try:
                with self.autocast():
                    g_loss, glogs = generator_loss(self.G_train, self.D_train, x, real_aus,
                                                   target_aus, w, forward=forward)
                self.opt_g.zero_grad(set_to_none=True)
                g_loss.backward()
                self.opt_g.step()
            finally:
                set_requires_grad(self.D, True)
            logs.update({k: v.detach() for k, v in glogs.items()})
        return logs

    # ------------------------------------------------------------------ state

    def state(self, step: int, extra: dict) -> dict:
        blob = {"format": CHECKPOINT_FORMAT, "config": self.cfg.to_dict(),
                "au_names": list(AU_NAMES), "au_scale": AU_SCALE, "step": step,
                "generator": {k: v.detach().cpu() for k, v in self.G.state_dict().items()},
                "critic": {k: v.detach().cpu() for k, v in self.D.state_dict().items()},
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                "options": _options_dict(self.opts)}
        blob.update(extra)
        return blob

    def load_state(self, blob: dict) -> None:
        self.G.load_state_dict(blob["generator"])
        self.D.load_state_dict(blob["critic"])
        self.opt_g.load_state_dict(blob["opt_g"])
        self.opt_d.load_state_dict(blob["opt_d"])


def _options_dict(o: TrainOptions) -> dict:
    d = dataclasses.asdict(o)
    d["betas"] = list(o.betas)
    return d


# ---------------------------------------------------------------- checkpoints

def checkpoint_paths(out_dir) -> list[Path]:
    """Checkpoints in ``out_dir``, oldest first."""
    return sorted(Path(out_dir).glob("checkpoint-*.pt"))


def read_checkpoint(path) -> dict:
    """Load a checkpoint (a file, or the newest one in a run folder) without running code."""
    path = Path(path)
    if path.is_dir():
        found = checkpoint_paths(path)
        if not found:
            raise GanAnimError(f"{path}: no checkpoint-*.pt in this folder")
        path = found[-1]
    if not path.is_file():
        raise GanAnimError(f"{path}: no such checkpoint")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise GanAnimError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(blob, dict) or "generator" not in blob or "config" not in blob:
        raise GanAnimError(f"{path}: not a gan-anim training checkpoint")
    blob["path"] = str(path)
    return blob


def export_weights(checkpoint, output, half: bool = False) -> Path:
    """Write the inference weights (generator, config, AU list) of a checkpoint."""
    blob = read_checkpoint(checkpoint)
    if list(blob.get("au_names", AU_NAMES)) != list(AU_NAMES):
        raise GanAnimError(f"{blob['path']}: trained on a different AU list")
    gen = Generator(ModelConfig.from_dict(blob["config"]))
    gen.load_state_dict({k: v.float() if v.is_floating_point() else v
                         for k, v in blob["generator"].items()})
    state = generator_state(gen, half=half)
    state["trained_steps"] = int(blob.get("step", 0))
    output = Path(output)
    if not output.absolute().parent.is_dir():
        raise GanAnimError(f"output folder {output.absolute().parent} does not exist")
    with atomic_output(output) as tmp:
        torch.save(state, tmp)
    return output


# ---------------------------------------------------------------- sample grid

@torch.no_grad()
def sample_grid(generator: Generator, images: torch.Tensor,
                expressions=GRID_EXPRESSIONS, aus: torch.Tensor | None = None,
                landmarks: torch.Tensor | None = None) -> np.ndarray:
    """RGB uint8 grid: input row, then for each expression its result and attention rows.

    ``aus``/``landmarks`` of the images drive the landmark motion of motion models."""
    import cv2

    dev = next(generator.parameters()).device
    x = images.to(dev)
    lms = None if landmarks is None else landmarks.to(dev).float()
    src = None if aus is None else aus.to(dev).float()
    rows = [x]
    for name in expressions:
        y = torch.from_numpy(au_dict_to_vector(EXPRESSIONS[name]) / AU_SCALE).float().to(dev)
        out, attn = generate(generator, x, y.expand(len(x), -1), lms, src)[:2]
        rows += [out.float(), attn.float().expand(-1, 3, -1, -1) * 2 - 1]
    s = x.shape[-1]
    grid = torch.stack(rows).clamp(-1, 1)                      # (rows, n, 3, s, s)
    grid = ((grid + 1) * 127.5).round().byte().cpu().numpy()
    r, n = grid.shape[:2]
    grid = grid.transpose(0, 3, 1, 4, 2).reshape(r * s, n * s, 3)
    label_w = 72
    canvas = np.full((r * s, label_w + n * s, 3), 255, np.uint8)
    canvas[:, label_w:] = grid
    labels = ["input"] + [f"{e}{t}" for e in expressions for t in ("", " A")]
    for i, text in enumerate(labels):
        cv2.putText(canvas, text, (3, i * s + s // 2 + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.38,
                    (0, 0, 0), 1, cv2.LINE_AA)
    if s < 96:
        canvas = cv2.resize(canvas, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    return canvas


def _write_png(path: Path, rgb: np.ndarray) -> None:
    from PIL import Image

    with atomic_output(path) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG")


# ---------------------------------------------------------------------- loop

class _StopFlag:
    """Ctrl-C / SIGTERM ask for a clean stop at the end of the current step."""

    def __init__(self):
        self.requested = False
        self._old = {}

    def __enter__(self):
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:  # second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def train(data_dir, out_dir, options: TrainOptions | None = None, run: RunOptions | None = None, *,
          sample_count: int = 6, channels_last: bool | None = None, progress: bool = True,
          log=None, **overrides) -> Path | None:
    """Train G and D on ``data_dir``; checkpoints, grids and log.jsonl go to ``out_dir``.

    ``options`` (``TrainOptions``) and ``run`` (``RunOptions``) default to their
    dataclass defaults; keyword ``overrides`` replace any of their fields
    (``steps=4, preset="medium"``). ``preset`` is a name from ``model.PRESETS`` or a
    ``ModelConfig``.

    ``resume`` continues from the newest checkpoint in ``out_dir`` (same seed, batch
    size and model; ``steps``, schedule and loss weights may change). Returns the
    last checkpoint written (None on ranks other than 0).
    """
    opts, ro = _with_overrides(options or TrainOptions(), run or RunOptions(), overrides)
    opts.betas = tuple(opts.betas)
    if opts.weights is None:
        opts.weights = LossWeights()
    steps, seed, batch_size, preset = opts.steps, opts.seed, opts.batch_size, ro.preset
    checkpoint_every, keep, max_minutes = ro.checkpoint_every, ro.keep, ro.max_minutes
    rt = setup_runtime(ro.device, channels_last)
    say = (log or (lambda m: print(m, file=sys.stderr, flush=True))) if rt.main else (lambda m: None)
    out = Path(out_dir)
    if isinstance(preset, ModelConfig):
        cfg, preset = preset, "custom"
    elif preset in PRESETS:
        cfg = PRESETS[preset]
    else:
        raise GanAnimError(f"unknown preset {preset!r}: use {', '.join(PRESETS)}")
    for name, v in (("steps", steps), ("batch-size", batch_size), ("critic-steps", opts.critic_steps),
                    ("checkpoint-every", checkpoint_every), ("keep", keep), ("gp-every", opts.gp_every)):
        if v < 1:
            raise GanAnimError(f"--{name} must be at least 1, got {v}")
    resume = ro.resume

    blob, start, wall_before = None, 0, 0.0
    if resume:
        if not checkpoint_paths(out):
            raise GanAnimError(f"--resume: no checkpoint in {out}")
        blob = read_checkpoint(out)
        cfg = ModelConfig.from_dict(blob["config"])
        saved = blob["options"]
        if (saved["seed"], saved["batch_size"]) != (seed, batch_size):
            say(f"resuming with the checkpoint's seed {saved['seed']} and batch size "
                f"{saved['batch_size']} (the data order depends on them)")
        opts = dataclasses.replace(opts, seed=saved["seed"], batch_size=saved["batch_size"])
        start, wall_before = int(blob["step"]), float(blob.get("wall_s", 0.0))
        if start >= steps:
            raise GanAnimError(f"--resume: the checkpoint is at step {start}; raise --steps above it")
    elif checkpoint_paths(out):
        raise GanAnimError(f"{out} already holds checkpoints: add --resume, or choose another --out")

    per_step = opts.batch_size * rt.world
    train_ds = load_dataset(data_dir, cfg.image_size, "train", min_images=per_step)
    for note in train_ds.notes:
        say(note)
    try:
        test_ds = load_dataset(data_dir, cfg.image_size, "test", min_images=1)
    except GanAnimError as exc:
        say(f"no usable test split ({exc}); the sample grids show training faces")
        test_ds = train_ds
    samples = fixed_samples(test_ds, sample_count)
    sample_aus = test_ds.aus[:sample_count]
    sample_lms = None if test_ds.landmarks is None else test_ds.landmarks[:sample_count]
    ds = _place(train_ds, rt)

    trainer = GANTrainer(cfg, opts, rt)
    if blob is not None:
        trainer.load_state(blob)
        say(f"resumed from {blob['path']} at step {start}")
    elif cfg.motion:
        say(fit_motion_into(trainer.G, train_ds))
    if rt.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "samples").mkdir(exist_ok=True)
        say(f"training {preset} preset ({cfg.image_size} px) on {len(train_ds)} images, "
            f"{rt.device}{f' x{rt.world}' if rt.world > 1 else ''}, batch {per_step}, "
            f"steps {start}->{steps}")

    last_ckpt: Path | None = None
    sums: dict[str, float] = {}
    count = 0
    window_t, window_steps = time.perf_counter(), 0
    run_t0 = time.perf_counter()
    ckpt_t0, ckpt_step0 = run_t0, start
    sync_every = 20 if rt.cuda else 1
    pending: list[dict] = []
    reporter = _Reporter(rt.main and progress, start, steps, per_step)

    def flush_pending():
        nonlocal count
        for logs in pending:
            for k, v in logs.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            count += 1
        latest = {k: float(v) for k, v in pending[-1].items()} if pending else {}
        pending.clear()
        return latest

    def save(step: int):
        nonlocal last_ckpt, ckpt_t0, ckpt_step0, count
        flush_pending()
        now = time.perf_counter()
        wall = wall_before + now - run_t0
        ips = (step - ckpt_step0) * per_step / max(now - ckpt_t0, 1e-9)
        path = out / f"checkpoint-{step:07d}.pt"
        with atomic_output(path) as tmp:
            torch.save(trainer.state(step, {"wall_s": wall, "data": str(data_dir)}), tmp)
        trainer.G.eval()
        _write_png(out / "samples" / f"step-{step:07d}.png", sample_grid(trainer.G, samples, aus=sample_aus,
                                                                               landmarks=sample_lms))
        trainer.G.train()
        means = {k: v / max(count, 1) for k, v in sums.items()}
        record = {"step": step, "images_seen": step * per_step, "wall_s": round(wall, 1),
                  "images_per_s": round(ips, 3), "lr": opts.lr_at(max(step - 1, 0)),
                  **{k: round(v, 6) for k, v in sorted(means.items())}}
        with open(out / "log.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        for old in checkpoint_paths(out)[:-keep]:
            old.unlink(missing_ok=True)
        sums.clear()
        count = 0
        ckpt_t0, ckpt_step0 = now, step
        last_ckpt = path
        reporter.note(f"checkpoint {path.name} (mean attention {means.get('attention', math.nan):.3f})")

    step = start
    with _StopFlag() as stop, reporter:
        try:
            while step < steps:
                x, real, target, lms = make_batch(ds, step, opts.batch_size, opts.seed, rt.rank,
                                                  rt.world, opts.flip, opts.target_noise)
                pending.append(trainer.step(step, x, real, target, lms))
                step += 1
                window_steps += 1
                if step % sync_every == 0 or step == steps:
                    latest = flush_pending()
                    now = time.perf_counter()
                    reporter.update(step, latest, window_steps * per_step / max(now - window_t, 1e-9))
                    window_t, window_steps = now, 0
                if max_minutes is not None and time.perf_counter() - run_t0 > 60 * max_minutes:
                    stop.requested = True
                if _all_agree(stop.requested, rt):
                    if rt.main:
                        save(step)
                        say(f"stopped at step {step}; continue with --resume")
                    break
                if step % checkpoint_every == 0 or step == steps:
                    if rt.main:
                        save(step)
        finally:
            if rt.world > 1:
                import torch.distributed as dist

                if dist.is_initialized():
                    dist.destroy_process_group()
    return last_ckpt if rt.main else None


def _with_overrides(opts: TrainOptions, run: RunOptions, overrides: dict):
    """Copies of ``opts`` and ``run`` with the named fields replaced (unknown names: TypeError)."""
    names = {f.name for f in dataclasses.fields(TrainOptions)}, {f.name for f in dataclasses.fields(RunOptions)}
    unknown = set(overrides) - names[0] - names[1]
    if unknown:
        raise TypeError(f"train() got unexpected keyword arguments: {', '.join(sorted(unknown))}")
    pick = lambda keys: {k: v for k, v in overrides.items() if k in keys}  # noqa: E731
    return dataclasses.replace(opts, **pick(names[0])), dataclasses.replace(run, **pick(names[1]))


def fit_motion_into(generator: Generator, ds: FaceDataset) -> str:
    """Fit the AU -> landmark model on a training split and store it in the generator."""
    from ..motion import fit_motion

    if ds.landmarks is None:
        raise GanAnimError("this preset warps faces by their landmarks, and the training data has "
                           "none: prepare it with gan-anim prepare (manifest.jsonl) or a gpu pack")
    fit = fit_motion(ds.landmarks.numpy(), ds.aus.numpy(), AU_NAMES)
    dev = generator.motion.mean.device
    generator.motion.mean.copy_(torch.from_numpy(fit["mean"]).to(dev))
    generator.motion.basis.copy_(torch.from_numpy(fit["basis"]).to(dev))
    return f"landmark motion fitted on {len(ds)} faces (R^2 {fit['r2']:.2f})"


def _place(ds: FaceDataset, rt: Runtime) -> FaceDataset:
    """On CUDA the whole uint8 set lives on the GPU (a 10k-face set at 128 px is 0.5 GB);
    larger sets stay in pinned host memory and batches are copied asynchronously."""
    if not rt.cuda:
        return ds
    if ds.images.numel() < 4 * 2 ** 30:  # AUs stay on the CPU: targets are sampled there
        lms = None if ds.landmarks is None else ds.landmarks.to(rt.device)
        return FaceDataset(ds.images.to(rt.device), ds.aus, ds.names, ds.notes, lms)
    lms = None if ds.landmarks is None else ds.landmarks.pin_memory()
    return FaceDataset(ds.images.pin_memory(), ds.aus.pin_memory(), ds.names, ds.notes, lms)


def _all_agree(flag: bool, rt: Runtime) -> bool:
    """Under torchrun every rank must stop at the same step."""
    if rt.world == 1:
        return flag
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0], device=rt.device)
    dist.all_reduce(t)
    return bool(t.item() > 0)


class _Reporter:
    """Rich progress bar on a terminal; a plain line every 30 s otherwise (logs, nohup)."""

    def __init__(self, enabled: bool, start: int, total: int, per_step: int):
        self.enabled, self.start, self.total, self.per_step = enabled, start, total, per_step
        self.progress = None
        self.last_line = 0.0
        self.t0 = time.perf_counter()

    def __enter__(self):
        if not self.enabled:
            return self
        from rich.console import Console

        self.console = Console(stderr=True)
        if not self.console.is_terminal:
            self.console = Console(stderr=True, width=400)  # one line per report in log files
        if self.console.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                                     TextColumn("{task.fields[stats]}"), console=self.console)
            self.progress.__enter__()
            self.task = self.progress.add_task("train", total=self.total, completed=self.start,
                                               stats="")
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.__exit__(*exc)

    @staticmethod
    def _stats(logs: dict, ips: float) -> str:
        keys = ("d_loss", "gp", "d_au", "g_adv", "g_au", "cycle", "attention")
        parts = [f"{k} {logs[k]:.3g}" for k in keys if k in logs]
        return " ".join(parts) + f" | {ips:.1f} img/s"

    def update(self, step: int, logs: dict, ips: float) -> None:
        if not self.enabled:
            return
        stats = self._stats(logs, ips)
        if self.progress is not None:
            self.progress.update(self.task, completed=step, stats=stats)
            return
        now = time.perf_counter()
        if now - self.last_line >= 30 or step == self.total:
            done = step - self.start
            eta = (self.total - step) * (now - self.t0) / max(done, 1)
            avg = done * self.per_step / max(now - self.t0, 1e-9)
            self.console.print(f"step {step}/{self.total} {stats} (run average {avg:.1f}) | "
                               f"eta {eta / 60:.0f} min", highlight=False)
            self.last_line = now

    def note(self, text: str) -> None:
        if self.enabled:
            self.console.print(text, highlight=False)
