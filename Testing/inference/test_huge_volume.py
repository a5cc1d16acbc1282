"""Huge volumes: bounded memory without changing a single label, and progress while reading.

The peak memory of ``segment`` on the 1024 x 1024 x 600 case is measured by ``benchmarks/huge_volume.py``
(a benchmark, not a test: it takes minutes and gigabytes). These tests check what makes it bounded on small
volumes: the slab-wise interpolation gives exactly the values of the whole-volume one, ``segment_files`` (which
releases its inputs and pastes the labels without extra copies) gives exactly the labels and probabilities of
the unchanged in-memory path, the NIfTI check pass keeps no voxels of an integer image, and reading reports
progress.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from inference_fixtures import (
    AXIAL,
    LESION_INTENSITY,
    SAGITTAL,
    make_card,
    make_card_json,
    mri_like,
    seeded_network,
)

from SpineMetSegLib import inference
from SpineMetSegLib.images import imageio, regrid
from SpineMetSegLib.images.imageio import Geometry
from SpineMetSegLib.inference import pipeline, predictor, preprocessing, restore
from SpineMetSegLib.inference.predictor import Predictor
from SpineMetSegLib.labels import ModelLabel
from SpineMetSegLib.models.catalog import card_from_dict


def _grids():
    source = Geometry((40, 30, 20), (0.5, 0.7, 2.0), (1.0, -3.0, 5.0), SAGITTAL)
    # LPS target, other spacings, partly outside the source (those points are 0)
    target = Geometry((25, 23, 31), (1.0, 0.9, 1.1), (-2.0, -5.0, -9.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    return source, target


def test_interpolation_in_slabs_gives_exactly_the_values_of_the_whole_volume(monkeypatch):
    source, target = _grids()
    maps = regrid.axis_maps(source, target)
    rng = np.random.default_rng(3)
    for dtype in (np.int16, np.float32):
        array = (rng.random(source.size) * 1000).astype(dtype)
        monkeypatch.setattr(regrid, "SLAB_VOXELS", 1 << 40)
        whole = regrid.interpolate(array, maps)
        assert np.count_nonzero(whole) > whole.size // 4 and np.count_nonzero(whole == 0) > 0  # inside and out
        for slab in (1, 50, 700, 5000):
            monkeypatch.setattr(regrid, "SLAB_VOXELS", slab)
            in_slabs = regrid.interpolate(array, maps)
            assert in_slabs.dtype == np.float32 and in_slabs.shape == whole.shape
            assert np.array_equal(in_slabs, whole), (dtype, slab)


def test_segment_files_gives_exactly_the_labels_and_probabilities_of_the_in_memory_path(tmp_path, monkeypatch):
    # Before the memory work, segment_files read the images and ran segment_images on them, keeping the inputs
    # and interpolating whole volumes: that path is still segment_images with release_inputs=False.
    t1 = mri_like((40, 48, 10), spacing=(0.9, 0.8, 3.0), direction=SAGITTAL, origin=(12.0, -40.0, 80.0))
    stir = mri_like((36, 44, 12), spacing=(1.0, 0.9, 2.5), direction=SAGITTAL, origin=(13.0, -39.0, 79.0), seed=2)
    imageio.write_image(t1, tmp_path / "t1.nii.gz")
    imageio.write_image(stir, tmp_path / "stir.nrrd")
    card = make_card(min_lesion_volume_ml=0.0)
    model = seeded_network(card)
    options = dict(device="cpu", threads=1, mixed_precision=False)

    monkeypatch.setattr(regrid, "SLAB_VOXELS", 1 << 40)
    images = {"t1": imageio.read_image(tmp_path / "t1.nii.gz"), "stir": imageio.read_image(tmp_path / "stir.nrrd")}
    before = inference.segment_images(images, card, model, probabilities=True, **options)
    assert len(images) == 2  # the caller's images are left alone

    monkeypatch.setattr(regrid, "SLAB_VOXELS", 300)  # many slabs on this small case
    after = inference.segment_files(
        {"t1": tmp_path / "t1.nii.gz", "stir": tmp_path / "stir.nrrd"}, tmp_path / "seg.nii.gz", card, model,
        probabilities_path=tmp_path / "prob.nrrd", **options,
    )
    labels = sitk.GetArrayFromImage(before.labels)
    assert 0 < np.count_nonzero(labels) < labels.size  # a segmentation that could differ
    for image in (after.labels, imageio.read_image(tmp_path / "seg.nii.gz")):
        assert Geometry.of(image).matches(Geometry.of(before.labels))
        assert image.GetPixelID() == sitk.sitkUInt8
        assert np.array_equal(sitk.GetArrayFromImage(image), labels)
    assert np.array_equal(sitk.GetArrayFromImage(after.probabilities), sitk.GetArrayFromImage(before.probabilities))
    assert after.lesion_volumes_ml == before.lesion_volumes_ml


def _big_int16(path):
    rng = np.random.default_rng(0)
    image = sitk.GetImageFromArray(rng.integers(0, 2000, (120, 256, 256), dtype=np.int16))  # 15 MB of voxels
    sitk.WriteImage(image, str(path), True)
    return image


def test_the_nifti_check_keeps_no_voxels_of_an_integer_image(tmp_path, monkeypatch):
    path = tmp_path / "big.nii.gz"
    _big_int16(path)
    monkeypatch.setattr(imageio, "NIFTI_CHUNK_BYTES", 1 << 20)
    tracemalloc.start()
    try:
        imageio._check_nifti_complete(path, "T1 image")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # Before, the check appended every chunk to one bytes object: the whole 15 MB stream (and a copy of it).
    assert peak < 4 * imageio.NIFTI_CHUNK_BYTES


def test_reading_reports_progress_while_checking_and_while_itk_decodes(tmp_path, monkeypatch):
    path = tmp_path / "big.nii.gz"
    written = _big_int16(path)
    monkeypatch.setattr(imageio, "READ_PROGRESS_SECONDS", 0.002)
    monkeypatch.setattr(imageio, "NIFTI_CHUNK_BYTES", 1 << 20)
    reports = []
    image = imageio.read_image(path, name="T1", progress=lambda fraction, message: reports.append((fraction, message)))
    assert np.array_equal(sitk.GetArrayViewFromImage(image), sitk.GetArrayViewFromImage(written))
    fractions = [fraction for fraction, _ in reports]
    assert fractions == sorted(fractions) and all(0.0 <= f < 1.0 for f in fractions)
    checking = [f for f, message in reports if message.startswith("checking")]
    decoding = [f for f, message in reports if message.startswith("decoding")]
    assert len(checking) >= 2 and max(checking) <= 0.5  # the check pass: the first half, by bytes
    assert decoding and min(decoding) >= 0.5  # ITK's decoding: the second half, estimated by time


def test_segment_files_reports_reading_progress_before_it_segments(tmp_path, monkeypatch):
    path = tmp_path / "t1.nii.gz"
    rng = np.random.default_rng(0)
    image = sitk.GetImageFromArray(rng.integers(0, 2000, (40, 96, 96), dtype=np.int16))
    image.SetDirection(SAGITTAL)
    sitk.WriteImage(image, str(path), True)
    monkeypatch.setattr(imageio, "READ_PROGRESS_SECONDS", 0.0005)
    monkeypatch.setattr(imageio, "NIFTI_CHUNK_BYTES", 1 << 14)
    card = make_card()
    reports = []
    inference.segment_files(
        {"t1": path}, tmp_path / "seg.nrrd", card, seeded_network(card), device="cpu", threads=1,
        progress=lambda stage, percent, message: reports.append((stage, percent, message)),
    )
    reads = [report for report in reports if report[0] == "read"]
    assert len(reads) >= 3 and any("t1 checking" in message for _, _, message in reads)
    assert reports[len(reads)][0] != "read"  # every read line comes first
    percents = [percent for _, percent, _ in reports]
    assert percents == sorted(percents) and reports[-1][:2] == ("done", 100.0)


def test_an_integer_input_on_the_model_grid_is_prepared_exactly_as_its_float_copy_was(monkeypatch):
    # An int16 volume on the model's grid is read through a view in its stored type (no float32 copy of the
    # whole volume); a float64 volume of the same values still takes the float32 copy, the path every input
    # took before. The network input, the crop and the grids must be the same, bit for bit; the volume has more
    # voxels than the statistics sample, so the sample is drawn from the view as it was from the copy.
    from SpineMetSegLib.inference import preprocessing

    card = make_card()
    rng = np.random.default_rng(0)
    voxels = np.zeros((90, 130, 120), np.int16)  # (k, j, i): 1.4 million voxels
    voxels[10:80, 20:110, 25:100] = rng.integers(100, 1500, (70, 90, 75))
    monkeypatch.setattr(preprocessing, "BODY_SLAB_VOXELS", 5000)  # the body mask counted in many slabs
    for direction in ((1, 0, 0, 0, 1, 0, 0, 0, 1), (-1, 0, 0, 0, -1, 0, 0, 0, 1), SAGITTAL):
        prepared = {}
        for pixel_type in (sitk.sitkInt16, sitk.sitkFloat64):
            image = sitk.Cast(sitk.GetImageFromArray(voxels), pixel_type)
            image.SetDirection(direction)
            image.SetSpacing((0.8, 1.0, 1.0) if direction != SAGITTAL else (1.0, 1.0, 0.7))
            prepared[pixel_type] = preprocessing.prepare({"t1": image}, card)
        views, copies = prepared[sitk.sitkInt16], prepared[sitk.sitkFloat64]
        assert views.array.shape[1:] != tuple(reversed(voxels.shape))  # cropped to the body
        assert views.box == copies.box and views.crop_grid == copies.crop_grid
        assert views.array.dtype == np.float32 and np.array_equal(views.array, copies.array)


class BandsNet(torch.nn.Module):
    """A fixed 1 x 1 convolution of the first channel's z-score: background below 0, vertebral body up to 2.5,
    metastasis above, spinal canal nowhere; sharp, so that labels change only at real edges (few boundaries)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 1)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.bias.zero_()
            self.conv.weight[1, 0], self.conv.bias[1] = 20.0, -25.0
            self.conv.weight[2, 0] = 10.0
            self.conv.bias[3] = -10.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def _lesion_card():
    # Lesions under 0.02 ml go (their voxels take the fallback label), and so do lesions the network doubts.
    data = make_card_json(min_lesion_volume_ml=0.02)
    data["postprocessing"]["min_lesion_mean_probability"] = 0.9
    return card_from_dict(data)


