"""``spinemetseg segment``: segment metastases (and anatomy) in MRI volumes with a catalog model.

Usage::

    spinemetseg segment --t1 t1.nii.gz --stir stir.nii.gz --output seg.nii.gz
    spinemetseg segment --t2 dicom/t2/ --output seg.nrrd --model spinemetseg-default --device cpu --threads 4
    spinemetseg segment --t1 t1.nii.gz --output seg.nii.gz --weights my.safetensors --card my-card.json
    spinemetseg segment --t2 t2.nii.gz --output seg.nii.gz --min-lesion-probability 0   # keep every lesion

The label map lands on the grid of the first input given (in the order t1, t2, stir, then ``--input``);
metastasis is label 1. Progress as ``--progress`` says (default: a bar on a terminal, ``SPINEMETSEG-PROGRESS``
lines on standard output otherwise, which the Slicer logic reads), then a summary.
"""

from __future__ import annotations

import argparse
from typing import Any, Dict, Optional, Tuple

from ..device_names import DEVICE_HELP
from ..errors import SpineMetSegError
from ..models.modelcard import ModelCard
from ..progress import add_progress_option

SEQUENCE_OPTIONS = ("t1", "t2", "stir")


def register(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "segment",
        help="Segment metastases (and anatomy) in MRI volumes",
        description="Segment spinal metastases in MRI. Give any subset of sequences the model accepts; the "
        "label map is written on the grid of the first one (metastasis = 1).",
    )
    for name in SEQUENCE_OPTIONS:
        parser.add_argument(f"--{name}", metavar="PATH", help=f"{name.upper()} volume (file or DICOM folder)")
    parser.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="another sequence the model card names (repeatable)",
    )
    parser.add_argument("--output", required=True, metavar="PATH", help="label map to write (.nii.gz, .nrrd, ...)")
    add_model_options(parser)
    parser.add_argument("--not-ct", action="store_true",
                        help="the inputs are MRI even though one looks like CT: skip the CT check")
    parser.add_argument("--probabilities", metavar="PATH", help="also write the metastasis probability map")
    parser.add_argument("--lesions-csv", metavar="PATH", help="also write one row per lesion (volume, vertebra, ...)")
    add_progress_option(parser)
    parser.set_defaults(run=run)


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """The options that choose and run the model, shared by ``segment`` and ``batch``."""
    parser.add_argument("--model", metavar="NAME", help="catalog model (default: the default model)")
    parser.add_argument("--model-version", metavar="V", help="model version (default: the newest)")
    parser.add_argument("--weights", metavar="FILE", help="weights of a model not in the catalog (with --card)")
    parser.add_argument("--card", metavar="CARD.json", help="model card for --weights")
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.add_argument("--threads", type=int, metavar="N", help="CPU threads (default: all cores)")
    parser.add_argument("--tta", action="store_true", help="average over flipped copies (slower, smoother)")
    parser.add_argument(
        "--float32",
        action="store_true",
        help="no reduced precision (used on CUDA and on CPUs with native bfloat16): slower, same numbers everywhere",
    )
    parser.add_argument(
        "--min-lesion-probability",
        type=float,
        metavar="P",
        help="keep only lesions whose mean metastasis probability is at least P, 0 to 1 (default: the model "
        "card's value): lower finds more lesions and more false ones, higher fewer of both",
    )


def run(args: argparse.Namespace) -> int:
    from .. import inference
    from ..progress import progress_for

    inputs = _inputs(args)
    inference.check_output_paths(inputs, args.output, args.probabilities, args.lesions_csv,
                                 {"--weights": args.weights, "--card": args.card})
    card, model = model_from_args(args)
    result = inference.segment_files(
        inputs,
        args.output,
        card,
        model,
        probabilities_path=args.probabilities,
        lesions_csv=args.lesions_csv,
        device=args.device,
        tta=args.tta,
        mixed_precision=not args.float32,
        threads=args.threads,
        progress=progress_for(args.progress),
        ct_check=not args.not_ct,
    )
    print(summary(result, card, args.output))
    return 0


def with_min_lesion_probability(card: ModelCard, value: Optional[float]) -> ModelCard:
    """A copy of ``card`` whose post-processing keeps lesions of mean probability ``value`` (unchanged if None)."""
    if value is None:
        return card
    if not 0.0 <= value <= 1.0:
        raise SpineMetSegError(f"--min-lesion-probability must be between 0 and 1, got {value}.")
    return card.with_postprocessing(min_lesion_mean_probability=value)


def model_from_args(args: argparse.Namespace) -> Tuple[ModelCard, Any]:
    """(card with the options' overrides, network in eval mode) for ``add_model_options``' options."""
    from ..models.loader import load_model

    loaded = load_model(args.model, args.model_version, weights=args.weights, card=args.card)
    return with_min_lesion_probability(loaded.card, args.min_lesion_probability), loaded.network


def _inputs(args: argparse.Namespace) -> Dict[str, str]:
    inputs = {name: getattr(args, name) for name in SEQUENCE_OPTIONS if getattr(args, name)}
    for item in args.input:
        name, separator, path = item.partition("=")
        if not separator or not name or not path:
            raise SpineMetSegError(f"--input takes NAME=PATH, got {item!r}.")
        inputs[name.strip().lower()] = path
    if not inputs:
        raise SpineMetSegError("No input volume: give at least one of --t1, --t2, --stir.")
    return inputs


def summary(result: Any, card: ModelCard, output: str) -> str:
    """The few lines a user reads after a run: model, lesions, time per stage, the file written."""
    volumes = sorted(result.lesion_volumes_ml, reverse=True)
    listed = ", ".join(f"{v:.2f}" for v in volumes[:10]) + (", ..." if len(volumes) > 10 else "")
    timing = ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in result.timings.items())
    lines = [
        f"model: {card.name} {card.version} on {result.device} ({result.batch_size} window(s) at a time)",
        f"lesions: {len(volumes)}" + (f", {sum(volumes):.2f} ml in all ({listed} ml)" if volumes else ""),
        f"time: {timing}; total {sum(result.timings.values()):.1f} s",
        f"wrote {output}",
    ]
    return "\n".join(lines)
