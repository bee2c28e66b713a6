"""The ``gan-anim`` command line: a thin layer over the Python API.

Every command parses options, calls one API function, and reports. Errors of
the user's making (GanAnimError, usage errors) become one line on stderr and
exit status 1. Only click is imported here: torch, OpenCV, dlib and imageio load
inside the commands that need them, after their inputs are checked, so help,
presets and input errors are instant.
"""
from __future__ import annotations

import dataclasses
import os
import sys

import click

from .config import InferenceConfig
from .errors import GanAnimError
from .faces.dlib_models import DETECTORS
from .render.device import DEVICES, PRECISIONS
from .training.options import LossWeights, RunOptions, TrainOptions


def _fail(message: str, code: int = 1):
    click.echo(f"gan-anim: error: {message}", err=True)
    sys.exit(code)


class _Group(click.Group):
    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        """Usage errors as one line (``gan-anim: error: ... (see ... --help)``), exit 1."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx else "gan-anim"
            _fail(f"{exc.format_message()} (see {where} --help)")
        except click.ClickException as exc:
            _fail(exc.format_message())
        except click.Abort:
            click.echo("gan-anim: interrupted", err=True)
            sys.exit(130)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except GanAnimError as exc:
            _fail(str(exc))
        except BrokenPipeError:  # `gan-anim info | head`: the reader left; stay quiet
            sys.stdout = open(os.devnull, "w")
            sys.exit(0)
        except OSError as exc:  # unwritable output, full disk...
            where = f": {exc.filename}" if exc.filename else ""
            _fail(f"{exc.strerror or exc}{where}")
        except KeyboardInterrupt:
            click.echo("gan-anim: interrupted", err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gan-anim")
def main():
    """Animate the facial expression of any photo or video (GANimation).

    \b
    gan-anim animate photo.jpg --to happy -o smile.gif
    gan-anim animate photos/ more.jpg --to surprise -o out/
    gan-anim video clip.mp4 --aus aus.csv -o out.mp4
    gan-anim train --data data/mydataset --out runs/mine
    """


# Commands are registered below, one block per subcommand.

weights_option = click.option(
    "--weights", default=None,
    help="Weights file (default: weights/gan-anim-medium.pt; weights/gan-anim-small.pt: "
         "about 3.5x faster on a CPU, softer; see weights/README.md).")

device_option = click.option(
    "--device", type=click.Choice(DEVICES), default=InferenceConfig.device,
    show_default=True)

detector_option = click.option(
    "--detector", type=click.Choice(DETECTORS), default=DETECTORS[0], show_default=True,
    help="dlib face detector (cnn: slower, finds turned faces).")

precision_option = click.option(
    "--precision", type=click.Choice(PRECISIONS), default=InferenceConfig.precision,
    show_default=True,
    help="Generator arithmetic. auto: bf16 where the hardware computes it natively (CPUs with "
         "AVX512-BF16 or AMX: ~2.6x faster, within 1-5 grey levels of fp32; CUDA), else fp32 "
         "(emulated bf16 is ~60x slower). `gan-anim info` shows the choice.")


# ------------------------------------------------------------------- animate
@main.command()
@click.argument("photos", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--to", "to", default="happy", show_default=True,
              help="Target expression: preset name, JSON file or AU12=3,AU06=2.")
@click.option("--from", "start", default=None,
              help="Start expression (same forms). Default: each face's own, as estimated.")
@click.option("-o", "--output", default=None,
              help="Output .gif, .mp4 or folder of PNGs; with several photos or a folder, the folder "
                   "for their GIFs (created if needed). Default: <photo>-<target>.gif here.")
@click.option("--frames", default=30, show_default=True, type=int, help="Frames from start to target.")
@click.option("--fps", default=15.0, show_default=True, type=float)
@click.option("--ease", type=click.Choice(["linear", "smooth"]), default="linear", show_default=True)
@click.option("--loop", is_flag=True, help="Add the way back, for a seamless looping GIF.")
@click.option("--face", "face", default="all", show_default=True, help="all, largest or N (1 = largest).")
@detector_option
@weights_option
@device_option
@click.option("--batch-size", default=InferenceConfig.batch_size, show_default=True, type=int,
              help="Face-frames per generator pass.")
@precision_option
@click.option("--crf", default=InferenceConfig.crf, show_default=True, type=int,
              help="MP4 quality (lower is better).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or summary.")
def animate(photos, to, start, output, frames, fps, ease, loop, face, detector, weights, device,
            batch_size, precision, crf, quiet):
    """Animate every face in each of PHOTOS from one expression to another.

    PHOTOS: one photo, or several and/or folders (their photos, sorted by name).
    Several are animated in one process with the model loaded once; each prints
    one line (stdout: photo -> output; stderr: its error), and one bad photo
    does not stop the others (exit status 1 if any failed).

    \b
    Examples:
      gan-anim animate examples/astronaut.jpg --to happy -o smile.gif
      gan-anim animate photo.jpg --from neutral --to surprise --frames 30 --loop -o wow.gif
      gan-anim animate photo.jpg --from examples/neutral.json --to examples/smile.json -o smile.mp4
      gan-anim animate group.jpg --to AU12=4,AU06=3 --face largest -o frames/
      gan-anim animate holiday/ portrait.jpg --to laugh -o animated/
    """
    from .media.paths import is_batch
    from .pipeline.batch import animate_photos

    several = is_batch(photos)

    def report(res):
        if res.ok:
            r = res.result
            click.echo(f"{res.photo} -> {res.output} ({r.faces} face(s), {r.frames} frames, "
                       f"{r.seconds:.1f} s)")
        else:
            click.echo(f"gan-anim: error: {res.error}", err=True)

    results = animate_photos(photos, output, to, start, weights=weights, device=device,
                             batch_size=batch_size, precision=precision, frames=frames, fps=fps,
                             ease=ease, loop=loop, face=face, detector=detector, crf=crf, quiet=quiet,
                             on_result=report if several else None)
    if not all(r.ok for r in results):
        sys.exit(1)


@main.command()
def presets():
    """List the built-in expressions (FACS/EMFACS prototypes, AU intensities 0..5).

    \b
    Example:
      gan-anim presets
      gan-anim animate photo.jpg --to surprise
    """
    from .aus import AU_DESCRIPTIONS, PRESETS

    for name, values in PRESETS.items():
        desc = ", ".join(f"{k}={v:g} ({AU_DESCRIPTIONS[k]})" for k, v in values.items()) or "all AUs 0"
        click.echo(f"{name:<9} {desc}")


# --------------------------------------------------------------------- train
# The train command's options come from the dataclasses in train_options.py: one
# place for each default and its help. Each entry: (option parameter, where it goes).

def _field_options(cls, target: str) -> list[tuple[click.Option, tuple]]:
    out = []
    for f in dataclasses.fields(cls):
        meta, default = f.metadata, f.default
        names = meta.get("cli", "--" + f.name.replace("_", "-"))
        if names is None or default is dataclasses.MISSING:
            continue
        kind = meta.get("type")
        if isinstance(names, tuple):  # one option per element of a tuple field
            for i, (name, value) in enumerate(zip(names, default)):
                param = f"{f.name}_{i}"
                out.append((click.Option([name, param], type=type(value), default=value,
                                         show_default=True, help=f"{meta['help']} ({i + 1} of {len(names)})"),
                            (target, f.name, i)))
            continue
        if isinstance(kind, tuple):
            kw = {"type": click.Choice(kind)}
        elif isinstance(default, bool):
            kw = {"is_flag": True}
        else:
            kw = {"type": kind or type(default)}
        out.append((click.Option([names, f.name if target != "weights" else f"lambda_{f.name}"],
                                 default=default, show_default=default is not None, help=meta["help"],
                                 **kw),
                    (target, f.name, None)))
    return out


TRAIN_OPTIONS = (_field_options(RunOptions, "run") + _field_options(TrainOptions, "options")
                 + _field_options(LossWeights, "weights"))


def train_options_from(params: dict) -> tuple[TrainOptions, RunOptions]:
    """The dataclasses filled from the train command's parsed options."""
    values = {"run": {}, "options": {}, "weights": {}}
    for opt, (target, name, index) in TRAIN_OPTIONS:
        if index is None:
            values[target][name] = params[opt.name]
        else:
            values[target].setdefault(name, {})[index] = params[opt.name]
    opts = values["options"]
    for name, parts in list(opts.items()):
        if isinstance(parts, dict):
            opts[name] = tuple(parts[i] for i in sorted(parts))
    return (TrainOptions(**opts, weights=LossWeights(**values["weights"])),
            RunOptions(**values["run"]))


