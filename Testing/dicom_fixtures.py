"""DICOM studies written from phantom cases, with the tags of three scanner makes, for the DICOM and batch tests.

Each study holds the phantom's sagittal T1, T2 and STIR and distractors: a localiser, an axial T2 and a
contrast-enhanced sagittal T1 (and for some makes a DWI or a fat-suppressed T2). The tags follow the spellings of
real exports: Siemens (``t1_tse_sag``, ``t2_tirm_sag``, ScanningSequence ``SE\\IR``), GE (``Sag T1 FSE``,
``Sag STIR``, ``3-Plane Loc``, ``+C``) and Philips (``T1W_TSE SAG``, ``STIR SAG``, ``Survey``, ``T2W_SPAIR``).

Usage::

    study = write_phantom_study(tmp_path / "export", seed=1, vendor="siemens")
    study.expected        # {"t1": series number, "t2": ..., "stir": ...}
    study.series_folders  # {series number: folder} (None for series sharing a folder)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import SimpleITK as sitk
from pydicom.uid import generate_uid

from SpineMetSegLib.data.phantom import generate_case
from SpineMetSegLib.dicom.series_io import StudyTags, write_series

SHRINK = (3, 3, 1)  # in-plane binning keeps the tests fast; the slices stay as acquired
AXIAL_DIRECTION = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
CONTRAST_GAIN = 1.4


def _se(tr: float, te: float, **extra: Any) -> Dict[str, Any]:
    return {"ScanningSequence": "SE", "SequenceVariant": ["SK", "SP"], "RepetitionTime": tr, "EchoTime": te,
            "MagneticFieldStrength": 1.5, **extra}


def _ir(tr: float, te: float, ti: float, **extra: Any) -> Dict[str, Any]:
    return {"ScanningSequence": ["SE", "IR"], "SequenceVariant": ["SK", "SP", "MP"], "RepetitionTime": tr,
            "EchoTime": te, "InversionTime": ti, "MagneticFieldStrength": 1.5, **extra}


# (series number, role, description, tags); roles: t1, t2, stir, localiser, axial, contrast, dwi, fat-sat t2
VENDORS: Dict[str, List[Tuple[int, str, str, Dict[str, Any]]]] = {
    "siemens": [
        (1, "localiser", "localizer", {"ImageType": ["ORIGINAL", "PRIMARY", "M", "NORM"],
                                        "SequenceName": "*fl2d1", "ScanningSequence": "GR",
                                        "RepetitionTime": 8.6, "EchoTime": 4.0}),
        (2, "t2", "t2_tse_sag", _se(3500, 96, SequenceName="*tse2d1_15", ProtocolName="t2_tse_sag_384")),
        (3, "t1", "t1_tse_sag", _se(598, 9.6, SequenceName="*tse2d1_3", ProtocolName="t1_tse_sag_320")),
        (4, "stir", "t2_tirm_sag", _ir(4000, 41, 160, SequenceName="*tir2d1_13", ProtocolName="t2_tirm_sag")),
        (5, "axial", "t2_tse_tra", _se(4200, 102, SequenceName="*tse2d1_17")),
        (6, "dwi", "ep2d_diff_sag", {"ScanningSequence": "EP", "RepetitionTime": 4800, "EchoTime": 70,
                                     "ImageType": ["ORIGINAL", "PRIMARY", "DIFFUSION", "NONE"]}),
        (7, "contrast", "t1_tse_sag_KM", _se(598, 9.6, ContrastBolusAgent="Gadovist")),
    ],
    "ge": [
        (1, "localiser", "3-Plane Loc", {"ScanningSequence": "GR", "RepetitionTime": 5.4, "EchoTime": 1.6}),
        (3, "t1", "Sag T1 FSE", _se(520, 12, ScanOptions=["FAST_GEMS", "EDR_GEMS"], ProtocolName="C-L SPINE")),
        (4, "t2", "Sag T2 FSE", _se(3000, 102, ScanOptions=["FAST_GEMS", "EDR_GEMS"], ProtocolName="C-L SPINE")),
        (5, "stir", "Sag STIR", _ir(3800, 42, 150, ScanOptions=["FAST_GEMS", "IR_GEMS"])),
        (6, "axial", "Ax T2 FSE", _se(4000, 100, ScanOptions=["FAST_GEMS"])),
        (8, "contrast", "Sag T1 FSE +C", _se(520, 12, ScanOptions=["FAST_GEMS"])),
    ],
    "philips": [
        (101, "localiser", "Survey", {"ImageType": ["ORIGINAL", "PRIMARY", "M_FFE", "M", "FFE"],
                                      "ScanningSequence": "GR", "RepetitionTime": 11, "EchoTime": 4.6}),
        (201, "t1", "T1W_TSE SAG", _se(480, 8, ProtocolName="WIP T1W_TSE SAG")),
        (301, "t2", "T2W_TSE SAG", _se(2800, 110, ProtocolName="T2W_TSE SAG")),
        (401, "fat-sat t2", "T2W_SPAIR SAG", _se(3000, 80, ScanOptions=["FS"])),
        (501, "stir", "STIR SAG", _ir(3500, 60, 180, ProtocolName="STIR_LONGTE SAG")),
        (601, "axial", "T2W_TSE TRA", _se(3600, 120)),
        (701, "contrast", "T1W_TSE SAG +Gd", _se(480, 8, ContrastBolusAgent="Dotarem")),
    ],
}
MANUFACTURERS = {"siemens": "SIEMENS", "ge": "GE MEDICAL SYSTEMS", "philips": "Philips Medical Systems"}


@dataclass
class WrittenStudy:
    """A study written to disk: its UID, the series number of each role and where each series lies."""

    uid: str
    folder: Path
    roles: Dict[str, int] = field(default_factory=dict)
    series_folders: Dict[int, Optional[Path]] = field(default_factory=dict)

    @property
    def expected(self) -> Dict[str, int]:
        return {role: self.roles[role] for role in ("t1", "t2", "stir")}


def phantom_images(seed: int) -> Dict[str, sitk.Image]:
    """The phantom case ``seed``'s T1, T2 and STIR (2D sagittal acquisition), binned in plane."""
    case = generate_case(seed, acquisition="sagittal2d")
    return {name: sitk.BinShrink(image, SHRINK) for name, image in case.images.items()}


