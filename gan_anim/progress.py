"""Rich progress bars for long work; silent when ``quiet``."""
from __future__ import annotations

import contextlib
import sys

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

console = Console(stderr=True)


class Reporter:
    """Stages with progress bars (``stage``), warnings and a final summary line."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self._progress: Progress | None = None
        self._summary: str | None = None

    def __enter__(self):
        if not self.quiet:
            self._progress = Progress(
                TextColumn("[bold]{task.description:<10}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("eta"),
                TimeRemainingColumn(), console=console, transient=False,
                disable=not console.is_terminal and "pytest" in sys.modules)
            self._progress.__enter__()
        return self

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.__exit__(*exc)
            self._progress = None
        if self._summary and exc[0] is None:
            console.print(self._summary, highlight=False)
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
        if not self.quiet:
            console.print(f"[yellow]warning:[/] {msg}")

    def summary(self, msg: str) -> None:
        """The one-line summary, printed after the progress bars close."""
        if self.quiet:
            return
        if self._progress is None:
            console.print(msg, highlight=False)
        else:
            self._summary = msg
