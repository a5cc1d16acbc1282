"""Lesion-wise detection: match the connected components of a reference and a predicted mask.

Conventions (DESIGN.md; the BraTS 2023 lesion-wise rules):

- a lesion is a 26-connected component; components smaller than ``min_volume_ml`` are ignored on both sides,
  as if they were not there;
- a reference lesion and a predicted component *match* when they overlap (any shared voxel) or, with
  ``iou_threshold`` T, when their intersection over union is at least T (T >= 0.5 makes matches one-to-one);
- a reference lesion is detected when it matches some predicted component, missed otherwise; a predicted
  component that matches no reference lesion is a false positive. One reference lesion predicted as two pieces
  is one detection and no false positive; two reference lesions predicted as one component are two detections;
- lesion sensitivity = detected / reference lesions; lesion precision = predicted components that match /
  predicted components; F1 their harmonic mean (0 when both are 0);
- lesion-wise Dice: for each reference lesion the Dice with the union of the components it matches (0 if
  missed), and 0 for each false positive, averaged over reference lesions plus false positives; 1 when neither
  mask has a lesion (both empty).

A ratio with a zero denominator is None, with a ``<key>_reason`` entry saying why.

Usage::

    from SpineMetSegLib.analysis.lesion_matching import match_lesions
    match = match_lesions(reference_mask, prediction_mask, grid, min_volume_ml=0.01)
    print(match.summary())          # reference_count, detected, missed, false_positive, sensitivity, ...
    rows = match.rows()             # one row per reference lesion and per predicted component
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from scipy import ndimage

from ..images.voxelgrid import VoxelGrid, box_origin, foreground_box

MATCH_COLUMNS = (
    "side",
    "id",
    "status",
    "volume_ml",
    "matched_ids",
    "best_iou",
    "lesion_dice",
    "centroid_lps_x",
    "centroid_lps_y",
    "centroid_lps_z",
)
# 26-connectivity: voxels touching by a face, an edge or a corner belong to one lesion.
CONNECTIVITY_26 = np.ones((3, 3, 3), dtype=bool)


def connected_lesions(mask: np.ndarray, min_voxels: int = 1) -> Tuple[np.ndarray, int]:
    """26-connected components of ``mask`` with at least ``min_voxels`` voxels, numbered 1..n in scan order."""
    labels, count = ndimage.label(mask, structure=CONNECTIVITY_26)
    if count == 0 or min_voxels <= 1:
        return labels, count
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    keep = sizes >= min_voxels
    keep[0] = False
    renumber = np.zeros(count + 1, dtype=labels.dtype)
    renumber[keep] = np.arange(1, int(keep.sum()) + 1, dtype=labels.dtype)
    return renumber[labels], int(keep.sum())


def min_voxels_for(min_volume_ml: float, grid: VoxelGrid) -> int:
    """The smallest voxel count whose volume is at least ``min_volume_ml`` (1 for no minimum)."""
    if min_volume_ml <= 0:
        return 1
    # The small allowance keeps a lesion of exactly the minimum volume despite float rounding.
    return max(1, int(np.ceil(min_volume_ml / grid.voxel_volume_ml - 1e-9)))


def ratio(numerator: float, denominator: float, reason: str) -> Tuple[Optional[float], Optional[str]]:
    """``numerator / denominator``, or (None, reason) when the denominator is zero."""
    if denominator == 0:
        return None, reason
    return float(numerator) / float(denominator), None


@dataclass
class LesionMatch:
    """Reference lesions and predicted components of one label, and which of them match."""

    reference_labels: np.ndarray  # component map of the reference inside ``box`` (0 background)
    prediction_labels: np.ndarray  # component map of the prediction inside ``box``
    box: Optional[Tuple[slice, ...]]  # where the maps sit in the whole array; None when both masks are empty
    grid: VoxelGrid
    reference_voxels: np.ndarray  # (R,) voxel count of each reference lesion
    prediction_voxels: np.ndarray  # (P,)
    overlap_voxels: np.ndarray  # (R, P) shared voxels
    matched: np.ndarray  # (R, P) bool
    min_volume_ml: float
    iou_threshold: Optional[float]

    @property
    def iou(self) -> np.ndarray:
        union = self.reference_voxels[:, None] + self.prediction_voxels[None, :] - self.overlap_voxels
        return np.divide(self.overlap_voxels, union, out=np.zeros(union.shape), where=union > 0)

    @property
    def detected(self) -> np.ndarray:
        return self.matched.any(axis=1)

    @property
    def false_positive(self) -> np.ndarray:
        return ~self.matched.any(axis=0)

    @property
    def lesion_dice_each(self) -> np.ndarray:
        """Dice of each reference lesion with the union of the predicted components it matches."""
        shared = (self.overlap_voxels * self.matched).sum(axis=1)
        predicted = (self.prediction_voxels[None, :] * self.matched).sum(axis=1)
        return 2.0 * shared / (self.reference_voxels + predicted)

    def summary(self) -> Dict[str, Any]:
        """The ``lesions`` block of the metrics JSON."""
        reference_count, prediction_count = len(self.reference_voxels), len(self.prediction_voxels)
        detected = int(self.detected.sum())
        false_positive = int(self.false_positive.sum())
        result: Dict[str, Any] = {
            "reference_count": reference_count,
            "prediction_count": prediction_count,
            "detected": detected,
            "missed": reference_count - detected,
            "false_positive": false_positive,
        }
        sensitivity, why = ratio(detected, reference_count, "the reference has no lesion")
        _put(result, "sensitivity", sensitivity, why)
        precision, why = ratio(prediction_count - false_positive, prediction_count, "the prediction has no lesion")
        _put(result, "precision", precision, why)
        if sensitivity is None or precision is None:
            _put(result, "f1", None, "lesion sensitivity or precision is undefined")
        else:
            total = sensitivity + precision
            _put(result, "f1", 2 * sensitivity * precision / total if total > 0 else 0.0, None)
        counted = reference_count + false_positive
        # BraTS: every false positive adds a lesion with Dice 0; no lesion on either side scores 1.
        result["lesion_dice"] = float(self.lesion_dice_each.sum() / counted) if counted else 1.0
        result["min_lesion_volume_ml"] = self.min_volume_ml
        result["match_rule"] = (
            "any overlap" if self.iou_threshold is None else f"intersection over union >= {self.iou_threshold:g}"
        )
        return result

    def rows(self) -> List[Dict[str, Any]]:
        """One row per reference lesion and per predicted component (``MATCH_COLUMNS``), for a CSV file."""
        rows: List[Dict[str, Any]] = []
        iou, dice = self.iou, self.lesion_dice_each
        for side, labels, voxels in (
            ("reference", self.reference_labels, self.reference_voxels),
            ("prediction", self.prediction_labels, self.prediction_voxels),
        ):
            centres = self._centroids(labels, len(voxels))
            for index in range(len(voxels)):
                if side == "reference":
                    partners = np.flatnonzero(self.matched[index]) + 1
                    status = "detected" if partners.size else "missed"
                    best_iou = float(iou[index].max()) if iou.shape[1] else 0.0
                    lesion_dice: Optional[float] = float(dice[index])
                else:
                    partners = np.flatnonzero(self.matched[:, index]) + 1
                    status = "true_positive" if partners.size else "false_positive"
                    best_iou = float(iou[:, index].max()) if iou.shape[0] else 0.0
                    lesion_dice = None
                values = (
                    side,
                    index + 1,
                    status,
                    float(voxels[index] * self.grid.voxel_volume_ml),
                    " ".join(str(p) for p in partners),
                    best_iou,
                    lesion_dice,
                    *(float(c) for c in centres[index]),
                )
                rows.append(dict(zip(MATCH_COLUMNS, values)))
        return rows

    def _centroids(self, labels: np.ndarray, count: int) -> np.ndarray:
        if count == 0:
            return np.zeros((0, 3))
        centres = np.array(ndimage.center_of_mass(labels > 0, labels, np.arange(1, count + 1))).reshape(-1, 3)
        return self.grid.physical_points(centres + box_origin(self.box))


def _put(result: Dict[str, Any], key: str, value: Optional[float], reason: Optional[str]) -> None:
    result[key] = value
    if value is None:
        result[f"{key}_reason"] = reason


def match_lesions(
    reference: np.ndarray,
    prediction: np.ndarray,
    grid: VoxelGrid,
    *,
    min_volume_ml: float = 0.0,
    iou_threshold: Optional[float] = None,
) -> LesionMatch:
    """Match the lesions of two boolean arrays on ``grid`` (see the module docstring for the rules)."""
    if iou_threshold is not None and not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
    min_voxels = min_voxels_for(min_volume_ml, grid)
    box = foreground_box(reference | prediction)
    if box is None:
        empty = np.zeros((0, 0, 0), dtype=np.int32)
        return LesionMatch(
            empty, empty, None, grid, np.zeros(0, int), np.zeros(0, int), np.zeros((0, 0), int),
            np.zeros((0, 0), bool), min_volume_ml, iou_threshold,
        )  # fmt: skip
    reference_labels, reference_count = connected_lesions(reference[box], min_voxels)
    prediction_labels, prediction_count = connected_lesions(prediction[box], min_voxels)
    reference_voxels = np.bincount(reference_labels.ravel(), minlength=reference_count + 1)[1:]
    prediction_voxels = np.bincount(prediction_labels.ravel(), minlength=prediction_count + 1)[1:]
    both = (reference_labels > 0) & (prediction_labels > 0)
    pair = reference_labels[both].astype(np.int64) * (prediction_count + 1) + prediction_labels[both]
    overlap = np.bincount(pair, minlength=(reference_count + 1) * (prediction_count + 1))
    overlap = overlap.reshape(reference_count + 1, prediction_count + 1)[1:, 1:]
    match = LesionMatch(
        reference_labels, prediction_labels, box, grid, reference_voxels, prediction_voxels, overlap,
        overlap > 0, min_volume_ml, iou_threshold,
    )  # fmt: skip
    if iou_threshold is not None:
        match.matched = match.iou >= iou_threshold
    return match
