"""The child-process runner as it runs inside Slicer: behind a launcher, cancellable, in UTF-8, without a console.

Inside Slicer, ``PythonSlicer`` is a launcher (CTKAppLauncher) that starts the real Python as its own child and
ignores signals. These tests put a stand-in launcher with exactly that behaviour in front of the real
``spinemetseg`` command line and check what a user relies on: Cancel stops the real child, the command line still
gets its SIGTERM (exit code 130) and leaves no partial output, and a child that ignores Cancel is killed with its
whole group after the grace period. No test bounds how long anything took.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest
from inference_fixtures import make_card, mri_like, seeded_network

from SpineMetSegLib.errors import EXIT_CANCELLED
from SpineMetSegLib.images import imageio
from SpineMetSegLib.models import weights
from SpineMetSegLib.mrml import process_runner
from SpineMetSegLib.mrml.process_runner import SubprocessRunner
from SpineMetSegLib.progress import parse_progress

HANG_GUARD_S = 600  # a wait that only ends a hung run; no test asserts an upper bound on how long anything took
posix_only = pytest.mark.skipif(os.name == "nt", reason="process groups and SIGTERM are POSIX")

# A stand-in for CTKAppLauncher: ignores SIGTERM, starts the real Python as its child (with the default SIGTERM
# handling a freshly started program has), writes the child's PID, and exits with the child's exit code.
LAUNCHER = textwrap.dedent("""
    import signal, subprocess, sys
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen([sys.executable, *sys.argv[2:]],
                             preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))
    with open(sys.argv[1], "w") as pid_file:
        pid_file.write(str(child.pid))
    sys.exit(child.wait())
""")


def launcher_command(tmp_path: Path) -> tuple:
    """The runner's command through the stand-in launcher, and the file where the real child's PID lands."""
    launcher = tmp_path / "PythonSlicer.py"
    launcher.write_text(LAUNCHER)
    pid_file = tmp_path / "child.pid"
    return [sys.executable, str(launcher), str(pid_file)], pid_file


def read_pid(pid_file: Path, timeout_s: float = 30.0) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pid_file.exists() and pid_file.read_text().strip():
            return int(pid_file.read_text())
        time.sleep(0.02)
    raise AssertionError("the stand-in launcher never started its child")


def is_running(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (ended, waiting for its new parent to reap it) does not count."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            return False
    return True


def wait_for_line(lines: queue.Queue, accept, timeout_s: float = 120.0) -> list:
    seen = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.1)
        except queue.Empty:
            continue
        seen.append(line)
        if accept(line):
            return seen
    raise AssertionError("expected output never came:\n" + "\n".join(seen[-20:]))


@pytest.mark.slow
@posix_only
def test_cancel_behind_a_launcher_stops_the_real_child_which_cleans_up(tmp_path):
    folder = tmp_path / "case"
    folder.mkdir()
    imageio.write_image(mri_like((64, 192, 192), spacing=(3.0, 1.0, 1.0)), folder / "t1.nrrd", compress=False)
    card = make_card(patch_size=[32, 32])
    (folder / "card.json").write_text(json.dumps(card.to_dict()))
    weights.save_state_dict(seeded_network(card).state_dict(), folder / "weights.safetensors")
    before = sorted(p.name for p in folder.iterdir())
    command, pid_file = launcher_command(tmp_path)
    # The grace period is made long, so however loaded the machine, only the child's own clean exit can end it (the
    # kill after the grace period is the next test's).
    runner = SubprocessRunner(command=[*command, "-m", "SpineMetSegLib.cli"], cancel_grace_s=HANG_GUARD_S)
    lines: queue.Queue = queue.Queue()
    runner.start(["segment", "--t1", folder / "t1.nrrd", "--output", folder / "seg.nii.gz",
                  "--probabilities", folder / "prob.nii.gz", "--device", "cpu", "--threads", "1",
                  "--weights", folder / "weights.safetensors", "--card", folder / "card.json"], lines.put)
    real_child = read_pid(pid_file)
    try:
        wait_for_line(lines, lambda line: (parse_progress(line) is not None and parse_progress(line).stage ==
                                           "inference" and parse_progress(line).message.startswith("window")))
        runner.cancel()
        code = runner.wait(timeout=HANG_GUARD_S)
    finally:
        if is_running(real_child):
            os.kill(real_child, 9)

    assert not is_running(real_child)
    assert code == EXIT_CANCELLED  # the real command line got SIGTERM and exited cleanly (the launcher forwards it)
    assert runner.poll() == EXIT_CANCELLED  # all output delivered: the pipe is closed
    assert sorted(p.name for p in folder.iterdir()) == before


@pytest.mark.slow
@posix_only
def test_a_child_that_ignores_cancel_is_killed_after_the_grace_period(tmp_path):
    command, pid_file = launcher_command(tmp_path)
    runner = SubprocessRunner(command=command, cancel_grace_s=1.0)
    lines: queue.Queue = queue.Queue()
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready'); time.sleep(600)"
    runner.start(["-c", stubborn], lines.put)
    real_child = read_pid(pid_file)
    try:
        wait_for_line(lines, lambda line: line == "ready", timeout_s=30)
        cancelled_at = time.monotonic()
        runner.cancel()
        code = runner.wait(timeout=HANG_GUARD_S)
        waited = time.monotonic() - cancelled_at
        still_running = is_running(real_child)
    finally:
        if is_running(real_child):
            os.kill(real_child, 9)
    assert not still_running
    assert code == -signal.SIGKILL  # the whole group was killed: the launcher too, which ignores SIGTERM as well
    assert waited >= 1.0  # not before the grace period (a lower bound: load cannot make it fail)


def test_non_ascii_output_arrives_intact_whatever_the_console_encoding(tmp_path):
    runner = SubprocessRunner(command=[sys.executable], env={**os.environ, "PYTHONIOENCODING": "cp1252"})
    lines: queue.Queue = queue.Queue()
    runner.start(["-c", "print('Wirbelkörper ≥ 5 mm ✓')"], lines.put)
    assert runner.wait(timeout=30) == 0
    assert lines.get(timeout=5) == "Wirbelkörper ≥ 5 mm ✓"


def test_child_environment_is_utf8_unbuffered_and_finds_the_library():
    env = process_runner.child_environment({"PYTHONPATH": "/elsewhere", "PYTHONIOENCODING": "cp1252"})
    assert env["PYTHONUTF8"] == "1"
    assert env["PYTHONIOENCODING"] == "utf-8"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PYTHONPATH"].split(os.pathsep) == [str(process_runner.LIBRARY_PARENT), "/elsewhere"]


def test_windows_children_get_no_console_window_and_their_own_process_group():
    flags = process_runner.popen_options("nt")["creationflags"]
    assert flags & 0x08000000  # CREATE_NO_WINDOW (winbase.h)
    assert flags & 0x00000200  # CREATE_NEW_PROCESS_GROUP
    assert process_runner.popen_options("posix") == {"start_new_session": True}
