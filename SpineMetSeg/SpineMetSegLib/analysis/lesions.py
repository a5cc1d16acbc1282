"""Per-lesion measures for ablation planning: size, shape, position, host vertebra, relation to the spinal canal.

Every lesion (a 26-connected component of one label) gets:

- ``volume_ml``; ``largest_diameter_mm``: the largest distance between the centres of two of its surface voxels
  (so a lesion measures up to about one voxel less than its outer extent; a 10 mm sphere measures ~10 mm);
- ``principal_axes_mm``: the full axis lengths of the ellipsoid with the lesion's second moments (each voxel
  counted as a small box), longest first;
- ``centroid_lps`` / ``centroid_ras`` in mm, and the bounding box in image indices (i, j, k) and mm;
- with anatomy labels: ``host_vertebra``, the vertebral body it touches most (a 6-connected vertebral-body
  component, numbered 1, 2, ... from the most superior body in the image; not an anatomical level such as L2;
  None for a lesion that touches no body, e.g. one confined to a pedicle);
  ``distance_to_canal_mm``, the gap between the lesion and the canal: the smallest distance between the
  outer faces of a lesion voxel and a canal voxel (voxels as boxes), i.e. the thickness of what lies between
  them; 0 exactly when a lesion voxel overlaps or touches (shares a face, edge or corner with) a canal voxel;
  ``extends_into_canal``, True exactly when that distance is 0 (the lesion reaches the canal);
  ``reaches_posterior_wall``, lesion voxels within one voxel of the part of the host body's surface that faces
  the canal (its surface voxels within ``POSTERIOR_WALL_BAND_MM`` of the surface's closest approach to the
  canal);
- the flags ``large`` (largest diameter above ``LARGE_LESION_DIAMETER_MM``) and ``near_canal`` (closer than
  ``CANAL_PROXIMITY_MM``). They are measurements for information, never a treatment recommendation.

Anatomy comes from a label map on the lesion map's grid (resampled, nearest neighbour, when it is not) in one
of two conventions, detected from its values or named with ``body_labels``/``canal_labels``: the model output
(``labels.ModelLabel``: 2 vertebral body, 3 spinal canal) or the phantom's tissue map (``labels.Anatomy``).
In a model output the lesion label replaces the tissue underneath, so a lesion that grew into the canal shows as
lesion voxels next to canal voxels: it touches the canal, distance 0. A model output passed as ``mask`` without
``anatomy`` is its own anatomy map.

Usage::

    from SpineMetSegLib.images import imageio
    from SpineMetSegLib.analysis import lesions
    found = lesions.measure_lesions(imageio.read_image("seg.nii.gz"))               # model output: 1, 2, 3
    found = lesions.measure_lesions(lesion_map, anatomy_map, label=1)              # phantom files
    lesions.write_lesion_csv(found, "lesions.csv")
    for row in lesions.lesion_rows(found): print(row["id"], row["volume_ml"], row["host_vertebra"])
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial import ConvexHull, cKDTree
from scipy.spatial.distance import pdist

from ..errors import ImageError
from ..images import imageio
from ..images.atomicfile import PathLike, write_csv_atomic
from ..images.labelmaps import label_array, label_values
from ..images.voxelgrid import VoxelGrid, box_origin, foreground_box
from ..labels import SPINAL_CANAL_TISSUES, VERTEBRAL_BODY_TISSUES, ModelLabel
from .lesion_matching import CONNECTIVITY_26, connected_lesions
from .surface_distance import surface_mask

LARGE_LESION_DIAMETER_MM = 30.0
CANAL_PROXIMITY_MM = 10.0
# The body's surface facing the canal: within this of the surface's closest approach to the canal. With 2 mm the
# flag agreed with the phantom's own "reaches_posterior_wall" for 39 of 40 lesions (seeds 1-14, both conventions).
POSTERIOR_WALL_BAND_MM = 2.0
# Smaller vertebral-body components are stray voxels, not a vertebra.
MIN_VERTEBRAL_BODY_ML = 0.5
# A solid of uniform density: an ellipsoid of semi-axis a has variance a**2 / 5 along that axis.
ELLIPSOID_VARIANCE_FACTOR = 5.0
# A voxel as a uniform box of side s has variance s**2 / 12 along that side.
BOX_VARIANCE_FACTOR = 12.0
INFORMATIONAL_NOTE = (
    f"The flags 'larger than {LARGE_LESION_DIAMETER_MM:g} mm' and 'closer than {CANAL_PROXIMITY_MM:g} mm to the "
    "canal' are measurements for information only, not a treatment recommendation."
)
FACE_CONNECTIVITY = ndimage.generate_binary_structure(3, 1)


@dataclass(frozen=True)
class AnatomyLabels:
    """Which anatomy label values form the vertebral bodies and the spinal canal."""

    body: Tuple[int, ...]
    canal: Tuple[int, ...]


MODEL_ANATOMY = AnatomyLabels((int(ModelLabel.VERTEBRAL_BODY),), (int(ModelLabel.SPINAL_CANAL),))
PHANTOM_ANATOMY = AnatomyLabels(
    tuple(int(t) for t in VERTEBRAL_BODY_TISSUES), tuple(int(t) for t in SPINAL_CANAL_TISSUES)
)


MODEL_ANATOMY_VALUES = set(MODEL_ANATOMY.body + MODEL_ANATOMY.canal)


def detect_anatomy_labels(values: Iterable[int]) -> AnatomyLabels:
    """The model-output convention when every value is a ``ModelLabel``, else the phantom's tissue classes."""
    if set(values) <= {int(v) for v in ModelLabel}:
        return MODEL_ANATOMY
    return PHANTOM_ANATOMY


