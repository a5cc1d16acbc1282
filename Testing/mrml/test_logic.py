"""The MRML logic of the Slicer module, run against the real Slicer libraries (slicer-core), no fakes.

What a user of the panel relies on, checked on a bare MRML scene set up as Slicer sets it up:
volumes go to the child process with their geometry, the result comes back on the input's grid with named
segments, the lesion table and the metrics agree with the core, manual edits change both, and a failed or
cancelled run leaves the scene as it was. The segmentations run the real ``spinemetseg segment`` child
process with a small seeded model (``--card``/``--weights``).
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer", reason="slicer-core is not installed (pip install slicer-core)")
vtk = pytest.importorskip("vtk")

from inference_fixtures import make_card_json, seeded_network  # noqa: E402
from vtkmodules.util import numpy_support  # noqa: E402

from SpineMetSegLib.analysis import lesions, metrics  # noqa: E402
from SpineMetSegLib.cli import main  # noqa: E402
from SpineMetSegLib.errors import CancelledError, GeometryError, SpineMetSegError  # noqa: E402
from SpineMetSegLib.images import imageio  # noqa: E402
from SpineMetSegLib.models import catalog, weights  # noqa: E402
from SpineMetSegLib.models.modelcard import Label  # noqa: E402
from SpineMetSegLib.mrml import scene as mrml_scene  # noqa: E402
from SpineMetSegLib.mrml import segments, tables  # noqa: E402
from SpineMetSegLib.mrml.application import MRMLContext  # noqa: E402
from SpineMetSegLib.mrml.evaluation_logic import EvaluationLogic  # noqa: E402
from SpineMetSegLib.mrml.lesion_table import LesionTableLogic  # noqa: E402
from SpineMetSegLib.mrml.lesion_watch import LesionTableWatcher  # noqa: E402
from SpineMetSegLib.mrml.segmentation_logic import (  # noqa: E402
    SegmentationLogic,
    SegmentationRequest,
    holds_edits,
    original_prediction,
)

# An oblique acquisition: rotated about two axes, anisotropic voxels, origin away from 0.
OBLIQUE_DIRECTION = tuple(sitk.VersorTransform((0.2, 0.3, 1.0), math.radians(25)).GetMatrix())
SPACING = (1.2, 0.9, 1.1)
ORIGIN = (-31.0, 14.5, 102.0)
SIZE_IJK = (16, 30, 28)
# Distinct colours for the test card (Slicer replaces the "unset" grey 0.5, 0.5, 0.5 with a colour of its own).
LABEL_COLORS = ((0.8, 0.1, 0.3), (0.9, 0.8, 0.6), (0.2, 0.4, 0.9))


def oblique_image(array_kji: np.ndarray, spacing=SPACING, origin=ORIGIN, direction=OBLIQUE_DIRECTION) -> sitk.Image:
    image = sitk.GetImageFromArray(array_kji)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    return image


def spine_like_labels() -> np.ndarray:
    """A (k, j, i) model-convention label map: two vertebral bodies, a canal behind them, three lesions."""
    labels = np.zeros(SIZE_IJK[::-1], np.uint8)
    labels[3:12, 4:14, 2:14] = segments_value("vertebral body")
    labels[15:24, 4:14, 2:14] = segments_value("vertebral body")
    labels[3:24, 17:22, 5:11] = segments_value("spinal canal")
    labels[5:9, 6:10, 4:8] = 1  # inside the upper body
    labels[17:22, 9:14, 6:11] = 1  # reaching the back of the lower body
    labels[20:22, 5:7, 3:5] = 1  # small, in the lower body
    return labels


def segments_value(name: str) -> int:
    return {"metastasis": 1, "vertebral body": 2, "spinal canal": 3}[name]


def mri_from_labels(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    intensity = np.array([20.0, 900.0, 400.0, 700.0], np.float32)[labels]
    return (intensity + rng.normal(0, 15, labels.shape)).astype(np.float32)


def scene_state(scene) -> list:
    """What "the scene is unchanged" means to a user: the same nodes (ID, class, name), in the same order."""
    return [(n.GetID(), n.GetClassName(), n.GetName())
            for n in (scene.GetNthNode(i) for i in range(scene.GetNumberOfNodes()))]


def segment_voxels(node) -> dict:
    return {segment_id: int(sitk.GetArrayFromImage(mrml_scene.segment_mask(node, segment_id)).sum())
            for segment_id in segments.segment_ids(node)}


@pytest.fixture
def context():
    return MRMLContext.standalone()


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    """A small seeded network with its card: what --card/--weights hand to the child process."""
    folder = tmp_path_factory.mktemp("model")
    card = make_card_json(dimensions=2, patch_size=[32, 32], channels=(4, 8), strides=(2,))
    for label, color in zip(card["labels"], LABEL_COLORS):
        label["color"] = list(color)
    card_file = folder / "card.json"
    card_file.write_text(__import__("json").dumps(card))
    weights_file = folder / "weights.safetensors"
    weights.save_state_dict(seeded_network(catalog.card_from_dict(card), seed=3).state_dict(), weights_file)
    return catalog.card_from_file(card_file), card_file, weights_file


@pytest.fixture
def t1_node(context):
    image = oblique_image(mri_from_labels(spine_like_labels()))
    return mrml_scene.add_volume_node(context.scene, image, "sag T1 TSE")


def request_for(t1_node, small_model, **changes) -> SegmentationRequest:
    _card, card_file, weights_file = small_model
    request = SegmentationRequest(inputs={"t1": t1_node}, card_file=card_file, weights_file=weights_file,
                                  device="cpu")
    for key, value in changes.items():
        setattr(request, key, value)
    return request


# --- geometry -------------------------------------------------------------------------------------------


def test_volume_node_converts_with_the_geometry_slicer_itself_writes(context, t1_node, tmp_path):
    """RAS -> LPS: our image of a node equals what Slicer's own NIfTI writer puts in the file."""
    storage = context.scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(tmp_path / "by_slicer.nii.gz"))
    assert storage.WriteData(t1_node)
    by_slicer = sitk.ReadImage(str(tmp_path / "by_slicer.nii.gz"))

    ours = mrml_scene.image_from_volume_node(t1_node)

    assert imageio.Geometry.of(ours).matches(imageio.Geometry.of(by_slicer))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(ours), sitk.GetArrayFromImage(by_slicer))
    # A voxel's RAS position in Slicer is its LPS position in the image with x and y negated.
    matrix = vtk.vtkMatrix4x4()
    t1_node.GetIJKToRASMatrix(matrix)
    ras = matrix.MultiplyPoint((3, 7, 11, 1))[:3]
    lps = ours.TransformIndexToPhysicalPoint((3, 7, 11))
    np.testing.assert_allclose(ras, (-lps[0], -lps[1], lps[2]), atol=1e-9)


