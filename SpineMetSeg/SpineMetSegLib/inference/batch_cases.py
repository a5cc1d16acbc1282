"""The cases of a batch: from a CSV manifest or a folder of DICOM studies, and a deterministic share of them.

A manifest is a CSV file with a ``case`` column and one column per sequence (``t1``, ``t2``, ``stir``); each cell
is a file SimpleITK reads or a DICOM series folder, relative to the manifest's folder unless absolute; an empty
cell means that sequence is not given. A DICOM folder may hold any number of studies at any nesting: each
StudyInstanceUID is a case, and its sequences are recognised from the tags (``dicom.recognition``). A study
without a usable series is still a case: it fails with the recogniser's message and the others go on.

Usage::

    cases = cases_from_manifest("cohort.csv")
    cases = cases_from_dicom("export/", wanted=("t1", "t2", "stir"), min_inputs=1)
    mine = shard(cases, 2, 4)          # the 2nd of 4 parts: every 4th case by name, starting at the 2nd
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from ..errors import SpineMetSegError

MANIFEST_SEQUENCES = ("t1", "t2", "stir")
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
UID_HASH_CHARACTERS = 8


@dataclass
class CaseInput:
    """One case to segment: its name, its inputs ({sequence: path or DICOM ``Series``}), how they were chosen, and
    the reason it cannot run (``problem``) when its inputs could not be found."""

    name: str
    inputs: Dict[str, Union[Path, Any]] = field(default_factory=dict)
    choice: List[str] = field(default_factory=list)  # the recogniser's lines (DICOM studies)
    facts: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # per sequence: what was chosen and why
    problem: Optional[str] = None


def cases_from_manifest(path: os.PathLike) -> List[CaseInput]:
    """The cases of a CSV manifest (``case,t1,t2,stir``). ``SpineMetSegError`` for a manifest that cannot be used:
    missing, no ``case`` column, no sequence column, an empty or repeated case name."""
    manifest = Path(path)
    if not manifest.is_file():
        raise SpineMetSegError(f"The manifest {manifest} does not exist.")
    with open(manifest, newline="", encoding="utf-8-sig") as stream:
        reader = csv.DictReader(stream)
        columns = [c.strip().lower() for c in reader.fieldnames or []]
        if "case" not in columns:
            raise SpineMetSegError(f"The manifest {manifest} has no 'case' column; its header must be case,t1,t2,stir.")
        if not set(columns) & set(MANIFEST_SEQUENCES):
            raise SpineMetSegError(f"The manifest {manifest} has no t1, t2 or stir column.")
        rows = [{(k or "").strip().lower(): (v or "").strip() for k, v in row.items()} for row in reader]
    cases: List[CaseInput] = []
    seen = set()
    for number, row in enumerate(rows, start=2):
        name = row.get("case", "")
        if not name:
            raise SpineMetSegError(f"Line {number} of the manifest {manifest} has no case name.")
        if name in seen:
            raise SpineMetSegError(f"The case '{name}' is in the manifest {manifest} twice.")
        if SAFE_NAME.sub("", name) != name:
            raise SpineMetSegError(
                f"The case name '{name}' (line {number}) is also a folder name: use letters, digits, '.', '_', '-'."
            )
        seen.add(name)
        case = CaseInput(name)
        for sequence in MANIFEST_SEQUENCES:
            cell = row.get(sequence, "")
            if cell:
                given = Path(cell)
                case.inputs[sequence] = given if given.is_absolute() else manifest.parent / given
                case.facts[sequence] = {"path": str(case.inputs[sequence]), "why": "given in the manifest"}
        if not case.inputs:
            case.problem = f"no t1, t2 or stir path on line {number} of the manifest"
        cases.append(case)
    if not cases:
        raise SpineMetSegError(f"The manifest {manifest} lists no case.")
    return cases


def cases_from_dicom(folder: os.PathLike, wanted: Sequence[str], min_inputs: int,
                     on_file: Any = None) -> List[CaseInput]:
    """One case per DICOM study under ``folder``, its sequences chosen from the tags."""
    from ..dicom import headers, recognition

    cases = []
    for study in headers.scan_studies(folder, on_file=on_file).values():
        choice = recognition.choose_series(study.series)
        case = CaseInput(study_case_name(study), choice=choice.describe())
        try:
            chosen = choice.require(list(wanted), min_inputs)
        except SpineMetSegError as error:
            case.problem = str(error)
        else:
            for sequence, candidate in chosen.items():
                case.inputs[sequence] = candidate.series
                case.facts[sequence] = {
                    "series_instance_uid": candidate.series.uid,
                    "series_number": candidate.series.number,
                    "series_description": candidate.series.description,
                    "slices": len(candidate.series.files),
                    "confidence": candidate.confidence,
                    "why": candidate.reason,
                }
        case.facts["study"] = {"study_instance_uid": study.uid, "patient_id": study.patient_id,
                               "study_date": study.date, "study_description": study.description}
        cases.append(case)
    return cases


def study_case_name(study: Any) -> str:
    """A folder-safe case name that is the same on every run: patient ID, study date and a hash of the study UID."""
    digest = hashlib.sha1(study.uid.encode("ascii", "replace")).hexdigest()[:UID_HASH_CHARACTERS]
    parts = [SAFE_NAME.sub("-", part).strip("-") for part in (study.patient_id, study.date)]
    return "_".join([part for part in parts if part] + [digest])


def parse_shard(text: str) -> Tuple[int, int]:
    """``'2/4'`` -> (2, 4); ``SpineMetSegError`` unless 1 <= I <= N."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise SpineMetSegError(f"--shard takes I/N with 1 <= I <= N (e.g. 1/4), got {text!r}.")
    return int(match.group(1)), int(match.group(2))


def shard(cases: Sequence[CaseInput], index: int, count: int) -> List[CaseInput]:
    """The ``index``-th of ``count`` parts (1-based): cases sorted by name, every ``count``-th from the
    ``index``-th, so every case is in exactly one part whatever order the cases were found in."""
    ordered = sorted(cases, key=lambda case: case.name)
    return [case for position, case in enumerate(ordered) if position % count == index - 1]