def _train_command(f):
    for opt, _ in reversed(TRAIN_OPTIONS):
        f.__click_params__ = getattr(f, "__click_params__", []) + [opt]
    return f


@main.command()
@click.option("--data", "data_dir", required=True, type=click.Path(),
              help="Training set: images/ + aus.csv (gan-anim prepare), a .pack (GPU kit) or imgs/ + aus_openface.pkl (official).")
@click.option("--out", "out_dir", required=True, type=click.Path(),
              help="Run folder: checkpoints, samples/*.png, log.jsonl.")
@_train_command
@click.option("-q", "--quiet", is_flag=True, help="No progress display.")
def train(data_dir, out_dir, quiet, **params):
    """Train the GANimation generator and critic.

    Writes checkpoints (atomically, every --checkpoint-every steps and on
    Ctrl-C), a sample grid per checkpoint and log.jsonl to --out.

    \b
    Examples:
      gan-anim train --data data/faces --out runs/small --steps 6000 --gp-every 4
      gan-anim train --data data/faces --out runs/small --steps 9000 --resume
      gan-anim train --data gpu-pack/faces128.pack --out runs/medium --preset medium --max-minutes 6
      gan-anim train --data ganimation_data/ --out runs/paper --preset paper --batch-size 25
      torchrun --nproc-per-node 8 -m gan_anim train --data data/faces --out runs/paper --preset paper
      gan-anim export runs/small -o weights/small.pt
    """
    from .training.loop import train as run_training

    options, run = train_options_from(params)
    last = run_training(data_dir, out_dir, options, run, progress=not quiet)
    if last is not None:
        click.echo(f"last checkpoint: {last}")