@dataclass(frozen=True)
class Lesion:
    """The measures of one lesion. Anatomy-dependent fields are None where no anatomy (or no canal) was given."""

    id: int  # 1, 2, ... from the most superior lesion
    voxel_count: int
    volume_ml: float
    largest_diameter_mm: float
    principal_axes_mm: Tuple[float, float, float]
    centroid_lps: Tuple[float, float, float]
    centroid_ras: Tuple[float, float, float]
    bbox_index_min: Tuple[int, int, int]  # image index (i, j, k), inclusive
    bbox_index_max: Tuple[int, int, int]
    bbox_size_mm: Tuple[float, float, float]  # outer extent along the image axes i, j, k
    host_vertebra: Optional[int]
    distance_to_canal_mm: Optional[float]
    reaches_posterior_wall: Optional[bool]
    extends_into_canal: Optional[bool]

    @property
    def large(self) -> bool:
        return self.largest_diameter_mm > LARGE_LESION_DIAMETER_MM

    @property
    def near_canal(self) -> Optional[bool]:
        return None if self.distance_to_canal_mm is None else self.distance_to_canal_mm < CANAL_PROXIMITY_MM


class _Anatomy:
    """Vertebral bodies and canal of an anatomy map, prepared once for all lesions of a mask."""

    def __init__(self, array: np.ndarray, labels: AnatomyLabels, grid: VoxelGrid):
        self.array = array
        self.grid = grid
        body = np.isin(array, labels.body)
        self.bodies, self.body_boxes = _numbered_bodies(body, grid)
        self.canal = np.isin(array, labels.canal)
        box = foreground_box(self.canal, margin=1)
        if box is None:
            self.canal_indices = np.zeros((0, 3), dtype=int)
            self.canal_tree = None
        else:
            # The nearest canal voxel to anything outside the canal is a surface voxel: they suffice.
            self.canal_indices = np.argwhere(surface_mask(self.canal[box])) + box_origin(box)
            self.canal_tree = cKDTree(grid.millimetre_offsets(self.canal_indices))

    @property
    def has_bodies(self) -> bool:
        return len(self.body_boxes) > 0

    def gap_to_canal(self, indices: np.ndarray) -> float:
        """The smallest face-to-face distance (mm) between the voxels ``indices`` and a canal voxel; 0 when one of
        them overlaps or touches the canal (26-neighbours)."""
        if self.canal[tuple(indices.T)].any():
            return 0.0
        spacing = self.grid.array_spacing
        points_mm = self.grid.millimetre_offsets(indices)
        centre_distances = self.canal_tree.query(points_mm, k=1)[0]
        # Along each axis the gap between two voxels is one voxel less than between their centres, so the gap is at
        # least the centre distance minus one voxel diagonal: only pairs closer than the nearest centres plus that
        # diagonal can hold the smallest gap (which is at most the nearest centres' distance).
        reach = float(centre_distances.min()) + float(np.linalg.norm(spacing)) + 1e-9
        near = centre_distances <= reach
        best = np.inf
        for point, index in zip(points_mm[near], indices[near]):
            candidates = self.canal_tree.query_ball_point(point, reach)
            steps = np.abs(self.canal_indices[candidates] - index)
            gaps = np.clip(steps - 1, 0, None) * spacing
            best = min(best, float(np.sqrt((gaps**2).sum(axis=1)).min()))
        return best

    def distance_to_canal(self, points_mm: np.ndarray, indices: np.ndarray) -> np.ndarray:
        """Distance in mm from each voxel (``indices`` and their mm offsets) to the canal; 0 inside it."""
        distances = self.canal_tree.query(points_mm, k=1)[0]
        distances[self.canal[tuple(indices.T)]] = 0.0
        return distances


