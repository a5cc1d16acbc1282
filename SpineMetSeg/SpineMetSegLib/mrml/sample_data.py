"""The one-click sample case (a synthetic spine from the phantom, generated locally) and the self-test workflow.

Usage::

    from SpineMetSegLib.mrml import sample_data

    case = sample_data.load_sample_case(context)   # T1, T2, STIR volume nodes and the truth segmentation
    report = sample_data.run_workflow(context)      # load, segment, remove a lesion, evaluate against the truth
    report.dice_after_edit

Nothing is downloaded: the phantom renders the case from ``SAMPLE_SEED`` in a few seconds, the same case on
every computer. The module's self-test runs ``run_workflow`` with the default model.

The Sample Data module lists the case under a readable title, and both its button and a script's
``SampleData.downloadSample(SAMPLE_TITLE)`` load it. Both go through ``SampleDataLogic.downloadFromSource``,
which fetches each URI with ``urllib.request.urlretrieve`` into Slicer's cache and loads the file from there
(Modules/Scripted/SampleData/SampleData.py: ``downloadSamples`` v5.8.0 lines 862-870, v5.10.0 lines 993-1001;
``urlretrieve`` v5.8.0 line 949, v5.10.0 line 1098; a file already in the cache is reused, v5.8.0 line 944).
A ``customDownloader`` would serve only the button (v5.8.0 lines 392-393, v5.10.0 lines 445-446), so instead
the URIs use the ``spinemetseg:`` scheme, which ``SampleURLHandler`` answers by rendering the case::

    sample_data.install_sample_url_handler()                      # once, at Slicer start-up
    SampleDataLogic.registerCustomSampleDataSource(**sample_data.sample_source_arguments(thumbnail))
"""

from __future__ import annotations

import io
import tempfile
import urllib.error
import urllib.request
import urllib.response
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import SimpleITK as sitk
import slicer

from .. import __version__
from ..errors import SpineMetSegError
from ..models import catalog
from . import scene as mrml_scene
from . import segments
from .process_runner import ProcessRunner, SubprocessRunner
from .segmentation_logic import ROLE_ATTRIBUTE, SegmentationLogic, SegmentationRequest
from .transaction import SceneTransaction

SAMPLE_NAME = "SpineMetSegPhantom"
# The Sample Data button shows the sample name (registerCustomSampleDataSource has no separate description:
# SampleData.py v5.8.0 lines 457-462 and 488-503, v5.10.0 lines 510-515), so the name is the readable title.
SAMPLE_TITLE = "Synthetic spine MRI with metastases (SpineMetSeg)"
SAMPLE_CATEGORY = "Spine Metastasis Segmentation"
SAMPLE_URI_SCHEME = "spinemetseg"
# A 2D sagittal case (the usual clinical protocol) with three metastases: two lytic, one sclerotic.
SAMPLE_SEED = 4
SAMPLE_ACQUISITION = "sagittal2d"
NODE_PREFIX = "Phantom"
# The self-test's floor for the Dice of the default model on the sample case, after the lesion edit.
SELF_TEST_MIN_DICE = 0.5
TRUTH_ROLE = "Truth"


@dataclass
class SampleCase:
    volumes: Dict[str, Any]  # "t1", "t2", "stir" -> vtkMRMLScalarVolumeNode
    truth_node: Any  # vtkMRMLSegmentationNode: metastasis, vertebral body, spinal canal (exact)
    info: dict  # the phantom's case description (lesion types, volumes, vertebrae)


def load_sample_case(context, seed: int = SAMPLE_SEED) -> SampleCase:
    """Render the sample case and add its volumes and its truth segmentation to the scene."""
    from ..data.phantom import generate_case, model_target

    case = generate_case(seed, acquisition=SAMPLE_ACQUISITION)
    card = catalog.load_catalog().get()
    scene = context.scene
    with SceneTransaction(scene):
        volumes = {key: mrml_scene.add_volume_node(scene, image, f"{NODE_PREFIX} {key.upper()}")
                   for key, image in case.images.items()}
        truth = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", f"{NODE_PREFIX} truth")
        truth.CreateDefaultDisplayNodes()
        reference = volumes["t1"]
        new_segments = segments.segments_from_label_map(
            sitk.GetArrayFromImage(model_target(case)), mrml_scene.local_ijk_to_ras(reference), card.labels)
        segments.replace_segments(truth, new_segments, reference)
        truth.SetAttribute(ROLE_ATTRIBUTE, TRUTH_ROLE)
    return SampleCase(volumes, truth, case.info)


