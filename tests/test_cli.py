"""The command line as users and scripts meet it: start-up without heavy imports, one
clean stderr line per failure (stderr not a terminal), batch animate, training options."""
from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner
from conftest import EXAMPLE, ROOT, SHIPPED_SMALL
from PIL import Image

from gan_anim.cli import main
from gan_anim.media.images import read_image

HEAVY = ("torch", "cv2", "dlib", "imageio", "imageio_ffmpeg")


def sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def run(args, tmp_path, **kw):
    """``python -m gan_anim ARGS`` with stdout and stderr going to files (not a terminal)."""
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with open(out, "w") as fo, open(err, "w") as fe:
        proc = subprocess.run([sys.executable, "-m", "gan_anim", *map(str, args)], stdout=fo,
                              stderr=fe, cwd=kw.pop("cwd", tmp_path), timeout=300, **kw)
    text_out, text_err = out.read_text(), err.read_text()
    out.unlink()
    err.unlink()
    return proc.returncode, text_out, text_err


# ------------------------------------------------------------------ start-up

def test_importing_the_cli_and_package_loads_no_heavy_module():
    code = textwrap.dedent(f"""
        import sys
        import gan_anim, gan_anim.cli
        print(sorted(m for m in {HEAVY!r} if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


@pytest.mark.parametrize("args", [
    ["--help"], ["presets"], ["animate", "--help"], ["train", "--help"], ["video", "--help"],
    ["animate"], ["animate", "--bogus"], ["no-such-command"],
    ["animate", "missing.jpg"], ["animate", str(EXAMPLE), "--to", "AU99=3"],
    ["animate", str(EXAMPLE), "--to", "AU12=9"], ["animate", str(EXAMPLE), "-o", str(EXAMPLE)],
    ["animate", str(EXAMPLE), "-o", "/no/such/dir/x.gif"], ["grid", "missing.jpg"],
    ["video", "missing.mp4", "--aus", "happy"], ["video", str(EXAMPLE), "--aus", "AU99=2"],
    ["video", str(EXAMPLE), "--aus", "missing.csv"],
])
def test_help_presets_and_input_errors_load_no_heavy_module(args, tmp_path):
    """What needs no model never imports torch, OpenCV, dlib or imageio (so it is instant)."""
    code = textwrap.dedent(f"""
        import sys
        from gan_anim.cli import main
        try:
            main({args!r})
        except SystemExit as exc:
            code = exc.code
        print("RESULT", code, sorted(m for m in {HEAVY!r} if m in sys.modules))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    last = proc.stdout.strip().splitlines()[-1]
    assert last.endswith("[]"), (last, proc.stderr)
    if "--help" in args or args == ["presets"]:
        assert last.startswith("RESULT 0")
    else:
        assert last.startswith("RESULT 1") and proc.stderr.count("\n") == 1, proc.stderr
        assert proc.stderr.startswith("gan-anim: error: ") and "Traceback" not in proc.stderr


def test_public_api_names_load_on_use():
    code = textwrap.dedent("""
        import sys, gan_anim
        from gan_anim import Animator, animate, animate_photos, AU_NAMES, GanAnimError, read_image
        from gan_anim.pipeline.photo import Animator as A2, animate as a2
        assert A2 is Animator and a2 is animate and callable(gan_anim.animate)
        assert sorted(gan_anim.__all__) == sorted(set(gan_anim.__all__))
        for name in gan_anim.__all__:
            getattr(gan_anim, name)
        print("torch" in sys.modules, len(AU_NAMES))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "17"]


# ------------------------------------------------- one stderr line on failure

@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "empty.jpg").write_bytes(b"")
    (d / "truncated.jpg").write_bytes(EXAMPLE.read_bytes()[:5000])
    (d / "text.png").write_text("this is not a picture\n")
    Image.fromarray(read_image(EXAMPLE)[:150, :120]).save(d / "noface.png")  # the flag corner
    (d / "bad.json").write_text('{"AU12": 3,')
    (d / "photo.jpg").write_bytes(EXAMPLE.read_bytes())
    return d


BAD_CASES = {  # name: (photo, extra args, words the one line must hold)
    "empty file": ("empty.jpg", [], "empty file"),
    "truncated JPEG": ("truncated.jpg", [], "truncated or corrupt"),
    "text named .png": ("text.png", [], "not an image"),
    "no face": ("noface.png", [], "no face found"),
    "missing file": ("missing.jpg", [], "no such file"),
    "unknown AU": ("photo.jpg", ["--to", "AU12=3,AU99=2"], "unknown AU name 'AU99'"),
    "malformed JSON": ("photo.jpg", ["--to", "{dir}/bad.json"], "malformed JSON"),
    "output is input": ("photo.jpg", ["-o", "{dir}/photo.jpg"], "is the input file"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_gives_one_stderr_line_and_no_output(case, bad_inputs, tmp_path):
    photo, extra, needle = BAD_CASES[case]
    src = bad_inputs / photo
    before = {p.name: sha(p) for p in bad_inputs.iterdir()}
    extra = [a.format(dir=bad_inputs) for a in extra]
    out = tmp_path / "out.gif"
    args = ["animate", src, "--weights", SHIPPED_SMALL, "--frames", "2"]
    args += extra if "-o" in extra else ["-o", out, *extra]
    code, stdout, stderr = run(args, tmp_path)  # no -q: progress must not leak either
    assert code == 1, stderr
    assert stderr.count("\n") == 1 and stderr.startswith("gan-anim: error: "), stderr
    assert needle in stderr and "Traceback" not in stderr
    assert stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no output, no temporary
    assert {p.name: sha(p) for p in bad_inputs.iterdir()} == before


@pytest.mark.slow
def test_success_off_a_terminal_prints_only_the_summary(tmp_path):
    code, stdout, stderr = run(["animate", EXAMPLE, "--weights", SHIPPED_SMALL, "--frames", "2",
                                "-o", "a.gif"], tmp_path)
    assert code == 0 and stdout == ""
    assert stderr.count("\n") == 1 and "1 face(s), 2 frames 512x512 -> a.gif" in stderr, stderr
    code, stdout, stderr = run(["animate", EXAMPLE, "--weights", SHIPPED_SMALL, "--frames", "2",
                                "-o", "b.gif", "-q"], tmp_path)
    assert code == 0 and stdout == "" and stderr == ""
    assert Image.open(tmp_path / "a.gif").n_frames == Image.open(tmp_path / "b.gif").n_frames == 2


# ---------------------------------------------------------------- batch use

@pytest.fixture(scope="module")
def batch_photos(shared_data, tmp_path_factory):
    """A folder of two real face photos, a corrupt one, and files a folder scan must skip."""
    d = tmp_path_factory.mktemp("photos")
    src = shared_data / "facial_expressions" / "images"
    for name in ("AJ_Cook_0001.jpg", "Aaron_Eckhart_0001.jpg"):
        (d / name).write_bytes((src / name).read_bytes())
    (d / "broken.jpg").write_bytes((src / "AJ_Lamas_0001.jpg").read_bytes()[:3000])
    (d / "notes.txt").write_text("not a photo\n")
    (d / ".hidden.jpg").write_bytes(b"")
    return d


def gif_frames(path) -> int:
    with Image.open(path) as im:
        return im.n_frames


def test_batch_cli_folder_and_files_one_bad(batch_photos, tmp_path):
    before = {p.name: sha(p) for p in batch_photos.iterdir()}
    out = tmp_path / "out" / "anim"  # created by the command
    result = CliRunner().invoke(main, ["animate", str(batch_photos), str(EXAMPLE), "--frames", "3",
                                       "--weights", str(SHIPPED_SMALL), "-o", str(out)])
    assert result.exit_code == 1
    names = ["AJ_Cook_0001-happy.gif", "Aaron_Eckhart_0001-happy.gif", "astronaut-happy.gif"]
    assert sorted(p.name for p in out.iterdir()) == names
    assert [gif_frames(out / n) for n in names] == [3, 3, 3]
    lines = result.stdout.splitlines()
    assert len(lines) == 3 and all(" -> " in x and "3 frames" in x for x in lines), result.stdout
    assert lines[0].startswith(str(batch_photos / "AJ_Cook_0001.jpg"))
    assert lines[-1].startswith(str(EXAMPLE))  # input order: the folder's photos, then the file
    err = result.stderr.splitlines()
    assert err == [e for e in err if e.startswith("gan-anim: error: ")] and len(err) == 1, result.stderr
    assert str(batch_photos / "broken.jpg") in err[0] and "truncated or corrupt" in err[0]
    assert {p.name: sha(p) for p in batch_photos.iterdir()} == before


def test_batch_api_loads_the_model_once(batch_photos, tmp_path, monkeypatch):
    import gan_anim
    from gan_anim import model as _  # noqa: F401  (the submodule is loaded)

    module = sys.modules["gan_anim.model"]  # the Animator imports it when it loads
    calls = []
    real = module.load_generator
    monkeypatch.setattr(module, "load_generator", lambda *a, **k: calls.append(a) or real(*a, **k))
    photos = [batch_photos / "AJ_Cook_0001.jpg", tmp_path / "missing.jpg",
              batch_photos / "broken.jpg", batch_photos / "Aaron_Eckhart_0001.jpg"]
    seen = []
    results = gan_anim.animate_photos(photos, tmp_path / "out", to="surprise", frames=2,
                                      weights=SHIPPED_SMALL, device="cpu", on_result=seen.append)
    assert len(calls) == 1
    assert [r.photo for r in results] == photos and seen == results
    assert [r.ok for r in results] == [True, False, False, True]
    assert "no such file" in results[1].error and "truncated or corrupt" in results[2].error
    for r in (results[0], results[3]):
        assert r.output.parent == tmp_path / "out" and r.output.name.endswith("-surprise.gif")
        assert r.result.frames == gif_frames(r.output) == 2 and r.result.faces == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "AJ_Cook_0001-surprise.gif", "Aaron_Eckhart_0001-surprise.gif"]


def test_batch_finds_faces_ahead_with_the_same_pixels(batch_photos, tmp_path):
    """Several photos: decoding and detection run ahead in a thread pool; each output is the
    one that photo alone gives (no pool), whatever the number of threads."""
    import gan_anim
    from gan_anim.pipeline.photo import Animator

    animator = Animator(SHIPPED_SMALL, "cpu")
    photos = [batch_photos / "AJ_Cook_0001.jpg", batch_photos / "broken.jpg", batch_photos / "Aaron_Eckhart_0001.jpg"]
    alone = {p.name: sha(animator.animate(p, tmp_path / f"alone-{p.stem}.gif", frames=2).output)
             for p in photos[::2]}
    for workers in (1, 3):
        results = gan_anim.animate_photos(photos, tmp_path / f"w{workers}", frames=2, animator=animator,
                                          detect_workers=workers)
        assert [r.ok for r in results] == [True, False, True] and "truncated or corrupt" in results[1].error
        assert {r.photo.name: sha(r.output) for r in results if r.ok} == alone


def test_batch_request_errors_come_first(batch_photos, tmp_path):
    a, b = batch_photos / "AJ_Cook_0001.jpg", batch_photos / "Aaron_Eckhart_0001.jpg"
    cases = [
        (["animate", a, b, "-o", tmp_path / "x.gif"], "-o must be a folder"),
        (["animate", a, a, "-o", tmp_path / "o"], "would both write"),
        (["animate", a, tmp_path / "empty_dir"], "no photos in this folder"),
        (["animate", a, b, "--to", "AU12=7", "-o", tmp_path / "o"], "outside 0..5"),
        (["animate", a, b, "--weights", tmp_path / "missing.pt", "-o", tmp_path / "o"], "not found"),
        # loaded in the background, a corrupt weights file fails the whole batch, once
        (["animate", a, b, "--weights", tmp_path / "empty_dir" / "junk.pt", "-o", tmp_path / "o"],
         "not a gan-anim weights file"),
    ]
    (tmp_path / "empty_dir").mkdir()
    (tmp_path / "empty_dir" / "junk.pt").write_bytes(b"not a checkpoint")
    for args, needle in cases:
        result = CliRunner().invoke(main, [str(x) for x in args])
        assert result.exit_code == 1 and result.stderr.count("\n") == 1 and needle in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty_dir", "o"]  # o: made, left empty
    assert list((tmp_path / "o").iterdir()) == []


# ------------------------------------------------------- training options

def test_train_cli_defaults_are_the_dataclass_defaults(monkeypatch, tmp_path):
    from gan_anim.training import loop as train_module  # noqa: F401
    from gan_anim.training.options import LossWeights, RunOptions, TrainOptions

    cmd = main.commands["train"]
    by_opt = {o: p for p in cmd.params for o in p.opts}
    expected = {"--lambda-au": LossWeights().au, "--lambda-attention": LossWeights().attention,
                "--lambda-gp": LossWeights().gp, "--lambda-cycle": LossWeights().cycle,
                "--lambda-tv": LossWeights().attention_tv, "--beta1": TrainOptions().betas[0],
                "--beta2": TrainOptions().betas[1]}
    for f in dataclasses.fields(TrainOptions) + dataclasses.fields(RunOptions):
        name = f.metadata.get("cli", "--" + f.name.replace("_", "-"))
        if isinstance(name, str) and f.default is not dataclasses.MISSING:
            expected[name.split("/")[0]] = f.default
    for name, value in expected.items():
        assert by_opt[name].default == value, name
    # the names the GPU kit and the README use
    for name in ("--lambda-au", "--lambda-attention", "--gp-every", "--decay-start", "--max-minutes",
                 "--checkpoint-every", "--keep", "--seed", "--batch-size", "--lr", "--steps",
                 "--preset", "--device", "--resume", "--quiet", "--data", "--out"):
        assert name in by_opt, name

    seen = {}
    monkeypatch.setattr(sys.modules["gan_anim.training.loop"], "train",
                        lambda data, out, options, run, progress: seen.update(o=options, r=run))
    result = CliRunner().invoke(main, ["train", "--data", "d", "--out", "o"])
    assert result.exit_code == 0, result.output
    assert seen["o"] == TrainOptions() and seen["r"] == RunOptions()
    result = CliRunner().invoke(main, ["train", "--data", "d", "--out", "o", "--lambda-au", "40",
                                       "--beta2", "0.99", "--preset", "medium"])
    assert seen["o"].weights == dataclasses.replace(LossWeights(), au=40.0)
    assert seen["o"].betas == (0.5, 0.99) and seen["r"].preset == "medium"


def test_train_function_has_no_defaults_of_its_own():
    """train() takes the dataclasses or overrides of their fields, nothing else to drift."""
    import inspect

    from gan_anim.training.loop import _with_overrides, train
    from gan_anim.training.options import RunOptions, TrainOptions

    params = set(inspect.signature(train).parameters)
    fields = {f.name for f in dataclasses.fields(TrainOptions) + dataclasses.fields(RunOptions)}
    assert not params & fields
    opts, run = _with_overrides(TrainOptions(), RunOptions(), {"steps": 7, "keep": 1})
    assert (opts.steps, run.keep, opts.lr) == (7, 1, TrainOptions().lr)
    with pytest.raises(TypeError, match="stepz"):
        _with_overrides(TrainOptions(), RunOptions(), {"stepz": 7})


def test_changing_a_dataclass_default_changes_the_cli_default():
    from gan_anim.cli import _field_options
    from gan_anim.training.options import TrainOptions

    @dataclasses.dataclass
    class Changed(TrainOptions):
        steps: int = dataclasses.field(default=123, metadata={"help": "x"})

    opts = {o.opts[0]: o for o, _ in _field_options(Changed, "options")}
    assert opts["--steps"].default == 123 and opts["--lr"].default == TrainOptions().lr


# ------------------------------------------------ shared data under CI=true

@pytest.mark.slow
def test_missing_shared_data_fails_under_ci_and_skips_otherwise(tmp_path):
    (tmp_path / "test_tiny.py").write_text(
        "def test_needs_data(shared_data):\n    assert shared_data.is_dir()\n")
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    env.update(GAN_ANIM_SHARED=str(tmp_path / "nowhere"), PYTHONPATH=str(ROOT / "tests"))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "conftest", "-p", "no:cacheprovider",
           "test_tiny.py"]
    plain = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert plain.returncode == 0 and "1 skipped" in plain.stdout, plain.stdout + plain.stderr
    ci = subprocess.run(cmd, cwd=tmp_path, env={**env, "CI": "true"}, capture_output=True, text=True)
    assert ci.returncode != 0, ci.stdout
    text = ci.stdout + ci.stderr
    assert "CI=true" in text and str(tmp_path / "nowhere" / "data") in text, text


@pytest.mark.slow
def test_progress_bars_on_a_terminal_only_while_working(tmp_path):
    """On a TTY the bars are drawn (and the summary follows); a failure clears them."""
    import pty
    import threading

    def on_tty(args):
        master, slave = pty.openpty()
        chunks = []
        reader = threading.Thread(target=lambda: _drain(master, chunks))
        reader.start()
        proc = subprocess.run([sys.executable, "-m", "gan_anim", *map(str, args)], stderr=slave,
                              stdout=subprocess.DEVNULL, cwd=tmp_path, timeout=300,
                              env={**os.environ, "COLUMNS": "100", "TERM": "xterm"})
        os.close(slave)
        reader.join(timeout=10)
        os.close(master)
        return proc.returncode, b"".join(chunks).decode("utf-8", "replace")

    code, text = on_tty(["animate", EXAMPLE, "--weights", SHIPPED_SMALL, "--frames", "2", "-o", "a.gif"])
    assert code == 0 and "render" in text and "2/2" in text and "-> a.gif" in text
    (tmp_path / "bad.png").write_text("not a picture\n")
    code, text = on_tty(["animate", "bad.png", "--weights", SHIPPED_SMALL, "-o", "b.gif"])
    assert code == 1 and "not an image" in text
    # the bar drawn before the error was erased (cursor up + erase line) before the error line
    assert text.rstrip().splitlines()[-1].endswith("gan-anim: error: bad.png: not an image "
                                                    "(unrecognised format)")
    assert "\x1b[2K" in text.split("gan-anim: error")[0][-40:]


def _drain(fd, chunks):
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:
            return
        if not data:
            return
        chunks.append(data)


def test_output_piped_into_a_reader_that_leaves_is_not_an_error():
    """`gan-anim presets | head -1`: the closed pipe ends the command quietly, exit 0."""
    proc = subprocess.Popen([sys.executable, "-m", "gan_anim", "presets"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before anything is written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0 and err == ""
