"""``spinemetseg models``: list, download, import, locate and remove models.

Usage::

    spinemetseg models list                      # name, version, sequences, size, where it is; * = newest
    spinemetseg models download NAME [--version V] [--progress auto|bar|lines|none]
    spinemetseg models import FILE               # a catalog model's file copied by hand (no internet)
    spinemetseg models import FILE --card CARD.json   # a model you trained, with its card
    spinemetseg models path [NAME] [--version V] # prints the weights file's path
    spinemetseg models remove NAME [--version V]

``SPINEMETSEG_HOME`` sets the cache folder, ``SPINEMETSEG_CATALOG`` another catalog file. A download shows its
progress as ``--progress`` says (``SpineMetSegLib.progress``): on a terminal a bar on standard error, so standard
output gets only the results (a path, the table); with ``--progress lines`` protocol lines on standard output
before the path, which is always the last line.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..progress import add_progress_option

MEGABYTE = 1024 * 1024


def register(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "models", help="List, download, import, locate and remove models",
        description="Manage the segmentation models: the catalog's models, downloads in the cache "
                    "($SPINEMETSEG_HOME, default ~/.spinemetseg) and models imported by hand.")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    parser.set_defaults(run=_usage(parser))

    listing = actions.add_parser("list", help="List the models, their versions and whether they are here")
    listing.add_argument("--json", action="store_true", help="print the list as JSON")
    listing.set_defaults(run=run_list)

    fetch = actions.add_parser("download", help="Download a model into the cache (resumes an interrupted one)")
    fetch.add_argument("name", nargs="?", help="model name (default: the default model)")
    fetch.add_argument("--version", help="model version (default: the newest)")
    fetch.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                       help="give up on a silent server after this long (default: 30)")
    fetch.add_argument("--retries", type=int, default=None, help="attempts after the first one fails (default: 3)")
    add_progress_option(fetch)
    fetch.set_defaults(run=run_download)

    bring = actions.add_parser("import", help="Put a model file you copied by hand, or trained, into the cache")
    bring.add_argument("file", help="the weights file (.safetensors, .pt/.pth, or the catalog's .zip)")
    bring.add_argument("--card", help="model card (JSON) of a model you trained; without it FILE must be a "
                                      "catalog model's file")
    bring.add_argument("--model", dest="name", help="the catalog model FILE should be (checked by sha256)")
    bring.add_argument("--version", help="with --model: the version FILE should be")
    bring.set_defaults(run=run_import)

    locate = actions.add_parser("path", help="Print the path of a model's weights file")
    locate.add_argument("name", nargs="?", help="model name (default: the default model)")
    locate.add_argument("--version", help="model version (default: the newest)")
    locate.set_defaults(run=run_path)

    remove = actions.add_parser("remove", help="Delete a downloaded or imported model from the cache")
    remove.add_argument("name", help="model name")
    remove.add_argument("--version", help="only this version (default: every version in the cache)")
    remove.set_defaults(run=run_remove)


def _usage(parser: argparse.ArgumentParser):
    def run(args: argparse.Namespace) -> int:
        from ..errors import EXIT_USER_ERROR

        parser.print_help(sys.stderr)
        return EXIT_USER_ERROR

    return run


def _status(card) -> str:
    from ..models import cache

    if card.is_embedded:
        return "embedded"
    if not cache.is_present(card):
        return "not downloaded"
    return "imported" if card.origin == "imported" else "downloaded"


def _size(card) -> str:
    return f"{card.file.size / MEGABYTE:.1f} MB"


def run_list(args: argparse.Namespace) -> int:
    from ..models import cache
    from ..models.catalog import load_catalog

    catalog = load_catalog()  # an imported model the catalog overrides is logged: "warning: ..." on stderr
    cards = [card for name in catalog.names() for card in catalog.versions(name)]
    if args.json:
        rows = [{"name": card.name, "version": card.version, "title": card.title, "inputs": list(card.inputs),
                 "size": card.file.size, "status": _status(card), "newest": catalog.is_newest(card),
                 "default": card.name == catalog.default_name, "path": str(cache.model_path(card))}
                for card in cards]
        print(json.dumps(rows, indent=2))
        return 0
    table = [("", "NAME", "VERSION", "INPUTS", "SIZE", "STATUS")]
    table += [("*" if catalog.is_newest(card) else "", card.name, card.version, ",".join(card.inputs), _size(card),
               _status(card)) for card in cards]
    widths = [max(len(row[column]) for row in table) for column in range(len(table[0]))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    print(f"\n* newest version, used when no --version is given. Default model: {catalog.default_name}. "
          f"Cache: {cache.cache_dir()}")
    return 0


def run_download(args: argparse.Namespace) -> int:
    from ..models import cache
    from ..models.catalog import load_catalog
    from ..models.download import DEFAULT_RETRIES, DEFAULT_TIMEOUT_S, download_model
    from ..progress import progress_for

    progress = progress_for(args.progress)
    card = load_catalog().get(args.name, args.version)
    if card.is_embedded or cache.is_present(card):
        where = "embedded in the extension" if card.is_embedded else "already downloaded"
        print(f"{card} is {where}.", file=sys.stderr)
    path = download_model(
        card,
        progress=progress,
        timeout_s=DEFAULT_TIMEOUT_S if args.timeout is None else args.timeout,
        retries=DEFAULT_RETRIES if args.retries is None else args.retries,
    )
    progress("done", 100, f"{card} is in the cache")
    print(path)
    return 0


def run_import(args: argparse.Namespace) -> int:
    from ..errors import SpineMetSegError
    from ..models import cache
    from ..models.catalog import import_model

    if args.card and args.name:
        raise SpineMetSegError("Give either --card (a model you trained) or --model (a catalog model), not both.")
    card = import_model(args.file, args.card, name=args.name, version=args.version)
    if card.is_embedded:
        print(f"{args.file} is the file of {card}, which is embedded in the extension: nothing to import.",
              file=sys.stderr)
    else:
        print(f"imported {card}", file=sys.stderr)
    print(cache.model_path(card))
    return 0


def run_path(args: argparse.Namespace) -> int:
    from ..models.catalog import load_catalog, model_file

    print(model_file(load_catalog().get(args.name, args.version)))
    return 0


def run_remove(args: argparse.Namespace) -> int:
    from ..models.catalog import remove_model

    for card in remove_model(args.name, args.version):
        print(f"removed {card}")
    return 0
