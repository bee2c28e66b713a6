"""The GANimation training loop: ``train`` reads top to bottom.

Knows nothing about the command line. Everything random in a step is a pure function of
(seed, step, rank), so ``resume`` continues bit for bit. Its parts: ``trainer`` (the G
and D steps), ``checkpoints``, ``stats`` (loss means, images/s), ``samples`` (grids),
``runtime`` (device, torchrun) and ``data`` (training sets).
"""
from __future__ import annotations

import dataclasses
import json
import math
import signal
import sys
import time
from pathlib import Path

from ..errors import GanAnimError
from ..model import PRESETS, ModelConfig
from .checkpoints import CheckpointManager, Resume
from .data import load_dataset, make_batch
from .device_batches import DeviceBatches
from .faceset import FaceDataset
from .motion_fit import fit_motion_into
from .options import LossWeights, RunOptions, TrainOptions
from .runtime import Runtime, all_agree, process_group, setup_runtime
from .samples import GridFaces, write_grid
from .stats import Collector, Throughput
from .trainer import GANTrainer


def train(data_dir, out_dir, options: TrainOptions | None = None, run: RunOptions | None = None, *,
          sample_count: int = 6, channels_last: bool | None = None, progress: bool = True,
          log=None, **overrides) -> Path | None:
    """Train G and D on ``data_dir``; checkpoints, grids and log.jsonl go to ``out_dir``.

    ``options`` and ``run`` default to ``TrainOptions()`` and ``RunOptions()``; keyword
    ``overrides`` replace any of their fields (``steps=4, preset="medium"``; ``preset``: a
    ``model.PRESETS`` name or a ``ModelConfig``). ``resume`` continues from the newest
    checkpoint in ``out_dir`` (same seed, batch size and model; ``steps``, schedule and loss
    weights may change). Returns the last checkpoint written (None on ranks other than 0).
    """
    # Check options; pick the device.
    opts, ro, cfg, preset = _checked_options(options, run, overrides)
    rt = setup_runtime(ro.device, channels_last)
    say = (log or _stderr) if rt.main else _silent

    # Resume from the newest checkpoint in out_dir, or start a new run there.
    out = Path(out_dir)
    checkpoints = CheckpointManager(out, ro.keep)
    resume = checkpoints.resume(ro.resume, opts.steps)
    cfg, opts = _continued(resume, cfg, opts, say, rt.world)

    # Load training set.
    per_step = opts.batch_size * rt.world
    train_ds = load_dataset(data_dir, cfg.image_size, "train", per_step, landmarks_cache=out, need_landmarks=cfg.motion)
    for note in train_ds.notes:
        say(note)
    faces = GridFaces.first(_grid_split(data_dir, cfg, train_ds, say, out), sample_count)
    batches = batch_source(train_ds, opts, rt, ro.data_on_device, _pairs(opts, train_ds, say))

    # Construct networks.
    trainer = GANTrainer(cfg, opts, rt, compile=ro.compile, fused=_auto(ro.fused_adam, rt.cuda))
    if resume.blob is not None:
        trainer.load_state(resume.blob)
        say(f"resumed from {resume.blob['path']} at step {resume.step}")
    elif cfg.motion:
        say(fit_motion_into(trainer.G, train_ds))
    say(f"training {preset} preset ({cfg.image_size} px) on {len(train_ds)} images, {rt.device}"
        f"{f' x{rt.world}' if rt.world > 1 else ''}, batch {per_step}, steps {resume.step}->{opts.steps}"
        f"{speed_note(trainer, batches)}")

    # Train: a checkpoint every checkpoint_every steps, at the end, and on Ctrl-C or --max-minutes.
    snapshots = _Snapshots(out, data_dir, checkpoints, faces, per_step, resume) if rt.main else None
    stats = Collector()
    bar = _TrainProgress(rt.main and progress, resume.step, opts.steps, per_step)
    sync_every = 20 if rt.cuda else 1  # reading the losses waits for the GPU
    step = resume.step
    with _StopFlag(ro.max_minutes) as stop, bar, process_group(rt, checkpoints.newest):
        while step < opts.steps:
            stats.report(trainer.step(step, *batches(step)))
            step += 1
            if step % sync_every == 0 or step == opts.steps:
                bar.update(step, stats.collect())
            stopping = all_agree(stop.requested, rt)
            if snapshots and (stopping or step % ro.checkpoint_every == 0 or step == opts.steps):
                bar.note(snapshots.save(step, trainer, stats, opts.lr_at(max(step - 1, 0))))
            if stopping:
                say(f"stopped at step {step}; continue with --resume")
                break
    return checkpoints.last  # None on ranks other than 0: they write no checkpoints


# ------------------------------------------------------------------- options

