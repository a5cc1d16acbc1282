"""Where the voxels of an image's array are: millimetre spacing, physical points, voxel volume, crops.

SimpleITK arrays are indexed ``[k, j, i]`` (slice, row, column) while the image's spacing, origin and
direction are given for ``(i, j, k)``; this module keeps that bookkeeping in one place so the metrics and
lesion measures work on plain numpy arrays.

Usage::

    from SpineMetSegLib.images.voxelgrid import VoxelGrid, foreground_box
    grid = VoxelGrid.of(image)                      # GeometryError for a sheared (non-orthonormal) direction
    mask = sitk.GetArrayViewFromImage(image) == 1
    box = foreground_box(mask, margin=1)            # tuple of slices, None when the mask is empty
    inside = grid.cropped(box)                      # the grid of mask[box]
    points_lps = grid.physical_points(np.argwhere(mask))   # (N, 3) millimetres, LPS
    volume_ml = mask.sum() * grid.voxel_volume_ml
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import SimpleITK as sitk

from ..errors import GeometryError

MM3_PER_ML = 1000.0
# Direction matrices read from NIfTI are float32: orthonormal within this.
ORTHONORMAL_TOLERANCE = 1e-3


@dataclass(frozen=True, eq=False)  # holds an array: compare grids with Geometry, not ==
class VoxelGrid:
    """The geometry of a 3D image, arranged for its numpy array (axis order k, j, i)."""

    spacing_ijk: Tuple[float, float, float]
    origin: Tuple[float, float, float]
    direction: np.ndarray  # 3x3, columns are the i, j, k axes in LPS
    shape: Tuple[int, int, int]  # the array's shape (k, j, i)

    @classmethod
    def of(cls, image: sitk.Image) -> VoxelGrid:
        """The grid of ``image``; raises ``GeometryError`` unless its direction is orthonormal.

        Distances are computed from index differences times spacing, which equals the physical distance only
        for an orthonormal direction (every scanner and every ITK writer produces one).
        """
        direction = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
        if not np.allclose(direction.T @ direction, np.eye(3), atol=ORTHONORMAL_TOLERANCE):
            raise GeometryError(
                "The image's direction matrix is not orthonormal (a sheared grid); distances in millimetres "
                "cannot be measured on it. Resample the image onto a regular grid first."
            )
        return cls(
            spacing_ijk=tuple(float(s) for s in image.GetSpacing()),
            origin=tuple(float(o) for o in image.GetOrigin()),
            direction=direction,
            shape=tuple(reversed(image.GetSize())),
        )

    @property
    def array_spacing(self) -> np.ndarray:
        """Spacing in mm along the array axes (k, j, i)."""
        return np.array(self.spacing_ijk[::-1])

    @property
    def voxel_volume_ml(self) -> float:
        return float(np.prod(self.spacing_ijk)) / MM3_PER_ML

    def cropped(self, box: Tuple[slice, ...]) -> VoxelGrid:
        """The grid of the sub-array ``array[box]``: same spacing and direction, origin at the box's first voxel."""
        start = np.array([[s.start for s in box]])
        return VoxelGrid(
            spacing_ijk=self.spacing_ijk,
            origin=tuple(float(c) for c in self.physical_points(start)[0]),
            direction=self.direction,
            shape=tuple(s.stop - s.start for s in box),
        )

    def millimetre_offsets(self, indices: np.ndarray) -> np.ndarray:
        """Array indices (N, 3; k, j, i) scaled to millimetres along the array axes: distances are physical."""
        return np.asarray(indices, dtype=float) * self.array_spacing

    def physical_points(self, indices: np.ndarray) -> np.ndarray:
        """Array indices (N, 3; k, j, i), possibly fractional, to physical LPS points in mm (N, 3)."""
        ijk = np.asarray(indices, dtype=float)[:, ::-1]
        return np.asarray(self.origin) + (ijk * np.asarray(self.spacing_ijk)) @ self.direction.T


def foreground_box(mask: np.ndarray, margin: int = 0) -> Optional[Tuple[slice, ...]]:
    """The bounding box of the nonzero voxels of a 3D array widened by ``margin`` voxels (clipped to it).

    Returns a tuple of slices, or None when there is no nonzero voxel. Two passes over the array.
    """
    if mask.size == 0:
        return None
    rows_and_columns = mask.any(axis=0)
    present = (mask.any(axis=(1, 2)), rows_and_columns.any(axis=1), rows_and_columns.any(axis=0))
    box = []
    for axis, along in enumerate(present):
        where = np.flatnonzero(along)
        if where.size == 0:
            return None
        box.append(slice(max(int(where[0]) - margin, 0), min(int(where[-1]) + 1 + margin, mask.shape[axis])))
    return tuple(box)


def union_box(*boxes: Optional[Tuple[slice, ...]]) -> Optional[Tuple[slice, ...]]:
    """The smallest box holding every given box (None entries are skipped; None when all are)."""
    present = [box for box in boxes if box is not None]
    if not present:
        return None
    return tuple(
        slice(min(box[axis].start for box in present), max(box[axis].stop for box in present)) for axis in range(3)
    )


def box_origin(box: Tuple[slice, ...]) -> np.ndarray:
    """The array index of a box's first voxel, to turn indices inside a crop back into whole-array indices."""
    return np.array([s.start for s in box])
