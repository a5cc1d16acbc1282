"""The lesion table of the panel: one row per metastasis, measured from the segmentation as it is now.

Usage::

    from SpineMetSegLib.mrml.lesion_table import LesionTableLogic

    logic = LesionTableLogic(context)
    table = logic.update(result_node)              # measures the current segments (manual edits included)
    table.table_node, table.lesions                # the vtkMRMLTableNode shown in the panel; core Lesion objects
    table.lesions[0].centroid_ras                  # where to centre the slice views for row 0
    logic.remove_lesion(result_node, table.lesions[0])   # deletes that lesion's voxels from the segment
    tables.write_csv(table.table_node, "lesions.csv")

``lesion_watch.LesionTableWatcher`` keeps the table in step with edits.

The numbers come from ``analysis.lesions.measure_lesions`` on a label map rebuilt from the segments in the
model's convention (vertebral body 2 and spinal canal 3 underneath, metastasis 1 on top), on the
segmentation's reference grid, so the table agrees with ``spinemetseg lesions`` on the exported label map.
Host vertebrae are numbered 1, 2, ... from the most superior vertebral body in the image (not L1, T12, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional, Sequence

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..analysis import lesions as core_lesions
from ..analysis.lesion_matching import connected_lesions
from ..errors import SpineMetSegError
from ..labels import ModelLabel
from . import scene as mrml_scene
from . import segments, tables
from .transaction import SceneTransaction

TABLE_COLUMNS = (
    tables.Column("Lesion", int, description="Lesion number, from the most superior lesion down"),
    tables.Column("Volume", float, unit="mL"),
    tables.Column("Largest diameter", float, unit="mm",
                  description="Largest distance between two surface voxel centres"),
    tables.Column("Host vertebra", str,
                  description="Vertebral body the lesion touches most, numbered from the most superior body; "
                              "none when it touches no vertebral body"),
    tables.Column("Distance to canal", float, unit="mm",
                  description="Gap between the lesion's and the canal's voxels (faces, edges, corners); 0 exactly "
                              "when the lesion touches or overlaps the canal"),
    tables.Column("Posterior wall", str, description="Whether the lesion reaches the body's wall facing the canal"),
    tables.Column("Flags", str, description=core_lesions.INFORMATIONAL_NOTE),
    tables.Column("R", float, unit="mm", description="Lesion centre, right"),
    tables.Column("A", float, unit="mm", description="Lesion centre, anterior"),
    tables.Column("S", float, unit="mm", description="Lesion centre, superior"),
)
TABLE_NAME_SUFFIX = "lesions"
NO_HOST = "none"


@dataclass
class LesionTable:
    table_node: Any
    lesions: List[Any]  # core lesions.Lesion, in table row order


def _yes_no(value: Optional[bool]) -> str:
    return "" if value is None else ("yes" if value else "no")


def flags_of(lesion) -> str:
    """The informational flags of a lesion as words; "reaches the canal" is "distance to canal 0"."""
    flags = []
    if lesion.large:
        flags.append(f"larger than {core_lesions.LARGE_LESION_DIAMETER_MM:g} mm")
    if lesion.near_canal:
        flags.append(f"closer than {core_lesions.CANAL_PROXIMITY_MM:g} mm to canal")
    if lesion.extends_into_canal:
        flags.append("reaches the canal")
    return ", ".join(flags)


def host_text(lesion) -> str:
    """The host vertebra's number; "none" when the lesion touches no vertebral body; "" without anatomy."""
    if lesion.host_vertebra is not None:
        return str(lesion.host_vertebra)
    anatomy_given = lesion.reaches_posterior_wall is not None or lesion.distance_to_canal_mm is not None
    return NO_HOST if anatomy_given else ""


def table_rows(found: Sequence[Any]) -> List[list]:
    return [
        [lesion.id, lesion.volume_ml, lesion.largest_diameter_mm,
         host_text(lesion), lesion.distance_to_canal_mm,
         _yes_no(lesion.reaches_posterior_wall), flags_of(lesion), *lesion.centroid_ras]
        for lesion in found
    ]


