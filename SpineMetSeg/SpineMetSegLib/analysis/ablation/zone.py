"""The ablation zone of a probe: an ellipsoid of revolution placed by the probe's tip and direction.

Coordinates are RAS millimetres (Slicer's convention, what a user reads off a markups point). ``direction`` points
the way the probe advances (from the skin entry towards the tip). The zone's centre lies
``device.tip_to_zone_centre_mm`` behind the tip; its semi-axes are half the device's zone length (along the probe)
and half its zone diameter (across).

Distances to the zone surface are exact (the closest point on an ellipse, found by bisection on the Lagrange
parameter, as in D. Eberly, "Distance from a Point to an Ellipse, an Ellipsoid, or a Hyperellipsoid",
Geometric Tools, 2013), so a test on a sphere gets the radius difference to rounding error.

Usage::

    zone = Zone.from_probe(device, tip_ras=(0, 10, 0), direction_ras=(0, 1, 0))
    zone.signed_distance(points_ras)      # (N,) mm, negative inside
    zones = ZoneUnion([zone_left, zone_right])   # bipedicular: the union of the zones
    zones.contains(points_ras)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence, Tuple

import numpy as np

from ...errors import SpineMetSegError
from .device_table import AblationDevice

SURFACE_SAMPLES = 400
# Bisection halves the bracket each step: 60 steps take a bracket of 1000 mm below 1e-15 mm.
BISECTION_STEPS = 60


def unit_vector(vector: Sequence[float], what: str = "direction") -> np.ndarray:
    vector = np.asarray(vector, dtype=float).reshape(3)
    length = float(np.linalg.norm(vector))
    if not np.all(np.isfinite(vector)) or length == 0.0:
        raise SpineMetSegError(f"The probe {what} {tuple(vector)} has no length; give a non-zero vector.")
    return vector / length


@dataclass(frozen=True, eq=False)
class Zone:
    """One probe's ellipsoidal zone (RAS mm)."""

    tip: np.ndarray
    direction: np.ndarray  # unit vector, entry -> tip
    semi_axial_mm: float
    semi_radial_mm: float
    tip_to_centre_mm: float
    device_name: str = ""

    @classmethod
    def from_probe(cls, device: AblationDevice, tip_ras: Sequence[float], direction_ras: Sequence[float]) -> Zone:
        return cls(
            tip=np.asarray(tip_ras, dtype=float).reshape(3),
            direction=unit_vector(direction_ras),
            semi_axial_mm=device.zone_length_mm / 2.0,
            semi_radial_mm=device.zone_diameter_mm / 2.0,
            tip_to_centre_mm=device.tip_to_zone_centre_mm,
            device_name=device.name,
        )

    @classmethod
    def from_centre(cls, device: AblationDevice, centre_ras: Sequence[float], direction_ras: Sequence[float]) -> Zone:
        direction = unit_vector(direction_ras)
        return cls.from_probe(device, np.asarray(centre_ras, dtype=float) + direction * device.tip_to_zone_centre_mm,
                              direction)

    @property
    def centre(self) -> np.ndarray:
        return self.tip - self.direction * self.tip_to_centre_mm

    @property
    def volume_ml(self) -> float:
        return 4.0 / 3.0 * math.pi * self.semi_axial_mm * self.semi_radial_mm**2 / 1000.0

    @property
    def bounding_radius_mm(self) -> float:
        return max(self.semi_axial_mm, self.semi_radial_mm)

    def axial_radial(self, points_ras: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Each point's offset from the centre along the probe and its distance from the probe's axis."""
        offsets = np.asarray(points_ras, dtype=float).reshape(-1, 3) - self.centre
        axial = offsets @ self.direction
        radial = np.linalg.norm(offsets - np.outer(axial, self.direction), axis=1)
        return axial, radial

    def contains(self, points_ras: np.ndarray) -> np.ndarray:
        axial, radial = self.axial_radial(points_ras)
        return (axial / self.semi_axial_mm) ** 2 + (radial / self.semi_radial_mm) ** 2 <= 1.0

    def signed_distance(self, points_ras: np.ndarray) -> np.ndarray:
        """Distance (mm) from each point to the zone's surface: negative inside, positive outside."""
        axial, radial = self.axial_radial(points_ras)
        inside = (axial / self.semi_axial_mm) ** 2 + (radial / self.semi_radial_mm) ** 2 < 1.0
        distance = ellipse_distance(np.abs(axial), radial, self.semi_axial_mm, self.semi_radial_mm)
        return np.where(inside, -distance, distance)

    def extreme_signed_distance(self, points_ras: np.ndarray, largest: bool = False,
                                bound: float = math.inf) -> float:
        """The smallest (or ``largest``) signed distance of ``points``, computing exact distances only where needed.

        A point at distance d from the centre has a signed distance between d - (longest semi-axis) and
        d - (shortest semi-axis): points whose range cannot hold the extreme are skipped, and so are points that
        cannot go below ``bound`` (smallest only; the result is then inf when none can).
        """
        points_ras = np.asarray(points_ras, dtype=float).reshape(-1, 3)
        distances = np.linalg.norm(points_ras - self.centre, axis=1)
        longest = max(self.semi_axial_mm, self.semi_radial_mm)
        shortest = min(self.semi_axial_mm, self.semi_radial_mm)
        if largest:
            candidates = distances - shortest >= (distances - longest).max()
            return float(self.signed_distance(points_ras[candidates]).max())
        lower = distances - longest
        candidates = (lower <= (distances - shortest).min()) & (lower < bound)
        if not candidates.any():
            return math.inf
        return float(self.signed_distance(points_ras[candidates]).min())

    def surface_points(self, count: int = SURFACE_SAMPLES) -> np.ndarray:
        """``count`` points spread over the zone's surface (RAS mm), for drawing and for image-bounds checks."""
        unit = fibonacci_sphere(count)
        across_1, across_2 = perpendicular_axes(self.direction)
        axes = np.stack([self.direction * self.semi_axial_mm, across_1 * self.semi_radial_mm,
                         across_2 * self.semi_radial_mm])
        return self.centre + unit @ axes

    def as_dict(self) -> dict:
        return {
            "device": self.device_name,
            "tip_ras": [float(v) for v in self.tip],
            "direction_ras": [float(v) for v in self.direction],
            "centre_ras": [float(v) for v in self.centre],
            "zone_length_mm": 2 * self.semi_axial_mm,
            "zone_diameter_mm": 2 * self.semi_radial_mm,
            "zone_volume_ml": self.volume_ml,
        }


class ZoneUnion:
    """The zones of several probes treated as one (their union), e.g. a bipedicular approach.

    Outside the union the signed distance is exact (the nearest zone's). Inside, it is minus the depth into the
    deepest zone, which can be less than the true depth where zones overlap: margins err on the small side.
    """

    def __init__(self, zones: Iterable[Zone]):
        self.zones = list(zones)
        if not self.zones:
            raise SpineMetSegError("A plan needs at least one probe.")

    def contains(self, points_ras: np.ndarray) -> np.ndarray:
        return np.logical_or.reduce([zone.contains(points_ras) for zone in self.zones])

    def signed_distance(self, points_ras: np.ndarray) -> np.ndarray:
        return np.minimum.reduce([zone.signed_distance(points_ras) for zone in self.zones])

    def surface_points(self) -> np.ndarray:
        """Surface samples of every zone (those inside another zone included)."""
        return np.concatenate([zone.surface_points() for zone in self.zones])

    def bounds_ras(self) -> Tuple[np.ndarray, np.ndarray]:
        """An axis-aligned box (low, high corners) holding every zone."""
        low = np.min([zone.centre - zone.bounding_radius_mm for zone in self.zones], axis=0)
        high = np.max([zone.centre + zone.bounding_radius_mm for zone in self.zones], axis=0)
        return low, high


def fibonacci_sphere(count: int) -> np.ndarray:
    """``count`` nearly evenly spread unit vectors (a Fibonacci lattice)."""
    index = np.arange(count) + 0.5
    z = 1.0 - 2.0 * index / count
    angle = math.pi * (1.0 + math.sqrt(5.0)) * index
    ring = np.sqrt(1.0 - z * z)
    return np.stack([z, ring * np.cos(angle), ring * np.sin(angle)], axis=1)


def perpendicular_axes(direction: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Two unit vectors perpendicular to ``direction`` and to each other."""
    helper = np.eye(3)[int(np.argmin(np.abs(direction)))]
    first = np.cross(direction, helper)
    first /= np.linalg.norm(first)
    return first, np.cross(direction, first)


def ellipse_distance(u: np.ndarray, v: np.ndarray, semi_u: float, semi_v: float) -> np.ndarray:
    """Distance from points (u, v), u, v >= 0, to the ellipse (u/semi_u)^2 + (v/semi_v)^2 = 1 (inside or outside)."""
    u = np.asarray(u, dtype=float)
    v = np.asarray(v, dtype=float)
    if semi_u < semi_v:
        return ellipse_distance(v, u, semi_v, semi_u)
    e0, e1 = float(semi_u), float(semi_v)  # e0 >= e1
    distance = np.empty_like(u)
    on_major_axis = v <= 0.0
    regular = ~on_major_axis
    if regular.any():
        y0, y1 = u[regular], v[regular]
        # F(t) = (e0 y0 / (t + e0^2))^2 + (e1 y1 / (t + e1^2))^2 - 1 falls on t > -e1^2; its root gives the closest
        # point. F >= 0 at t = -e1^2 + e1 y1 and F <= 0 at t = -e1^2 + |(e0 y0, e1 y1)|.
        low = -e1 * e1 + e1 * y1
        high = -e1 * e1 + np.hypot(e0 * y0, e1 * y1)
        for _ in range(BISECTION_STEPS):
            middle = 0.5 * (low + high)
            value = (e0 * y0 / (middle + e0 * e0)) ** 2 + (e1 * y1 / (middle + e1 * e1)) ** 2 - 1.0
            positive = value > 0
            low = np.where(positive, middle, low)
            high = np.where(positive, high, middle)
        t = 0.5 * (low + high)
        x0 = e0 * e0 * y0 / (t + e0 * e0)
        x1 = e1 * e1 * y1 / (t + e1 * e1)
        distance[regular] = np.hypot(y0 - x0, y1 - x1)
    if on_major_axis.any():
        y0 = u[on_major_axis]
        # On the major axis, a point near the centre is closest to two points off the axis (Eberly, section 2.1).
        threshold = (e0 * e0 - e1 * e1) / e0
        near_centre = y0 < threshold
        x0 = np.where(near_centre, e0 * e0 * y0 / max(e0 * e0 - e1 * e1, 1e-300), e0)
        x1 = np.where(near_centre, e1 * np.sqrt(np.clip(1.0 - (x0 / e0) ** 2, 0.0, None)), 0.0)
        distance[on_major_axis] = np.hypot(y0 - x0, x1)
    return distance