def _three_lesions(size, spacing, direction, boxes, faint):
    """``mri_like`` with a bright lesion, a speck and a lesion of intensity ``faint`` (a z-score just above the
    metastasis threshold: the network doubts it)."""
    image = mri_like(size, spacing=spacing, direction=direction, origin=(5.0, -20.0, 30.0))
    voxels = sitk.GetArrayFromImage(image)  # (k, j, i)
    for (box, value) in zip(boxes, (LESION_INTENSITY, LESION_INTENSITY, faint)):
        voxels[box[2], box[1], box[0]] = value
    result = sitk.GetImageFromArray(voxels)
    result.CopyInformation(image)
    return result


CASES = {
    # sagittal, resampled onto the 1 mm model grid (interpolation between model voxels)
    "sagittal": _three_lesions(
        (64, 72, 12), (0.9, 0.8, 3.0), SAGITTAL,
        [(slice(16, 26), slice(14, 28), slice(3, 8)), (slice(40, 42), slice(30, 32), slice(5, 6)),
         (slice(22, 30), slice(38, 46), slice(2, 6))],
        faint=600.0,
    ),
    # axial 1 mm: already on the model grid (only reoriented), the huge-volume case
    "axial 1 mm": _three_lesions(
        (40, 44, 30), (1.0, 1.0, 1.0), AXIAL,
        [(slice(10, 18), slice(12, 20), slice(5, 12)), (slice(25, 26), slice(28, 30), slice(20, 21)),
         (slice(20, 26), slice(28, 34), slice(3, 9))],
        faint=600.0,
    ),
}