def _checked_options(options: TrainOptions | None, run: RunOptions | None, overrides: dict):
    """(TrainOptions, RunOptions, ModelConfig, preset name) with ``overrides`` applied;
    raises GanAnimError for an unknown preset or a count below 1."""
    opts, ro = _with_overrides(options or TrainOptions(), run or RunOptions(), overrides)
    opts = dataclasses.replace(opts, betas=tuple(opts.betas), weights=opts.weights or LossWeights())
    preset = ro.preset
    if isinstance(preset, ModelConfig):
        cfg, preset = preset, "custom"
    elif preset in PRESETS:
        cfg = PRESETS[preset]
    else:
        raise GanAnimError(f"unknown preset {preset!r}: use {', '.join(PRESETS)}")
    for name, v in (("steps", opts.steps), ("batch-size", opts.batch_size),
                    ("critic-steps", opts.critic_steps), ("checkpoint-every", ro.checkpoint_every),
                    ("keep", ro.keep), ("gp-every", opts.gp_every)):
        if v < 1:
            raise GanAnimError(f"--{name} must be at least 1, got {v}")
    return opts, ro, cfg, preset


def _with_overrides(opts: TrainOptions, run: RunOptions, overrides: dict):
    """Copies of ``opts`` and ``run`` with the named fields replaced (unknown names: TypeError)."""
    names = {f.name for f in dataclasses.fields(TrainOptions)}, {f.name for f in dataclasses.fields(RunOptions)}
    unknown = set(overrides) - names[0] - names[1]
    if unknown:
        raise TypeError(f"train() got unexpected keyword arguments: {', '.join(sorted(unknown))}")
    pick = lambda keys: {k: v for k, v in overrides.items() if k in keys}  # noqa: E731
    return dataclasses.replace(opts, **pick(names[0])), dataclasses.replace(run, **pick(names[1]))


