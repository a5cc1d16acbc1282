"""Label maps as numpy arrays: checked integer voxels, the label values present, readable value lists.

Usage::

    from SpineMetSegLib.images.labelmaps import label_array, label_values, describe_values
    array = label_array(image, "prediction")      # ImageError for a probability map or negative values
    print(describe_values(label_values(array)))   # "1, 2, 3"
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import SimpleITK as sitk

from ..errors import ImageError

# Label values are counted in chunks of this many voxels so a 512x512x200 map needs no big temporary array.
COUNT_CHUNK_VOXELS = 1 << 22
# Beyond this label value a histogram would be wasteful; such maps are counted with np.unique.
MAX_HISTOGRAM_LABEL = 1 << 20
SHOWN_LABEL_VALUES = 12


def label_array(image: sitk.Image, name: str) -> np.ndarray:
    """The voxels of a label map as a non-negative integer array (a copy: it may outlive the image).

    Raises ``ImageError`` for fractional values (a probability map) or negative values.
    """
    array = sitk.GetArrayFromImage(image)
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or not np.array_equal(array, np.round(array)):
            raise ImageError(
                f"The {name} holds fractional or non-finite values; it looks like a probability or intensity "
                "image, not a label map. Threshold it or pass the label map."
            )
        array = array.astype(np.int64)
    if array.size and np.issubdtype(array.dtype, np.signedinteger) and array.min() < 0:
        raise ImageError(f"The {name} holds negative values; a label map holds 0 (background) and positive labels.")
    return array


def label_values(array: np.ndarray) -> set:
    """The nonzero values present in a non-negative integer array."""
    if array.size == 0:
        return set()
    flat = array.reshape(-1)
    if int(flat.max()) > MAX_HISTOGRAM_LABEL:
        return {int(v) for v in np.unique(flat)} - {0}
    counts = np.zeros(int(flat.max()) + 1, dtype=np.int64)
    for start in range(0, flat.size, COUNT_CHUNK_VOXELS):
        chunk = np.bincount(flat[start : start + COUNT_CHUNK_VOXELS], minlength=counts.size)
        counts += chunk
    return {int(v) for v in np.flatnonzero(counts)} - {0}


def describe_values(values: Iterable[int]) -> str:
    """``{1, 2, 3}`` as "1, 2, 3"; many values shortened."""
    ordered = sorted(values)
    if not ordered:
        return "none"
    if len(ordered) > SHOWN_LABEL_VALUES:
        return ", ".join(str(v) for v in ordered[:SHOWN_LABEL_VALUES]) + f", ... ({len(ordered)} values)"
    return ", ".join(str(v) for v in ordered)
