"""Segmentation metrics of a prediction against a reference, per label: overlap, surface distance, volume, lesions.

Conventions (DESIGN.md, chosen to agree with MONAI and MetricsReloaded):

- voxels are counted on the reference's grid; a prediction on another grid is resampled onto it (nearest
  neighbour); grids that do not overlap at all are a ``GeometryError``;
- Dice, IoU, sensitivity, precision from the voxel counts; specificity over the whole image grid (so it is
  close to 1 for any small structure);
- both masks empty: Dice 1, IoU 1; one empty: Dice 0, IoU 0; a ratio with a zero denominator is None plus a
  ``<key>_reason`` entry (``"precision": None, "precision_reason": "the prediction is empty"``);
- HD95 and ASSD in mm from surface voxels with the real spacing (see ``surface_distance``); None with a reason
  when either mask is empty;
- volumes in mL; ``volume_difference_ml`` is prediction minus reference;
- lesions: 26-connected components, matched as described in ``lesion_matching``.

Usage::

    from SpineMetSegLib.images import imageio
    from SpineMetSegLib.analysis import metrics
    result = metrics.compute_metrics(imageio.read_image("reference.nii.gz"), imageio.read_image("seg.nii.gz"),
                                     labels=[1], min_lesion_volume_ml=0.01)
    print(result["1"]["dice"], result["1"]["hd95_mm"], result["1"]["lesions"]["detected"])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional

import numpy as np
import SimpleITK as sitk

from ..errors import ImageError, SpineMetSegError
from ..images import imageio
from ..images.labelmaps import describe_values, label_array, label_values
from ..images.voxelgrid import VoxelGrid, foreground_box, union_box
from ..labels import ModelLabel
from .lesion_matching import LesionMatch, match_lesions, ratio
from .surface_distance import assd, hd95, surface_distances

SPECIFICITY_NOTE = "specificity is computed over the whole image grid"
NOTES = (
    SPECIFICITY_NOTE,
    "volume_difference_ml is prediction minus reference",
    "lesions are 26-connected components",
)


@dataclass
class LabelEvaluation:
    """The metrics of one label and the lesion matching behind its ``lesions`` block."""

    label: int
    metrics: Dict[str, Any]
    match: LesionMatch


@dataclass
class PairEvaluation:
    """A reference, the prediction on its grid, and the evaluation of each label."""

    reference: sitk.Image
    prediction: sitk.Image  # on the reference grid
    labels: Dict[int, LabelEvaluation] = field(default_factory=dict)

    def metrics(self) -> Dict[str, Dict[str, Any]]:
        """The metrics JSON: label values as strings to their metrics."""
        return {str(label): evaluation.metrics for label, evaluation in self.labels.items()}


def compute_metrics(
    reference: sitk.Image,
    prediction: sitk.Image,
    *,
    labels: Optional[Iterable[int]] = None,
    min_lesion_volume_ml: float = 0.0,
    iou_threshold: Optional[float] = None,
    missing_ok: bool = False,
) -> Dict[str, Dict[str, Any]]:
    """Metrics of ``prediction`` against ``reference`` for each label: ``{"1": {"dice": ..., ...}, ...}``.

    ``labels`` None evaluates every nonzero value, which must then be the same in both images (else
    ``ImageError``: the maps may follow different label conventions). A label named in ``labels`` that is in
    neither image is an ``ImageError`` unless ``missing_ok`` (then it scores as two empty masks: Dice 1; with
    ``labels`` None, two empty maps score the metastasis label).
    """
    return evaluate_pair(
        reference,
        prediction,
        labels=labels,
        min_lesion_volume_ml=min_lesion_volume_ml,
        iou_threshold=iou_threshold,
        missing_ok=missing_ok,
    ).metrics()


def evaluate_pair(
    reference: sitk.Image,
    prediction: sitk.Image,
    *,
    labels: Optional[Iterable[int]] = None,
    min_lesion_volume_ml: float = 0.0,
    iou_threshold: Optional[float] = None,
    missing_ok: bool = False,
) -> PairEvaluation:
    """Like ``compute_metrics``, keeping the resampled prediction and each label's lesion matching."""
    check_lesion_options(min_lesion_volume_ml, iou_threshold)
    prediction = on_reference_grid(reference, prediction)
    grid = VoxelGrid.of(reference)
    reference_array = label_array(reference, "reference")
    prediction_array = label_array(prediction, "prediction")
    # Everything but the true negatives happens inside the nonzero voxels' box: a spine is a small part of a scan.
    box = union_box(foreground_box(reference_array), foreground_box(prediction_array)) or (slice(0, 0),) * 3
    reference_array, prediction_array = reference_array[box], prediction_array[box]
    chosen = choose_labels(label_values(reference_array), label_values(prediction_array), labels, missing_ok)
    evaluation = PairEvaluation(reference, prediction)
    for label in chosen:
        evaluation.labels[label] = evaluate_masks(
            reference_array == label,
            prediction_array == label,
            grid.cropped(box),
            label=label,
            min_lesion_volume_ml=min_lesion_volume_ml,
            iou_threshold=iou_threshold,
            image_voxels=int(np.prod(grid.shape)),
        )
    return evaluation


