"""Per-lesion measures: sizes of known shapes, positions in both coordinate systems, and the relation of each
lesion to a hand-built spine (three vertebral bodies and a canal) in both anatomy conventions."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from lesion_fixtures import SPINE_SPACING_IJK, image_of, spine_anatomy_model, spine_phantom

from SpineMetSegLib.analysis import lesions
from SpineMetSegLib.errors import GeometryError, ImageError
from SpineMetSegLib.labels import Anatomy, ModelLabel


def sphere(diameter_mm: float, spacing_ijk, shape=(40, 50, 60), centre_mm=(16.1, 15.2, 14.9)) -> np.ndarray:
    """A solid sphere: voxels whose centre lies within diameter/2 of the centre (k, j, i mm)."""
    spacing = np.array(spacing_ijk[::-1])
    centres = np.indices(shape).transpose(1, 2, 3, 0) * spacing
    return (np.linalg.norm(centres - np.array(centre_mm), axis=-1) <= diameter_mm / 2).astype(np.uint8)


def by_position(found):
    """The lesions A, B, C of the spine, identified by their centroid height."""
    heights = {"A": 62 * 1.25, "B": 14 * 1.25, "C": 37 * 1.25}
    return {
        name: min(found, key=lambda lesion, h=height: abs(lesion.centroid_lps[2] - (h - 0.5 * 1.25)))
        for name, height in heights.items()
    }


def test_a_10_mm_sphere_measures_10_mm_within_a_voxel():
    spacing = (0.5, 0.6, 0.8)
    (lesion,) = lesions.measure_lesions(image_of(sphere(10.0, spacing), spacing))
    assert abs(lesion.largest_diameter_mm - 10.0) <= max(spacing)
    assert lesion.principal_axes_mm == pytest.approx((10.0, 10.0, 10.0), abs=max(spacing))
    assert lesion.volume_ml == pytest.approx(4 / 3 * math.pi * 5.0**3 / 1000, rel=0.03)
    assert lesion.volume_ml == pytest.approx(lesion.voxel_count * 0.5 * 0.6 * 0.8 / 1000)


def test_a_box_measures_its_diagonal_between_corner_voxel_centres():
    spacing = (0.7, 1.1, 2.5)
    array = np.zeros((12, 30, 40), dtype=np.uint8)
    array[2:7, 4:24, 5:35] = 1  # 5 x 20 x 30 voxels (k, j, i)
    (lesion,) = lesions.measure_lesions(image_of(array, spacing))
    expected = math.sqrt((29 * 0.7) ** 2 + (19 * 1.1) ** 2 + (4 * 2.5) ** 2)
    assert lesion.largest_diameter_mm == pytest.approx(expected, abs=1e-9)
    assert lesion.bbox_index_min == (5, 4, 2) and lesion.bbox_index_max == (34, 23, 6)
    assert lesion.bbox_size_mm == pytest.approx((30 * 0.7, 20 * 1.1, 5 * 2.5))
    # Axes of the solid box's equal-moment ellipsoid: sqrt(5/3) times the side, longest first.
    sides = sorted([30 * 0.7, 20 * 1.1, 5 * 2.5], reverse=True)
    assert lesion.principal_axes_mm == pytest.approx([s * math.sqrt(5 / 3) for s in sides], rel=1e-9)


def test_a_flat_single_slice_lesion_is_measured():
    array = np.zeros((5, 20, 20), dtype=np.uint8)
    array[2, 3:9, 4:16] = 1
    (lesion,) = lesions.measure_lesions(image_of(array, (1.0, 2.0, 3.0)))
    assert lesion.largest_diameter_mm == pytest.approx(math.hypot(11 * 1.0, 5 * 2.0))


def test_centroid_is_given_in_lps_and_ras_through_an_oblique_direction():
    spacing = (0.8, 1.2, 2.0)
    direction = tuple(
        np.array([[0.0, 0.6, 0.8], [1.0, 0.0, 0.0], [0.0, 0.8, -0.6]]).ravel()
    )  # orthonormal, not axis-aligned
    array = np.zeros((10, 12, 14), dtype=np.uint8)
    array[3:6, 2:5, 7:11] = 1
    image = image_of(array, spacing, direction, origin=(-20.0, 35.0, 110.0))
    (lesion,) = lesions.measure_lesions(image)
    centre_ijk = (8.5, 3.0, 4.0)
    expected = image.TransformContinuousIndexToPhysicalPoint(centre_ijk)
    assert lesion.centroid_lps == pytest.approx(expected)
    assert lesion.centroid_ras == pytest.approx((-expected[0], -expected[1], expected[2]))


def test_26_connected_voxels_are_one_lesion_and_lesions_are_numbered_from_superior():
    array = np.zeros((20, 10, 10), dtype=np.uint8)
    array[2, 2, 2] = array[3, 3, 3] = 1  # corner contact: one lesion
    array[15:18, 5:8, 5:8] = 1  # higher up
    found = lesions.measure_lesions(image_of(array))
    assert [lesion.voxel_count for lesion in found] == [27, 2]
    assert [lesion.id for lesion in found] == [1, 2]


def test_without_anatomy_the_anatomy_measures_are_absent():
    (lesion,) = lesions.measure_lesions(image_of(sphere(6.0, (1.0, 1.0, 1.0))))
    assert lesion.host_vertebra is None
    assert lesion.distance_to_canal_mm is None and lesion.near_canal is None
    assert lesion.reaches_posterior_wall is None and lesion.extends_into_canal is None


def test_model_output_is_its_own_anatomy():
    found = by_position(lesions.measure_lesions(image_of(spine_anatomy_model(), SPINE_SPACING_IJK)))
    a, b, c = found["A"], found["B"], found["C"]
    assert (a.host_vertebra, b.host_vertebra, c.host_vertebra) == (1, 3, 2)
    assert a.distance_to_canal_mm == pytest.approx(3.5)  # the 7 voxels of 0.5 mm between body and canal
    assert b.distance_to_canal_mm == pytest.approx((87 - 29 - 1) * 0.5)
    assert c.distance_to_canal_mm == 0.0  # touching the canal label it replaced
    assert (a.reaches_posterior_wall, b.reaches_posterior_wall, c.reaches_posterior_wall) == (True, False, True)
    assert (a.extends_into_canal, b.extends_into_canal, c.extends_into_canal) == (False, False, True)
    assert (a.near_canal, b.near_canal) == (True, False)


def test_phantom_anatomy_with_a_separate_lesion_map():
    lesion_map, anatomy = spine_phantom()
    found = by_position(
        lesions.measure_lesions(image_of(lesion_map, SPINE_SPACING_IJK), image_of(anatomy, SPINE_SPACING_IJK))
    )
    a, b, c = found["A"], found["B"], found["C"]
    assert (a.host_vertebra, b.host_vertebra, c.host_vertebra) == (1, 3, 2)
    assert a.distance_to_canal_mm == pytest.approx(3.5)
    assert c.distance_to_canal_mm == 0.0
    assert (a.reaches_posterior_wall, b.reaches_posterior_wall, c.reaches_posterior_wall) == (True, False, True)
    assert (a.extends_into_canal, b.extends_into_canal, c.extends_into_canal) == (False, False, True)


def canal_and_lesion(gap_voxels: int, spacing=(1.0, 1.0, 1.0), diagonal: bool = False) -> np.ndarray:
    """A model-output map: a canal slab and a lesion behind ``gap_voxels`` voxels of vertebral body (array y);
    ``diagonal`` also shifts the lesion off the canal's end by the same number of voxels along x."""
    array = np.zeros((20, 40, 40), dtype=np.uint8)
    array[:, 5:30, 5:35] = ModelLabel.VERTEBRAL_BODY
    array[:, 30:36, 5:35 if not diagonal else 20] = ModelLabel.SPINAL_CANAL
    x = slice(10, 16) if not diagonal else slice(20 + gap_voxels, 26 + gap_voxels)
    array[8:12, 30 - gap_voxels - 4:30 - gap_voxels, x] = ModelLabel.METASTASIS
    return array


