"""Clean a predicted label map: drop lesion specks and lesions away from bone.

Usage::

    from SpineMetSegLib.postprocessing import clean_lesions
    labels, volumes_ml = clean_lesions(labels, fallback, voxel_volume_ml=0.001,
                                       min_lesion_volume_ml=0.01, must_touch_bone=True)

``labels`` holds ``labels.ModelLabel`` values. A lesion is a 26-connected component of
``ModelLabel.METASTASIS``. Components smaller than ``min_lesion_volume_ml`` go, and so do components that touch
no ``ModelLabel.VERTEBRAL_BODY`` voxel when ``must_touch_bone`` (only meaningful for models that predict the
vertebral body). A removed lesion's voxels take their label in ``fallback`` (the most likely label other than
metastasis) when it is given (a label map, or a function computing it only at the removed voxels), background
otherwise.
"""

from __future__ import annotations

from typing import Callable, List, Tuple, Union

import numpy as np
from scipy import ndimage

from .labels import ModelLabel

# 26-connectivity, the lesion definition of the metrics (DESIGN.md).
CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)

Points = Tuple[np.ndarray, ...]
# The label of each removed voxel: a label map like ``labels``, or a function of the voxels' indices.
Fallback = Union[np.ndarray, Callable[[Points], np.ndarray], None]


def clean_lesions(
    labels: np.ndarray,
    fallback: Fallback = None,
    *,
    voxel_volume_ml: float,
    min_lesion_volume_ml: float = 0.0,
    must_touch_bone: bool = False,
) -> Tuple[np.ndarray, List[float]]:
    """Return the cleaned label map (changed in place) and the volumes in ml of the lesions kept.

    ``fallback`` gives the label of a removed lesion's voxels (the next most likely label, not metastasis): a
    label map on the grid of ``labels``, or a function from the voxels' index arrays (``np.nonzero`` style) to
    their labels, so that it is computed only where needed; background when None.
    """
    lesion = labels == ModelLabel.METASTASIS
    boxes = ndimage.find_objects(lesion.view(np.uint8))
    if not boxes or boxes[0] is None:
        return labels, []
    # Only the box around the lesions (and the voxels next to it, for the bone test) matters: labelling and
    # dilating there costs a fraction of the whole volume.
    box = tuple(slice(max(0, b.start - 1), b.stop + 1) for b in boxes[0])
    region = labels[box]
    components, count = ndimage.label(lesion[box], structure=CONNECTIVITY)
    sizes = np.bincount(components.ravel(), minlength=count + 1)
    keep = sizes * voxel_volume_ml >= min_lesion_volume_ml
    if must_touch_bone:
        near_bone = ndimage.binary_dilation(region == ModelLabel.VERTEBRAL_BODY, structure=CONNECTIVITY)
        keep &= np.bincount(components[near_bone], minlength=count + 1) > 0
    keep[0] = True
    removed = ~keep[components]
    if removed.any():
        if fallback is None:
            region[removed] = 0
        elif callable(fallback):
            points = tuple(index + b.start for index, b in zip(np.nonzero(removed), box))
            region[removed] = fallback(points)
        else:
            region[removed] = fallback[box][removed]
    volumes = [float(sizes[index] * voxel_volume_ml) for index in range(1, count + 1) if keep[index]]
    return labels, volumes
