"""Surface distances between two binary masks in millimetres: HD95 and ASSD, with MONAI's conventions.

Conventions (identical to MONAI's ``HausdorffDistanceMetric(percentile=95)`` and
``SurfaceDistanceMetric(symmetric=True)`` with ``spacing`` given, so the numbers compare with the literature):

- a surface voxel is a mask voxel with at least one of its 6 face neighbours outside the mask (voxels on the
  image border count as surface: outside the image is background);
- a one-way distance is, for each surface voxel of one mask, the Euclidean distance in mm between its centre
  and the nearest surface-voxel centre of the other mask;
- HD95 is the larger of the two one-way 95th percentiles (linear interpolation between order statistics,
  numpy's and torch's default);
- ASSD is the mean of all one-way distances of both directions pooled (not the mean of the two means).

Nearest surface voxels are found with a k-d tree over the surface voxels only. A distance transform over the
masks' bounding box gives the same numbers but costs time in proportion to the box volume: 3.6 s against
0.1 s for eight lesions scattered through a 512×512×200 scan.

Usage::

    from SpineMetSegLib.analysis.surface_distance import surface_distances, hd95, assd
    to_prediction, to_reference = surface_distances(reference_mask, prediction_mask, grid.array_spacing)
    print(hd95(to_prediction, to_reference), assd(to_prediction, to_reference))
"""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from ..images.voxelgrid import foreground_box

HD_PERCENTILE = 95.0


def surface_mask(mask: np.ndarray) -> np.ndarray:
    """The surface voxels of a boolean mask: voxels with a 6-neighbour outside it (or on the array border)."""
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def surface_distances(
    reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float]
) -> Tuple[np.ndarray, np.ndarray]:
    """One-way surface distances in mm: (reference surface to prediction, prediction surface to reference).

    ``reference`` and ``prediction`` are boolean arrays of one grid, both non-empty; ``spacing`` is the mm
    spacing along the array axes. Only the union bounding box (plus one voxel) is looked at.
    """
    box = foreground_box(reference | prediction, margin=1)
    if box is None or not reference.any() or not prediction.any():
        raise ValueError("surface distances need two non-empty masks")
    scale = np.asarray(spacing, dtype=float)
    reference_points = np.argwhere(surface_mask(reference[box])) * scale
    prediction_points = np.argwhere(surface_mask(prediction[box])) * scale
    to_prediction = cKDTree(prediction_points).query(reference_points, k=1)[0]
    to_reference = cKDTree(reference_points).query(prediction_points, k=1)[0]
    return to_prediction, to_reference


def hd95(to_prediction: np.ndarray, to_reference: np.ndarray) -> float:
    """The 95th-percentile Hausdorff distance: the larger of the two one-way 95th percentiles."""
    return float(max(np.percentile(to_prediction, HD_PERCENTILE), np.percentile(to_reference, HD_PERCENTILE)))


def assd(to_prediction: np.ndarray, to_reference: np.ndarray) -> float:
    """The average symmetric surface distance: the mean of both directions' distances pooled."""
    return float(np.concatenate([to_prediction, to_reference]).mean())