@pytest.mark.parametrize("gap_voxels, expected_mm", [(0, 0.0), (1, 1.0), (8, 8.0)])
def test_distance_to_canal_is_the_tissue_between_and_zero_exactly_when_the_lesion_touches(gap_voxels, expected_mm):
    (lesion,) = lesions.measure_lesions(image_of(canal_and_lesion(gap_voxels)))

    assert lesion.distance_to_canal_mm == pytest.approx(expected_mm)
    assert lesion.extends_into_canal is (expected_mm == 0.0)  # the flag follows the distance
    assert lesion.near_canal is (expected_mm < lesions.CANAL_PROXIMITY_MM)


def test_distance_to_canal_counts_millimetres_on_anisotropic_voxels():
    spacing_ijk = (0.5, 2.0, 3.0)  # array y (the gap's axis) has 2.0 mm voxels
    (far,) = lesions.measure_lesions(image_of(canal_and_lesion(4), spacing_ijk))
    (touching,) = lesions.measure_lesions(image_of(canal_and_lesion(0), spacing_ijk))
    assert far.distance_to_canal_mm == pytest.approx(8.0)
    assert (touching.distance_to_canal_mm, touching.extends_into_canal) == (0.0, True)


def test_a_lesion_touching_the_canal_only_along_an_edge_reaches_it_and_a_diagonal_gap_is_euclidean():
    (corner,) = lesions.measure_lesions(image_of(canal_and_lesion(0, diagonal=True)))
    (apart,) = lesions.measure_lesions(image_of(canal_and_lesion(3, diagonal=True)))
    assert (corner.distance_to_canal_mm, corner.extends_into_canal) == (0.0, True)
    assert apart.distance_to_canal_mm == pytest.approx(math.hypot(3.0, 3.0))
    assert apart.extends_into_canal is False


