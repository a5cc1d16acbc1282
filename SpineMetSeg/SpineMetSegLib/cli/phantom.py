"""``spinemetseg phantom``: write one synthetic spine MRI case with exact ground truth."""

from __future__ import annotations

import argparse

from ..errors import SpineMetSegError


def register(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser("phantom", help="Write a synthetic spine MRI case with metastases")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    raise SpineMetSegError("'spinemetseg phantom' is not available in this version yet.")
