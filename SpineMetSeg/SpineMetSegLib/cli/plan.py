"""``spinemetseg plan``: an ablation zone for one lesion, its coverage, margin and distance to the spinal canal.

Usage::

    spinemetseg plan seg.nii.gz --lesion 1 --json plan.json --png plan.png            # propose a probe
    spinemetseg plan seg.nii.gz --lesion 1 --device generic-ellipsoid-20x15 \\
        --tip=12,30,-40 --direction=0.3,1,0 --json plan.json                             # measure a given probe
    spinemetseg plan seg.nii.gz --lesion 2 --device generic-ellipsoid-20x15 \\
        --tip=5,30,-40 --direction=0.3,1,0 --tip=-5,30,-40 --direction=-0.3,1,0           # two probes (bipedicular)
    spinemetseg plan --list-devices

SEG is a model output (1 metastasis, 2 vertebral body, 3 spinal canal) or any label map with those labels
(``--anatomy`` for a separate anatomy map, as in ``spinemetseg lesions``). Lesion numbers are those of
``spinemetseg lesions``. Coordinates are RAS millimetres, as Slicer shows them (write ``--tip=-12,30,-40`` when the
first number is negative); a direction points from the skin entry towards the tip. Planning support only: never a
recommendation.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Optional, Tuple

from ..errors import SpineMetSegError
from ..progress import add_progress_option


def _triple(text: str) -> Tuple[float, float, float]:
    try:
        values = tuple(float(part) for part in text.replace(" ", "").split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected three numbers R,A,S (e.g. 10,-20.5,30), got '{text}'")
    return values


def register(subcommands: argparse._SubParsersAction) -> None:
    from ..analysis.ablation.limits import (
        DEFAULT_CANAL_CLEARANCE_MM,
        DEFAULT_CONE_HALF_ANGLE_DEG,
        DEFAULT_MARGIN_MM,
        DEFAULT_SHAFT_CLEARANCE_MM,
    )

    parser = subcommands.add_parser(
        "plan",
        help="Ablation planning: a probe's zone, its coverage of a lesion and its margin to the canal",
        description="Place an ablation probe (or let the command propose one) for one lesion and measure the zone: "
        "share of the lesion covered, smallest margin, distance to the spinal canal, vertebral body inside the "
        "zone. Planning support only: zone sizes vary with tissue and device settings.",
    )
    parser.add_argument("segmentation", metavar="SEG", nargs="?", help="label map holding the lesions")
    parser.add_argument("--lesion", type=int, metavar="N", help="lesion number (as 'spinemetseg lesions' lists it)")
    parser.add_argument("--device", metavar="NAME", help="device from the table (default: the proposal chooses)")
    parser.add_argument("--tip", type=_triple, action="append", metavar="R,A,S",
                        help="probe tip in RAS mm (repeat with --direction for several probes); write "
                        "--tip=-10,20,30 when it starts with a minus")
    parser.add_argument("--direction", type=_triple, action="append", metavar="R,A,S",
                        help="probe direction, skin entry towards the tip (--direction=-0.3,1,0 when negative)")
    parser.add_argument("--margin", type=float, default=DEFAULT_MARGIN_MM, metavar="MM",
                        help=f"margin the zone should keep around the lesion (default {DEFAULT_MARGIN_MM:g})")
    parser.add_argument("--canal-clearance", type=float, default=DEFAULT_CANAL_CLEARANCE_MM, metavar="MM",
                        help=f"distance the zone should keep from the canal (default {DEFAULT_CANAL_CLEARANCE_MM:g})")
    parser.add_argument("--shaft-clearance", type=float, default=DEFAULT_SHAFT_CLEARANCE_MM, metavar="MM",
                        help="distance the probe's line should keep from the canal "
                        f"(default {DEFAULT_SHAFT_CLEARANCE_MM:g})")
    parser.add_argument("--cone-axis", type=_triple, default=(0.0, 1.0, 0.0), metavar="R,A,S",
                        help="proposal: probe directions are searched around this (default 0,1,0: entering from "
                        "behind, towards anterior)")
    parser.add_argument("--cone-angle", type=float, default=DEFAULT_CONE_HALF_ANGLE_DEG, metavar="DEG",
                        help=f"proposal: half-angle of that cone (default {DEFAULT_CONE_HALF_ANGLE_DEG:g})")
    parser.add_argument("--devices", metavar="PATH", help="your own device table (JSON), added to the shipped one")
    parser.add_argument("--list-devices", action="store_true", help="print the device table and exit")
    parser.add_argument("--anatomy", metavar="PATH", help="anatomy label map (model output or phantom tissues)")
    parser.add_argument("--label", type=int, default=1, metavar="N", help="lesion label value (default 1)")
    parser.add_argument("--body-labels", type=int, nargs="+", metavar="N", help="values of the vertebral bodies")
    parser.add_argument("--canal-labels", type=int, nargs="+", metavar="N", help="values of the spinal canal")
    parser.add_argument("--image", metavar="PATH", help="an MRI (e.g. T1) to draw under the picture")
    parser.add_argument("--json", metavar="PATH", help="write the plan here")
    parser.add_argument("--png", metavar="PATH", help="draw the plan here")
    add_progress_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..analysis.ablation.device_table import find_device, load_devices

    devices = load_devices(args.devices)
    if args.list_devices:
        _print_devices(devices)
        return 0
    _check_arguments(args)
    from ..analysis.ablation import report
    from ..analysis.ablation.anatomy import PlanAnatomy
    from ..analysis.ablation.evaluation import evaluate_plan
    from ..analysis.ablation.proposal import propose
    from ..analysis.ablation.zone import Zone, ZoneUnion
    from ..images import imageio
    from ..progress import progress_for

    segmentation = imageio.read_image(args.segmentation, name="segmentation")
    anatomy_image = imageio.read_image(args.anatomy, name="anatomy") if args.anatomy else None
    background = imageio.read_image(args.image, name="image") if args.image else None
    anatomy = PlanAnatomy.from_image(segmentation, anatomy_image, label=args.label, body_labels=args.body_labels,
                                     canal_labels=args.canal_labels)
    anatomy.check_lesion(args.lesion)
    limits = {"margin_mm": args.margin, "canal_clearance_mm": args.canal_clearance,
              "shaft_clearance_mm": args.shaft_clearance}
    proposal_dict = None
    if args.tip:
        device = find_device(devices, args.device)
        zones = [Zone.from_probe(device, tip, direction) for tip, direction in zip(args.tip, args.direction)]
        result = evaluate_plan(anatomy, args.lesion, zones, **limits)
        used = [device]
    else:
        candidates = [find_device(devices, args.device)] if args.device else devices
        progress = progress_for(args.progress)
        proposal = propose(anatomy, args.lesion, candidates, cone_axis_ras=args.cone_axis,
                           cone_half_angle_deg=args.cone_angle, progress=progress, **limits)
        progress("done", 100, f"proposed {proposal.device.name}")
        zones, result, used = [proposal.zone], proposal.result, [proposal.device]
        proposal_dict = proposal.as_dict()
        print(("proposal meets the limits with " if proposal.feasible else
               "no device in the table meets the limits; the best placement found, with ") + proposal.device.name)
    for zone in zones:
        tip = ", ".join(f"{v:.1f}" for v in zone.tip)
        direction = ", ".join(f"{v:.3f}" for v in zone.direction)
        print(f"probe {zone.device_name}: tip R,A,S {tip}  direction {direction}")
    for line in report.summary_lines(result):
        print(line)
    print(report.PLANNING_NOTE)
    settings = {**limits, "cone_axis_ras": list(args.cone_axis), "cone_half_angle_deg": args.cone_angle}
    # The picture first, the plan last: a failure leaves no new file behind (each write is atomic).
    new_picture = bool(args.png) and not Path(args.png).exists()
    if args.png:
        report.plan_png(anatomy, args.lesion, ZoneUnion(zones), args.png, result=result, image=background,
                        title=f"{Path(args.segmentation).name}, lesion {args.lesion}, {used[0].name}")
    if args.json:
        document = report.plan_document(result, used, source=str(args.segmentation), proposal=proposal_dict,
                                        settings=settings)
        try:
            report.write_plan_json(document, args.json)
        except BaseException:
            if new_picture:
                Path(args.png).unlink(missing_ok=True)
            raise
        print(f"plan written to {args.json}")
    if args.png:
        print(f"picture written to {args.png}")
    return 0


def _check_arguments(args: argparse.Namespace) -> None:
    if not args.segmentation:
        raise SpineMetSegError("Give the segmentation (SEG) to plan on, or --list-devices.")
    if args.lesion is None:
        raise SpineMetSegError("Choose a lesion with --lesion N ('spinemetseg lesions SEG' lists them).")
    tips, directions = args.tip or [], args.direction or []
    if len(tips) != len(directions):
        raise SpineMetSegError(f"Give one --direction per --tip (got {len(tips)} tip(s), {len(directions)} "
                               "direction(s)).")
    if tips and not args.device:
        raise SpineMetSegError("A probe given with --tip needs its --device (see --list-devices).")
    for name, value in (("--margin", args.margin), ("--canal-clearance", args.canal_clearance),
                        ("--shaft-clearance", args.shaft_clearance)):
        if not value >= 0:
            raise SpineMetSegError(f"{name} must be zero or more millimetres, got {value:g}.")
    inputs = [Path(p).resolve() for p in (args.segmentation, args.anatomy, args.image) if p]
    outputs: List[Optional[str]] = [args.json, args.png]
    resolved = [Path(p).resolve() for p in outputs if p]
    for output in resolved:
        if output in inputs:
            raise SpineMetSegError(f"The output {output} is one of the inputs; choose another file name.")
    if len(resolved) != len(set(resolved)):
        raise SpineMetSegError("--json and --png name the same file; choose two file names.")


def _print_devices(devices) -> None:
    print(f"{'name':28}{'zone L x D mm':>15}{'tip->centre':>13}{'volume mL':>11}  source")
    for device in devices:
        size = f"{device.zone_length_mm:g} x {device.zone_diameter_mm:g}"
        source = device.sources.get("zone_length_mm", "")
        print(f"{device.name:28}{size:>15}{device.tip_to_zone_centre_mm:>13g}{device.zone_volume_ml:>11.2f}  {source}")
    print(f"tables: {', '.join(sorted({device.table for device in devices}))}")
