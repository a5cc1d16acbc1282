"""One run of a ``spinemetseg`` command in a child process, as the panel sees it: progress, log, outcome.

Usage::

    from SpineMetSegLib.mrml.child_job import ChildJob
    from SpineMetSegLib.mrml.process_runner import SubprocessRunner

    job = ChildJob(SubprocessRunner(), on_progress=lambda p: print(p.percent, p.stage), on_log=print)
    job.start(["models", "download", "spinemetseg-default"])
    while job.poll() is None:          # the GUI calls poll() from a QTimer instead of looping
        time.sleep(0.1)
    job.check()                        # raises CancelledError / SpineMetSegError unless the run succeeded

Output lines arrive on the runner's reader thread and wait in a queue; ``poll`` and ``wait`` hand them to the
callbacks on the caller's thread, so callbacks may update Qt widgets.
"""

from __future__ import annotations

import queue
import time
from typing import Callable, List, Optional, Sequence

from ..errors import EXIT_CANCELLED, CancelledError, SpineMetSegError
from ..progress import Progress, parse_progress
from .process_runner import ProcessRunner

ProgressHandler = Callable[[Progress], None]
LogHandler = Callable[[str], None]
ProgressParser = Callable[[str], Optional[Progress]]

# How many trailing output lines an error message quotes when the child printed no "error:" line.
ERROR_CONTEXT_LINES = 5
ERROR_PREFIX = "error:"


class ChildJob:
    """A started (or about to start) child process with its progress and log."""

    def __init__(self, runner: ProcessRunner, *, on_progress: Optional[ProgressHandler] = None,
                 on_log: Optional[LogHandler] = None, what: str = "The command",
                 progress_parser: ProgressParser = parse_progress):
        self.runner = runner
        self.progress_parser = progress_parser
        self.on_progress = on_progress
        self.on_log = on_log
        self.what = what
        self.started: Optional[float] = None
        self.ended: Optional[float] = None
        self.progress: Optional[Progress] = None
        self.log: List[str] = []
        self.cancel_requested = False
        self._lines: queue.Queue = queue.Queue()

    def start(self, args: Sequence[str]) -> None:
        self.started = time.monotonic()
        self.runner.start(list(args), self._lines.put)

    @property
    def elapsed_s(self) -> float:
        if self.started is None:
            return 0.0
        return (self.ended if self.ended is not None else time.monotonic()) - self.started

    def _deliver(self) -> None:
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                return
            progress = self.progress_parser(line)
            if progress is not None:
                self.progress = progress
                if self.on_progress is not None:
                    self.on_progress(progress)
                continue
            self.log.append(line)
            if self.on_log is not None:
                self.on_log(line)

    def poll(self) -> Optional[int]:
        """Deliver new output; return the exit code once the child has ended, else None."""
        self._deliver()
        code = self.runner.poll()
        if code is not None:
            self._deliver()
            if self.ended is None:
                self.ended = time.monotonic()
        return code

    def cancel(self) -> None:
        """Ask the child to stop; ``check`` then raises ``CancelledError``."""
        self.cancel_requested = True
        self.runner.cancel()

    def wait(self) -> int:
        """Block until the child has ended; deliver its output; return its exit code."""
        self.runner.wait()
        code = self.poll()
        return -1 if code is None else code

    def check(self) -> None:
        """Raise unless the finished child succeeded: ``CancelledError``, or ``SpineMetSegError`` with its error."""
        code = self.poll()
        if code is None:
            raise SpineMetSegError(f"{self.what} is still running; wait for it to finish.")
        if self.cancel_requested or code == EXIT_CANCELLED:
            raise CancelledError(f"{self.what} was cancelled; nothing was changed.")
        if code != 0:
            raise SpineMetSegError(self.failure_message(code))

    def failure_message(self, code: int) -> str:
        """The child's own ``error:`` message, or its last lines."""
        errors = [line[len(ERROR_PREFIX):].strip() for line in self.log if line.startswith(ERROR_PREFIX)]
        if errors:
            return errors[-1]
        tail = "\n".join(self.log[-ERROR_CONTEXT_LINES:])
        return f"{self.what} stopped with exit code {code}. Its last output:\n{tail}"
