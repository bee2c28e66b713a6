"""The ``gan-anim`` command line: a thin layer over the Python API.

Every command parses options, calls one API function, and reports. Errors of
the user's making (GanAnimError) become one line on stderr and exit status 1.
"""
from __future__ import annotations

import sys

import click

from .errors import GanAnimError


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except GanAnimError as exc:
            click.echo(f"gan-anim: error: {exc}", err=True)
            sys.exit(1)
        except OSError as exc:  # unwritable output, full disk...
            where = f": {exc.filename}" if exc.filename else ""
            click.echo(f"gan-anim: error: {exc.strerror or exc}{where}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("gan-anim: interrupted", err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gan-anim")
def main():
    """Animate the facial expression of any photo or video (GANimation).

    \b
    gan-anim animate photo.jpg --to happy -o smile.gif
    gan-anim video clip.mp4 --aus aus.csv -o out.mp4
    gan-anim train --data data/mydataset --out runs/mine
    """


# Commands are registered below, one block per subcommand.


# ------------------------------------------------------------------- animate
@main.command()
@click.argument("photo", type=click.Path(dir_okay=False, path_type=str))
@click.option("--to", "to", default="happy", show_default=True,
              help="Target expression: preset name, JSON file or AU12=3,AU06=2.")
@click.option("--from", "start", default=None,
              help="Start expression (same forms). Default: each face's own, as estimated.")
@click.option("-o", "--output", default=None,
              help="Output .gif, .mp4 or folder of PNGs. Default: <photo>-<target>.gif here.")
@click.option("--frames", default=30, show_default=True, type=int, help="Frames from start to target.")
@click.option("--fps", default=15.0, show_default=True, type=float)
@click.option("--ease", type=click.Choice(["linear", "smooth"]), default="linear", show_default=True)
@click.option("--loop", is_flag=True, help="Add the way back, for a seamless looping GIF.")
@click.option("--face", "face", default="all", show_default=True, help="all, largest or N (1 = largest).")
@click.option("--detector", type=click.Choice(["hog", "cnn"]), default="hog", show_default=True)
@click.option("--weights", default=None, help="Weights file (default: weights/gan-anim-medium.pt; weights/gan-anim-small.pt: 4.5x faster, softer).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--batch-size", default=16, show_default=True, type=int, help="Face-frames per generator pass.")
@click.option("--crf", default=18, show_default=True, type=int, help="MP4 quality (lower is better).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or summary.")
def animate(photo, to, start, output, frames, fps, ease, loop, face, detector, weights, device,
            batch_size, crf, quiet):
    """Animate every face in PHOTO from one expression to another.

    \b
    Examples:
      gan-anim animate examples/astronaut.jpg --to happy -o smile.gif
      gan-anim animate photo.jpg --from neutral --to surprise --frames 30 --loop -o wow.gif
      gan-anim animate photo.jpg --from examples/neutral.json --to examples/smile.json -o smile.mp4
      gan-anim animate group.jpg --to AU12=4,AU06=3 --face largest -o frames/
    """
    from .animate import Animator

    if frames < 1:
        raise GanAnimError(f"--frames must be at least 1, got {frames}")
    Animator(weights, device, batch_size).animate(
        photo, output, to=to, start=start, frames=frames, fps=fps, ease=ease, loop=loop,
        face=face, detector=detector, crf=crf, quiet=quiet)


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


@main.command()
@click.option("--data", "data_dir", required=True, type=click.Path(),
              help="Training set: images/ + aus.csv (gan-anim prepare) or imgs/ + aus_openface.pkl (official).")
@click.option("--out", "out_dir", required=True, type=click.Path(),
              help="Run folder: checkpoints, samples/*.png, log.jsonl.")
@click.option("--preset", type=click.Choice(["small", "medium", "paper"]), default="small",
              show_default=True,
              help="small: 64 px, CPU; medium: 128 px, GPU; paper: the paper's 128 px networks.")
@click.option("--steps", type=int, default=20000, show_default=True, help="Total steps (one batch each).")
@click.option("--batch-size", type=int, default=16, show_default=True, help="Images per step per process.")
@click.option("--lr", type=float, default=1e-4, show_default=True)
@click.option("--beta1", type=float, default=0.5, show_default=True)
@click.option("--beta2", type=float, default=0.999, show_default=True)
@click.option("--critic-steps", type=int, default=5, show_default=True,
              help="Generator updated once every this many critic steps.")
@click.option("--decay-start", type=int, default=None,
              help="Step where the LR starts its linear decay to 0 [default: 2/3 of --steps].")
