"""Clean a predicted label map: drop lesion specks and lesions away from bone.

Usage::

    from SpineMetSegLib.postprocessing import clean_lesions
    labels, volumes_ml = clean_lesions(labels, fallback, voxel_volume_ml=0.001,
                                       min_lesion_volume_ml=0.01, must_touch_bone=True)

``labels`` holds ``labels.ModelLabel`` values. A lesion is a 26-connected component of
``ModelLabel.METASTASIS``. Components smaller than ``min_lesion_volume_ml`` go, and so do components that touch
no ``ModelLabel.VERTEBRAL_BODY`` voxel when ``must_touch_bone`` (only meaningful for models that predict the
vertebral body). A removed lesion's voxels take their label in ``fallback`` (the most likely label other than
metastasis) when it is given, background otherwise.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np
from scipy import ndimage

from .labels import ModelLabel

# 26-connectivity, the lesion definition of the metrics (DESIGN.md).
CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)


def clean_lesions(
    labels: np.ndarray,
    fallback: Optional[np.ndarray] = None,
    *,
    voxel_volume_ml: float,
    min_lesion_volume_ml: float = 0.0,
    must_touch_bone: bool = False,
) -> Tuple[np.ndarray, List[float]]:
    """Return the cleaned label map (changed in place) and the volumes in ml of the lesions kept.

    ``fallback`` is a label map on the grid of ``labels`` without metastasis (the next most likely label).
    """
    lesion = labels == ModelLabel.METASTASIS
    components, count = ndimage.label(lesion, structure=CONNECTIVITY)
    if count == 0:
        return labels, []
    sizes = np.bincount(components.ravel(), minlength=count + 1)
    keep = sizes * voxel_volume_ml >= min_lesion_volume_ml
    if must_touch_bone:
        keep &= _touching_bone(labels, lesion, components, count)
    keep[0] = True
    removed = ~keep[components]
    if removed.any():
        labels[removed] = 0 if fallback is None else fallback[removed]
    volumes = [float(sizes[index] * voxel_volume_ml) for index in range(1, count + 1) if keep[index]]
    return labels, volumes


def _touching_bone(labels: np.ndarray, lesion: np.ndarray, components: np.ndarray, count: int) -> np.ndarray:
    """Per component (index 0 unused): True when one of its voxels is next to a vertebral-body voxel."""
    # Only the box around the lesions matters: dilating the whole volume's bone would cost far more.
    box = ndimage.find_objects(lesion.view(np.uint8))[0]
    box = tuple(slice(max(0, b.start - 1), b.stop + 1) for b in box)
    near_bone = ndimage.binary_dilation(labels[box] == ModelLabel.VERTEBRAL_BODY, structure=CONNECTIVITY)
    return np.bincount(components[box][near_bone], minlength=count + 1) > 0