def _as_arrays(result):
    labels, lesion, volumes = result
    return sitk.GetArrayFromImage(labels), sitk.GetArrayFromImage(lesion), volumes


@pytest.mark.parametrize("case", sorted(CASES))
def test_streamed_probabilities_restore_exactly_what_the_whole_array_restores(case, monkeypatch):
    card = _lesion_card()
    prepared = preprocessing.prepare({"t1": CASES[case]}, card)
    network = Predictor(card, BandsNet(), device="cpu", mixed_precision=False)
    whole = network.probabilities(prepared.array)
    expected = _as_arrays(restore.to_input_grid(whole, prepared, card, want=True))
    labels, lesion, volumes = expected
    # Three lesions found, a speck and a doubted one removed (their voxels take the fallback label): every step
    # that reads the probabilities ran.
    assert len(restore.to_input_grid(whole, prepared, make_card(), want=False)[2]) == 3
    assert set(np.unique(labels)) == {0, 1, 2} and len(volumes) == 1
    voxels = whole[0].size
    for chunk in (1, 2, 5):
        monkeypatch.setattr(predictor, "SLICES_PER_CHUNK", chunk)
        store = restore.StreamedProbabilities(whole.shape[1:], whole.shape[0], network.plan(prepared.array).slice_axis,
                                              keep_channel=ModelLabel.METASTASIS)
        network.stream(prepared.array, store.add, on_restart=store.restart)
        store.finish()
        assert 0 < store.kept_voxels < voxels // 2  # the probabilities kept: a fraction of the volume
        assert not restore.needs_every_probability(store, prepared)
        found = _as_arrays(restore.to_input_grid(store, prepared, card, want=True))
        assert np.array_equal(found[0], labels), (case, chunk)
        assert np.array_equal(found[1], lesion), (case, chunk)
        assert found[2] == volumes


