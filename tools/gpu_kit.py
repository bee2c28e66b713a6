#!/usr/bin/env python3
"""The GPU kit's logic (docs/gpu-kit.md). ``tools/gpu_run.sh`` calls these subcommands:

    python tools/gpu_kit.py env --device cuda --pack gpu-pack/faces128.pack --json W/env.json
    python tools/gpu_kit.py gan-anim train ...   # the gan-anim CLI, dlib blocked
    python tools/gpu_kit.py train --pack P --run W/run --seconds 360 --report W/train.json
    python tools/gpu_kit.py collect --work W --run W/run --out OUT

and these help with checkpoints that came back from the GPU machine:

    python tools/gpu_kit.py join OUT/checkpoint.pt.part0 OUT/checkpoint.pt.part1 -o gpu-pack/resume/checkpoint.pt
    python tools/gpu_kit.py expand gpu-pack/resume/checkpoint.pt -o runs/medium   # then gan-anim train --resume

Training runs through the ``gan-anim train`` command line. Without ``--steps`` it runs in
two phases: a short calibration at constant learning rate measures images/s on this
machine, then a resumed run whose ``--steps`` and ``--decay-start`` (2/3 of the steps of
this run) make the linear LR decay end near the time budget; ``--max-minutes`` is
the safety net. Nothing here needs dlib (``block_dlib`` proves it).

The checkpoint that comes back is *compact*: generator and critic in float32, Adam's second
moments in bfloat16, and no first moments (beta1 = 0.5 forgets them within a few steps;
they restart at 0). ``expand_checkpoint`` turns it back into one ``gan-anim train --resume``
reads; ``gpu_run.sh`` does that itself for a checkpoint (or its parts) in ``gpu-pack/resume/``.
"""
from __future__ import annotations

import argparse
import importlib.abc
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

COMPACT_FORMAT = "gan-anim-checkpoint-compact-v1"
MiB = 2 ** 20
PART_BYTES = 15 * MiB        # checkpoint parts and the weights file
MAX_FILES, MAX_FILE_BYTES = 8, 16 * MiB
BLOCKED = ("dlib", "face_recognition_models")


# ----------------------------------------------------------------------- no dlib

class _Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked by the GPU kit: the GPU machine has no dlib")
        return None


def block_dlib() -> None:
    """Make ``import dlib`` fail, as on the GPU machine (no dlib there)."""
    if not any(isinstance(f, _Blocker) for f in sys.meta_path):
        sys.meta_path.insert(0, _Blocker())


# ----------------------------------------------------------------- landmarks

def synthetic_landmarks(n: int, seed: int = 0):
    """(n, 68, 2) float32 plausible aligned faces in crop-side units (dlib's 68-point
    layout, jittered): for tests and benchmarks that have no real faces."""
    import numpy as np

    pts = []
    t = np.linspace(0, 1, 17)
    pts += list(zip(0.5 - 0.4 * np.cos(np.pi * t), 0.35 + 0.6 * np.sin(np.pi * t)))      # jaw 0-16
    for x0 in (0.17, 0.57):                                                              # brows 17-26
        xs = np.linspace(x0, x0 + 0.26, 5)
        pts += list(zip(xs, 0.3 - 0.04 * np.sin(np.pi * (xs - x0) / 0.26)))
    pts += [(0.5, y) for y in np.linspace(0.37, 0.55, 4)]                                # nose 27-30
    pts += [(x, 0.6 - 0.02 * (1 - abs(x - 0.5) / 0.08)) for x in np.linspace(0.42, 0.58, 5)]  # 31-35
    for cx in (0.32, 0.68):                                                              # eyes 36-47
        a = np.linspace(np.pi, -np.pi, 7)[:-1]
        pts += list(zip(cx + 0.07 * np.cos(a), 0.42 - 0.025 * np.sin(a)))
    a = np.linspace(np.pi, -np.pi, 13)[:-1]                                              # lips 48-59
    pts += list(zip(0.5 + 0.16 * np.cos(a), 0.76 - 0.06 * np.sin(a)))
    a = np.linspace(np.pi, -np.pi, 9)[:-1]                                               # 60-67
    pts += list(zip(0.5 + 0.1 * np.cos(a), 0.76 - 0.02 * np.sin(a)))
    base = np.array(pts, np.float32)
    assert base.shape == (68, 2)
    rng = np.random.default_rng(seed)
    jitter = rng.uniform(-0.008, 0.008, (n, 68, 2)).astype(np.float32)
    return base[None] + jitter