def lesion_detection(
    reference: sitk.Image,
    prediction: sitk.Image,
    *,
    min_lesion_volume_ml: float = 0.0,
    iou_threshold: Optional[float] = None,
) -> Dict[str, Any]:
    """Lesion-wise detection of two binary masks (values 0 and 1): the ``lesions`` block of the metrics JSON.

    Raises ``ImageError`` when a mask holds other values (select a label first: ``image == N``).
    """
    check_lesion_options(min_lesion_volume_ml, iou_threshold)
    prediction = on_reference_grid(reference, prediction)
    masks = []
    for image, name in ((reference, "reference"), (prediction, "prediction")):
        array = label_array(image, name)
        extra = label_values(array) - {1}
        if extra:
            raise ImageError(
                f"The {name} mask is not binary: it holds the values {describe_values(extra | {1})} besides 0. "
                "Lesion detection needs a mask of 0 and 1; select one label first (image == N)."
            )
        masks.append(array == 1)
    return match_lesions(
        masks[0], masks[1], VoxelGrid.of(reference), min_volume_ml=min_lesion_volume_ml, iou_threshold=iou_threshold
    ).summary()


def evaluate_masks(
    reference: np.ndarray,
    prediction: np.ndarray,
    grid: VoxelGrid,
    *,
    label: int = 1,
    min_lesion_volume_ml: float = 0.0,
    iou_threshold: Optional[float] = None,
    image_voxels: Optional[int] = None,
) -> LabelEvaluation:
    """All metrics of two boolean arrays on ``grid`` (a crop of an image of ``image_voxels`` voxels)."""
    metrics = voxel_metrics(reference, prediction, grid, image_voxels=image_voxels)
    match = match_lesions(reference, prediction, grid, min_volume_ml=min_lesion_volume_ml, iou_threshold=iou_threshold)
    metrics["lesions"] = match.summary()
    metrics["notes"] = list(NOTES)
    return LabelEvaluation(label, metrics, match)


def voxel_metrics(
    reference: np.ndarray, prediction: np.ndarray, grid: VoxelGrid, *, image_voxels: Optional[int] = None
) -> Dict[str, Any]:
    """Overlap, surface-distance and volume metrics of two boolean arrays on ``grid``.

    ``image_voxels``: the size of the whole image when the arrays are a crop of it (for the true negatives:
    specificity is over the whole image grid).
    """
    box = foreground_box(reference | prediction)
    if box is None:
        true_positive = false_positive = false_negative = 0
    else:
        inside_reference, inside_prediction = reference[box], prediction[box]
        true_positive = int(np.count_nonzero(inside_reference & inside_prediction))
        false_positive = int(np.count_nonzero(inside_prediction)) - true_positive
        false_negative = int(np.count_nonzero(inside_reference)) - true_positive
    total = reference.size if image_voxels is None else image_voxels
    true_negative = total - true_positive - false_positive - false_negative
    disagree = false_positive + false_negative
    result: Dict[str, Any] = {}
    # Both masks empty: perfect agreement (Dice 1, IoU 1), DESIGN.md.
    result["dice"] = 2.0 * true_positive / (2 * true_positive + disagree) if true_positive + disagree else 1.0
    result["iou"] = true_positive / (true_positive + disagree) if true_positive + disagree else 1.0
    _put_ratio(result, "sensitivity", true_positive, true_positive + false_negative, "the reference is empty")
    _put_ratio(
        result, "specificity", true_negative, true_negative + false_positive, "the reference covers the whole image"
    )
    _put_ratio(result, "precision", true_positive, true_positive + false_positive, "the prediction is empty")
    empty_reason = _empty_reason(true_positive + false_negative, true_positive + false_positive)
    if empty_reason:
        for key in ("hd95_mm", "assd_mm"):
            result[key] = None
            result[f"{key}_reason"] = empty_reason
    else:
        to_prediction, to_reference = surface_distances(reference, prediction, grid.array_spacing)
        result["hd95_mm"] = hd95(to_prediction, to_reference)
        result["assd_mm"] = assd(to_prediction, to_reference)
    reference_ml = (true_positive + false_negative) * grid.voxel_volume_ml
    prediction_ml = (true_positive + false_positive) * grid.voxel_volume_ml
    result["volume_reference_ml"] = reference_ml
    result["volume_prediction_ml"] = prediction_ml
    result["volume_difference_ml"] = prediction_ml - reference_ml
    result["voxels"] = {
        "true_positive": true_positive,
        "false_positive": false_positive,
        "false_negative": false_negative,
        "true_negative": true_negative,
    }
    return result