def test_volume_under_a_linear_transform_is_written_where_the_user_sees_it(context, t1_node):
    transform = context.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    shift = vtk.vtkMatrix4x4()
    shift.SetElement(0, 3, 10.0)  # 10 mm to the right (RAS x)
    transform.SetMatrixTransformToParent(shift)
    before = mrml_scene.image_from_volume_node(t1_node).GetOrigin()
    t1_node.SetAndObserveTransformNodeID(transform.GetID())

    after = mrml_scene.image_from_volume_node(t1_node).GetOrigin()

    np.testing.assert_allclose(np.subtract(after, before), (-10.0, 0.0, 0.0), atol=1e-9)  # LPS x = -RAS x


# --- segmentation through the real child process ---------------------------------------------------------


@pytest.mark.slow
def test_segmentation_lands_on_the_input_grid_with_the_cards_segments(context, t1_node, small_model, tmp_path):
    card = small_model[0]
    logic = SegmentationLogic(context)
    progress = []

    result = logic.segment(request_for(t1_node, small_model), on_progress=progress.append)

    node = result.segmentation_node
    assert [node.GetSegmentation().GetSegment(i).GetName() for i in segments.segment_ids(node)] == [
        "Metastasis", "Vertebral body", "Spinal canal"]
    metastasis = node.GetSegmentation().GetSegment(segments.find_segment_id(node, "metastasis"))
    assert metastasis.GetColor() == pytest.approx(LABEL_COLORS[0])
    # Read through the terminology tag, which Slicer 5.8 and 5.10 both have (segments.set_terminology).
    assert "SCT^0^test" in segments.terminology_of(metastasis)
    # The segmentation's grid is the T1 volume's grid, matrix for matrix.
    geometry = mrml_scene.segmentation_geometry(node)
    segmentation_matrix, volume_matrix = vtk.vtkMatrix4x4(), vtk.vtkMatrix4x4()
    geometry.GetImageToWorldMatrix(segmentation_matrix)
    t1_node.GetIJKToRASMatrix(volume_matrix)
    np.testing.assert_allclose(mrml_scene.numpy_matrix(segmentation_matrix), mrml_scene.numpy_matrix(volume_matrix),
                               atol=1e-9)
    assert geometry.GetDimensions() == t1_node.GetImageData().GetDimensions()
    # Each voxel holds what the core's own inference gives for the file Slicer writes of this volume.
    storage = context.scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(tmp_path / "t1.nii.gz"))  # the format the logic hands the child process
    assert storage.WriteData(t1_node)
    expected = _core_segmentation(tmp_path / "t1.nii.gz", small_model)
    for label in card.labels:
        segment_id = segments.find_segment_id(node, label.name)
        mask = sitk.GetArrayFromImage(mrml_scene.segment_mask(node, segment_id))
        np.testing.assert_array_equal(mask, (expected == label.value).astype(np.uint8), err_msg=label.name)
    assert (expected > 0).any()
    # The run reported progress, kept a hidden copy of its output, and left no edits behind.
    assert progress and progress[-1].percent == 100
    assert original_prediction(node).GetHideFromEditors()
    assert not holds_edits(node)
    # Shown over the T1 in the slice views and as surfaces in 3D.
    logic.show(result)
    assert context.application_logic.GetSelectionNode().GetActiveVolumeID() == t1_node.GetID()
    assert node.GetSegmentation().ContainsRepresentation("Closed surface")
    assert node.GetDisplayNode().GetVisibility()


