"""Start-up time of the command line (target: 0.3 s or less for help, presets, usage and
input errors), each next to the eager-import baseline measured in the same run.

    python benchmarks/bench_startup.py            # 10 rounds
    python benchmarks/bench_startup.py --runs 20 --json

Every round runs each command once, in turn (so load from other processes hits all of
them alike); the medians are printed with the baseline, the cost of importing what the
CLI used to import at start (torch, cv2, dlib, imageio), divided by each command's time.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "astronaut.jpg"
TARGET_S = 0.3


def commands(workdir: Path) -> dict[str, list[str]]:
    py = sys.executable
    cli = [py, "-m", "gan_anim"]
    empty = workdir / "empty.jpg"
    empty.write_bytes(b"")
    return {
        "baseline: eager imports": [py, "-c", "import torch, cv2, dlib, imageio; import gan_anim.cli"],
        "gan-anim --help": cli + ["--help"],
        "gan-anim presets": cli + ["presets"],
        "gan-anim animate --help": cli + ["animate", "--help"],
        "usage error (animate --bogus)": cli + ["animate", "--bogus"],
        "missing photo": cli + ["animate", str(workdir / "missing.jpg")],
        "empty photo": cli + ["animate", str(empty)],
        "unknown AU (--to AU99=3)": cli + ["animate", str(EXAMPLE), "--to", "AU99=3"],
        "output = input": cli + ["animate", str(EXAMPLE), "-o", str(EXAMPLE)],
    }


def time_once(cmd: list[str], cwd: Path) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10, help="rounds (each command once per round)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cmds = commands(work)
        for cmd in cmds.values():  # warm the file cache
            time_once(cmd, work)
        load_before = os.getloadavg()
        times: dict[str, list[float]] = {name: [] for name in cmds}
        for _ in range(args.runs):
            for name, cmd in cmds.items():
                times[name].append(time_once(cmd, work))
        load_after = os.getloadavg()
    med = {name: statistics.median(t) for name, t in times.items()}
    base = med["baseline: eager imports"]
    rows = [{"command": name, "median_s": round(m, 3), "min_s": round(min(times[name]), 3),
             "baseline_s": round(base, 3), "speedup": round(base / m, 1)}
            for name, m in med.items() if not name.startswith("baseline")]
    if args.json:
        print(json.dumps({"runs": args.runs, "load_before": load_before, "load_after": load_after,
                          "baseline_s": round(base, 3), "rows": rows}, indent=1))
        return 0
    print(f"{args.runs} rounds; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after; "
          f"{os.cpu_count()} CPUs")
    print(f"{'command':<32} {'median':>8} {'min':>7} {'eager baseline':>15} {'speed-up':>9}  target")
    for r in rows:
        ok = "met" if r["median_s"] <= TARGET_S else "NOT met"
        print(f"{r['command']:<32} {r['median_s']:>7.3f}s {r['min_s']:>6.3f}s {r['baseline_s']:>14.3f}s "
              f"{r['speedup']:>8.1f}x  <= {TARGET_S} s {ok}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