# ------------------------------------------------------------------ checkpoints

def compact_checkpoint(blob: dict) -> dict:
    """A training checkpoint without Adam's first moments, second moments in bfloat16."""
    import torch

    out = {k: v for k, v in blob.items() if k != "path"}
    for key in ("opt_g", "opt_d"):
        sd = blob[key]
        state = {}
        for i, st in sd["state"].items():
            state[i] = {k: (v.to(torch.bfloat16) if k == "exp_avg_sq" else v)
                        for k, v in st.items() if k != "exp_avg"}
        out[key] = {"state": state, "param_groups": sd["param_groups"]}
    out["compact"] = COMPACT_FORMAT
    return out


def expand_checkpoint(blob: dict) -> dict:
    """Undo ``compact_checkpoint`` (first moments restart at 0); other blobs pass unchanged."""
    import torch

    if blob.get("compact") != COMPACT_FORMAT:
        return blob
    out = {k: v for k, v in blob.items() if k not in ("compact", "path")}
    for key in ("opt_g", "opt_d"):
        sd = blob[key]
        state = {}
        for i, st in sd["state"].items():
            sq = st["exp_avg_sq"].float()
            state[i] = {"step": st["step"], "exp_avg": torch.zeros_like(sq), "exp_avg_sq": sq}
            state[i].update({k: v for k, v in st.items() if k not in state[i]})
        out[key] = {"state": state, "param_groups": sd["param_groups"]}
    return out


def _part_index(p: Path) -> int:
    m = re.search(r"\.part(\d+)$", p.name)
    return int(m.group(1)) if m else -1


def join_parts(parts, output) -> Path:
    """Concatenate ``checkpoint.pt.part0, part1, ...`` (in part order) into ``output``."""
    parts = sorted((Path(p) for p in parts), key=_part_index)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".joining")
    with open(tmp, "wb") as out:
        for p in parts:
            out.write(p.read_bytes())
    os.replace(tmp, output)
    return output


def split_file(path: Path, out_dir: Path, name: str, part_bytes: int = PART_BYTES) -> list[Path]:
    """``name`` itself if it fits in one part, else ``name.part0, name.part1, ...``."""
    size = path.stat().st_size
    if size <= part_bytes:
        dst = out_dir / name
        dst.write_bytes(path.read_bytes())
        return [dst]
    written = []
    with open(path, "rb") as fh:
        k = 0
        while chunk := fh.read(part_bytes):
            dst = out_dir / f"{name}.part{k}"
            dst.write_bytes(chunk)
            written.append(dst)
            k += 1
    return written


def load_checkpoint_file(path) -> dict:
    import torch

    blob = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or "generator" not in blob or "opt_g" not in blob:
        raise ValueError(f"{path}: not a gan-anim training checkpoint")
    return blob


def find_resume(resume_dir) -> tuple[dict, str] | None:
    """(full checkpoint, where from) out of a folder holding parts, a compact or a full
    checkpoint (the newest), or None."""
    d = Path(resume_dir)
    if not d.is_dir():
        return None
    parts = [p for p in d.iterdir() if _part_index(p) >= 0]
    if parts:
        stems = {re.sub(r"\.part\d+$", "", p.name) for p in parts}
        stem = sorted(stems)[-1]
        mine = [p for p in parts if re.sub(r"\.part\d+$", "", p.name) == stem]
        idx = sorted(_part_index(p) for p in mine)
        if idx != list(range(len(idx))):
            raise ValueError(f"{d}: parts of {stem} are missing: have {idx}")
        joined = join_parts(mine, d / stem)
        for p in mine:
            p.unlink()
        return expand_checkpoint(load_checkpoint_file(joined)), str(joined)
    files = sorted(d.glob("*.pt"), key=lambda p: p.stat().st_mtime)
    if not files:
        return None
    return expand_checkpoint(load_checkpoint_file(files[-1])), str(files[-1])


