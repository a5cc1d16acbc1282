"""``spinemetseg evaluate``: Compare a segmentation with a reference (Dice, sensitivity, HD95, lesion-wise detection) (arrives with issue 3)."""

from __future__ import annotations

import argparse

from ..errors import SpineMetSegError


def register(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser("evaluate", help="Compare a segmentation with a reference (Dice, sensitivity, HD95, lesion-wise detection) (not available yet)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    raise SpineMetSegError("'spinemetseg evaluate' is not available in this version yet.")