@dataclass(frozen=True)
class SampleFile:
    key: str  # "t1", "t2", "stir" or "truth"
    node_name: str
    file_type: str  # Slicer's reader: "VolumeFile" or "SegmentationFile"

    @property
    def file_name(self) -> str:
        """The name in Slicer's cache; the version keeps a newer phantom from reusing an older cached file."""
        suffix = ".seg.nrrd" if self.file_type == "SegmentationFile" else ".nrrd"
        return f"SpineMetSeg-{__version__}-phantom-seed{SAMPLE_SEED}-{self.key}{suffix}"

    @property
    def uri(self) -> str:
        return f"{SAMPLE_URI_SCHEME}://phantom/{self.file_name}"


SAMPLE_FILES = (
    SampleFile("t1", f"{NODE_PREFIX} T1", "VolumeFile"),
    SampleFile("t2", f"{NODE_PREFIX} T2", "VolumeFile"),
    SampleFile("stir", f"{NODE_PREFIX} STIR", "VolumeFile"),
    SampleFile("truth", f"{NODE_PREFIX} truth", "SegmentationFile"),
)


def sample_source_arguments(thumbnail_file: Optional[str] = None) -> Dict[str, Any]:
    """Keyword arguments for ``SampleDataLogic.registerCustomSampleDataSource`` (5.8 and 5.10 take the same)."""
    return {
        "category": SAMPLE_CATEGORY,
        "sampleName": SAMPLE_TITLE,
        "uris": [f.uri for f in SAMPLE_FILES],
        "fileNames": [f.file_name for f in SAMPLE_FILES],
        "nodeNames": [f.node_name for f in SAMPLE_FILES],
        "loadFileTypes": [f.file_type for f in SAMPLE_FILES],
        "thumbnailFileName": thumbnail_file,
    }


def write_sample_files(folder: Path, seed: int = SAMPLE_SEED) -> Dict[str, Path]:
    """Render the sample case into ``folder`` as the files ``SAMPLE_FILES`` names; file name -> path."""
    from .application import MRMLContext

    folder.mkdir(parents=True, exist_ok=True)
    # A private bare scene: inside Slicer the files must not pass through the user's scene.
    context = MRMLContext(scene=slicer.vtkMRMLScene(), application_logic=None, segmentations_logic=None)
    case = load_sample_case(context, seed)
    written = {}
    for sample_file in SAMPLE_FILES:
        node = case.truth_node if sample_file.key == "truth" else case.volumes[sample_file.key]
        storage = node.CreateDefaultStorageNode()
        context.scene.AddNode(storage)
        path = folder / sample_file.file_name
        storage.SetFileName(str(path))
        storage.SetUseCompression(True)
        if not storage.WriteData(node):
            raise SpineMetSegError(f"The sample case could not be written to {path}.")
        written[sample_file.file_name] = path
    return written


class SampleURLHandler(urllib.request.BaseHandler):
    """Answers ``spinemetseg://phantom/<file name>`` by rendering the sample case (once per process) and
    returning that file, so Slicer's Sample Data logic "downloads" it like any other sample."""

    def __init__(self):
        self._folder: Optional[tempfile.TemporaryDirectory] = None
        self._files: Dict[str, Path] = {}

    def spinemetseg_open(self, request: urllib.request.Request):
        name = request.full_url.rsplit("/", 1)[-1]
        if name not in {f.file_name for f in SAMPLE_FILES}:
            raise urllib.error.URLError(f"no SpineMetSeg sample file {name!r}")
        if name not in self._files:
            self._folder = tempfile.TemporaryDirectory(prefix="spinemetseg-sample-")
            self._files = write_sample_files(Path(self._folder.name))
        data = self._files[name].read_bytes()
        headers = Message()
        headers["Content-Length"] = str(len(data))
        headers["Content-Type"] = "application/octet-stream"
        return urllib.response.addinfourl(io.BytesIO(data), headers, request.full_url, 200)


def install_sample_url_handler() -> None:
    """Let ``urllib.request.urlopen`` (hence Slicer's Sample Data module) open ``spinemetseg:`` URIs.

    ``build_opener`` starts from urllib's default handlers (proxies from the environment, HTTP(S), FTP, file,
    data), which is the opener ``urlopen`` builds when none is installed, and adds this one.
    """
    urllib.request.install_opener(urllib.request.build_opener(SampleURLHandler()))


