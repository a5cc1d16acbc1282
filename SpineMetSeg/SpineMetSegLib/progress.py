"""Progress lines between the ``spinemetseg`` child process and its caller (the Slicer logic).

A long command prints one line per step on standard output::

    SPINEMETSEG-PROGRESS <percent 0-100> <stage> [message]

for example ``SPINEMETSEG-PROGRESS 45 inference window 12/27``. ``<stage>`` is one word
(``read``, ``preprocess``, ``inference``, ``postprocess``, ``write``, ``done``, ...). Any other line is
free log text. ``parse_progress`` turns a line back into a ``Progress`` or ``None``.

Usage::

    report = ProgressReporter()          # prints to stdout
    report("inference", 45, "window 12/27")
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Callable, Optional, TextIO

PROGRESS_PREFIX = "SPINEMETSEG-PROGRESS"

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
