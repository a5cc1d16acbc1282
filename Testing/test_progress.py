"""One progress protocol: events drawn as protocol lines or as a human bar; warnings through ``logging``."""

from __future__ import annotations

import io
import logging

from progress_checks import bar_events, check_bar_shows_the_protocol, check_protocol

from SpineMetSegLib.progress import ProgressBar, ProgressReporter, close_bars, no_progress, progress_for


class Terminal(io.StringIO):
    """A text stream that says it is a terminal, as standard error is when a person runs the command."""

    def isatty(self) -> bool:
        return True


EVENTS = [("read", 0.0, "t1.nii.gz"), ("read", 3.0, ""), ("read", 7.0, ""), ("inference", 40.0, "window 1/3"),
          ("inference", 40.4, "window 2/3"), ("inference", 80.0, "window 3/3"), ("write", 99.6, ""),
          ("done", 100.0, "wrote seg.nii.gz")]


def play(callback) -> None:
    for event in EVENTS:
        callback(*event)


def test_a_bar_in_a_log_draws_the_protocols_events_a_line_per_5_percent_or_stage():
    lines, log = io.StringIO(), io.StringIO()
    play(ProgressReporter(lines))
    play(ProgressBar(log))

    protocol = check_protocol(lines.getvalue())
    bar = check_bar_shows_the_protocol(log.getvalue(), protocol)

    assert [(stage, percent) for stage, percent, _ in protocol] == [
        ("read", 0), ("read", 3), ("read", 7), ("inference", 40), ("inference", 40), ("inference", 80),
        ("write", 100), ("done", 100)]  # 40.4 and 99.6 rounded as the line prints them
    assert [(stage, percent) for stage, percent, _ in bar] == [
        ("read", 0), ("read", 7), ("inference", 40), ("inference", 80), ("write", 100), ("done", 100)]
    assert log.getvalue().splitlines()[-1] == f"done [{'#' * 30}] 100% wrote seg.nii.gz"


def test_a_bar_on_a_terminal_redraws_in_place_and_ends_its_line_when_done():
    terminal = Terminal()
    play(ProgressBar(terminal))
    text = terminal.getvalue()

    assert text.count("\n") == 1 and text.endswith("\n")  # one line, redrawn with carriage returns
    assert [(s, p) for s, p, _ in bar_events(text)] == [
        ("read", 0), ("read", 3), ("read", 7), ("inference", 40), ("inference", 80), ("write", 100), ("done", 100)]
    # A shorter line covers the longer one drawn before it.
    drawn = text.split("\r")
    assert all(len(later.rstrip("\n")) >= len(earlier) for earlier, later in zip(drawn[1:], drawn[2:]))


def test_close_bars_ends_a_line_left_open_so_an_error_starts_on_its_own_line():
    terminal = Terminal()
    bar = ProgressBar(terminal)
    bar("download", 42, "m 1.0/2.4 MB")
    close_bars()
    terminal.write("error: the connection broke\n")

    assert terminal.getvalue().splitlines()[-1] == "error: the connection broke"
    close_bars()  # nothing left open: writes nothing
    assert terminal.getvalue().endswith("broke\n")


def test_progress_choices_pick_the_renderer():
    terminal, pipe, out = Terminal(), io.StringIO(), io.StringIO()

    assert isinstance(progress_for("auto", stdout=out, stderr=terminal), ProgressBar)
    assert isinstance(progress_for("auto", stdout=out, stderr=pipe), ProgressReporter)
    assert isinstance(progress_for("lines", stdout=out, stderr=terminal), ProgressReporter)
    assert isinstance(progress_for("bar", stdout=out, stderr=pipe), ProgressBar)
    assert progress_for("none") is no_progress


def test_a_library_warning_reaches_standard_error_as_a_warning_line(capsys):
    from SpineMetSegLib.cli import configure_logging
    from SpineMetSegLib.inference import devices

    configure_logging()
    configure_logging()  # configured once: a second call adds no second handler
    devices.warn_to_stderr("out of memory on cuda: retrying with 2 window(s) at a time")

    assert capsys.readouterr().err == "warning: out of memory on cuda: retrying with 2 window(s) at a time\n"
    assert logging.getLogger("SpineMetSegLib").getEffectiveLevel() == logging.WARNING


def test_a_warning_during_a_bar_on_a_terminal_starts_on_its_own_line(monkeypatch):
    from SpineMetSegLib.cli import configure_logging
    from SpineMetSegLib.inference import devices

    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    configure_logging()
    bar = ProgressBar()  # draws on standard error, the terminal
    bar("inference", 40, "window 1/3")
    devices.warn_to_stderr("out of memory on cuda: retrying with 2 window(s) at a time")
    bar("inference", 80, "window 3/3")
    bar.close()

    lines = terminal.getvalue().split("\n")
    assert lines[1] == "warning: out of memory on cuda: retrying with 2 window(s) at a time"
    assert lines[0].startswith("\rinference [") and lines[2].startswith("\rinference [")
