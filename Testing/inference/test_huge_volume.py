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
import SimpleITK as sitk
from inference_fixtures import SAGITTAL, make_card, mri_like, seeded_network

from SpineMetSegLib import inference
from SpineMetSegLib.images import imageio, regrid
from SpineMetSegLib.images.imageio import Geometry


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