@pytest.mark.slow
def test_the_panels_lesion_confidence_reaches_the_child_process(context, t1_node, small_model):
    logic = SegmentationLogic(context)
    default = logic.segment(request_for(t1_node, small_model)).segmentation_node
    strict = logic.segment(request_for(t1_node, small_model, min_lesion_probability=1.0)).segmentation_node

    def metastasis_voxels(node):
        mask = mrml_scene.segment_mask(node, segments.find_segment_id(node, "metastasis"))
        return int(sitk.GetArrayFromImage(mask).sum())

    # The card keeps every lesion; a confidence of 1 keeps none (no mean probability reaches 1).
    assert metastasis_voxels(default) > 0
    assert metastasis_voxels(strict) == 0


def _core_segmentation(path, small_model) -> np.ndarray:
    from SpineMetSegLib import inference
    from SpineMetSegLib.models.loader import load_network

    card, _card_file, weights_file = small_model
    network = load_network(card, weights_file)  # what the child process loads from --weights and --card
    result = inference.segment_images({"t1": imageio.read_image(path)}, card, network, device="cpu")
    return sitk.GetArrayFromImage(result.labels)


@pytest.mark.slow
def test_failing_run_leaves_the_scene_and_the_chosen_output_unchanged(context, t1_node, small_model):
    """The real child process, given a constant volume, fails; nothing in the scene changes."""
    flat = mrml_scene.add_volume_node(context.scene, oblique_image(np.full(SIZE_IJK[::-1], 5.0, np.float32)), "T1")
    previous = _imported_result(context, t1_node, small_model[0])
    output = previous.segmentation_node
    before, voxels_before = scene_state(context.scene), segment_voxels(output)

    with pytest.raises(SpineMetSegError) as failure:
        SegmentationLogic(context).segment(request_for(flat, small_model, output_node=output))

    assert "constant" in str(failure.value).lower()
    assert scene_state(context.scene) == before
    assert segment_voxels(output) == voxels_before


@pytest.mark.slow
def test_cancelled_run_leaves_the_scene_unchanged(context, t1_node, small_model):
    before = scene_state(context.scene)
    job = SegmentationLogic(context).start(request_for(t1_node, small_model))
    deadline = time.monotonic() + 60
    while job.progress is None and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job.progress is not None, "the child process never reported progress"

    job.cancel()
    job.wait()

    with pytest.raises(CancelledError):
        job.result()
    assert scene_state(context.scene) == before
    assert not job.workdir.exists()


def _imported_result(context, volume_node, card, image=None):
    """A result node made by the logic's import step from a known label map (no child process)."""
    image = oblique_image(spine_like_labels()) if image is None else image
    return SegmentationLogic(context).import_labels(
        image, card, {"t1": volume_node}, SegmentationRequest(inputs={"t1": volume_node}))


def test_output_holding_edits_is_replaced_only_after_confirmation(context, t1_node, small_model):
    result = _imported_result(context, t1_node, small_model[0])
    node = result.segmentation_node
    _erase_box(node, "metastasis", (slice(5, 9), slice(6, 10), slice(4, 8)))
    assert holds_edits(node)

    with pytest.raises(SpineMetSegError, match="manual edits"):
        SegmentationLogic(context).start(request_for(t1_node, small_model, output_node=node))


def test_result_on_another_grid_than_its_input_is_refused(context, t1_node, small_model):
    shifted = oblique_image(spine_like_labels(), origin=(0.0, 0.0, 0.0))
    before = scene_state(context.scene)
    with pytest.raises(GeometryError):
        SegmentationLogic(context).import_labels(shifted, small_model[0], {"t1": t1_node},
                                                 SegmentationRequest(inputs={"t1": t1_node}))
    assert scene_state(context.scene) == before


# --- lesion table ----------------------------------------------------------------------------------------


def _erase_box(node, label_name, box_kji):
    """A manual edit through the segmentation API: clear voxels of a segment in its own label map."""
    segment_id = segments.find_segment_id(node, label_name)
    labelmap = slicer.vtkOrientedImageData()
    node.GetBinaryLabelmapRepresentation(segment_id, labelmap)
    extent = labelmap.GetExtent()
    array = numpy_support.vtk_to_numpy(labelmap.GetPointData().GetScalars()).reshape(
        labelmap.GetDimensions()[::-1]).copy()
    k, j, i = (slice(s.start - extent[2 * axis], s.stop - extent[2 * axis]) for axis, s in
               zip((2, 1, 0), box_kji))
    array[k, j, i] = 0
    labelmap.GetPointData().SetScalars(numpy_support.numpy_to_vtk(array.ravel(), deep=True))
    slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
        labelmap, node, segment_id, slicer.vtkSlicerSegmentationsModuleLogic.MODE_REPLACE)


