"""A first probe placement for one lesion: a start for the planner, never a recommendation.

For each device of the table, smallest zone first, and each probe direction within a cone around
``cone_axis_ras`` (default: anterior, +A, so the probe enters from behind as in a transpedicular approach), the
search places the zone to maximise its *slack*, the smallest of

- margin - chosen margin (the thinnest ablated layer around the lesion beyond the margin asked for),
- zone-to-canal distance - chosen canal clearance,
- probe-to-canal distance - chosen shaft clearance (the probe's line behind the tip must not cross the canal),
- the tip's depth inside the vertebral body (the tip must not leave the bone; where the map has a body).

A slack >= 0 meets every limit. The first device (smallest zone) with such a placement is proposed, in its
direction of largest slack. When no device reaches it, the placement with the largest slack found is returned as
the best it can do, with what stays uncovered (``feasible`` False). The zone's centre starts at the centre of the
smallest zone-shaped ellipsoid around the lesion (a smallest enclosing ball in coordinates scaled by the zone's
semi-axes) and is refined by Nelder-Mead on the slack. A lesion's surface voxels decide its margin: a zone is convex,
so the lesion's deepest-outside or shallowest-inside point lies on the lesion's surface.

Usage::

    proposal = propose(anatomy, lesion=1, devices=load_devices())
    proposal.feasible, proposal.zone.tip, proposal.result.coverage, proposal.as_dict()
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence

import numpy as np
from scipy.optimize import minimize

from ...errors import SpineMetSegError
from .anatomy import PlanAnatomy
from .device_table import AblationDevice
from .evaluation import PlanResult, evaluate_plan
from .limits import (
    ANTERIOR_RAS,
    DEFAULT_CANAL_CLEARANCE_MM,
    DEFAULT_CONE_HALF_ANGLE_DEG,
    DEFAULT_MARGIN_MM,
    DEFAULT_SHAFT_CLEARANCE_MM,
)
from .zone import Zone, perpendicular_axes, unit_vector

# Directions: the cone's axis and rings of 6, 12, 18 directions at 1/3, 2/3 and all of the half-angle.
CONE_RINGS = 3
DIRECTIONS_PER_RING = 6
# Directions whose starting placement looks best get the (costlier) refinement.
REFINED_DIRECTIONS = 6
REFINEMENT_EVALUATIONS = 120
REFINEMENT_STEP_MM = 2.0
# Enough surface points to place a zone; the final evaluation uses every voxel.
SEARCH_POINTS = 600
# A tip outside the image counts as this far outside the body (a finite number keeps Nelder-Mead well defined).
OUTSIDE_IMAGE_DEPTH_MM = 1000.0
ENCLOSING_BALL_ITERATIONS = 200
PROPOSAL_NOTE = (
    "A proposal to start from, never a recommendation: check the path, the structures it crosses and every number."
)


@dataclass
class Proposal:
    feasible: bool
    device: AblationDevice
    zone: Zone
    result: PlanResult
    slack_mm: float
    searched: int  # placements evaluated
    tried_devices: List[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "feasible": self.feasible,
            "device": self.device.as_dict(),
            "probe": self.zone.as_dict(),
            "slack_mm": self.slack_mm,
            "placements_evaluated": self.searched,
            "devices_tried": self.tried_devices,
            "note": PROPOSAL_NOTE,
        }


def cone_directions(axis: Sequence[float], half_angle_deg: float) -> np.ndarray:
    """Unit directions: the axis, then rings around it out to ``half_angle_deg``."""
    axis = unit_vector(axis, "cone axis")
    first, second = perpendicular_axes(axis)
    directions = [axis]
    for ring in range(1, CONE_RINGS + 1):
        tilt = math.radians(half_angle_deg) * ring / CONE_RINGS
        count = DIRECTIONS_PER_RING * ring
        for step in range(count):
            turn = 2 * math.pi * step / count
            directions.append(math.cos(tilt) * axis
                              + math.sin(tilt) * (math.cos(turn) * first + math.sin(turn) * second))
    return np.array(directions)


class _Search:
    """The slack of a zone placement, on a subsample of lesion surface points and the canal nearby."""

    def __init__(self, anatomy: PlanAnatomy, lesion: int, margin: float, canal_clearance: float,
                 shaft_clearance: float):
        surface = anatomy.lesion_surface_points(lesion)
        step = max(1, len(surface) // SEARCH_POINTS)
        self.points = surface[::step]
        self.centroid = anatomy.lesion_points(lesion).mean(axis=0)
        self.extent = float(np.linalg.norm(surface - self.centroid, axis=1).max()) if len(surface) else 0.0
        self.canal = anatomy.canal_surface_points() if anatomy.has_canal else np.zeros((0, 3))
        self.anatomy = anatomy if anatomy.has_body else None
        self.margin = margin
        self.canal_clearance = canal_clearance
        self.shaft_clearance = shaft_clearance
        self.evaluations = 0

    def near_canal(self, device: AblationDevice) -> np.ndarray:
        reach = self.extent + max(device.zone_length_mm, device.zone_diameter_mm) + self.canal_clearance
        return self.canal[np.linalg.norm(self.canal - self.centroid, axis=1) <= reach + device.tip_to_zone_centre_mm]

    def slack(self, zone: Zone, canal: np.ndarray) -> float:
        self.evaluations += 1
        value = -zone.extreme_signed_distance(self.points, largest=True) - self.margin
        if len(canal):
            nearest = zone.extreme_signed_distance(canal, bound=value + self.canal_clearance)
            value = min(value, nearest - self.canal_clearance)
            offsets = canal - zone.tip
            along = np.clip(offsets @ -zone.direction, 0.0, None)
            shaft = float(np.linalg.norm(offsets + np.outer(along, zone.direction), axis=1).min())
            value = min(value, shaft - self.shaft_clearance)
        if self.anatomy is not None:
            depth = float(self.anatomy.body_depth(zone.tip[None, :])[0])
            value = min(value, max(depth, -OUTSIDE_IMAGE_DEPTH_MM))
        return value

    def enclosing_centre(self, device: AblationDevice, direction: np.ndarray) -> np.ndarray:
        """The centre of the smallest zone-shaped ellipsoid (this direction) around the points, approximately."""
        first, second = perpendicular_axes(direction)
        scale = np.array([device.zone_length_mm, device.zone_diameter_mm, device.zone_diameter_mm]) / 2.0
        basis = np.stack([direction, first, second])
        scaled = ((self.points - self.centroid) @ basis.T) / scale
        centre = np.zeros(3)
        # Badoiu-Clarkson: step towards the farthest point by 1/(i+1); converges to the smallest enclosing ball.
        for iteration in range(1, ENCLOSING_BALL_ITERATIONS + 1):
            farthest = scaled[int(np.argmax(np.linalg.norm(scaled - centre, axis=1)))]
            centre = centre + (farthest - centre) / (iteration + 1)
        return self.centroid + (centre * scale) @ basis

    def refine(self, device: AblationDevice, direction: np.ndarray, centre: np.ndarray, canal: np.ndarray,
               evaluations: int):
        def negative_slack(candidate):
            return -self.slack(Zone.from_centre(device, candidate, direction), canal)

        simplex = np.vstack([centre, centre + np.eye(3) * REFINEMENT_STEP_MM])
        found = minimize(negative_slack, centre, method="Nelder-Mead",
                         options={"maxfev": evaluations, "initial_simplex": simplex, "xatol": 0.05,
                                  "fatol": 0.01})
        return np.asarray(found.x), -float(found.fun)


def propose(
    anatomy: PlanAnatomy,
    lesion: int,
    devices: Sequence[AblationDevice],
    *,
    margin_mm: float = DEFAULT_MARGIN_MM,
    canal_clearance_mm: float = DEFAULT_CANAL_CLEARANCE_MM,
    shaft_clearance_mm: float = DEFAULT_SHAFT_CLEARANCE_MM,
    cone_axis_ras: Sequence[float] = ANTERIOR_RAS,
    cone_half_angle_deg: float = DEFAULT_CONE_HALF_ANGLE_DEG,
    progress: Optional[Callable[[str, float, str], None]] = None,
    refined_directions: int = REFINED_DIRECTIONS,
    refinement_evaluations: int = REFINEMENT_EVALUATIONS,
) -> Proposal:
    """The smallest device and a placement meeting the limits, or the best placement found (see the docstring).

    ``refined_directions`` and ``refinement_evaluations`` set the search effort (benchmarks/plan_speed.py compares
    the defaults with a denser search).
    """
    if not devices:
        raise SpineMetSegError("The device table is empty: add at least one ablation device.")
    if not 0.0 <= cone_half_angle_deg <= 90.0:
        raise SpineMetSegError(f"The cone half-angle must be between 0 and 90 degrees, got {cone_half_angle_deg:g}.")
    anatomy.check_lesion(lesion)
    search = _Search(anatomy, lesion, margin_mm, canal_clearance_mm, shaft_clearance_mm)
    if search.anatomy is not None:
        # Measure the body's depth once over every place a tip can go, not box by box as the search moves.
        reach = search.extent + max(max(d.zone_length_mm, d.tip_to_zone_centre_mm) for d in devices)
        search.anatomy.body_depth(np.stack([search.centroid - reach, search.centroid + reach]))
    directions = cone_directions(cone_axis_ras, cone_half_angle_deg)
    ordered = sorted(devices, key=lambda device: (device.zone_volume_ml, device.name))
    best = None  # (slack, device, zone)
    tried = []
    for number, device in enumerate(ordered):
        if progress is not None:
            progress("plan", 100.0 * number / len(ordered), f"trying {device.name}")
        tried.append(device.name)
        canal = search.near_canal(device)
        starts = []
        for direction in directions:
            centre = search.enclosing_centre(device, direction)
            starts.append((search.slack(Zone.from_centre(device, centre, direction), canal), direction, centre))
        starts.sort(key=lambda start: -start[0])
        device_best = None
        for _, direction, centre in starts[:refined_directions]:
            refined, slack = search.refine(device, direction, centre, canal, refinement_evaluations)
            if device_best is None or slack > device_best[0]:
                device_best = (slack, device, Zone.from_centre(device, refined, direction))
        if best is None or device_best[0] > best[0]:
            best = device_best
        if device_best[0] >= 0.0:
            best = device_best
            break
    if progress is not None:
        progress("plan", 100.0, "done")
    slack, device, zone = best
    result = evaluate_plan(anatomy, lesion, [zone], margin_mm=margin_mm, canal_clearance_mm=canal_clearance_mm,
                           shaft_clearance_mm=shaft_clearance_mm)
    return Proposal(feasible=bool(slack >= 0.0 and result.limits_met), device=device, zone=zone, result=result,
                    slack_mm=slack, searched=search.evaluations, tried_devices=tried)
