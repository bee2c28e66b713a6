"""Training on several machines through torchrun, rehearsed on localhost: two "nodes" (two
torchrun processes, --nnodes 2 --nproc-per-node 1, c10d rendezvous, gloo) against one
process with the same global batch, and one node killed mid-run."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_train import SHARED, _write_project

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN = Path(sys.executable).with_name("torchrun")
TRAIN = ["train", "--preset", "small", "--steps", "2", "--critic-steps", "1", "--device", "cpu",
         "--checkpoint-every", "1", "--quiet"]


def _env() -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_torchrun_nodes_match_one_process_with_the_same_global_batch(tmp_path):
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} absent (shared face data)")
    if not TORCHRUN.exists():
        pytest.skip("torchrun not installed next to this Python")
    data = _write_project(tmp_path / "set", n=10)
    port = _free_port()
    nodes = [subprocess.Popen([str(TORCHRUN), "--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d",
                               "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "t", "-m", "gan_anim",
                               *TRAIN, "--data", str(data), "--out", str(tmp_path / "two"), "--batch-size", "2"],
                              cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outs = [n.communicate(timeout=120)[0] for n in nodes]
    assert [n.returncode for n in nodes] == [0, 0], outs
    one = subprocess.run([sys.executable, "-m", "gan_anim", *TRAIN, "--data", str(data), "--out",
                          str(tmp_path / "one"), "--batch-size", "4"],
                         cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120)
    assert one.returncode == 0, one.stderr
    two = torch.load(tmp_path / "two" / "checkpoint-0000002.pt", weights_only=False, map_location="cpu")
    ref = torch.load(tmp_path / "one" / "checkpoint-0000002.pt", weights_only=False, map_location="cpu")
    start = torch.load(tmp_path / "one" / "checkpoint-0000001.pt", weights_only=False, map_location="cpu")
    keys = [k for k, v in ref["generator"].items() if v.is_floating_point()]
    flat = lambda blob: torch.cat([blob["generator"][k].flatten().float() for k in keys])  # noqa: E731
    moved = (flat(ref) - flat(start)).abs()
    diff = (flat(two) - flat(ref)).abs()
    # Adam's first steps move each weight by about lr whatever its gradient's size, so a
    # weight whose gradient is ~0 may go either way on float noise: compare the bulk
    assert moved.mean() > 1e-5, moved.mean()
    print(f"two nodes vs one process: mean difference {diff.mean():.2e}, mean update {moved.mean():.2e}")
    assert diff.mean() < 0.05 * moved.mean() and (diff > 0.5 * moved.max()).float().mean() < 0.01, \
        (diff.mean(), moved.mean(), (diff > 0.5 * moved.max()).float().mean())
    # the two-node run resumes in one process with the same global batch (4 per process)
    more = [*TRAIN, "--steps", "3", "--data", str(data), "--resume"]
    for run in ("two", "one"):
        res = subprocess.run([sys.executable, "-m", "gan_anim", *more, "--out", str(tmp_path / run)],
                             cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
    two, ref = (torch.load(tmp_path / r / "checkpoint-0000003.pt", weights_only=False, map_location="cpu")
                for r in ("two", "one"))
    assert two["world"] == ref["world"] == 1 and two["options"]["batch_size"] == 4
    diff, total = (flat(two) - flat(ref)).abs(), (flat(ref) - flat(start)).abs()
    print(f"after the resume: mean difference {diff.mean():.2e}, mean update since step 1 {total.mean():.2e}")
    assert diff.mean() < 0.1 * total.mean(), (diff.mean(), total.mean())



def _newest(run: Path) -> list[Path]:
    return sorted(run.glob("checkpoint-*.pt"))


def _kill_node(pid: int) -> None:
    """SIGKILL a torchrun and its workers (each worker leads its own process group)."""
    import signal

    children = Path(f"/proc/{pid}/task/{pid}/children")
    workers = [int(c) for c in children.read_text().split()] if children.exists() else []
    for group in [pid, *workers]:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.slow
def test_killing_one_node_ends_the_other_with_one_line_and_keeps_the_checkpoint(tmp_path):
    """Two torchrun "nodes" train; the node of rank 0 (the one that writes checkpoints) is
    killed (SIGKILL to its torchrun and worker, as a machine that dies). The other node's
    worker must end within the collective timeout with one clear line, and every checkpoint
    left must load into a trainer (as --resume does)."""
    import time

    from gan_anim.training.checkpoints import read_checkpoint

    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} absent (shared face data)")
    if not TORCHRUN.exists():
        pytest.skip("torchrun not installed next to this Python")
    data = _write_project(tmp_path / "set", n=10)
    port, run = _free_port(), tmp_path / "run"
    env = dict(_env(), GAN_ANIM_DIST_TIMEOUT="15")
    logs = [tmp_path / f"node{k}.log" for k in range(2)]
    handles = [open(log, "w") for log in logs]
    nodes = [subprocess.Popen([str(TORCHRUN), "--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d",
                               "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "k", "--max-restarts", "0",
                               "-m", "gan_anim", *TRAIN, "--steps", "100000", "--checkpoint-every", "2", "--keep", "2",
                               "--data", str(data), "--out", str(run), "--batch-size", "2"],
                              cwd=tmp_path, env=env, stdout=fh, stderr=subprocess.STDOUT,
                              start_new_session=True)
             for fh in handles]
    try:
        deadline = time.time() + 90
        while not _newest(run) and time.time() < deadline and all(n.poll() is None for n in nodes):
            time.sleep(0.2)
        assert _newest(run), [log.read_text()[-2000:] for log in logs]
        writer = next(k for k, log in enumerate(logs) if "training small preset" in log.read_text())
        _kill_node(nodes[writer].pid)
        killed_at = time.time()
        survivor = nodes[1 - writer]
        survivor.wait(timeout=45)  # a failed collective, or at worst GAN_ANIM_DIST_TIMEOUT (15 s)
        took = time.time() - killed_at
    finally:
        for n in nodes:
            if n.poll() is None:
                _kill_node(n.pid)
            n.wait()
        for fh in handles:
            fh.close()
    out = logs[1 - writer].read_text()
    print(f"survivor ended {took:.1f} s after the kill, rc {survivor.returncode}")
    assert survivor.returncode != 0
    lines = [ln for ln in out.splitlines() if ln.startswith("gan-anim: error:")]
    assert len(lines) == 1 and "another process of this run died or stopped answering" in lines[0], out[-3000:]
    assert "resume with --resume" in lines[0]
    # the checkpoints are whole (written atomically): each loads, names its own step, and its
    # state fits a trainer of the run's model and optimisers (what --resume does with it)
    from gan_anim.model import ModelConfig
    from gan_anim.training.options import TrainOptions
    from gan_anim.training.runtime import Runtime
    from gan_anim.training.trainer import GANTrainer

    found = _newest(run)
    assert found and not list(run.glob(".checkpoint-*"))[1:]  # at most the one being written
    for path in found:
        blob = read_checkpoint(path)
        assert blob["world"] == 2 and blob["step"] == int(path.stem.split("-")[1])
        assert all(torch.isfinite(v).all() for v in blob["generator"].values() if v.is_floating_point())
        trainer = GANTrainer(ModelConfig.from_dict(blob["config"]), TrainOptions(batch_size=2),
                             Runtime(torch.device("cpu")))
        trainer.load_state(blob)
        assert torch.equal(trainer.G.state_dict()["body.0.weight"], blob["generator"]["body.0.weight"])
