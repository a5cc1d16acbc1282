"""Install Python packages into Slicer's Python with pip in a child process, and say plainly why it failed.

Usage::

    from SpineMetSegLib.mrml.package_install import PackageInstaller

    job = PackageInstaller().start(["monai>=1.3", "scipy>=1.10"], on_log=print)   # a ChildJob
    while job.poll() is None:          # the panel keeps Slicer responsive meanwhile (processEvents)
        time.sleep(0.1)
    job.check()                        # raises SpineMetSegError quoting pip's own ERROR lines

There is no separate "are we online" check: pip knows the index, the proxy and the mirror the user configured,
so it is asked directly, and its own error (no connection, no matching version, no permission) is shown.
``slicer.util.pip_install`` is not used: it raises ``CalledProcessError`` without pip's output (Base/Python/slicer/
util.py ``logProcessOutput``, v5.8.0 lines 3830-3862, v5.10.0 lines 3922-3954) and blocks the GUI while it runs.
Like it (``_executePythonModule``, v5.8.0 lines 3865-3896, v5.10.0 lines 3957-3988), the child is
``PythonSlicer -m pip``.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

from ..errors import SpineMetSegError
from .child_job import ChildJob, LogHandler
from .process_runner import ProcessRunner, SubprocessRunner, python_executable

PIP_ERROR_PREFIX = "ERROR:"
# pip's own words for a connection that failed (it retries, then reports only "no matching distribution").
PIP_NETWORK_PREFIX = "WARNING: Retrying"
# How many trailing lines of pip's output the message quotes when pip printed no ERROR line.
PIP_CONTEXT_LINES = 5


def pip_runner() -> SubprocessRunner:
    """A runner for ``<Slicer's Python> -m pip``."""
    return SubprocessRunner(command=[python_executable(), "-m", "pip"])


def pip_failure_message(log: Sequence[str], requirements: Sequence[str], code: int) -> str:
    """What the user reads when pip failed: which packages, pip's own ERROR lines, and what to try."""
    errors = [line[len(PIP_ERROR_PREFIX):].strip() for line in log if line.startswith(PIP_ERROR_PREFIX)]
    network = [line[len("WARNING:"):].strip() for line in log if line.startswith(PIP_NETWORK_PREFIX)]
    said = "\n".join(network[-1:] + errors) if errors else "\n".join(log[-PIP_CONTEXT_LINES:]) or f"exit code {code}"
    return (f"pip could not install {', '.join(requirements)}. pip said:\n{said}\n"
            "Check the internet connection (or the proxy or package mirror pip is set up to use) and try again, "
            "or install the packages in Slicer's Python by hand.")


class PipJob(ChildJob):
    """A ``ChildJob`` running pip, whose failure message quotes pip."""

    def __init__(self, runner: ProcessRunner, requirements: Sequence[str], on_log: Optional[LogHandler] = None):
        super().__init__(runner, on_log=on_log, what="pip", progress_parser=lambda line: None)
        self.requirements = list(requirements)

    def failure_message(self, code: int) -> str:
        return pip_failure_message(self.log, self.requirements, code)


class PackageInstaller:
    """Starts pip installs; ``runner_factory`` makes the runner (tests point pip at a local index with it)."""

    def __init__(self, runner_factory: Callable[[], ProcessRunner] = pip_runner):
        self.runner_factory = runner_factory

    def start(self, requirements: Sequence[str], on_log: Optional[LogHandler] = None) -> PipJob:
        if not requirements:
            raise SpineMetSegError("Nothing to install.")
        job = PipJob(self.runner_factory(), requirements, on_log=on_log)
        job.start(["install", *requirements])
        return job
