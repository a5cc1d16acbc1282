"""``spinemetseg batch-merge``: one cohort table and summary from the output folders of several batch shards.

Usage::

    spinemetseg batch-merge results/shard-1 results/shard-2 --output results/all

Writes ``lesions.csv``, ``cases.csv``, ``failures.csv``, ``summary.json`` and ``summary.png`` in ``--output``
from the finished cases of every folder (their per-case files stay where they are; ``cases.csv`` names each
case's folder). A case failed in one shard but done in another counts as done.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "batch-merge",
        help="Merge the cohort tables and summaries of several batch output folders (shards)",
        description="Merge the outputs of 'spinemetseg batch --shard I/N' runs into one cohort table and summary.",
    )
    parser.add_argument("folders", nargs="+", metavar="FOLDER", help="output folders of batch runs")
    parser.add_argument("--output", required=True, metavar="DIR", help="folder for the merged tables (created)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..inference import batch

    summary = batch.merge(args.folders, args.output)
    print(f"cases done: {summary['cases_done']}, failed: {summary['cases_failed']}, lesions: {summary['lesions']}")
    print(f"wrote {Path(args.output) / batch.COHORT_LESIONS}, {batch.CASES_TABLE}, {batch.FAILURES_TABLE}, "
          f"{batch.SUMMARY_JSON}, {batch.SUMMARY_PNG}")
    return 1 if summary["cases_failed"] else 0
