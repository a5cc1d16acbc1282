"""Find the DICOM studies and series under a folder, from their headers only (no pixel data is read).

Files may lie at any depth and in any arrangement: series are told apart by SeriesInstanceUID and studies by
StudyInstanceUID, never by folder. Files that are not DICOM images (reports, DICOMDIR, a SEG, a JPEG) are
passed over.

Usage::

    studies = scan_studies("export/")                    # {StudyInstanceUID: Study}, sorted by UID
    for series in studies[uid].series:
        print(series.number, series.description, series.plane, len(series.files))
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ImageError
from . import require_pydicom

# Orientation cosines are rounded before they are compared, so a series whose slices differ by
# numerical noise still counts as one orientation.
ORIENTATION_DECIMALS = 3
# Only MR images count (a SEG, an RT structure set or a CT in the same export is passed over).
IMAGE_MODALITIES = ("MR",)
NOT_SCANNED = ("DICOMDIR",)


@dataclass
class Series:
    """One DICOM series: the tags that tell what sequence it is, and its files sorted along the slice normal."""

    uid: str
    study_uid: str
    number: Optional[int]
    description: str
    protocol: str
    sequence_name: str
    modality: str
    manufacturer: str
    image_type: Tuple[str, ...]
    scanning_sequence: Tuple[str, ...]
    sequence_variant: Tuple[str, ...]
    scan_options: Tuple[str, ...]
    repetition_time: Optional[float]
    echo_time: Optional[float]
    inversion_time: Optional[float]
    contrast_agent: str
    orientations: Tuple[Tuple[float, ...], ...]  # the distinct ImageOrientationPatient values of its slices
    files: List[Path] = field(default_factory=list)
    positions: List[Tuple[float, ...]] = field(default_factory=list)

    @property
    def label(self) -> str:
        """How a person names the series: its number and description."""
        number = f"#{self.number} " if self.number is not None else ""
        return f"{number}'{self.description or self.protocol or self.uid}'"

    @property
    def normal(self) -> Optional[np.ndarray]:
        """The slice normal (row x column direction) when every slice has one orientation, else None."""
        if len(self.orientations) != 1 or len(self.orientations[0]) != 6:
            return None
        row, column = np.array(self.orientations[0][:3]), np.array(self.orientations[0][3:])
        normal = np.cross(row, column)
        length = float(np.linalg.norm(normal))
        return normal / length if length > 0 else None

    @property
    def plane(self) -> str:
        """``sagittal``, ``coronal`` or ``axial`` (the patient axis the normal is nearest to), or ``mixed``."""
        normal = self.normal
        if normal is None:
            return "mixed"
        return ("sagittal", "coronal", "axial")[int(np.argmax(np.abs(normal)))]

    def sorted_files(self) -> List[Path]:
        """The files in slice order along the normal (as a volume reader stacks them)."""
        normal = self.normal
        if normal is None or len(self.positions) != len(self.files):
            return sorted(self.files)
        order = sorted(range(len(self.files)), key=lambda i: (float(np.dot(self.positions[i], normal)), self.files[i]))
        return [self.files[i] for i in order]

    def slice_offsets(self) -> List[float]:
        """The slice positions along the normal (mm), in slice order."""
        normal = self.normal
        if normal is None:
            return []
        return sorted(float(np.dot(position, normal)) for position in self.positions)


@dataclass
class Study:
    """One DICOM study: its UID, the patient's ID, its date and description, and its image series."""

    uid: str
    patient_id: str
    date: str
    description: str
    series: List[Series] = field(default_factory=list)


def scan_studies(folder: os.PathLike, on_file: Optional[Callable[[int], None]] = None) -> Dict[str, Study]:
    """Every MR study under ``folder`` (any nesting), {StudyInstanceUID: Study}, studies and series sorted by UID
    and series number.

    ``on_file(count)`` is called every 100 files read. Raises ``ImageError`` when ``folder`` is missing or holds
    no DICOM MR image at all.
    """
    pydicom = require_pydicom()
    root = Path(folder)
    if not root.is_dir():
        raise ImageError(f"The DICOM folder {root} does not exist or is not a folder.")
    studies: Dict[str, Study] = {}
    series_by_uid: Dict[str, Series] = {}
    looked_at = 0
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
        if path.name.upper() in NOT_SCANNED:
            continue
        looked_at += 1
        if on_file and looked_at % 100 == 0:
            on_file(looked_at)
        _add_file(pydicom, path, studies, series_by_uid)
    if not studies:
        raise ImageError(
            f"No DICOM MR image under {root} ({looked_at} files looked at). Choose the folder of a DICOM export."
        )
    for study in studies.values():
        study.series.sort(key=lambda s: (s.number if s.number is not None else 1 << 30, s.uid))
    return dict(sorted(studies.items()))


