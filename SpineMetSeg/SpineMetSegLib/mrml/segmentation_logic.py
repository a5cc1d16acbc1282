"""Segment volume nodes with ``spinemetseg segment`` in a child process; the result becomes a segmentation node.

Usage::

    from SpineMetSegLib.mrml.application import MRMLContext
    from SpineMetSegLib.mrml.segmentation_logic import SegmentationLogic, SegmentationRequest

    logic = SegmentationLogic(MRMLContext.from_slicer())
    job = logic.start(SegmentationRequest(inputs={"t1": t1_node, "stir": stir_node}), on_progress=print)
    ...                                  # the GUI calls job.poll() from a timer; job.cancel() stops it
    result = job.result()                # once job.poll() is not None: imports the labels into the scene
    result.segmentation_node             # "Metastasis", "Vertebral body", "Spinal canal" on the T1 grid

    result = logic.segment(request)      # the same, blocking (scripts, tests)

What happens: the volumes are written (voxels and world geometry, RAS -> LPS) as NIfTI files in a temporary
folder, the child process writes a label map there, and the label map is imported onto the exact grid of
the first input, one segment a label of the model card with its name, colour and terminology. A hidden copy
of this original prediction is kept beside the result so the evaluation can measure manual corrections.

Nothing touches the scene until the child process has succeeded; a failed or cancelled run raises
(``SpineMetSegError`` / ``CancelledError``) and leaves the scene and the chosen output node as they were.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import SimpleITK as sitk

from ..errors import GeometryError, ModelError, SpineMetSegError
from ..images import imageio
from ..models.modelcard import ModelCard
from . import scene as mrml_scene
from . import segments
from .child_job import ChildJob, LogHandler, ProgressHandler
from .process_runner import ProcessRunner, SubprocessRunner
from .transaction import SceneTransaction

# Node reference from a result to the hidden copy of the model's original output.
ORIGINAL_PREDICTION_REFERENCE = "SpineMetSeg.OriginalPrediction"
ROLE_ATTRIBUTE = "SpineMetSeg.Role"
MODEL_ATTRIBUTE = "SpineMetSeg.Model"
ORIGINAL_PREDICTION_ROLE = "OriginalPrediction"
RESULT_ROLE = "Result"
# The input volumes are written in this format; NIfTI is what every tool reads.
INPUT_SUFFIX = ".nii"
# A result whose grid differs from its input by more than this (mm) is refused instead of imported.
GEOMETRY_TOLERANCE_MM = 1e-3


@dataclass
class SegmentationRequest:
    """What to segment and how. ``inputs`` maps sequence keys of the card ("t1", "t2", "stir") to volume nodes."""

    inputs: Dict[str, Any]
    model: Optional[str] = None  # catalog name; None = the default model
    version: Optional[str] = None  # None = the newest version of ``model``
    card_file: Optional[Path] = None  # a model card JSON outside the catalog (with ``weights_file``)
    weights_file: Optional[Path] = None
    device: str = "auto"
    min_lesion_probability: Optional[float] = None  # None = the model card's value (--min-lesion-probability)
    output_node: Any = None  # an existing segmentation node to replace; None = a new node
    overwrite_edits: bool = False  # replace an output node that holds manual edits


@dataclass
class SegmentationResult:
    segmentation_node: Any
    original_prediction_node: Any
    reference_volume_node: Any
    card: ModelCard
    elapsed_s: float
    log: List[str] = field(default_factory=list)


def load_card(request: SegmentationRequest, catalog_path: Optional[Path] = None) -> ModelCard:
    """The model card the request names (a card file, or a catalog entry)."""
    from ..models.loader import resolve_card

    return resolve_card(request.model, request.version, card=request.card_file, catalog_path=catalog_path)


class SegmentationLogic:
    """Runs segmentations for one scene. ``runner_factory`` makes a fresh ``ProcessRunner`` for each run."""

    def __init__(self, context, runner_factory: Callable[[], ProcessRunner] = SubprocessRunner,
                 catalog_path: Optional[Path] = None):
        self.context = context
        self.runner_factory = runner_factory
        self.catalog_path = catalog_path

    def segment(self, request: SegmentationRequest, *, on_progress: Optional[ProgressHandler] = None,
                on_log: Optional[LogHandler] = None) -> SegmentationResult:
        """Run a segmentation to the end (blocking) and return the imported result."""
        job = self.start(request, on_progress=on_progress, on_log=on_log)
        job.wait()
        return job.result()

    def start(self, request: SegmentationRequest, *, on_progress: Optional[ProgressHandler] = None,
              on_log: Optional[LogHandler] = None) -> SegmentationJob:
        """Check the request, write the inputs and start the child process; return the running job."""
        card = load_card(request, self.catalog_path)
        inputs = self._check_inputs(request, card)
        if request.output_node is not None and not request.overwrite_edits and holds_edits(request.output_node):
            raise SpineMetSegError(
                f"The segmentation '{request.output_node.GetName()}' holds manual edits. Choose a new output "
                "segmentation, or confirm that the edits may be replaced."
            )
        workdir = Path(tempfile.mkdtemp(prefix="SpineMetSeg-"))
        try:
            args = self._write_inputs(inputs, workdir)
            args += ["--output", str(workdir / f"labels{INPUT_SUFFIX}"), "--device", request.device]
            args += ["--progress", "lines"]  # the protocol ChildJob reads, whatever the child's output is attached to
            args += self._model_args(request)
            if request.min_lesion_probability is not None:
                args += ["--min-lesion-probability", repr(float(request.min_lesion_probability))]
            job = SegmentationJob(self, request, card, inputs, self.runner_factory(), workdir, on_progress, on_log)
            job.start(["segment", *args])
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        return job

    @staticmethod
    def _check_inputs(request: SegmentationRequest, card) -> Dict[str, Any]:
        """The given inputs in the card's channel order; raises when the card cannot take them."""
        unknown = sorted(set(key for key, node in request.inputs.items() if node is not None) - set(card.inputs))
        if unknown:
            raise ModelError(
                f"The model {card.name} {card.version} does not take {', '.join(unknown)}; it takes "
                f"{', '.join(card.inputs)}. Leave the other selectors empty."
            )
        inputs = {key: request.inputs[key] for key in card.inputs if request.inputs.get(key) is not None}
        if len(inputs) < max(1, card.min_inputs):
            raise ModelError(
                f"The model {card.name} {card.version} needs at least {max(1, card.min_inputs)} of "
                f"{', '.join(s.upper() for s in card.inputs)}; choose the input volumes first."
            )
        return inputs

    @staticmethod
    def _write_inputs(inputs: Dict[str, Any], workdir: Path) -> List[str]:
        args: List[str] = []
        for key, node in inputs.items():
            path = workdir / f"{key}{INPUT_SUFFIX}"
            imageio.write_image(mrml_scene.image_from_volume_node(node), path)
            args += [f"--{key}", str(path)]
        return args

    @staticmethod
    def _model_args(request: SegmentationRequest) -> List[str]:
        if request.card_file is not None:
            args = ["--card", str(request.card_file)]
            return args + (["--weights", str(request.weights_file)] if request.weights_file is not None else [])
        args = ["--model", request.model] if request.model else []
        return args + (["--model-version", request.version] if request.version else [])

    def import_labels(self, labels: sitk.Image, card, inputs: Dict[str, Any],
                      request: SegmentationRequest) -> SegmentationResult:
        """Put a label map (on the first input's grid) into the scene as the result of ``request``."""
        reference = next(iter(inputs.values()))
        if reference.GetScene() is not self.context.scene:
            raise SpineMetSegError(
                f"The volume '{reference.GetName()}' was removed from the scene while it was being segmented; "
                "nothing was imported. Load it again and segment it."
            )
        ijk_to_ras = mrml_scene.local_ijk_to_ras(reference)
        _check_same_grid(labels, reference)
        new_segments = segments.segments_from_label_map(sitk.GetArrayFromImage(labels), ijk_to_ras, card.labels)

        scene = self.context.scene
        with SceneTransaction(scene):
            node = request.output_node
            if node is None:
                node = scene.AddNewNodeByClass(
                    "vtkMRMLSegmentationNode", scene.GenerateUniqueName(f"{reference.GetName()} segmentation")
                )
                node.CreateDefaultDisplayNodes()
            original = _original_prediction_node(scene, node)
            for target in (original, node):
                segments.replace_segments(target, new_segments, reference)
            node.SetAttribute(ROLE_ATTRIBUTE, RESULT_ROLE)
            node.SetAttribute(MODEL_ATTRIBUTE, f"{card.name} {card.version}")
        return SegmentationResult(node, original, reference, card, elapsed_s=0.0)

    def show(self, result: SegmentationResult, *, surfaces: bool = True) -> None:
        """Show the result over its input in the slice views (and as surfaces in 3D)."""
        node = result.segmentation_node
        if node.GetDisplayNode() is None:
            node.CreateDefaultDisplayNodes()
        node.GetDisplayNode().SetVisibility(True)
        if surfaces:
            node.CreateClosedSurfaceRepresentation()
        selection = self.context.application_logic.GetSelectionNode()
        if selection is not None:
            selection.SetActiveVolumeID(result.reference_volume_node.GetID())
            self.context.application_logic.PropagateVolumeSelection(0)


