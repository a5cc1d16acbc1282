"""The one display table of a label's metrics, shared by ``spinemetseg evaluate`` and the Slicer panel.

Usage::

    from SpineMetSegLib.analysis.metric_table import display_rows
    for row in display_rows(metrics["1"]):          # one label's block of the metrics JSON
        print(row.name, row.value, row.unit, row.note)

Rows in a fixed order (voxel overlap, distances, volumes, lesion detection); ratios are fractions 0..1, like the
metrics JSON; a value that is not defined is None with the reason the metrics give; specificity and the volume
difference carry the note that says how to read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Mapping, Optional

from .metrics import NOTES, SPECIFICITY_NOTE, metric_value

VOLUME_DIFFERENCE_NOTE = NOTES[1]
# (metrics key, shown name, unit, note for every value)
ROWS = (
    ("dice", "Dice", "", ""),
    ("iou", "IoU", "", ""),
    ("sensitivity", "Sensitivity", "", ""),
    ("specificity", "Specificity", "", SPECIFICITY_NOTE),
    ("precision", "Precision", "", ""),
    ("hd95_mm", "HD95", "mm", ""),
    ("assd_mm", "ASSD", "mm", ""),
    ("volume_reference_ml", "Volume reference", "mL", ""),
    ("volume_prediction_ml", "Volume prediction", "mL", ""),
    ("volume_difference_ml", "Volume difference", "mL", VOLUME_DIFFERENCE_NOTE),
    ("lesions.reference_count", "Lesions in reference", "", ""),
    ("lesions.prediction_count", "Lesions in prediction", "", ""),
    ("lesions.detected", "Lesions detected", "", ""),
    ("lesions.missed", "Lesions missed", "", ""),
    ("lesions.false_positive", "False-positive lesions", "", ""),
    ("lesions.sensitivity", "Lesion sensitivity", "", ""),
    ("lesions.precision", "Lesion precision", "", ""),
    ("lesions.f1", "Lesion F1", "", ""),
    ("lesions.lesion_dice", "Lesion-wise Dice", "", ""),
)


@dataclass(frozen=True)
class DisplayRow:
    key: str  # dotted key in the metrics block ("lesions.f1")
    name: str
    value: Optional[float]  # None where the metric is not defined (see ``reason``)
    unit: str
    note: str  # how to read the value, or why it is not defined

    @property
    def is_count(self) -> bool:
        return isinstance(self.value, int)


def reason(metrics: Mapping[str, Any], key: str) -> Optional[str]:
    """Why ``key`` is not defined (the ``<key>_reason`` the metrics give), or None."""
    *parents, leaf = key.split(".")
    block: Any = metrics
    for part in parents:
        block = block.get(part, {}) if isinstance(block, Mapping) else {}
    return block.get(f"{leaf}_reason") if isinstance(block, Mapping) else None


def display_rows(metrics: Mapping[str, Any]) -> List[DisplayRow]:
    """The table rows of one label's metrics block."""
    rows = []
    for key, name, unit, note in ROWS:
        value = metric_value(metrics, key)
        rows.append(DisplayRow(key, name, value, unit, (reason(metrics, key) or "") if value is None else note))
    return rows
