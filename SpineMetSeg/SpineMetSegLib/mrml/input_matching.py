"""Fill the T1 / T2 / STIR selectors from volume names ("sag_T1_tse", "T2W", "t2_tirm" -> STIR).

Usage::

    from SpineMetSegLib.mrml.input_matching import match_sequences, match_volume_nodes

    match_sequences(["Sag T2 TSE", "sag_T1", "STIR"])     # {"t1": 1, "t2": 0, "stir": 2}
    match_volume_nodes(scene)                             # {"t1": <node>, ...} from the scene's volumes

Fat-suppressed T2 (STIR, TIRM, T2 fat-sat / SPAIR) counts as STIR, since that is what a STIR channel sees;
a name can fill only one selector, and the first volume (scene order) that matches wins. "T12" (a vertebra)
is not T1.
"""

from __future__ import annotations

import re
from typing import Dict, Optional, Sequence

SEQUENCE_PATTERNS = (
    ("stir", re.compile(r"stir|tirm|t2.*(fs|fat.?sat|spair)", re.IGNORECASE)),
    ("t1", re.compile(r"(?<![a-z0-9])t1(?![0-9])", re.IGNORECASE)),
    ("t2", re.compile(r"(?<![a-z0-9])t2(?![0-9])", re.IGNORECASE)),
)


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


def match_volume_nodes(scene, keys: Sequence[str] = ("t1", "t2", "stir")) -> Dict[str, object]:
    """Scalar volumes of the scene (not label maps, not hidden) matched to sequence keys by name."""
    nodes = []
    for index in range(scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")):
        node = scene.GetNthNodeByClass(index, "vtkMRMLScalarVolumeNode")
        if node.IsA("vtkMRMLLabelMapVolumeNode") or node.GetHideFromEditors():
            continue
        nodes.append(node)
    return {key: nodes[index] for key, index in match_sequences([n.GetName() for n in nodes], keys).items()}