# ----------------------------------------------------------------------- env

def _version(mod: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(mod)
    except Exception:
        try:
            m = __import__(mod)
            return str(getattr(m, "__version__", "?"))
        except Exception:
            return None


def cmd_env(a) -> int:
    import importlib.util

    info: dict = {"python": sys.version.split()[0], "platform": sys.platform}
    info["dlib_installed"] = importlib.util.find_spec("dlib") is not None
    block_dlib()
    problems = []
    try:
        import gan_anim.cli  # noqa: F401
        import gan_anim.model  # noqa: F401
        import gan_anim.training.data  # noqa: F401
        import gan_anim.training.loop  # noqa: F401
        import gan_anim.training.pack  # noqa: F401
    except ImportError as exc:
        problems.append(f"importing gan_anim needs {exc}")
    info["dlib_imported"] = "dlib" in sys.modules
    info["no_dlib_ok"] = not problems and "dlib" not in sys.modules
    import torch

    info["torch"] = torch.__version__
    info["torch_cuda"] = torch.version.cuda
    info["cuda_available"] = torch.cuda.is_available()
    for mod, name in (("numpy", "numpy"), ("cv2", "opencv-python"), ("PIL", "pillow"), ("click", "click"),
                      ("rich", "rich"), ("imageio", "imageio"), ("pytest", "pytest")):
        info[mod] = _version(name) or _version(mod)
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(device_name=torch.cuda.get_device_name(0), capability=".".join(map(str, (p.major, p.minor))),
                    memory_gib=round(p.total_memory / 2 ** 30, 1), sm_count=p.multi_processor_count,
                    device_count=torch.cuda.device_count(), cudnn=torch.backends.cudnn.version(),
                    bf16_supported=bool(torch.cuda.is_bf16_supported()))
        try:
            x = torch.randn(256, 256, device="cuda")
            with torch.autocast("cuda", dtype=torch.bfloat16):
                y = x @ x
            torch.cuda.synchronize()
            info["bf16_autocast_ok"] = y.dtype == torch.bfloat16 and bool(torch.isfinite(y).all())
        except Exception as exc:  # noqa: BLE001
            info["bf16_autocast_ok"] = False
            problems.append(f"bf16 autocast on CUDA failed: {exc}")
    else:
        info.update(device_name="cpu", bf16_supported=None)
        if a.device == "cuda":
            problems.append("no CUDA device visible to torch")
    if a.pack:
        try:
            from gan_anim.training.pack import read_pack

            arr = read_pack(a.pack)
            info["pack"] = {"path": a.pack, "mib": round(Path(a.pack).stat().st_size / MiB, 2),
                            "faces": len(arr["names"]), "train": int((arr["split"] == 0).sum()),
                            "test": int((arr["split"] == 1).sum()), "quality": int(arr["quality"]),
                            "size": int(arr["size"]), "landmarks": "landmarks" in arr,
                            "with_person_id": int((arr["person"] >= 0).sum()) if "person" in arr else 0}
        except Exception as exc:  # noqa: BLE001
            problems.append(f"pack: {exc}")
    info["problems"] = problems
    for k, v in info.items():
        print(f"  {k:<18} {v}")
    if a.json:
        Path(a.json).write_text(json.dumps(info, indent=1))
    return 1 if problems else 0


def cmd_cli(argv: list[str]) -> int:
    """The gan-anim command line with dlib blocked."""
    block_dlib()
    from gan_anim.cli import main

    main(args=argv, prog_name="gan-anim")
    return 0


# ----------------------------------------------------------------------- train

def _records(run: Path, after_step: int) -> list[dict]:
    path = run / "log.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("step", 0) > after_step:
            out.append(rec)
    return out


def _span_ips(recs: list[dict], batch: int) -> float | None:
    """Images/s from the first to the last record (warm-up before the first left out),
    or the last record's own figure when the span is short."""
    if not recs:
        return None
    if len(recs) >= 2:
        span = recs[-1]["wall_s"] - recs[0]["wall_s"]
        if span >= 2.0:
            return (recs[-1]["step"] - recs[0]["step"]) * batch / span
    return float(recs[-1]["images_per_s"])


def _newest_step(run: Path) -> int | None:
    found = sorted(run.glob("checkpoint-*.pt"))
    return int(found[-1].stem.split("-")[1]) if found else None


class _Child:
    """The running training process. On SIGTERM the kit starts no further phase and waits.

    The signal is not passed on: ``timeout`` (gpu_run.sh) signals the whole process group,
    so the training process gets it too, saves a checkpoint and exits; a second SIGTERM
    would make it stop at once, without one.
    """

    proc: subprocess.Popen | None = None
    stop = False

    @classmethod
    def handle(cls, signum, frame):
        cls.stop = True


def _run(cmd: list[str], log) -> tuple[int, float]:
    log(f"$ {' '.join(cmd)}")
    t0 = time.time()
    _Child.proc = subprocess.Popen(cmd)
    rc = _Child.proc.wait()
    _Child.proc = None
    return rc, time.time() - t0


def cmd_train(a) -> int:
    import torch

    from gan_anim.training.checkpoints import checkpoint_paths

    signal.signal(signal.SIGTERM, _Child.handle)
    t_start = time.time()
    run = Path(a.run)
    run.mkdir(parents=True, exist_ok=True)
    say = lambda m: print(f"[kit train] {m}", flush=True)  # noqa: E731
    rep: dict = {"preset": a.preset, "device": a.device, "batch_size": a.batch, "lr": a.lr,
                 "gp_every": a.gp_every, "budget_s": round(a.seconds, 1), "phases": [],
                 "resumed_from": None, "pack": a.pack}

    def write():
        rep["stage_wall_s"] = round(time.time() - t_start, 1)
        if a.report:
            Path(a.report).write_text(json.dumps(rep, indent=1))

    resume = bool(checkpoint_paths(run))
    if resume:
        rep["resumed_from"] = f"{run} (an earlier kit run in this work folder)"
    elif a.resume_dir:
        try:
            found = find_resume(a.resume_dir)
        except Exception as exc:  # noqa: BLE001
            found = None
            rep["resume_error"] = str(exc)
            say(f"could not read the checkpoint in {a.resume_dir}: {exc}; starting afresh")
        if found is not None:
            blob, where = found
            torch.save(blob, run / f"checkpoint-{int(blob['step']):07d}.pt")
            rep["resumed_from"] = where
            resume = True
            del blob
    start_step, batch, wall_before = 0, a.batch, 0.0
    if resume:
        from gan_anim.training.checkpoints import read_checkpoint

        blob = read_checkpoint(run)
        start_step, batch = int(blob["step"]), int(blob["options"]["batch_size"])
        wall_before = float(blob.get("wall_s", 0.0))
        say(f"resuming at step {start_step} (batch {batch}) from {rep['resumed_from']}")
        rep.update(start_step=start_step, batch_size=batch, wall_before_s=round(wall_before, 1))
        del blob
    rep["start_step"] = start_step

    def base(b: int) -> list[str]:
        return [sys.executable, str(Path(__file__).resolve()), "gan-anim", "train",
                "--data", a.pack, "--out", str(run), "--preset", a.preset, "--device", a.device,
                "--batch-size", str(b), "--lr", f"{a.lr:g}", "--gp-every", str(a.gp_every),
                "--keep", "2", "--seed", "0", *shlex.split(a.train_args)]

    def left() -> float:
        return a.seconds - (time.time() - t_start)

    def phase(name, cmd, budget_s):
        nonlocal resume
        before = _newest_step(run)
        rc, wall = _run(cmd + ["--max-minutes", f"{max(budget_s, 1) / 60:.4f}"]
                        + (["--resume"] if resume else []), say)
        after = _newest_step(run)
        rec = {"name": name, "rc": rc, "wall_s": round(wall, 1), "budget_s": round(budget_s, 1),
               "from_step": before if before is not None else start_step, "to_step": after}
        rep["phases"].append(rec)
        if after is not None:
            resume = True
        write()
        return rc, wall, rec

    ok = False
    if a.steps:  # fixed length: one run, default schedule (decay over the last third)
        total = start_step + a.steps
        ce = a.checkpoint_every or (a.steps if a.steps <= 20 else max(1, a.steps // 4))
        rc, _, _ = phase("train", base(batch) + ["--steps", str(total), "--checkpoint-every", str(ce)],
                         left())
        ok = rc == 0
    else:
        tries = [batch] if resume else [batch] + ([batch // 2] if batch >= 16 else [])
        ips = None
        for b in tries:
            calib = min(a.calib_s, 0.15 * a.seconds)
            big = start_step + 10 ** 7
            ce_a = max(1, round(15 * a.expected_ips / b))
            rc, wall, rec = phase("calibrate", base(b) + ["--steps", str(big), "--decay-start", str(big),
                                                          "--checkpoint-every", str(ce_a)], calib)
            recs = _records(run, start_step)
            if recs:  # a checkpoint was written (even if the process failed later)
                batch = b
                rep["batch_size"] = b
                ips = _span_ips(recs, b)
                rec["images_per_s"] = ips
                rec["overhead_s"] = round(max(0.0, wall - calib), 1)
                break
            say(f"calibration at batch {b} failed (rc {rc})")
            if _Child.stop or left() < 60:
                break
        if ips is not None and not _Child.stop:
            stopped = _newest_step(run) or start_step
            overhead = rep["phases"][-1]["overhead_s"]
            budget_b = left() - overhead
            step_s = batch / max(ips, 1e-9)
            if budget_b < max(5.0, 3 * step_s):
                say(f"{budget_b:.0f} s left: no time for the main phase; keeping the calibration's "
                    f"checkpoint at step {stopped}")
                ok = True
            else:
                steps_b = max(1, int(budget_b * ips / batch * a.overplan))
                total = stopped + steps_b
                decay = max(stopped, start_step + round(2 * (total - start_step) / 3))
                ce_b = max(1, round(a.checkpoint_s * ips / batch))
                say(f"measured {ips:.1f} images/s at batch {batch}: {steps_b} more steps in "
                    f"{budget_b:.0f} s, to step {total}, LR decay from step {decay}, "
                    f"checkpoint every {ce_b} steps")
                rep.update(planned_total_steps=total, decay_start=decay, checkpoint_every=ce_b,
                           calibrated_images_per_s=round(ips, 1))
                rc, _, _ = phase("train", base(batch) + ["--steps", str(total), "--decay-start", str(decay),
                                                         "--checkpoint-every", str(ce_b)], budget_b)
                ok = rc == 0
        elif ips is not None:
            ok = True
    # figures of the whole stage
    final = _newest_step(run)
    recs = _records(run, start_step)
    rep["final_step"] = final
    rep["ok"] = bool(ok and final is not None)
    if final is not None:
        trained = (final - start_step) * batch
        rep["images_this_session"] = trained
        rep["images_seen_total"] = final * batch
        rep["steps_this_session"] = final - start_step
        phase_walls = sum(p["wall_s"] for p in rep["phases"])
        rep["images_per_s_stage"] = round(trained / max(time.time() - t_start, 1e-9), 1)
        loop = [r for r in recs if r.get("images_per_s")]
        if loop:
            main = [r for r in loop if r["step"] > rep["phases"][-1]["from_step"]] if rep["phases"] else loop
            steady = _span_ips(main or loop, batch)
            rep["images_per_s"] = round(steady, 1) if steady else None
            rep["images_per_s_last"] = loop[-1]["images_per_s"]
            rep["images_per_s_best"] = max(r["images_per_s"] for r in loop)
            rep["train_wall_s_total"] = loop[-1].get("wall_s")
            rep["lr_last"] = loop[-1].get("lr")
            rep["last_losses"] = {k: v for k, v in loop[-1].items()
                                  if k not in ("step", "images_seen", "wall_s", "images_per_s", "lr")}
        rep["phase_wall_s"] = round(phase_walls, 1)
        try:
            from gan_anim.training.pack import read_pack

            n_train = int((read_pack(a.pack)["split"] == 0).sum())
            rep["epochs_total"] = round(final * batch / n_train, 2)
        except Exception:  # noqa: BLE001
            pass
    write()
    say(json.dumps({k: rep.get(k) for k in ("ok", "final_step", "images_this_session", "images_per_s",
                                            "images_per_s_stage", "epochs_total")}))
    return 0 if rep["ok"] else 1


# --------------------------------------------------------------------- collect

def _pytest_summary(path: Path) -> dict:
    if not path.is_file():
        return {"ran": False}
    text = path.read_text(errors="replace")
    out: dict = {"ran": True}
    lines = [ln for ln in text.splitlines() if ln.strip()]
    tail = next((ln for ln in reversed(lines) if re.search(r"\d+ (passed|failed|skipped|error|deselected)", ln)),
                lines[-1] if lines else "")
    out["summary"] = tail.strip("= ").strip()
    for n, kind in re.findall(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected)", tail):
        out[kind.rstrip("s") if kind.startswith("error") else kind] = int(n)
    out["failures"] = [ln[7:].strip() for ln in lines if ln.startswith(("FAILED ", "ERROR "))][:20]
    return out


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except Exception:  # noqa: BLE001
        return None


def cmd_collect(a) -> int:
    import torch

    work, out, run = Path(a.work), Path(a.out), Path(a.run)
    out.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    figures: dict = {"kit": "gan-anim gpu kit", "when_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    stages = {}
    tsv = work / "stages.tsv"
    if tsv.is_file():
        for line in tsv.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) == 3:
                stages[parts[0]] = {"rc": int(parts[1]), "seconds": float(parts[2]), "ok": parts[1] == "0"}
    figures["stages"] = stages
    figures["env"] = _read_json(work / "env.json")
    figures["tests"] = _pytest_summary(work / "pytest-cuda.log")
    if (work / "run-b" / "log.jsonl").is_file():  # arm B: its last logged interval
        lines = (work / "run-b" / "log.jsonl").read_text().splitlines()
        figures["arm_b"] = json.loads(lines[-1]) if lines else None
    figures["train"] = _read_json(work / "train.json")
    figures["bench"] = _read_json(work / "bench.json")
    figures["compare"] = _read_json(work / "compare.json")  # tools/train_compare.py: today vs fast

    # samples grid and log
    grids = sorted((run / "samples").glob("step-*.png"))
    if grids:
        (out / "samples.png").write_bytes(grids[-1].read_bytes())
        figures["samples"] = grids[-1].name
    if (run / "log.jsonl").is_file():
        (out / "log.jsonl").write_bytes((run / "log.jsonl").read_bytes())
    weights = sorted(out.glob("weights-*.pt"))
    if weights:
        figures["weights"] = {p.name: p.stat().st_size for p in weights}
        problems += [f"{p.name} is over 15 MiB" for p in weights if p.stat().st_size > PART_BYTES]
    # run.log: a snapshot of everything printed so far (head and tail if it is huge)
    log = work / "run.log"
    if log.is_file():
        data = log.read_bytes()
        if len(data) > PART_BYTES:
            data = data[:4 * MiB] + b"\n[... cut by the GPU kit ...]\n" + data[-10 * MiB:]
        (out / "run.log").write_bytes(data)

    # the resumable checkpoint, compact, in parts if needed
    others = [p for p in out.iterdir() if p.is_file() and not p.name.startswith("checkpoint.pt")]
    slots = MAX_FILES - len(others) - (0 if (out / "figures.json").exists() else 1)
    found = sorted(run.glob("checkpoint-*.pt"))
    if found:
        try:
            from gan_anim.training.checkpoints import read_checkpoint

            blob = compact_checkpoint(read_checkpoint(found[-1]))
            tmp = work / "checkpoint-compact.pt"
            torch.save(blob, tmp)
            size = tmp.stat().st_size
            need = max(1, math.ceil(size / PART_BYTES))
            ckpt = {"from": found[-1].name, "step": int(blob["step"]), "bytes": size, "parts": need,
                    "full_bytes": found[-1].stat().st_size,
                    "format": f"{COMPACT_FORMAT}: float32 generator and critic, Adam second moments in "
                              f"bfloat16, first moments dropped (restart at 0)",
                    "reassemble": "cat checkpoint.pt.part* > gpu-pack/resume/checkpoint.pt (or copy the "
                                  "parts into gpu-pack/resume/: gpu_run.sh joins them)"}
            if need > slots:
                problems.append(f"checkpoint needs {need} parts of 15 MiB, {slots} file slots left: not written")
            else:
                for old in out.glob("checkpoint.pt*"):
                    old.unlink()
                ckpt["files"] = [p.name for p in split_file(tmp, out, "checkpoint.pt")]
            tmp.unlink(missing_ok=True)
            figures["checkpoint"] = ckpt
        except Exception as exc:  # noqa: BLE001
            problems.append(f"checkpoint: {type(exc).__name__}: {exc}")
    else:
        problems.append("no checkpoint to bring back")

    figures["problems"] = problems
    fig_path = out / "figures.json"
    for _ in range(2):  # the second pass lists figures.json's own size
        files = {p.name: p.stat().st_size for p in sorted(out.iterdir()) if p.is_file()}
        figures["files"] = files
        fig_path.write_text(json.dumps(figures, indent=1))
    files = {p.name: p.stat().st_size for p in sorted(out.iterdir()) if p.is_file()}
    bad = [n for n, s in files.items() if s > MAX_FILE_BYTES]
    if len(files) > MAX_FILES or bad:
        problems.append(f"{len(files)} files (max {MAX_FILES}); over 16 MiB: {bad}")
        figures["problems"] = problems
        fig_path.write_text(json.dumps(figures, indent=1))
    _print_summary(figures)
    return 1 if problems else 0


def _print_summary(f: dict) -> None:
    print("---- GPU kit summary ----")
    env = f.get("env") or {}
    print(f"device   {env.get('device_name')}  torch {env.get('torch')}  bf16 {env.get('bf16_supported')}  "
          f"no dlib {env.get('no_dlib_ok')}")
    for name, s in (f.get("stages") or {}).items():
        print(f"stage    {name:<8} rc {s['rc']}  {s['seconds']:.0f} s")
    t = f.get("tests") or {}
    print(f"tests    {t.get('summary')}  {' '.join(t.get('failures') or [])}")
    tr = f.get("train") or {}
    print(f"train    step {tr.get('start_step')} -> {tr.get('final_step')}, batch {tr.get('batch_size')}, "
          f"{tr.get('images_this_session')} images, {tr.get('images_per_s')} images/s "
          f"(stage average {tr.get('images_per_s_stage')}), epochs {tr.get('epochs_total')}")
    b = f.get("bench") or {}
    for r in (b.get("inference") or []):
        if r.get("batch") == 256 or r.get("batch") == max(x.get("batch", 0) for x in b["inference"]):
            print(f"bench    {r['preset']:<6} {r['dtype']:<4} batch {r['batch']:<3} {r.get('faces_per_s')} faces/s, "
                  f"{r.get('tflops')} TFLOP/s ({r.get('peak_fraction')} of peak)")
    for r in (b.get("training") or []):
        print(f"bench    train medium {r.get('step', 'today'):<7} batch {r['batch']}: {r.get('images_per_s')} images/s, "
              f"{r.get('tflops')} TFLOP/s ({r.get('peak_fraction')} of peak), x{r.get('speedup')} vs today")
    for r in (b.get("pipeline") or []):
        keys = ("animate_12mp_s", "video_1080p_fps", "photos_per_s")
        got = {k: r[k] for k in keys if k in r}
        print(f"bench    {r.get('row')}: {got or r.get('skipped') or r.get('error')}, "
              f"x{r.get('speedup_vs_cpu_composite')} vs the CPU composite")
    c = f.get("compare") or {}
    if c:
        t, fa = c.get("today") or {}, c.get("fast") or {}
        print(f"compare  {c.get('steps')} steps at batch {c.get('batch')}: today {t.get('images_per_s')} images/s, "
              f"fast (compile {fa.get('compile')}) {fa.get('images_per_s')} images/s, x{c.get('speedup')}; "
              f"second-half loss means {c.get('second_half_means')}")
    for name, size in (f.get("files") or {}).items():
        print(f"file     {name:<28} {size / MiB:7.2f} MiB")
    for p in f.get("problems") or []:
        print(f"PROBLEM  {p}")


# ----------------------------------------------------------------------- main

def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "gan-anim":
        return cmd_cli(argv[1:])
    ap = argparse.ArgumentParser(prog="tools/gpu_kit.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("env", help="check torch, CUDA, bf16 and that no dlib is needed")
    e.add_argument("--device", default="cuda")
    e.add_argument("--pack", default=None)
    e.add_argument("--json", default=None)
    t = sub.add_parser("train", help="calibrate, then train to the time budget (gan-anim train)")
    t.add_argument("--pack", required=True)
    t.add_argument("--run", required=True)
    t.add_argument("--seconds", type=float, required=True, help="training wall budget of the stage")
    t.add_argument("--preset", default="medium")
    t.add_argument("--device", default="cuda")
    t.add_argument("--batch", type=int, default=128)
    t.add_argument("--lr", type=float, default=2e-4)
    t.add_argument("--gp-every", type=int, default=4)
    t.add_argument("--steps", type=int, default=None, help="fixed steps for this run (no calibration)")
    t.add_argument("--checkpoint-every", type=int, default=None)
    t.add_argument("--expected-ips", type=float, default=1500.0)
    t.add_argument("--calib-s", type=float, default=45.0)
    t.add_argument("--checkpoint-s", type=float, default=90.0)
    t.add_argument("--overplan", type=float, default=1.05,
                   help="plan this many times the measured speed's steps (the budget stop ends it)")
    t.add_argument("--resume-dir", default=None)
    t.add_argument("--report", default=None)
    t.add_argument("--train-args", default="", help="extra `gan-anim train` options, e.g. loss weights")
    c = sub.add_parser("collect", help="assemble OUT: <= 8 files of <= 16 MiB, figures.json")
    c.add_argument("--work", required=True)
    c.add_argument("--run", required=True)
    c.add_argument("--out", required=True)
    j = sub.add_parser("join", help="join checkpoint.pt.part0, part1, ... into one file")
    j.add_argument("parts", nargs="+")
    j.add_argument("-o", "--output", required=True)
    x = sub.add_parser("expand", help="a compact checkpoint (or parts) -> a full one in a run folder")
    x.add_argument("checkpoint", nargs="+")
    x.add_argument("-o", "--out", required=True, help="run folder to --resume from")
    a = ap.parse_args(argv)
    if a.cmd == "env":
        return cmd_env(a)
    if a.cmd == "train":
        return cmd_train(a)
    if a.cmd == "collect":
        return cmd_collect(a)
    if a.cmd == "join":
        print(join_parts(a.parts, a.output))
        return 0
    if a.cmd == "expand":
        import torch

        src = Path(a.checkpoint[0])
        if len(a.checkpoint) > 1 or _part_index(src) >= 0:
            src = join_parts(a.checkpoint, Path(a.out) / "joined-checkpoint.pt")
        blob = expand_checkpoint(load_checkpoint_file(src))
        Path(a.out).mkdir(parents=True, exist_ok=True)
        dst = Path(a.out) / f"checkpoint-{int(blob['step']):07d}.pt"
        torch.save(blob, dst)
        if src.name == "joined-checkpoint.pt":
            src.unlink()
        print(dst)
        return 0
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
