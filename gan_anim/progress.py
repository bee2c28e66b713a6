"""Progress for long work: bars on a terminal only, one summary line at the end.

When stderr is not a terminal (scripts, CI logs, ``2>err.txt``) nothing is printed
while the work runs: warnings and the summary come at the end, and only if the work
succeeded, so a failing command leaves exactly its one error line. ``quiet``: nothing.
"""
from __future__ import annotations

import contextlib

from rich.console import Console
from rich.markup import escape

console = Console(stderr=True)


class Reporter:
    """Stages with progress bars (``stage``), warnings and a final summary line."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self._progress = None
        self._entered = False
        self._summary: str | None = None
        self._warnings: list[str] = []

    def __enter__(self):
        self._entered = True
        if not self.quiet and console.is_terminal:
            self._progress = progress_bar("{task.fields[rate]}")
            self._progress.__enter__()
        return self

    def __exit__(self, *exc):
        failed = exc[0] is not None
        if self._progress is not None:
            self._progress.live.transient = failed  # a failure leaves only its error line
            self._progress.__exit__(*exc)
            self._progress = None
        self._entered = False
        if not failed:
            for msg in self._warnings:
                _print_warning(msg)
            if self._summary:
                console.print(self._summary, highlight=False, markup=False, soft_wrap=True)
        self._warnings.clear()
        return False

    @contextlib.contextmanager
    def stage(self, name: str, total: int | None = None):
        """A bar for one stage; yields ``advance(n=1, rate='')``."""
        if self._progress is None:
            yield lambda n=1, rate="": None
            return
        task = self._progress.add_task(name, total=total, rate="")

        def advance(n=1, rate=""):
            self._progress.update(task, advance=n, rate=rate)

        yield advance
        t = self._progress.tasks[task]
        if t.total is None:
            self._progress.update(task, total=t.completed or 1, completed=t.completed or 1)

    def warn(self, msg: str) -> None:
        """A warning: shown now on a terminal, otherwise at the end if the work succeeds."""
        if self.quiet:
            return
        if self._progress is not None or not self._entered:
            _print_warning(msg)
        else:
            self._warnings.append(msg)

    def summary(self, msg: str) -> None:
        """The one-line summary, printed after the work (and its bars) ended well."""
        if self.quiet:
            return
        if self._entered:
            self._summary = msg
        else:
            console.print(msg, highlight=False, markup=False, soft_wrap=True)


def progress_bar(*fields: str, enabled: bool = True):
    """A ``rich.progress.Progress`` on stderr: per task its description, bar, done/total,
    elapsed time, eta, then each of ``fields`` (task format strings such as
    ``"{task.fields[rate]}"``). It draws nothing unless ``enabled`` and stderr is a terminal."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("[bold]{task.description:<10}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                    *(TextColumn(f) for f in fields), console=console,
                    disable=not (enabled and console.is_terminal))


def _print_warning(msg: str) -> None:
    console.print(f"[yellow]warning:[/] {escape(msg)}", highlight=False, soft_wrap=True)
