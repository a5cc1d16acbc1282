"""The Plan section's MRML logic on real slicer-core: markups lines in, zone models and a plan table out."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer")

from SpineMetSegLib.analysis.ablation.anatomy import PlanAnatomy  # noqa: E402
from SpineMetSegLib.analysis.ablation.device_table import AblationDevice, load_devices  # noqa: E402
from SpineMetSegLib.analysis.ablation.evaluation import evaluate_plan  # noqa: E402
from SpineMetSegLib.analysis.ablation.zone import Zone  # noqa: E402
from SpineMetSegLib.errors import SpineMetSegError  # noqa: E402
from SpineMetSegLib.models import catalog  # noqa: E402
from SpineMetSegLib.mrml import scene as mrml_scene  # noqa: E402
from SpineMetSegLib.mrml import segments, tables  # noqa: E402
from SpineMetSegLib.mrml.ablation_logic import BROKEN, AblationPlanLogic, probe_of  # noqa: E402
from SpineMetSegLib.mrml.application import MRMLContext  # noqa: E402

SHAPE = (50, 50, 50)  # k, j, i at 1 mm
ORIGIN = (12.0, -30.0, 40.0)  # LPS
LESION_KJI = np.array([25, 20, 25])
LESION_RADIUS = 4.0
LABELS = catalog.default_card().labels
SPHERE_24 = AblationDevice("test-sphere-24", "test", 10.0, 24.0, 24.0, 6.0, {"all": "test geometry"})


def label_map() -> sitk.Image:
    """A vertebral body (2) holding a 4 mm lesion (1); the canal (3) behind it (larger j = posterior)."""
    k, j, i = np.indices(SHAPE)
    array = np.zeros(SHAPE, dtype=np.uint8)
    array[(np.abs(k - 25) <= 12) & (np.abs(j - 20) <= 12) & (np.abs(i - 25) <= 12)] = 2
    array[(j >= 38) & (j <= 45) & (np.abs(i - 25) <= 5)] = 3
    array[np.sqrt((k - 25) ** 2 + (j - 20) ** 2 + (i - 25) ** 2) <= LESION_RADIUS] = 1
    image = sitk.GetImageFromArray(array)
    image.SetOrigin(ORIGIN)
    return image


def lesion_centre_ras() -> np.ndarray:
    lps = np.asarray(ORIGIN) + LESION_KJI[::-1]
    return lps * np.array([-1.0, -1.0, 1.0])


@pytest.fixture
def context():
    return MRMLContext.standalone()


def make_segmentation(context):
    """A T1-like volume and the label map's segments on it; returns (volume node, segmentation node)."""
    image = label_map()
    volume = mrml_scene.add_volume_node(context.scene, sitk.Cast(image, sitk.sitkFloat32) * 300.0, "T1")
    node = context.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "result")
    array = sitk.GetArrayFromImage(image)
    segments.replace_segments(node, segments.segments_from_label_map(
        array, mrml_scene.ijk_to_ras_of_image(image), LABELS), volume)
    return volume, node


@pytest.fixture
def segmentation_node(context):
    return make_segmentation(context)[1]


def row(plan, measure):
    return next(r for r in tables.rows_of(plan.table_node) if r["Measure"] == measure)


def model_centre(model_node) -> np.ndarray:
    bounds = model_node.GetPolyData().GetBounds()
    return np.array([(bounds[0] + bounds[1]) / 2, (bounds[2] + bounds[3]) / 2, (bounds[4] + bounds[5]) / 2])


def lesion_points_ras() -> np.ndarray:
    image = label_map()
    indices = np.argwhere(sitk.GetArrayFromImage(image) == 1)
    return (np.asarray(ORIGIN) + indices[:, ::-1]) * np.array([-1.0, -1.0, 1.0])


