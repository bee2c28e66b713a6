#!/usr/bin/env python3
"""Today's training step against the fast one, side by side: speed and loss curves.

    python tools/train_compare.py run --pack gpu-pack/faces128.pack --device cuda --steps 300 --json W/compare.json
    python tools/train_compare.py plot OUT/figures.json -o compare.png    # the curves, on any machine

``run`` (the GPU kit's ``compare`` stage) trains the same model from the same weights on the
same batches twice, ``--steps`` each, in one process: ``today`` (``make_batch``, plain Adam,
eager: the step before the speed work) and ``fast`` (batches assembled on the device, fused
Adam, ``--compile``). Every ``--window`` steps it records each loss's mean over the window
against the images seen, and the seconds; images/s is measured after the first window
(compilation and warm-up), and its share of the card's dense bf16 peak from the FLOPs
``benchmarks/bench_gpu.py`` counts. The report is rewritten after every window, so a
stage stopped by its time limit keeps what it measured. ``plot`` draws each loss of both
arms against the images seen (OpenCV; the GPU kit brings back no image for it: its 8 files
are taken).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

LOSSES = ("d_loss", "gp", "d_au", "g_adv", "g_au", "cycle", "attention")


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def arms(compile_mode: str) -> dict[str, dict]:
    """The two ways to train: (data_on_device, fused Adam, compile) of each."""
    return {"today": {"data_on_device": "off", "fused": False, "compile": "off"},
            "fast": {"data_on_device": "on", "fused": True, "compile": compile_mode}}


def train_arm(name: str, spec: dict, cfg, ds, rt, opts, steps: int, window: int, deadline: float,
              report, say) -> dict:
    """Train ``steps`` steps one way; the record (loss windows, images/s) is in ``report[name]``."""
    import torch

    from gan_anim.training.loop import batch_source
    from gan_anim.training.motion_fit import fit_motion_into
    from gan_anim.training.stats import Collector
    from gan_anim.training.trainer import GANTrainer

    trainer = GANTrainer(cfg, opts, rt, compile=spec["compile"], fused=spec["fused"])
    if cfg.motion:
        fit_motion_into(trainer.G, ds)
    batches = batch_source(ds, opts, rt, spec["data_on_device"])
    rec = dict(spec, steps_planned=steps, log=[])
    report[name] = rec
    stats = Collector()
    sync = torch.cuda.synchronize if rt.cuda else (lambda: None)
    t0 = time.perf_counter()
    t_window = t0
    for step in range(1, steps + 1):
        stats.report(trainer.step(step - 1, *batches(step - 1)))
        if step % window and step != steps:
            continue
        stats.collect()
        sync()
        now = time.perf_counter()
        rec["log"].append({"step": step, "images": step * opts.batch_size, "wall_s": round(now - t0, 2),
                           "window_s": round(now - t_window, 3),
                           **{k: round(v, 6) for k, v in sorted(stats.means().items())}})
        stats.reset()
        t_window = now
        _speed(rec, opts.batch_size)
        report.save()
        if now > deadline and step < steps:
            rec["stopped"] = f"time budget, at step {step}"
            say(f"{name}: stopped at step {step} of {steps} (time budget)")
            break
    rec["trainer"] = trainer
    return rec


def _speed(rec: dict, batch: int) -> None:
    """Images/s after the first window (compilation, cuDNN's search and warm-up)."""
    log = rec["log"]
    rec["first_window_s"] = log[0]["window_s"]
    if len(log) >= 2:
        steps = log[-1]["step"] - log[0]["step"]
        rec["images_per_s"] = round(steps * batch / (log[-1]["wall_s"] - log[0]["wall_s"]), 1)
        rec["ms_per_step"] = round(1e3 * batch / rec["images_per_s"], 2)


class Report(dict):
    def __init__(self, path):
        super().__init__()
        self.path = path

    def save(self) -> None:
        if self.path:
            clean = {k: ({kk: vv for kk, vv in v.items() if kk != "trainer"} if isinstance(v, dict) else v)
                     for k, v in self.items()}
            Path(self.path).write_text(json.dumps(clean, indent=1))


def cmd_run(a) -> int:
    import torch

    kit = _load("gpu_kit", ROOT / "tools" / "gpu_kit.py")
    kit.block_dlib()
    bench = _load("bench_gpu", ROOT / "benchmarks" / "bench_gpu.py")
    from gan_anim.model import PRESETS
    from gan_anim.training.data import load_dataset
    from gan_anim.training.options import TrainOptions
    from gan_anim.training.runtime import setup_runtime

    say = lambda m: print(f"[compare] {m}", flush=True)  # noqa: E731
    t_start = time.perf_counter()
    cfg = PRESETS[a.preset]
    rt = setup_runtime(a.device)
    opts = TrainOptions(batch_size=a.batch, lr=a.lr, gp_every=a.gp_every, steps=10 ** 7, seed=0)
    ds = load_dataset(a.pack, cfg.image_size, "train", a.batch)
    name = torch.cuda.get_device_name(rt.device) if rt.cuda else "cpu"
    peak, assumption = bench.peak_for(name) if rt.cuda else (None, "CPU: no peak assumed")
    report = Report(a.json)
    report.update(device=name, preset=a.preset, batch=a.batch, lr=a.lr, gp_every=a.gp_every, steps=a.steps,
                  window=a.window, faces=len(ds), peak_bf16_tflops=peak, peak_assumption=assumption,
                  load_s=round(time.perf_counter() - t_start, 1))
    say(f"{name}: {a.preset}, batch {a.batch}, {a.steps} steps each way, {len(ds)} faces")
    budget = a.seconds - (time.perf_counter() - t_start)
    for k, (arm, spec) in enumerate(arms(a.compile).items()):
        left = a.seconds - (time.perf_counter() - t_start)
        deadline = time.perf_counter() + (left * 0.4 if k == 0 else left - 5)  # today is the shorter
        try:
            rec = train_arm(arm, spec, cfg, ds, rt, opts, a.steps, a.window, deadline, report, say)
        except Exception as exc:  # noqa: BLE001 (a failed arm is a result: the other one still runs)
            rec = report.setdefault(arm, dict(spec, log=[]))
            rec["error"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ''}"
            report.save()
        say(f"{arm}: {rec.get('images_per_s')} images/s, first window {rec.get('first_window_s')} s"
            + (f"; failed: {rec['error']}" if "error" in rec else ""))
    if "trainer" in report.get("today", {}):
        _flops(report, bench, ds, rt, opts, peak)
    _summary(report)
    report["wall_s"] = round(time.perf_counter() - t_start, 1)
    report["budget_s"] = round(budget, 1)
    report.save()
    for line in table(report):
        say(line)
    return 0 if all("images_per_s" in report.get(x, {}) for x in ("today", "fast")) else 1


def _flops(report, bench, ds, rt, opts, peak) -> None:
    """FLOPs per image of a few eager steps (the same for both arms), and each arm's share of peak."""
    trainer = report["today"].pop("trainer")
    report.get("fast", {}).pop("trainer", None)
    from gan_anim.training.loop import batch_source

    batches = batch_source(ds, opts, rt, "off")
    n = 5
    flops = bench.count_flops(lambda: [trainer.step(k, *batches(k)) for k in range(n)]) / (n * opts.batch_size)
    report["gflop_per_image"] = round(flops / 1e9, 3)
    for arm in ("today", "fast"):
        ips = report[arm].get("images_per_s")
        if ips:
            report[arm]["tflops"] = round(ips * flops / 1e12, 2)
            if peak:
                report[arm]["peak_fraction"] = round(ips * flops / 1e12 / peak, 4)


def _summary(report) -> None:
    """Speed-up, and each loss's mean over the second half of both runs (same images)."""
    t, f = report.get("today", {"log": []}), report.get("fast", {"log": []})
    if t.get("images_per_s") and f.get("images_per_s"):
        report["speedup"] = round(f["images_per_s"] / t["images_per_s"], 2)
    n = min(len(t["log"]), len(f["log"]))
    half = [(a, b) for a, b in zip(t["log"][n // 2:n], f["log"][n // 2:n])]
    means = {}
    for key in LOSSES:
        pairs = [(a[key], b[key]) for a, b in half if key in a and key in b]
        if pairs:
            means[key] = {"today": round(sum(p[0] for p in pairs) / len(pairs), 5),
                          "fast": round(sum(p[1] for p in pairs) / len(pairs), 5)}
    report["second_half_means"] = means


def table(report) -> list[str]:
    """The comparison as text: speed, then both loss curves side by side."""
    t, f = report.get("today", {}), report.get("fast", {})
    out = [f"images/s: today {t.get('images_per_s')}, fast {f.get('images_per_s')} "
           f"(x{report.get('speedup')}); share of bf16 peak {t.get('peak_fraction')} -> {f.get('peak_fraction')}; "
           f"first window {t.get('first_window_s')} s -> {f.get('first_window_s')} s"]
    keys = [k for k in ("d_loss", "g_adv", "g_au", "cycle", "attention") if any(k in r for r in t.get("log", []))]
    out.append("images   " + "  ".join(f"{k + ' today/fast':>24}" for k in keys))
    for a, b in zip(t.get("log", []), f.get("log", [])):
        cells = [f"{a.get(k, float('nan')):>11.4g} {b.get(k, float('nan')):>11.4g} " for k in keys]
        out.append(f"{a['images']:<8} " + "  ".join(cells))
    return out


# ------------------------------------------------------------------------ plot

def plot(compare: dict, output: Path, size=(300, 220)) -> Path:
    """One panel per loss: today (blue) and fast (orange) against the images seen."""
    import cv2
    import numpy as np

    t, f = compare["today"]["log"], compare["fast"]["log"]
    keys = [k for k in LOSSES if any(k in r for r in t)]
    w, h = size
    canvas = np.full((h * ((len(keys) + 2) // 3), w * 3, 3), 255, np.uint8)
    for i, key in enumerate(keys):
        x0, y0 = (i % 3) * w, (i // 3) * h
        series = [[(r["images"], r[key]) for r in log if key in r] for log in (t, f)]
        pts = [p for s in series for p in s]
        (xmin, xmax), (ymin, ymax) = [(min(v), max(v)) for v in zip(*pts)]
        span = (max(xmax - xmin, 1e-9), max(ymax - ymin, 1e-9))
        for s, colour in zip(series, ((200, 90, 30), (20, 130, 240))):  # BGR: blue, orange
            xy = np.array([(x0 + 30 + (x - xmin) / span[0] * (w - 45), y0 + h - 25 - (y - ymin) / span[1] * (h - 55))
                           for x, y in s], np.int32)
            cv2.polylines(canvas, [xy], False, colour, 2, cv2.LINE_AA)
            for x, y in xy:
                cv2.circle(canvas, (int(x), int(y)), 3, colour, -1, cv2.LINE_AA)
        cv2.putText(canvas, f"{key} {ymin:.3g}..{ymax:.3g}", (x0 + 8, y0 + 18), cv2.FONT_HERSHEY_SIMPLEX,
                    0.45, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.rectangle(canvas, (x0 + 28, y0 + 26), (x0 + w - 12, y0 + h - 22), (180, 180, 180), 1)
    cv2.putText(canvas, f"blue: today, orange: fast (x{compare.get('speedup')}); x: images", (8, canvas.shape[0] - 6),
                cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    if not cv2.imwrite(str(output), canvas):
        raise OSError(f"{output}: could not write")
    return output


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="tools/train_compare.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train both ways, side by side")
    r.add_argument("--pack", required=True, help="a pack or any gan-anim train --data")
    r.add_argument("--preset", default="medium")
    r.add_argument("--device", default="cuda")
    r.add_argument("--batch", type=int, default=128)
    r.add_argument("--lr", type=float, default=2e-4)
    r.add_argument("--gp-every", type=int, default=4)
    r.add_argument("--steps", type=int, default=300, help="steps of each arm")
    r.add_argument("--window", type=int, default=25, help="steps per loss record")
    r.add_argument("--compile", default="on", choices=["off", "on", "graphs"], help="the fast arm's --compile")
    r.add_argument("--seconds", type=float, default=120.0, help="budget of both arms together")
    r.add_argument("--json", default=None)
    p = sub.add_parser("plot", help="draw the curves of a compare.json or a kit's figures.json")
    p.add_argument("json")
    p.add_argument("-o", "--output", required=True)
    a = ap.parse_args(argv)
    if a.cmd == "run":
        if a.steps < 2 or a.window < 1:
            ap.error("--steps must be at least 2 and --window at least 1")
        return cmd_run(a)
    try:
        blob = json.loads(Path(a.json).read_text())
    except (OSError, ValueError) as exc:
        print(f"{a.json}: not readable JSON ({exc})", file=sys.stderr)
        return 1
    compare = blob.get("compare", blob)
    if not isinstance(compare, dict) or not (compare.get("today") or {}).get("log") \
            or not (compare.get("fast") or {}).get("log"):
        print(f"{a.json}: no comparison (today and fast loss logs) in it", file=sys.stderr)
        return 1
    print(plot(compare, Path(a.output)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