@click.option("--checkpoint-every", type=int, default=500, show_default=True)
@click.option("--keep", type=int, default=3, show_default=True, help="Checkpoints kept.")
@click.option("--resume", is_flag=True, help="Continue from the newest checkpoint in --out.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--gp-every", type=int, default=1, show_default=True,
              help="Gradient penalty every k steps, weighted k times (lazy regularisation).")
@click.option("--lambda-gp", type=float, default=10.0, show_default=True)
@click.option("--lambda-au", type=float, default=160.0, show_default=True,
              help="AU regression weight on plain MSE (official: 4000 / batch 25).")
@click.option("--lambda-cycle", type=float, default=10.0, show_default=True)
@click.option("--lambda-attention", type=float, default=0.1, show_default=True, help="Mean of A.")
@click.option("--lambda-tv", type=float, default=1e-5, show_default=True, help="Total variation of A.")
@click.option("--flow/--no-flow", default=None, help="Force the flow head on/off [default: the preset's].")
@click.option("--target-noise", type=float, default=0.1, show_default=True,
              help="Uniform noise on sampled target AUs (0..1 scale).")
@click.option("--max-minutes", type=float, default=None,
              help="Wall-clock budget: stop cleanly (checkpoint, resumable) after this many minutes.")
@click.option("-q", "--quiet", is_flag=True, help="No progress display.")
def train(data_dir, out_dir, preset, steps, batch_size, lr, beta1, beta2, critic_steps, decay_start,
          checkpoint_every, keep, resume, device, seed, gp_every, lambda_gp, lambda_au, lambda_cycle,
          lambda_attention, lambda_tv, flow, target_noise, max_minutes, quiet):
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
    from .losses import LossWeights
    from .train import train as run_training

    weights = LossWeights(gp=lambda_gp, au=lambda_au, cycle=lambda_cycle,
                          attention=lambda_attention, attention_tv=lambda_tv)
    last = run_training(data_dir, out_dir, preset=preset, steps=steps, batch_size=batch_size, lr=lr,
                        betas=(beta1, beta2), critic_steps=critic_steps, decay_start=decay_start,
                        checkpoint_every=checkpoint_every, keep=keep, resume=resume, device=device,
                        seed=seed, gp_every=gp_every, weights=weights, flow=flow,
                        target_noise=target_noise, max_minutes=max_minutes, progress=not quiet)
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
    from .train import export_weights

    path = export_weights(checkpoint, output, half=half)
    click.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


# ---------------------------------------------------------------------- grid
@main.command()
@click.argument("photo", type=click.Path(dir_okay=False, path_type=str))
@click.option("-o", "--output", default="grid.png", show_default=True, help="PNG to write.")
@click.option("--face", "face", default="largest", show_default=True, help="largest or N (1 = largest).")
@click.option("--from", "start", default=None, help="Start expression. Default: the face's own, estimated.")
@click.option("--cell", default=128, show_default=True, type=int, help="Cell size in pixels.")
@click.option("--weights", default=None, help="Weights file (default: weights/gan-anim-medium.pt; weights/gan-anim-small.pt: 4.5x faster, softer).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
def grid(photo, output, face, start, cell, weights, device):
    """Single-AU control grid: rows of AUs, columns of intensities 0, .33, .66, 1.

    Each AU is raised from the face's own value towards 5 (column 0 leaves the
    face as it is); the last row shows the presets.

    \b
    Example:
      gan-anim grid examples/astronaut.jpg -o grid.png
    """
    from .animate import Animator
    from .grid import au_grid

    au_grid(Animator(weights, device), photo, output, face=face, cell=cell, start=start)
    click.echo(f"wrote {output}", err=True)


@main.command("aus")
@click.argument("media", type=click.Path(dir_okay=False, path_type=str))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="out.json (photo) or out.csv (OpenFace format; required for videos). Default: JSON on stdout.")
@click.option("--detector", type=click.Choice(["hog", "cnn"]), default="hog", show_default=True,
              help="dlib face detector (cnn: slower, finds turned faces).")
@click.option("--detect-side", default=1280, show_default=True,
              help="First pass of the detection cascade on a copy at most this many px (as animate); "
                   "tiles at a larger scale find the small faces.")
