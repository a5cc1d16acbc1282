"""One way to report progress: events ``(stage, percent, message)``, drawn as protocol lines or a human bar.

Long work calls a ``ProgressCallback(stage, percent, message)``. The command line turns those events into what
its ``--progress`` option asks for (``progress_for``): protocol lines for a program that reads them (the Slicer
logic), a bar for a person at a terminal, or nothing. Both renderers are plain callbacks of the same events.

A protocol line, on standard output::

    SPINEMETSEG-PROGRESS <percent 0-100> <stage> [message]

for example ``SPINEMETSEG-PROGRESS 45 inference window 12/27``. ``<stage>`` is one word
(``read``, ``preprocess``, ``inference``, ``postprocess``, ``write``, ``done``, ...). Any other line is
free log text. ``parse_progress`` turns a line back into a ``Progress`` or ``None``.

Usage::

    report = ProgressReporter()          # prints protocol lines to stdout
    report("inference", 45, "window 12/27")
    bar = ProgressBar()                  # draws "inference [#############.................]  45% window 12/27"
    bar("inference", 45, "window 12/27") # on standard error; bar.close() ends its line
"""

from __future__ import annotations

import sys
import weakref
from dataclasses import dataclass
from typing import Callable, Optional, TextIO

PROGRESS_PREFIX = "SPINEMETSEG-PROGRESS"

# The ``--progress`` choices of every long command: ``auto`` is ``bar`` when standard error is a terminal (a
# person watches), ``lines`` otherwise (a program or a log reads the output).
PROGRESS_CHOICES = ("auto", "bar", "lines", "none")
BAR_WIDTH = 30
BAR_LOG_STEP_PERCENT = 5  # a bar not on a terminal (a log) prints a line per this many percent, or a new stage

ProgressCallback = Callable[[str, float, str], None]


@dataclass(frozen=True)
class Progress:
    """One progress report: a stage, a percentage of the whole job and an optional message."""

    stage: str
    percent: float
    message: str = ""


def format_progress(stage: str, percent: float, message: str = "") -> str:
    """Return the progress line for ``stage`` at ``percent`` (clamped to 0..100)."""
    if not stage or any(c.isspace() for c in stage):
        raise ValueError(f"a progress stage is one word, got {stage!r}")
    percent = min(100.0, max(0.0, float(percent)))
    line = f"{PROGRESS_PREFIX} {percent:.0f} {stage}"
    return f"{line} {message}" if message else line


def parse_progress(line: str) -> Optional[Progress]:
    """Return the ``Progress`` a line reports, or ``None`` for a line that is not a progress line."""
    parts = line.strip().split(maxsplit=3)
    if len(parts) < 3 or parts[0] != PROGRESS_PREFIX:
        return None
    try:
        percent = float(parts[1])
    except ValueError:
        return None
    return Progress(stage=parts[2], percent=percent, message=parts[3] if len(parts) > 3 else "")


class ProgressReporter:
    """A progress callback that prints progress lines to a stream (standard output by default)."""

    def __init__(self, stream: Optional[TextIO] = None):
        self._stream = stream

    def __call__(self, stage: str, percent: float, message: str = "") -> None:
        stream = self._stream or sys.stdout
        print(format_progress(stage, percent, message), file=stream, flush=True)


def no_progress(stage: str, percent: float, message: str = "") -> None:
    """A progress callback that reports nothing."""


class ProgressBar:
    """A progress callback that draws a human bar on a stream (standard error by default).

    On a terminal the bar redraws in place as the whole percentage or the stage changes; elsewhere (a log file)
    it prints a line when the stage changes or the percentage passes a multiple of ``BAR_LOG_STEP_PERCENT``.
    Each line reads ``<stage> [#####.....]  45% <message>``. ``close`` ends a line drawn in place.
    """

    def __init__(self, stream: Optional[TextIO] = None):
        self._stream = stream
        self._stage = ""
        self._percent = -1
        self._open = 0  # width of the line drawn in place and not yet ended (0: none)
        _bars.add(self)

    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stderr

    @property
    def interactive(self) -> bool:
        return bool(getattr(self.stream, "isatty", None) and self.stream.isatty())

    def __call__(self, stage: str, percent: float, message: str = "") -> None:
        whole = round(min(100.0, max(0.0, float(percent))))  # as the protocol line rounds it
        step = 1 if self.interactive else BAR_LOG_STEP_PERCENT
        same_step = whole == self._percent or (whole < 100 and whole // step == self._percent // step)
        if stage == self._stage and same_step:
            return
        self._stage, self._percent = stage, whole
        filled = BAR_WIDTH * whole // 100
        line = f"{stage} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {whole:3d}%" + (f" {message}" if message else "")
        if self.interactive:
            self.stream.write("\r" + line.ljust(self._open))  # spaces cover what a longer line left
            self._open = max(self._open, len(line))
            if whole == 100 and stage == "done":
                self.close()
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End a line drawn in place, so that what is printed next starts on a line of its own."""
        if self._open:
            self._open = 0
            self.stream.write("\n")
            self.stream.flush()


_bars: weakref.WeakSet[ProgressBar] = weakref.WeakSet()


def close_bars() -> None:
    """End every bar's line drawn in place (the command line calls this before it prints an error)."""
    for bar in list(_bars):
        bar.close()


def progress_for(choice: str = "auto", *, stdout: Optional[TextIO] = None,
                 stderr: Optional[TextIO] = None) -> ProgressCallback:
    """The callback a ``--progress`` choice asks for: ``lines`` protocol lines on standard output, ``bar`` a
    human bar on standard error, ``none`` nothing, ``auto`` a bar when standard error is a terminal, else lines."""
    if choice == "auto":
        error = stderr or sys.stderr
        choice = "bar" if getattr(error, "isatty", None) and error.isatty() else "lines"
    if choice == "lines":
        return ProgressReporter(stdout)
    if choice == "bar":
        return ProgressBar(stderr)
    if choice == "none":
        return no_progress
    raise ValueError(f"--progress is one of {', '.join(PROGRESS_CHOICES)}, got {choice!r}")


def add_progress_option(parser) -> None:
    """The ``--progress`` option every long command shares (see ``progress_for``)."""
    parser.add_argument(
        "--progress", choices=PROGRESS_CHOICES, default="auto",
        help="how to show progress: 'lines' prints SPINEMETSEG-PROGRESS <percent> <stage> [message] lines on "
        "standard output (for programs), 'bar' a bar on standard error, 'none' nothing; 'auto' (default) is "
        "'bar' on a terminal and 'lines' otherwise")