def test_lesion_table_holds_the_cores_measures(context, t1_node, small_model):
    node = _imported_result(context, t1_node, small_model[0]).segmentation_node

    table = LesionTableLogic(context).update(node)

    expected = lesions.measure_lesions(oblique_image(spine_like_labels()))
    rows = tables.rows_of(table.table_node)
    assert len(rows) == len(expected) == 3
    for row, lesion in zip(rows, expected):
        assert row["Lesion"] == lesion.id
        assert row["Volume"] == pytest.approx(lesion.volume_ml)
        assert row["Largest diameter"] == pytest.approx(lesion.largest_diameter_mm)
        assert row["Host vertebra"] == str(lesion.host_vertebra)
        assert row["Distance to canal"] == pytest.approx(lesion.distance_to_canal_mm)
        assert (row["R"], row["A"], row["S"]) == pytest.approx(lesion.centroid_ras)
    assert {row["Host vertebra"] for row in rows} == {"1", "2"}
    assert table.table_node.GetColumnUnitLabel("Volume") == "mL"


def test_lesion_table_columns_agree_with_each_other(context, t1_node, small_model):
    labels = spine_like_labels()
    labels[10:13, 15:17, 6:9] = 1  # behind the bodies, touching the canal (y 17), one voxel away from any body
    node = _imported_result(context, t1_node, small_model[0], oblique_image(labels)).segmentation_node

    rows = tables.rows_of(LesionTableLogic(context).update(node).table_node)

    touching = [row for row in rows if row["Host vertebra"] == "none"]
    assert len(touching) == 1
    assert touching[0]["Distance to canal"] == 0.0
    assert "reaches the canal" in touching[0]["Flags"]
    for row in rows:  # the flag says exactly what the distance says
        assert ("reaches the canal" in row["Flags"]) == (row["Distance to canal"] == 0.0)
        assert ("closer than 10 mm to canal" in row["Flags"]) == (row["Distance to canal"] < 10.0)
    (back,) = [row for row in rows if row["Posterior wall"] == "yes"]
    assert back["Distance to canal"] == pytest.approx(3 * SPACING[1])  # three 0.9 mm voxels of body between


def test_manual_edit_changes_the_lesion_table_and_the_metrics(context, t1_node, small_model):
    node = _imported_result(context, t1_node, small_model[0]).segmentation_node
    table_logic, evaluation = LesionTableLogic(context), EvaluationLogic(context)
    table = table_logic.update(node)
    before = tables.rows_of(table.table_node)
    unchanged = evaluation.compare_with_original(node)
    assert len(before) == 3
    assert unchanged.metrics["dice"] == 1.0
    voxel_ml = np.prod(SPACING) / 1000.0
    erased = next(row for row in before if row["Volume"] == pytest.approx(4 * 4 * 4 * voxel_ml))

    _erase_box(node, "metastasis", (slice(5, 9), slice(6, 10), slice(4, 8)))  # that lesion, all of it

    table_logic.update(node, table.table_node)
    rows = tables.rows_of(table.table_node)
    assert sorted(row["Volume"] for row in rows) == pytest.approx(
        sorted(row["Volume"] for row in before if row is not erased))
    assert {row["Host vertebra"] for row in rows} == {"1", "2"} - {erased["Host vertebra"]}
    changed = evaluation.compare_with_original(node, table_node=unchanged.table_node)
    assert changed.metrics["dice"] < 1.0
    assert changed.metrics["lesions"]["reference_count"] == 2  # the corrected segment
    assert changed.metrics["lesions"]["false_positive"] == 1  # the original still has the erased lesion
    assert holds_edits(node)


def _paint_box(node, label_name, box_kji):
    """A brush stroke the way the Segment Editor's Paint effect applies it: a modifier label map merged into the
    segment with MODE_MERGE_MASK over its extent (v5.8.0 qSlicerSegmentEditorAbstractEffect.cxx lines 526-528;
    v5.10.0 vtkSlicerSegmentEditorLogic.cxx lines 1938-1941)."""
    segment_id = segments.find_segment_id(node, label_name)
    labelmap = slicer.vtkOrientedImageData()
    node.GetBinaryLabelmapRepresentation(segment_id, labelmap)
    reference = mrml_scene.segmentation_geometry(node)
    modifier = slicer.vtkOrientedImageData()
    modifier.DeepCopy(reference)
    modifier.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    array = np.zeros(modifier.GetDimensions()[::-1], np.uint8)
    array[box_kji] = 1
    modifier.GetPointData().SetScalars(numpy_support.numpy_to_vtk(array.ravel(), deep=True))
    slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
        modifier, node, segment_id, slicer.vtkSlicerSegmentationsModuleLogic.MODE_MERGE_MASK, modifier.GetExtent())


