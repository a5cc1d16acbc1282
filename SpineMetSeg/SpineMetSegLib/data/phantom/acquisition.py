"""Acquisition geometry of a phantom case: sagittal 2D multislice or 3D isotropic, as on a real scanner.

The grid's axes, in the anatomy frame (x left, y posterior, z superior), are: i (columns) anterior -> posterior,
j (rows) superior -> inferior, k (slices) left -> right, as in a DICOM sagittal series; a right-handed frame.
The anatomy frame itself sits in the scanner's LPS space with a small random oblique tilt and a random table
position, so the direction cosines are those of a slightly oblique sagittal acquisition.

A 2D slice has a thickness: its signal is the mean over ``sub_offsets`` (lateral positions across the
thickness), which is the partial-volume effect of thick slices.

Usage::

    acquisition = sample_acquisition(rng, "sagittal2d", spine)
    y, z = acquisition.in_plane_yz()               # anatomy-frame coordinates of the in-plane grid (rows, cols)
    for k in range(acquisition.size[2]):
        positions = acquisition.lateral_positions(k)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np

from .anatomy import Spine

ACQUISITIONS = ("sagittal2d", "iso3d")
# Grid axes in the anatomy frame (columns of the direction matrix before the tilt).
GRID_AXES = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])

IN_PLANE_SPACING_MM = (0.5, 1.0)
TARGET_SPACING_MM = (0.5, 0.9)  # the spacing drawn before the matrix is rounded
MATRIX_STEP, MIN_MATRIX, MAX_MATRIX = 32, 128, 512
SLICE_THICKNESS_MM = (3.0, 5.0)
SLICE_THICKNESS_STEP_MM = 0.5
SLICE_GAP_FRACTIONS = (0.0, 0.1, 0.2)
MIN_SLICES, MAX_SLICES = 12, 20
SUB_SLICE_MM = 2.0  # lateral sampling step inside a thick slice (partial volume)
ISO_SPACING_MM = 1.0
ISO_DEPTH_MM = (180.0, 260.0)
LATERAL_MARGIN_MM = (6.0, 20.0)  # slab half-width beyond the widest vertebral body
NEIGHBOUR_COVERAGE = (0.25, 0.6)  # share of each end neighbour's height inside the field of view
TILT_DEG = (6.0, 4.0, 4.0)  # about x (in the sagittal plane), y, z
TABLE_OFFSET_MM = (30.0, 30.0, 200.0)
MIN_FOV_MM = 120.0
FIELD_CENTRE_BEHIND_BODY_MM = (15.0, 45.0)  # field centre behind the mid-depth of the bodies


@dataclass(frozen=True)
class Acquisition:
    """One case's voxel grid and its placement relative to the anatomy and the scanner."""

    kind: str
    size: Tuple[int, int, int]  # (i, j, k) = (columns AP, rows SI, slices LR)
    spacing: Tuple[float, float, float]
    slice_thickness: float
    sub_offsets: Tuple[float, ...]
    anatomy_origin: Tuple[float, float, float]  # anatomy-frame (x, y, z) of voxel (0, 0, 0)
    rotation: Tuple[float, ...]  # 9 numbers, row-major: anatomy frame -> LPS
    translation: Tuple[float, float, float]
    tilt_deg: Tuple[float, float, float]

    @property
    def direction(self) -> Tuple[float, ...]:
        """ITK direction (row-major 3x3, columns = the i, j, k axes in LPS)."""
        matrix = np.reshape(self.rotation, (3, 3)) @ GRID_AXES
        return tuple(float(v) for v in matrix.ravel())

    @property
    def origin(self) -> Tuple[float, float, float]:
        """LPS position of voxel (0, 0, 0)."""
        return self.to_physical(np.array(self.anatomy_origin))

    @property
    def slice_gap(self) -> float:
        return self.spacing[2] - self.slice_thickness if self.kind == "sagittal2d" else 0.0

    def to_physical(self, point: np.ndarray) -> Tuple[float, float, float]:
        """LPS coordinates of an anatomy-frame point (x, y, z)."""
        physical = np.reshape(self.rotation, (3, 3)) @ np.asarray(point, float) + np.asarray(self.translation)
        return tuple(float(v) for v in physical)

    def in_plane_yz(self) -> Tuple[np.ndarray, np.ndarray]:
        """Anatomy-frame (y, z) of every in-plane voxel centre, arrays of shape (rows, columns)."""
        ni, nj, _ = self.size
        _, y0, z0 = self.anatomy_origin
        y = y0 + np.arange(ni) * self.spacing[0]
        z = z0 - np.arange(nj) * self.spacing[1]
        return np.broadcast_to(y[None, :], (nj, ni)), np.broadcast_to(z[:, None], (nj, ni))

    def lateral_positions(self, k: int) -> np.ndarray:
        """Anatomy-frame x (= lateral distance from the midline) of the sub-slices of slice ``k``."""
        centre = self.anatomy_origin[0] - k * self.spacing[2]
        return centre + np.asarray(self.sub_offsets)

    def summary(self) -> dict:
        """What case.json records about the acquisition."""
        return {
            "kind": self.kind,
            "size": list(self.size),
            "spacing_mm": [round(v, 6) for v in self.spacing],
            "slice_thickness_mm": round(self.slice_thickness, 6),
            "slice_gap_mm": round(self.slice_gap, 6),
            "field_of_view_mm": [round(n * s, 3) for n, s in zip(self.size, self.spacing)],
            "origin": [round(v, 6) for v in self.origin],
            "direction": [round(v, 9) for v in self.direction],
            "oblique_tilt_deg": [round(v, 3) for v in self.tilt_deg],
            "sub_slices": len(self.sub_offsets),
        }