def _numbered_bodies(body: np.ndarray, grid: VoxelGrid) -> Tuple[np.ndarray, List[Tuple[slice, ...]]]:
    """Vertebral-body components numbered 1.. from superior (LPS +z), stray bits removed, and their boxes."""
    components, count = ndimage.label(body, structure=FACE_CONNECTIVITY)
    if count == 0:
        return components, []
    sizes = np.bincount(components.ravel(), minlength=count + 1)
    keep = np.flatnonzero(sizes * grid.voxel_volume_ml >= MIN_VERTEBRAL_BODY_ML)
    keep = keep[keep > 0]
    if keep.size == 0:
        return np.zeros_like(components), []
    centres = np.array(ndimage.center_of_mass(body, components, keep)).reshape(-1, 3)
    superior = grid.physical_points(centres)[:, 2]
    order = keep[np.argsort(-superior, kind="stable")]
    renumber = np.zeros(count + 1, dtype=components.dtype)
    renumber[order] = np.arange(1, order.size + 1)
    numbered = renumber[components]
    boxes = ndimage.find_objects(numbered)
    return numbered, list(boxes)


def measure_lesions(
    mask: sitk.Image,
    anatomy: Optional[sitk.Image] = None,
    *,
    label: int = 1,
    body_labels: Optional[Sequence[int]] = None,
    canal_labels: Optional[Sequence[int]] = None,
) -> List[Lesion]:
    """Measure every 26-connected component of ``mask == label`` (see the module docstring).

    ``anatomy`` None: a model output (holding vertebral-body or canal labels besides ``label``) serves as its own
    anatomy; otherwise the anatomy fields are None. ``body_labels``/``canal_labels`` name the anatomy values
    explicitly; by default the convention is detected from the values present.
    """
    if label <= 0:
        raise ImageError(f"The lesion label must be a positive value (0 is the background), got {label}.")
    imageio.check_3d(mask, "lesion map")
    grid = VoxelGrid.of(mask)
    array = label_array(mask, "lesion map")
    lesion_labels, count = connected_lesions(array == label)
    anatomy_context = _anatomy_for(mask, array, anatomy, label, grid, body_labels, canal_labels)
    measured = [
        _measure_one(lesion_labels, index + 1, box, grid, anatomy_context)
        for index, box in enumerate(ndimage.find_objects(lesion_labels))
    ]
    measured.sort(key=lambda lesion: -lesion.centroid_lps[2])
    return [dataclasses.replace(lesion, id=number) for number, lesion in enumerate(measured, start=1)]


