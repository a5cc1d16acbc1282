"""The fixed split by subject of the imported real scans: training, tuning and validation.

Usage::

    split = load_split()
    split.role("vb2_05")                     # "validation"
    split.training                           # case names a training run may use
    check_trainable(["vb2_02", "vb2_05"])    # raises: vb2_05 is a validation case

``vb_split.json`` (shipped with the package) is the only place the split is written down. Training cases are the
only ones a training run ever reads; tuning cases choose checkpoints and post-processing thresholds; validation
cases are never trained on and never used to choose anything. VB1 scans are in no role: they are reserved as an
external test set and the importer refuses them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Optional

from ..errors import SpineMetSegError

SPLIT_FILE = Path(__file__).with_name("vb_split.json")
ROLES = ("training", "tuning", "validation")


@dataclass(frozen=True)
class Split:
    training: List[str]
    tuning: List[str]
    validation: List[str]

    def role(self, name: str) -> Optional[str]:
        for role in ROLES:
            if name in getattr(self, role):
                return role
        return None


def load_split(path: Path = SPLIT_FILE) -> Split:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    split = Split(*(list(data[role]) for role in ROLES))
    seen = set()
    for role in ROLES:
        overlap = seen & set(getattr(split, role))
        if overlap:
            raise SpineMetSegError(f"{path}: {', '.join(sorted(overlap))} appear in more than one role.")
        seen |= set(getattr(split, role))
    return split


def check_trainable(names: Iterable[str], split: Optional[Split] = None) -> None:
    """Refuse to train on any tuning or validation case of the split (and on anything from VB1)."""
    split = split or load_split()
    refused = [f"{name} ({split.role(name)})" for name in names if split.role(name) in ("tuning", "validation")]
    refused += [name for name in names if name.lower().startswith("vb1")]
    if refused:
        raise SpineMetSegError(
            f"Refusing to train on {', '.join(refused)}: tuning and validation cases of the fixed split "
            "(SpineMetSegLib/data/vb_split.json) and VB1 scans are never trained on."
        )


def _case_folders(folder: str) -> List[Path]:
    root = Path(folder)
    if not root.is_dir():
        raise SpineMetSegError(f"{root} is not a folder of case folders (made by 'spinemetseg dataset import-vb').")
    found = sorted(p for p in root.iterdir() if p.is_dir() and (p / "vertebral_bodies.nii.gz").is_file())
    if not found:
        raise SpineMetSegError(f"{root} holds no case folder (a folder with vertebral_bodies.nii.gz and an image).")
    return found


def training_folders(folder: str) -> List[str]:
    """The case folders under ``folder`` a training run may read: all but the split's tuning and validation."""
    split = load_split()
    kept = [str(p) for p in _case_folders(folder) if split.role(p.name) not in ("tuning", "validation")
            and not p.name.lower().startswith("vb1")]
    if not kept:
        raise SpineMetSegError(
            f"{folder} holds only tuning or validation cases of the fixed split; nothing to train on."
        )
    return kept


def tuning_folders(folder: str) -> List[str]:
    """The tuning-split case folders under ``folder`` (for checkpoint and threshold choice)."""
    split = load_split()
    kept = [str(p) for p in _case_folders(folder) if split.role(p.name) == "tuning"]
    if not kept:
        raise SpineMetSegError(f"{folder} holds none of the split's tuning cases ({', '.join(split.tuning)}).")
    return kept
