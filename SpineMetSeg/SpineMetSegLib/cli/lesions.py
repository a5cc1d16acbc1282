"""``spinemetseg lesions``: measure each lesion of a segmentation (size, host vertebra, distance to the canal).

Usage::

    spinemetseg lesions seg.nii.gz --csv lesions.csv                 # a model output: 1 lesion, 2 body, 3 canal
    spinemetseg lesions lesions.nii.gz --anatomy anatomy.nii.gz      # phantom files (tissue classes detected)

Prints one row per lesion (volume, largest diameter, principal axes, host vertebra, distance to the canal,
posterior-wall and canal involvement, the size and proximity flags) and writes the full table as CSV.
"""

from __future__ import annotations

import argparse

TABLE_COLUMNS = (
    ("id", "id", 4),
    ("volume_ml", "mL", 9),
    ("largest_diameter_mm", "diam mm", 9),
    ("axes", "axes mm", 18),
    ("host_vertebra", "vertebra", 9),
    ("distance_to_canal_mm", "canal mm", 9),
    ("reaches_posterior_wall", "post.wall", 10),
    ("extends_into_canal", "reaches canal", 14),
    ("flags", "flags", 0),
)


def register(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "lesions",
        help="Measure each lesion of a segmentation (size, host vertebra, distance to the canal)",
        description="Measure every lesion (26-connected component of the lesion label) of a label map. "
        "Vertebral bodies and the spinal canal come from --anatomy, or from the map itself when it is a model "
        "output (2 vertebral body, 3 spinal canal).",
    )
    parser.add_argument("segmentation", metavar="SEG", help="label map holding the lesions")
    parser.add_argument("--anatomy", metavar="PATH", help="anatomy label map (model output or phantom tissues)")
    parser.add_argument("--label", type=int, default=1, metavar="N", help="lesion label value (default 1)")
    parser.add_argument("--csv", metavar="PATH", help="write the per-lesion table here")
    parser.add_argument(
        "--body-labels", type=int, nargs="+", metavar="N", help="anatomy values of the vertebral bodies"
    )  # fmt: skip
    parser.add_argument("--canal-labels", type=int, nargs="+", metavar="N", help="anatomy values of the canal")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..analysis import lesions
    from ..images import imageio
    from ..images.labelmaps import describe_values, label_array, label_values
    from ..images.outputpaths import check_paths

    check_paths({"--csv": args.csv}, {"SEG": args.segmentation, "--anatomy": args.anatomy})
    segmentation = imageio.read_image(args.segmentation, name="segmentation")
    anatomy = imageio.read_image(args.anatomy, name="anatomy") if args.anatomy else None
    found = lesions.measure_lesions(
        segmentation, anatomy, label=args.label, body_labels=args.body_labels, canal_labels=args.canal_labels
    )
    if not found:
        present = describe_values(label_values(label_array(segmentation, "segmentation")))
        print(f"no lesion: no voxel has the label {args.label} (the map holds {present})")
    else:
        _print_table(lesions.lesion_rows(found))
        print(lesions.INFORMATIONAL_NOTE)
        if found[0].host_vertebra is None and all(lesion.distance_to_canal_mm is None for lesion in found):
            print("no anatomy: vertebra and canal measures need --anatomy (or a model output with labels 2 and 3)")
    if args.csv:
        lesions.write_lesion_csv(found, args.csv)
        print(f"per-lesion table written to {args.csv}")
    return 0


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def _print_table(rows) -> None:
    from ..analysis.lesions import CANAL_PROXIMITY_MM, LARGE_LESION_DIAMETER_MM, LESION_COLUMNS

    large_key, near_key = LESION_COLUMNS[-2], LESION_COLUMNS[-1]
    print("".join(title.rjust(width) if width else f"  {title}" for _, title, width in TABLE_COLUMNS))
    for row in rows:
        flags = []
        if row[large_key]:
            flags.append(f">{LARGE_LESION_DIAMETER_MM:g} mm")
        if row[near_key]:
            flags.append(f"<{CANAL_PROXIMITY_MM:g} mm to canal")
        shown = dict(row)
        shown["axes"] = " x ".join(f"{row[f'axis_{n}_mm']:.1f}" for n in (1, 2, 3))
        shown["flags"] = ", ".join(flags) or "-"
        cells = []
        for key, _, width in TABLE_COLUMNS:
            text = shown[key] if key in ("axes", "flags") else _cell(shown[key])
            cells.append(text.rjust(width) if width else f"  {text}")
        print("".join(cells))
