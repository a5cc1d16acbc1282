"""Read a DICOM series as a volume (checked for missing slices), and write a volume as a DICOM MR series.

Reading takes the series' own files (``headers.Series``), so series that share a folder are never mixed up.
Writing turns any 3D image (a phantom case, say) into an MR Image Storage series with the acquisition tags
given, slice by slice, for building test studies and trying a batch without patient data.

Usage::

    image = read_series(series)                                   # sitk.Image, LPS geometry from the headers
    write_series(t1, "study/series-3", study=study_tags, series_number=3,
                 tags={"SeriesDescription": "sag T1 TSE", "RepetitionTime": 550, "EchoTime": 10})
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Mapping, Optional

import numpy as np
import SimpleITK as sitk

from ..images import imageio
from . import require_pydicom
from .headers import Series

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
STORED_MAX = 65535


def read_series(series: Series, *, name: str = "") -> sitk.Image:
    """The volume of ``series`` (its files stacked along the slice normal).

    Raises ``ImageError`` for a series with missing or duplicate slices, mixed orientations or uneven spacing
    (``imageio.read_dicom_files``, the reader ``segment`` uses too) and for one that cannot be read.
    """
    what = f"DICOM {name} series {series.label}" if name else f"DICOM series {series.label}"
    return imageio.read_dicom_files(series.sorted_files(), what)


@dataclass(frozen=True)
class StudyTags:
    """The patient and study a written series belongs to."""

    study_uid: str
    patient_id: str = "ANON"
    patient_name: str = "Anonymous"
    study_date: str = "20260101"
    study_description: str = "MR spine"
    frame_of_reference_uid: str = ""
    accession_number: str = ""


def write_series(
    image: sitk.Image,
    folder: os.PathLike,
    *,
    study: StudyTags,
    series_number: int,
    tags: Optional[Mapping[str, Any]] = None,
    series_uid: Optional[str] = None,
    prefix: str = "IM",
) -> List[Path]:
    """Write ``image`` as one MR series into ``folder`` (one file per slice), with ``tags`` (keyword: value) on
    every slice; returns the files, named ``<prefix><slice number>.dcm``. Voxels are stored as unsigned 16-bit
    integers (rounded, clipped at 0)."""
    require_pydicom()
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import generate_uid

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    frame_uid = study.frame_of_reference_uid or generate_uid(entropy_srcs=[study.study_uid, "frame"])
    direction = np.array(image.GetDirection()).reshape(3, 3)
    spacing = image.GetSpacing()
    voxels = np.clip(np.round(sitk.GetArrayFromImage(image).astype(np.float64)), 0, STORED_MAX).astype(np.uint16)
    files = []
    for k in range(voxels.shape[0]):
        dataset = Dataset()
        dataset.file_meta = FileMetaDataset()
        dataset.file_meta.MediaStorageSOPClassUID = MR_IMAGE_STORAGE
        dataset.file_meta.TransferSyntaxUID = EXPLICIT_VR_LITTLE_ENDIAN
        sop_uid = generate_uid()
        dataset.file_meta.MediaStorageSOPInstanceUID = sop_uid
        dataset.SOPClassUID = MR_IMAGE_STORAGE
        dataset.SOPInstanceUID = sop_uid
        dataset.Modality = "MR"
        dataset.PatientID = study.patient_id
        dataset.PatientName = study.patient_name
        dataset.PatientBirthDate = ""
        dataset.PatientSex = "O"
        dataset.StudyInstanceUID = study.study_uid
        dataset.StudyDate = study.study_date
        dataset.StudyTime = "120000"
        dataset.StudyID = "1"
        dataset.StudyDescription = study.study_description
        dataset.AccessionNumber = study.accession_number
        dataset.ReferringPhysicianName = ""
        dataset.SeriesInstanceUID = series_uid
        dataset.SeriesNumber = series_number
        dataset.FrameOfReferenceUID = frame_uid
        dataset.PositionReferenceIndicator = ""
        dataset.InstanceNumber = k + 1
        dataset.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
        dataset.ImagePositionPatient = [float(v) for v in image.TransformIndexToPhysicalPoint((0, 0, k))]
        dataset.ImageOrientationPatient = [float(v) for v in (*direction[:, 0], *direction[:, 1])]
        dataset.PixelSpacing = [float(spacing[1]), float(spacing[0])]  # row spacing (j), column spacing (i)
        dataset.SliceThickness = float(spacing[2])
        dataset.Rows, dataset.Columns = int(voxels.shape[1]), int(voxels.shape[2])
        dataset.SamplesPerPixel = 1
        dataset.PhotometricInterpretation = "MONOCHROME2"
        dataset.BitsAllocated = 16
        dataset.BitsStored = 16
        dataset.HighBit = 15
        dataset.PixelRepresentation = 0
        for keyword, value in (tags or {}).items():
            setattr(dataset, keyword, value)
        dataset.PixelData = np.ascontiguousarray(voxels[k]).tobytes()
        path = folder / f"{prefix}{k + 1:04d}.dcm"
        dataset.save_as(str(path), enforce_file_format=True)
        files.append(path)
    return files
