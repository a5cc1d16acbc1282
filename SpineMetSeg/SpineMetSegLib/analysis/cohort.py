"""Evaluate a cohort: reference and prediction files matched by name, per-case metrics, summary statistics.

Files pair up by name without the image suffix (``case01.nii.gz`` with ``case01.nrrd``). A case found in only
one folder is reported, not evaluated. Named labels (``labels=[1]``) may be missing from both images of a case
(a case without metastases, scored as agreement: Dice 1), but not from every case of the cohort.

Usage::

    from SpineMetSegLib.analysis import cohort
    pairs, only_reference, only_prediction = cohort.match_cases("references/", "predictions/")
    result = cohort.evaluate_cohort(pairs, labels=[1])
    print(result.summary["1"]["dice"])          # {"mean": ..., "sd": ..., "median": ..., "n": ...}
    rows = cohort.case_rows(result.cases)       # one row per case and label, for a CSV file
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ImageError, SpineMetSegError
from ..images import imageio
from ..images.labelmaps import describe_values
from . import metrics
from .metrics import metric_value

SUMMARY_METRICS = (
    "dice",
    "iou",
    "sensitivity",
    "specificity",
    "precision",
    "hd95_mm",
    "assd_mm",
    "volume_reference_ml",
    "volume_prediction_ml",
    "volume_difference_ml",
    "lesions.reference_count",
    "lesions.prediction_count",
    "lesions.detected",
    "lesions.missed",
    "lesions.false_positive",
    "lesions.sensitivity",
    "lesions.precision",
    "lesions.f1",
    "lesions.lesion_dice",
)

CasePair = Tuple[str, Path, Path]


@dataclass
class CohortResult:
    """Per-case metrics JSON (case name to label to metrics) and per-label summaries."""

    cases: Dict[str, Dict[str, Dict[str, Any]]]
    summary: Dict[str, Dict[str, Dict[str, Optional[float]]]]

    def to_json(self) -> Dict[str, Any]:
        return {"cases": self.cases, "summary": self.summary, "notes": list(metrics.NOTES)}


def case_name(path: Path) -> str:
    """The name of a case file without its image suffix."""
    suffix = imageio.suffix_of(path)
    return path.name[: len(path.name) - len(suffix)] if suffix else path.name


def _image_files(folder: Path, what: str) -> Dict[str, Path]:
    if not folder.is_dir():
        raise ImageError(f"The {what} folder {folder} does not exist or is not a folder.")
    files = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.name.startswith(".") and imageio.suffix_of(path) in imageio.READABLE_SUFFIXES:
            name = case_name(path)
            if name in files:
                raise ImageError(
                    f"The {what} folder holds two files for case '{name}': {files[name].name}, {path.name}."
                )
            files[name] = path
    return files


def match_cases(reference_dir, prediction_dir) -> Tuple[List[CasePair], List[str], List[str]]:
    """Pairs (name, reference path, prediction path), and the names found only as reference / only as prediction.

    Raises ``ImageError`` when no case is in both folders.
    """
    references = _image_files(Path(reference_dir), "reference")
    predictions = _image_files(Path(prediction_dir), "prediction")
    common = sorted(set(references) & set(predictions))
    if not common:
        raise ImageError(
            f"No case is in both folders ({len(references)} reference and {len(predictions)} prediction image "
            "files): files pair up by name without the suffix, e.g. case01.nii.gz with case01.nrrd."
        )
    pairs = [(name, references[name], predictions[name]) for name in common]
    return pairs, sorted(set(references) - set(predictions)), sorted(set(predictions) - set(references))


def evaluate_cohort(
    pairs: Sequence[CasePair],
    *,
    labels: Optional[Iterable[int]] = None,
    min_lesion_volume_ml: float = 0.0,
    iou_threshold: Optional[float] = None,
    reference_instances: bool = False,
    on_case: Optional[Callable[[int, int, str], None]] = None,
) -> CohortResult:
    """Metrics of every pair, and per label the mean, SD, median and count of each metric over the cases.

    ``reference_instances``: each reference holds one value per lesion; all its nonzero voxels count as the
    single label in ``labels``. ``on_case(done, total, name)`` is called before each case.
    """
    chosen = None if labels is None else sorted({int(label) for label in labels})
    if reference_instances and (chosen is None or len(chosen) != 1):
        raise SpineMetSegError("A reference of one value per lesion needs exactly one label to compare (--label N).")
    cases: Dict[str, Dict[str, Dict[str, Any]]] = {}
    seen: set = set()
    for done, (name, reference_path, prediction_path) in enumerate(pairs):
        if on_case:
            on_case(done, len(pairs), name)
        try:
            reference = imageio.read_image(reference_path, name="reference")
            if reference_instances:
                reference = metrics.merge_instances(reference, chosen[0])
            prediction = imageio.read_image(prediction_path, name="prediction")
            evaluation = metrics.evaluate_pair(
                reference,
                prediction,
                labels=chosen,
                min_lesion_volume_ml=min_lesion_volume_ml,
                iou_threshold=iou_threshold,
                missing_ok=True,
            )
        except SpineMetSegError as error:
            raise type(error)(f"case '{name}': {error}") from None
        cases[name] = evaluation.metrics()
        seen |= {label for label, e in evaluation.labels.items() if e.match.box is not None}
    if chosen is not None:
        absent = [label for label in chosen if label not in seen]
        if absent:
            raise ImageError(
                f"Label {describe_values(absent)} is in no reference and no prediction of the {len(pairs)} "
                "cases. Check the label value."
            )
    return CohortResult(cases, summarize(cases))


def summary_statistics(values: Sequence[Optional[float]]) -> Dict[str, Optional[float]]:
    """Mean, sample standard deviation, median and count of the defined values (None are left out)."""
    defined = np.array([v for v in values if v is not None], dtype=float)
    if defined.size == 0:
        return {"mean": None, "sd": None, "median": None, "n": 0}
    return {
        "mean": float(defined.mean()),
        "sd": float(defined.std(ddof=1)) if defined.size > 1 else None,
        "median": float(np.median(defined)),
        "n": int(defined.size),
    }


def summarize(cases: Dict[str, Dict[str, Dict[str, Any]]]) -> Dict[str, Dict[str, Dict[str, Optional[float]]]]:
    """Per label and metric: summary statistics over the cases where the metric is defined."""
    labels = sorted({label for per_case in cases.values() for label in per_case}, key=int)
    return {
        label: {
            key: summary_statistics(
                [metric_value(per_case[label], key) for per_case in cases.values() if label in per_case]
            )
            for key in SUMMARY_METRICS
        }
        for label in labels
    }


def case_rows(cases: Dict[str, Dict[str, Dict[str, Any]]]) -> List[Dict[str, Any]]:
    """One row per case and label: ``case``, ``label`` and every summary metric (dotted keys as columns)."""
    rows = []
    for name, per_case in cases.items():
        for label, values in per_case.items():
            row: Dict[str, Any] = {"case": name, "label": label}
            row.update({key.replace(".", "_"): metric_value(values, key) for key in SUMMARY_METRICS})
            rows.append(row)
    return rows


CASE_COLUMNS = ("case", "label") + tuple(key.replace(".", "_") for key in SUMMARY_METRICS)