def test_a_noisy_prediction_needs_every_probability_and_the_pipeline_gets_them_by_running_again(monkeypatch):
    # An untrained network: labels change everywhere, so the regridding interpolates every channel everywhere.
    card = _lesion_card()
    image = CASES["sagittal"]
    network = seeded_network(card)
    prepared = preprocessing.prepare({"t1": image}, card)
    predicted = Predictor(card, network, device="cpu", mixed_precision=False)
    store = restore.StreamedProbabilities(prepared.array.shape[1:], card.out_channels, 0)
    predicted.stream(prepared.array, store.add)
    store.finish()
    assert restore.needs_every_probability(store, prepared)
    with pytest.raises(regrid.AllProbabilitiesNeeded):
        restore.to_input_grid(store, prepared, card, want=False)

    options = dict(device="cpu", threads=1, mixed_precision=False, probabilities=True)
    before = inference.segment_images({"t1": image}, card, network, **options)
    monkeypatch.setattr(pipeline, "WHOLE_PROBABILITIES_BYTES", 0)  # every volume streamed
    monkeypatch.setattr(predictor, "SLICES_PER_CHUNK", 3)
    reports = []
    after = inference.segment_images({"t1": image}, card, network, progress=lambda *report: reports.append(report),
                                     **options)
    assert any("runs again" in message for _, _, message in reports)
    assert np.array_equal(sitk.GetArrayFromImage(after.labels), sitk.GetArrayFromImage(before.labels))
    assert np.array_equal(sitk.GetArrayFromImage(after.probabilities), sitk.GetArrayFromImage(before.probabilities))
    assert after.lesion_volumes_ml == before.lesion_volumes_ml


@pytest.mark.parametrize("case", sorted(CASES))
def test_segment_streams_a_volume_above_the_limit_with_exactly_the_same_outputs(case, tmp_path, monkeypatch):
    card = _lesion_card()
    options = dict(device="cpu", threads=1, mixed_precision=False)
    imageio.write_image(CASES[case], tmp_path / "t1.nii.gz")
    read = imageio.read_image(tmp_path / "t1.nii.gz")  # NIfTI stores the geometry in float32: the same input
    before = inference.segment_images({"t1": read}, card, BandsNet(), probabilities=True, **options)
    monkeypatch.setattr(pipeline, "WHOLE_PROBABILITIES_BYTES", 1000)
    monkeypatch.setattr(predictor, "SLICES_PER_CHUNK", 4)
    kept = []
    monkeypatch.setattr(restore.StreamedProbabilities, "finish",
                        lambda self, finish=restore.StreamedProbabilities.finish: kept.append(self) or finish(self))
    after = inference.segment_files({"t1": tmp_path / "t1.nii.gz"}, tmp_path / "seg.nii.gz", card, BandsNet(),
                                    probabilities_path=tmp_path / "prob.nii.gz", **options)
    assert len(kept) == 1  # streamed, once
    labels = sitk.GetArrayFromImage(before.labels)
    assert before.lesion_volumes_ml and np.count_nonzero(labels == 2)
    for image in (after.labels, imageio.read_image(tmp_path / "seg.nii.gz")):
        assert np.array_equal(sitk.GetArrayFromImage(image), labels)
    assert np.array_equal(sitk.GetArrayFromImage(imageio.read_image(tmp_path / "prob.nii.gz")),
                          sitk.GetArrayFromImage(before.probabilities))
    assert after.lesion_volumes_ml == before.lesion_volumes_ml