def _rotation(angles_deg: np.ndarray) -> np.ndarray:
    ax, ay, az = np.radians(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _visible_extent(rng: np.random.Generator, spine: Spine) -> Tuple[float, float, float]:
    """Anatomy-frame (z low, z high, y centre) of a field showing the visible run and parts of its neighbours."""
    first, last = spine.visible[0], spine.visible[-1]
    low_s = spine.centre_s[first] - spine.half_height[first] - spine.disc_height[first - 1]
    low_s -= 2 * spine.half_height[first - 1] * rng.uniform(*NEIGHBOUR_COVERAGE)
    high_s = spine.centre_s[last] + spine.half_height[last] + spine.disc_height[last]
    high_s += 2 * spine.half_height[last + 1] * rng.uniform(*NEIGHBOUR_COVERAGE)
    middle_s = 0.5 * (low_s + high_s)
    depth = spine.half_depth[first : last + 1].max()
    # z of the field's edges, taken where the posterior wall and the body's front cross those arc lengths.
    edges_low = [spine.point(low_s, n)[1] for n in (0.0, -2 * depth)]
    edges_high = [spine.point(high_s, n)[1] for n in (0.0, -2 * depth)]
    y_centre = spine.point(middle_s, -depth)[0]
    return float(np.mean(edges_low)), float(np.mean(edges_high)), y_centre


def _square_matrix(rng: np.random.Generator, fov: float) -> Tuple[int, float]:
    """A matrix size (multiple of 32, at most 512) and spacing in the clinical range that cover ``fov``."""
    target = rng.uniform(*TARGET_SPACING_MM)
    candidates = [
        m
        for m in range(MIN_MATRIX, MAX_MATRIX + 1, MATRIX_STEP)
        if IN_PLANE_SPACING_MM[0] <= fov / m <= IN_PLANE_SPACING_MM[1]
    ]
    if not candidates:
        matrix = MAX_MATRIX if fov / MAX_MATRIX > IN_PLANE_SPACING_MM[1] else MIN_MATRIX
        return matrix, float(np.clip(fov / matrix, *IN_PLANE_SPACING_MM))
    matrix = min(candidates, key=lambda m: abs(fov / m - target))
    return matrix, fov / matrix


def sample_acquisition(rng: np.random.Generator, kind: str, spine: Spine) -> Acquisition:
    """Draw the grid of one case: field of view around the visible vertebrae, resolution, slices, tilt."""
    if kind not in ACQUISITIONS:
        raise ValueError(f"acquisition must be one of {ACQUISITIONS}, got {kind!r}")
    z_low, z_high, y_centre = _visible_extent(rng, spine)
    fov = max(z_high - z_low, MIN_FOV_MM)
    z_centre = 0.5 * (z_low + z_high)
    y_centre += rng.uniform(*FIELD_CENTRE_BEHIND_BODY_MM)  # the back usually lies inside the field, the belly not
    widest = float(spine.half_width[list(spine.visible)].max())
    half_slab = widest + rng.uniform(*LATERAL_MARGIN_MM)

    if kind == "sagittal2d":
        matrix, spacing = _square_matrix(rng, fov)
        thickness = float(
            np.round(rng.uniform(*SLICE_THICKNESS_MM) / SLICE_THICKNESS_STEP_MM) * SLICE_THICKNESS_STEP_MM
        )
        slice_spacing = thickness * (1 + float(rng.choice(SLICE_GAP_FRACTIONS)))
        slices = int(np.clip(np.ceil(2 * half_slab / slice_spacing), MIN_SLICES, MAX_SLICES))
        sub_count = int(np.ceil(thickness / SUB_SLICE_MM)) | 1  # odd: one sub-slice sits on the voxel centre
        sub_offsets = tuple(float(v) for v in ((np.arange(sub_count) + 0.5) / sub_count - 0.5) * thickness)
        size = (matrix, matrix, slices)
        spacings = (spacing, spacing, slice_spacing)
    else:
        # 3D sequences use a rectangular field: as long as the spine, only as deep as the back needs.
        rows = int(np.ceil(fov / ISO_SPACING_MM))
        columns = int(np.ceil(min(fov, rng.uniform(*ISO_DEPTH_MM)) / ISO_SPACING_MM))
        slices = int(np.ceil(2 * half_slab / ISO_SPACING_MM))
        thickness = ISO_SPACING_MM
        sub_offsets = (0.0,)
        size = (columns, rows, slices)
        spacings = (ISO_SPACING_MM,) * 3

    # Midline between two slices or on one, and not exactly centred: patients are never perfectly aligned.
    x_centre = rng.uniform(-0.5, 0.5) * spacings[2] + rng.uniform(-3.0, 3.0)
    anatomy_origin = (
        x_centre + 0.5 * (size[2] - 1) * spacings[2],
        y_centre - 0.5 * (size[0] - 1) * spacings[0],
        z_centre + 0.5 * (size[1] - 1) * spacings[1],
    )
    tilt = rng.uniform(-1, 1, size=3) * np.array(TILT_DEG)
    translation = rng.uniform(-1, 1, size=3) * np.array(TABLE_OFFSET_MM)
    return Acquisition(
        kind=kind,
        size=tuple(int(v) for v in size),
        spacing=tuple(float(v) for v in spacings),
        slice_thickness=float(thickness),
        sub_offsets=sub_offsets,
        anatomy_origin=tuple(float(v) for v in anatomy_origin),
        rotation=tuple(float(v) for v in _rotation(tilt).ravel()),
        translation=tuple(float(v) for v in translation),
        tilt_deg=tuple(float(v) for v in tilt),
    )
