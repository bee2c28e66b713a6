"""Training speed: gan-anim's step against a plain implementation, measured in one run.

    python benchmarks/bench_train.py                       # both presets: ~3 min on 2 free CPU cores,
                                                           # far longer while other jobs share them
    python benchmarks/bench_train.py --presets small --gp-every 1
    python benchmarks/bench_train.py --device cuda --presets paper --batch-paper 64

The plain step is the official code's structure on the paper's formulation of G:
17 constant AU maps concatenated to the image, three separate 7x7 heads; the
generator's forward made with gradients and then detached for the critic; real and
fake scored in two critic passes; the gradient penalty every step; the generator
forward recomputed for the generator step; critic weight gradients computed in the
generator step. gan-anim's step is ``training.trainer.GANTrainer.step``.

Both run in one process and alternate step by step, so a busy CPU slows both alike;
each step kind keeps its fastest repetition. Images/s counts critic images with one
generator step every ``critic_steps`` steps (averaged over the gradient-penalty cycle).
Peak memory (ru_maxrss) comes from a separate short process per implementation.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import torch
import torch.nn.functional as F


def plain_generate(G, x, y):
    """The generator as the paper writes it (same weights as ``G``)."""
    from gan_anim.model import compose

    b, _, h, w = x.shape
    feat = G.body(torch.cat([x, y.view(b, -1, 1, 1).expand(b, y.shape[1], h, w)], 1))
    color, attn = torch.tanh(G.color(feat)), torch.sigmoid(G.attention(feat))
    return compose(x, color, attn), attn


def plain_step(G, D, opt_g, opt_d, x, real_aus, target_aus, g_step, w):
    from gan_anim.training.losses import gradient_penalty, total_variation

    fake, _ = plain_generate(G, x, target_aus)
    fake = fake.detach()
    s_real, a_real = D(x)
    s_fake, _ = D(fake)
    alpha = torch.rand(x.shape[0], 1, 1, 1, device=x.device)
    d_loss = (s_fake.mean() - s_real.mean() + w.au * F.mse_loss(a_real, real_aus)
              + w.gp * gradient_penalty(D, x, fake, alpha))
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    if g_step:
        fake, attn = plain_generate(G, x, target_aus)
        s, a = D(fake)
        cyc, attn2 = plain_generate(G, fake, real_aus)
        g_loss = (-s.mean() + w.au * F.mse_loss(a, target_aus) + w.cycle * F.l1_loss(cyc, x)
                  + w.attention * (attn.mean() + attn2.mean())
                  + w.attention_tv * (total_variation(attn) + total_variation(attn2)))
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()


def _pick_step(critic_steps: int, gp_every: int, g_step: bool, gp: bool) -> int:
    """A step number for which GANTrainer makes this generator / penalty decision."""
    for s in range(critic_steps * gp_every * 2):
        if (s % critic_steps == 0) == g_step and (s % gp_every == 0) == gp:
            return s
    raise ValueError("no step with that combination")


def _setup(args, impl):
    from gan_anim.model import PRESETS
    from gan_anim.training.losses import LossWeights
    from gan_anim.training.options import TrainOptions
    from gan_anim.training.runtime import setup_runtime
    from gan_anim.training.trainer import GANTrainer

    cfg = PRESETS[args.preset]
    cl = None if args.channels_last == "auto" else args.channels_last == "on"
    rt = setup_runtime(args.device, cl if impl == "gan-anim" else False)
    torch.manual_seed(0)
    b, s = args.batch, cfg.image_size
    x = torch.rand(b, 3, s, s, device=rt.device) * 2 - 1
    real, target = torch.rand(b, 17, device=rt.device), torch.rand(b, 17, device=rt.device)
    opts = TrainOptions(batch_size=b, critic_steps=args.critic_steps, gp_every=args.gp_every)
    tr = GANTrainer(cfg, opts, rt)
    gp_every = args.gp_every if impl == "gan-anim" else 1

    def run(g_step, gp):
        if impl == "gan-anim":
            tr.step(_pick_step(args.critic_steps, args.gp_every, g_step, gp), x, real, target)
        else:
            plain_step(tr.G, tr.D, tr.opt_g, tr.opt_d, x, real, target, g_step, LossWeights())
        if rt.cuda:
            torch.cuda.synchronize()

    return run, gp_every, rt


def memory_worker(args) -> dict:
    run, _, rt = _setup(args, args.impl)
    run(True, True)  # the largest step: generator update with the penalty
    out = {"peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    if rt.cuda:
        out["peak_cuda_mib"] = round(torch.cuda.max_memory_allocated() / 2 ** 20)
    return out


def time_worker(args) -> list[dict]:
    impls = args.impl.split(",")
    setups = {impl: _setup(args, impl) for impl in impls}
    kinds = {impl: [(g, p) for g in (False, True) for p in ((True,) if ge == 1 else (True, False))]
             for impl, (_, ge, _) in setups.items()}
    for run, _, _ in setups.values():
        run(True, True)  # warm-up: allocations, oneDNN/cuDNN kernel choice
    best = {impl: {k: float("inf") for k in kinds[impl]} for impl in impls}
    for _ in range(args.reps):
        for k in [(g, p) for g in (False, True) for p in (True, False)]:
            for impl in impls:  # alternate, so load from other processes hits both alike
                if k in best[impl]:
                    t = time.perf_counter()
                    setups[impl][0](*k)
                    best[impl][k] = min(best[impl][k], time.perf_counter() - t)
    results = []
    for impl in impls:
        _, ge, rt = setups[impl]
        cycle = [(s % args.critic_steps == 0, s % ge == 0) for s in range(args.critic_steps * ge)]
        t = best[impl]
        critic_only = [t[k] for k in cycle if not k[0]]
        g_extra = [t[(True, p)] - t[(False, p)] for (g, p) in cycle if g]
        mean_step = sum(t[k] for k in cycle) / len(cycle)
        results.append({"preset": args.preset, "impl": impl, "batch": args.batch, "device": str(rt.device),
                        "threads": torch.get_num_threads(), "channels_last": rt.channels_last,
                        "gp_every": ge, "critic_step_s": round(sum(critic_only) / len(critic_only), 3),
                        "generator_step_s": round(sum(g_extra) / len(g_extra), 3),
                        "images_per_s": round(args.batch / mean_step, 2)})
    return results


def _worker_cmd(args, mode, preset, impl, batch):
    return [sys.executable, os.path.abspath(__file__), "--worker", mode, "--preset", preset, "--impl", impl,
            "--batch", str(batch), "--critic-steps", str(args.critic_steps), "--gp-every", str(args.gp_every),
            "--device", args.device, "--reps", str(args.reps), "--channels-last", args.channels_last]


def _run_worker(cmd, omp_wait):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_WAIT_POLICY=omp_wait.upper())
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        sys.exit(res.stderr)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", default="small,paper")
    p.add_argument("--batch-small", type=int, default=16)
    p.add_argument("--batch-paper", type=int, default=8)
    p.add_argument("--critic-steps", type=int, default=5)
    p.add_argument("--gp-every", type=int, default=4, help="for gan-anim's step (the plain one uses 1)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    p.add_argument("--channels-last", default="auto", choices=["auto", "on", "off"],
                   help="for gan-anim's step (auto: on for CUDA only)")
    p.add_argument("--reps", type=int, default=1, help="timed repetitions of each step kind (fastest kept)")
    p.add_argument("--no-plain", action="store_true", help="skip the plain baseline")
    p.add_argument("--omp-wait", default="passive", choices=["passive", "active"],
                   help="OMP_WAIT_POLICY of the measuring processes (passive: no spinning threads, "
                        "much faster on a CPU shared with other jobs)")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--worker", choices=["time", "memory"], help=argparse.SUPPRESS)
    p.add_argument("--preset", help=argparse.SUPPRESS)
    p.add_argument("--impl", help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(time_worker(args) if args.worker == "time" else memory_worker(args)))
        return

    gpu = args.device != "cpu" and torch.cuda.is_available()
    print(f"# {platform.machine()}, {len(os.sched_getaffinity(0))} CPUs, torch {torch.__version__}"
          + (f", {torch.cuda.get_device_name()}" if gpu else "")
          + f"; OMP_WAIT_POLICY={args.omp_wait}; load average {os.getloadavg()[0]:.1f} at start")
    print(f"{'preset':<7} {'impl':<8} {'batch':>5} {'gp every':>8} {'critic s':>9} {'G step s':>9} "
          f"{'img/s':>7} {'peak MiB':>8}  speed-up")
    results = []
    for preset in args.presets.split(","):
        batch = args.batch_small if preset == "small" else args.batch_paper
        impls = ["gan-anim"] + ([] if args.no_plain or gpu else ["plain"])
        rows = _run_worker(_worker_cmd(args, "time", preset, ",".join(impls), batch), args.omp_wait)
        for r in rows:
            r.update(_run_worker(_worker_cmd(args, "memory", preset, r["impl"], batch), args.omp_wait))
            speed = ""
            if r["impl"] == "plain":
                speed = f"x{rows[0]['images_per_s'] / r['images_per_s']:.2f} (gan-anim / plain)"
            print(f"{preset:<7} {r['impl']:<8} {batch:>5} {r['gp_every']:>8} {r['critic_step_s']:>9.2f} "
                  f"{r['generator_step_s']:>9.2f} {r['images_per_s']:>7.2f} {r['peak_rss_mib']:>8}  {speed}",
                  flush=True)
            results.append(r)
    print(f"# load average {os.getloadavg()[0]:.1f} at the end")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