def test_painting_voxels_refreshes_the_lesion_table_through_the_watcher(context, t1_node, small_model):
    node = _imported_result(context, t1_node, small_model[0]).segmentation_node
    logic = LesionTableLogic(context)
    table = logic.update(node)
    edits = []
    watcher = LesionTableWatcher(logic.update, delay_s=0.0, on_edit=lambda: edits.append(1))
    watcher.watch(node, table.table_node)
    assert len(tables.rows_of(table.table_node)) == 3

    _paint_box(node, "metastasis", np.s_[12:14, 4:7, 3:6])  # a new lesion between the two bodies

    assert edits and watcher.pending
    updated = watcher.update_if_due()
    rows = tables.rows_of(table.table_node)
    assert updated is not None and updated.table_node is table.table_node
    assert len(rows) == 4
    voxel_ml = np.prod(SPACING) / 1000.0
    assert any(row["Volume"] == pytest.approx(2 * 3 * 3 * voxel_ml) for row in rows)
    assert not watcher.pending and watcher.update_if_due() is None


def test_a_burst_of_edits_is_measured_once_after_it_pauses(context, t1_node, small_model):
    node = _imported_result(context, t1_node, small_model[0]).segmentation_node
    logic = LesionTableLogic(context)
    now = [100.0]  # the watcher's clock, moved by hand: no sleeping, and a loaded machine cannot stretch the burst
    watcher = LesionTableWatcher(logic.update, delay_s=0.5, clock=lambda: now[0])
    watcher.watch(node, logic.update(node).table_node)

    _paint_box(node, "metastasis", np.s_[12:14, 4:7, 3:6])
    now[0] += 0.4
    _erase_box(node, "metastasis", (slice(5, 9), slice(6, 10), slice(4, 8)))
    now[0] += 0.4

    assert watcher.update_if_due() is None  # 0.4 s after the last edit: still inside the burst
    now[0] += 0.2
    assert len(watcher.update_if_due().lesions) == 3  # 0.6 s after it: measured once, one added, one erased
    assert watcher.update_if_due() is None


def test_removing_the_segment_or_stopping_the_watch_is_seen_or_ignored(context, t1_node, small_model):
    node = _imported_result(context, t1_node, small_model[0]).segmentation_node
    logic = LesionTableLogic(context)
    watcher = LesionTableWatcher(logic.update, delay_s=0.0)
    watcher.watch(node, logic.update(node).table_node)

    node.GetSegmentation().RemoveSegment(segments.find_segment_id(node, "spinal canal"))
    assert watcher.pending
    assert all(row["Distance to canal"] is None or math.isnan(row["Distance to canal"])
               for row in tables.rows_of(watcher.update().table_node))

    watcher.stop()
    _paint_box(node, "metastasis", np.s_[12:14, 4:7, 3:6])
    assert not watcher.pending


def test_remove_lesion_deletes_exactly_that_lesion(context, t1_node, small_model):
    node = _imported_result(context, t1_node, small_model[0]).segmentation_node
    logic = LesionTableLogic(context)
    table = logic.update(node)
    smallest = min(table.lesions, key=lambda lesion: lesion.volume_ml)

    logic.remove_lesion(node, smallest)

    remaining = logic.update(node, table.table_node).lesions
    assert sorted(round(x.volume_ml, 6) for x in remaining) == sorted(
        round(x.volume_ml, 6) for x in table.lesions if x is not smallest)


# --- evaluation ------------------------------------------------------------------------------------------


