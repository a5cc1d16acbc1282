"""The ``spinemetseg`` command line.

Each subcommand lives in a module of this package with a ``register(subcommands)`` function that adds its
parser and sets ``run`` (a function of the parsed arguments returning an exit code). Heavy imports (torch,
MONAI) happen inside ``run`` so ``spinemetseg --help`` stays fast.

Errors derived from ``SpineMetSegError`` are printed as ``error: <message>`` with exit code 2, never as a
traceback; Ctrl-C / SIGTERM exit with 130; any other error prints one ``error:`` line naming the log file
that holds its traceback (``$SPINEMETSEG_HOME/logs``) and exits with 1.

Warnings from the library go through Python ``logging`` (logger ``SpineMetSegLib``), which ``main`` configures
once: ``warning: <message>`` lines on standard error. Progress is not logged: long commands take ``--progress``
(``SpineMetSegLib.progress``).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import List, Optional

from .. import __version__
from ..errors import EXIT_CANCELLED, EXIT_UNEXPECTED, EXIT_USER_ERROR, CancelledError, SpineMetSegError
from . import batch, batch_merge, dataset, demo, evaluate, lesions, models, phantom, plan, segment, train

SUBCOMMANDS = (demo, segment, evaluate, lesions, plan, phantom, dataset, models, train, batch, batch_merge)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spinemetseg",
        description="Segment spinal metastases in MRI, measure them, and evaluate segmentations.",
        epilog="Run 'spinemetseg COMMAND --help' for a command's options. Start with 'spinemetseg demo'.",
    )
    parser.add_argument("--version", action="version", version=f"spinemetseg {__version__}")
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.register(subcommands)
    return parser


def _raise_cancelled(signum, frame):  # noqa: ARG001 - signal handler signature
    raise CancelledError("cancelled by signal")


class _StderrHandler(logging.StreamHandler):
    """A handler that writes to the current ``sys.stderr`` (which a test or a redirect may have replaced)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # logging.StreamHandler.__init__ sets it; the property always follows sys.stderr
        pass

    def emit(self, record: logging.LogRecord) -> None:
        from ..progress import close_bars

        close_bars()  # a warning in the middle of a bar drawn in place starts on a line of its own
        super().emit(record)


class _LevelFormatter(logging.Formatter):
    """``warning: <message>``: the same form as the command line's own ``error:`` lines."""

    def format(self, record: logging.LogRecord) -> str:
        record.levelprefix = record.levelname.lower()
        return super().format(record)


def configure_logging(level: int = logging.WARNING) -> None:
    """Send the library's log records at ``level`` and above to standard error as ``<level>: <message>``; once."""
    logger = logging.getLogger("SpineMetSegLib")
    if not any(isinstance(handler, _StderrHandler) for handler in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(_LevelFormatter("%(levelprefix)s: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(level)


def main(argv: Optional[List[str]] = None) -> int:
    from ..progress import close_bars

    configure_logging()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return EXIT_USER_ERROR
    # SIGTERM (the Slicer Cancel button) unwinds like Ctrl-C, so every command cleans up its partial output.
    previous = signal.signal(signal.SIGTERM, _raise_cancelled)
    try:
        try:
            return int(args.run(args) or 0)
        finally:
            close_bars()  # what follows (an error, the shell prompt) starts on a line of its own
    except (KeyboardInterrupt, CancelledError) as error:
        print(f"cancelled: {getattr(error, 'outcome', 'nothing was written')}", file=sys.stderr)
        return EXIT_CANCELLED
    except SpineMetSegError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as error:  # noqa: BLE001 - the last line of defence: a message and a log, never a traceback
        return _report_unexpected(error, argv)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _report_unexpected(error: Exception, argv: Optional[List[str]]) -> int:
    """Print one ``error:`` line for an error no check foresaw, keep the traceback in a log; return the exit code.

    A file-system error (a file that vanished, no permission) is the user's to fix: exit 2. Anything else is a
    bug: exit 1, with the log to report.
    """
    from ..errorlog import log_traceback

    log = log_traceback(" ".join(["spinemetseg", *(argv if argv is not None else sys.argv[1:])]))
    where = f"the full traceback is in {log}" if log else "no log file could be written"
    if isinstance(error, MemoryError):
        print(f"error: out of memory. Close other programs, use a smaller volume or a machine with more memory "
              f"({where}).", file=sys.stderr)
        return EXIT_UNEXPECTED
    if isinstance(error, OSError):
        named = f" {error.filename}" if error.filename else ""
        print(f"error: cannot access{named}: {error.strerror or error}. Check the path and its permissions "
              f"({where}).", file=sys.stderr)
        return EXIT_USER_ERROR
    print(f"error: unexpected {type(error).__name__}: {error}. This is a bug in spinemetseg, not a problem "
          f"with your data as far as it checked; {where}. Please report it with that file.", file=sys.stderr)
    return EXIT_UNEXPECTED


if __name__ == "__main__":
    sys.exit(main())