def _anatomy_for(
    mask: sitk.Image,
    mask_array: np.ndarray,
    anatomy: Optional[sitk.Image],
    label: int,
    grid: VoxelGrid,
    body_labels: Optional[Sequence[int]],
    canal_labels: Optional[Sequence[int]],
) -> Optional[_Anatomy]:
    if anatomy is not None:
        imageio.check_3d(anatomy, "anatomy map")
        anatomy_array = label_array(imageio.resample_to(anatomy, mask, nearest=True), "anatomy map")
    elif body_labels or canal_labels or label_values(mask_array) & MODEL_ANATOMY_VALUES - {label}:
        anatomy_array = mask_array
    else:
        return None
    detected = detect_anatomy_labels(label_values(anatomy_array))
    labels = AnatomyLabels(
        tuple(int(v) for v in body_labels) if body_labels else detected.body,
        tuple(int(v) for v in canal_labels) if canal_labels else detected.canal,
    )
    return _Anatomy(anatomy_array, labels, grid)


def _measure_one(
    lesion_labels: np.ndarray,
    number: int,
    box: Tuple[slice, ...],
    grid: VoxelGrid,
    anatomy: Optional[_Anatomy],
) -> Lesion:
    crop = _widened(box, 1, lesion_labels.shape)
    origin = box_origin(crop)
    local = lesion_labels[crop] == number
    indices = np.argwhere(local) + origin
    points_mm = grid.millimetre_offsets(indices)
    surface_indices = np.argwhere(surface_mask(local)) + origin
    surface_mm = grid.millimetre_offsets(surface_indices)
    centroid = grid.physical_points(indices.mean(axis=0, keepdims=True))[0]
    low = np.array([s.start for s in box])[::-1]
    high = np.array([s.stop - 1 for s in box])[::-1]
    host = distance = wall = into_canal = None
    if anatomy is not None:
        host = _host_vertebra(local, crop, anatomy)
        if anatomy.canal_tree is not None:
            # Overlap needs all voxels (phantom convention: a lesion keeps the canal label below it); a gap from
            # outside is smallest at a surface voxel.
            distance = 0.0 if anatomy.canal[crop][local].any() else anatomy.gap_to_canal(surface_indices)
            into_canal = distance == 0.0
            if anatomy.has_bodies:
                wall = host is not None and _reaches_posterior_wall(local, crop, host, anatomy)
    return Lesion(
        id=number,
        voxel_count=int(indices.shape[0]),
        volume_ml=float(indices.shape[0] * grid.voxel_volume_ml),
        largest_diameter_mm=_largest_distance(surface_mm),
        principal_axes_mm=_principal_axes(points_mm, grid),
        centroid_lps=tuple(float(c) for c in centroid),
        centroid_ras=(float(-centroid[0]), float(-centroid[1]), float(centroid[2])),
        bbox_index_min=tuple(int(v) for v in low),
        bbox_index_max=tuple(int(v) for v in high),
        bbox_size_mm=tuple(float(v) for v in (high - low + 1) * np.array(grid.spacing_ijk)),
        host_vertebra=host,
        distance_to_canal_mm=distance,
        reaches_posterior_wall=wall,
        extends_into_canal=into_canal,
    )


def _widened(box: Tuple[slice, ...], margin: int, shape: Sequence[int]) -> Tuple[slice, ...]:
    return tuple(slice(max(s.start - margin, 0), min(s.stop + margin, n)) for s, n in zip(box, shape))


def _largest_distance(points: np.ndarray) -> float:
    """The largest distance between two of ``points``: only convex-hull vertices can be its ends."""
    if len(points) < 2:
        return 0.0
    if len(points) > 4:
        # "QJ" joggles flat (coplanar) point sets so qhull always succeeds; the vertices index the exact points.
        points = points[ConvexHull(points, qhull_options="QJ").vertices]
    return float(pdist(points).max())


def _principal_axes(points_mm: np.ndarray, grid: VoxelGrid) -> Tuple[float, float, float]:
    """Full axis lengths (mm) of the ellipsoid with the same second moments as the lesion, longest first."""
    centred = points_mm - points_mm.mean(axis=0)
    covariance = centred.T @ centred / len(points_mm)
    covariance += np.diag(grid.array_spacing**2 / BOX_VARIANCE_FACTOR)
    variances = np.clip(np.linalg.eigvalsh(covariance), 0.0, None)[::-1]
    return tuple(float(2.0 * np.sqrt(ELLIPSOID_VARIANCE_FACTOR * v)) for v in variances)


