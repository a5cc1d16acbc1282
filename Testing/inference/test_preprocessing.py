"""CT is recognised however it is stored (HU, HU + 1024, padded), MRI of any scale is not; --not-ct overrides."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from inference_fixtures import make_card, seeded_network

from SpineMetSegLib.cli import main
from SpineMetSegLib.data.phantom import generate_case
from SpineMetSegLib.errors import EXIT_USER_ERROR
from SpineMetSegLib.images import imageio
from SpineMetSegLib.inference import preprocessing
from SpineMetSegLib.models import weights

REAL_MRI = ("sct_t2_cervical_ms.nii.gz", "sct_t2_lumbar.nii.gz", "totalseg_example_mr.nii.gz")


def spine_ct_hu(shape=(40, 64, 64), seed: int = 0) -> np.ndarray:
    """A body CT in Hounsfield units (k, j, i): air, fat, muscle, a vertebra of cancellous and cortical bone."""
    rng = np.random.default_rng(seed)
    k, j, i = np.indices(shape)
    cj, ci = shape[1] / 2, shape[2] / 2
    radius = np.hypot((j - cj) / (0.42 * shape[1]), (i - ci) / (0.42 * shape[2]))
    hu = np.full(shape, -1000.0)
    hu[radius < 1.0] = -100.0  # fat
    hu[radius < 0.85] = 45.0  # muscle and organs
    bone = np.hypot(j - cj, i - ci - 6) < 8
    hu[bone] = 250.0  # cancellous
    hu[bone & (np.hypot(j - cj, i - ci - 6) > 6)] = 1100.0  # cortex
    return hu + rng.normal(0, 15, shape)


def image_of(array: np.ndarray, pixel=np.int16) -> sitk.Image:
    image = sitk.GetImageFromArray(array.astype(pixel))
    image.SetSpacing((0.8, 0.8, 2.0))
    return image


@pytest.mark.parametrize("stored", ["hounsfield", "hu+1024 (0..4095)", "padded -32768", "padded -3024",
                                    "unsigned with 0 padding"])
def test_ct_is_recognised_however_it_is_stored(stored):
    hu = spine_ct_hu()
    outside = np.hypot(*np.indices(hu.shape[1:]) - np.array(hu.shape[1:])[:, None, None] / 2) > 30
    if stored == "hounsfield":
        array = hu
    elif stored == "hu+1024 (0..4095)":
        array = hu + 1024.0
    elif stored.startswith("padded"):
        array = hu.copy()
        array[:, outside] = float(stored.split()[-1])
    else:
        array = hu + 1024.0
        array[:, outside] = 0.0
    image = image_of(array, np.int32 if "32768" in stored else np.int16)
    assert preprocessing.looks_like_ct(image)


@pytest.mark.slow
def test_mri_of_any_scale_is_not_taken_for_ct(real_data_dir: Path):
    # Every second voxel in-plane keeps the histogram's shape and the test quick. (A finer sweep, 40 scales from
    # 0.3 to 40 with and without a -1024 offset over 12 real and phantom volumes, found no false CT either.)
    volumes = [sitk.Cast(sitk.ReadImage(str(real_data_dir / name)), sitk.sitkFloat32)[::2, ::2, :] for name in REAL_MRI]
    case = generate_case(1, contrast="randomized")
    volumes += [sitk.Cast(case.images[name], sitk.sitkFloat32)[::2, ::2, :] for name in ("t1", "t2", "stir")]
    taken = [(index, scale) for index, volume in enumerate(volumes) for scale in (0.5, 1.0, 2.87, 6.0, 15.0)
             if preprocessing.looks_like_ct(volume * scale)]
    assert taken == []


def test_the_dicom_modality_decides_where_there_is_one():
    mri_looking = image_of(np.random.default_rng(0).normal(300, 20, (10, 32, 32)))
    mri_looking.SetMetaData(preprocessing.DICOM_MODALITY_TAG, "CT")
    assert preprocessing.looks_like_ct(mri_looking)
    ct_looking = image_of(spine_ct_hu())
    ct_looking.SetMetaData(preprocessing.DICOM_MODALITY_TAG, "MR")
    assert not preprocessing.looks_like_ct(ct_looking)


def test_segment_refuses_stored_ct_and_says_how_to_override(tmp_path: Path, capsys):
    imageio.write_image(image_of(spine_ct_hu() + 1024.0, np.uint16), tmp_path / "scan.nii.gz")
    card = make_card()
    (tmp_path / "card.json").write_text(json.dumps(card.to_dict()))
    weights.save_state_dict(seeded_network(card).state_dict(), tmp_path / "w.safetensors")
    base = ["segment", "--t1", str(tmp_path / "scan.nii.gz"), "--output", str(tmp_path / "seg.nii.gz"), "--device",
            "cpu", "--weights", str(tmp_path / "w.safetensors"), "--card", str(tmp_path / "card.json")]
    assert main(base) == EXIT_USER_ERROR
    error = capsys.readouterr().err
    assert "looks like CT, not MRI" in error and "add --not-ct" in error
    assert not (tmp_path / "seg.nii.gz").exists()
    assert main([*base, "--not-ct"]) == 0
    assert (tmp_path / "seg.nii.gz").is_file()
