"""Clean a predicted label map: drop lesion specks, lesions away from bone and lesions the network doubts.

Usage::

    from SpineMetSegLib.inference.postprocessing import clean_lesions
    labels, volumes_ml = clean_lesions(labels, fallback, voxel_volume_ml=0.001,
                                       min_lesion_volume_ml=0.01, must_touch_bone=True,
                                       min_body_contact_fraction=0.3,
                                       lesion_probability=probability_map, min_mean_probability=0.85)

``labels`` holds ``labels.ModelLabel`` values. A lesion is a 26-connected component of
``ModelLabel.METASTASIS``. Components smaller than ``min_lesion_volume_ml`` go, and so do components that touch
no ``ModelLabel.VERTEBRAL_BODY`` voxel when ``must_touch_bone`` (only meaningful for models that predict the
vertebral body). With ``min_body_contact_fraction`` > 0, a component also goes unless at least that fraction of
its outer shell (the voxels 26-adjacent to it, outside it) is ``ModelLabel.VERTEBRAL_BODY``: a metastasis sits
inside a vertebral body, where the lesion label replaces the body label, so body surrounds it, while a false lesion
in the posterior elements (which the model does not label) only grazes the body. With ``min_mean_probability`` > 0
and ``lesion_probability`` given (the metastasis probability: a map, or a function of the voxels' indices), a
component also goes unless its voxels' mean probability reaches the threshold: the network is less sure of its false
lesions than of its true ones, so this trades some sensitivity for fewer false positives. A removed lesion's voxels take
their label in ``fallback`` (the most likely label other than metastasis) when it is given (a label map, or a
function computing it only at the removed voxels), background otherwise.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Tuple, Union

import numpy as np
from scipy import ndimage

from ..labels import ModelLabel
from ..models.modelcard import ModelCard

# 26-connectivity, the lesion definition of the metrics (DESIGN.md).
CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)
# The 26 neighbour offsets of a voxel (CONNECTIVITY without the centre).
NEIGHBOUR_OFFSETS = [offset for offset in np.ndindex(3, 3, 3) if offset != (1, 1, 1)]

Points = Tuple[np.ndarray, ...]
# The label of each removed voxel: a label map like ``labels``, or a function of the voxels' indices.
VoxelValues = Union[np.ndarray, Callable[[Points], np.ndarray], None]
Fallback = VoxelValues


def card_options(card: ModelCard) -> Dict[str, Any]:
    """The ``clean_lesions`` options the card's post-processing asks for.

    The rules that need the vertebral body apply only to models that predict it.
    """
    post = card.postprocessing
    return {
        "min_lesion_volume_ml": post.min_lesion_volume_ml,
        "must_touch_bone": post.lesions_must_touch_bone and card.predicts_bone,
        "min_body_contact_fraction": post.min_body_contact_fraction if card.predicts_bone else 0.0,
        "min_mean_probability": post.min_lesion_mean_probability,
    }


def clean_lesions(
    labels: np.ndarray,
    fallback: Fallback = None,
    *,
    voxel_volume_ml: float,
    min_lesion_volume_ml: float = 0.0,
    must_touch_bone: bool = False,
    min_body_contact_fraction: float = 0.0,
    lesion_probability: VoxelValues = None,
    min_mean_probability: float = 0.0,
) -> Tuple[np.ndarray, List[float]]:
    """Return the cleaned label map (changed in place) and the volumes in ml of the lesions kept.

    ``fallback`` gives the label of a removed lesion's voxels (the next most likely label, not metastasis): a
    label map on the grid of ``labels``, or a function from the voxels' index arrays (``np.nonzero`` style) to
    their labels, so that it is computed only where needed; background when None. ``lesion_probability`` has
    the same two forms and gives the metastasis probability for ``min_mean_probability``.
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
    if min_body_contact_fraction > 0:
        keep &= body_contact_fractions(components, count, region == ModelLabel.VERTEBRAL_BODY) >= (
            min_body_contact_fraction
        )
    if min_mean_probability > 0 and lesion_probability is not None:
        keep &= mean_probabilities(components, count, box, lesion_probability) >= min_mean_probability
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


def mean_probabilities(
    components: np.ndarray, count: int, box: Tuple[slice, ...], lesion_probability: VoxelValues
) -> np.ndarray:
    """Per component of ``components`` (a labelling of the ``box`` of the full grid; index 0 unused, 0.0), the mean
    of ``lesion_probability`` (a full-grid map, or a function of full-grid voxel indices) over its voxels."""
    inside = np.nonzero(components)
    if callable(lesion_probability):
        values = lesion_probability(tuple(index + b.start for index, b in zip(inside, box)))
    else:
        values = lesion_probability[box][inside]
    owners = components[inside]
    sizes = np.bincount(owners, minlength=count + 1)
    sums = np.bincount(owners, weights=np.asarray(values, dtype=np.float64), minlength=count + 1)
    return np.divide(sums, sizes, out=np.zeros(count + 1), where=sizes > 0)


def body_contact_fractions(components: np.ndarray, count: int, body: np.ndarray) -> np.ndarray:
    """Per component (index 0 unused, 0.0), the fraction of its outer shell that is ``body``.

    ``components`` is a 26-connected labelling (``count`` components) and ``body`` a mask on the same grid. The
    shell of a component is every voxel 26-adjacent to it and outside it, within the grid; a voxel next to two
    components counts in both shells.
    """
    padded = np.pad(components, 1)
    lesion = components > 0
    shell = ndimage.binary_dilation(lesion, structure=CONNECTIVITY) & ~lesion
    points = np.nonzero(shell)
    # The component labels around each shell voxel (one column per neighbour), read from the zero-padded
    # labelling so that the grid's edge needs no special case.
    around = np.stack(
        [padded[tuple(p + o for p, o in zip(points, offset))] for offset in NEIGHBOUR_OFFSETS], axis=1
    )
    around.sort(axis=1)
    # Each distinct component next to a shell voxel once: a sorted row's non-zero entries that differ from the
    # entry before them.
    first = np.ones_like(around, dtype=bool)
    first[:, 1:] = around[:, 1:] != around[:, :-1]
    first &= around > 0
    rows, _ = np.nonzero(first)
    owners = around[first]
    shell_sizes = np.bincount(owners, minlength=count + 1)
    body_sizes = np.bincount(owners, weights=body[points][rows], minlength=count + 1)
    return np.divide(body_sizes, shell_sizes, out=np.zeros(count + 1), where=shell_sizes > 0)
