"""``spinemetseg phantom``: write one synthetic spine MRI case with exact ground truth.

Usage::

    spinemetseg phantom --seed 7 --output case-0007 [--acquisition sagittal2d|iso3d]
                        [--contrast standard|randomized] [--png]
    spinemetseg phantom --seed 7 --anatomy-from cases/vb2_05 --output drawn-0007 [--generate t1 stir] [--png]

Writes t1/t2/stir/lesions/anatomy .nii.gz and case.json (and preview.png with --png) into the output folder and
prints one line per lesion. The same seed always writes the same bytes. With ``--anatomy-from`` the lesions and
look-alikes are drawn into a real case folder instead (its own sequences, plus ``--generate`` T1/T2/STIR-like
images converted from its first sequence; see ``SpineMetSegLib.data``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import SpineMetSegError

ACQUISITION_CHOICES = ("sagittal2d", "iso3d")  # phantom.ACQUISITIONS, repeated so --help imports nothing heavy
CONTRAST_CHOICES = ("standard", "randomized")


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"the seed must be a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"the seed must be 0 or larger, got {value}")
    return value


def register(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "phantom",
        help="Write a synthetic spine MRI case with metastases",
        description="Render a synthetic spine MRI case (T1, T2, STIR) with metastases, look-alikes and exact "
        "lesion and anatomy label maps. The same seed always gives the same files.",
    )
    parser.add_argument("--seed", type=_seed, required=True, help="random seed (0 or larger) that fixes the case")
    parser.add_argument("--output", type=Path, required=True, help="folder to write the case into (created)")
    parser.add_argument(
        "--acquisition",
        choices=ACQUISITION_CHOICES,
        default=None,
        help="sagittal2d: 2D multislice, 3-5 mm slices; iso3d: 1 mm isotropic (default: drawn from the seed)",
    )
    parser.add_argument(
        "--contrast",
        choices=CONTRAST_CHOICES,
        default="standard",
        help="standard: textbook tissue contrasts; randomized: random intensities per tissue (domain randomisation)",
    )
    parser.add_argument("--png", action="store_true", help="also write preview.png (mid-sagittal T1, T2, STIR)")
    parser.add_argument(
        "--anatomy-from", type=Path, metavar="CASE",
        help="draw simulated lesions into this real case folder (an image such as t2.nii.gz plus "
        "vertebral_bodies.nii.gz on one grid) instead of rendering a phantom",
    )
    parser.add_argument("--generate", nargs="+", choices=("t1", "t2", "stir"), default=[], metavar="SEQUENCE",
                        help="with --anatomy-from: also write these sequences converted from the case's first image "
                        "(textbook-like contrast, or random per tissue with --contrast randomized)")
    parser.add_argument("--fracture-probability", type=float, default=0.1, metavar="P",
                        help="with --anatomy-from: how often the first lesion's body also collapses (a pathological "
                        "fracture; default 0.1)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.anatomy_from is not None:
        return run_anatomy(args)
    if args.generate:
        raise SpineMetSegError("--generate works with --anatomy-from; a phantom case always has T1, T2 and STIR.")
    from ..data.phantom import generate_case, write_case
    from ..images.outputpaths import check_output_folder

    output = Path(args.output)
    check_output_folder("--output", output)
    case = generate_case(args.seed, acquisition=args.acquisition, contrast=args.contrast)
    try:
        written = write_case(case, output, png=args.png)
    except OSError as error:
        raise SpineMetSegError(f"Cannot write the case into {output}: {error.strerror or error}.") from None

    info = case.info
    acquisition = info["acquisition"]
    size = "x".join(str(v) for v in acquisition["size"])
    spacing = "x".join(f"{v:.2f}" for v in acquisition["spacing_mm"])
    print(f"wrote {len(written)} files to {output}: {', '.join(written)}")
    print(
        f"seed {info['seed']}: {acquisition['kind']} {size} voxels of {spacing} mm, {info['contrast']} contrast, "
        f"vertebrae {', '.join(v['name'] for v in info['vertebrae'] if v['fully_in_view'])}"
    )
    print(f"{len(info['lesions'])} lesion(s), {len(info['look_alikes'])} look-alike(s)")
    for lesion in info["lesions"]:
        print(
            f"  lesion {lesion['id']}: {lesion['type']} in {lesion['vertebra']}, {lesion['volume_ml']:.3f} mL, "
            f"diameter {lesion['diameter_mm']:.1f} mm"
        )
    for finding in info["look_alikes"]:
        print(f"  look-alike: {finding['kind']} in {finding['vertebra']}, {finding['volume_ml']:.3f} mL")
    return 0


def run_anatomy(args: argparse.Namespace) -> int:
    from ..data.anatomy_case import generate_anatomy_case, write_anatomy_case
    from ..data.real_case import load_real_case
    from ..images.outputpaths import check_output_folder

    if args.acquisition is not None:
        raise SpineMetSegError("--acquisition is for the phantom; a real case keeps its own grid.")
    output = Path(args.output)
    check_output_folder("--output", output)
    if not 0.0 <= args.fracture_probability <= 1.0:
        raise SpineMetSegError(f"--fracture-probability must be between 0 and 1, got {args.fracture_probability}.")
    case = generate_anatomy_case(load_real_case(args.anatomy_from), args.seed, generate=args.generate,
                                 contrast=args.contrast, fracture_probability=args.fracture_probability)
    try:
        written = write_anatomy_case(case, output, png=args.png)
    except OSError as error:
        raise SpineMetSegError(f"Cannot write the case into {output}: {error.strerror or error}.") from None
    info = case.info
    print(f"wrote {len(written)} files to {output}: {', '.join(written)}")
    print(f"seed {info['seed']}: simulated lesions in real anatomy from {info['anatomy_from']}; sequences "
          + ", ".join(f"{name} ({how})" for name, how in info["sequences"].items()))
    print(f"{len(info['lesions'])} lesion(s), {len(info['look_alikes'])} look-alike(s)")
    if info["pathological_fracture"]:
        fracture = info["pathological_fracture"]
        print(f"  pathological fracture of body {fracture['host_body']}: {fracture['height_loss']:.0%} of its height "
              f"lost at the {fracture['endplate']} endplate")
    for lesion in info["lesions"]:
        print(f"  lesion {lesion['id']}: {lesion['type']} in body {lesion['host_body']} ({lesion['location']}), "
              f"{lesion['volume_ml']:.3f} mL, diameter {lesion['diameter_mm']:.1f} mm")
    for finding in info["look_alikes"]:
        print(f"  look-alike: {finding['kind']} in body {finding['host_body']}, {finding['volume_ml']:.3f} mL")
    return 0
