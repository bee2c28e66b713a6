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
@click.option("--weights", default=None, help="Weights file (default: weights/gan-anim-small.pt).")
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