def _continued(resume: Resume, cfg: ModelConfig, opts: TrainOptions, say, world: int = 1):
    """The model config and options of the run: a resumed run keeps its checkpoint's model,
    seed and global batch (the data order depends on them), split over ``world`` processes."""
    if resume.blob is None:
        return cfg, opts
    saved = resume.blob["options"]
    whole = saved["batch_size"] * int(resume.blob.get("world", 1))
    if whole % world:
        raise GanAnimError(f"the checkpoint's global batch of {whole} cannot be split over {world} processes")
    if (saved["seed"], whole) != (opts.seed, opts.batch_size * world):
        say(f"resuming with the checkpoint's seed {saved['seed']} and global batch {whole} "
            f"({whole // world} per process; the data order depends on them)")
    return (ModelConfig.from_dict(resume.blob["config"]),
            dataclasses.replace(opts, seed=saved["seed"], batch_size=whole // world))


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _silent(message: str) -> None:
    """Ranks other than 0 say nothing."""


# ---------------------------------------------------------------------- data

def _grid_split(data_dir, cfg: ModelConfig, train_ds: FaceDataset, say, out: Path) -> FaceDataset:
    """The test split, whose first faces the sample grids show (the training split if there
    is no usable one)."""
    try:
        return load_dataset(data_dir, cfg.image_size, "test", min_images=1, landmarks_cache=out,
                            need_landmarks=cfg.motion)
    except GanAnimError as exc:
        say(f"no usable test split ({exc}); the sample grids show training faces")
        return train_ds


def _auto(choice: str, cuda: bool) -> bool:
    """An auto|on|off option: auto means on CUDA."""
    return cuda if choice == "auto" else choice == "on"


def batch_source(ds: FaceDataset, opts: TrainOptions, rt: Runtime, data_on_device: str = "off",
                 pairs=None):
    """step -> this rank's batch: ``DeviceBatches`` (``--data-on-device``; auto: on CUDA
    when the faces take under 4 GiB) or ``make_batch`` on the set as ``_place`` puts it;
    ``pairs`` as ``make_batch`` takes them (``_pairs``)."""
    args = (opts.batch_size, opts.seed, rt.rank, rt.world)
    fits = ds.images.numel() < 4 * 2 ** 30
    if _auto(data_on_device, rt.cuda) and (fits or data_on_device == "on"):
        return DeviceBatches(ds, rt.device, *args, flip=opts.flip, target_noise=opts.target_noise,
                             pairs=pairs)
    placed = _place(ds, rt)

    def batch(step: int):
        return make_batch(placed, step, *args, flip=opts.flip, target_noise=opts.target_noise, pairs=pairs)

    return batch


def speed_note(trainer: GANTrainer, batches) -> str:
    """What the run does for speed, for the start line ('' for none)."""
    parts = [name for name, on in (("data on the device", isinstance(batches, DeviceBatches)),
                                   ("fused Adam", trainer.fused)) if on]
    if trainer.compile != "off":
        parts.append("compiled" + (" + CUDA graphs" if trainer.compile == "graphs" else "")
                     + " (the first steps compile)")
    return f"; {', '.join(parts)}" if parts else ""


def _pairs(opts: TrainOptions, ds: FaceDataset, say) -> tuple[float, float]:
    """``make_batch``'s ``pairs``: faces with a person id oversampled by ``paired_share``,
    paired with another photo of the person (``pair_share``) when the pair loss is on."""
    if ds.person is None and (opts.weights.pair > 0 or opts.paired_share > 0):
        say("--lambda-pair / --paired-share: no faces with a person id in this training set; no pairs")
    return opts.paired_share, (opts.pair_share if opts.weights.pair > 0 else 0.0)


def _place(ds: FaceDataset, rt: Runtime) -> FaceDataset:
    """On CUDA the whole uint8 set lives on the GPU (a 10k-face set at 128 px is 0.5 GB);
    larger sets stay in pinned host memory and batches are copied asynchronously."""
    if not rt.cuda:
        return ds
    if ds.images.numel() < 4 * 2 ** 30:  # AUs and person ids stay on the CPU: targets are sampled there
        lms = None if ds.landmarks is None else ds.landmarks.to(rt.device)
        return FaceDataset(ds.images.to(rt.device), ds.aus, ds.names, ds.notes, lms, ds.person)
    lms = None if ds.landmarks is None else ds.landmarks.pin_memory()
    return FaceDataset(ds.images.pin_memory(), ds.aus.pin_memory(), ds.names, ds.notes, lms, ds.person)


# ----------------------------------------------------------------- snapshots

class _Snapshots:
    """What a checkpoint writes to the run folder (rank 0 only): ``checkpoint-<step>.pt``,
    ``samples/step-<step>.png`` and a ``log.jsonl`` record of the window's mean losses."""

    def __init__(self, out: Path, data_dir, checkpoints: CheckpointManager, faces: GridFaces,
                 per_step: int, resume: Resume):
        self.out, self.data_dir, self.checkpoints, self.faces = out, data_dir, checkpoints, faces
        self.per_step, self.wall_before = per_step, resume.wall_s
        self.speed = Throughput(per_step, resume.step)
        self.t0 = time.perf_counter()
        (out / "samples").mkdir(parents=True, exist_ok=True)

    def save(self, step: int, trainer: GANTrainer, stats: Collector, lr: float) -> str:
        """Write the snapshot of ``step`` and start a new statistics window; returns a line
        for the user."""
        stats.collect()
        wall = self.wall_before + time.perf_counter() - self.t0
        ips = self.speed.lap(step)
        path = self.checkpoints.write(step, trainer.state(step, {"wall_s": wall, "data": str(self.data_dir)}))
        write_grid(self.out / "samples" / f"step-{step:07d}.png", trainer.G, self.faces)
        means = stats.means()
        record = {"step": step, "images_seen": step * self.per_step, "wall_s": round(wall, 1),
                  "images_per_s": round(ips, 3), "lr": lr,
                  **{k: round(v, 6) for k, v in sorted(means.items())}}
        with open(self.out / "log.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        stats.reset()
        return f"checkpoint {path.name} (mean attention {means.get('attention', math.nan):.3f})"


# -------------------------------------------------------------- interaction

class _StopFlag:
    """Ctrl-C / SIGTERM, or the end of a ``max_minutes`` budget, ask for a clean stop at the
    end of the current step."""

    def __init__(self, max_minutes: float | None = None):
        self.signalled = False
        self.deadline = math.inf if max_minutes is None else time.perf_counter() + 60 * max_minutes
        self._old = {}

    @property
    def requested(self) -> bool:
        return self.signalled or time.perf_counter() > self.deadline

    def __enter__(self):
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:  # second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.signalled = True

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


class _TrainProgress:
    """A progress bar on a terminal; a plain line every 30 s otherwise (logs, nohup)."""

    KEYS = ("d_loss", "gp", "d_au", "g_adv", "g_au", "cycle", "pair", "attention")

    def __init__(self, enabled: bool, start: int, total: int, per_step: int):
        self.enabled, self.start, self.total, self.per_step = enabled, start, total, per_step
        self.speed = Throughput(per_step, start)
        self.bar = None
        self.last_line = 0.0
        self.t0 = time.perf_counter()

    def __enter__(self):
        if not self.enabled:
            return self
        from rich.console import Console

        from ..progress import console, progress_bar

        if console.is_terminal:
            self.console = console
            self.bar = progress_bar("{task.fields[stats]}").__enter__()
            self.task = self.bar.add_task("train", total=self.total, completed=self.start, stats="")
        else:
            self.console = Console(stderr=True, width=400)  # one line per report in log files
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def update(self, step: int, logs: dict) -> None:
        """Show ``step``, the newest losses and the images/s since the last update."""
        ips = self.speed.lap(step)
        if not self.enabled:
            return
        stats = " ".join(f"{k} {logs[k]:.3g}" for k in self.KEYS if k in logs) + f" | {ips:.1f} img/s"
        if self.bar is not None:
            self.bar.update(self.task, completed=step, stats=stats)
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
