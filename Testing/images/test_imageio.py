"""Image I/O: geometry survives every read, resample and write; bad inputs get clear errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from SpineMetSegLib.errors import GeometryError, ImageError, SpineMetSegError
from SpineMetSegLib.images import imageio


def rotation(ax: float, ay: float, az: float) -> tuple:
    cx, sx, cy, sy, cz, sz = math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay), math.cos(az), math.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return tuple((rz @ ry @ rx).ravel())


def oblique_volume(pixel=sitk.sitkInt16) -> sitk.Image:
    """A small volume with anisotropic spacing, an odd origin and an oblique, non-identity direction."""
    rng = np.random.default_rng(3)
    array = rng.integers(0, 1000, size=(7, 9, 11)).astype(np.int16)
    image = sitk.Cast(sitk.GetImageFromArray(array), pixel)
    image.SetSpacing((0.6, 0.75, 4.0))
    image.SetOrigin((-123.25, 45.5, 310.125))
    image.SetDirection(rotation(0.2, -0.35, 1.1))
    return image


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_geometry_and_voxels_survive_write_and_read(tmp_path: Path, suffix: str):
    image = oblique_volume()
    path = imageio.write_image(image, tmp_path / f"volume{suffix}")
    back = imageio.read_image(path)
    assert back.GetSize() == image.GetSize()
    # NIfTI keeps its affine in float32; NRRD and MHA keep every digit.
    tolerance = 1e-5 if suffix.startswith(".nii") else 1e-12
    np.testing.assert_allclose(back.GetSpacing(), image.GetSpacing(), atol=tolerance)
    np.testing.assert_allclose(back.GetOrigin(), image.GetOrigin(), atol=tolerance * 400)
    np.testing.assert_allclose(back.GetDirection(), image.GetDirection(), atol=tolerance)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))


def write_dicom_series(image: sitk.Image, folder: Path) -> None:
    """Write ``image`` as a DICOM series of one file per slice, with position and orientation tags."""
    folder.mkdir()
    direction = image.GetDirection()
    orientation = "\\".join(f"{v:.10f}" for v in (direction[0], direction[3], direction[6],
                                                   direction[1], direction[4], direction[7]))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(image.GetDepth()):
        slice_ = image[:, :, k]
        position = image.TransformIndexToPhysicalPoint((0, 0, k))
        for tag, value in {
            "0008|0060": "MR",
            "0020|000d": "1.2.826.0.1.3680043.2.1125.1",
            "0020|000e": "1.2.826.0.1.3680043.2.1125.1.2",
            "0020|0013": str(k + 1),
            "0020|0032": "\\".join(f"{v:.10f}" for v in position),
            "0020|0037": orientation,
            "0018|0050": str(image.GetSpacing()[2]),
            "0028|0030": f"{image.GetSpacing()[1]}\\{image.GetSpacing()[0]}",
        }.items():
            slice_.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(slice_)


def test_dicom_series_folder_reads_with_its_geometry(tmp_path: Path):
    image = oblique_volume()
    write_dicom_series(image, tmp_path / "series")
    back = imageio.read_image(tmp_path / "series")
    assert back.GetSize() == image.GetSize()
    np.testing.assert_allclose(back.GetSpacing(), image.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(back.GetOrigin(), image.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(back.GetDirection(), image.GetDirection(), atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))


def test_resampling_onto_a_permuted_and_flipped_grid_of_the_same_points_moves_each_voxel_to_its_place():
    # The reference's axes are the image's (k, i reversed, j): the same voxel centres in space, indexed otherwise.
    # A resampler working in index space, or with a wrong axis order or sign, puts the values elsewhere.
    image = oblique_volume(sitk.sitkFloat32)
    size_i, size_j, size_k = image.GetSize()
    spacing_i, spacing_j, spacing_k = image.GetSpacing()
    columns = np.array(image.GetDirection()).reshape(3, 3)
    reference = sitk.Image(size_k, size_i, size_j, sitk.sitkUInt8)
    reference.SetSpacing((spacing_k, spacing_i, spacing_j))
    reference.SetDirection(tuple(np.stack([columns[:, 2], -columns[:, 0], columns[:, 1]], axis=1).ravel()))
    reference.SetOrigin(image.TransformIndexToPhysicalPoint((size_i - 1, 0, 0)))
    out = imageio.resample_to(image, reference)
    assert imageio.Geometry.of(out) == imageio.Geometry.of(reference)
    # Reference voxel (a, b, c) is image voxel (i, j, k) = (size_i - 1 - b, c, a); arrays are indexed [k, j, i].
    array = sitk.GetArrayFromImage(image)
    expected = array[:, :, ::-1].transpose(1, 2, 0)
    np.testing.assert_allclose(sitk.GetArrayFromImage(out), expected, atol=1e-3)


@pytest.mark.parametrize("nearest", [False, True])
def test_resampling_onto_a_grid_shifted_by_a_quarter_voxel_interpolates_between_neighbours(nearest: bool):
    image = oblique_volume(sitk.sitkFloat32)
    column_i = np.array(image.GetDirection()).reshape(3, 3)[:, 0]
    reference = sitk.Image(image)
    reference.SetOrigin(tuple(np.array(image.GetOrigin()) + 0.25 * image.GetSpacing()[0] * column_i))
    out = sitk.GetArrayFromImage(imageio.resample_to(image, reference, nearest=nearest))
    array = sitk.GetArrayFromImage(image).astype(np.float64)
    # Each voxel sits a quarter of the way from image voxel i to i + 1 (the last one has no i + 1: not compared).
    expected = array[:, :, :-1] if nearest else 0.75 * array[:, :, :-1] + 0.25 * array[:, :, 1:]
    np.testing.assert_allclose(out[:, :, :-1], expected, atol=1e-3)
    assert not np.allclose(out[:, :, :-1], array[:, :, 1:], atol=1.0)  # not a whole-voxel shift either


def test_resample_takes_the_reference_geometry_exactly():
    image = oblique_volume(sitk.sitkFloat32)
    reference = sitk.Image(20, 21, 5, sitk.sitkUInt8)
    reference.SetSpacing((0.5, 0.5, 3.0))
    reference.SetOrigin(image.TransformContinuousIndexToPhysicalPoint((3, 3, 3)))
    reference.SetDirection(rotation(0.0, 0.3, 0.0))
    out = imageio.resample_to(image, reference)
    assert imageio.Geometry.of(out) == imageio.Geometry.of(reference)


def test_nearest_neighbour_resampling_invents_no_label_values():
    labels = sitk.GetImageFromArray(np.repeat(np.arange(4, dtype=np.uint8), 6).reshape(2, 3, 4))
    labels.SetSpacing((2.0, 2.0, 2.0))
    reference = sitk.Image(9, 7, 5, sitk.sitkUInt8)
    reference.SetSpacing((0.7, 0.9, 0.8))
    reference.SetOrigin((0.3, 0.1, -0.2))
    out = imageio.resample_to(labels, reference, nearest=True)
    assert set(np.unique(sitk.GetArrayFromImage(out))) <= {0, 1, 2, 3}


def test_resampling_images_that_do_not_overlap_is_an_error():
    image = oblique_volume(sitk.sitkFloat32)
    far = sitk.Image(image)
    far.SetOrigin((5000.0, 5000.0, 5000.0))
    with pytest.raises(GeometryError, match="do not overlap"):
        imageio.resample_to(image, far)


def test_reorient_to_lps_gives_identity_direction_and_keeps_physical_positions():
    image = oblique_volume(sitk.sitkFloat32)
    image.SetDirection((0, 0, 1, -1, 0, 0, 0, -1, 0))  # a sagittal acquisition
    lps = imageio.reorient(image, "LPS")
    assert lps.GetDirection() == (1, 0, 0, 0, 1, 0, 0, 0, 1)
    centre = image.TransformIndexToPhysicalPoint((2, 3, 4))
    value = image.GetPixel(2, 3, 4)
    assert lps.GetPixel(lps.TransformPhysicalPointToIndex(centre)) == value
    assert imageio.orientation_of(image) != "LPS"


def test_missing_file_is_named_in_the_error(tmp_path: Path):
    with pytest.raises(ImageError, match="does not exist"):
        imageio.read_image(tmp_path / "nothing.nii.gz", name="T1")


def test_unreadable_file_gets_a_clear_error(tmp_path: Path):
    path = tmp_path / "broken.nii.gz"
    path.write_bytes(b"this is not an image at all")
    with pytest.raises(ImageError, match="Cannot read"):
        imageio.read_image(path)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".nrrd", ".mha"])
def test_truncated_file_gets_a_clear_error_not_zero_voxels(tmp_path: Path, suffix: str):
    # ITK alone fills a truncated NIfTI with zeros and reports success.
    path = imageio.write_image(oblique_volume(), tmp_path / f"whole{suffix}")
    truncated = tmp_path / f"truncated{suffix}"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
    with pytest.raises(ImageError, match="Cannot read"):
        imageio.read_image(truncated)


def test_2d_image_is_refused(tmp_path: Path):
    path = tmp_path / "slice.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((5, 6), np.int16)), str(path))
    with pytest.raises(ImageError, match="2D"):
        imageio.read_image(path)


def test_single_slice_volume_is_refused_as_2d(tmp_path: Path):
    path = tmp_path / "one_slice.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((1, 5, 6), np.int16)), str(path))
    with pytest.raises(ImageError, match="2D"):
        imageio.read_image(path)


def test_4d_image_is_refused(tmp_path: Path):
    path = tmp_path / "series.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((2, 3, 4, 5), np.int16), isVector=False), str(path))
    with pytest.raises(ImageError, match="4D"):
        imageio.read_image(path)


def test_colour_image_is_refused(tmp_path: Path):
    path = tmp_path / "rgb.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((3, 4, 5, 3), np.uint8), isVector=True), str(path))
    with pytest.raises(ImageError, match="components"):
        imageio.read_image(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_voxels_are_refused(bad: float):
    array = np.random.default_rng(0).random((4, 5, 6)).astype(np.float32)
    array[1, 2, 3] = bad
    with pytest.raises(ImageError, match="NaN or infinite"):
        imageio.check_intensity_image(sitk.GetImageFromArray(array), "T2")


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd"])
@pytest.mark.parametrize("pixel", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2, 2, 3), (60, 70, 80)])
def test_non_finite_voxels_in_a_file_are_refused_on_reading(tmp_path: Path, suffix: str, pixel, shape):
    # ITK's NIfTI reader turns NaN into 0 silently; the check must see the file's own voxels.
    array = np.random.default_rng(1).random(shape).astype(pixel)
    array[-1, -1, -1] = np.nan
    array[0, 0, 0] = np.inf
    path = tmp_path / f"nan{suffix}"
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    with pytest.raises(ImageError, match="2 NaN or infinite"):
        imageio.check_intensity_image(imageio.read_image(path), "T1")


def test_empty_volume_is_refused():
    with pytest.raises(ImageError, match="empty"):
        imageio.check_intensity_image(sitk.GetImageFromArray(np.zeros((4, 5, 6), np.float32)), "STIR")


def test_constant_volume_is_refused():
    with pytest.raises(ImageError, match="constant"):
        imageio.check_intensity_image(sitk.GetImageFromArray(np.full((4, 5, 6), 7, np.int16)), "T1")


def test_an_ordinary_volume_passes_the_checks():
    imageio.check_intensity_image(oblique_volume(), "T1")


def test_refused_suffix_writes_nothing(tmp_path: Path):
    with pytest.raises(ImageError, match="suffix"):
        imageio.write_image(oblique_volume(), tmp_path / "volume.png")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_no_partial_file_and_keeps_what_was_there(tmp_path: Path):
    # The target is an existing folder with the user's file in it: the final rename fails.
    target = tmp_path / "result.nrrd"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    with pytest.raises(SpineMetSegError, match="Cannot write"):
        imageio.write_image(oblique_volume(), target)
    assert (target / "notes.txt").read_text(encoding="utf-8") == "keep me"
    assert [p.name for p in tmp_path.iterdir()] == ["result.nrrd"]


def test_written_file_gets_ordinary_permissions_not_private_ones(tmp_path: Path):
    import os

    umask = os.umask(0o022)
    try:
        path = imageio.write_image(oblique_volume(), tmp_path / "shared.nii.gz")
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644


def test_real_scans_read_and_write_back_with_identical_geometry(real_data_dir: Path, tmp_path: Path):
    scans = sorted(real_data_dir.glob("*.nii.gz"))
    assert len(scans) >= 3
    for scan in scans:
        image = imageio.read_image(scan)
        for suffix in (".nii.gz", ".nrrd"):
            back = imageio.read_image(imageio.write_image(image, tmp_path / f"{scan.name}{suffix}"))
            assert imageio.Geometry.of(back).matches(imageio.Geometry.of(image), tolerance=1e-5), scan.name
            np.testing.assert_array_equal(sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(image))


def test_a_non_image_renamed_nii_gz_is_called_what_it_is(tmp_path):
    renamed = tmp_path / "t1.nii.gz"
    renamed.write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 8)
    with pytest.raises(ImageError, match="it is not gzip-compressed, so it is not a .nii.gz image") as raised:
        imageio.read_image(renamed, name="T1")
    assert "truncated" not in str(raised.value)
