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