def test_metrics_against_a_reference_on_another_grid_agree_with_the_core(context, t1_node, small_model, tmp_path,
                                                                         capsys):
    prediction_labels = spine_like_labels()
    node = _imported_result(context, t1_node, small_model[0], oblique_image(prediction_labels)).segmentation_node
    # The reference: a coarser, differently rotated and shifted grid, with its own lesion outline.
    reference_direction = tuple(sitk.VersorTransform((1.0, 0.0, 0.2), math.radians(8)).GetMatrix())
    reference_image = sitk.Image([24, 26, 22], sitk.sitkUInt8)
    reference_image.SetSpacing((1.5, 1.3, 1.4))
    reference_image.SetOrigin((-40.0, 0.0, 95.0))
    reference_image.SetDirection(reference_direction)
    predicted_lesions = oblique_image((prediction_labels == 1).astype(np.uint8))
    truth = sitk.Resample(sitk.BinaryDilate(predicted_lesions, [1, 1, 1]), reference_image,
                          sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    reference_volume = mrml_scene.add_volume_node(context.scene, sitk.Cast(truth, sitk.sitkFloat32), "ref grid")
    reference_node = _imported_result(context, reference_volume, _truth_card(), truth)
    reference_node = reference_node.segmentation_node

    evaluation = EvaluationLogic(context).evaluate(
        reference_node, segments.find_segment_id(reference_node, "truth"),
        node, segments.find_segment_id(node, "metastasis"))

    expected = metrics.compute_metrics(truth, predicted_lesions, labels=[1], missing_ok=True)["1"]
    for key in ("dice", "iou", "sensitivity", "specificity", "precision", "hd95_mm", "assd_mm",
                "volume_reference_ml", "volume_prediction_ml"):
        assert evaluation.metrics[key] == pytest.approx(expected[key]), key
    assert evaluation.metrics["lesions"]["detected"] == expected["lesions"]["detected"]
    assert 0.2 < evaluation.metrics["dice"] < 0.95  # a real disagreement, not two empty masks
    shown = {row["Metric"]: row["Value"] for row in tables.rows_of(evaluation.table_node)}
    assert shown["Dice"] == pytest.approx(expected["dice"])
    assert shown["HD95"] == pytest.approx(expected["hd95_mm"])
    csv_text = tables.write_csv(evaluation.table_node, tmp_path / "metrics.csv").read_text(encoding="utf-8")
    assert csv_text.splitlines()[0] == "Metric,Value,Unit,Note"
    assert f"Dice,{expected['dice']:.6g}" in csv_text
    # The panel's table is the command line's table: same rows, in the same order, with the same values.
    sitk.WriteImage(truth, str(tmp_path / "reference.nii.gz"))
    sitk.WriteImage(predicted_lesions, str(tmp_path / "prediction.nii.gz"))
    assert main(["evaluate", "--reference", str(tmp_path / "reference.nii.gz"), "--prediction",
                 str(tmp_path / "prediction.nii.gz"), "--label", "1"]) == 0
    printed = capsys.readouterr().out.splitlines()
    panel_rows = tables.rows_of(evaluation.table_node)
    header = next(index for index, line in enumerate(printed) if line.strip() == "label 1")
    table_lines = printed[header + 1:header + 1 + len(panel_rows)]
    assert [line[:24].strip().rstrip("*") for line in table_lines] == [row["Metric"] for row in panel_rows]
    for line, row in zip(table_lines, panel_rows):
        cell = line.split()[-1] if not row["Unit"] else line.split()[-2]
        assert cell == "n/a" if row["Value"] is None else float(cell) == pytest.approx(row["Value"], abs=6e-4)


def _truth_card():
    """A real card whose only label is the reference segment."""
    default = catalog.default_card()
    truth = Label(name="truth", value=1, color=(0.2, 0.9, 0.2), terminology=default.labels[0].terminology)
    return default.replace(labels=(truth,))


def test_compare_with_original_needs_a_segmentation_made_by_the_module(context, t1_node, small_model):
    plain = context.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "drawn by hand")
    with pytest.raises(SpineMetSegError, match="original prediction"):
        EvaluationLogic(context).compare_with_original(plain)


# --- sample case -----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_sample_case_arrives_as_named_volumes_with_the_phantoms_truth(context):
    from SpineMetSegLib.data.phantom import generate_case
    from SpineMetSegLib.mrml import sample_data
    from SpineMetSegLib.mrml.input_matching import match_volume_nodes

    case = sample_data.load_sample_case(context)

    assert match_volume_nodes(context.scene) == case.volumes  # the selectors fill themselves
    phantom = generate_case(sample_data.SAMPLE_SEED, acquisition=sample_data.SAMPLE_ACQUISITION)
    truth_voxels = int((sitk.GetArrayViewFromImage(phantom.lesions) > 0).sum())
    truth_id = segments.find_segment_id(case.truth_node, "metastasis")
    assert segment_voxels(case.truth_node)[truth_id] == truth_voxels > 0
    assert len(LesionTableLogic(context).measure(case.truth_node)) == len(case.info["lesions"]) >= 2
    t1 = mrml_scene.image_from_volume_node(case.volumes["t1"])
    assert imageio.Geometry.of(t1).matches(imageio.Geometry.of(phantom.images["t1"]))


# SampleDataLogic.registerCustomSampleDataSource's parameters (Modules/Scripted/SampleData/SampleData.py,
# v5.8.0 lines 457-462, v5.10.0 lines 510-515: the same list on both).
REGISTER_SAMPLE_PARAMETERS = {"category", "sampleName", "uris", "fileNames", "nodeNames", "customDownloader",
                              "thumbnailFileName", "loadFileTypes", "loadFiles", "loadFileProperties", "checksums",
                              "loadFileType"}


