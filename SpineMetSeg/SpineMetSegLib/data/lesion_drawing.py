"""Metastases and look-alikes drawn into real anatomy, with contrast relative to the host body's own marrow.

Usage::

    lesions, look_alikes = plan_findings(case, rng)                     # geometry only, shared by all sequences
    drawn = draw(channel, "t1", lesions + look_alikes, case.bodies, rng) # one sequence with every finding drawn

A metastasis is an irregular ellipsoid (random radii, rotation and a smooth noise on its level set) of 3-40 mm,
inside its host vertebral body; some sit on the posterior wall, on the pedicle side or grow beyond the cortex
into the epidural space (up to a few mm outside the body mask), and a few replace a whole body. Lytic, sclerotic
and mixed lesions have, per sequence, an intensity drawn as a factor of the host body's marrow median *in that
sequence* (``LESION_FACTORS``: lytic dark on T1 and bright on T2 and STIR, sclerotic dark on all), a smooth
texture, the scan's own fine texture and noise kept, and a partial-volume edge. Look-alikes (haemangioma, focal
fat, Modic type 1 and 2 endplate changes, Schmorl nodes) are drawn the same way and never labelled.
``collapse_body`` simulates a pathological fracture: one endplate of a body sinks (loss of height), the lost part
takes the signal of the neighbouring disc and leaves the body mask.

The factor ranges follow the textbook signal of each finding relative to normal fatty marrow; they are simulation
parameters, not measurements.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .real_case import RealCase

LESION_TYPES = ("lytic", "sclerotic", "mixed")
LESION_TYPE_WEIGHTS = (0.55, 0.25, 0.2)
# (low, high) factor of the host marrow median, per sequence rule.
LESION_FACTORS: Dict[str, Dict[str, Tuple[float, float]]] = {
    "lytic": {"t1": (0.3, 0.6), "t2": (1.25, 1.9), "stir": (1.8, 3.2)},
    "sclerotic": {"t1": (0.15, 0.45), "t2": (0.15, 0.5), "stir": (0.25, 0.7)},
}
LOOK_ALIKE_FACTORS: Dict[str, Dict[str, Tuple[float, float]]] = {
    "haemangioma": {"t1": (1.2, 1.6), "t2": (1.4, 2.0), "stir": (1.0, 1.8)},
    "focal_fat": {"t1": (1.2, 1.5), "t2": (1.05, 1.35), "stir": (0.25, 0.6)},
    "modic1": {"t1": (0.5, 0.75), "t2": (1.2, 1.6), "stir": (1.4, 2.2)},
    "modic2": {"t1": (1.25, 1.6), "t2": (1.1, 1.4), "stir": (0.4, 0.8)},
    "schmorl": {"t1": (0.5, 0.8), "t2": (1.2, 1.7), "stir": (1.2, 2.0)},
}
LOOK_ALIKES = tuple(LOOK_ALIKE_FACTORS)
LOCATIONS = ("central", "posterior wall", "pedicle side", "epidural", "whole body")
LOCATION_WEIGHTS = (0.45, 0.22, 0.13, 0.12, 0.08)
DIAMETER_MM = (3.0, 40.0)
EPIDURAL_MM = (2.0, 6.0)  # how far beyond the body an epidural lesion may grow
RESIDUAL_KEEP = 0.7  # share of the scan's fine texture and noise kept inside a finding
MIN_VOXELS = 4
TRIES = 8


def sequence_rule(name: str) -> str:
    """The contrast rule of a channel: t1, t2 or stir; other contrasts (water-fat) are drawn like T2."""
    return name if name in ("t1", "t2", "stir") else "t2"


@dataclass
class Finding:
    kind: str  # a LESION_TYPES or LOOK_ALIKES entry
    host: int  # vertebral body number
    location: str
    box: Tuple[slice, slice, slice]
    mask: np.ndarray  # bool, in box
    alpha: np.ndarray  # float32 in [0, 1], in box: the share of the finding's signal (partial volume at the edge)
    texture: np.ndarray  # float32 around 1, in box
    mix: Optional[np.ndarray]  # float32 in [0, 1], in box, share of lytic signal (mixed lesions only)
    host_box: Tuple[slice, slice, slice] = (slice(None),) * 3  # the host body's bounding box
    factors: Dict[str, float] = field(default_factory=dict)  # per rule (for mixed: "lytic:t1", "sclerotic:t1")
    nominal_diameter_mm: float = 0.0


class _Bodies:
    """Per-body voxel lists and boxes of a case, made once."""

    def __init__(self, case: RealCase):
        from scipy import ndimage

        self.case = case
        self.slices = ndimage.find_objects(case.bodies)
        self.numbers = [n + 1 for n, s in enumerate(self.slices) if s is not None]
        self._voxels: Dict[int, np.ndarray] = {}

    def voxels(self, number: int) -> np.ndarray:
        if number not in self._voxels:
            box = self.slices[number - 1]
            local = np.argwhere(self.case.bodies[box] == number)
            self._voxels[number] = local + np.array([s.start for s in box])
        return self._voxels[number]


def _smooth_noise(shape: Tuple[int, ...], rng: np.random.Generator, cells: int = 5) -> np.ndarray:
    """Smooth noise in about [-1, 1] on ``shape`` (random values on a coarse grid, linearly interpolated)."""
    from scipy import ndimage

    coarse = rng.uniform(-1.0, 1.0, (cells,) * len(shape))
    zoomed = ndimage.zoom(coarse, [max(n, 1) / cells for n in shape], order=1, mode="nearest", grid_mode=True)
    out = np.zeros(shape, dtype=np.float32)
    cut = tuple(slice(0, min(a, b)) for a, b in zip(shape, zoomed.shape))
    out[cut] = zoomed[cut]
    return out


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


def _box(centre: np.ndarray, half_mm: float, spacing: np.ndarray, shape: Sequence[int]) -> Tuple[slice, ...]:
    half = np.ceil(half_mm / spacing).astype(int) + 1
    return tuple(slice(max(0, int(c - h)), min(int(n), int(c + h + 1))) for c, h, n in zip(centre, half, shape))


def _blob(box: Tuple[slice, ...], centre: np.ndarray, radii_mm: np.ndarray, spacing: np.ndarray,
          roughness: float, rng: np.random.Generator) -> np.ndarray:
    """An irregular ellipsoid in ``box``: rotated, with a smooth noise added to its level set."""
    grids = np.meshgrid(*[(np.arange(s.start, s.stop) - c) * d for s, c, d in zip(box, centre, spacing)],
                        indexing="ij")
    points = np.stack(grids, axis=-1) @ _rotation(rng)
    level = np.sqrt(np.sum((points / radii_mm) ** 2, axis=-1))
    shape = tuple(s.stop - s.start for s in box)
    return level + roughness * _smooth_noise(shape, rng) < 1.0


def _edge_and_texture(mask: np.ndarray, spacing: np.ndarray, rng: np.random.Generator):
    from scipy import ndimage

    alpha = ndimage.gaussian_filter(mask.astype(np.float32), 0.6 / spacing)
    alpha = np.clip(np.maximum(alpha * 1.6, mask * 1.0) if mask.any() else alpha, 0.0, 1.0)
    alpha[ndimage.binary_erosion(mask)] = 1.0
    alpha[alpha < 1e-3] = 0.0  # the filter's far tail: leave those voxels exactly as scanned
    texture = 1.0 + rng.uniform(0.04, 0.18) * _smooth_noise(mask.shape, rng, cells=max(3, max(mask.shape) // 3))
    return alpha.astype(np.float32), texture.astype(np.float32)


def _draw_factors(kind: str, rng: np.random.Generator) -> Dict[str, float]:
    if kind == "mixed":
        return {f"{part}:{rule}": float(rng.uniform(*LESION_FACTORS[part][rule]))
                for part in ("lytic", "sclerotic") for rule in ("t1", "t2", "stir")}
    table = LESION_FACTORS.get(kind) or LOOK_ALIKE_FACTORS[kind]
    return {rule: float(rng.uniform(*bounds)) for rule, bounds in table.items()}


def _centre_for(location: str, voxels: np.ndarray, case: RealCase, rng: np.random.Generator) -> np.ndarray:
    axis, sign = case.posterior_axis
    depth = voxels[:, axis] * sign
    if location in ("posterior wall", "epidural", "pedicle side"):
        candidates = voxels[depth >= np.quantile(depth, 0.8)]
        if location == "pedicle side":
            lateral_axis = ({0, 1, 2} - {axis, case.superior_axis[0]}).pop()
            side = candidates[:, lateral_axis]
            edge = np.quantile(side, 0.15) if rng.random() < 0.5 else np.quantile(side, 0.85)
            candidates = candidates[np.abs(side - edge) <= max(2.0, 0.1 * np.ptp(side))]
        voxels = candidates if len(candidates) else voxels
    return voxels[rng.integers(len(voxels))].astype(float)


def _make_lesion(bodies: _Bodies, host: int, taken: np.ndarray, rng: np.random.Generator) -> Optional[Finding]:
    from scipy import ndimage

    case = bodies.case
    spacing = np.array(case.spacing)
    kind = str(rng.choice(LESION_TYPES, p=LESION_TYPE_WEIGHTS))
    location = str(rng.choice(LOCATIONS, p=LOCATION_WEIGHTS))
    voxels = bodies.voxels(host)
    extent_mm = np.ptp(voxels, axis=0) * spacing
    for _ in range(TRIES):
        if location == "whole body":
            diameter = float(np.max(extent_mm) * rng.uniform(1.1, 1.4))
            centre = voxels.mean(axis=0)
        else:
            diameter = float(np.exp(rng.uniform(*np.log(DIAMETER_MM))))
            diameter = min(diameter, float(np.max(extent_mm)) * 1.1)
            centre = _centre_for(location, voxels, case, rng)
        radii = diameter / 2 * rng.uniform(0.7, 1.3, 3)
        box = _box(centre, float(radii.max()) * 1.4 + 2.0, spacing, case.bodies.shape)
        mask = _blob(box, centre, radii, spacing, rng.uniform(0.08, 0.35), rng)
        host_mask = case.bodies[box] == host
        allowed = host_mask
        if location == "epidural":
            distance = ndimage.distance_transform_edt(~host_mask, sampling=spacing)
            axis, sign = case.posterior_axis
            coordinate = np.arange(box[axis].start, box[axis].stop) * sign
            posterior = (coordinate >= np.quantile(voxels[:, axis] * sign, 0.75)).reshape(
                [-1 if a == axis else 1 for a in range(3)])
            allowed = host_mask | ((distance <= rng.uniform(*EPIDURAL_MM)) & posterior & (case.bodies[box] == 0))
        mask &= allowed & ~taken[box]
        if mask.sum() >= MIN_VOXELS:
            alpha, texture = _edge_and_texture(mask, spacing, rng)
            mix = None
            if kind == "mixed":
                mix = np.clip(0.5 + 1.5 * _smooth_noise(mask.shape, rng, cells=4), 0.0, 1.0).astype(np.float32)
            return Finding(kind, host, location, box, mask, alpha, texture, mix, bodies.slices[host - 1],
                           _draw_factors(kind, rng), round(diameter, 2))
    return None


def _endplate_band(host_mask: np.ndarray, axis: int, thickness: int, high_side: bool) -> np.ndarray:
    """Voxels of the body within ``thickness`` voxels of its surface on the high-index (or low-index) side of
    ``axis``."""
    from scipy import ndimage

    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1, 1, 1] = True
    structure[tuple((2 if high_side else 0) if a == axis else 1 for a in range(3))] = True
    inner = ndimage.binary_erosion(host_mask, structure, iterations=thickness)
    return host_mask & ~inner


def _make_look_alike(bodies: _Bodies, host: int, taken: np.ndarray, rng: np.random.Generator) -> Optional[Finding]:
    case = bodies.case
    spacing = np.array(case.spacing)
    kind = str(rng.choice(LOOK_ALIKES))
    voxels = bodies.voxels(host)
    body_box = bodies.slices[host - 1]
    host_mask = case.bodies[body_box] == host
    axis, sign = case.superior_axis
    for _ in range(TRIES):
        if kind in ("modic1", "modic2", "schmorl"):
            upper = bool(rng.random() < 0.5)
            thickness = int(max(1, round(rng.uniform(2, 6) / spacing[axis]))) if kind != "schmorl" else 1
            # Index grows superior when sign > 0: the superior endplate is at the high-index side then.
            band = _endplate_band(host_mask, axis, thickness, upper == (sign > 0))
            band_voxels = np.argwhere(band) + np.array([s.start for s in body_box])
            if not len(band_voxels):
                return None
            centre = band_voxels[rng.integers(len(band_voxels))].astype(float)
            if kind == "schmorl":
                radii = np.full(3, rng.uniform(2.0, 4.5))
            else:
                radii = rng.uniform(8.0, 22.0, 3)
            box = _box(centre, float(radii.max()) + 2.0, spacing, case.bodies.shape)
            mask = _blob(box, centre, radii, spacing, 0.15, rng) & (case.bodies[box] == host)
            if kind != "schmorl":
                full_band = np.zeros(case.bodies.shape, dtype=bool)
                full_band[body_box] = band
                mask &= full_band[box]
        else:
            diameter = rng.uniform(5.0, 15.0) if kind == "haemangioma" else rng.uniform(3.0, 12.0)
            centre = voxels[rng.integers(len(voxels))].astype(float)
            radii = diameter / 2 * rng.uniform(0.8, 1.2, 3)
            box = _box(centre, float(radii.max()) * 1.3 + 2.0, spacing, case.bodies.shape)
            mask = _blob(box, centre, radii, spacing, 0.1, rng) & (case.bodies[box] == host)
        mask &= ~taken[box]
        if mask.sum() >= MIN_VOXELS:
            alpha, texture = _edge_and_texture(mask, spacing, rng)
            return Finding(kind, host, "endplate" if kind in ("modic1", "modic2", "schmorl") else "marrow", box,
                           mask, alpha, texture, None, body_box, _draw_factors(kind, rng), 0.0)
    return None


def plan_findings(case: RealCase, rng: np.random.Generator, lesion_count: int,
                  look_alike_count: int, first_host: Optional[int] = None) -> Tuple[List[Finding], List[Finding]]:
    """Place ``lesion_count`` metastases (the first in ``first_host`` when given) and ``look_alike_count``
    look-alikes (fewer when a body has no room)."""
    bodies = _Bodies(case)
    taken = np.zeros(case.bodies.shape, dtype=bool)
    lesions: List[Finding] = []
    hosts = list(rng.permutation(bodies.numbers))
    if first_host is not None:
        hosts.remove(first_host)
        hosts.insert(0, first_host)
    for index in range(lesion_count):
        # Mostly one lesion per body; now and then a second in a body that has one.
        host = hosts[index % len(hosts)] if rng.random() > 0.15 or not lesions else lesions[-1].host
        finding = _make_lesion(bodies, int(host), taken, rng)
        if finding is not None:
            taken[finding.box] |= finding.mask
            lesions.append(finding)
    look_alikes: List[Finding] = []
    for _ in range(look_alike_count):
        finding = _make_look_alike(bodies, int(rng.choice(bodies.numbers)), taken, rng)
        if finding is not None:
            taken[finding.box] |= finding.mask
            look_alikes.append(finding)
    return lesions, look_alikes


def marrow_median(channel: np.ndarray, bodies: np.ndarray, finding: Finding) -> float:
    """Median of ``channel`` over the finding's host body (before anything is drawn)."""
    box = finding.host_box
    return float(np.median(channel[box][bodies[box] == finding.host]))