def test_probe_line_gives_a_zone_model_and_a_plan_table(context, segmentation_node):
    logic = AblationPlanLogic(context, devices=[SPHERE_24])
    plan = logic.create_plan(segmentation_node, lesion=1, margin_mm=5.0, canal_clearance_mm=3.0)
    centre = lesion_centre_ras()
    direction = np.array([0.0, 1.0, 0.0])
    line = logic.add_probe(plan, centre + direction * SPHERE_24.tip_to_zone_centre_mm, direction)

    tip, line_direction = probe_of(line)
    np.testing.assert_allclose(tip, centre + [0, 6, 0], atol=1e-9)
    np.testing.assert_allclose(line_direction / np.linalg.norm(line_direction), direction, atol=1e-9)
    zone_node = plan.zone_nodes[0]
    np.testing.assert_allclose(model_centre(zone_node), centre, atol=0.05)
    bounds = zone_node.GetPolyData().GetBounds()
    assert bounds[1] - bounds[0] == pytest.approx(24.0, abs=0.1)
    assert zone_node.GetDisplayNode().GetVisibility2D()
    # The lesion's voxel centres reach exactly 4 mm from its centre: 12 - 4 = 8 mm of margin, all of it covered.
    assert row(plan, "Coverage")["Value"] == pytest.approx(100.0)
    assert row(plan, "Margin")["Value"] == pytest.approx(8.0, abs=1e-6)
    assert row(plan, "Margin")["Status"] == "ok"
    # The zone reaches 12 mm posterior of the lesion centre (j = 32); the canal starts at j = 38.
    assert row(plan, "Zone to canal")["Value"] == pytest.approx(6.0, abs=1e-6)
    assert plan.table_node.GetNodeReference("SpineMetSeg.AblationSegmentation") is segmentation_node


def test_moving_the_line_updates_the_zone_and_the_table(context, segmentation_node):
    logic = AblationPlanLogic(context, devices=[SPHERE_24])
    plan = logic.create_plan(segmentation_node, lesion=1)
    centre = lesion_centre_ras()
    line = logic.add_probe(plan, centre + [0, 6, 0], (0, 1, 0))
    logic.observe(plan)

    shift = np.array([10.0, 0.0, 0.0])
    for index in range(2):
        position = [0.0] * 3
        line.GetNthControlPointPositionWorld(index, position)
        line.SetNthControlPointPositionWorld(index, *(np.asarray(position) + shift))

    np.testing.assert_allclose(model_centre(plan.zone_nodes[0]), centre + shift, atol=0.05)
    farthest = np.linalg.norm(lesion_points_ras() - (centre + shift), axis=1).max()
    assert row(plan, "Margin")["Value"] == pytest.approx(12.0 - farthest, abs=1e-6)
    assert row(plan, "Margin")["Status"] == BROKEN
    assert row(plan, "Coverage")["Value"] < 100.0
    # The table says what the core says for the same probe on the same label map.
    core = evaluate_plan(PlanAnatomy.from_image(label_map()), 1,
                         [Zone.from_probe(SPHERE_24, centre + [0, 6, 0] + shift, (0, 1, 0))])
    assert row(plan, "Coverage")["Value"] == pytest.approx(100 * core.coverage)
    logic.unobserve(plan)
    line.SetNthControlPointPositionWorld(1, *(centre + [0, 6, 0]))
    assert row(plan, "Margin")["Value"] == pytest.approx(12.0 - farthest, abs=1e-6)  # no longer observed


def test_two_probes_combine_their_zones(context, segmentation_node):
    small = AblationDevice("test-sphere-10", "test", 5.0, 10.0, 10.0, 0.0, {"all": "test geometry"})
    logic = AblationPlanLogic(context, devices=[small])
    plan = logic.create_plan(segmentation_node, lesion=1, margin_mm=0.0)
    centre = lesion_centre_ras()
    logic.add_probe(plan, centre + [2.5, 0, 0], (0, 1, 0))
    assert row(plan, "Coverage")["Value"] < 100.0
    logic.add_probe(plan, centre - [2.5, 0, 0], (0, 1, 0))
    assert row(plan, "Probes")["Value"] == 2
    assert row(plan, "Coverage")["Value"] == pytest.approx(100.0)
    assert len(plan.zone_nodes) == 2 and plan.table_node.GetNumberOfNodeReferences("SpineMetSeg.AblationZone") == 2
    logic.remove_probe(plan, plan.probe_nodes[1])
    assert row(plan, "Coverage")["Value"] < 100.0
    assert context.scene.GetNodesByClass("vtkMRMLModelNode").GetNumberOfItems() == 1


