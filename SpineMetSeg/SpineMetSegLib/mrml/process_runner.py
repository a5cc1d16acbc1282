"""Run the ``spinemetseg`` command line as a child process, line by line, cancellable.

The logic never runs inference in Slicer's own process: a child process keeps the GUI responsive, frees the
GPU memory when it ends, and can be stopped. The logic takes a runner (the ``ProcessRunner`` protocol), so
tests and Slicer run the same code with the same real child process.

Usage::

    from SpineMetSegLib.mrml.process_runner import SubprocessRunner

    runner = SubprocessRunner()                       # python -m SpineMetSegLib.cli (PythonSlicer in Slicer)
    runner.start(["models", "list"], on_line=print)   # on_line runs on a reader thread
    exit_code = runner.wait()

``cancel()`` stops the whole process tree and returns at once. Inside Slicer ``PythonSlicer`` is a launcher
(CTKAppLauncher) that starts the real Python as its own child and ignores signals, so signalling only the
started process would leave the real one running. On POSIX the child starts in a new session, and cancel sends
SIGTERM to its whole process group: the command line turns it into a clean exit (code 130) that removes its
partial output; whatever of the group still holds the output pipe after ``CANCEL_GRACE_S`` gets SIGKILL. On
Windows the tree is ended with ``taskkill /T /F`` (there is no SIGTERM, so the child cannot clean up: the logic's
temporary folder still goes); no console window opens for the child.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable, List, Mapping, Optional, Protocol, Sequence

LineCallback = Callable[[str], None]

# Seconds a cancelled child gets to clean up after SIGTERM before it is killed.
CANCEL_GRACE_S = 10.0
# The folder holding the SpineMetSegLib package (the Slicer module folder); the child needs it on its path.
LIBRARY_PARENT = Path(__file__).resolve().parents[2]
# Windows process creation flags (winbase.h); subprocess defines the names only on Windows.
CREATE_NEW_PROCESS_GROUP = 0x00000200
CREATE_NO_WINDOW = 0x08000000


class ProcessRunner(Protocol):
    """What the logic needs from a child-process runner."""

    def start(self, args: Sequence[str], on_line: LineCallback) -> None:
        """Start ``spinemetseg <args>``; call ``on_line`` with each line of its output (stdout and stderr)."""

    def poll(self) -> Optional[int]:
        """The exit code once the process has ended and all its output was delivered, else None."""

    def cancel(self) -> None:
        """Ask the process to stop (it cleans up and exits); kill it if it does not."""

    def wait(self, timeout: Optional[float] = None) -> int:
        """Block until the process has ended and all its output was delivered; return its exit code."""


def python_executable() -> str:
    """The Python that runs the child: PythonSlicer inside Slicer (Slicer's own executable cannot run -m)."""
    import slicer

    if hasattr(slicer, "app"):
        found = shutil.which("PythonSlicer")
        if found:
            return found
    return sys.executable


def spinemetseg_command(python: Optional[str] = None) -> List[str]:
    """The command line that runs ``spinemetseg``: ``<python> -m SpineMetSegLib.cli``."""
    return [python or python_executable(), "-m", "SpineMetSegLib.cli"]


def child_environment(base: Optional[Mapping[str, str]] = None) -> dict:
    """The environment of the child: SpineMetSegLib importable, output unbuffered so progress arrives live, and
    UTF-8 everywhere (the reader decodes UTF-8; a Windows child would otherwise write the console code page)."""
    env = dict(os.environ if base is None else base)
    paths = [str(LIBRARY_PARENT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONUTF8"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def popen_options(os_name: str = os.name) -> dict:
    """How the child is started so that its whole tree can be stopped: its own session on POSIX (one process
    group to signal), its own process group and no console window on Windows."""
    if os_name == "nt":
        return {"creationflags": CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW}
    return {"start_new_session": True}


def stop_process_tree(process: subprocess.Popen, os_name: str = os.name) -> None:
    """Ask ``process`` and everything it started to stop: SIGTERM to its process group (POSIX, started with
    ``popen_options``), ``taskkill /T /F`` (Windows)."""
    if os_name == "nt":
        subprocess.run(["taskkill", "/PID", str(process.pid), "/T", "/F"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, creationflags=CREATE_NO_WINDOW, check=False)
        return
    _signal_group(process.pid, signal.SIGTERM)


def _signal_group(group_id: int, signal_number: int) -> None:
    try:
        os.killpg(group_id, signal_number)
    except (ProcessLookupError, PermissionError):
        pass  # the whole group has already ended


class SubprocessRunner:
    """A ``ProcessRunner`` on ``subprocess.Popen`` with a reader thread."""

    def __init__(self, command: Optional[Sequence[str]] = None, env: Optional[Mapping[str, str]] = None,
                 cancel_grace_s: float = CANCEL_GRACE_S):
        self.command = list(command) if command is not None else spinemetseg_command()
        self.env = child_environment(env)
        self.cancel_grace_s = cancel_grace_s
        self._process: Optional[subprocess.Popen] = None
        self._reader: Optional[threading.Thread] = None
        self.cancelled = False

    @property
    def running(self) -> bool:
        return self._process is not None and self.poll() is None

    def start(self, args: Sequence[str], on_line: LineCallback) -> None:
        if self.running:
            raise RuntimeError("this runner is already running a process")
        self.cancelled = False
        self._process = subprocess.Popen(
            [*self.command, *[str(a) for a in args]],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            env=self.env,
            **popen_options(),
        )
        self._reader = threading.Thread(target=self._read, args=(self._process, on_line), daemon=True)
        self._reader.start()

    @staticmethod
    def _read(process: subprocess.Popen, on_line: LineCallback) -> None:
        for line in process.stdout:
            on_line(line.rstrip("\r\n"))
        process.stdout.close()

    def poll(self) -> Optional[int]:
        if self._process is None:
            return None
        code = self._process.poll()
        if code is None or (self._reader is not None and self._reader.is_alive()):
            return None
        return code

    def cancel(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self.cancelled = True
        stop_process_tree(self._process)
        if os.name != "nt":
            # Do not block the caller (the GUI) during the grace period: a timer kills what still runs then.
            killer = threading.Timer(self.cancel_grace_s, self._kill_group_if_running,
                                     args=(self._process, self._reader))
            killer.daemon = True
            killer.start()

    @staticmethod
    def _kill_group_if_running(process: subprocess.Popen, reader: Optional[threading.Thread]) -> None:
        # The launcher may be gone while its child runs on: the open output pipe (the reader still reading)
        # shows that some process of the group is alive, and keeps its group ID from being reused.
        if process.poll() is None or (reader is not None and reader.is_alive()):
            _signal_group(process.pid, signal.SIGKILL)

    def wait(self, timeout: Optional[float] = None) -> int:
        if self._process is None:
            raise RuntimeError("no process was started")
        code = self._process.wait(timeout=timeout)
        if self._reader is not None:
            self._reader.join(timeout)
        return code