def test_sample_data_registration_shows_a_title_and_names_one_file_node_and_reader_per_item():
    from SpineMetSegLib.mrml import sample_data

    arguments = sample_data.sample_source_arguments("icon.png")

    assert set(arguments) <= REGISTER_SAMPLE_PARAMETERS
    assert "customDownloader" not in arguments  # it would serve only the button, not downloadSample(name)
    assert arguments["sampleName"] == "Synthetic spine MRI with metastases (SpineMetSeg)"  # what the button shows
    lists = [arguments[key] for key in ("uris", "fileNames", "nodeNames", "loadFileTypes")]
    assert {len(items) for items in lists} == {4}
    assert arguments["nodeNames"] == ["Phantom T1", "Phantom T2", "Phantom STIR", "Phantom truth"]
    assert arguments["loadFileTypes"] == ["VolumeFile"] * 3 + ["SegmentationFile"]
    assert len(set(arguments["fileNames"])) == 4
    assert all(uri.startswith("spinemetseg://phantom/") for uri in arguments["uris"])


@pytest.mark.slow
def test_sample_uris_load_the_phantom_through_urllib_as_slicers_sample_data_does(context, tmp_path):
    """SampleDataLogic.downloadFile fetches with urllib.request.urlretrieve (v5.8.0 line 949, v5.10.0 line 1098)
    into the cache, then loads each file with the named reader; the same steps here, with slicer-core's readers."""
    import urllib.request

    from SpineMetSegLib.data.phantom import generate_case
    from SpineMetSegLib.mrml import sample_data

    arguments = sample_data.sample_source_arguments()
    sample_data.install_sample_url_handler()
    try:
        paths = []
        for uri, file_name in zip(arguments["uris"], arguments["fileNames"]):
            path, _headers = urllib.request.urlretrieve(uri, tmp_path / file_name)
            paths.append(path)
        with pytest.raises(OSError):
            urllib.request.urlretrieve("spinemetseg://phantom/other.nrrd", tmp_path / "other.nrrd")
    finally:
        urllib.request.install_opener(None)

    nodes = {}
    for path, name, file_type in zip(paths, arguments["nodeNames"], arguments["loadFileTypes"]):
        class_name = "vtkMRMLSegmentationNode" if file_type == "SegmentationFile" else "vtkMRMLScalarVolumeNode"
        node = context.scene.AddNewNodeByClass(class_name, name)
        storage = node.CreateDefaultStorageNode()
        context.scene.AddNode(storage)
        storage.SetFileName(str(path))
        assert storage.ReadData(node)
        nodes[name] = node
    phantom = generate_case(sample_data.SAMPLE_SEED, acquisition=sample_data.SAMPLE_ACQUISITION)
    for key in ("t1", "t2", "stir"):
        loaded = mrml_scene.image_from_volume_node(nodes[f"Phantom {key.upper()}"])
        np.testing.assert_array_equal(sitk.GetArrayFromImage(loaded), sitk.GetArrayFromImage(phantom.images[key]))
        assert imageio.Geometry.of(loaded).matches(imageio.Geometry.of(phantom.images[key]))
    truth = nodes["Phantom truth"]
    assert [segments.label_of(truth.GetSegmentation().GetSegment(i)) for i in segments.segment_ids(truth)] == [
        "metastasis", "vertebral body", "spinal canal"]
    metastasis = truth.GetSegmentation().GetSegment(segments.find_segment_id(truth, "metastasis"))
    assert "SCT" in segments.terminology_of(metastasis)
    truth_voxels = int((sitk.GetArrayViewFromImage(phantom.lesions) > 0).sum())
    assert segment_voxels(truth)[segments.find_segment_id(truth, "metastasis")] == truth_voxels


# --- inputs, dependencies, models ------------------------------------------------------------------------


def test_volume_names_fill_the_sequence_selectors(context):
    from SpineMetSegLib.mrml.input_matching import match_volume_nodes

    image = oblique_image(np.zeros(SIZE_IJK[::-1], np.float32))
    names = ["T12 localizer", "sag_T2_tse", "sag_t2_tirm", "Sag T1 TSE", "seg labels"]
    nodes = {name: mrml_scene.add_volume_node(context.scene, image, name) for name in names[:4]}
    mrml_scene.add_volume_node(context.scene, image, names[4], "vtkMRMLLabelMapVolumeNode")

    matched = match_volume_nodes(context.scene)

    assert matched == {"t1": nodes["Sag T1 TSE"], "t2": nodes["sag_T2_tse"], "stir": nodes["sag_t2_tirm"]}


def test_missing_requirements_name_absent_and_too_old_packages(tmp_path):
    from SpineMetSegLib.mrml import dependencies

    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# comment\nnumpy>=1.0\nscipy>=999.0\nno-such-package-spinemetseg>=1.0\n")

    missing = dependencies.missing_requirements(requirements)

    assert [(r.name, r.installed is None) for r in missing] == [
        ("scipy", False), ("no-such-package-spinemetseg", True)]
    assert dependencies.pip_arguments(missing) == ["scipy>=999.0", "no-such-package-spinemetseg>=1.0"]
    assert not dependencies.torch_missing(missing)
    assert "installed" in dependencies.describe(missing)


