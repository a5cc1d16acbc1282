"""``spinemetseg lesions``: Measure each lesion of a segmentation (size, host vertebra, distance to the canal) (arrives with issue 3)."""

from __future__ import annotations

import argparse

from ..errors import SpineMetSegError


def register(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser("lesions", help="Measure each lesion of a segmentation (size, host vertebra, distance to the canal) (not available yet)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    raise SpineMetSegError("'spinemetseg lesions' is not available in this version yet.")
