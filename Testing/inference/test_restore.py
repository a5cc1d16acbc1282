"""Back to the input: the network's probabilities onto the first input's grid (argmax of their interpolation), then
the card's post-processing, where a removed lesion's voxels take the most likely other label."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from inference_fixtures import make_card, oblique

from SpineMetSegLib.images import imageio
from SpineMetSegLib.inference import restore
from SpineMetSegLib.inference.preprocessing import PreparedInput
from SpineMetSegLib.labels import ModelLabel

SIZE = (6, 8, 5)  # (i, j, k)
DIRECTION = oblique()


def softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=0))
    return (exp / exp.sum(axis=0)).astype(np.float32)


def random_probabilities(seed: int = 0) -> np.ndarray:
    return softmax(np.random.default_rng(seed).standard_normal((4,) + SIZE) * 3)


def ijk(image: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(image).transpose(2, 1, 0)


def test_on_the_model_grid_the_labels_are_the_argmax_and_the_volumes_those_of_the_lesions():
    grid = imageio.Geometry(SIZE, (0.8, 1.0, 2.5), (10.0, -20.0, 30.0), DIRECTION)
    probabilities = random_probabilities()
    labels, lesion, volumes = restore.to_input_grid(probabilities, restore.model_grid_input(grid), make_card(),
                                                    want=True)
    assert imageio.Geometry.of(labels).matches(grid)
    np.testing.assert_array_equal(ijk(labels), np.argmax(probabilities, axis=0))
    np.testing.assert_allclose(ijk(lesion), probabilities[ModelLabel.METASTASIS], atol=1e-6)
    lesion_voxels = int((np.argmax(probabilities, axis=0) == ModelLabel.METASTASIS).sum())
    assert sum(volumes) == pytest.approx(lesion_voxels * 0.8 * 1.0 * 2.5 / 1000.0)


def small_lesion_in_bone() -> np.ndarray:
    """Background everywhere but a 2 x 2 x 2 lesion (0.6) whose second most likely label is the body (0.3)."""
    probabilities = np.zeros((4,) + SIZE, dtype=np.float32)
    probabilities[ModelLabel.BACKGROUND] = 0.9
    probabilities[ModelLabel.SPINAL_CANAL] = 0.1
    box = (slice(None), slice(2, 4), slice(3, 5), slice(1, 3))
    probabilities[box] = np.array([0.05, 0.6, 0.3, 0.05], dtype=np.float32).reshape(4, 1, 1, 1)
    return probabilities


@pytest.mark.parametrize("direction", [(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0), DIRECTION],
                         ids=["axis-aligned", "oblique"])
@pytest.mark.parametrize("min_volume_ml, kept", [(0.007, True), (0.009, False)])  # the lesion is 8 x 1 mm^3
def test_a_lesion_below_the_cards_volume_is_removed_and_its_voxels_take_the_next_likely_label(min_volume_ml, kept,
                                                                                              direction):
    # On the oblique grid mapped onto itself, rounding puts some points a hair below their own voxel: a fallback
    # read at the lower source corner took the neighbour's label there (half the lesion came back background).
    grid = imageio.Geometry(SIZE, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), direction)
    card = make_card(min_lesion_volume_ml=min_volume_ml)
    labels, lesion, volumes = restore.to_input_grid(small_lesion_in_bone(), restore.model_grid_input(grid), card,
                                                    want=False)
    found = ijk(labels)[2:4, 3:5, 1:3]
    expected = ModelLabel.METASTASIS if kept else ModelLabel.VERTEBRAL_BODY
    assert (found == expected).all() and lesion is None
    assert volumes == ([pytest.approx(0.008)] if kept else [])
    assert (ijk(labels) != 0).sum() == 8  # nothing else changed


def test_a_crop_comes_back_at_its_place_in_the_input_and_the_rest_is_background():
    reference = sitk.Image([20, 18, 16], sitk.sitkInt16)
    reference.SetSpacing((0.9, 1.1, 3.0))
    reference.SetOrigin((5.0, -7.0, 40.0))
    reference.SetDirection(DIRECTION)
    offset = (5, 6, 7)
    crop = imageio.Geometry(SIZE, reference.GetSpacing(), reference.TransformIndexToPhysicalPoint(offset), DIRECTION)
    probabilities = random_probabilities(seed=4)
    box = tuple(slice(o, o + n) for o, n in zip(offset, SIZE))
    for stand_in in (reference, restore.geometry_only(reference)):  # the voxel-free stand-in of a huge input too
        prepared = PreparedInput(array=None, crop_grid=crop, model_grid=crop, box=box, reference=stand_in, channels=[])
        labels, _, _ = restore.to_input_grid(probabilities, prepared, make_card(), want=False)
        assert imageio.Geometry.of(labels).matches(imageio.Geometry.of(reference))
        found = ijk(labels)
        np.testing.assert_array_equal(found[box], np.argmax(probabilities, axis=0))
        outside = np.ones(found.shape, dtype=bool)
        outside[box] = False
        assert not found[outside].any()


def test_the_geometry_only_stand_in_keeps_the_grid_and_the_size_without_the_voxels():
    image = sitk.Image([300, 400, 50], sitk.sitkUInt8)
    image.SetSpacing((0.5, 0.6, 4.0))
    image.SetDirection(DIRECTION)
    stand_in = restore.geometry_only(image)
    assert stand_in.GetSize() == (1, 1, 1)
    assert stand_in.GetSpacing() == image.GetSpacing() and stand_in.GetDirection() == image.GetDirection()
    assert stand_in.GetMetaData(restore.REFERENCE_SIZE_KEY) == "300 400 50"
    assert restore.geometry_only(stand_in) is stand_in