def _host_vertebra(local: np.ndarray, crop: Tuple[slice, ...], anatomy: _Anatomy) -> Optional[int]:
    """The numbered vertebral body the lesion (grown by one voxel) overlaps most; None when it touches none."""
    # Grown by one voxel: in a model output the lesion label replaced the body label it sits in.
    grown = ndimage.binary_dilation(local, structure=CONNECTIVITY_26)
    touched = anatomy.bodies[crop][grown]
    touched = touched[touched > 0]
    if touched.size == 0:
        return None
    return int(np.argmax(np.bincount(touched)))


def _reaches_posterior_wall(local: np.ndarray, crop: Tuple[slice, ...], host: int, anatomy: _Anatomy) -> bool:
    """Whether lesion voxels lie within one voxel of the host body's surface that faces the canal."""
    body_box = anatomy.body_boxes[host - 1]
    region = tuple(
        slice(min(a.start, b.start), max(a.stop, b.stop))
        for a, b in zip(_widened(body_box, 1, anatomy.canal.shape), crop)
    )
    origin = box_origin(region)
    lesion = np.zeros(tuple(s.stop - s.start for s in region), dtype=bool)
    lesion[tuple(slice(c.start - o, c.stop - o) for c, o in zip(crop, origin))] = local
    # The lesion belongs to the body's outline: in a model output it replaced the body voxels it sits in.
    body = (anatomy.bodies[region] == host) | lesion
    surface_indices = np.argwhere(surface_mask(body)) + origin
    distances = anatomy.distance_to_canal(anatomy.grid.millimetre_offsets(surface_indices), surface_indices)
    facing = surface_indices[distances <= distances.min() + POSTERIOR_WALL_BAND_MM] - origin
    wall = np.zeros_like(body)
    wall[tuple(facing.T)] = True
    return bool((ndimage.binary_dilation(lesion, structure=CONNECTIVITY_26) & wall).any())


LESION_COLUMNS = (
    "id",
    "volume_ml",
    "voxel_count",
    "largest_diameter_mm",
    "axis_1_mm",
    "axis_2_mm",
    "axis_3_mm",
    "centroid_r_mm",
    "centroid_a_mm",
    "centroid_s_mm",
    "centroid_l_mm",
    "centroid_p_mm",
    "bbox_min_i",
    "bbox_min_j",
    "bbox_min_k",
    "bbox_max_i",
    "bbox_max_j",
    "bbox_max_k",
    "bbox_size_i_mm",
    "bbox_size_j_mm",
    "bbox_size_k_mm",
    "host_vertebra",
    "distance_to_canal_mm",
    "reaches_posterior_wall",
    "extends_into_canal",
    f"larger_than_{LARGE_LESION_DIAMETER_MM:g}_mm",
    f"closer_than_{CANAL_PROXIMITY_MM:g}_mm_to_canal",
)


def lesion_rows(found: Sequence[Lesion]) -> List[Dict[str, Any]]:
    """One dict per lesion with the columns ``LESION_COLUMNS`` (a stable order for CSV files and tables).

    Centroids: RAS (``centroid_r/a/s_mm``, Slicer's convention) and LPS (``centroid_l/p_mm``; S is shared).
    """
    rows = []
    for lesion in found:
        values = [
            lesion.id,
            lesion.volume_ml,
            lesion.voxel_count,
            lesion.largest_diameter_mm,
            *lesion.principal_axes_mm,
            *lesion.centroid_ras,
            lesion.centroid_lps[0],
            lesion.centroid_lps[1],
            *lesion.bbox_index_min,
            *lesion.bbox_index_max,
            *lesion.bbox_size_mm,
            lesion.host_vertebra,
            lesion.distance_to_canal_mm,
            lesion.reaches_posterior_wall,
            lesion.extends_into_canal,
            lesion.large,
            lesion.near_canal,
        ]
        rows.append(dict(zip(LESION_COLUMNS, values)))
    return rows


def write_lesion_csv(found: Sequence[Lesion], path: PathLike) -> None:
    """Write the per-lesion table (``LESION_COLUMNS``) to ``path`` atomically."""
    write_csv_atomic(path, lesion_rows(found), LESION_COLUMNS)