class SegmentationJob(ChildJob):
    """One running segmentation: a ``ChildJob`` that imports its label map into the scene when it succeeded."""

    def __init__(self, logic: SegmentationLogic, request: SegmentationRequest, card, inputs: Dict[str, Any],
                 runner: ProcessRunner, workdir: Path, on_progress: Optional[ProgressHandler],
                 on_log: Optional[LogHandler]):
        super().__init__(runner, on_progress=on_progress, on_log=on_log, what="The segmentation")
        self.logic = logic
        self.request = request
        self.card = card
        self.inputs = inputs
        self.workdir = workdir
        self._imported = False

    def result(self) -> SegmentationResult:
        """Import the finished run into the scene (once); raises for a failed or cancelled run."""
        if self._imported:
            raise SpineMetSegError("This segmentation was already imported or has failed; run it again.")
        try:
            self.check()
            self._imported = True
            labels = imageio.read_image(self.workdir / f"labels{INPUT_SUFFIX}", name="segmentation result")
            result = self.logic.import_labels(labels, self.card, self.inputs, self.request)
        except BaseException:
            self.discard()
            raise
        self.discard()
        result.elapsed_s = self.elapsed_s
        result.log = list(self.log)
        return result

    def discard(self) -> None:
        """Delete the temporary files (the inputs written for the child and its output)."""
        if self.poll() is not None:
            self._imported = True
            shutil.rmtree(self.workdir, ignore_errors=True)


