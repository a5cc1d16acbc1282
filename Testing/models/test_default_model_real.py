"""The shipped default model on real scans it never saw in training: ../shared/data/spine-vb/vb2_05 (a validation
case of the fixed split), clean and with a simulated lesion drawn in, through the code path ``segment`` uses; and
the healthy scans of ../shared/data/real through the ``segment`` command itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from SpineMetSegLib.cli import main
from SpineMetSegLib.data.anatomy_case import generate_anatomy_case
from SpineMetSegLib.data.anatomy_case import model_target as anatomy_target
from SpineMetSegLib.data.real_case import load_real_case
from SpineMetSegLib.data.split import load_split
from SpineMetSegLib.images import imageio
from SpineMetSegLib.inference import segment_images
from SpineMetSegLib.labels import ModelLabel
from SpineMetSegLib.models.loader import load_model

pytestmark = pytest.mark.slow  # each test runs the shipped network on a real scan

LESION_SEED = 9_800_002  # the first seed from 9,800,000 whose single drawn lesion is lytic and >= 10 mm (12 mm)


@pytest.fixture(scope="module")
def model():
    loaded = load_model()
    return loaded.card, loaded.network


@pytest.fixture(scope="module")
def case(spine_vb_dir, tmp_path_factory):
    assert "vb2_05" in load_split().validation  # so this is a test on an unseen scan
    folder = tmp_path_factory.mktemp("vb2_05")
    for source, target in (("image.nii.gz", "t2.nii.gz"), ("vertebral_bodies.nii.gz", "vertebral_bodies.nii.gz")):
        (folder / target).write_bytes((spine_vb_dir / "vb2_05" / source).read_bytes())
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


# The healthy scans of ../shared/data/real and the sequence each is given as (README, "Healthy real scans").
HEALTHY_REAL_SCANS = {
    "sct_t2_lumbar.nii.gz": "t2",
    "sct_t2_cervical_ms.nii.gz": "t2",
    "totalseg_example_mr.nii.gz": "t1",
}


def _segment_command(real_data_dir: Path, name: str, output: Path) -> sitk.Image:
    code = main(["segment", f"--{HEALTHY_REAL_SCANS[name]}", str(real_data_dir / name), "--output", str(output),
                 "--device", "cpu", "--threads", "1"])
    assert code == 0
    return imageio.read_image(output)


@pytest.mark.parametrize("name", sorted(HEALTHY_REAL_SCANS))
def test_segment_finds_no_lesion_on_a_healthy_real_scan_and_answers_on_its_grid(real_data_dir, tmp_path, name):
    scan = imageio.read_image(real_data_dir / name)
    labels = _segment_command(real_data_dir, name, tmp_path / "seg.nii.gz")
    assert imageio.Geometry.of(labels).matches(imageio.Geometry.of(scan))
    values = sitk.GetArrayFromImage(labels)
    assert set(np.unique(values)) <= {0, ModelLabel.METASTASIS, ModelLabel.VERTEBRAL_BODY, ModelLabel.SPINAL_CANAL}
    assert not (values == ModelLabel.METASTASIS).any()


def test_segment_outlines_the_thoracolumbar_bodies_of_a_healthy_real_t2_one_per_vertebra(real_data_dir, tmp_path):
    # sct_t2_lumbar: sagittal T2 from about T9 to L2, 38 mm from left to right, so each body is cut at its sides.
    labels = _segment_command(real_data_dir, "sct_t2_lumbar.nii.gz", tmp_path / "seg.nii.gz")
    body = sitk.GetArrayFromImage(labels) == ModelLabel.VERTEBRAL_BODY
    voxel_ml = float(np.prod(labels.GetSpacing())) / 1000.0
    components, count = ndimage.label(body, structure=np.ones((3, 3, 3), bool))
    volumes_ml = np.bincount(components.ravel(), minlength=count + 1)[1:] * voxel_ml
    bodies = [index + 1 for index in np.flatnonzero(volumes_ml >= 5.0)]  # fragments below 5 mL are no vertebra
    assert 5 <= len(bodies) <= 7, f"vertebral bodies of 5 mL or more: {np.round(np.sort(volumes_ml)[::-1][:10], 1)}"
    assert all(8.0 <= volumes_ml[b - 1] <= 30.0 for b in bodies), np.round(volumes_ml[np.array(bodies) - 1], 1)
    assert volumes_ml[np.array(bodies) - 1].sum() >= 0.9 * body.sum() * voxel_ml  # few stray body voxels
    # One body per vertebra: their centres lie one vertebral pitch (body and disc, 20 to 45 mm) apart along the
    # spine, not side by side or split in halves.
    centres = [labels.TransformContinuousIndexToPhysicalPoint([float(c) for c in centre[::-1]])
               for centre in ndimage.center_of_mass(body, components, bodies)]
    centres = np.array(sorted(centres, key=lambda point: point[2]))  # LPS: z runs inferior to superior
    pitches = np.linalg.norm(np.diff(centres, axis=0), axis=1)
    assert np.all((pitches >= 20.0) & (pitches <= 45.0)), np.round(pitches, 1)
