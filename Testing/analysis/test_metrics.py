"""Voxel and lesion metrics, checked against independent implementations (SimpleITK, MONAI) on random blobs with
anisotropic spacing and an oblique direction, and against hand-built cases whose answer is known exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from monai.metrics import HausdorffDistanceMetric, SurfaceDistanceMetric

from SpineMetSegLib.analysis import metrics
from SpineMetSegLib.errors import GeometryError, ImageError, SpineMetSegError

SPACING = (0.7, 1.1, 2.5)  # (i, j, k) mm
OBLIQUE = tuple(
    (
        np.array([[math.cos(0.4), -math.sin(0.4), 0], [math.sin(0.4), math.cos(0.4), 0], [0, 0, 1]])
        @ np.array([[1, 0, 0], [0, math.cos(-0.3), -math.sin(-0.3)], [0, math.sin(-0.3), math.cos(-0.3)]])
    ).ravel()
)


def image_of(array: np.ndarray, spacing=SPACING, direction=OBLIQUE, origin=(12.5, -40.0, 300.25)) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    return image


def blobs(rng: np.random.Generator, shape, count: int) -> np.ndarray:
    """A few random ellipsoids (some may touch the image border)."""
    mask = np.zeros(shape, dtype=bool)
    grid = np.indices(shape)
    for _ in range(count):
        centre = rng.uniform(0, shape)
        radii = rng.uniform(1.5, np.array(shape) / 4)
        mask |= sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii)) <= 1
    return mask


def random_pair(seed: int, shape=(18, 40, 44)):
    rng = np.random.default_rng(seed)
    reference = blobs(rng, shape, 4)
    # A prediction that mostly agrees, misses some voxels, and adds blobs of its own.
    prediction = (reference & (rng.random(shape) < 0.93)) | blobs(rng, shape, 2)
    return reference, prediction


def monai_distances(reference: np.ndarray, prediction: np.ndarray) -> tuple:
    as_tensor = lambda mask: torch.from_numpy(mask[None, None].astype(np.float32))  # noqa: E731
    spacing = SPACING[::-1]  # MONAI takes the spacing of the tensor's axes: (k, j, i)
    hd = HausdorffDistanceMetric(percentile=95, include_background=True)
    asd = SurfaceDistanceMetric(symmetric=True, include_background=True)
    hd(as_tensor(prediction), as_tensor(reference), spacing=spacing)
    asd(as_tensor(prediction), as_tensor(reference), spacing=spacing)
    return float(hd.aggregate()), float(asd.aggregate())


@pytest.mark.parametrize("seed, padding", [(0, 0), (1, 0), (2, 12)])
def test_overlap_metrics_agree_with_simpleitk(seed: int, padding: int):
    reference, prediction = (np.pad(mask, padding) for mask in random_pair(seed))
    result = metrics.compute_metrics(image_of(reference.astype(np.uint8)), image_of(prediction.astype(np.uint8)))
    block = result["1"]
    overlap = sitk.LabelOverlapMeasuresImageFilter()
    # Source = prediction, target = reference: FNE = 1 - sensitivity, FDR = 1 - precision, FPE = 1 - specificity.
    overlap.Execute(image_of(prediction.astype(np.uint8)), image_of(reference.astype(np.uint8)))
    assert block["dice"] == pytest.approx(overlap.GetDiceCoefficient(), abs=1e-6)
    assert block["iou"] == pytest.approx(overlap.GetJaccardCoefficient(), abs=1e-6)
    assert block["sensitivity"] == pytest.approx(1 - overlap.GetFalseNegativeError(), abs=1e-6)
    assert block["precision"] == pytest.approx(1 - overlap.GetFalseDiscoveryRate(), abs=1e-6)
    assert block["specificity"] == pytest.approx(1 - overlap.GetFalsePositiveError(), abs=1e-6)
    assert block["volume_difference_ml"] == pytest.approx(
        overlap.GetVolumeSimilarity() * (block["volume_reference_ml"] + block["volume_prediction_ml"]) / 2
    )


@pytest.mark.filterwarnings("ignore::FutureWarning")  # MONAI's own deprecated argument, internally
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_surface_distances_agree_with_monai(seed: int):
    """MONAI: surface = voxels with a 6-neighbour outside (binary erosion), distances between surface-voxel
    centres, HD95 = max of the two one-way torch.quantile(0.95), ASSD = mean of both directions pooled."""
    reference, prediction = random_pair(seed)
    block = metrics.compute_metrics(image_of(reference.astype(np.uint8)), image_of(prediction.astype(np.uint8)))["1"]
    hd95, assd = monai_distances(reference, prediction)
    assert block["hd95_mm"] == pytest.approx(hd95, abs=1e-3)
    assert block["assd_mm"] == pytest.approx(assd, abs=1e-3)


def test_distances_use_the_spacing_per_axis_and_ignore_the_direction():
    reference, prediction = random_pair(4)
    oblique = metrics.compute_metrics(image_of(reference.astype(np.uint8)), image_of(prediction.astype(np.uint8)))
    identity = (1, 0, 0, 0, 1, 0, 0, 0, 1)
    straight = metrics.compute_metrics(
        image_of(reference.astype(np.uint8), direction=identity),
        image_of(prediction.astype(np.uint8), direction=identity),
    )
    swapped = metrics.compute_metrics(
        image_of(reference.astype(np.uint8), spacing=SPACING[::-1]),
        image_of(prediction.astype(np.uint8), spacing=SPACING[::-1]),
    )
    assert oblique["1"]["hd95_mm"] == pytest.approx(straight["1"]["hd95_mm"], abs=1e-9)
    assert oblique["1"]["assd_mm"] == pytest.approx(straight["1"]["assd_mm"], abs=1e-9)
    assert swapped["1"]["hd95_mm"] != pytest.approx(oblique["1"]["hd95_mm"], abs=1e-3)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_a_shifted_box_has_the_exact_surface_distances():
    """A box moved by 2 voxels along k (2.5 mm each): the face-to-face distance is 5 mm."""
    reference = np.zeros((20, 12, 12), dtype=np.uint8)
    reference[4:10, 3:9, 3:9] = 1
    prediction = np.roll(reference, 2, axis=0)
    block = metrics.compute_metrics(image_of(reference), image_of(prediction))["1"]
    hd95, assd = monai_distances(reference.astype(bool), prediction.astype(bool))
    assert block["hd95_mm"] == pytest.approx(hd95, abs=1e-3)
    assert block["assd_mm"] == pytest.approx(assd, abs=1e-3)
    assert block["hd95_mm"] == pytest.approx(5.0)
    assert block["dice"] == pytest.approx(2 * 4 / 12)


def test_volumes_are_in_millilitres_and_the_difference_is_prediction_minus_reference():
    reference = np.zeros((10, 10, 10), dtype=np.uint8)
    prediction = np.zeros_like(reference)
    reference[2:6, 2:6, 2:6] = 1  # 64 voxels
    prediction[2:4, 2:6, 2:6] = 1  # 32 voxels
    block = metrics.compute_metrics(image_of(reference), image_of(prediction))["1"]
    voxel_ml = 0.7 * 1.1 * 2.5 / 1000
    assert block["volume_reference_ml"] == pytest.approx(64 * voxel_ml)
    assert block["volume_prediction_ml"] == pytest.approx(32 * voxel_ml)
    assert block["volume_difference_ml"] == pytest.approx(-32 * voxel_ml)


def test_every_label_gets_its_own_block():
    reference, prediction = random_pair(5)
    other_reference, other_prediction = random_pair(6)
    reference_map = np.where(other_reference, 3, reference.astype(np.uint8)).astype(np.uint8)
    prediction_map = np.where(other_prediction, 3, prediction.astype(np.uint8)).astype(np.uint8)
    result = metrics.compute_metrics(image_of(reference_map), image_of(prediction_map))
    assert sorted(result) == ["1", "3"]
    for label in (1, 3):
        alone = metrics.compute_metrics(
            image_of((reference_map == label).astype(np.uint8)), image_of((prediction_map == label).astype(np.uint8))
        )["1"]
        assert result[str(label)]["dice"] == alone["dice"]
        assert result[str(label)]["hd95_mm"] == alone["hd95_mm"]
        assert result[str(label)]["lesions"] == alone["lesions"]


def test_design_keys_are_present_for_each_label():
    reference, prediction = random_pair(7)
    block = metrics.compute_metrics(image_of(reference.astype(np.uint8)), image_of(prediction.astype(np.uint8)))["1"]
    for key in ("dice", "iou", "sensitivity", "specificity", "precision", "hd95_mm", "assd_mm",
                "volume_reference_ml", "volume_prediction_ml", "volume_difference_ml"):  # fmt: skip
        assert isinstance(block[key], float), key
    for key in ("reference_count", "prediction_count", "detected", "missed", "false_positive"):
        assert isinstance(block["lesions"][key], int), key
    for key in ("sensitivity", "precision", "f1", "lesion_dice"):
        assert 0.0 <= block["lesions"][key] <= 1.0, key


def test_a_prediction_on_another_grid_is_resampled_onto_the_reference():
    reference, _ = random_pair(8)
    reference_image = image_of(reference.astype(np.uint8))
    # The same voxels on a larger grid that starts two voxels earlier along every axis.
    padded = np.pad(reference.astype(np.uint8), 2)
    start = reference_image.TransformContinuousIndexToPhysicalPoint((-2.0, -2.0, -2.0))
    block = metrics.compute_metrics(reference_image, image_of(padded, origin=start))["1"]
    assert block["dice"] == 1.0 and block["hd95_mm"] == 0.0
    # One voxel further along i: the physical prediction moved by 0.7 mm.
    start = reference_image.TransformContinuousIndexToPhysicalPoint((-1.0, -2.0, -2.0))
    moved = metrics.compute_metrics(reference_image, image_of(padded, origin=start))["1"]
    shifted = np.zeros_like(reference)
    shifted[:, :, 1:] = reference[:, :, :-1]
    expected = metrics.compute_metrics(reference_image, image_of(shifted.astype(np.uint8)))["1"]
    assert moved["dice"] == pytest.approx(expected["dice"])
    assert moved["dice"] < 1.0


def test_grids_that_do_not_overlap_are_an_error():
    reference, prediction = random_pair(9)
    far = image_of(prediction.astype(np.uint8), origin=(5000.0, 0.0, 0.0))
    with pytest.raises(GeometryError, match="do not overlap"):
        metrics.compute_metrics(image_of(reference.astype(np.uint8)), far)


def test_both_masks_empty_is_perfect_agreement_with_undefined_ratios():
    empty = image_of(np.zeros((6, 7, 8), dtype=np.uint8))
    block = metrics.compute_metrics(empty, empty, labels=[1], missing_ok=True)["1"]
    assert block["dice"] == 1.0 and block["iou"] == 1.0
    assert block["sensitivity"] is None and block["sensitivity_reason"] == "the reference is empty"
    assert block["precision"] is None and block["precision_reason"] == "the prediction is empty"
    assert block["specificity"] == 1.0
    assert block["hd95_mm"] is None and block["hd95_mm_reason"] == "both masks are empty"
    assert block["assd_mm"] is None and block["assd_mm_reason"] == "both masks are empty"
    assert block["lesions"]["lesion_dice"] == 1.0
    assert block["lesions"]["sensitivity"] is None and block["lesions"]["sensitivity_reason"]
    assert block["lesions"]["f1"] is None


def test_an_empty_prediction_scores_dice_0_and_undefined_precision_and_distances():
    reference = np.zeros((6, 7, 8), dtype=np.uint8)
    reference[2:4, 2:4, 2:4] = 1
    block = metrics.compute_metrics(
        image_of(reference), image_of(np.zeros_like(reference)), labels=[1], missing_ok=False
    )["1"]
    assert block["dice"] == 0.0 and block["iou"] == 0.0 and block["sensitivity"] == 0.0
    assert block["precision"] is None and block["precision_reason"] == "the prediction is empty"
    assert block["hd95_mm"] is None and block["hd95_mm_reason"] == "the prediction is empty"
    assert block["lesions"]["missed"] == 1 and block["lesions"]["precision"] is None


def test_an_empty_reference_scores_dice_0_and_undefined_sensitivity():
    prediction = np.zeros((6, 7, 8), dtype=np.uint8)
    prediction[1:3, 1:3, 1:3] = 1
    block = metrics.compute_metrics(image_of(np.zeros_like(prediction)), image_of(prediction), labels=[1])["1"]
    assert block["dice"] == 0.0
    assert block["sensitivity"] is None and block["sensitivity_reason"] == "the reference is empty"
    assert block["assd_mm"] is None and block["assd_mm_reason"] == "the reference is empty"
    assert block["lesions"]["false_positive"] == 1 and block["lesions"]["lesion_dice"] == 0.0


def lesion_maps(reference_boxes, prediction_boxes, shape=(12, 30, 30)):
    reference = np.zeros(shape, dtype=np.uint8)
    prediction = np.zeros(shape, dtype=np.uint8)
    for box in reference_boxes:
        reference[box] = 1
    for box in prediction_boxes:
        prediction[box] = 1
    return image_of(reference), image_of(prediction)


def test_a_lesion_predicted_in_two_pieces_is_one_detection_and_no_false_positive():
    reference, prediction = lesion_maps(
        [np.s_[2:6, 2:20, 2:8]], [np.s_[2:6, 2:9, 2:8], np.s_[2:6, 12:20, 2:8]]
    )  # fmt: skip
    result = metrics.lesion_detection(reference, prediction)
    assert (result["reference_count"], result["prediction_count"]) == (1, 2)
    assert (result["detected"], result["missed"], result["false_positive"]) == (1, 0, 0)
    assert result["sensitivity"] == 1.0 and result["precision"] == 1.0 and result["f1"] == 1.0
    assert result["lesion_dice"] == pytest.approx(2 * 15 / (18 + 15))


def test_two_lesions_predicted_as_one_component_are_both_detected():
    reference, prediction = lesion_maps([np.s_[2:6, 2:8, 2:8], np.s_[2:6, 12:18, 2:8]], [np.s_[2:6, 2:18, 2:8]])
    result = metrics.lesion_detection(reference, prediction)
    assert (result["reference_count"], result["prediction_count"]) == (2, 1)
    assert (result["detected"], result["missed"], result["false_positive"]) == (2, 0, 0)
    assert result["lesion_dice"] == pytest.approx(2 * 6 / (6 + 16))


def test_misses_and_false_positives_give_lesion_sensitivity_precision_f1_and_brats_dice():
    reference, prediction = lesion_maps(
        [np.s_[2:5, 2:5, 2:5], np.s_[2:5, 10:13, 10:13], np.s_[7:10, 20:23, 20:23]],
        [np.s_[2:5, 2:5, 2:5], np.s_[7:9, 2:4, 20:22], np.s_[8:10, 12:14, 2:4]],
    )
    result = metrics.lesion_detection(reference, prediction)
    assert (result["detected"], result["missed"], result["false_positive"]) == (1, 2, 2)
    assert result["sensitivity"] == pytest.approx(1 / 3) and result["precision"] == pytest.approx(1 / 3)
    assert result["f1"] == pytest.approx(1 / 3)
    # Mean over 3 reference lesions (Dice 1, 0, 0) and 2 false positives (0 each).
    assert result["lesion_dice"] == pytest.approx(1 / 5)


def test_corner_touching_voxels_form_one_26_connected_lesion():
    reference, prediction = lesion_maps([np.s_[2, 2, 2], np.s_[3, 3, 3]], [np.s_[3, 3, 3]])
    result = metrics.lesion_detection(reference, prediction)
    assert result["reference_count"] == 1 and result["detected"] == 1


def test_minimum_lesion_volume_ignores_small_components_on_both_sides():
    reference, prediction = lesion_maps(
        [np.s_[2:6, 2:8, 2:8], np.s_[9, 20, 20]], [np.s_[2:6, 2:8, 2:8], np.s_[9, 25, 25]]
    )  # fmt: skip
    voxel_ml = 0.7 * 1.1 * 2.5 / 1000
    assert metrics.lesion_detection(reference, prediction)["false_positive"] == 1
    result = metrics.lesion_detection(reference, prediction, min_lesion_volume_ml=2 * voxel_ml)
    assert (result["reference_count"], result["prediction_count"], result["false_positive"]) == (1, 1, 0)
    assert result["min_lesion_volume_ml"] == 2 * voxel_ml


def test_iou_threshold_requires_enough_overlap_for_a_detection():
    # Reference 4x6x6 = 144 voxels, prediction overlaps 48 of them: IoU 48 / (144 + 48 - 48) = 1/3.
    reference, prediction = lesion_maps([np.s_[2:6, 2:8, 2:8]], [np.s_[2:6, 2:8, 6:8]])
    assert metrics.lesion_detection(reference, prediction)["detected"] == 1
    strict = metrics.lesion_detection(reference, prediction, iou_threshold=0.5)
    assert (strict["detected"], strict["missed"], strict["false_positive"]) == (0, 1, 1)
    assert strict["lesion_dice"] == 0.0
    loose = metrics.lesion_detection(reference, prediction, iou_threshold=0.3)
    assert loose["detected"] == 1 and loose["match_rule"] == "intersection over union >= 0.3"


def test_the_lesions_block_of_compute_metrics_uses_the_options():
    reference, prediction = lesion_maps([np.s_[2:6, 2:8, 2:8]], [np.s_[2:6, 2:8, 6:8]])
    block = metrics.compute_metrics(reference, prediction, iou_threshold=0.5)["1"]
    assert block["lesions"]["detected"] == 0 and block["dice"] == pytest.approx(2 * 48 / (144 + 48))


def test_different_label_values_without_a_choice_are_an_error():
    reference, prediction = random_pair(10)
    with pytest.raises(ImageError, match="different label values"):
        metrics.compute_metrics(image_of(reference.astype(np.uint8)), image_of(prediction.astype(np.uint8) * 2))
    chosen = metrics.compute_metrics(
        image_of(reference.astype(np.uint8)), image_of(prediction.astype(np.uint8) * 2), labels=[1]
    )
    assert chosen["1"]["volume_prediction_ml"] == 0.0


def test_a_label_missing_from_both_is_an_error_unless_allowed():
    reference, prediction = random_pair(11)
    images = image_of(reference.astype(np.uint8)), image_of(prediction.astype(np.uint8))
    with pytest.raises(ImageError, match="Label 4 is in neither"):
        metrics.compute_metrics(*images, labels=[4])
    assert metrics.compute_metrics(*images, labels=[4], missing_ok=True)["4"]["dice"] == 1.0
    with pytest.raises(ImageError, match="Both the reference and the prediction are empty"):
        empty = image_of(np.zeros((4, 4, 4), np.uint8))
        metrics.compute_metrics(empty, empty)
    with pytest.raises(ImageError, match="background"):
        metrics.compute_metrics(*images, labels=[0])


def test_non_label_images_and_non_binary_masks_are_errors():
    reference, prediction = random_pair(12)
    probabilities = image_of(prediction.astype(np.float32) * 0.7)
    with pytest.raises(ImageError, match="probability"):
        metrics.compute_metrics(image_of(reference.astype(np.uint8)), probabilities)
    with pytest.raises(ImageError, match="negative"):
        metrics.compute_metrics(image_of(reference.astype(np.int16) * -1), image_of(prediction.astype(np.int16)))
    with pytest.raises(ImageError, match="not binary"):
        metrics.lesion_detection(image_of(reference.astype(np.uint8) * 2), image_of(prediction.astype(np.uint8)))
    with pytest.raises(SpineMetSegError, match="IoU threshold"):
        metrics.compute_metrics(image_of(reference.astype(np.uint8)), image_of(prediction.astype(np.uint8)),
                                iou_threshold=1.5)  # fmt: skip
    with pytest.raises(SpineMetSegError, match="minimum lesion volume"):
        metrics.lesion_detection(image_of(reference.astype(np.uint8)), image_of(prediction.astype(np.uint8)),
                                 min_lesion_volume_ml=-1)  # fmt: skip


def test_float_label_maps_with_whole_values_are_accepted():
    reference, prediction = random_pair(13)
    as_float = metrics.compute_metrics(
        image_of(reference.astype(np.float32)), image_of(prediction.astype(np.float64))
    )  # fmt: skip
    as_int = metrics.compute_metrics(image_of(reference.astype(np.uint8)), image_of(prediction.astype(np.uint8)))
    assert as_float == as_int


def test_reference_with_one_value_per_lesion_merges_into_one_label():
    instances = np.zeros((8, 20, 20), dtype=np.uint16)
    instances[1:3, 2:5, 2:5] = 1
    instances[4:7, 10:15, 10:15] = 2
    merged = metrics.merge_instances(image_of(instances), label=1)
    result = metrics.compute_metrics(merged, image_of((instances > 0).astype(np.uint8)))
    assert result["1"]["dice"] == 1.0 and result["1"]["lesions"]["detected"] == 2