@pytest.mark.slow
def test_propose_places_a_probe_that_meets_the_limits(context, segmentation_node, tmp_path):
    logic = AblationPlanLogic(context)
    plan = logic.create_plan(segmentation_node, lesion=1, margin_mm=3.0, canal_clearance_mm=3.0)
    proposal = logic.propose(plan)
    assert proposal.feasible
    assert plan.device.name == "generic-ellipsoid-20x15" == proposal.device.name
    assert len(plan.probe_nodes) == 1
    assert row(plan, "Coverage")["Value"] == pytest.approx(100.0)
    assert row(plan, "Margin")["Value"] >= 3.0 and row(plan, "Zone to canal")["Value"] >= 3.0
    assert all(r["Status"] != BROKEN for r in tables.rows_of(plan.table_node))

    logic.export_json(plan, tmp_path / "plan.json")
    tables.write_csv(plan.table_node, tmp_path / "plan.csv")
    exported = json.loads((tmp_path / "plan.json").read_text(encoding="utf-8"))
    assert exported["measures"]["margin_mm"] == pytest.approx(row(plan, "Margin")["Value"])
    assert exported["proposal"]["feasible"] is True
    assert "Coverage" in (tmp_path / "plan.csv").read_text(encoding="utf-8")


def test_plan_is_restored_from_its_table_node(context, segmentation_node):
    logic = AblationPlanLogic(context)
    plan = logic.create_plan(segmentation_node, lesion=1, device_name="generic-ellipsoid-30x20", margin_mm=4.0)
    line = logic.add_probe(plan, lesion_centre_ras() + [0, 10, 0], (0, 1, 0))
    restored = AblationPlanLogic(context).plan_of(plan.table_node)
    assert (restored.lesion, restored.device.name, restored.margin_mm) == (1, "generic-ellipsoid-30x20", 4.0)
    assert restored.probe_nodes == [line] and restored.zone_nodes == plan.zone_nodes
    assert AblationPlanLogic(context).update(restored).margin_mm == pytest.approx(plan.result.margin_mm)


def with_markups_storage(context):
    """Register the Markups module logic on the scene, as Slicer does at start-up: it brings the markups storage
    node (.mrk.json) a saved scene needs."""
    markups_logic = slicer.vtkSlicerMarkupsLogic()
    markups_logic.SetMRMLScene(context.scene)
    context.markups_logic = markups_logic  # kept alive with the context
    return context


def test_plan_survives_a_saved_scene(tmp_path):
    context = with_markups_storage(MRMLContext.standalone())
    volume, node = make_segmentation(context)
    logic = AblationPlanLogic(context, devices=[SPHERE_24])
    plan = logic.create_plan(node, lesion=1, margin_mm=4.0)
    logic.add_probe(plan, lesion_centre_ras() + [3, 6, 0], (0, 1, 0))
    for saved in (volume, node, plan.table_node, *plan.probe_nodes, *plan.zone_nodes):
        if saved.GetStorageNode() is None:
            saved.AddDefaultStorageNode()
    bundle = tmp_path / "plan.mrb"
    assert context.scene.WriteToMRB(str(bundle))
    # Slicer opens a .mrb through its application's cache folder; here the bundle is unpacked and its scene imported.
    zipfile.ZipFile(bundle).extractall(tmp_path / "opened")
    (scene_file,) = (tmp_path / "opened").rglob("*.mrml")
    reopened = with_markups_storage(MRMLContext.standalone())
    reopened.scene.SetURL(str(scene_file))
    assert reopened.scene.Import()

    plan_tables = [reopened.scene.GetNthNodeByClass(i, "vtkMRMLTableNode")
                   for i in range(reopened.scene.GetNumberOfNodesByClass("vtkMRMLTableNode"))]
    (table_node,) = [t for t in plan_tables if t.GetAttribute("SpineMetSeg.AblationPlan") == "1"]
    restored_logic = AblationPlanLogic(reopened, devices=[SPHERE_24])
    restored = restored_logic.plan_of(table_node)
    assert (restored.lesion, restored.margin_mm, len(restored.probe_nodes)) == (1, 4.0, 1)
    np.testing.assert_allclose(probe_of(restored.probe_nodes[0])[0], probe_of(plan.probe_nodes[0])[0], atol=1e-6)
    assert restored_logic.update(restored).margin_mm == pytest.approx(plan.result.margin_mm, abs=1e-6)


def test_a_plan_for_a_missing_lesion_leaves_the_scene_unchanged(context, segmentation_node):
    before = context.scene.GetNumberOfNodes()
    with pytest.raises(SpineMetSegError, match="no lesion 3"):
        AblationPlanLogic(context).create_plan(segmentation_node, lesion=3)
    assert context.scene.GetNumberOfNodes() == before
    assert [d.name for d in load_devices()][0] == "generic-sphere-10"