def _put_ratio(result: Dict[str, Any], key: str, numerator: int, denominator: int, reason: str) -> None:
    value, why = ratio(numerator, denominator, reason)
    result[key] = value
    if why:
        result[f"{key}_reason"] = why


def _empty_reason(reference_voxels: int, prediction_voxels: int) -> Optional[str]:
    if reference_voxels == 0 and prediction_voxels == 0:
        return "both masks are empty"
    if reference_voxels == 0:
        return "the reference is empty"
    if prediction_voxels == 0:
        return "the prediction is empty"
    return None


def check_lesion_options(min_lesion_volume_ml: float, iou_threshold: Optional[float]) -> None:
    """Raise ``SpineMetSegError`` for a negative minimum volume or an IoU threshold outside (0, 1]."""
    if not np.isfinite(min_lesion_volume_ml) or min_lesion_volume_ml < 0:
        raise SpineMetSegError(f"The minimum lesion volume must be 0 or more mL, got {min_lesion_volume_ml}.")
    if iou_threshold is not None and not 0.0 < iou_threshold <= 1.0:
        raise SpineMetSegError(
            f"The IoU threshold must be above 0 and at most 1, got {iou_threshold} "
            "(leave it out to count any overlap as a detection)."
        )


def on_reference_grid(reference: sitk.Image, prediction: sitk.Image) -> sitk.Image:
    """The prediction on the reference grid (nearest neighbour); ``GeometryError`` when they do not overlap."""
    imageio.check_3d(reference, "reference")
    imageio.check_3d(prediction, "prediction")
    return imageio.resample_to(prediction, reference, nearest=True)


def choose_labels(
    reference_values: set, prediction_values: set, labels: Optional[Iterable[int]], missing_ok: bool
) -> List[int]:
    """The labels to evaluate; ``ImageError`` for an ambiguous or impossible choice."""
    present = (
        f"(the reference holds {describe_values(reference_values)}; "
        f"the prediction holds {describe_values(prediction_values)})"
    )
    if labels is None:
        if reference_values != prediction_values:
            raise ImageError(
                f"The reference and the prediction hold different label values {present}: they may follow "
                "different label conventions. Name the label to compare (labels=[N]; on the command line "
                "--label N). If the reference holds one value per lesion, merge them first "
                "(--reference-instances)."
            )
        if not reference_values and missing_ok:
            return [int(ModelLabel.METASTASIS)]  # a clean case: no metastasis in either map, scored as agreement
        if not reference_values:
            raise ImageError(
                "Both the reference and the prediction are empty (every voxel is 0), so there is no label to "
                "evaluate. Name the label (--label N) and allow a label missing from both to score it as "
                "agreement (Dice 1)."
            )
        return sorted(reference_values)
    chosen = sorted({int(label) for label in labels})
    if not chosen:
        raise ImageError("No label to evaluate was given.")
    for label in chosen:
        if label <= 0:
            raise ImageError(f"Label {label} cannot be evaluated: labels are positive (0 is the background).")
        if not missing_ok and label not in reference_values and label not in prediction_values:
            raise ImageError(
                f"Label {label} is in neither the reference nor the prediction {present}. Check the label value; "
                "to score a case where both truly lack it as agreement (Dice 1), allow missing labels "
                "(missing_ok=True; on the command line --allow-missing-label)."
            )
    return chosen


def merge_instances(image: sitk.Image, label: int = 1) -> sitk.Image:
    """A map with one value per lesion (the phantom's ``lesions.nii.gz``) as a binary map of ``label``."""
    array = label_array(image, "reference")
    merged = sitk.GetImageFromArray((array != 0).astype(np.uint16) * np.uint16(label))
    merged.CopyInformation(image)
    return merged


def metric_value(metrics: Mapping[str, Any], key: str) -> Optional[float]:
    """A metric of one label's block by dotted key (``"lesions.f1"``), None where undefined; counts stay int."""
    value: Any = metrics
    for part in key.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value if value is None or isinstance(value, int) else float(value)
