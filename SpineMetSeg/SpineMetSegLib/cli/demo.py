"""``spinemetseg demo``: Run the main job end to end on a synthetic case with the embedded default model (arrives with issue 5)."""

from __future__ import annotations

import argparse

from ..errors import SpineMetSegError


def register(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser("demo", help="Run the main job end to end on a synthetic case with the embedded default model (not available yet)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    raise SpineMetSegError("'spinemetseg demo' is not available in this version yet.")
