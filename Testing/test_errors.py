"""Errors the user can act on: one family the command line turns into one ``error:`` line and exit 2; a cancel
exits 130 and says what was left; the exit codes scripts rely on."""

from __future__ import annotations

import pytest

from SpineMetSegLib.cli import main
from SpineMetSegLib.errors import (
    EXIT_CANCELLED,
    EXIT_UNEXPECTED,
    EXIT_USER_ERROR,
    CancelledError,
    DownloadError,
    GeometryError,
    ImageError,
    ModelError,
    SpineMetSegError,
)


def test_the_exit_codes_are_the_documented_ones():
    # As the README says: 1 for an error nobody foresaw (traceback in a log), 2 for a user error, 130 cancelled.
    assert (EXIT_UNEXPECTED, EXIT_USER_ERROR, EXIT_CANCELLED) == (1, 2, 130)


@pytest.mark.parametrize("error", [ImageError, GeometryError, ModelError, DownloadError, CancelledError])
def test_every_error_is_one_the_command_line_reports_as_a_user_error(error):
    assert issubclass(error, SpineMetSegError)


def test_a_cancel_says_what_was_left():
    assert CancelledError().outcome == "nothing was written"
    assert CancelledError("stopped", outcome="2 of 5 cases kept").outcome == "2 of 5 cases kept"


def test_an_input_that_is_not_there_is_one_error_line_and_exit_2(tmp_path, capsys):
    code = main(["segment", "--t2", str(tmp_path / "missing.nii.gz"), "--output", str(tmp_path / "seg.nii.gz")])
    err = capsys.readouterr().err
    assert code == EXIT_USER_ERROR
    assert err.startswith("error: ") and "missing.nii.gz" in err and "Traceback" not in err
    assert not (tmp_path / "seg.nii.gz").exists()
