"""The inference pipeline: geometry kept, inputs checked, post-processing, memory fallback, progress, real scans."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from inference_fixtures import (
    AXIAL,
    SAGITTAL,
    ThresholdNet,
    dice,
    geometry,
    lesion_mask,
    make_card,
    mri_like,
    oblique,
    seeded_network,
)

from SpineMetSegLib import inference
from SpineMetSegLib.errors import GeometryError, ImageError
from SpineMetSegLib.images import imageio
from SpineMetSegLib.inference import preprocessing
from SpineMetSegLib.inference.postprocessing import clean_lesions
from SpineMetSegLib.labels import ModelLabel
from SpineMetSegLib.progress import format_progress, parse_progress

LESION_BOX = (slice(16, 24), slice(18, 27), slice(3, 7))  # (i, j, k) in a 40 x 48 x 10 volume

GRIDS = {
    "sagittal": dict(spacing=(0.9, 0.8, 3.0), direction=SAGITTAL, origin=(12.5, -40.0, 80.0)),
    "axial": dict(spacing=(0.7, 0.7, 3.5), direction=AXIAL, origin=(100.0, 90.0, -20.0)),
    "oblique": dict(spacing=(0.9, 1.1, 2.5), direction=oblique(), origin=(-3.0, 7.0, 11.0)),
}


@pytest.mark.parametrize("grid", sorted(GRIDS))
def test_labels_and_probabilities_come_back_on_the_input_grid_where_the_lesion_is(grid):
    image = mri_like(**GRIDS[grid], lesion=LESION_BOX)
    result = inference.segment_images(
        {"t1": image}, make_card(), ThresholdNet(), device="cpu", probabilities=True
    )
    assert geometry(result.labels) == geometry(image)
    assert geometry(result.probabilities) == geometry(image)
    assert result.labels.GetPixelID() == sitk.sitkUInt8
    assert result.probabilities.GetPixelID() == sitk.sitkFloat32
    found = sitk.GetArrayFromImage(result.labels) == ModelLabel.METASTASIS
    assert dice(found, lesion_mask(image, LESION_BOX)) > 0.8
    probability = sitk.GetArrayFromImage(result.probabilities)
    assert probability[lesion_mask(image, LESION_BOX)].mean() > 0.9
    assert len(result.lesion_volumes_ml) == 1


def test_a_3d_model_keeps_the_input_grid():
    card = make_card(dimensions=3, patch_size=[16, 16, 16], spacing_mm=(1.0, 1.0, 1.0))
    image = mri_like((20, 24, 8), spacing=(1.2, 1.1, 2.0), direction=oblique(35.0, -10.0))
    result = inference.segment_images({"t2": image}, card, seeded_network(card), device="cpu")
    assert geometry(result.labels) == geometry(image)
    assert set(np.unique(sitk.GetArrayFromImage(result.labels))) <= {0, 1, 2, 3}


def test_a_second_input_on_another_grid_is_resampled_onto_the_first():
    t1 = mri_like(**GRIDS["sagittal"], seed=1)
    # STIR on its own grid, shifted by whole voxels from T1's, with the lesion block at the same place in space.
    stir_box = (slice(14, 22), slice(16, 25), slice(2, 6))
    stir = mri_like((36, 44, 12), spacing=(0.9, 0.8, 3.0), direction=SAGITTAL, seed=2, lesion=stir_box,
                    origin=t1.TransformIndexToPhysicalPoint((2, 2, 1)))
    result = inference.segment_images({"t1": t1, "stir": stir}, make_card(), ThresholdNet(channel=2), device="cpu")
    assert geometry(result.labels) == geometry(t1)
    found = sitk.GetArrayFromImage(result.labels) == ModelLabel.METASTASIS
    assert dice(found, lesion_mask(t1, LESION_BOX)) > 0.9


def test_the_body_crop_does_not_change_the_segmentation_near_the_body():
    card = make_card()
    image = mri_like((40, 48, 10), lesion=LESION_BOX)
    padded_array = np.zeros((10, 48 + 60, 40 + 60), dtype=np.float32)  # 30 empty voxels on each side in i, j
    padded_array[:, 30:78, 30:70] = sitk.GetArrayFromImage(image)
    padded = sitk.GetImageFromArray(padded_array)
    padded.SetSpacing(image.GetSpacing())
    padded.SetOrigin([o - 30 * s for o, s in zip(image.GetOrigin()[:2], image.GetSpacing()[:2])] + [0.0])
    small = inference.segment_images({"t1": image}, card, ThresholdNet(), device="cpu")
    large = inference.segment_images({"t1": padded}, card, ThresholdNet(), device="cpu")
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(large.labels)[:, 30:78, 30:70], sitk.GetArrayFromImage(small.labels)
    )
    assert not sitk.GetArrayFromImage(large.labels)[:, :20].any()


def test_prepare_crops_to_the_body_and_zero_fills_missing_channels():
    image = mri_like((40, 48, 10), spacing=(1.0, 1.0, 1.0))
    padded = sitk.ConstantPad(image, (40, 0, 0), (40, 0, 0), 0.0)
    prepared = preprocessing.prepare({"t2": padded}, make_card(spacing_mm=(None, None, None)))
    assert prepared.array.shape[0] == 3
    assert prepared.channels == ["t2"]
    assert not prepared.array[0].any() and not prepared.array[2].any()
    crop_i = prepared.box[0]
    # The body spans i = 40 + [4, 36) of 120; the margin adds 10 voxels of 1 mm each side.
    assert 40 + 4 - 11 <= crop_i.start <= 40 + 4 - 9
    assert 40 + 36 + 9 <= crop_i.stop <= 40 + 36 + 11
    body = prepared.array[1][prepared.array[1] > -1.0]
    assert abs(float(body.mean())) < 0.5


def test_the_crop_of_a_small_body_is_widened_to_one_window_in_the_slice_plane():
    image = mri_like((12, 12, 12), spacing=(1.0, 1.0, 1.0))
    padded = sitk.ConstantPad(image, (40, 40, 40), (40, 40, 40), 0.0)  # 92 voxels a side, body near the middle
    card = make_card(spacing_mm=(None, None, None), patch_size=[64, 48])
    prepared = preprocessing.prepare({"t1": padded}, card)
    sizes = [b.stop - b.start for b in prepared.box]
    assert sizes[0] < 64  # across the slices (slice axis 0): the body and its margin only
    assert sizes[1:] == [64, 48]
    body = [(40, 52)] * 3
    assert all(b.start <= low and high <= b.stop for b, (low, high) in zip(prepared.box, body))


def test_unknown_sequence_is_refused():
    with pytest.raises(ImageError, match="does not take a 'flair' sequence"):
        inference.segment_images({"flair": mri_like()}, make_card(), ThresholdNet(), device="cpu")


def test_fewer_sequences_than_the_card_needs_are_refused():
    card = make_card(min_inputs=2)
    with pytest.raises(ImageError, match="needs at least 2 of the sequences"):
        inference.segment_images({"t1": mri_like()}, card, ThresholdNet(), device="cpu")


def test_ct_intensities_are_refused():
    array = np.full((10, 48, 40), -1000.0, dtype=np.float32)
    array[:, 10:38, 8:32] = 40.0
    array[:, 20:26, 18:24] = 900.0
    ct = sitk.GetImageFromArray(array)
    with pytest.raises(ImageError, match="looks like CT"):
        inference.segment_images({"t1": ct}, make_card(), ThresholdNet(), device="cpu")


def test_real_mri_with_a_few_negative_voxels_is_not_taken_for_ct():
    image = mri_like()
    shifted = image - 47.0
    assert not preprocessing.looks_like_ct(shifted)


def test_a_2d_image_is_refused():
    flat = sitk.Image([40, 48], sitk.sitkFloat32) + 100.0
    with pytest.raises(ImageError, match="2D"):
        inference.segment_images({"t1": flat}, make_card(), ThresholdNet(), device="cpu")


def test_inputs_that_do_not_overlap_are_refused():
    t1 = mri_like()
    far = mri_like(origin=(500.0, 0.0, 0.0))
    with pytest.raises(GeometryError, match="does not overlap"):
        inference.segment_images({"t1": t1, "t2": far}, make_card(), ThresholdNet(), device="cpu")


def test_small_lesions_and_lesions_away_from_bone_are_removed():
    labels = np.zeros((12, 12, 12), dtype=np.uint8)
    labels[0:5, 0:5, 0:5] = ModelLabel.VERTEBRAL_BODY
    labels[1:3, 1:3, 1:3] = ModelLabel.METASTASIS  # 8 voxels inside the body: kept
    labels[8:11, 8:11, 8:11] = ModelLabel.METASTASIS  # 27 voxels away from bone
    labels[0, 10, 0] = ModelLabel.METASTASIS  # 1 voxel: a speck
    cleaned, volumes = clean_lesions(
        labels.copy(), None, voxel_volume_ml=0.001, min_lesion_volume_ml=0.005, must_touch_bone=True
    )
    assert volumes == [pytest.approx(0.008)]
    assert (cleaned == ModelLabel.METASTASIS).sum() == 8
    assert cleaned[9, 9, 9] == ModelLabel.BACKGROUND
    kept_without_bone_rule, volumes = clean_lesions(labels.copy(), None, voxel_volume_ml=0.001)
    assert sorted(volumes) == [pytest.approx(0.001), pytest.approx(0.008), pytest.approx(0.027)]


def test_a_removed_lesion_takes_its_fallback_label():
    labels = np.zeros((6, 6, 6), dtype=np.uint8)
    labels[2, 2, 2] = ModelLabel.METASTASIS
    fallback = np.full(labels.shape, ModelLabel.SPINAL_CANAL, dtype=np.uint8)
    cleaned, volumes = clean_lesions(labels, fallback, voxel_volume_ml=0.001, min_lesion_volume_ml=0.01)
    assert volumes == []
    assert cleaned[2, 2, 2] == ModelLabel.SPINAL_CANAL
    assert (cleaned[labels != ModelLabel.SPINAL_CANAL] == 0).all()


def test_a_fallback_function_is_asked_only_for_the_removed_voxels():
    labels = np.zeros((8, 8, 8), dtype=np.uint8)
    labels[1:3, 1:3, 1:3] = ModelLabel.METASTASIS  # 8 voxels: kept
    labels[6, 5, 4] = ModelLabel.METASTASIS  # a speck: removed
    asked = []

    def fallback(points):
        asked.append([index.tolist() for index in points])
        return np.full(points[0].size, ModelLabel.SPINAL_CANAL, dtype=np.uint8)

    cleaned, volumes = clean_lesions(labels, fallback, voxel_volume_ml=0.001, min_lesion_volume_ml=0.005)
    assert volumes == [pytest.approx(0.008)]
    assert asked == [[[6], [5], [4]]]
    assert cleaned[6, 5, 4] == ModelLabel.SPINAL_CANAL
    assert (cleaned == ModelLabel.METASTASIS).sum() == 8


@pytest.mark.parametrize("grid", sorted(GRIDS))
def test_inputs_are_interpolated_onto_the_model_grid_as_sitk_linear_resampling_does(grid):
    image = sitk.Cast(mri_like(**GRIDS[grid], lesion=LESION_BOX), sitk.sitkInt16)
    oriented, _, _ = preprocessing.oriented_grid(image, "LPS")
    # Another input's grid, turned by a few degrees about the same origin: not axis-aligned, so sitk.Resample.
    direction = np.array(oblique(5.0, 3.0)).reshape(3, 3) @ np.array(GRIDS[grid]["direction"]).reshape(3, 3)
    turned = imageio.Geometry.of(mri_like(**{**GRIDS[grid], "direction": tuple(direction.ravel())}))
    for model_grid in (preprocessing.target_grid(oriented, (None, 1.0, 1.3)), turned):
        expected = preprocessing.image_to_array(imageio.resample_onto(image, model_grid, pixel_type=sitk.sitkFloat32))
        found = preprocessing.interpolated_array(image, model_grid)
        assert found.dtype == np.float32 and found.shape == tuple(model_grid.size)
        assert expected.max() > 100  # the grids overlap: the body is in both
        np.testing.assert_allclose(found, expected, atol=1e-3)


def test_a_lesion_whose_mean_probability_is_below_the_card_threshold_is_removed():
    image = mri_like(**GRIDS["oblique"], lesion=LESION_BOX)
    card = make_card()
    result = inference.segment_images({"t1": image}, card, ThresholdNet(), device="cpu", probabilities=True)
    lesion = sitk.GetArrayFromImage(result.labels) == ModelLabel.METASTASIS
    # The rule reads the mean of the probability map the user can save, over the lesion's voxels.
    mean = float(sitk.GetArrayFromImage(result.probabilities)[lesion].mean())
    for threshold, kept in ((mean - 0.01, True), (mean + 0.01, False)):
        stricter = card.with_postprocessing(min_lesion_mean_probability=threshold)
        cleaned = inference.segment_images({"t1": image}, stricter, ThresholdNet(), device="cpu")
        assert (sitk.GetArrayFromImage(cleaned.labels) == ModelLabel.METASTASIS).any() == kept
        assert len(cleaned.lesion_volumes_ml) == int(kept)


class LimitedMemoryNet(torch.nn.Module):
    """A network that runs out of memory (the real exception) above ``limit`` windows a batch."""

    def __init__(self, inner: torch.nn.Module, limit: int):
        super().__init__()
        self.inner = inner
        self.limit = limit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > self.limit:
            raise torch.cuda.OutOfMemoryError(f"out of memory: {x.shape[0]} windows")
        return self.inner(x)


def test_the_pipeline_retries_with_smaller_batches_and_gives_the_same_segmentation():
    card = make_card()
    network = seeded_network(card)
    image = mri_like(lesion=LESION_BOX)
    warnings = []
    normal = inference.segment_images({"t1": image}, card, network, device="cpu", mixed_precision=False)
    limited = inference.segment_images(
        {"t1": image}, card, LimitedMemoryNet(network, 1), device="cpu", mixed_precision=False, warn=warnings.append
    )
    assert normal.batch_size > 1 and limited.batch_size == 1
    assert warnings and "retrying" in warnings[0]
    np.testing.assert_array_equal(sitk.GetArrayFromImage(normal.labels), sitk.GetArrayFromImage(limited.labels))


def test_progress_reaches_each_stage_in_order_and_never_goes_back():
    lines = []
    inference.segment_images(
        {"t1": mri_like()},
        make_card(),
        ThresholdNet(),
        device="cpu",
        progress=lambda stage, percent, message: lines.append(format_progress(stage, percent, message)),
    )
    reports = [parse_progress(line) for line in lines]
    assert all(report is not None for report in reports)
    percents = [report.percent for report in reports]
    assert percents == sorted(percents)
    stages = [report.stage for report in reports]
    assert stages[0] == "preprocess" and stages[-1] == "postprocess"
    assert "inference" in stages
    assert percents[-1] >= 90


@pytest.mark.parametrize("grid", sorted(GRIDS))
def test_reorienting_by_permuting_axes_matches_sitk_dicomorient(grid):
    image = mri_like(**GRIDS[grid], lesion=LESION_BOX)
    expected = sitk.DICOMOrient(image, "LPS")
    oriented, axes, flips = preprocessing.oriented_grid(image, "LPS")
    assert oriented.matches(imageio.Geometry.of(expected), tolerance=1e-9)
    np.testing.assert_array_equal(
        preprocessing.reoriented_array(image, axes, flips), sitk.GetArrayFromImage(expected).transpose(2, 1, 0)
    )