def _check_same_grid(labels: sitk.Image, reference_node) -> None:
    """Refuse a result that is not on the reference volume's grid (it would be misplaced)."""
    expected = mrml_scene.geometry_of_volume_node(reference_node)
    if not imageio.Geometry.of(labels).matches(expected, tolerance=GEOMETRY_TOLERANCE_MM):
        raise GeometryError(
            f"The segmentation came back on another grid than '{reference_node.GetName()}' "
            f"(size {labels.GetSize()} vs {expected.size}); nothing was imported. Report this as a bug."
        )


def _original_prediction_node(scene, result_node):
    """The hidden copy of the model's output belonging to ``result_node`` (created when missing)."""
    original = result_node.GetNodeReference(ORIGINAL_PREDICTION_REFERENCE)
    if original is None:
        original = scene.AddNewNodeByClass(
            "vtkMRMLSegmentationNode", scene.GenerateUniqueName(f"{result_node.GetName()} original prediction")
        )
        original.HideFromEditorsOn()
        original.SetAttribute(ROLE_ATTRIBUTE, ORIGINAL_PREDICTION_ROLE)
        result_node.SetNodeReferenceID(ORIGINAL_PREDICTION_REFERENCE, original.GetID())
    return original


def original_prediction(segmentation_node):
    """The hidden original prediction of a result node, or None (not a SpineMetSeg result)."""
    if segmentation_node is None:
        return None
    return segmentation_node.GetNodeReference(ORIGINAL_PREDICTION_REFERENCE)


def holds_edits(segmentation_node) -> bool:
    """True when replacing this node would lose work: it has voxels that differ from its original prediction
    (or voxels at all, when it is not a SpineMetSeg result)."""
    ids = segments.segment_ids(segmentation_node)
    if not ids:
        return False
    original = original_prediction(segmentation_node)
    if original is None:
        return any(np.any(sitk.GetArrayFromImage(mrml_scene.segment_mask(segmentation_node, i))) for i in ids)
    if sorted(ids) != sorted(segments.segment_ids(original)):
        return True
    geometry = mrml_scene.segmentation_geometry(segmentation_node)
    for segment_id in ids:
        current = sitk.GetArrayFromImage(mrml_scene.segment_mask(segmentation_node, segment_id, geometry))
        before = sitk.GetArrayFromImage(mrml_scene.segment_mask(original, segment_id, geometry))
        if not np.array_equal(current, before):
            return True
    return False
