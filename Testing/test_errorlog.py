"""An unexpected error: one line for the user, the whole traceback with the command line in a log file."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from SpineMetSegLib.errorlog import log_traceback
from SpineMetSegLib.errors import EXIT_UNEXPECTED


def test_the_traceback_and_the_command_go_to_a_log_in_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("SPINEMETSEG_HOME", str(tmp_path / "home"))
    try:
        {}["missing key"]
    except KeyError:
        path = log_traceback("spinemetseg segment --t2 a.nii.gz")
    assert path is not None and path.parent == tmp_path / "home" / "logs"
    text = path.read_text(encoding="utf-8")
    assert "command: spinemetseg segment --t2 a.nii.gz" in text
    assert "Traceback" in text and "KeyError: 'missing key'" in text and "test_errorlog.py" in text


def test_an_unwritable_home_puts_the_log_in_the_temporary_folder(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.write_text("a file where the home folder should be")  # its logs folder cannot be made
    monkeypatch.setenv("SPINEMETSEG_HOME", str(home))
    try:
        raise ValueError("boom")
    except ValueError:
        path = log_traceback("spinemetseg demo")
    try:
        assert path is not None and path.parent == Path(tempfile.gettempdir())
        assert "ValueError: boom" in path.read_text(encoding="utf-8")
    finally:
        if path is not None:
            path.unlink()


def test_an_unexpected_error_prints_one_line_and_logs_the_traceback(tmp_path):
    # A real defect, made on purpose: a subcommand whose code divides by zero, run by the real main().
    script = (
        "import sys\n"
        "from SpineMetSegLib import cli\n"
        "def register(subcommands):\n"
        "    subcommands.add_parser('broken').set_defaults(run=lambda args: 1 // 0)\n"
        "cli.SUBCOMMANDS = cli.SUBCOMMANDS + (sys.modules[__name__],)\n"
        "sys.exit(cli.main(['broken']))\n"
    )
    home = tmp_path / f"home-{uuid.uuid4().hex[:6]}"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ, "SPINEMETSEG_HOME": str(home)}, timeout=120)
    assert done.returncode == EXIT_UNEXPECTED
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unexpected ZeroDivisionError")
    logs = list((home / "logs").glob("error-*.log"))
    assert len(logs) == 1 and str(logs[0]) in lines[0]
    logged = logs[0].read_text()
    assert "Traceback" in logged and "in <lambda>" in logged and "ZeroDivisionError" in logged
    assert "command: spinemetseg broken" in logged
