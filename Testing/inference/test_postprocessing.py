"""Tests of the body-contact and mean-probability rules of ``postprocessing.clean_lesions`` on hand-built maps.

Run with ``pytest Testing/inference/test_postprocessing.py``.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from scipy import ndimage

from SpineMetSegLib.inference.postprocessing import body_contact_fractions, clean_lesions
from SpineMetSegLib.labels import ModelLabel
from SpineMetSegLib.models import catalog

VOXEL_ML = 0.001  # 1 mm voxels


def two_lesions() -> np.ndarray:
    """A 3 x 3 x 3 lesion inside a vertebral body, and one beside another body touching it with one face."""
    labels = np.zeros((12, 12, 24), dtype=np.uint8)
    # Body 1 with a lesion in its middle: the lesion's whole shell is body.
    labels[1:10, 1:10, 1:10] = ModelLabel.VERTEBRAL_BODY
    labels[4:7, 4:7, 4:7] = ModelLabel.METASTASIS
    # Body 2 ends at x = 15; the second lesion sits at x 16..18, so of its 5 x 5 x 5 - 27 = 98 shell voxels only
    # the 25 of the plane x = 15 are body (a posterior-element false positive grazing the body).
    labels[1:10, 1:10, 12:16] = ModelLabel.VERTEBRAL_BODY
    labels[4:7, 4:7, 16:19] = ModelLabel.METASTASIS
    return labels


def lesion_at(labels: np.ndarray, x: int) -> bool:
    return bool(labels[5, 5, x] == ModelLabel.METASTASIS)


def test_the_fraction_is_the_share_of_the_shell_that_is_body():
    labels = two_lesions()
    components, count = ndimage.label(labels == ModelLabel.METASTASIS, structure=np.ones((3, 3, 3), dtype=bool))
    fractions = body_contact_fractions(components, count, labels == ModelLabel.VERTEBRAL_BODY)
    inside, beside = components[5, 5, 5], components[5, 5, 17]
    assert fractions[inside] == pytest.approx(1.0)
    assert fractions[beside] == pytest.approx(25 / 98)


def test_a_lesion_inside_a_body_stays_and_one_grazing_a_body_goes():
    labels = two_lesions()
    fallback = np.full_like(labels, ModelLabel.SPINAL_CANAL)
    cleaned, volumes = clean_lesions(labels, fallback, voxel_volume_ml=VOXEL_ML, must_touch_bone=True,
                                     min_body_contact_fraction=0.3)
    assert lesion_at(cleaned, 5) and not lesion_at(cleaned, 17)
    assert volumes == pytest.approx([27 * VOXEL_ML])
    # The removed lesion's voxels take the fallback label; the body around it is untouched.
    assert (cleaned[4:7, 4:7, 16:19] == ModelLabel.SPINAL_CANAL).all()
    assert (cleaned[1:10, 1:10, 12:16] == ModelLabel.VERTEBRAL_BODY).all()


def test_without_the_fraction_both_lesions_stay():
    labels = two_lesions()
    cleaned, volumes = clean_lesions(labels.copy(), None, voxel_volume_ml=VOXEL_ML, must_touch_bone=True)
    assert lesion_at(cleaned, 5) and lesion_at(cleaned, 17) and len(volumes) == 2
    # A threshold just below the grazing lesion's 25/98 keeps it too.
    cleaned, volumes = clean_lesions(labels, None, voxel_volume_ml=VOXEL_ML, min_body_contact_fraction=0.25)
    assert lesion_at(cleaned, 17) and len(volumes) == 2


def test_a_shell_voxel_between_two_lesions_counts_for_both():
    labels = np.zeros((5, 5, 7), dtype=np.uint8)
    labels[2, 2, 1] = ModelLabel.METASTASIS
    labels[2, 2, 3] = ModelLabel.METASTASIS
    labels[2, 2, 2] = ModelLabel.VERTEBRAL_BODY  # in both single voxels' 26-neighbourhood shells
    components, count = ndimage.label(labels == ModelLabel.METASTASIS, structure=np.ones((3, 3, 3), dtype=bool))
    fractions = body_contact_fractions(components, count, labels == ModelLabel.VERTEBRAL_BODY)
    assert count == 2 and fractions[1:] == pytest.approx([1 / 26, 1 / 26])


@pytest.mark.parametrize("value", [-0.1, 1.5, "0.3"])
def test_a_card_with_a_fraction_outside_0_to_1_is_rejected(value):
    card = copy.deepcopy(catalog.load_catalog(catalog.EMBEDDED_CATALOG, include_imported=False).get().to_dict())
    card["postprocessing"]["min_body_contact_fraction"] = value
    problems = catalog.card_problems(card)
    assert [problem.field for problem in problems] == ["postprocessing.min_body_contact_fraction"]


def test_a_lesion_the_network_doubts_goes_and_a_confident_one_stays():
    labels = two_lesions()
    probability = np.zeros(labels.shape, dtype=np.float32)
    probability[4:7, 4:7, 4:7] = 0.95
    # The second lesion: mean 0.7 (its centre voxel sure, the rest unsure), so the threshold sits on the mean.
    probability[4:7, 4:7, 16:19] = 0.69
    probability[5, 5, 17] = 0.69 + 0.01 * 27
    fallback = np.full_like(labels, ModelLabel.VERTEBRAL_BODY)
    cleaned, volumes = clean_lesions(labels.copy(), fallback, voxel_volume_ml=VOXEL_ML, lesion_probability=probability,
                                     min_mean_probability=0.71)
    assert lesion_at(cleaned, 5) and not lesion_at(cleaned, 17)
    assert (cleaned[4:7, 4:7, 16:19] == ModelLabel.VERTEBRAL_BODY).all()
    assert volumes == pytest.approx([27 * VOXEL_ML])
    cleaned, volumes = clean_lesions(labels.copy(), None, voxel_volume_ml=VOXEL_ML, lesion_probability=probability,
                                     min_mean_probability=0.69)
    assert lesion_at(cleaned, 5) and lesion_at(cleaned, 17) and len(volumes) == 2


def test_the_probability_function_gets_full_grid_indices_of_lesion_voxels_only():
    labels = two_lesions()
    probability = np.where(labels == ModelLabel.METASTASIS, 0.9, 0.0).astype(np.float32)
    probability[4:7, 4:7, 16:19] = 0.5
    asked = []

    def lesion_probability(points):
        asked.append(points)
        return probability[points]

    cleaned, _ = clean_lesions(labels, None, voxel_volume_ml=VOXEL_ML, lesion_probability=lesion_probability,
                               min_mean_probability=0.8)
    assert lesion_at(cleaned, 5) and not lesion_at(cleaned, 17)
    (points,) = asked
    assert (two_lesions()[points] == ModelLabel.METASTASIS).all() and points[0].size == 2 * 27
