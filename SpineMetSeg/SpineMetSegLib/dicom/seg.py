"""Write a label map as a DICOM Segmentation (SEG) object that references its source series (highdicom).

One segment per label of the model card (segment number = label value), with the card's name, colour and coded
terminology (segmented property category and type), algorithm type AUTOMATIC and the model's name and version as
the algorithm identification. Frames lie on the source slices (one per slice that holds any segment), so a PACS
viewer overlays them on the series the label map was computed on. The label map must be on that series' grid:
``batch`` writes it on the grid of the first input, and the SEG references that input's series.

Usage::

    write_dicom_seg(labels, t1_series, card, "case/segmentation.dcm")
    seg = highdicom.seg.segread("case/segmentation.dcm")
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, List

import numpy as np
import SimpleITK as sitk

from .. import __version__
from ..errors import GeometryError, SpineMetSegError
from ..images.atomicfile import atomic_path
from ..models.modelcard import Code, Label, ModelCard
from .headers import Series

SEG_SERIES_NUMBER = 9901
MANUFACTURER = "SpineMetSeg"
# Geometry agreement between the label map and the source slices, in mm.
POSITION_TOLERANCE_MM = 1e-2


def require_highdicom():
    """The ``highdicom`` module, or a ``SpineMetSegError`` saying how to install it."""
    try:
        import highdicom
    except ImportError:
        raise SpineMetSegError(
            "Writing DICOM SEG needs highdicom: pip install 'spinemetseg[dicom]' (or pip install highdicom)."
        ) from None
    return highdicom


def write_dicom_seg(
    labels: sitk.Image, series: Series, card: ModelCard, path: os.PathLike, *, series_number: int = SEG_SERIES_NUMBER
) -> Path:
    """Write ``labels`` (on ``series``' grid, values = the card's label values) as a DICOM SEG to ``path``."""
    hd = require_highdicom()
    from pydicom import dcmread
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    sources = [dcmread(str(file), stop_before_pixels=True) for file in series.sorted_files()]
    _check_on_source_grid(labels, sources, series)
    described = _card_labels(card)
    array = sitk.GetArrayFromImage(labels).astype(np.uint8)  # (slices, rows, columns), as the sorted sources
    algorithm = hd.AlgorithmIdentificationSequence(
        name=card.name, version=card.version,
        family=codes.cid7162.ArtificialIntelligence,
    )
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=label.value,
            segment_label=label.name,
            segmented_property_category=_code(hd, label.terminology.category),
            segmented_property_type=_code(hd, label.terminology.type),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
            display_color=hd.color.CIELabColor.from_rgb(*(int(round(255 * c)) for c in label.color)),
        )
        for label in described
    ]
    present = set(np.unique(array).tolist()) - {0}
    unknown = present - {label.value for label in described}
    if unknown:
        raise SpineMetSegError(f"The label map holds values {sorted(unknown)} that the model card does not name.")
    segmentation = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=array,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=generate_uid(),
        series_number=series_number,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=str(card),
        software_versions=f"spinemetseg {__version__}",
        device_serial_number="0",
        series_description=f"SpineMetSeg {card}",
        content_label="SPINEMETSEG",
        content_description="Automatic segmentation of spinal metastases (research use only)",
    )
    path = Path(path)
    with atomic_path(path) as temporary:
        segmentation.save_as(str(temporary))
    return path


def _card_labels(card: ModelCard) -> List[Label]:
    """The card's labels sorted by value; highdicom needs segment numbers 1, 2, ... without gaps."""
    labels = sorted(card.labels, key=lambda label: label.value)
    values = [label.value for label in labels]
    if values != list(range(1, len(values) + 1)):
        raise SpineMetSegError(f"DICOM SEG needs label values 1, 2, 3, ... without gaps; the card has {values}.")
    return labels


def _code(hd: Any, code: Code) -> Any:
    return hd.sr.CodedConcept(value=code.code, scheme_designator=code.scheme, meaning=code.meaning)


def _check_on_source_grid(labels: sitk.Image, sources: List[Any], series: Series) -> None:
    """Raise ``GeometryError`` unless voxel (0, 0, k) of ``labels`` is the k-th source slice's position."""
    size = labels.GetSize()
    if size[2] != len(sources) or (size[1], size[0]) != (int(sources[0].Rows), int(sources[0].Columns)):
        raise GeometryError(
            f"The label map ({size}) is not on the grid of the series {series.label} "
            f"({sources[0].Columns} x {sources[0].Rows} x {len(sources)}): DICOM SEG needs the label map on it."
        )
    for k, source in enumerate(sources):
        position = np.array([float(v) for v in source.ImagePositionPatient])
        if not np.allclose(labels.TransformIndexToPhysicalPoint((0, 0, k)), position, atol=POSITION_TOLERANCE_MM):
            raise GeometryError(
                f"Slice {k + 1} of the label map is not at the position of slice {k + 1} of the series "
                f"{series.label}; DICOM SEG needs the label map on that series' grid."
            )