@main.command()
@click.argument("checkpoint", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(),
              help="Weights file to write, e.g. weights/mine.pt.")
@click.option("--half", is_flag=True, help="Store float16 tensors (half the size).")
def export(checkpoint, output, half):
    """Write a checkpoint's inference weights (generator, config, AU list).

    CHECKPOINT is a checkpoint file or a run folder (its newest checkpoint).
    The result loads with `animate --weights`.

    \b
    Examples:
      gan-anim export runs/small -o weights/small.pt
      gan-anim export runs/small/checkpoint-0006000.pt -o weights/small-fp16.pt --half
    """
    from .training.checkpoints import export_weights

    path = export_weights(checkpoint, output, half=half)
    click.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


# ---------------------------------------------------------------------- grid
@main.command()
@click.argument("photo", type=click.Path(dir_okay=False, path_type=str))
@click.option("-o", "--output", default="grid.png", show_default=True, help="PNG to write.")
@click.option("--face", "face", default="largest", show_default=True, help="largest or N (1 = largest).")
@click.option("--from", "start", default=None, help="Start expression. Default: the face's own, estimated.")
@click.option("--cell", default=128, show_default=True, type=int, help="Cell size in pixels.")
@weights_option
@device_option
@precision_option
def grid(photo, output, face, start, cell, weights, device, precision):
    """Single-AU control grid: rows of AUs, columns of intensities 0, .33, .66, 1.

    Each AU is raised from the face's own value towards 5 (column 0 leaves the
    face as it is); the last row shows the presets.

    \b
    Example:
      gan-anim grid examples/astronaut.jpg -o grid.png
    """
    from .media.paths import check_input_file, check_output_path

    check_input_file(photo, "photo")  # before the model loads
    check_output_path(output, [photo])
    from .pipeline.grid import au_grid
    from .pipeline.photo import Animator

    au_grid(Animator(weights, device, precision=precision, background=True), photo, output, face=face,
            cell=cell, start=start)
    click.echo(f"wrote {output}", err=True)


@main.command("aus")
@click.argument("media", type=click.Path(dir_okay=False, path_type=str))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="out.json (photo) or out.csv (OpenFace format; required for videos). Default: JSON on stdout.")
@detector_option
@click.option("--detect-side", default=InferenceConfig.detect_max_side, show_default=True,
              help="First pass of the detection cascade on a copy at most this many px (as animate); "
                   "tiles at a larger scale find the small faces.")
@click.option("--small-faces", type=click.Choice(("auto", "on", "off")), default="auto", show_default=True,
              help="Search for faces smaller than the first pass sees: auto only where skin-coloured detail "
                   "lies outside the faces found (docs/detection.md), on everywhere, off never.")
