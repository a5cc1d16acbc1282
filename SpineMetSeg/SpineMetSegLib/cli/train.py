"""``spinemetseg train``: Train or fine-tune a model on synthetic and/or your own cases (arrives with issue 6)."""

from __future__ import annotations

import argparse

from ..errors import SpineMetSegError


def register(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser("train", help="Train or fine-tune a model on synthetic and/or your own cases (not available yet)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    raise SpineMetSegError("'spinemetseg train' is not available in this version yet.")
