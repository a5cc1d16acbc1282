"""How a set of ablation zones relates to one lesion, the vertebral body and the spinal canal.

For a lesion and zones (one per probe, combined as their union):

- ``coverage``: the share of the lesion's voxels inside the zone (0..1); ``uncovered_volume_ml`` the rest, and
  ``uncovered_centre_ras`` the centre of the uncovered voxels;
- ``margin_mm``: the smallest distance from a lesion voxel to the zone surface, positive when every lesion voxel is
  inside (the thinnest layer of ablated tissue around the lesion), negative when the lesion sticks out (by how
  much); ``margin_location_ras`` is the lesion voxel where it is reached;
- ``zone_to_canal_mm``: the smallest distance from the zone surface to a canal voxel, 0 when the zone reaches the
  canal; ``canal_in_zone_ml`` the canal volume inside the zone; ``canal_location_ras`` the nearest canal voxel;
- ``shaft_to_canal_mm``: the smallest distance from a canal voxel to a probe (tip and the line behind it);
- ``tip_depth_in_body_mm``: for each probe, how deep its tip lies inside the vertebral body (negative: outside);
- ``body_in_zone_ml``: vertebral body (lesions included) inside the zone; ``zone_outside_body_share``: the share of
  the zone's voxels outside it (both None without vertebral-body labels); ``zone_leaves_image``: part of the zone
  lies outside the image (that part is not counted);
- ``limits``: ``margin_ok`` (margin >= the chosen margin), ``canal_ok`` (zone-to-canal >= the chosen clearance),
  ``shaft_ok`` (every probe's line passes the canal by at least the chosen shaft clearance), ``tips_ok`` (every
  tip inside the vertebral body).

Voxels count by their centres (see ``anatomy``), so with several probes a margin inside overlapping zones can be
reported smaller than it is (see ``zone.ZoneUnion``), never larger.

Usage::

    result = evaluate_plan(anatomy, lesion=1, zones=[zone], margin_mm=5, canal_clearance_mm=5)
    result.coverage, result.margin_mm, result.as_dict()
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np

from .anatomy import PlanAnatomy
from .limits import DEFAULT_CANAL_CLEARANCE_MM, DEFAULT_MARGIN_MM, DEFAULT_SHAFT_CLEARANCE_MM
from .zone import Zone, ZoneUnion

PLANNING_NOTE = (
    "Planning support only: the zone is a model of the device table's numbers; real ablation zones vary with the "
    "tissue, the bone, nearby vessels and the device settings. Check every number against the device's instructions."
)


@dataclass(frozen=True)
class PlanResult:
    lesion: int
    lesion_volume_ml: float
    coverage: float
    uncovered_volume_ml: float
    uncovered_centre_ras: Optional[List[float]]
    margin_mm: float
    margin_location_ras: List[float]
    zone_to_canal_mm: Optional[float]
    canal_in_zone_ml: Optional[float]
    canal_location_ras: Optional[List[float]]
    shaft_to_canal_mm: Optional[float]
    tip_depth_in_body_mm: Optional[List[float]]
    body_in_zone_ml: Optional[float]
    zone_outside_body_share: Optional[float]
    zone_voxels_ml: float
    zone_leaves_image: bool
    required_margin_mm: float
    required_canal_clearance_mm: float
    required_shaft_clearance_mm: float
    zones: List[Dict]

    @property
    def margin_ok(self) -> bool:
        return self.margin_mm >= self.required_margin_mm

    @property
    def canal_ok(self) -> Optional[bool]:
        return None if self.zone_to_canal_mm is None else self.zone_to_canal_mm >= self.required_canal_clearance_mm

    @property
    def shaft_ok(self) -> Optional[bool]:
        return None if self.shaft_to_canal_mm is None else self.shaft_to_canal_mm >= self.required_shaft_clearance_mm

    @property
    def tips_ok(self) -> Optional[bool]:
        return None if self.tip_depth_in_body_mm is None else all(
            d is not None and d > 0.0 for d in self.tip_depth_in_body_mm)

    @property
    def fully_covered(self) -> bool:
        return self.coverage >= 1.0

    @property
    def limits_met(self) -> bool:
        return (self.margin_ok and self.canal_ok is not False and self.shaft_ok is not False
                and self.tips_ok is not False)

    def as_dict(self) -> dict:
        values = {key: getattr(self, key) for key in self.__dataclass_fields__}
        values["limits"] = {"margin_ok": self.margin_ok, "canal_ok": self.canal_ok, "shaft_ok": self.shaft_ok,
                            "tips_ok": self.tips_ok,
                            "fully_covered": self.fully_covered, "all_met": self.limits_met}
        return values


def evaluate_plan(
    anatomy: PlanAnatomy,
    lesion: int,
    zones: Sequence[Zone],
    *,
    margin_mm: float = DEFAULT_MARGIN_MM,
    canal_clearance_mm: float = DEFAULT_CANAL_CLEARANCE_MM,
    shaft_clearance_mm: float = DEFAULT_SHAFT_CLEARANCE_MM,
) -> PlanResult:
    """Measure ``zones`` (one per probe) against lesion number ``lesion`` of ``anatomy`` (see the module docstring)."""
    union = ZoneUnion(zones)
    voxel_ml = anatomy.grid.voxel_volume_ml
    points = anatomy.lesion_points(lesion)
    inside = union.contains(points)
    depth = -union.signed_distance(points)
    worst = int(np.argmin(depth))
    uncovered = points[~inside]

    canal_distance = canal_in_zone = canal_location = shaft_distance = None
    if anatomy.has_canal:
        canal_all = anatomy.canal_points()
        canal_inside = union.contains(canal_all)
        canal_in_zone = float(canal_inside.sum() * voxel_ml)
        surface = anatomy.canal_surface_points()
        distances = union.signed_distance(surface)
        nearest = int(np.argmin(distances))
        canal_location = [float(v) for v in surface[nearest]]
        canal_distance = 0.0 if canal_inside.any() else max(0.0, float(distances[nearest]))
        shaft_distance = min(_distance_to_ray(surface, zone.tip, -zone.direction) for zone in union.zones)
        if canal_inside.any():
            canal_location = [float(v) for v in canal_all[np.argmax(canal_inside)]]

    tip_depths = None
    if anatomy.has_body:
        depths = anatomy.body_depth(np.array([zone.tip for zone in union.zones]))
        tip_depths = [float(d) if np.isfinite(d) else None for d in depths]
    body_ml, outside_share, zone_ml, leaves = _zone_contents(anatomy, union)
    return PlanResult(
        lesion=lesion,
        lesion_volume_ml=float(len(points) * voxel_ml),
        coverage=float(inside.mean()),
        uncovered_volume_ml=float(len(uncovered) * voxel_ml),
        uncovered_centre_ras=[float(v) for v in uncovered.mean(axis=0)] if len(uncovered) else None,
        margin_mm=float(depth[worst]),
        margin_location_ras=[float(v) for v in points[worst]],
        zone_to_canal_mm=canal_distance,
        canal_in_zone_ml=canal_in_zone,
        canal_location_ras=canal_location,
        shaft_to_canal_mm=shaft_distance,
        tip_depth_in_body_mm=tip_depths,
        body_in_zone_ml=body_ml,
        zone_outside_body_share=outside_share,
        zone_voxels_ml=zone_ml,
        zone_leaves_image=leaves,
        required_margin_mm=float(margin_mm),
        required_canal_clearance_mm=float(canal_clearance_mm),
        required_shaft_clearance_mm=float(shaft_clearance_mm),
        zones=[zone.as_dict() for zone in union.zones],
    )


def _distance_to_ray(points: np.ndarray, origin: np.ndarray, direction: np.ndarray) -> float:
    """Smallest distance from ``points`` to the ray from ``origin`` along the unit ``direction``."""
    if len(points) == 0:
        return float("inf")
    offsets = points - origin
    along = np.clip(offsets @ direction, 0.0, None)
    return float(np.linalg.norm(offsets - np.outer(along, direction), axis=1).min())


def _zone_contents(anatomy: PlanAnatomy, union: ZoneUnion):
    """Body volume in the zone, the zone's share outside the body, its voxel volume, whether it leaves the image."""
    low, high = union.bounds_ras()
    box, _ = anatomy.index_box_of(low, high)
    leaves = not bool(anatomy.inside_image(union.surface_points()).all())
    if box is None:
        return (0.0 if anatomy.has_body else None), None, 0.0, True
    indices = np.indices(tuple(s.stop - s.start for s in box)).reshape(3, -1).T + np.array([s.start for s in box])
    inside = union.contains(anatomy.points_ras(indices))
    count = int(inside.sum())
    in_body = int(anatomy.body[tuple(indices[inside].T)].sum())
    voxel_ml = anatomy.grid.voxel_volume_ml
    if not anatomy.has_body:
        return None, None, count * voxel_ml, leaves
    outside_share = None if count == 0 else 1.0 - in_body / count
    return in_body * voxel_ml, outside_share, count * voxel_ml, leaves