def aus_command(media, output, detector, detect_side, small_faces):
    """Estimate the 17 Action Unit intensities (0..5) of every face in a photo or video.

    A photo gives JSON, one entry per face (largest first): its box and 17 AUs.
    A video gives a per-frame CSV in OpenFace's format (frame, timestamp, confidence,
    success, AU01_r ... AU45_r; no face: success 0), usable wherever gan-anim reads OpenFace AUs.

    \b
    gan-anim aus examples/astronaut.jpg
    gan-anim aus examples/astronaut.jpg -o astronaut_aus.json
    gan-anim aus group.jpg --detect-side 2000 --small-faces on -o group_aus.json
    gan-anim aus driving.mp4 -o driving_aus.csv
    """
    import json
    from pathlib import Path

    from .aus import AU_NAMES, write_openface_csv
    from .estimation.photo import estimate_aus_file
    from .media.paths import VIDEO_EXTS, atomic_output, check_output_path
    from .pipeline.au_timeline import estimate_video

    is_video = Path(media).suffix.lower() in VIDEO_EXTS
    kind = Path(output).suffix.lower() if output else ".json"
    if kind not in (".json", ".csv"):
        raise GanAnimError(f"{output}: unsupported output type {kind!r}: use .json or .csv")
    if output:
        check_output_path(output, [media])
    if is_video:
        if kind != ".csv":
            raise GanAnimError("a video gives a per-frame CSV: add -o aus.csv")
        rows = estimate_video(media, detector)
        write_openface_csv(output, rows)
        found = sum(r[3] for r in rows)
        click.echo(f"wrote {output}: {len(rows)} frames, a face in {found}", err=True)
        return
    found = estimate_aus_file(media, detector, detect_side, small_faces=small_faces)
    if not found:
        raise GanAnimError(f"{media}: no face found (try --detector cnn)")
    if kind == ".csv":
        write_openface_csv(output, [(k + 1, 0.0, 1.0, 1, [f["aus"][n] for n in AU_NAMES])
                                    for k, f in enumerate(found)])
        click.echo(f"wrote {output}: {len(found)} face(s), one row each", err=True)
        return
    text = json.dumps([{"box": list(f["box"]), "aus": f["aus"]} for f in found], indent=1)
    if not output:
        return click.echo(text)
    with atomic_output(output) as tmp:
        Path(tmp).write_text(text + "\n")
    click.echo(f"wrote {output}: {len(found)} face(s)", err=True)


@main.command("prepare")
@click.argument("sources", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=str))
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Output folder (images/, aus.csv, train.txt, test.txt, summary.json).")
@click.option("--size", default=128, show_default=True, help="Side of the aligned face crops (px).")
@click.option("--pad", default=0.3, show_default=True,
              help="Edge-replicated border added before detection, as a fraction of the longer side "
                   "(lets the detector find tightly cropped faces).")
@click.option("--workers", default=2, show_default=True, help="Parallel processes.")
@detector_option
@click.option("--openface", type=click.Path(file_okay=False, path_type=str), default=None,
              help="Folder of OpenFace CSVs (<photo stem>.csv): take AUs from them, not the estimator.")
@click.option("--labels", type=click.Choice(["model", "geometry"]), default="model", show_default=True,
              help="AU labels without --openface: the appearance estimator (model) or landmark "
                   "geometry alone.")
@click.option("--test-fraction", default=0.1, show_default=True, help="Share held out in test.txt.")
@click.option("--seed", default=0, show_default=True, help="Seed of the train/test split.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def prepare_command(sources, output, size, pad, workers, detector, openface, labels, test_fraction,
                    seed, quiet):
    """Turn folders of photos into a training set for gan-anim train.

    Each photo (searched recursively) is padded, its largest face detected, aligned
    and cropped like animate does, and saved as images/<name>.png; its 17 AUs go to
    aus.csv and a seeded split to train.txt / test.txt. Several folders: names get
    the folder's name as prefix. Re-running resumes (done photos are skipped);
    corrupt and face-less photos are skipped, counted and reported.

    \b
    gan-anim prepare raw_photos/ -o data/mydataset
    gan-anim prepare ../shared/data/facial_expressions/images \\
        ../shared/data/utkface_crop_part1/images -o data/shipped
    gan-anim prepare raw_photos/ -o data/of --openface openface_csvs/
    gan-anim prepare raw_photos/ -o data/geo --labels geometry
    """
    from .training.prepare import format_summary, prepare_dataset

    summary = prepare_dataset(list(sources), output, size=size, pad=pad, detector=detector,
                              workers=workers, openface=openface, test_fraction=test_fraction,
                              seed=seed, labels=labels, progress=not quiet and sys.stderr.isatty())  # bar on a TTY only
    click.echo(format_summary(summary))


# --------------------------------------------------------------------- video
@main.command("video")
@click.argument("clip", type=click.Path(dir_okay=False, path_type=str))
@click.option("--aus", "aus", required=True,
              help="AU track: OpenFace-format CSV, driving video, or preset/JSON/AU12=3 (constant).")
@click.option("-o", "--output", default=None, help="Output .mp4. Default: <clip>-<track>.mp4 here.")
@click.option("--detect-every", default=10, show_default=True, type=int,
              help="Run the face detector every K frames (and on scene cuts); track in between.")