def series_from_files(files: Sequence[os.PathLike]) -> List[Series]:
    """The MR series the given files make up (files that are not DICOM MR images are passed over)."""
    pydicom = require_pydicom()
    studies: Dict[str, Study] = {}
    series_by_uid: Dict[str, Series] = {}
    for path in files:
        _add_file(pydicom, Path(path), studies, series_by_uid)
    return list(series_by_uid.values())


def _add_file(pydicom: Any, path: Path, studies: Dict[str, Study], series_by_uid: Dict[str, Series]) -> None:
    """Add the file at ``path`` to its series (and the series to its study), when it is a DICOM MR image."""
    dataset = _read_header(pydicom, path)
    if dataset is None:
        return
    series_uid = str(dataset.SeriesInstanceUID)
    series = series_by_uid.get(series_uid)
    if series is None:
        study_uid = str(dataset.StudyInstanceUID)
        study = studies.setdefault(
            study_uid,
            Study(study_uid, _text(dataset, "PatientID"), _text(dataset, "StudyDate"),
                  _text(dataset, "StudyDescription")),
        )
        series = _series_of(dataset)
        series_by_uid[series_uid] = series
        study.series.append(series)
    orientation = tuple(round(float(v), ORIENTATION_DECIMALS) for v in dataset.get("ImageOrientationPatient", []))
    if orientation not in series.orientations:
        series.orientations = series.orientations + (orientation,)
    series.files.append(path)
    series.positions.append(tuple(float(v) for v in dataset.get("ImagePositionPatient", (0.0, 0.0, 0.0))))


def scan_series_folder(folder: os.PathLike) -> Series:
    """The one series a folder holds (the one with most files when it holds several)."""
    studies = scan_studies(folder)
    every = [series for study in studies.values() for series in study.series]
    return max(every, key=lambda s: len(s.files))


def _read_header(pydicom: Any, path: Path) -> Optional[Any]:
    try:
        dataset = pydicom.dcmread(str(path), stop_before_pixels=True)
    except (pydicom.errors.InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError):
        return None
    if str(dataset.get("Modality", "")) not in IMAGE_MODALITIES:
        return None
    if "SeriesInstanceUID" not in dataset or "StudyInstanceUID" not in dataset or "Rows" not in dataset:
        return None
    return dataset


def _series_of(dataset: Any) -> Series:
    number = dataset.get("SeriesNumber")
    return Series(
        uid=str(dataset.SeriesInstanceUID),
        study_uid=str(dataset.StudyInstanceUID),
        number=int(number) if number not in (None, "") else None,
        description=_text(dataset, "SeriesDescription"),
        protocol=_text(dataset, "ProtocolName"),
        sequence_name=_text(dataset, "SequenceName"),
        modality=_text(dataset, "Modality"),
        manufacturer=_text(dataset, "Manufacturer"),
        image_type=_values(dataset, "ImageType"),
        scanning_sequence=_values(dataset, "ScanningSequence"),
        sequence_variant=_values(dataset, "SequenceVariant"),
        scan_options=_values(dataset, "ScanOptions"),
        repetition_time=_number(dataset, "RepetitionTime"),
        echo_time=_number(dataset, "EchoTime"),
        inversion_time=_number(dataset, "InversionTime"),
        contrast_agent=_text(dataset, "ContrastBolusAgent"),
        orientations=(),
    )


def _text(dataset: Any, keyword: str) -> str:
    value = dataset.get(keyword)
    return "" if value is None else str(value).strip()


def _values(dataset: Any, keyword: str) -> Tuple[str, ...]:
    """A multi-valued string tag as upper-case values (``'SE\\IR'`` -> ('SE', 'IR'))."""
    value = dataset.get(keyword)
    if value is None or value == "":
        return ()
    items = value if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else [value]
    return tuple(str(item).strip().upper() for item in items if str(item).strip())


def _number(dataset: Any, keyword: str) -> Optional[float]:
    value = dataset.get(keyword)
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
