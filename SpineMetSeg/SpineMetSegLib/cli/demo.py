"""``spinemetseg demo``: the main job end to end on a synthetic case with the embedded default model.

Usage::

    spinemetseg demo                               # writes ./spinemetseg-demo
    spinemetseg demo --output /tmp/demo --seed 7

Generates a phantom case (sagittal T1, T2, STIR with metastases and exact truth), segments it with the default
model, compares the result with the truth and draws the overlay. Writes into ``--output``: ``case/`` (the
phantom's files), ``segmentation.nii.gz``, ``metrics.json`` and ``overlay.png``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ..device_names import DEVICE_HELP

DEFAULT_OUTPUT = "spinemetseg-demo"
# Clinical spine protocols are sagittal 2D stacks; that is what the default model is for.
DEMO_ACQUISITION = "sagittal2d"
SEQUENCES = ("t1", "t2", "stir")


def register(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "demo",
        help="Run the whole job on a synthetic case with the default model",
        description="Generate a synthetic spine MRI case, segment it with the embedded default model, compare "
        "with the truth (Dice, sensitivity) and draw an overlay picture.",
    )
    parser.add_argument("--output", default=DEFAULT_OUTPUT, metavar="DIR", help=f"folder (default {DEFAULT_OUTPUT})")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="phantom seed (default 0)")
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.add_argument("--threads", type=int, metavar="N", help="CPU threads (default: all cores)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from .. import inference
    from ..analysis import figures, metrics
    from ..data import phantom
    from ..images.atomicfile import write_text_atomic
    from ..images.outputpaths import check_output_folder
    from ..labels import ModelLabel
    from ..models.loader import load_network, resolve_card

    started = time.perf_counter()
    output = Path(args.output)
    check_output_folder("--output", output)
    print(f"1/4 synthetic case: phantom seed {args.seed}, {DEMO_ACQUISITION}, T1 + T2 + STIR")
    case = phantom.generate_case(args.seed, acquisition=DEMO_ACQUISITION)
    phantom.write_case(case, output / "case")
    lesion_count = len(case.info.get("lesions", []))
    print(f"    {case.images['t1'].GetSize()} voxels, {lesion_count} metastas{'is' if lesion_count == 1 else 'es'}")

    card = resolve_card()
    print(f"2/4 segmenting with {card.name} {card.version}")
    result = inference.segment_files(
        {name: output / "case" / f"{name}.nii.gz" for name in SEQUENCES},
        output / "segmentation.nii.gz",
        card,
        load_network(card),
        device=args.device,
        threads=args.threads,
    )
    timing = ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in result.timings.items())
    print(f"    {len(result.lesion_volumes_ml)} lesion(s) found on {result.device}; {timing}")

    print("3/4 comparing with the truth")
    values = [label.value for label in card.labels]
    scores = metrics.compute_metrics(
        phantom.model_target(case),
        result.labels,
        labels=values,
        missing_ok=True,
        min_lesion_volume_ml=card.postprocessing.min_lesion_volume_ml,
    )
    write_text_atomic(output / "metrics.json", json.dumps(scores, indent=2) + "\n")
    lesion = scores[str(int(ModelLabel.METASTASIS))]
    print(f"    metastasis Dice {_number(lesion['dice'])}, voxel sensitivity {_number(lesion['sensitivity'])}")
    detection = lesion["lesions"]
    print(f"    lesions detected {detection['detected']} of {detection['reference_count']} "
          f"(sensitivity {_number(detection['sensitivity'])}), false positives {detection['false_positive']}")
    for label in card.labels:
        if label.value != ModelLabel.METASTASIS:
            print(f"    {label.name} Dice {_number(scores[str(label.value)]['dice'])}")

    print("4/4 overlay picture")
    figures.overlay_png(
        phantom.model_target(case),
        result.labels,
        output / "overlay.png",
        label=int(ModelLabel.METASTASIS),
        image=case.images["t1"],
        title=f"phantom seed {args.seed}: metastasis Dice {_number(lesion['dice'])}",
    )
    print(f"done in {time.perf_counter() - started:.1f} s; wrote {output}/: case/, segmentation.nii.gz, "
          "metrics.json, overlay.png")
    return 0


def _number(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"
