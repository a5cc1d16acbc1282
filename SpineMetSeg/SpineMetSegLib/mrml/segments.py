"""The segments a model card describes (name, colour, terminology) and finding them again after edits.

Each segment the logic creates carries a tag with the card's label name (``SpineMetSeg.Label``), so the
lesion table and the evaluation find "the metastasis segment" even after the user renamed or recoloured it.

Usage::

    from SpineMetSegLib.mrml import segments

    segment = segments.segment_from_label(card_label, mask_oriented_image)   # a vtkSegment, not in a scene
    segment_id = segments.find_segment_id(segmentation_node, "metastasis")   # or None
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk
import slicer
import vtk

from ..models.modelcard import Label, Terminology
from . import scene as mrml_scene

LABEL_TAG = "SpineMetSeg.Label"
METASTASIS = "metastasis"
VERTEBRAL_BODY = "vertebral body"
SPINAL_CANAL = "spinal canal"
# Slicer's terminology context for category/type codes (the DICOM master list ships with Slicer).
TERMINOLOGY_CONTEXT = "Segmentation category and type - DICOM master list"


def segment_id_for(label_name: str) -> str:
    """The segment ID for a card label: its name with underscores, stable across runs."""
    return label_name.strip().replace(" ", "_")


def display_name(label_name: str) -> str:
    """What the user sees: the card's name with a capital first letter ("Vertebral body")."""
    name = label_name.strip()
    return name[:1].upper() + name[1:]


def terminology_string(terminology: Terminology) -> str:
    """Slicer's serialized terminology entry for a card label's category and type codes."""
    entry = slicer.vtkSlicerTerminologyEntry()
    entry.SetTerminologyContextName(TERMINOLOGY_CONTEXT)
    for code, coded in ((terminology.category, entry.GetCategoryObject()), (terminology.type, entry.GetTypeObject())):
        coded.SetCodingSchemeDesignator(code.scheme)
        coded.SetCodeValue(code.code)
        coded.SetCodeMeaning(code.meaning)
    return slicer.vtkSlicerTerminologiesModuleLogic.SerializeTerminologyEntry(entry)


def segment_from_label(label: Label, mask) -> Any:
    """A vtkSegment for one card label holding ``mask`` (a 0/1 vtkOrientedImageData) as its label map."""
    segment = slicer.vtkSegment()
    segment.SetName(display_name(label.name))
    segment.SetColor(*label.color)
    segment.SetTag(LABEL_TAG, label.name)
    set_terminology(segment, terminology_string(label.terminology))
    segment.AddRepresentation(slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName(), mask)
    return segment


def segments_from_label_map(array: np.ndarray, ijk_to_ras: np.ndarray, labels: Sequence[Label]
                            ) -> List[Tuple[str, Any]]:
    """(segment ID, vtkSegment) for each card label, from a (k, j, i) label array on the grid ``ijk_to_ras``."""
    result = []
    for label in labels:
        mask = sitk.GetImageFromArray((array == label.value).astype(np.uint8))
        oriented = mrml_scene.oriented_image_from_image(mask, ijk_to_ras)
        result.append((segment_id_for(label.name), segment_from_label(label, oriented)))
    return result


def replace_segments(segmentation_node, new_segments: Sequence[Tuple[str, Any]], reference_volume) -> None:
    """Replace every segment of the node with copies of ``new_segments``, on ``reference_volume``'s grid, in one
    modification (views and the Segment Editor update once)."""
    was_modifying = segmentation_node.StartModify()
    try:
        segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(reference_volume)
        if reference_volume.GetTransformNodeID():
            segmentation_node.SetAndObserveTransformNodeID(reference_volume.GetTransformNodeID())
        segmentation = segmentation_node.GetSegmentation()
        segmentation.RemoveAllSegments()
        for segment_id, segment in new_segments:
            copy = slicer.vtkSegment()
            copy.DeepCopy(segment)
            segmentation.AddSegment(copy, segment_id)
    finally:
        segmentation_node.EndModify(was_modifying)


def segment_ids(segmentation_node) -> list:
    segmentation = segmentation_node.GetSegmentation()
    return [segmentation.GetNthSegmentID(index) for index in range(segmentation.GetNumberOfSegments())]


def find_segment_id(segmentation_node, label_name: str) -> Optional[str]:
    """The ID of the segment for ``label_name``: by tag, then by ID, then by name (ignoring case)."""
    if segmentation_node is None:
        return None
    segmentation = segmentation_node.GetSegmentation()
    ids = segment_ids(segmentation_node)
    for segment_id in ids:
        if label_of(segmentation.GetSegment(segment_id)) == label_name:
            return segment_id
    if segment_id_for(label_name) in ids:
        return segment_id_for(label_name)
    for segment_id in ids:
        if segmentation.GetSegment(segment_id).GetName().strip().lower() == label_name.lower():
            return segment_id
    return None


def set_terminology(segment, terminology: str) -> None:
    """Store a serialized terminology entry on a segment, the way Slicer 5.8 and 5.10 both read it.

    ``vtkSegment.SetTerminology``/``GetTerminology`` exist only from 5.10 (Libs/vtkSegmentationCore/vtkSegment.h,
    v5.10.0 lines 55-59; absent at v5.8.0). Both versions declare ``static const char*
    GetTerminologyEntryTagName()`` (v5.8.0 line 52, v5.10.0 line 52) and ``SetTag``/``GetTag`` (v5.8.0 lines
    94-105, v5.10.0 lines 106-117); 5.10's ``SetTerminology`` is documented as setting exactly that tag.
    """
    segment.SetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), terminology)


def terminology_of(segment) -> str:
    """The serialized terminology entry of a segment, or "" (read through the tag, as on Slicer 5.8)."""
    value = vtk.reference("")
    return str(value) if segment.GetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), value) else ""


def label_of(segment) -> str:
    """The card label name a segment was created for, or "" for a segment the logic did not create."""
    value = vtk.reference("")
    return str(value) if segment.GetTag(LABEL_TAG, value) else ""