def test_shipped_requirements_are_installed_in_this_environment():
    from SpineMetSegLib.mrml import dependencies

    assert dependencies.missing_requirements() == []
    assert [r.name for r in dependencies.requirements()][0] == "torch"  # before MONAI, which would pull its own


@pytest.fixture
def served_model(tmp_path, monkeypatch):
    """A catalog whose only model is served over HTTP on 127.0.0.1."""
    import hashlib
    import http.server
    import json
    import threading

    folder = tmp_path / "served"
    folder.mkdir()
    card = make_card_json(dimensions=2, patch_size=[32, 32], channels=(4, 8), strides=(2,))
    weights.save_state_dict(seeded_network(catalog.card_from_dict(card)).state_dict(), folder / "model.safetensors")
    payload = (folder / "model.safetensors").read_bytes()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    card["file"] = {"url": f"http://127.0.0.1:{server.server_address[1]}/model.safetensors", "size": len(payload),
                    "sha256": hashlib.sha256(payload).hexdigest(), "format": "safetensors"}
    catalog_file = tmp_path / "catalog.json"
    catalog_file.write_text(json.dumps({"schema_version": 1, "default": card["name"], "models": [card]}))
    monkeypatch.setenv("SPINEMETSEG_CATALOG", str(catalog_file))
    yield catalog_file
    server.shutdown()


@pytest.mark.slow
def test_model_is_downloaded_by_a_child_process_with_progress(served_model):
    from SpineMetSegLib.mrml.model_logic import ModelLogic

    logic = ModelLogic(catalog_path=served_model)
    (entry,) = logic.entries()
    assert not entry.available and "not downloaded" in entry.label
    progress = []

    log = []
    job = logic.start_download(entry.card, on_progress=progress.append, on_log=log.append)
    job.wait()
    job.check()

    # The child speaks only the protocol: every progress report is a SPINEMETSEG-PROGRESS line (the model logic
    # has no other parser), from the first byte to the end, and no bar reached the log.
    percents = [p.percent for p in progress]
    assert percents == sorted(percents) and percents[0] == 0 and percents[-1] == 100
    assert [p.stage for p in progress][-2:] == ["download", "done"]
    assert progress[-2].message.startswith(f"{entry.card.name} {entry.card.version} ")
    assert not any("%" in line for line in log), log
    (entry,) = logic.entries()
    assert entry.available and "T1, T2, STIR" in entry.label


def test_default_model_is_listed_first_and_is_on_this_computer():
    from SpineMetSegLib.mrml.model_logic import ModelLogic

    entries = ModelLogic().entries()

    assert entries[0].card.name == catalog.DEFAULT_MODEL_NAME and entries[0].default
    assert entries[0].available  # embedded in the extension: usable offline
    assert "synthetic" in entries[0].description.lower()


@pytest.mark.slow
def test_self_test_workflow_on_the_sample_case(context):
    """What SpineMetSegTest does in Slicer: sample case, default model, one lesion removed, Dice vs the truth."""
    from SpineMetSegLib.mrml import sample_data

    report = sample_data.run_workflow(context, device="cpu")

    assert report.lesions_found >= 1
    # The reader's correction changes the lesion count as it should and moves the result towards the truth.
    expected_count = {"removed a false lesion": report.lesions_found - 1,
                      "outlined a missed lesion": report.lesions_found + 1}
    assert report.lesions_after_edit == expected_count[report.edit]
    assert report.edited_volume_ml > 0
    assert report.change_dice < 1.0
    assert report.dice_after_edit > report.dice_before_edit
    assert report.dice_after_edit > sample_data.SELF_TEST_MIN_DICE


def test_the_saved_device_is_applied_to_a_new_panel_node_and_again_after_close_scene(context):
    from SpineMetSegLib.mrml.device_choice import needs_saved_device

    scene = context.scene
    node = scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode")
    node.SetSingletonTag("SpineMetSeg")
    assert needs_saved_device(node)
    node.SetParameter("device", "cpu")  # what the wrapper writes
    assert not needs_saved_device(node)

    scene.Clear(0)  # File > Close Scene: singletons stay, reset

    assert scene.GetSingletonNode("SpineMetSeg", "vtkMRMLScriptedModuleNode") is node
    assert needs_saved_device(node)


@pytest.mark.slow
def test_the_gpu_check_runs_in_a_child_process_and_says_what_this_computer_has():
    from SpineMetSegLib.mrml.device_choice import describe_hardware, probe_result, start_hardware_probe
    from SpineMetSegLib.mrml.process_runner import SubprocessRunner

    job = start_hardware_probe(lambda: SubprocessRunner(command=[__import__("sys").executable]))
    job.wait()

    assert probe_result(job) == describe_hardware()  # this machine: CPU-only torch, so "No GPU found (...)"
    assert probe_result(job).startswith(("Found:", "No GPU found", "PyTorch is not installed"))
