"""Ablation planning core: zone geometry, coverage, margin and canal distance on hand-built label maps with exact
answers, the device table, the proposal search, and zones of several probes combined."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import SimpleITK as sitk

from SpineMetSegLib.analysis import lesions
from SpineMetSegLib.analysis.ablation import device_table
from SpineMetSegLib.analysis.ablation.anatomy import PlanAnatomy
from SpineMetSegLib.analysis.ablation.device_table import AblationDevice, DeviceTableError, find_device, load_devices
from SpineMetSegLib.analysis.ablation.evaluation import evaluate_plan
from SpineMetSegLib.analysis.ablation.proposal import propose
from SpineMetSegLib.analysis.ablation.zone import Zone, ellipse_distance
from SpineMetSegLib.errors import SpineMetSegError

SPACING = 0.5
SHAPE = (90, 90, 90)  # k, j, i: 45 mm a side
ROTATED = (math.cos(0.5), -math.sin(0.5), 0.0, math.sin(0.5), math.cos(0.5), 0.0, 0.0, 0.0, 1.0)


def device(length: float, diameter: float, tip_to_centre: float = 0.0, name: str = "") -> AblationDevice:
    return AblationDevice(name or f"test-{length:g}x{diameter:g}", "test", 10.0, length, diameter, tip_to_centre,
                          {"all": "test geometry"})


class Phantom:
    """A label map built from RAS-space shapes: the truth of every test is the geometry, not the code under test."""

    def __init__(self, direction=(1, 0, 0, 0, 1, 0, 0, 0, 1), origin=(10.0, -5.0, -20.0)):
        self.image = sitk.Image([SHAPE[2], SHAPE[1], SHAPE[0]], sitk.sitkUInt8)
        self.image.SetSpacing((SPACING,) * 3)
        self.image.SetDirection(direction)
        self.image.SetOrigin(origin)
        ijk = np.indices(SHAPE).reshape(3, -1).T[:, ::-1].astype(float)
        lps = np.asarray(origin) + (ijk * SPACING) @ np.array(direction).reshape(3, 3).T
        self.points = lps * np.array([-1.0, -1.0, 1.0])  # RAS, in array (C) order
        self.labels = np.zeros(len(self.points), dtype=np.uint8)

    @property
    def centre(self) -> np.ndarray:
        """The centre of the middle voxel."""
        return self.points[np.ravel_multi_index(tuple(n // 2 for n in SHAPE), SHAPE)]

    def paint(self, where: np.ndarray, value: int) -> np.ndarray:
        self.labels[where] = value
        return where

    def ball(self, centre, radius: float, value: int = 1) -> np.ndarray:
        return self.paint(np.linalg.norm(self.points - np.asarray(centre), axis=1) <= radius, value)

    def anatomy(self, **options) -> PlanAnatomy:
        image = sitk.GetImageFromArray(self.labels.reshape(SHAPE))
        image.CopyInformation(self.image)
        return PlanAnatomy.from_image(image, **options)

    def label_image(self) -> sitk.Image:
        image = sitk.GetImageFromArray(self.labels.reshape(SHAPE))
        image.CopyInformation(self.image)
        return image


# Zone geometry -------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_distance_to_an_ellipse_matches_the_closest_point_found_by_brute_force():
    rng = np.random.default_rng(1)
    u, v = rng.uniform(0, 25, 300), rng.uniform(0, 25, 300)
    u[:30] = 0.0
    v[30:60] = 0.0
    angles = np.linspace(0, math.pi / 2, 100001)
    for a, b in ((15.0, 10.0), (10.0, 15.0), (12.0, 12.0)):
        brute = np.array([np.hypot(a * np.cos(angles) - x, b * np.sin(angles) - y).min() for x, y in zip(u, v)])
        assert np.abs(ellipse_distance(u, v, a, b) - brute).max() < 1e-3


def test_point_on_the_long_axis_is_nearest_to_two_off_axis_surface_points():
    # Semi-axes 15 (along the probe) and 10: a point 5 mm along the axis from the centre is nearest to (9, +-8),
    # at sqrt(4^2 + 8^2) = sqrt(80) mm, not to the end of the axis (10 mm away) nor to the side (10 mm).
    zone = Zone.from_centre(device(30, 20), (1.0, 2.0, 3.0), (0, 1, 0))
    assert zone.signed_distance(np.array([[1.0, 7.0, 3.0]]))[0] == pytest.approx(-math.sqrt(80), abs=1e-9)
    assert zone.signed_distance(np.array([[1.0, 2.0, 3.0]]))[0] == pytest.approx(-10.0, abs=1e-9)
    assert zone.signed_distance(np.array([[1.0, 2.0 + 20.0, 3.0]]))[0] == pytest.approx(5.0, abs=1e-9)


def test_pruned_extremes_equal_the_extremes_of_every_point():
    rng = np.random.default_rng(2)
    zone = Zone.from_centre(device(40, 22), (3.0, -4.0, 5.0), (0.2, 1.0, -0.4))
    points = rng.uniform(-40, 40, (3000, 3))
    every = zone.signed_distance(points)
    assert zone.extreme_signed_distance(points) == every.min()
    assert zone.extreme_signed_distance(points, largest=True) == every.max()
    assert zone.extreme_signed_distance(points, bound=every.min() + 0.5) == every.min()
    assert zone.extreme_signed_distance(points, bound=every.min() - 11.0) == math.inf


def test_zone_centre_lies_behind_the_tip_by_the_devices_offset():
    zone = Zone.from_probe(device(30, 20, tip_to_centre=10.0), tip_ras=(0, 40, 0), direction_ras=(0, 2, 0))
    np.testing.assert_allclose(zone.centre, [0, 30, 0])
    assert zone.volume_ml == pytest.approx(4 / 3 * math.pi * 15 * 10 * 10 / 1000)


def test_probe_without_a_direction_is_refused():
    with pytest.raises(SpineMetSegError, match="no length"):
        Zone.from_probe(device(20, 20), (0, 0, 0), (0, 0, 0))


# Coverage and margin ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("direction", [(1, 0, 0, 0, 1, 0, 0, 0, 1), ROTATED], ids=["axial", "rotated-grid"])
def test_lesion_inside_a_larger_zone_is_covered_with_the_radius_difference_as_margin(direction):
    phantom = Phantom(direction=direction)
    centre = phantom.centre
    lesion = phantom.ball(centre, 6.0)
    zone = Zone.from_centre(device(24, 24), centre, (0.3, 1, 0.2))
    result = evaluate_plan(phantom.anatomy(), 1, [zone])
    assert result.coverage == 1.0
    assert result.uncovered_volume_ml == 0.0
    # Voxels count by their centres: the margin is 12 mm minus the farthest lesion voxel centre's radius, exactly,
    # and that radius is within a voxel of the drawn 6 mm.
    farthest = np.linalg.norm(phantom.points[lesion] - centre, axis=1).max()
    assert result.margin_mm == pytest.approx(12.0 - farthest, abs=1e-6)
    assert result.margin_mm == pytest.approx(6.0, abs=SPACING)
    assert result.margin_ok and result.lesion_volume_ml == pytest.approx(lesion.sum() * SPACING**3 / 1000)


def test_lesion_half_outside_a_zone_has_half_coverage_and_sticks_out_by_its_radius():
    phantom = Phantom()
    centre = phantom.centre
    lesion = phantom.ball(centre, 6.0)
    # A large zone whose surface passes through the lesion's centre: the part beyond it (-S side) is uncovered.
    zone = Zone.from_centre(device(200, 200), centre + np.array([0, 0, 100.0]), (0, 0, 1))
    result = evaluate_plan(phantom.anatomy(), 1, [zone])
    inside = np.linalg.norm(phantom.points[lesion] - zone.centre, axis=1) <= 100.0
    assert result.coverage == pytest.approx(inside.mean(), abs=1e-12)
    assert result.coverage == pytest.approx(0.5, abs=0.06)  # the drawn half plus the central voxel layer
    farthest = np.linalg.norm(phantom.points[lesion] - zone.centre, axis=1).max()
    assert result.margin_mm == pytest.approx(100.0 - farthest, abs=1e-6)
    assert result.margin_mm == pytest.approx(-6.0, abs=SPACING)
    # Where: the lesion's inferior pole, and the uncovered part's centre lies below the lesion's centre.
    assert np.linalg.norm(np.asarray(result.margin_location_ras) - zone.centre) == pytest.approx(farthest, abs=1e-9)
    assert result.margin_location_ras[2] == pytest.approx(centre[2] - 6.0, abs=SPACING)
    assert result.uncovered_centre_ras[2] < centre[2] - 1.0
    assert not result.margin_ok and not result.fully_covered


# Canal and body ---------------------------------------------------------------------------------------------------
def _with_canal(gap: float):
    """A lesion, and a canal filling everything at least 12 + gap mm posterior of a 12 mm zone around it."""
    phantom = Phantom()
    centre = phantom.centre
    phantom.ball(centre, 3.0)
    canal_start = centre[1] - 12.0 - gap  # canal where A <= canal_start
    phantom.paint(phantom.points[:, 1] <= canal_start + 1e-9, 3)
    # The canal voxel centres nearest the zone lie exactly on the plane A = canal_start (a voxel-centre plane).
    assert np.isclose(phantom.points[phantom.labels == 3][:, 1].max(), canal_start)
    return phantom, Zone.from_centre(device(24, 24), centre, (0, 1, 0))


def test_zone_touching_the_canal_is_at_distance_zero():
    phantom, zone = _with_canal(gap=0.0)
    result = evaluate_plan(phantom.anatomy(), 1, [zone], canal_clearance_mm=5.0)
    assert result.zone_to_canal_mm == 0.0
    assert result.canal_ok is False
    assert result.canal_location_ras[1] == pytest.approx(phantom.centre[1] - 12.0)


def test_zone_short_of_the_canal_reports_the_gap():
    phantom, zone = _with_canal(gap=3.0)
    result = evaluate_plan(phantom.anatomy(), 1, [zone], canal_clearance_mm=5.0)
    assert result.zone_to_canal_mm == pytest.approx(3.0, abs=1e-9)
    assert result.canal_in_zone_ml == 0.0
    assert result.canal_ok is False
    assert evaluate_plan(phantom.anatomy(), 1, [zone], canal_clearance_mm=2.5).canal_ok is True


def test_probe_line_through_the_canal_breaks_the_shaft_limit():
    phantom, _ = _with_canal(gap=3.0)
    through = Zone.from_centre(device(24, 24), phantom.centre, (0, 1, 0))  # enters from behind, across the canal
    beside = Zone.from_centre(device(24, 24), phantom.centre, (0, -1, 0))  # enters from the front
    anatomy = phantom.anatomy()
    assert evaluate_plan(anatomy, 1, [through]).shaft_to_canal_mm == pytest.approx(0.0, abs=SPACING)
    assert evaluate_plan(anatomy, 1, [through]).shaft_ok is False
    assert evaluate_plan(anatomy, 1, [beside]).shaft_to_canal_mm == pytest.approx(15.0, abs=1e-9)


def test_zone_inside_the_vertebral_body_has_no_share_outside_it():
    phantom = Phantom()
    centre = phantom.centre
    phantom.paint(np.abs(phantom.points - centre).max(axis=1) <= 15.0, 2)  # a 30 mm cube of body
    phantom.ball(centre, 3.0)
    zone = Zone.from_centre(device(20, 16), centre, (0, 1, 0))
    result = evaluate_plan(phantom.anatomy(), 1, [zone])
    assert result.zone_outside_body_share == 0.0
    assert result.body_in_zone_ml == pytest.approx(zone.volume_ml, rel=0.02)
    assert result.zone_leaves_image is False


def test_zone_across_the_body_wall_has_half_its_volume_outside():
    phantom = Phantom()
    centre = phantom.centre
    phantom.paint(phantom.points[:, 0] <= centre[0] + 1e-9, 2)  # body to the left (-R) of the centre plane
    phantom.ball(centre - [4, 0, 0], 2.0)
    zone = Zone.from_centre(device(20, 20), centre, (0, 1, 0))
    result = evaluate_plan(phantom.anatomy(), 1, [zone])
    assert result.zone_outside_body_share == pytest.approx(0.5, abs=0.05)
    assert result.body_in_zone_ml == pytest.approx(zone.volume_ml / 2, rel=0.06)


def test_zone_reaching_past_the_image_is_flagged():
    phantom = Phantom()
    phantom.ball(phantom.centre, 3.0)
    zone = Zone.from_centre(device(60, 20), phantom.centre, (0, 0, 1))  # 30 mm each way in a 45 mm image
    assert evaluate_plan(phantom.anatomy(), 1, [zone]).zone_leaves_image is True


# Several probes ------------------------------------------------------------------------------------------------
def test_two_zones_combine_to_cover_a_lesion_neither_covers_alone():
    phantom = Phantom()
    centre = phantom.centre
    left, right = centre - [6, 0, 0], centre + [6, 0, 0]
    lesion = phantom.ball(left, 5.0) | phantom.ball(right, 5.0) | phantom.paint(
        (np.abs(phantom.points[:, 0] - centre[0]) <= 6) & (np.linalg.norm(phantom.points[:, 1:] - centre[1:], axis=1)
                                                          <= 3.0), 1)
    zone_left = Zone.from_centre(device(20, 20), left, (0, 1, 0))
    zone_right = Zone.from_centre(device(20, 20), right, (0, 1, 0))
    anatomy = phantom.anatomy()
    alone = [evaluate_plan(anatomy, 1, [zone]) for zone in (zone_left, zone_right)]
    both = evaluate_plan(anatomy, 1, [zone_left, zone_right], margin_mm=2.0)
    assert all(result.coverage < 0.75 for result in alone)
    assert both.coverage == 1.0 and both.uncovered_volume_ml == 0.0
    # Each lesion voxel's depth is counted in its deeper zone: the margin is 10 mm minus the lesion's largest
    # distance from the nearer zone centre, reached on the bridge's rim midway: sqrt(6^2 + 3^2) mm out.
    points = phantom.points[lesion]
    nearer = np.minimum(np.linalg.norm(points - left, axis=1), np.linalg.norm(points - right, axis=1))
    assert both.margin_mm == pytest.approx(10.0 - nearer.max(), abs=1e-6)
    assert both.margin_mm == pytest.approx(10.0 - math.sqrt(45.0), abs=SPACING)
    assert len(both.zones) == 2


# Lesion numbering and inputs ----------------------------------------------------------------------------------------
def test_lesions_are_numbered_as_the_lesions_command_numbers_them():
    phantom = Phantom()
    centre = phantom.centre
    for offset in ((0, 0, -12), (8, 0, 12), (-8, 5, 0)):
        phantom.ball(centre + np.array(offset), 3.0)
    anatomy = phantom.anatomy()
    measured = lesions.measure_lesions(phantom.label_image())
    assert anatomy.lesion_count == len(measured) == 3
    for lesion in measured:
        np.testing.assert_allclose(anatomy.lesion_points(lesion.id).mean(axis=0), lesion.centroid_ras, atol=1e-6)


def test_missing_lesion_number_and_empty_map_are_explained():
    phantom = Phantom()
    phantom.ball(phantom.centre, 3.0)
    with pytest.raises(SpineMetSegError, match="no lesion 2: the segmentation holds 1 lesion"):
        phantom.anatomy().lesion_points(2)
    empty = Phantom()
    empty.paint(empty.points[:, 0] > empty.centre[0], 2)
    with pytest.raises(SpineMetSegError, match="no voxel of the segmentation has the label 1"):
        empty.anatomy()


# Device table -------------------------------------------------------------------------------------------------------
def test_shipped_devices_are_generic_with_a_source_for_every_number():
    devices = load_devices()
    assert len(devices) >= 3
    assert [d.zone_volume_ml for d in devices] == sorted(d.zone_volume_ml for d in devices)
    for entry in devices:
        assert entry.name.startswith("generic-")
        for key in device_table.NUMBER_FIELDS:
            assert entry.sources[key].strip()
    note = json.loads(device_table.shipped_table_path().read_text(encoding="utf-8"))["note"]
    assert "none of these numbers is a manufacturer's" in note.lower()


def test_users_own_devices_join_the_table(tmp_path, monkeypatch):
    entry = {"name": "my-probe", "description": "mine", "active_length_mm": 15, "zone_length_mm": 25,
             "zone_diameter_mm": 18, "tip_to_zone_centre_mm": 8,
             "sources": {key: "our department's measurement, 2026" for key in device_table.NUMBER_FIELDS}}
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"devices": [entry]}), encoding="utf-8")
    mine = find_device(load_devices(path), "my-probe")
    assert (mine.zone_length_mm, mine.zone_diameter_mm, mine.table) == (25.0, 18.0, str(path))
    monkeypatch.setenv(device_table.DEVICES_ENVIRONMENT_VARIABLE, str(path))
    assert "my-probe" in [d.name for d in load_devices()]


@pytest.mark.parametrize(
    "change, message",
    [({"zone_length_mm": "long"}, "needs a number for zone_length_mm"),
     ({"zone_diameter_mm": -3}, "zone_diameter_mm = -3; it must be positive"),
     ({"sources": {}}, "names no source for active_length_mm"),
     ({"name": ""}, "has no name")],
)
def test_invalid_device_entry_names_the_problem(tmp_path, change, message):
    entry = {"name": "bad", "active_length_mm": 15, "zone_length_mm": 25, "zone_diameter_mm": 18,
             "tip_to_zone_centre_mm": 8, "sources": {key: "x" for key in device_table.NUMBER_FIELDS}}
    entry.update(change)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"devices": [entry]}), encoding="utf-8")
    with pytest.raises(DeviceTableError, match=message):
        load_devices(path)


def test_unknown_device_lists_the_known_ones():
    with pytest.raises(DeviceTableError, match="generic-sphere-10"):
        find_device(load_devices(), "no-such-probe")


# Proposal -------------------------------------------------------------------------------------------------------
PROPOSAL_DEVICES = [device(10, 10, 0, "small-10"), device(20, 16, 0, "medium-20x16"), device(30, 24, 5, "large-30x24"),
                    device(40, 34, 5, "largest-40x34")]


@pytest.mark.slow
def test_proposal_picks_the_smallest_device_that_covers_the_lesion_with_the_margin():
    phantom = Phantom()
    centre = phantom.centre
    phantom.ball(centre, 4.0)
    proposal = propose(phantom.anatomy(), 1, PROPOSAL_DEVICES, margin_mm=5.0)
    # A 4 mm ball plus 5 mm of margin needs a zone at least 18 mm across: 10 and 16 are too small, 24 fits.
    assert proposal.feasible
    assert proposal.device.name == "large-30x24"
    assert proposal.tried_devices == ["small-10", "medium-20x16", "large-30x24"]
    assert proposal.result.coverage == 1.0 and proposal.result.margin_mm >= 5.0
    # The direction stays in the cone around anterior (+A).
    assert proposal.zone.direction[1] >= math.cos(math.radians(30)) - 1e-9


def test_proposal_keeps_the_canal_clearance_by_moving_the_zone():
    phantom, _ = _with_canal(gap=0.0)  # canal 12 mm posterior of a 3 mm lesion
    proposal = propose(phantom.anatomy(), 1, PROPOSAL_DEVICES, margin_mm=2.0, canal_clearance_mm=3.0,
                       cone_axis_ras=(0, -1, 0))  # enter from the front: the probe line never crosses the canal
    assert proposal.feasible
    assert proposal.result.zone_to_canal_mm >= 3.0 - 1e-6
    assert proposal.result.margin_mm >= 2.0 - 1e-6


@pytest.mark.slow
def test_proposal_reports_what_it_cannot_cover():
    phantom = Phantom()
    phantom.ball(phantom.centre, 19.0)  # wider than the largest zone
    proposal = propose(phantom.anatomy(), 1, PROPOSAL_DEVICES, margin_mm=5.0)
    assert not proposal.feasible
    assert proposal.tried_devices == [d.name for d in PROPOSAL_DEVICES]
    assert proposal.result.coverage < 1.0
    assert proposal.result.uncovered_volume_ml > 0.0
    assert proposal.result.margin_mm < 0.0


def test_tip_depth_in_the_body_is_its_distance_to_the_body_face():
    phantom = Phantom()
    centre = phantom.centre
    # Body voxel centres up to A = centre + 10: its face lies half a voxel further, at centre + 10.25.
    phantom.paint(phantom.points[:, 1] <= centre[1] + 10.0 + 1e-9, 2)
    phantom.ball(centre, 2.0)
    anatomy = phantom.anatomy()
    inside = Zone.from_probe(device(10, 10, 0), centre + [0, 8.0, 0], (0, 1, 0))
    outside = Zone.from_probe(device(10, 10, 0), centre + [0, 11.5, 0], (0, 1, 0))
    assert evaluate_plan(anatomy, 1, [inside]).tip_depth_in_body_mm == [pytest.approx(2.25, abs=1e-5)]
    assert evaluate_plan(anatomy, 1, [inside]).tips_ok is True
    result = evaluate_plan(anatomy, 1, [inside, outside], margin_mm=0.0)
    assert result.tip_depth_in_body_mm[1] == pytest.approx(-1.25, abs=1e-5)
    assert result.tips_ok is False and not result.limits_met


def test_proposal_keeps_the_tip_inside_the_body():
    phantom = Phantom()
    centre = phantom.centre
    # A lesion 3 mm inside the body's front face: a zone centred on it would put the tip (5 mm ahead) outside.
    phantom.paint((phantom.points[:, 1] <= centre[1] + 3.0 + 1e-9)
                  & (np.abs(phantom.points - centre).max(axis=1) <= 20.0), 2)
    phantom.ball(centre, 1.5)
    entry = device(10, 10, 5.0, "ball-10-tip-ahead")
    proposal = propose(phantom.anatomy(), 1, [entry], margin_mm=0.0)
    assert proposal.result.tip_depth_in_body_mm[0] > 0.0
    assert proposal.result.coverage == 1.0


def test_a_map_of_lesions_alone_measures_coverage_and_leaves_anatomy_measures_empty():
    phantom = Phantom()
    phantom.ball(phantom.centre, 3.0)
    result = evaluate_plan(phantom.anatomy(), 1, [Zone.from_centre(device(20, 20), phantom.centre, (0, 1, 0))])
    assert result.coverage == 1.0 and result.margin_ok
    assert (result.zone_to_canal_mm, result.body_in_zone_ml, result.zone_outside_body_share,
            result.tip_depth_in_body_mm) == (None, None, None, None)
    assert result.canal_ok is None and result.tips_ok is None and result.limits_met
