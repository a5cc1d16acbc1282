"""``spinemetseg train`` refuses bad training input in seconds: exit 2, a message naming the file and field."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from SpineMetSegLib.cli import main
from SpineMetSegLib.errors import EXIT_USER_ERROR

SHAPE = (6, 40, 40)  # ITK (i, j, k)
SPACING = (3.0, 1.0, 1.0)
LABELS = {"background": 0, "metastasis": 1, "vertebral body": 2, "spinal canal": 3}
TINY_RUN = ["--no-synthetic", "--steps", "2", "--batch-size", "2", "--patch-size", "32", "32", "--channels", "4",
            "8", "--strides", "2", "--validation-cases", "0", "--device", "cpu", "--no-progress-bar"]


def _image(array_ijk: np.ndarray, origin=(0.0, 0.0, 0.0)) -> sitk.Image:
    image = sitk.GetImageFromArray(np.ascontiguousarray(array_ijk.transpose(2, 1, 0)))
    image.SetSpacing(SPACING)
    image.SetOrigin(origin)
    return image


def write_dataset(root: Path, cases: int = 2, label_dtype=np.uint8, label_origin=(0.0, 0.0, 0.0),
                  lesion_value: float = 1, description=None) -> Path:
    """An MSD / nnU-Net folder: T1 images, label maps with a body (2), a canal (3) and a lesion."""
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    rng = np.random.default_rng(0)
    for index in range(cases):
        label = np.zeros(SHAPE, dtype=label_dtype)
        label[:, 5:35, 28:34] = 3
        label[:, 5:35, 8:24] = 2
        label[1:5, 12:18, 12:18] = lesion_value
        t1 = 300.0 + 200.0 * (label == 2) - 150.0 * (label == 1) + rng.normal(0, 10, SHAPE)
        sitk.WriteImage(_image(t1.astype(np.float32)), str(root / "imagesTr" / f"case{index:03d}_0000.nii.gz"))
        sitk.WriteImage(_image(label, label_origin), str(root / "labelsTr" / f"case{index:03d}.nii.gz"))
    if description is None:
        description = {"channel_names": {"0": "T1"}, "labels": LABELS, "file_ending": ".nii.gz"}
    (root / "dataset.json").write_text(json.dumps(description))
    return root


def refused(tmp_path: Path, folder: Path, capsys, *extra: str) -> str:
    """Run ``train`` on ``folder``; assert exit 2, no output folder made; return the message."""
    output = tmp_path / "run"
    code = main(["train", "--output", str(output), "--data", str(folder), *TINY_RUN, *extra])
    captured = capsys.readouterr()
    assert code == EXIT_USER_ERROR
    assert "Traceback" not in captured.err
    assert not output.exists()
    return captured.err


@pytest.mark.parametrize(
    "description, message",
    [
        ([{"channel_names": {"0": "T1"}}], "must be a JSON object"),
        ({"channel_names": {"0": "T1"}, "labels": {**LABELS, "metastasis": "one"}},
         "'labels.metastasis' must be a whole-number voxel value (such as 1), got 'one'"),
        ({"channel_names": {"0": "FLAIR"}, "labels": LABELS}, "channel 0 is 'FLAIR', which the model does not take"),
        ({"channel_names": {"T1": "0"}, "labels": LABELS}, "'channel_names' entry 'T1': '0' must be a channel index"),
        ({"channel_names": ["T1"], "labels": LABELS}, "'channel_names' must map channel indices to sequence names"),
    ],
)
def test_a_bad_dataset_json_is_refused_naming_the_field(tmp_path, capsys, description, message):
    folder = write_dataset(tmp_path / "data", description=description)
    assert message in refused(tmp_path, folder, capsys)


def test_a_binary_dataset_json_is_refused(tmp_path, capsys):
    folder = write_dataset(tmp_path / "data")
    (folder / "dataset.json").write_bytes(bytes(range(256)) * 8)
    assert f"{folder / 'dataset.json'} is not a JSON text file" in refused(tmp_path, folder, capsys)


def test_a_label_map_far_from_its_image_is_refused(tmp_path, capsys):
    folder = write_dataset(tmp_path / "data", label_origin=(3000.0, 0.0, 0.0))
    message = refused(tmp_path, folder, capsys)
    assert "Case case000: the label map case000.nii.gz is not on its image's grid (origin 3000.0 mm away)" in message


def test_a_label_map_with_fractional_values_is_refused(tmp_path, capsys):
    folder = write_dataset(tmp_path / "data", label_dtype=np.float32, lesion_value=0.5)
    assert "has 144 voxels with fractional values" in refused(tmp_path, folder, capsys)


def test_a_lesion_written_as_an_undeclared_value_is_refused(tmp_path, capsys):
    folder = write_dataset(tmp_path / "data", lesion_value=7)
    message = refused(tmp_path, folder, capsys)
    assert "holds value(s) 7 that dataset.json 'labels' does not declare" in message
    assert "1 (metastasis)" in message


def test_a_label_that_no_case_holds_is_refused(tmp_path, capsys):
    folder = write_dataset(tmp_path / "data", lesion_value=0)
    message = refused(tmp_path, folder, capsys)
    assert f"No case in {folder} holds the label 'metastasis' (1)" in message


def test_an_output_folder_holding_a_model_needs_resume_or_overwrite(tmp_path, capsys):
    folder = write_dataset(tmp_path / "data")
    output = tmp_path / "run"
    output.mkdir()
    model = output / "spinemetseg-custom-1.0.0.safetensors"
    model.write_bytes(b"a model someone trained for days")
    code = main(["train", "--output", str(output), "--data", str(folder), *TINY_RUN])
    assert code == EXIT_USER_ERROR
    error = capsys.readouterr().err
    assert f"--output {output} already holds a model (spinemetseg-custom-1.0.0.safetensors)" in error
    assert "--resume" in error and "--overwrite" in error
    assert sorted(p.name for p in output.iterdir()) == [model.name]
    assert model.read_bytes() == b"a model someone trained for days"

    assert main(["train", "--output", str(output), "--data", str(folder), *TINY_RUN, "--overwrite"]) == 0
    assert model.read_bytes() != b"a model someone trained for days"
    assert (output / "spinemetseg-custom-1.0.0.json").is_file()


def test_a_good_folder_passes_the_checks_and_trains(tmp_path):
    folder = write_dataset(tmp_path / "data")
    assert main(["train", "--output", str(tmp_path / "run"), "--data", str(folder), *TINY_RUN]) == 0
    assert (tmp_path / "run" / "spinemetseg-custom-1.0.0.safetensors").is_file()


@pytest.mark.parametrize("labels", [
    {"background": 0, "metastasis": 1, "vertebral body": 2},  # nnU-Net: name -> value
    {"0": "background", "1": "metastasis", "2": "vertebral body"},  # MSD: value -> name
])
def test_both_label_layouts_of_dataset_json_give_the_same_values(tmp_path, labels):
    from SpineMetSegLib.training.checks import check_dataset_description, declared_label_values

    path = tmp_path / "dataset.json"
    path.write_text(json.dumps({"channel_names": {"0": "T1"}, "labels": labels}), encoding="utf-8")
    description = check_dataset_description(path)
    assert declared_label_values(description) == {0: "background", 1: "metastasis", 2: "vertebral body"}
