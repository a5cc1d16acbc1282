"""``spinemetseg evaluate``: compare a segmentation (or a folder of them) with a reference.

One pair::

    spinemetseg evaluate --reference ref.nii.gz --prediction seg.nii.gz --label 1 \\
        --json metrics.json --csv lesions.csv --png overlay.png

prints a table (Dice, IoU, sensitivity, specificity, precision, HD95, ASSD, volumes, lesion detection) and
writes the metrics JSON (DESIGN.md keys per label), a per-lesion CSV and a picture of the busiest slice.

A cohort (files matched by name)::

    spinemetseg evaluate --reference-dir refs/ --prediction-dir preds/ --label 1 --csv cases.csv --png box.png

prints one row per case and the mean ± SD and median; the JSON holds every case and the summary, the CSV one
row per case and label, the PNG box plots. Every file is written atomically.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict, List, Optional

from ..errors import SpineMetSegError

# Footnote marks of the rows whose value needs reading with care (the notes of ``metric_table``).
FOOTNOTE_MARKS = {"specificity": "*", "volume_difference_ml": "**"}
COHORT_COLUMNS = (
    ("dice", "Dice"),
    ("sensitivity", "Sens"),
    ("precision", "Prec"),
    ("hd95_mm", "HD95 mm"),
    ("assd_mm", "ASSD mm"),
    ("volume_difference_ml", "dVol mL"),
    ("lesions.f1", "Lesion F1"),
)
COUNT_KEYS = ("_count", "detected", "missed", "false_positive")
FOOTNOTES = (
    "* specificity over the whole image grid (close to 1 for any small structure)",
    "** prediction minus reference",
)


def register(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "evaluate",
        help="Compare a segmentation with a reference (Dice, HD95, lesion-wise detection)",
        description="Compare a segmentation with a reference label map, or a folder of them with a folder of "
        "references (files matched by name). Counts on the reference grid; the prediction is resampled onto "
        "it (nearest neighbour) when the grids differ.",
    )
    single = parser.add_argument_group("one case")
    single.add_argument("--reference", metavar="PATH", help="reference label map (file or DICOM folder)")
    single.add_argument("--prediction", metavar="PATH", help="predicted label map")
    cohort = parser.add_argument_group("a cohort")
    cohort.add_argument("--reference-dir", metavar="FOLDER", help="folder of reference label maps")
    cohort.add_argument("--prediction-dir", metavar="FOLDER", help="folder of predictions, same file names")
    parser.add_argument(
        "--label", type=int, action="append", metavar="N", help="label value to evaluate (repeat for several; "
        "default: every label, which must then be the same in both maps)"
    )  # fmt: skip
    parser.add_argument("--json", metavar="PATH", help="write the metrics JSON here")
    parser.add_argument("--csv", metavar="PATH", help="write the per-lesion table (cohort: per-case table) here")
    parser.add_argument(
        "--png", metavar="PATH", help="write the overlay picture of the first label (cohort: box plots) here"
    )
    parser.add_argument("--image", metavar="PATH", help="an MRI to draw the overlay on (default: the reference)")
    parser.add_argument(
        "--min-lesion-volume", type=float, default=0.0, metavar="ML",
        help="ignore lesions smaller than this (mL) on both sides (default 0)",
    )  # fmt: skip
    parser.add_argument(
        "--iou-threshold", type=float, metavar="T",
        help="a lesion counts as detected when its IoU with a predicted component is at least T "
        "(default: any overlap)",
    )  # fmt: skip
    parser.add_argument(
        "--reference-instances", action="store_true",
        help="the reference holds one value per lesion (like the phantom's lesions.nii.gz): every nonzero voxel "
        "counts as the --label value",
    )  # fmt: skip
    parser.add_argument(
        "--allow-missing-label", action="store_true",
        help="no warning for a --label that neither map holds (a clean case; it scores as agreement, Dice 1, "
        "either way)",
    )  # fmt: skip
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    pair = args.reference is not None or args.prediction is not None
    folders = args.reference_dir is not None or args.prediction_dir is not None
    if pair == folders:
        raise SpineMetSegError("Give either --reference and --prediction, or --reference-dir and --prediction-dir.")
    if pair and (args.reference is None or args.prediction is None):
        raise SpineMetSegError("Give both --reference and --prediction.")
    if folders and (args.reference_dir is None or args.prediction_dir is None):
        raise SpineMetSegError("Give both --reference-dir and --prediction-dir.")
    if args.reference_instances and (not args.label or len(args.label) != 1):
        raise SpineMetSegError("--reference-instances needs exactly one --label (the value to compare).")
    from ..images.outputpaths import check_paths

    check_paths(
        {"--json": args.json, "--csv": args.csv, "--png": args.png},
        {"--reference": args.reference, "--prediction": args.prediction, "--image": args.image,
         "--reference-dir": args.reference_dir, "--prediction-dir": args.prediction_dir},
    )
    return _run_pair(args) if pair else _run_cohort(args)


def _labels_of_pair(reference: Any, prediction: Any, labels: Optional[List[int]], *, warn: bool
                    ) -> Optional[List[int]]:
    """The labels to score; a clean case (both maps empty) scores the metastasis label, with a warning.

    A label absent from both maps scores as agreement (Dice 1, no lesions, no false positives) by the
    documented convention; the warning says so, since a mistyped label value looks the same.
    """
    from ..images.labelmaps import describe_values, label_array, label_values
    from ..labels import ModelLabel

    held = label_values(label_array(reference, "reference")), label_values(label_array(prediction, "prediction"))
    clean = not held[0] and not held[1]
    for label in labels or ([int(ModelLabel.METASTASIS)] if clean else []):
        if warn and label not in held[0] and label not in held[1]:
            contents = (f" (the reference holds {describe_values(held[0])}, the prediction "
                        f"{describe_values(held[1])}; check the label value if the case is not clean)"
                        if held[0] or held[1] else "")
            print(f"warning: label {label} is absent from both the reference and the prediction: scored as "
                  f"agreement (Dice 1, no lesions, no false positives){contents}.", file=sys.stderr)
    return labels


def _run_pair(args: argparse.Namespace) -> int:
    from ..analysis import figures, metrics
    from ..analysis.lesion_matching import MATCH_COLUMNS
    from ..images import imageio
    from ..images.atomicfile import write_csv_atomic, write_text_atomic

    reference = imageio.read_image(args.reference, name="reference")
    prediction = imageio.read_image(args.prediction, name="prediction")
    if args.reference_instances:
        reference = metrics.merge_instances(reference, args.label[0])
    resampled = not imageio.Geometry.of(prediction).matches(imageio.Geometry.of(reference), tolerance=1e-6)
    evaluation = metrics.evaluate_pair(
        reference,
        prediction,
        labels=_labels_of_pair(reference, prediction, args.label, warn=not args.allow_missing_label),
        min_lesion_volume_ml=args.min_lesion_volume,
        iou_threshold=args.iou_threshold,
        missing_ok=True,
    )
    background = imageio.read_image(args.image, name="overlay") if args.image and args.png else None
    result = evaluation.metrics()
    print(f"reference:  {args.reference}")
    print(f"prediction: {args.prediction}" + (" (resampled onto the reference grid, nearest neighbour)" * resampled))
    _print_pair_table(result)
    if args.json:
        write_text_atomic(args.json, json.dumps(result, indent=2) + "\n")
        print(f"metrics written to {args.json}")
    if args.csv:
        rows = [
            {"label": label, **row} for label, labelled in evaluation.labels.items() for row in labelled.match.rows()
        ]
        write_csv_atomic(args.csv, rows, ("label",) + MATCH_COLUMNS)
        print(f"per-lesion table written to {args.csv} ({len(rows)} rows)")
    if args.png:
        label = next(iter(evaluation.labels))
        dice = result[str(label)]["dice"]
        index = figures.overlay_png(
            evaluation.reference,
            evaluation.prediction,
            args.png,
            label=label,
            image=background,
            title=f"Dice {dice:.3f} over the whole volume",
        )
        print(f"overlay of label {label}, sagittal slice {index}, written to {args.png}")
    return 0


def _run_cohort(args: argparse.Namespace) -> int:
    from ..analysis import cohort, figures
    from ..images.atomicfile import write_csv_atomic, write_text_atomic

    pairs, only_reference, only_prediction = cohort.match_cases(args.reference_dir, args.prediction_dir)
    for names, where in ((only_reference, "no prediction"), (only_prediction, "no reference")):
        if names:
            print(f"warning: {len(names)} case(s) with {where}, not evaluated: {', '.join(names)}", file=sys.stderr)
    result = cohort.evaluate_cohort(
        pairs,
        labels=args.label,
        min_lesion_volume_ml=args.min_lesion_volume,
        iou_threshold=args.iou_threshold,
        reference_instances=args.reference_instances,
        on_case=lambda done, total, name: print(f"[{done + 1}/{total}] {name}", file=sys.stderr),
    )
    _print_cohort_table(result)
    if args.json:
        write_text_atomic(args.json, json.dumps(result.to_json(), indent=2) + "\n")
        print(f"metrics written to {args.json}")
    if args.csv:
        write_csv_atomic(args.csv, cohort.case_rows(result.cases), cohort.CASE_COLUMNS)
        print(f"per-case table written to {args.csv}")
    if args.png:
        figures.cohort_boxplot_png(result.cases, args.png)
        print(f"box plots written to {args.png}")
    return 0


def _format(value: Optional[float], unit: str = "", key: str = "") -> str:
    if value is None:
        return "n/a"
    if key.endswith(COUNT_KEYS):
        return f"{int(value)}"
    return f"{value:.3f}{unit}" if abs(value) < 1000 else f"{value:.1f}{unit}"


def _print_pair_table(result: Dict[str, Dict[str, Any]]) -> None:
    from ..analysis.metric_table import display_rows

    labels = list(result)
    table = {label: display_rows(result[label]) for label in labels}
    names = [row.name + FOOTNOTE_MARKS.get(row.key, "") for row in table[labels[0]]]
    width = max(len(name) for name in names) + 2
    print("".ljust(width) + "".join(f"label {label}".rjust(16) for label in labels))
    reasons: List[str] = []
    for index, name in enumerate(names):
        cells = []
        for label in labels:
            row = table[label][index]
            cells.append(_format(row.value, f" {row.unit}" if row.unit else "", row.key).rjust(16))
            if row.value is None and row.note:
                reasons.append(f"label {label} {row.name}: n/a because {row.note}")
        print(name.ljust(width) + "".join(cells))
    lesion_rule = result[labels[0]]["lesions"]
    print(
        f"lesions: 26-connected components, matched by {lesion_rule['match_rule']}, "
        f"smaller than {lesion_rule['min_lesion_volume_ml']:g} mL ignored"
    )
    for line in FOOTNOTES + tuple(reasons):
        print(line)


def _print_cohort_table(result) -> None:
    from ..analysis.metrics import metric_value

    width = max([len(name) for name in result.cases] + [len("median")]) + 2
    header = "case".ljust(width) + "label".rjust(6) + "".join(name.rjust(11) for _, name in COHORT_COLUMNS)
    print(header)
    for name, per_case in result.cases.items():
        for label, values in per_case.items():
            cells = "".join(_format(metric_value(values, key)).rjust(11) for key, _ in COHORT_COLUMNS)
            print(name.ljust(width) + label.rjust(6) + cells)
    for label, summary in result.summary.items():
        for statistic in ("mean ± SD", "median"):
            cells = []
            for key, _ in COHORT_COLUMNS:
                entry = summary[key]
                if statistic == "median":
                    cells.append(_format(entry["median"]).rjust(11))
                else:
                    sd = "" if entry["sd"] is None else f"±{entry['sd']:.2f}"
                    cells.append(("n/a" if entry["mean"] is None else f"{entry['mean']:.2f}{sd}").rjust(11))
            print(statistic.ljust(width) + label.rjust(6) + "".join(cells))
    print("summaries over the cases where a metric is defined (n per metric in the JSON)")
    print(FOOTNOTES[0].lstrip("* "))
