"""A one-line progress display for long steps (load phases, polls), on a terminal only.

Hand-written rather than a dependency: it is one redrawn line, and it must stay silent when
output is not a terminal (CI logs, pipes) so reports stay clean.

The line is cut to one character less than the terminal is wide (asked at each redraw, so
a resized window is followed): a line that wrapped would leave its first part behind at
every redraw, since a carriage return only goes back to the start of the last row.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

_WIDTH = 24


def fit(line: str) -> str:
    """``line`` cut to fit on one row of the terminal, with room left for the cursor."""
    width = max(10, shutil.get_terminal_size().columns - 1)
    line = line.replace("\n", " ").replace("\r", " ")
    return line if len(line) <= width else line[: width - 3] + "..."


class _Bar:
    def __init__(self, label: str, stream: TextIO | None) -> None:
        self.label, self.stream = label, stream
        self._last = 0.0

    def update(self, text: str, fraction: float | None = None) -> None:
        if self.stream is None:
            return
        now = time.monotonic()
        if now - self._last < 0.1 and fraction != 1.0:
            return
        self._last = now
        bar = ""
        if fraction is not None:
            done = int(_WIDTH * fraction)
            bar = "[" + "#" * done + "." * (_WIDTH - done) + "] "
        self.stream.write("\r\x1b[2K" + fit(f"  {self.label}  {bar}{text}"))
        self.stream.flush()

    def clear(self) -> None:
        if self.stream is not None:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()


class Progress:
    """``with progress.task("load") as bar: bar.update("…", fraction=0.5)``."""

    def __init__(self, *, enabled: bool | None = None, stream: TextIO = sys.stderr) -> None:
        self.stream = stream if (stream.isatty() if enabled is None else enabled) else None

    @contextmanager
    def task(self, label: str) -> Iterator[_Bar]:
        bar = _Bar(label, self.stream)
        try:
            yield bar
        finally:
            bar.clear()
