"""Metastases and their look-alikes (haemangioma, focal fat, Modic endplate change) as analytic 3D shapes.

A shape is a union of ellipsoids in spine coordinates (s, n, a; see ``anatomy``) whose boundary is roughened by
a smooth random field (a sum of plane waves): a thresholded smooth noise field inside an envelope. The whole
shape fits inside a sphere of its nominal diameter. A finding only replaces the tissues it may grow in
(``hosts``): metastases grow in marrow, cortex and pedicles, epidural ones also into the canal's fat and CSF;
look-alikes only in marrow. Metastases never overwrite a look-alike.

Usage::

    spine = sample_spine(rng)
    findings = sample_findings(rng, spine)
    for lesion in findings.metastases:
        mask = lesion.shape.inside(s_window, n_window, a)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np

from ...labels import Anatomy
from .anatomy import Spine
from .tissues import LESION_BASE, LOOK_ALIKE_BASE, MAX_LESIONS, MAX_LOOK_ALIKES

MAX_METASTASES = 6
METASTASIS_COUNT_WEIGHTS = (0.08, 0.22, 0.22, 0.17, 0.13, 0.10, 0.08)  # P(0), P(1), ..., P(6) lesions per case
MIN_DIAMETER_MM, MAX_DIAMETER_MM = 3.0, 40.0
KIND_WEIGHTS = {"lytic": 0.55, "sclerotic": 0.2, "mixed": 0.25}
SITE_WEIGHTS = {"body": 0.55, "posterior_wall": 0.17, "pedicle": 0.16, "epidural": 0.12}
MAX_BLOBS = 4
ROUGHNESS_RANGE = (0.08, 0.28)  # boundary perturbation, fraction of the radius
WAVES = 4
# A mixed lesion is sclerotic where its internal field (sum of waves with random phases, about Gaussian with
# SD 1/sqrt(2)) exceeds this threshold: about 40 % of its volume.
MIXED_SCLEROTIC_THRESHOLD = 0.18

HAEMANGIOMA_PROBABILITY, HAEMANGIOMA_DIAMETER = 0.45, (5.0, 20.0)
FOCAL_FAT_PROBABILITY, FOCAL_FAT_DIAMETER = 0.35, (4.0, 12.0)
MODIC_PROBABILITY, MODIC_DEPTH = 0.3, (3.0, 9.0)
MODIC_TYPE_WEIGHTS = {"modic1": 0.35, "modic2": 0.5, "modic3": 0.15}

METASTASIS_HOSTS = (Anatomy.MARROW, Anatomy.CORTICAL_BONE, Anatomy.PEDICLE)
EPIDURAL_HOSTS = (Anatomy.EPIDURAL_FAT, Anatomy.CSF)
LOOK_ALIKE_HOSTS = (Anatomy.MARROW,)


@dataclass
class Shape:
    """A roughened union of ellipsoids around ``centre`` (s, n, a), in millimetres."""

    centre: np.ndarray  # (3,)
    offsets: np.ndarray  # (blobs, 3)
    radii: np.ndarray  # (blobs, 3)
    wave_vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # rad/mm
    wave_phases: np.ndarray = field(default_factory=lambda: np.zeros(0))
    wave_amplitudes: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def half_extent(self) -> np.ndarray:
        """Half size of the axis-aligned box (s, n, a) that holds the shape."""
        grow = 1 + float(np.sum(np.abs(self.wave_amplitudes)))
        return np.max(np.abs(self.offsets) + self.radii * grow, axis=0)

    def inside(self, s: np.ndarray, n: np.ndarray, a: float) -> np.ndarray:
        """Boolean mask of the points (s, n arrays of one shape; a scalar) inside the shape."""
        ds = s - np.float32(self.centre[0])
        dn = n - np.float32(self.centre[1])
        da = np.float32(a - self.centre[2])
        nearest = None
        for offset, radius in zip(self.offsets, self.radii):
            q = ((ds - np.float32(offset[0])) * np.float32(1 / radius[0])) ** 2
            q += ((dn - np.float32(offset[1])) * np.float32(1 / radius[1])) ** 2
            q += np.float32(((da - offset[2]) / radius[2]) ** 2)
            nearest = q if nearest is None else np.minimum(nearest, q)
        return nearest < (1 + wave_field(self, ds, dn, da)) ** 2


def wave_field(shape: Shape, ds: np.ndarray, dn: np.ndarray, da: float) -> np.ndarray:
    """The smooth random field of ``shape`` at offsets (ds, dn, da) from its centre (0 where it has no waves)."""
    total = np.zeros(ds.shape, dtype=np.float32)
    for (ks, kn, ka), phase, amplitude in zip(shape.wave_vectors, shape.wave_phases, shape.wave_amplitudes):
        total += np.float32(amplitude) * np.sin(ds * np.float32(ks) + dn * np.float32(kn) + np.float32(da * ka + phase))
    return total


@dataclass
class Metastasis:
    """One metastasis: its kind, host vertebra (chain index), shape and where it may grow."""

    index: int  # 0-based; its tissue ids are LESION_BASE + 2 index (+ 1 for the sclerotic part)
    kind: str  # lytic | sclerotic | mixed
    site: str  # body | posterior_wall | pedicle | epidural (where it was seeded)
    vertebra: int
    nominal_diameter: float
    shape: Shape
    mixture: Optional[Shape] = None  # mixed lesions: the sclerotic part is where this field is high

    @property
    def hosts(self) -> Tuple[int, ...]:
        return METASTASIS_HOSTS + (EPIDURAL_HOSTS if self.site == "epidural" else ())

    @property
    def lytic_id(self) -> int:
        return LESION_BASE + 2 * self.index

    @property
    def sclerotic_id(self) -> int:
        return LESION_BASE + 2 * self.index + 1

    def tissue_ids(self, s: np.ndarray, n: np.ndarray, a: float) -> np.ndarray:
        """Tissue id of each point inside the lesion: its lytic or its sclerotic id."""
        if self.kind == "lytic":
            return np.full(s.shape, self.lytic_id, dtype=np.uint8)
        if self.kind == "sclerotic":
            return np.full(s.shape, self.sclerotic_id, dtype=np.uint8)
        ds = s - np.float32(self.mixture.centre[0])
        dn = n - np.float32(self.mixture.centre[1])
        field_value = wave_field(self.mixture, ds, dn, a - self.mixture.centre[2])
        return np.where(field_value > MIXED_SCLEROTIC_THRESHOLD, self.sclerotic_id, self.lytic_id).astype(np.uint8)


@dataclass
class LookAlike:
    """A finding that is not a metastasis: kind in tissues.LOOK_ALIKE_KINDS."""

    index: int  # tissue id LOOK_ALIKE_BASE + index
    kind: str
    vertebra: int
    nominal_diameter: float
    shape: Shape
    hosts: Tuple[int, ...] = LOOK_ALIKE_HOSTS

    @property
    def tissue_id(self) -> int:
        return LOOK_ALIKE_BASE + self.index


@dataclass
class Findings:
    metastases: List[Metastasis]
    look_alikes: List[LookAlike]


def _choice(rng: np.random.Generator, weights: dict) -> str:
    keys = list(weights)
    p = np.array([weights[k] for k in keys], dtype=float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def _unit_vectors(rng: np.random.Generator, count: int) -> np.ndarray:
    v = rng.normal(size=(count, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def irregular_shape(rng: np.random.Generator, centre: np.ndarray, diameter: float, blobs: int) -> Shape:
    """A roughened union of ``blobs`` ellipsoids that fits inside a sphere of ``diameter`` around ``centre``."""
    roughness = rng.uniform(*ROUGHNESS_RANGE)
    amplitudes = rng.dirichlet(np.ones(WAVES)) * roughness
    wavelengths = diameter * rng.uniform(0.4, 1.0, size=WAVES)
    vectors = _unit_vectors(rng, WAVES) * (2 * np.pi / wavelengths)[:, None]
    phases = rng.uniform(0, 2 * np.pi, size=WAVES)
    grow = 1 + roughness
    radius = diameter / 2
    # The first blob is the core; the others bulge from it. Every blob stays inside the sphere after roughening.
    radii = np.empty((blobs, 3))
    offsets = np.zeros((blobs, 3))
    radii[0] = radius / grow * rng.uniform(0.65, 1.0, size=3)
    radii[0] *= radius / grow / radii[0].max()
    for b in range(1, blobs):
        size = radius / grow * rng.uniform(0.3, 0.6)
        radii[b] = size * rng.uniform(0.7, 1.0, size=3)
        reach = radius - radii[b].max() * grow
        offsets[b] = _unit_vectors(rng, 1)[0] * reach * rng.uniform(0.3, 1.0)
    return Shape(np.asarray(centre, float), offsets, radii, vectors, phases, amplitudes)


def _smooth_field(rng: np.random.Generator, centre: np.ndarray, diameter: float) -> Shape:
    """A wave field (no blobs) used to split a mixed lesion into lytic and sclerotic parts."""
    count = WAVES + 2
    wavelengths = diameter * rng.uniform(0.3, 0.8, size=count)
    return Shape(
        np.asarray(centre, float),
        np.zeros((1, 3)),
        np.ones((1, 3)),
        _unit_vectors(rng, count) * (2 * np.pi / wavelengths)[:, None],
        rng.uniform(0, 2 * np.pi, size=count),
        np.full(count, 1.0 / np.sqrt(count)),
    )


def _metastasis(rng: np.random.Generator, spine: Spine, index: int, vertebra: int) -> Metastasis:
    kind = _choice(rng, KIND_WEIGHTS)
    site = _choice(rng, SITE_WEIGHTS)
    diameter = float(np.exp(rng.uniform(np.log(MIN_DIAMETER_MM), np.log(MAX_DIAMETER_MM))))
    k = vertebra
    h, w, d = spine.half_height[k], spine.half_width[k], spine.half_depth[k]
    s = spine.centre_s[k] + rng.uniform(-0.6, 0.6) * h
    n = -d + rng.uniform(-0.6, 0.6) * d
    a = rng.uniform(-0.6, 0.6) * w
    side = 1.0 if rng.random() < 0.5 else -1.0
    if site == "posterior_wall":
        n = -diameter * rng.uniform(0.15, 0.4)
    elif site == "pedicle":
        s = spine.centre_s[k] + 0.35 * h + rng.uniform(-0.3, 0.3) * spine.pedicle_half_height[k]
        n = rng.uniform(-0.6, 0.4) * diameter
        a = side * (spine.canal_half_width[k] + 0.5 * spine.pedicle_width[k])
    elif site == "epidural":
        n = -diameter * rng.uniform(0.05, 0.3)
        a = rng.uniform(-0.3, 0.3) * spine.canal_half_width[k]
    blobs = int(rng.integers(1, MAX_BLOBS + 1))
    shape = irregular_shape(rng, np.array([s, n, a]), diameter, blobs)
    mixture = _smooth_field(rng, shape.centre, diameter) if kind == "mixed" else None
    return Metastasis(index, kind, site, vertebra, diameter, shape, mixture)


def _haemangioma_or_fat(rng: np.random.Generator, spine: Spine, index: int, vertebra: int, kind: str) -> LookAlike:
    low, high = HAEMANGIOMA_DIAMETER if kind == "haemangioma" else FOCAL_FAT_DIAMETER
    diameter = float(rng.uniform(low, high))
    k = vertebra
    h, w, d = spine.half_height[k], spine.half_width[k], spine.half_depth[k]
    centre = np.array(
        [
            spine.centre_s[k] + rng.uniform(-0.4, 0.4) * h,
            -d + rng.uniform(-0.4, 0.4) * d,
            rng.uniform(-0.5, 0.5) * w,
        ]
    )
    radii = diameter / 2 * rng.uniform(0.8, 1.0, size=(1, 3))
    radii *= diameter / 2 / radii.max()
    return LookAlike(index, kind, vertebra, diameter, Shape(centre, np.zeros((1, 3)), radii))


def _modic(rng: np.random.Generator, spine: Spine, index: int, vertebra: int) -> LookAlike:
    """A band of changed marrow along one endplate of ``vertebra`` (the disc next to it is degenerated)."""
    kind = _choice(rng, MODIC_TYPE_WEIGHTS)
    k = vertebra
    upper = rng.random() < 0.5
    endplate = spine.centre_s[k] + (spine.half_height[k] if upper else -spine.half_height[k])
    depth = rng.uniform(*MODIC_DEPTH)
    radii = np.array(
        [[depth, spine.half_depth[k] * rng.uniform(0.5, 0.9), spine.half_width[k] * rng.uniform(0.5, 0.9)]]
    )
    centre = np.array([endplate, -spine.half_depth[k] * rng.uniform(0.7, 1.3), rng.uniform(-0.2, 0.2) * radii[0, 2]])
    waves = 2
    shape = Shape(
        centre,
        np.zeros((1, 3)),
        radii,
        _unit_vectors(rng, waves) * (2 * np.pi / rng.uniform(10.0, 25.0, size=waves))[:, None],
        rng.uniform(0, 2 * np.pi, size=waves),
        np.full(waves, 0.12),
    )
    return LookAlike(index, kind, vertebra, float(2 * radii.max()), shape)


def sample_findings(rng: np.random.Generator, spine: Spine) -> Findings:
    """Draw 0-6 metastases in the visible vertebrae and the look-alikes of one case."""
    visible = list(spine.visible)
    count = int(rng.choice(len(METASTASIS_COUNT_WEIGHTS), p=METASTASIS_COUNT_WEIGHTS))
    count = min(count, MAX_METASTASES, MAX_LESIONS)
    metastases = [_metastasis(rng, spine, i, int(rng.choice(visible))) for i in range(count)]

    # Look-alikes prefer vertebrae without metastases, as a radiologist would see them side by side.
    free = [k for k in visible if k not in {m.vertebra for m in metastases}] or visible
    look_alikes: List[LookAlike] = []
    if rng.random() < HAEMANGIOMA_PROBABILITY:
        for _ in range(int(rng.integers(1, 3))):
            look_alikes.append(_haemangioma_or_fat(rng, spine, len(look_alikes), int(rng.choice(free)), "haemangioma"))
    if rng.random() < FOCAL_FAT_PROBABILITY:
        for _ in range(int(rng.integers(1, 4))):
            look_alikes.append(_haemangioma_or_fat(rng, spine, len(look_alikes), int(rng.choice(free)), "focal_fat"))
    if rng.random() < MODIC_PROBABILITY:
        for _ in range(int(rng.integers(1, 3))):
            look_alikes.append(_modic(rng, spine, len(look_alikes), int(rng.choice(free))))
    return Findings(metastases, look_alikes[:MAX_LOOK_ALIKES])
