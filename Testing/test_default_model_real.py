"""The shipped default model on a real scan it never saw in training: ../shared/data/spine-vb/vb2_05 (a validation
case of the fixed split), clean and with a simulated lesion drawn in, through the code path ``segment`` uses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from SpineMetSegLib.data.anatomy_case import generate_anatomy_case
from SpineMetSegLib.data.anatomy_case import model_target as anatomy_target
from SpineMetSegLib.data.real_case import load_real_case
from SpineMetSegLib.data.split import load_split
from SpineMetSegLib.inference import segment_images
from SpineMetSegLib.labels import ModelLabel
from SpineMetSegLib.loader import load_model

SPINE_VB = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "spine-vb"
LESION_SEED = 9_800_002  # the first seed from 9,800,000 whose single drawn lesion is lytic and >= 10 mm (12 mm)


@pytest.fixture(scope="module")
def model():
    loaded = load_model()
    return loaded.card, loaded.network


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    if not SPINE_VB.is_dir():
        pytest.skip(f"real lumbar MRI fixtures not found at {SPINE_VB}")
    assert "vb2_05" in load_split().validation  # so this is a test on an unseen scan
    folder = tmp_path_factory.mktemp("vb2_05")
    for source, target in (("image.nii.gz", "t2.nii.gz"), ("vertebral_bodies.nii.gz", "vertebral_bodies.nii.gz")):
        (folder / target).write_bytes((SPINE_VB / "vb2_05" / source).read_bytes())
    return load_real_case(folder)


def _segment(images, model):
    card, network = model
    return segment_images(images, card, network, device="cpu", warn=lambda message: None).labels


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float(np.logical_and(a, b).sum()) / float(a.sum() + b.sum())


@pytest.fixture(scope="module")
def clean_result(case, model):
    drawn = generate_anatomy_case(case, LESION_SEED, lesion_count=0, look_alike_count=0)
    return drawn, sitk.GetArrayFromImage(_segment({"t2": drawn.images["t2"]}, model))


def test_vertebral_bodies_of_an_unseen_real_t2_are_outlined_with_dice_of_at_least_085(case, clean_result):
    _, labels = clean_result
    assert _dice(labels == ModelLabel.VERTEBRAL_BODY, case.bodies > 0) >= 0.85


def test_no_lesion_is_reported_on_the_clean_real_scan(clean_result):
    _, labels = clean_result
    assert not (labels == ModelLabel.METASTASIS).any()


def test_a_lesion_drawn_into_the_real_scan_is_found(case, model):
    drawn = generate_anatomy_case(case, LESION_SEED, generate=("t1", "stir"), lesion_count=1, look_alike_count=0)
    lesion = drawn.info["lesions"][0]
    assert lesion["diameter_mm"] >= 5.0
    target = sitk.GetArrayFromImage(anatomy_target(drawn))
    labels = sitk.GetArrayFromImage(_segment(dict(drawn.images), model))
    predicted, count = ndimage.label(labels == ModelLabel.METASTASIS, structure=np.ones((3, 3, 3), bool))
    assert count >= 1
    assert (predicted[target == ModelLabel.METASTASIS] > 0).any()


@pytest.mark.parametrize("sequence", ["t1", "t2", "stir"])
def test_each_single_sequence_gives_a_result_on_its_grid(case, model, sequence):
    drawn = generate_anatomy_case(case, LESION_SEED, generate=("t1", "stir"), lesion_count=1, look_alike_count=0)
    image = drawn.images[sequence]
    labels = _segment({sequence: image}, model)
    assert labels.GetSize() == image.GetSize()
    assert np.allclose(labels.GetOrigin(), image.GetOrigin()) and np.allclose(labels.GetSpacing(), image.GetSpacing())
    assert np.allclose(labels.GetDirection(), image.GetDirection())
    assert (sitk.GetArrayFromImage(labels) == ModelLabel.VERTEBRAL_BODY).any()
