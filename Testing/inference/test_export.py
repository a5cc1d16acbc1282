"""Export: output paths checked before any work (named as the command line names them), then the label map,
probability map and lesion CSV written together, read back, all or none."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import SimpleITK as sitk

from SpineMetSegLib.errors import SpineMetSegError
from SpineMetSegLib.images import imageio
from SpineMetSegLib.inference import export
from SpineMetSegLib.labels import ModelLabel


def labels_with_two_lesions() -> sitk.Image:
    array = np.zeros((12, 16, 14), dtype=np.uint8)
    array[2:10, 3:13, 2:12] = ModelLabel.VERTEBRAL_BODY
    array[3:5, 4:6, 3:5] = ModelLabel.METASTASIS  # 8 voxels
    array[7:9, 9:12, 8:11] = ModelLabel.METASTASIS  # 18 voxels
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.8, 0.9, 3.0))
    image.SetOrigin((1.0, 2.0, 3.0))
    return image


def probabilities_of(labels: sitk.Image) -> sitk.Image:
    probability = sitk.Cast(labels == ModelLabel.METASTASIS, sitk.sitkFloat32) * 0.75
    probability.CopyInformation(labels)
    return probability


def test_every_output_lands_and_reads_back(tmp_path):
    labels = labels_with_two_lesions()
    output, probabilities, table = tmp_path / "seg.nii.gz", tmp_path / "p.nrrd", tmp_path / "lesions.csv"
    export.write_outputs(labels, output, probabilities=probabilities_of(labels), probabilities_path=probabilities,
                         lesions_csv=table)
    written = sitk.ReadImage(str(output))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(written), sitk.GetArrayFromImage(labels))
    assert imageio.Geometry.of(written).matches(imageio.Geometry.of(labels))
    assert float(sitk.GetArrayFromImage(sitk.ReadImage(str(probabilities))).max()) == 0.75
    with table.open(newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    volumes = sorted(float(value) for row in rows for key, value in row.items() if key.startswith("volume"))
    assert len(rows) == 2
    voxel_ml = 0.8 * 0.9 * 3.0 / 1000.0
    assert volumes == pytest.approx([8 * voxel_ml, 18 * voxel_ml], abs=1e-4)  # the CSV gives 4 decimals
    assert sorted(path.name for path in tmp_path.iterdir()) == ["lesions.csv", "p.nrrd", "seg.nii.gz"]  # no temp


def test_a_failing_output_leaves_none_and_the_earlier_label_map_untouched(tmp_path):
    output = tmp_path / "seg.nii.gz"
    output.write_bytes(b"the user's earlier result")
    labels = labels_with_two_lesions()
    in_the_way = tmp_path / "p.nii.gz"
    in_the_way.mkdir()  # a folder where the probability map should go: that write fails
    with pytest.raises((SpineMetSegError, OSError)):
        export.write_outputs(labels, output, probabilities=probabilities_of(labels),
                             probabilities_path=in_the_way, lesions_csv=tmp_path / "lesions.csv")
    assert output.read_bytes() == b"the user's earlier result"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["p.nii.gz", "seg.nii.gz"]
    assert not any(in_the_way.iterdir())


def test_an_output_that_is_an_input_is_refused_by_its_option_name(tmp_path):
    t2 = tmp_path / "t2.nii.gz"
    t2.write_bytes(b"mri")
    with pytest.raises(SpineMetSegError, match="--output") as refused:
        export.check_output_paths({"t2": t2}, t2)
    assert "--t2" in str(refused.value)
    with pytest.raises(SpineMetSegError, match="--input flair"):
        export.check_output_paths({"flair": t2}, tmp_path / "seg.nii.gz", probabilities_path=t2)
    assert t2.read_bytes() == b"mri"


def test_two_outputs_on_one_path_and_an_unknown_suffix_are_refused(tmp_path):
    inputs = {"t1": tmp_path / "t1.nii.gz"}
    with pytest.raises(SpineMetSegError, match="--probabilities"):
        export.check_output_paths(inputs, tmp_path / "seg.nii.gz", probabilities_path=tmp_path / "seg.nii.gz")
    with pytest.raises(SpineMetSegError, match="--output"):
        export.check_output_paths(inputs, tmp_path / "seg.xyz")
    export.check_output_paths(inputs, tmp_path / "seg.nrrd", probabilities_path=tmp_path / "p.mha",
                              lesions_csv=tmp_path / "lesions.csv")  # good paths pass