@dataclass
class WorkflowReport:
    """What the self-test checks: the steps a user takes on the sample case, and their numbers."""

    lesions_found: int
    lesions_after_edit: int
    edit: str  # "removed a false lesion", "outlined a missed lesion" or "none" (nothing to correct)
    edited_volume_ml: float
    dice_before_edit: float
    dice_after_edit: float
    change_dice: float  # corrected vs original prediction: below 1 once the reader changed something
    log: List[str] = field(default_factory=list)


def run_workflow(context, runner_factory: Callable[[], ProcessRunner] = SubprocessRunner,
                 device: str = "auto", case: Optional[SampleCase] = None) -> WorkflowReport:
    """Load the sample case, segment it with the default model, make the correction a reader would make (remove a
    false lesion when there is one, else outline the largest missed metastasis), and evaluate against the
    phantom's truth before and after."""
    # Imported here: Slicer lists the sample case at start-up, before the panel has installed SciPy.
    from .evaluation_logic import EvaluationLogic
    from .lesion_table import LesionTableLogic

    case = case or load_sample_case(context)
    result = SegmentationLogic(context, runner_factory).segment(
        SegmentationRequest(inputs=dict(case.volumes), device=device))
    node = result.segmentation_node
    tables_logic, evaluation = LesionTableLogic(context), EvaluationLogic(context)
    found = tables_logic.update(node).lesions
    if not found:
        raise SpineMetSegError("The default model found no lesion in the sample case.")
    truth_id = segments.find_segment_id(case.truth_node, segments.METASTASIS)
    metastasis_id = segments.find_segment_id(node, segments.METASTASIS)
    before = evaluation.evaluate(case.truth_node, truth_id, node, metastasis_id)
    edit, volume_ml = _correct(tables_logic, node, metastasis_id, found, case.truth_node, truth_id)
    after_table = tables_logic.update(node)
    after = evaluation.evaluate(case.truth_node, truth_id, node, metastasis_id, table_node=before.table_node)
    change = evaluation.compare_with_original(node)
    return WorkflowReport(
        lesions_found=len(found),
        lesions_after_edit=len(after_table.lesions),
        edit=edit,
        edited_volume_ml=volume_ml,
        dice_before_edit=before.metrics["dice"],
        dice_after_edit=after.metrics["dice"],
        change_dice=change.metrics["dice"],
        log=result.log,
    )


def _correct(tables_logic, node, metastasis_id: str, found, truth_node, truth_id: str):
    """The reader's correction, as (what was done, volume in ml): remove the predicted lesion lying farthest
    outside the truth when one lies outside it, else add the largest truth lesion that no prediction touches."""
    from ..analysis.lesion_matching import connected_lesions

    truth = mrml_scene.segment_mask(truth_node, truth_id, mrml_scene.segmentation_geometry(node))
    distance = sitk.SignedMaurerDistanceMap(truth, insideIsPositive=False, squaredDistance=False,
                                            useImageSpacing=True)

    def outside_mm(lesion) -> float:
        index = distance.TransformPhysicalPointToIndex(lesion.centroid_lps)
        inside = all(0 <= i < n for i, n in zip(index, distance.GetSize()))
        return distance[index] if inside else float("inf")

    farthest = max(found, key=outside_mm)
    if outside_mm(farthest) > 0:
        tables_logic.remove_lesion(node, farthest)
        return "removed a false lesion", farthest.volume_ml
    predicted = mrml_scene.segment_mask(node, metastasis_id)
    truth_array = sitk.GetArrayFromImage(truth) > 0
    predicted_array = sitk.GetArrayFromImage(predicted) > 0
    components, count = connected_lesions(truth_array)
    missed = [i for i in range(1, count + 1) if not predicted_array[components == i].any()]
    if not missed:
        return "none", 0.0
    sizes = np.bincount(components.ravel(), minlength=count + 1)
    added = components == max(missed, key=lambda i: sizes[i])
    corrected = sitk.GetImageFromArray((predicted_array | added).astype(np.uint8))
    corrected.CopyInformation(predicted)
    mrml_scene.set_segment_mask(node, metastasis_id, corrected)
    return "outlined a missed lesion", float(added.sum() * np.prod(predicted.GetSpacing()) / 1000.0)