@click.option("--strength", default=1.0, show_default=True, type=float,
              help="Scale of the change from each face's own AUs (0 keeps them, >1 exaggerates).")
@click.option("--relative", is_flag=True,
              help="Apply the track's change from its first row on top of each face's own AUs.")
@click.option("--track-end", type=click.Choice(["hold", "loop"]), default="hold", show_default=True,
              help="A track shorter than the clip holds its last row or loops.")
@detector_option
@click.option("--crf", default=InferenceConfig.crf, show_default=True, type=int,
              help="H.264 quality (lower is better).")
@weights_option
@device_option
@click.option("--batch-size", default=InferenceConfig.batch_size, show_default=True, type=int,
              help="Face crops per generator pass.")
@precision_option
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary.")
def video_command(clip, aus, output, detect_every, strength, relative, track_end, detector, crf,
                  weights, device, batch_size, precision, quiet):
    """Re-render the faces in CLIP so their expression follows an AU track.

    Keeps the clip's size, frame rate, frame count and audio; frames without
    a face pass through unchanged.

    \b
    Examples:
      gan-anim video clip.mp4 --aus aus.csv -o out.mp4
      gan-anim video clip.mp4 --aus happy -o smiling.mp4
      gan-anim video clip.mp4 --aus AU12=4,AU06=3 --strength 0.5 -o subtle.mp4
      gan-anim video clip.mp4 --aus driver.mp4 --relative -o transfer.mp4
      gan-anim aus driver.mp4 -o driver.csv
      gan-anim video clip.mp4 --aus driver.csv --relative --track-end loop -o out.mp4
    """
    from pathlib import Path

    from .aus import parse_expression
    from .media.paths import VIDEO_EXTS, check_input_file, check_output_path

    check_input_file(clip, "video")  # before torch and OpenCV load
    if Path(aus).suffix.lower() in {".csv", *VIDEO_EXTS}:
        check_input_file(aus, "AU track")
    else:
        parse_expression(aus)  # a constant expression
    if output:
        check_output_path(output, [clip])
    from .pipeline.video import animate_video

    animate_video(clip, output, aus=aus, weights=weights, device=device, batch_size=batch_size,
                  precision=precision,
                  detect_every=detect_every, strength=strength, relative=relative,
                  timeline_end=track_end, crf=crf, detector=detector, quiet=quiet)


# ---------------------------------------------------------------------- info
@main.command()
@weights_option
def info(weights):
    """Show the weights file in use: model config, AU list, parameter count.

    \b
    Example:
      gan-anim info
      gan-anim info --weights runs/mine/export.pt
    """
    from .aus import AU_NAMES
    from .model import load_generator
    from .render.device import resolve_device, resolve_precision
    from .render.weights import find_weights

    path = find_weights(weights)
    try:
        gen = load_generator(path)
    except ValueError as exc:
        raise GanAnimError(str(exc)) from None
    n = sum(p.numel() for p in gen.parameters())
    click.echo(f"weights   {path}")
    for key, value in gen.cfg.to_dict().items():
        click.echo(f"{key:<16}{value}")
    click.echo(f"parameters      {n / 1e6:.2f} M (generator)")
    click.echo(f"AUs             {' '.join(AU_NAMES)} (0..5, divided by 5 inside)")
    device = resolve_device("auto")
    click.echo(f"runs on         {device.type}, {resolve_precision('auto', device)} "
               "(--precision auto on this machine)")


# -------------------------------------------------------------------- studio
@main.command()
@click.argument("photo", required=False, type=click.Path(dir_okay=False, path_type=str))
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Port to serve on (default: a free one).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to listen on; give another (e.g. 0.0.0.0) to serve beyond this machine.")
@click.option("--no-browser", is_flag=True, help="Print the URL only; do not open a browser.")
@detector_option
@weights_option
@device_option
@precision_option
def studio(photo, port, host, no_browser, detector, weights, device, precision):
    """Edit an expression with sliders in a local web page, see it live, export it.

    Serves a page (needs the studio extra: pip install 'gan-anim[studio]') where a
    photo's faces get 17 AU sliders, the presets, undo and a live preview; its
    export is the file `gan-anim animate` writes for the same settings, and it
    gives that command line. Ctrl-C stops the server.

    \b
    Examples:
      gan-anim studio examples/astronaut.jpg
      gan-anim studio --weights weights/gan-anim-small.pt --no-browser --port 8765
    """
    from .media.paths import check_input_file
    from .studio.server import serve

    if photo is not None:
        check_input_file(photo, "photo")
    serve(photo, host=host, port=port, open_browser=not no_browser, weights=weights, device=device,
          precision=precision, detector=detector)