def test_explicit_anatomy_labels_override_detection():
    lesion_map, anatomy = spine_phantom()
    # Only the canal named: no vertebral bodies, so no host and no posterior-wall answer.
    found = lesions.measure_lesions(
        image_of(lesion_map, SPINE_SPACING_IJK),
        image_of(anatomy, SPINE_SPACING_IJK),
        body_labels=[99],
        canal_labels=[int(Anatomy.CSF)],
    )
    assert all(lesion.host_vertebra is None and lesion.reaches_posterior_wall is None for lesion in found)
    assert sorted(lesion.distance_to_canal_mm for lesion in found)[0] == 0.0


def test_anatomy_on_another_grid_is_resampled_onto_the_lesion_grid():
    lesion_map, anatomy = spine_phantom()
    anatomy_image = image_of(anatomy, SPINE_SPACING_IJK)
    shifted = sitk.Resample(
        anatomy_image, [s + 4 for s in anatomy_image.GetSize()], sitk.Transform(), sitk.sitkNearestNeighbor,
        (-2 * 0.9, -2 * 0.5, -2 * 1.25), SPINE_SPACING_IJK, anatomy_image.GetDirection(), 0,
    )  # fmt: skip
    found = by_position(lesions.measure_lesions(image_of(lesion_map, SPINE_SPACING_IJK), shifted))
    assert found["A"].distance_to_canal_mm == pytest.approx(3.5)
    assert found["A"].host_vertebra == 1


def test_large_lesion_flag_follows_the_named_threshold():
    spacing = (1.0, 1.0, 1.0)
    array = np.zeros((10, 10, 50), dtype=np.uint8)
    array[4:6, 4:6, 2 : 2 + int(lesions.LARGE_LESION_DIAMETER_MM) + 3] = 1  # a rod a little over the threshold
    array[4:6, 4:6, 40:44] = 1
    found = sorted(lesions.measure_lesions(image_of(array, spacing)), key=lambda lesion: lesion.voxel_count)
    assert [lesion.large for lesion in found] == [False, True]


def test_lesion_csv_has_the_stable_columns_and_one_row_per_lesion(tmp_path: Path):
    found = lesions.measure_lesions(image_of(spine_anatomy_model(), SPINE_SPACING_IJK))
    path = tmp_path / "out" / "lesions.csv"
    lesions.write_lesion_csv(found, path)
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == lesions.LESION_COLUMNS
    assert [int(row["id"]) for row in rows] == [1, 2, 3]
    assert rows[0]["host_vertebra"] == "1" and rows[0]["reaches_posterior_wall"] == "true"
    assert float(rows[0]["distance_to_canal_mm"]) == pytest.approx(3.5)
    assert rows[0]["closer_than_10_mm_to_canal"] == "true"
    assert [p.name for p in path.parent.iterdir()] == ["lesions.csv"]


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ImageError, match="positive"):
        lesions.measure_lesions(image_of(np.ones((4, 4, 4), np.uint8)), label=0)
    with pytest.raises(ImageError, match="probability"):
        lesions.measure_lesions(image_of(np.full((4, 4, 4), 0.5, np.float32)))
    sheared = image_of(np.ones((4, 4, 4), np.uint8), direction=(1, 0.5, 0, 0, 1, 0, 0, 0, 1))
    with pytest.raises(GeometryError, match="orthonormal"):
        lesions.measure_lesions(sheared)
    far = image_of(np.zeros((4, 4, 4), np.uint8), origin=(500.0, 0.0, 0.0))
    with pytest.raises(GeometryError, match="overlap"):
        lesions.measure_lesions(image_of(np.ones((4, 4, 4), np.uint8)), far)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [3, 6])  # an isotropic 3D case with an epidural lesion; a thick-slice sagittal case
def test_measures_agree_with_the_phantom_ground_truth(seed: int):
    """Host vertebra, posterior-wall and canal flags against the phantom's own per-lesion facts (case.json)."""
    from SpineMetSegLib.data.phantom import generate_case

    case = generate_case(seed)
    names = [vertebra["name"] for vertebra in case.info["vertebrae"]]  # top-down, as our numbering
    checks = []
    for truth in case.info["lesions"]:
        pieces = lesions.measure_lesions(case.lesions, case.anatomy, label=truth["id"])
        assert sum(piece.volume_ml for piece in pieces) == pytest.approx(truth["volume_ml"], abs=1e-3)
        main_piece = max(pieces, key=lambda piece: piece.voxel_count)
        host = names[main_piece.host_vertebra - 1] if main_piece.host_vertebra else None
        assert host in (None, truth["vertebra"])  # None: a lesion confined to a pedicle touches no body
        # Reaching the canal (the flag) includes touching it from the posterior wall, which the phantom does not
        # call epidural: an epidural lesion must reach it, one away from the wall must not.
        reaches_canal = main_piece.extends_into_canal
        checks.append(
            (
                host == truth["vertebra"],
                main_piece.reaches_posterior_wall == truth["reaches_posterior_wall"],
                reaches_canal if truth["epidural"] else True,
                not reaches_canal if not truth["reaches_posterior_wall"] else True,
                reaches_canal == (main_piece.distance_to_canal_mm == 0.0),
            )
        )
    agreement = np.mean(checks, axis=0)
    assert agreement[0] >= 0.75 and agreement[1] >= 0.9 and agreement[2:].min() == 1.0, checks
