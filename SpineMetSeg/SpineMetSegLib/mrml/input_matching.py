"""Fill the T1 / T2 / STIR selectors: from the DICOM tags for volumes loaded from DICOM, else from volume names.

Usage::

    from SpineMetSegLib.mrml.input_matching import match_sequences, match_volume_nodes

    match_sequences(["Sag T2 TSE", "sag_T1", "STIR"])     # {"t1": 1, "t2": 0, "stir": 2}
    match_volume_nodes(scene)                             # {"t1": <node>, ...} from the scene's volumes
    match_volume_nodes(scene, file_for_instance=slicer.dicomDatabase.fileForInstance)   # DICOM tags first

A volume that Slicer's DICOM module loaded carries the SOP instance UIDs of its slices; with
``file_for_instance`` (SOP instance UID -> file path, the DICOM database's lookup) its headers are read and
``dicom.recognition`` decides, as ``spinemetseg batch`` does: the contrast-enhanced T1, the localiser or the axial
series are never chosen, whatever their names. Volumes without DICOM headers (files, the sample case) are
matched by name: fat-suppressed T2 (STIR, TIRM, T2 fat-sat / SPAIR) counts as STIR, since that is what a STIR
channel sees; a name can fill only one selector, and the first volume (scene order) that matches wins. "T12" (a
vertebra) is not T1.
"""

from __future__ import annotations

import re
from typing import Callable, Dict, List, Optional, Sequence

from ..errors import SpineMetSegError

SEQUENCE_PATTERNS = (
    ("stir", re.compile(r"stir|tirm|t2.*(fs|fat.?sat|spair)", re.IGNORECASE)),
    ("t1", re.compile(r"(?<![a-z0-9])t1(?![0-9])", re.IGNORECASE)),
    ("t2", re.compile(r"(?<![a-z0-9])t2(?![0-9])", re.IGNORECASE)),
)
# Slicer's DICOMScalarVolumePlugin stores the SOP instance UIDs of a loaded volume's slices, space-separated, in
# this node attribute (Modules/Scripted/DICOMPlugins/DICOMScalarVolumePlugin.py line 510 at v5.8.0 and v5.10.0).
DICOM_INSTANCE_UIDS = "DICOM.instanceUIDs"


def sequence_of(name: str) -> Optional[str]:
    """The sequence key a volume name suggests, or None."""
    for key, pattern in SEQUENCE_PATTERNS:
        if pattern.search(name or ""):
            return key
    return None


def match_sequences(names: Sequence[str], keys: Sequence[str] = ("t1", "t2", "stir")) -> Dict[str, int]:
    """For each sequence key, the index of the first name that suggests it."""
    matches: Dict[str, int] = {}
    for index, name in enumerate(names):
        key = sequence_of(name)
        if key in keys and key not in matches:
            matches[key] = index
    return matches


def match_volume_nodes(scene, keys: Sequence[str] = ("t1", "t2", "stir"),
                       file_for_instance: Optional[Callable[[str], str]] = None) -> Dict[str, object]:
    """Scalar volumes of the scene (not label maps, not hidden) matched to sequence keys: volumes from DICOM by
    their tags (when ``file_for_instance`` is given and their files can be read), the others by name."""
    nodes = []
    for index in range(scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")):
        node = scene.GetNthNodeByClass(index, "vtkMRMLScalarVolumeNode")
        if node.IsA("vtkMRMLLabelMapVolumeNode") or node.GetHideFromEditors():
            continue
        nodes.append(node)
    matched: Dict[str, object] = {}
    judged: List[object] = []
    if file_for_instance is not None:
        matched, judged = _match_by_dicom_tags(nodes, keys, file_for_instance)
    by_name = [node for node in nodes if node not in judged]
    for key, index in match_sequences([n.GetName() for n in by_name], keys).items():
        if key not in matched:
            matched[key] = by_name[index]
    return matched


def _match_by_dicom_tags(nodes: Sequence[object], keys: Sequence[str],
                         file_for_instance: Callable[[str], str]) -> tuple:
    """({key: node} chosen by the recogniser, the nodes whose headers were read and judged)."""
    from ..dicom import headers, recognition

    series_of_node = {}
    for node in nodes:
        uids = (node.GetAttribute(DICOM_INSTANCE_UIDS) or "").split()
        files = [file_for_instance(uid) for uid in uids if uid != "Unknown"]
        files = [path for path in files if path]
        if not files:
            continue
        try:
            found = headers.series_from_files(files)
        except SpineMetSegError:
            return {}, []  # no pydicom: every volume is matched by name
        if len(found) == 1:
            series_of_node[id(found[0])] = (node, found[0])
    choice = recognition.choose_series([series for _node, series in series_of_node.values()])
    matched = {key: series_of_node[id(candidate.series)][0] for key, candidate in choice.chosen.items() if key in keys}
    return matched, [node for node, _series in series_of_node.values()]