def aus_command(media, output, detector, detect_side):
    """Estimate the 17 Action Unit intensities (0..5) of every face in a photo or video.

    A photo gives JSON, one entry per face (largest first): its box and 17 AUs.
    A video gives a per-frame CSV in OpenFace's format (frame, timestamp,
    confidence, success, AU01_r ... AU45_r; frames without a face: success 0),
    usable wherever gan-anim reads OpenFace AUs.

    \b
    gan-anim aus examples/astronaut.jpg
    gan-anim aus examples/astronaut.jpg -o astronaut_aus.json
    gan-anim aus group.jpg --detect-side 1280
    gan-anim aus driving.mp4 -o driving_aus.csv
    """
    import json
    from pathlib import Path

    from .aus import AU_NAMES, write_openface_csv
    from .estimator import estimate_aus_file, estimate_video
    from .media import VIDEO_EXTS, atomic_output, check_output_path

    is_video = Path(media).suffix.lower() in VIDEO_EXTS
    kind = Path(output).suffix.lower() if output else ".json"
    if kind not in (".json", ".csv"):
        raise GanAnimError(f"{output}: unsupported output type {kind!r}: use .json or .csv")
    if output:
        check_output_path(output, [media])
    if is_video:
        if kind != ".csv":
            raise GanAnimError("a video gives a per-frame CSV: add -o aus.csv")
        rows = estimate_video(media, detector, detect_side)
        write_openface_csv(output, rows)
        found = sum(r[3] for r in rows)
        click.echo(f"wrote {output}: {len(rows)} frames, a face in {found}", err=True)
        return
    found = estimate_aus_file(media, detector, detect_side)
    if not found:
        raise GanAnimError(f"{media}: no face found (try --detector cnn)")
    if kind == ".csv":
        write_openface_csv(output, [(k + 1, 0.0, 1.0, 1, [f["aus"][n] for n in AU_NAMES])
                                    for k, f in enumerate(found)])
        click.echo(f"wrote {output}: {len(found)} face(s), one row each", err=True)
        return
    text = json.dumps([{"box": list(f["box"]), "aus": f["aus"]} for f in found], indent=1)
    if output:
        with atomic_output(output) as tmp:
            Path(tmp).write_text(text + "\n")
        click.echo(f"wrote {output}: {len(found)} face(s)", err=True)
    else:
        click.echo(text)


@main.command("prepare")
@click.argument("sources", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=str))
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Output folder (images/, aus.csv, train.txt, test.txt, summary.json).")
@click.option("--size", default=128, show_default=True, help="Side of the aligned face crops (px).")
@click.option("--pad", default=0.3, show_default=True,
              help="Edge-replicated border added before detection, as a fraction of the longer side "
                   "(lets the detector find tightly cropped faces).")
@click.option("--workers", default=2, show_default=True, help="Parallel processes.")
@click.option("--detector", type=click.Choice(["hog", "cnn"]), default="hog", show_default=True)
@click.option("--openface", type=click.Path(file_okay=False, path_type=str), default=None,
              help="Folder of OpenFace CSVs (<photo stem>.csv): take AUs from them, not the estimator.")
@click.option("--test-fraction", default=0.1, show_default=True, help="Share held out in test.txt.")
@click.option("--seed", default=0, show_default=True, help="Seed of the train/test split.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def prepare_command(sources, output, size, pad, workers, detector, openface, test_fraction, seed, quiet):
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
    """
    from .prepare import format_summary, prepare_dataset

    summary = prepare_dataset(list(sources), output, size=size, pad=pad, detector=detector,
                              workers=workers, openface=openface, test_fraction=test_fraction,
                              seed=seed, progress=not quiet)
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
@click.option("--detector", type=click.Choice(["hog", "cnn"]), default="hog", show_default=True)
@click.option("--crf", default=18, show_default=True, type=int, help="H.264 quality (lower is better).")
@click.option("--weights", default=None, help="Weights file (default: weights/gan-anim-medium.pt; weights/gan-anim-small.pt: 4.5x faster, softer).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--batch-size", default=16, show_default=True, type=int, help="Face crops per generator pass.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary.")
def video_command(clip, aus, output, detect_every, strength, relative, track_end, detector, crf,
                  weights, device, batch_size, quiet):
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
    from .video import animate_video

    animate_video(clip, output, aus=aus, weights=weights, device=device, batch_size=batch_size,
                  detect_every=detect_every, strength=strength, relative=relative,
                  track_end=track_end, crf=crf, detector=detector, quiet=quiet)


# ---------------------------------------------------------------------- info
@main.command()
@click.option("--weights", default=None, help="Weights file (default: weights/gan-anim-medium.pt; weights/gan-anim-small.pt: 4.5x faster, softer).")
def info(weights):
    """Show the weights file in use: model config, AU list, parameter count.

    \b
    Example:
      gan-anim info
      gan-anim info --weights runs/mine/export.pt
    """
    from .animate import find_weights
    from .aus import AU_NAMES
    from .model import load_generator

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
