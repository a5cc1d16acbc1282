"""The one display table of a label's metrics (``evaluate``'s table and the panel's table node): rows in a fixed
order with the values of the metrics, worked out by hand on two small masks; undefined values carry their reason."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from SpineMetSegLib.analysis.metric_table import ROWS, VOLUME_DIFFERENCE_NOTE, display_rows
from SpineMetSegLib.analysis.metrics import SPECIFICITY_NOTE, compute_metrics

SHAPE = (20, 20, 20)  # 8000 voxels of 1 mm^3


def image(*boxes) -> sitk.Image:
    array = np.zeros(SHAPE, dtype=np.uint8)
    for box in boxes:
        array[box] = 1
    return sitk.GetImageFromArray(array)


# A: a 4 mm cube found by both; B: a 2 mm cube only in the reference; C: a 2 mm cube only in the prediction.
A = (slice(2, 6), slice(2, 6), slice(2, 6))
B = (slice(12, 14), slice(12, 14), slice(12, 14))
C = (slice(15, 17), slice(2, 4), slice(15, 17))


@pytest.fixture(scope="module")
def rows():
    metrics = compute_metrics(image(A, B), image(A, C), labels=[1])["1"]
    return {row.name: row for row in display_rows(metrics)}


def test_the_rows_come_in_the_tables_fixed_order(rows):
    assert list(rows) == [name for _, name, _, _ in ROWS]
    assert list(rows)[:2] == ["Dice", "IoU"] and list(rows)[-1] == "Lesion-wise Dice"


def test_voxel_overlap_rows_hold_the_values_worked_out_by_hand(rows):
    # 64 voxels in common out of 72 in each mask; 8 false positives among the 8000 - 72 true background voxels.
    assert rows["Dice"].value == pytest.approx(2 * 64 / (72 + 72))
    assert rows["IoU"].value == pytest.approx(64 / 80)
    assert rows["Sensitivity"].value == pytest.approx(64 / 72)
    assert rows["Precision"].value == pytest.approx(64 / 72)
    assert rows["Specificity"].value == pytest.approx((8000 - 80) / (8000 - 72))
    assert rows["Volume reference"].value == pytest.approx(0.072) and rows["Volume reference"].unit == "mL"
    assert rows["Volume difference"].value == pytest.approx(0.0)
    assert rows["HD95"].unit == "mm" and rows["HD95"].value > 0


def test_lesion_rows_count_found_missed_and_false_lesions_as_integers(rows):
    counts = {name: rows[name].value for name in ("Lesions in reference", "Lesions in prediction", "Lesions detected",
                                                  "Lesions missed", "False-positive lesions")}
    assert counts == {"Lesions in reference": 2, "Lesions in prediction": 2, "Lesions detected": 1,
                      "Lesions missed": 1, "False-positive lesions": 1}
    assert all(rows[name].is_count for name in counts)
    assert not rows["Dice"].is_count
    assert rows["Lesion sensitivity"].value == pytest.approx(0.5)
    assert rows["Lesion F1"].value == pytest.approx(0.5)


def test_specificity_and_the_volume_difference_carry_the_note_that_says_how_to_read_them(rows):
    assert rows["Specificity"].note == SPECIFICITY_NOTE
    assert rows["Volume difference"].note == VOLUME_DIFFERENCE_NOTE
    assert VOLUME_DIFFERENCE_NOTE == "volume_difference_ml is prediction minus reference"
    assert rows["Dice"].note == ""


def test_an_undefined_value_is_none_with_the_reason_the_metrics_give():
    metrics = compute_metrics(image(A), image(), labels=[1])["1"]  # nothing predicted: no surface to measure
    rows = {row.key: row for row in display_rows(metrics)}
    assert metrics["hd95_mm"] is None and metrics["hd95_mm_reason"]
    assert rows["hd95_mm"].value is None and rows["hd95_mm"].note == metrics["hd95_mm_reason"]
    assert rows["dice"].value == 0.0 and rows["lesions.missed"].value == 1
