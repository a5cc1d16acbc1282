"""``spinemetseg segment``: Segment metastases (and anatomy) in MRI volumes (arrives with issue 5)."""

from __future__ import annotations

import argparse

from ..errors import SpineMetSegError


def register(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser("segment", help="Segment metastases (and anatomy) in MRI volumes (not available yet)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    raise SpineMetSegError("'spinemetseg segment' is not available in this version yet.")
