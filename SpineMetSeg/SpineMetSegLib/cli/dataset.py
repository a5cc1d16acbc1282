"""``spinemetseg dataset``: bring public real spine MRI into case folders for training.

Usage::

    spinemetseg dataset import-vb fastcleverseg --output cases/     # a checkout, or its ImageDatasets/VBs folder
    spinemetseg dataset split                                        # the fixed training/tuning/validation split

``import-vb`` reads the vertebral-body sets VB2 and VB3 of JonathanRamos/fastcleverseg and writes one case folder
per distinct scan (image, ``vertebral_bodies.nii.gz``, ``case.json``); see ``SpineMetSegLib.data.vb_import``.
VB1 is refused: it is reserved as an external test set.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..progress import add_progress_option


def register(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "dataset",
        help="Import public real spine MRI (vertebral-body masks) as case folders",
        description="Import public real spine MRI with vertebral-body masks as case folders that "
        "'spinemetseg phantom --anatomy-from' and 'spinemetseg train --anatomy' read.",
    )
    actions = parser.add_subparsers(dest="dataset_action", metavar="ACTION")
    importer = actions.add_parser(
        "import-vb",
        help="Import VB2 and VB3 of the fastcleverseg repository",
        description="Read VB2 (sagittal T2) and VB3 (water-fat) of JonathanRamos/fastcleverseg and write one case "
        "folder per distinct scan. Byte-identical duplicates are imported once; VB1 is refused (reserved as an "
        "external test set).",
    )
    importer.add_argument("source", type=Path, help="a checkout of fastcleverseg, or its ImageDatasets/VBs folder")
    importer.add_argument("--output", type=Path, required=True, help="folder to write the case folders into")
    add_progress_option(importer)
    importer.set_defaults(run=run_import)
    split = actions.add_parser("split", help="Print the fixed split by subject",
                               description="Print the training, tuning and validation cases of the fixed split.")
    split.set_defaults(run=run_split)
    parser.set_defaults(run=lambda args: parser.print_help() or 2)


def run_import(args: argparse.Namespace) -> int:
    from ..data.split import load_split
    from ..data.vb_import import import_vb
    from ..progress import progress_for

    progress = progress_for(args.progress)
    cases = import_vb(args.source, args.output, progress=progress)
    progress("done", 100, f"{len(cases)} distinct scans in {args.output}")
    split = load_split()
    counts: dict = {}
    for case in cases:
        key = (case.name.split("_")[0].upper(), split.role(case.name) or "not in split")
        counts[key] = counts.get(key, 0) + 1
    print(f"imported {len(cases)} distinct scans into {args.output}")
    for (vb_set, role), count in sorted(counts.items()):
        print(f"  {vb_set} {role}: {count}")
    aligned = [f"{c.name} (offset {c.mask_offset})" for c in cases if c.mask_offset is not None]
    if aligned:
        print(f"  masks one slice longer than the image, aligned: {', '.join(aligned)}")
    return 0


def run_split(args: argparse.Namespace) -> int:  # noqa: ARG001 - the command takes no options
    from ..data.split import ROLES, load_split

    split = load_split()
    for role in ROLES:
        names = getattr(split, role)
        print(f"{role} ({len(names)}): {', '.join(names)}")
    return 0