def axial_image(reference: sitk.Image) -> sitk.Image:
    """An axial stack through the middle of ``reference`` (resampled from it)."""
    size = (48, 48, 8)
    spacing = (3.0, 3.0, 5.0)
    centre = np.array(reference.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in reference.GetSize()]))
    origin = centre - np.array(spacing) * (np.array(size) - 1) / 2
    grid = sitk.Image(size, reference.GetPixelID())
    grid.SetSpacing(spacing)
    grid.SetOrigin(tuple(float(v) for v in origin))
    grid.SetDirection(AXIAL_DIRECTION)
    return sitk.Resample(reference, grid, sitk.Transform(), sitk.sitkLinear, 0.0)


def localiser_images(reference: sitk.Image) -> List[sitk.Image]:
    """Three single orientations (axial, coronal, sagittal) of 3 slices each through ``reference``."""
    centre = np.array(reference.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in reference.GetSize()]))
    images = []
    for direction in (AXIAL_DIRECTION, (1, 0, 0, 0, 0, 1, 0, -1, 0), (0, 0, 1, 1, 0, 0, 0, -1, 0)):
        size, spacing = (64, 64, 3), (4.0, 4.0, 10.0)
        matrix = np.array(direction, dtype=float).reshape(3, 3)
        origin = centre - matrix @ (np.array(spacing) * (np.array(size) - 1) / 2)
        grid = sitk.Image(size, reference.GetPixelID())
        grid.SetSpacing(spacing)
        grid.SetOrigin(tuple(float(v) for v in origin))
        grid.SetDirection(tuple(float(v) for v in direction))
        images.append(sitk.Resample(reference, grid, sitk.Transform(), sitk.sitkLinear, 0.0))
    return images


def write_phantom_study(root: Path, seed: int, vendor: str, *, flat: bool = False,
                        images: Optional[Dict[str, sitk.Image]] = None) -> WrittenStudy:
    """Write phantom case ``seed`` as a ``vendor`` study under ``root/<patient>/<study>/``.

    Each series gets its own folder (``S<number>/``; the localiser's three orientations in three sub-folders),
    or with ``flat`` every file lies in one folder, named ``<number>_<slice>.dcm``.
    """
    images = images or phantom_images(seed)
    study_uid = generate_uid(entropy_srcs=[vendor, str(seed), "study"])
    tags = StudyTags(study_uid=study_uid, patient_id=f"P{seed:03d}", patient_name=f"Phantom^{seed}",
                     study_date=f"2026{seed % 12 + 1:02d}15", study_description="MR WIRBELSAEULE")
    folder = root / tags.patient_id / f"{vendor}-{seed}"
    study = WrittenStudy(study_uid, folder)
    for number, role, description, extra in VENDORS[vendor]:
        series_tags = {"SeriesDescription": description, "Manufacturer": MANUFACTURERS[vendor], **extra}
        target = folder if flat else folder / f"S{number}"
        prefix = f"{number}_" if flat else "IM"
        study.roles[role] = number
        study.series_folders[number] = None if flat else target
        if role == "localiser":
            series_uid = generate_uid()
            for index, image in enumerate(localiser_images(images["t2"])):
                write_series(image, target if flat else target / f"plane{index}", study=tags, series_number=number,
                             tags=series_tags, series_uid=series_uid, prefix=f"{prefix}{index}_")
            continue
        image = {
            "t1": images["t1"], "t2": images["t2"], "stir": images["stir"], "fat-sat t2": images["stir"],
            "dwi": images["t2"], "axial": axial_image(images["t2"]), "contrast": images["t1"] * CONTRAST_GAIN,
        }[role]
        write_series(image, target, study=tags, series_number=number, tags=series_tags, prefix=prefix)
    return study
