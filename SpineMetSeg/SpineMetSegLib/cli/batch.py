"""``spinemetseg batch``: segment a folder of DICOM studies or a CSV manifest of cases, the model loaded once.

Usage::

    spinemetseg batch export/ --output results/ --dicom-seg          # every study under export/, any nesting
    spinemetseg batch cohort.csv --output results/                    # case,t1,t2,stir: files or series folders
    spinemetseg batch export/ --output results/shard-3 --shard 3/8    # the 3rd of 8 parts (cluster array job)
    spinemetseg batch export/ --output results/ --redo                # segment done cases again

Per case ``results/cases/<case>/``: ``labels.nii.gz``, ``lesions.csv``, ``case.json`` (series chosen and why,
timings, model), with ``--dicom-seg`` ``segmentation.dcm``. For the cohort: ``lesions.csv`` (one row per lesion),
``cases.csv``, ``failures.csv``, ``summary.json``, ``summary.png``. A rerun skips the cases whose outputs are
complete. Exit status: 0 when every case is done, 1 when any failed (listed in ``failures.csv``), 2 for an
unusable input or model, 130 when cancelled (finished cases are kept; the same command continues).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..errors import EXIT_CANCELLED, CancelledError, SpineMetSegError
from ..progress import add_progress_option
from .segment import add_model_options, model_from_args

EXIT_CASES_FAILED = 1


def register(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "batch",
        help="Segment a folder of DICOM studies or a CSV manifest of cases",
        description="Segment many cases with the model loaded once. INPUT is a folder of DICOM studies (any "
        "nesting; one case per StudyInstanceUID; the sagittal T1, T2 and STIR series are recognised from the "
        "tags) or a CSV manifest with the columns case,t1,t2,stir (files or DICOM series folders).",
    )
    parser.add_argument("input", metavar="INPUT", help="folder of DICOM studies, or a CSV manifest")
    parser.add_argument("--output", required=True, metavar="DIR", help="output folder (created if needed)")
    parser.add_argument("--dicom-seg", action="store_true",
                        help="also write a DICOM SEG per case, referencing its first input series (needs highdicom)")
    parser.add_argument("--redo", action="store_true", help="segment again the cases already done")
    parser.add_argument("--shard", metavar="I/N",
                        help="process only the I-th of N parts of the cases (e.g. a Slurm array task)")
    add_model_options(parser)
    add_progress_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..inference import batch, batch_cases
    from ..progress import progress_for

    source = Path(args.input)
    if not source.exists():
        raise SpineMetSegError(f"The input {source} does not exist: give a folder of DICOM studies or a CSV manifest.")
    part = batch_cases.parse_shard(args.shard) if args.shard else None
    if args.dicom_seg:
        from ..dicom.seg import require_highdicom

        require_highdicom()
    started = time.perf_counter()
    card, model = model_from_args(args)
    print(f"model: {card.name} {card.version}, loaded once in {time.perf_counter() - started:.1f} s", flush=True)
    if source.is_dir():
        cases = batch_cases.cases_from_dicom(source, card.inputs, card.min_inputs)
    elif source.suffix.lower() == ".csv":
        cases = batch_cases.cases_from_manifest(source)
    else:
        raise SpineMetSegError(f"The input {source} is neither a folder of DICOM studies nor a .csv manifest.")
    found = len(cases)
    if part:
        cases = batch_cases.shard(cases, *part)
    print(f"cases: {len(cases)}" + (f" (part {part[0]} of {part[1]}; {found} in all)" if part else ""), flush=True)
    try:
        report = batch.run_batch(
            cases, args.output, card, model, device=args.device, tta=args.tta, mixed_precision=not args.float32,
            threads=args.threads, dicom_seg=args.dicom_seg, redo=args.redo, progress=progress_for(args.progress),
        )
    except (KeyboardInterrupt, CancelledError):
        print(f"cancelled: the case in progress was removed; finished cases are kept in {args.output}. "
              "Run the same command again to continue.", file=sys.stderr)
        return EXIT_CANCELLED
    print(f"done: {len(report.done)}, already done: {len(report.skipped)}, failed: {len(report.failed)} "
          f"in {report.seconds:.1f} s")
    for name, error in report.failed:
        print(f"failed: {name}: {error}")
    print(f"wrote {Path(args.output) / batch.COHORT_LESIONS}, {batch.CASES_TABLE}, {batch.FAILURES_TABLE}, "
          f"{batch.SUMMARY_JSON}, {batch.SUMMARY_PNG}")
    return EXIT_CASES_FAILED if report.failed else 0
