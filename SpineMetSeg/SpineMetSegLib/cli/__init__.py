"""The ``spinemetseg`` command line.

Each subcommand lives in a module of this package with a ``register(subcommands)`` function that adds its
parser and sets ``run`` (a function of the parsed arguments returning an exit code). Heavy imports (torch,
MONAI) happen inside ``run`` so ``spinemetseg --help`` stays fast.

Errors derived from ``SpineMetSegError`` are printed as ``error: <message>`` with exit code 2, never as a
traceback; Ctrl-C / SIGTERM exit with 130.
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import List, Optional

from .. import __version__
from ..errors import EXIT_CANCELLED, EXIT_USER_ERROR, CancelledError, SpineMetSegError
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


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return EXIT_USER_ERROR
    # SIGTERM (the Slicer Cancel button) unwinds like Ctrl-C, so every command cleans up its partial output.
    previous = signal.signal(signal.SIGTERM, _raise_cancelled)
    try:
        return int(args.run(args) or 0)
    except (KeyboardInterrupt, CancelledError):
        print("cancelled: nothing was written", file=sys.stderr)
        return EXIT_CANCELLED
    except SpineMetSegError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
