"""The label map a plan is made on: numbered lesions, vertebral bodies and the spinal canal as RAS points.

Lesions are numbered exactly as ``spinemetseg lesions`` and the panel's lesion table number them (26-connected
components, 1 the most superior), so ``--lesion 2`` is row 2 of that table. Anatomy labels follow
``analysis.lesions``: the model output (2 vertebral body, 3 spinal canal) or the phantom's tissue classes,
detected from the values or named explicitly.

Every measure takes a voxel as its centre point: a voxel is inside the zone when its centre is. The vertebral body
is its label plus every lesion voxel (a lesion sits in the body, and in a model output replaced its label).

Usage::

    anatomy = PlanAnatomy.from_image(imageio.read_image("seg.nii.gz"))
    anatomy.lesion_count, anatomy.lesion_points(1)        # (N, 3) RAS mm voxel centres of lesion 1
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ...errors import SpineMetSegError
from ...images import imageio
from ...images.labelmaps import describe_values, label_array, label_values
from ...images.voxelgrid import VoxelGrid, box_origin, foreground_box
from ..lesion_matching import connected_lesions
from ..lesions import AnatomyLabels, detect_anatomy_labels
from ..surface_distance import surface_mask

LPS_TO_RAS = np.array([-1.0, -1.0, 1.0])
# The body depth of a point is measured in a box this much larger than the points asked about.
BODY_DEPTH_REACH_MM = 20.0


class PlanAnatomy:
    """Lesions, vertebral body and canal of one label map, with the grid to turn voxels into RAS points."""

    def __init__(self, array: np.ndarray, grid: VoxelGrid, lesion_label: int, labels: AnatomyLabels):
        self.grid = grid
        self.array = array
        self.lesion_label = lesion_label
        self.labels = labels
        self.lesions, count = connected_lesions(array == lesion_label)
        order = self._superior_first(count)
        renumber = np.zeros(count + 1, dtype=self.lesions.dtype)
        renumber[order] = np.arange(1, count + 1)
        self.lesions = renumber[self.lesions]
        self.lesion_count = count
        self.lesion_boxes = ndimage.find_objects(self.lesions)
        body_label = np.isin(array, labels.body)
        self._has_body = bool(body_label.any())
        # A lesion sits in (and in a model output replaced) the vertebral body: its voxels count as body.
        self.body = body_label | (self.lesions > 0)
        self.canal = np.isin(array, labels.canal)
        self._canal_points = None
        self._body_depth = None
        self._canal_surface_points = None

    @classmethod
    def from_image(
        cls,
        segmentation: sitk.Image,
        anatomy: Optional[sitk.Image] = None,
        *,
        label: int = 1,
        body_labels: Optional[Sequence[int]] = None,
        canal_labels: Optional[Sequence[int]] = None,
    ) -> PlanAnatomy:
        """A model output (or any map with its labels), optionally with a separate anatomy map on any grid."""
        if label <= 0:
            raise SpineMetSegError(f"The lesion label must be a positive value (0 is the background), got {label}.")
        imageio.check_3d(segmentation, "segmentation")
        grid = VoxelGrid.of(segmentation)
        array = label_array(segmentation, "segmentation")
        if anatomy is not None:
            imageio.check_3d(anatomy, "anatomy map")
            anatomy_array = label_array(imageio.resample_to(anatomy, segmentation, nearest=True), "anatomy map")
            # The lesions come from the segmentation; the anatomy map gives the body and canal under them.
            merged = anatomy_array.astype(np.int32)
            detected = detect_anatomy_labels(label_values(anatomy_array))
        else:
            merged = array.astype(np.int32)
            detected = detect_anatomy_labels(label_values(array))
        labels = AnatomyLabels(
            tuple(int(v) for v in body_labels) if body_labels else detected.body,
            tuple(int(v) for v in canal_labels) if canal_labels else detected.canal,
        )
        lesion_mask = array == label
        if not lesion_mask.any():
            raise SpineMetSegError(
                f"No lesion: no voxel of the segmentation has the label {label} "
                f"(it holds {describe_values(label_values(array))}). Name the lesion label with --label."
            )
        # A distinct value for the lesion voxels keeps them apart from the anatomy they may overlap.
        lesion_value = int(max(merged.max(), max(labels.body + labels.canal, default=0)) + 1)
        merged[lesion_mask] = lesion_value
        return cls(merged, grid, lesion_value, labels)

    def _superior_first(self, count: int) -> np.ndarray:
        """Component labels ordered most superior first (centroid S), ties kept in label order."""
        if count == 0:
            return np.zeros(0, dtype=int)
        centres = np.array(ndimage.center_of_mass(self.lesions > 0, self.lesions, range(1, count + 1))).reshape(-1, 3)
        superior = self.grid.physical_points(centres)[:, 2]
        return np.arange(1, count + 1)[np.argsort(-superior, kind="stable")]

    # Points -----------------------------------------------------------------------------------------------------
    def points_ras(self, indices: np.ndarray) -> np.ndarray:
        """Array indices (N, 3; k, j, i) to RAS mm."""
        return self.grid.physical_points(indices) * LPS_TO_RAS

    def check_lesion(self, lesion: int) -> None:
        if not 1 <= lesion <= self.lesion_count:
            raise SpineMetSegError(
                f"There is no lesion {lesion}: the segmentation holds {self.lesion_count} lesion(s), numbered 1 to "
                f"{self.lesion_count} from the most superior (as 'spinemetseg lesions' lists them)."
            )

    def lesion_indices(self, lesion: int) -> np.ndarray:
        self.check_lesion(lesion)
        box = self.lesion_boxes[lesion - 1]
        return np.argwhere(self.lesions[box] == lesion) + box_origin(box)

    def lesion_points(self, lesion: int) -> np.ndarray:
        return self.points_ras(self.lesion_indices(lesion))

    def lesion_surface_points(self, lesion: int) -> np.ndarray:
        """RAS points of the lesion's surface voxels (the ones that decide a margin)."""
        self.check_lesion(lesion)
        box = _widened(self.lesion_boxes[lesion - 1], self.lesions.shape)
        local = self.lesions[box] == lesion
        return self.points_ras(np.argwhere(surface_mask(local)) + box_origin(box))

    @property
    def has_canal(self) -> bool:
        return bool(self.canal.any())

    @property
    def has_body(self) -> bool:
        """Whether the map holds vertebral-body labels (lesions alone do not make a body)."""
        return self._has_body

    def body_depth(self, points_ras: np.ndarray) -> np.ndarray:
        """How deep (mm) each point lies inside the vertebral body: positive inside, negative outside.

        The body's surface is taken half a voxel beyond its outer voxel centres: a voxel centre's depth is its
        distance to the nearest voxel centre on the other side less half a (smallest) voxel spacing, interpolated
        linearly in between. Exact at a face of an isotropic grid, within half a voxel elsewhere. Depths are
        measured in a box ``BODY_DEPTH_REACH_MM`` around the points, so larger ones read as that much. Points
        outside the image are outside the body (minus infinity).
        """
        points_ras = np.asarray(points_ras, dtype=float).reshape(-1, 3)
        kji = self.continuous_indices(points_ras)
        reach = np.ceil(BODY_DEPTH_REACH_MM / self.grid.array_spacing).astype(int) + 1
        shape = np.array(self.grid.shape)
        low = np.clip(np.floor(kji.min(axis=0)).astype(int) - reach, 0, shape - 1)
        high = np.clip(np.ceil(kji.max(axis=0)).astype(int) + reach + 1, 1, shape)
        if self._body_depth is None or np.any(low < self._body_depth[0]) or np.any(high > self._body_depth[1]):
            if self._body_depth is not None:  # grow the box already measured, so it keeps serving earlier points
                low, high = np.minimum(low, self._body_depth[0]), np.maximum(high, self._body_depth[1])
            self._body_depth = (low, high, self._depth_map(tuple(slice(a, b) for a, b in zip(low, high))))
        origin, _, depth = self._body_depth
        return np.where(self.inside_image(points_ras), _trilinear(depth, kji - origin), -np.inf)

    def _depth_map(self, box: Tuple[slice, ...]) -> np.ndarray:
        spacing = self.grid.array_spacing
        half_voxel = float(spacing.min()) / 2.0
        body = self.body[box]
        # One layer of the other kind around the box: depths beyond the box read as the distance to its border.
        inner = (slice(1, -1),) * 3
        inside = ndimage.distance_transform_edt(np.pad(body, 1, constant_values=False), sampling=spacing)[inner]
        outside = ndimage.distance_transform_edt(np.pad(~body, 1, constant_values=False), sampling=spacing)[inner]
        return np.where(body, inside - half_voxel, half_voxel - outside).astype(np.float32)

    def canal_points(self) -> np.ndarray:
        if self._canal_points is None:
            self._canal_points = self.points_ras(np.argwhere(self.canal))
        return self._canal_points

    def canal_surface_points(self) -> np.ndarray:
        """The canal's surface voxels: the nearest canal voxel to anything outside the canal is one of them."""
        if self._canal_surface_points is None:
            box = foreground_box(self.canal, margin=1)
            if box is None:
                self._canal_surface_points = np.zeros((0, 3))
            else:
                surface = np.argwhere(surface_mask(self.canal[box])) + box_origin(box)
                self._canal_surface_points = self.points_ras(surface)
        return self._canal_surface_points

    def continuous_indices(self, points_ras: np.ndarray) -> np.ndarray:
        """RAS points (N, 3) to fractional array indices (k, j, i)."""
        lps = np.asarray(points_ras, dtype=float).reshape(-1, 3) * LPS_TO_RAS
        ijk = (lps - np.asarray(self.grid.origin)) @ self.grid.direction / np.asarray(self.grid.spacing_ijk)
        return ijk[:, ::-1]

    def inside_image(self, points_ras: np.ndarray) -> np.ndarray:
        """Whether each RAS point lies within the image (within half a voxel of a voxel centre)."""
        kji = self.continuous_indices(points_ras)
        return np.all((kji >= -0.5) & (kji <= np.array(self.grid.shape) - 0.5), axis=1)

    def index_box_of(self, low_ras: np.ndarray, high_ras: np.ndarray) -> Tuple[Optional[Tuple[slice, ...]], bool]:
        """The array box holding the RAS box [low, high], clipped to the image; and whether it had to be clipped."""
        corners = np.array([[x, y, z] for x in (low_ras[0], high_ras[0]) for y in (low_ras[1], high_ras[1])
                            for z in (low_ras[2], high_ras[2])])
        kji = self.continuous_indices(corners)
        start = np.floor(kji.min(axis=0)).astype(int)
        stop = np.ceil(kji.max(axis=0)).astype(int) + 1
        shape = np.array(self.grid.shape)
        clipped = bool(np.any(start < 0) or np.any(stop > shape))
        start = np.clip(start, 0, shape)
        stop = np.clip(stop, 0, shape)
        if np.any(stop <= start):
            return None, True
        return tuple(slice(int(a), int(b)) for a, b in zip(start, stop)), clipped


def _trilinear(volume: np.ndarray, kji: np.ndarray) -> np.ndarray:
    """``volume`` at fractional indices (N, 3), linearly interpolated; indices clamped to the array."""
    top = np.array(volume.shape) - 1
    kji = np.clip(kji, 0, top)
    low = np.minimum(np.floor(kji).astype(int), np.maximum(top - 1, 0))
    weight = kji - low
    result = np.zeros(len(kji))
    for corner in np.ndindex(2, 2, 2):
        offset = np.array(corner)
        index = np.minimum(low + offset, top)
        factor = np.prod(np.where(offset == 1, weight, 1.0 - weight), axis=1)
        result += factor * volume[index[:, 0], index[:, 1], index[:, 2]]
    return result


def _widened(box: Tuple[slice, ...], shape: Sequence[int]) -> Tuple[slice, ...]:
    return tuple(slice(max(s.start - 1, 0), min(s.stop + 1, n)) for s, n in zip(box, shape))