def draw(channel: np.ndarray, rule: str, findings: Sequence[Finding], bodies: np.ndarray) -> np.ndarray:
    """A copy of ``channel`` with every finding drawn with the contrast ``rule`` (t1, t2 or stir)."""
    from scipy import ndimage

    out = channel.astype(np.float32, copy=True)
    if not findings:
        return out
    medians = {f.host: marrow_median(channel, bodies, f) for f in findings}
    for finding in findings:
        if finding.kind == "mixed":
            factor = (finding.mix * finding.factors[f"lytic:{rule}"]
                      + (1.0 - finding.mix) * finding.factors[f"sclerotic:{rule}"])
        else:
            factor = finding.factors[rule]
        local = out[finding.box]
        residual = local - ndimage.gaussian_filter(local, 1.0)
        target = medians[finding.host] * factor * finding.texture + RESIDUAL_KEEP * residual
        blended = (1.0 - finding.alpha) * local + finding.alpha * np.maximum(target, 0.0)
        out[finding.box] = np.where(finding.alpha > 0, blended, local)
    return out


def collapse_body(case: RealCase, host: int, height_loss: float, superior: bool) -> RealCase:
    """A copy of ``case`` in which body ``host`` lost ``height_loss`` (0-1) of its height at its superior (or
    inferior) endplate: per column along the superior axis, the lost voxels leave the body mask and take the value
    of the first voxel beyond the endplate (the disc), so every sequence shows the same collapse."""
    from scipy import ndimage

    axis, sign = case.superior_axis
    box = ndimage.find_objects((case.bodies == host).astype(np.uint8))[0]
    # Move the superior axis last and orient it so that index grows towards the collapsing endplate.
    towards = sign if superior else -sign
    body = np.moveaxis(case.bodies[box] == host, axis, -1)
    if towards < 0:
        body = body[..., ::-1]
    n = body.shape[-1]
    index = np.arange(n)
    present = body.any(axis=-1)
    top = np.where(present, n - 1 - np.argmax(body[..., ::-1], axis=-1), -1)  # last body voxel of each column
    bottom = np.where(present, np.argmax(body, axis=-1), 0)
    height = float(np.max(top - bottom + 1)) if present.any() else 0.0
    cut = np.ceil(height * height_loss)
    lost = body & (index >= (top - cut + 1)[..., None])
    bodies = case.bodies.copy()
    view = np.moveaxis(bodies[box], axis, -1)
    if towards < 0:
        view = view[..., ::-1]
    view[lost] = 0  # writes through into bodies (views all the way)
    sequences = {}
    beyond = np.clip(top + 1, 0, n - 1)
    for name, array in case.sequences.items():
        out = array.copy()
        local = np.moveaxis(out[box], axis, -1)
        if towards < 0:
            local = local[..., ::-1]
        disc = np.take_along_axis(local, beyond[..., None], axis=-1)
        local[lost] = np.broadcast_to(disc, local.shape)[lost]
        sequences[name] = out
    return RealCase(case.name, sequences, bodies, case.reference, case.spacing, case.posterior_axis,
                    case.superior_axis)
