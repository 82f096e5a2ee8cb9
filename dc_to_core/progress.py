"""Progress of the long commands (``seed``, ``plan``, ``demo``, ``bench``, ``preview``): a
bar (rich) on stderr when it is a terminal, plain lines otherwise (CI, a pipe): the first,
at most one per ``PLAIN_INTERVAL_S`` after it, and the last, with the time taken.

    with progress("seeding Data Cloud", total=rows, unit="rows") as bar:
        seed_datacloud(storage, spec, progress=bar.update)   # rows written so far
    with progress("materializing partitions", total=len(todo)) as bar:
        for sync, partition in todo:
            ...
            bar.advance(detail=f"{sync} {partition}")
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import click

from .salesforce.throttle import Throttle

PLAIN_INTERVAL_S = 10.0


class Bar:
    """How far a command is (``done`` of ``total``, ``total`` None when unknown) and what it
    is on (``detail``)."""

    def __init__(self, label: str, total: int | None, unit: str) -> None:
        self.label, self.total, self.unit = label, total, unit
        self.done, self.detail = 0, ""

    def update(self, done: int | None = None, total: int | None = None,
               detail: str | None = None) -> None:
        self.done = self.done if done is None else done
        self.total = self.total if total is None else total
        self.detail = self.detail if detail is None else detail
        self.show()

    def advance(self, n: int = 1, detail: str | None = None) -> None:
        self.update(self.done + n, detail=detail)

    def show(self) -> None:
        """Draw the bar or say the line (the subclasses)."""

    def counts(self) -> str:
        """``12,000/200,000 rows (6%)``, or what of it is known."""
        if not (self.total or self.done):
            return ""
        count = f"{self.done:,}/{self.total:,}" if self.total else f"{self.done:,}"
        share = f"({self.done / self.total:.0%})" if self.total else ""
        return " ".join(p for p in (count, self.unit, share) if p)


class _Lines(Bar):
    def __init__(self, label: str, total: int | None, unit: str) -> None:
        super().__init__(label, total, unit)
        self.say = Throttle(lambda line: click.echo(line, err=True), PLAIN_INTERVAL_S)

    def show(self) -> None:
        said = " ".join(p for p in (self.counts(), self.detail) if p)
        self.say(f"{self.label}: {said}" if said else f"{self.label} ...")

    def end(self, seconds: float) -> None:
        self.say(f"{self.label}: {self.counts() + ', ' if self.counts() else ''}"
                 f"done in {seconds:.1f} s")
        self.say.flush()


class _Rich(Bar):
    def __init__(self, label: str, total: int | None, unit: str) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        super().__init__(label, total, unit)
        self.bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                            MofNCompleteColumn(), TextColumn(unit), TimeElapsedColumn(),
                            TextColumn("{task.fields[detail]}"),
                            console=Console(file=sys.stderr))
        self.task = self.bar.add_task(label, total=total, detail="")

    def show(self) -> None:
        self.bar.update(self.task, completed=self.done, total=self.total, detail=self.detail)


@contextmanager
def progress(label: str, total: int | None = None, unit: str = "") -> Iterator[Bar]:
    """A bar for the block: rich's when stderr is a terminal, else plain lines."""
    started = time.perf_counter()
    if sys.stderr.isatty():
        bar = _Rich(label, total, unit)
        with bar.bar:
            yield bar
        return
    lines = _Lines(label, total, unit)
    lines.show()
    try:
        yield lines
    except BaseException:
        lines.say.flush()
        raise
    lines.end(time.perf_counter() - started)