def model_label_map(segmentation_node, geometry=None) -> sitk.Image:
    """The segments as one label map in the model's convention (0, 1 metastasis, 2 body, 3 canal)."""
    metastasis_id = segments.find_segment_id(segmentation_node, segments.METASTASIS)
    if metastasis_id is None:
        raise SpineMetSegError(
            f"The segmentation '{segmentation_node.GetName()}' has no metastasis segment. Choose the segmentation "
            "the Segment button created (or name a segment 'metastasis')."
        )
    geometry = geometry if geometry is not None else mrml_scene.segmentation_geometry(segmentation_node)
    lesion = mrml_scene.segment_mask(segmentation_node, metastasis_id, geometry)
    array = np.zeros(sitk.GetArrayViewFromImage(lesion).shape, dtype=np.uint8)
    # Anatomy first, the lesion last: in a model output the lesion label replaces the tissue underneath.
    for name, value in ((segments.VERTEBRAL_BODY, ModelLabel.VERTEBRAL_BODY),
                        (segments.SPINAL_CANAL, ModelLabel.SPINAL_CANAL)):
        segment_id = segments.find_segment_id(segmentation_node, name)
        if segment_id is not None:
            array[sitk.GetArrayFromImage(mrml_scene.segment_mask(segmentation_node, segment_id, geometry)) > 0] = value
    array[sitk.GetArrayFromImage(lesion) > 0] = ModelLabel.METASTASIS
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(lesion)
    return image


class LesionTableLogic:
    def __init__(self, context):
        self.context = context

    def measure(self, segmentation_node) -> List[Any]:
        """The core's measures of every metastasis in the segmentation as it is now."""
        labels = model_label_map(segmentation_node)
        present = set(np.unique(sitk.GetArrayViewFromImage(labels)).tolist())
        anatomy = {}
        if ModelLabel.VERTEBRAL_BODY in present or ModelLabel.SPINAL_CANAL in present:
            anatomy = {"body_labels": [int(ModelLabel.VERTEBRAL_BODY)], "canal_labels": [int(ModelLabel.SPINAL_CANAL)]}
        return core_lesions.measure_lesions(labels, label=int(ModelLabel.METASTASIS), **anatomy)

    def update(self, segmentation_node, table_node=None) -> LesionTable:
        """Measure the lesions and write them into ``table_node`` (a new table node when None)."""
        if segmentation_node is None:
            raise SpineMetSegError("Choose a segmentation first (segment the volumes, or pick a result).")
        found = self.measure(segmentation_node)
        scene = self.context.scene
        with SceneTransaction(scene):
            if table_node is None:
                table_node = scene.AddNewNodeByClass(
                    "vtkMRMLTableNode", scene.GenerateUniqueName(f"{segmentation_node.GetName()} {TABLE_NAME_SUFFIX}")
                )
            tables.fill_table(table_node, TABLE_COLUMNS, table_rows(found))
            table_node.SetAttribute("SpineMetSeg.Note", core_lesions.INFORMATIONAL_NOTE)
        return LesionTable(table_node, found)

    def remove_lesion(self, segmentation_node, lesion) -> None:
        """Delete one lesion (a core ``Lesion`` of this segmentation) from the metastasis segment."""
        self.remove_lesion_at(segmentation_node, lesion.centroid_ras)

    def remove_lesion_at(self, segmentation_node, centre_ras: Sequence[float]) -> None:
        """Delete the lesion whose centre is nearest ``centre_ras`` (a table row's R, A, S) from the segment.

        Going by position rather than row number removes the lesion the user saw, even when the segmentation
        was edited after the table was drawn.
        """
        segment_id = segments.find_segment_id(segmentation_node, segments.METASTASIS)
        if segment_id is None:
            raise SpineMetSegError(f"The segmentation '{segmentation_node.GetName()}' has no metastasis segment.")
        mask = mrml_scene.segment_mask(segmentation_node, segment_id)
        array = sitk.GetArrayFromImage(mask)
        components, count = connected_lesions(array > 0)
        if count == 0:
            raise SpineMetSegError("The metastasis segment is empty: there is no lesion to remove.")
        centres = ndimage.center_of_mass(array > 0, components, range(1, count + 1))
        centres_lps = np.array([mask.TransformContinuousIndexToPhysicalPoint([float(v) for v in c[::-1]])
                                for c in centres])
        target_lps = np.array([-centre_ras[0], -centre_ras[1], centre_ras[2]], dtype=float)
        nearest = int(np.argmin(np.linalg.norm(centres_lps - target_lps, axis=1)))
        array[components == nearest + 1] = 0
        edited = sitk.GetImageFromArray(array)
        edited.CopyInformation(mask)
        mrml_scene.set_segment_mask(segmentation_node, segment_id, edited)

