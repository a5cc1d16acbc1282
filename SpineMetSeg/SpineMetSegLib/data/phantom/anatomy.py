"""Synthetic spine anatomy: a curved chain of vertebrae with discs, canal, posterior elements and body wall.

Geometry lives in *spine coordinates* (millimetres): ``s`` is the arc length along a smooth sagittal centre line
(the line of the posterior walls of the vertebral bodies, increasing upwards), ``n`` the signed distance from that
line (positive = posterior) and ``a`` the lateral distance from the midline (positive = left). The centre line
lies in the sagittal plane of the *anatomy frame* (x left, y posterior, z superior, millimetres), so the mapping
(y, z) -> (s, n) is two-dimensional and is computed once per in-plane grid; a sagittal slice is then a function of
the in-plane (s, n) maps and a single number ``a``.

Usage::

    spine = sample_spine(np.random.default_rng(3))
    s, n = spine.straighten(y, z)                  # in-plane maps of a sagittal grid
    section = SpineSection(spine, s, n)
    tissue = section.tissues(a=0.0)                # uint8 tissue ids (labels.Anatomy values and variants)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.spatial import cKDTree

from ...labels import Anatomy
from .tissues import DEGENERATED_NUCLEUS, LUNG, NUCLEUS, VESSEL

LEVELS = tuple([f"T{i}" for i in range(1, 13)] + [f"L{i}" for i in range(1, 6)] + ["S1"])
THORACIC_COUNT = 12
MIN_VERTEBRAE, MAX_VERTEBRAE = 5, 9
FIRST_VISIBLE, LAST_VISIBLE = LEVELS.index("T2"), LEVELS.index("L5")  # a visible run has a neighbour at each end

CURVE_STEP_MM = 0.25
STRAIGHTEN_STEP = 8  # grid points between exact projections onto the centre line
CURVE_MARGIN_MM = 250.0  # straight extension of the centre line beyond the modelled vertebrae
CORTEX_MM = 1.0
BODY_CORNER_EXPONENT = 8  # superellipse exponent of the body outline in the sagittal plane: rounded corners
BODY_WAIST = 0.08  # vertebral bodies are narrower at mid-height than at the endplates
BODY_AP_EXPONENT = 2.6  # > 2: the body's axial section is boxier front to back than an ellipse
DISC_BULGE = 1.04
NUCLEUS_RADIUS2 = 0.40  # nucleus = inner part of the disc (normalised squared radius)
NUCLEUS_HEIGHT_FRACTION = 0.6
DEGENERATED_DISC_PROBABILITY = 0.3
CONUS_TAPER_MM = 15.0
THORACOLUMBAR_TRANSITION_MM = 20.0
# Curvature magnitudes (rad/mm): thoracic kyphosis about 20-50 degrees over T1-T12, lumbar lordosis 30-70 degrees.
KYPHOSIS_RANGE = (0.0012, 0.0030)
# The lordosis limit keeps the centre of curvature (radius >= 220 mm) behind the skin, where the projection
# onto the centre line would fold.
LORDOSIS_RANGE = (0.0025, 0.0045)
POSTURE_TILT_RAD = 0.15
BODY_WALL_SMOOTHING_MM = 40.0
VESSEL_GAP_MM = 3.0  # between the front of the vertebral bodies and the great vessels
LUNG_WALL_MM = 20.0  # chest wall (muscle, ribs) between the anterior subcutaneous fat and the lungs


def _nominal_dimensions(level: int) -> dict:
    """Adult dimensions (mm) of a level (0 = T1 ... 16 = L5, 17 = S1) from anatomy atlases, rounded."""
    if level < THORACIC_COUNT:
        f = level / (THORACIC_COUNT - 1)
        return dict(
            height=15.0 + 7.0 * f,
            width=27.0 + 13.0 * f,
            depth=16.0 + 12.0 * f,
            disc=3.5 + 2.5 * f,
            canal_ap=15.0,
            canal_width=16.0 + 3.0 * f,
            pedicle_height=10.0 + 4.0 * f,
            pedicle_width=5.0 + 3.0 * f,
            lamina=6.0,
            spinous_length=32.0,
            spinous_height=7.0 + 3.0 * f,
            spinous_slope=0.9 - 0.6 * f,
        )
    f = min(level - THORACIC_COUNT, 4) / 4.0
    return dict(
        height=24.0 + 3.0 * f,
        width=42.0 + 8.0 * f,
        depth=30.0 + 4.0 * f,
        disc=9.0 + 2.0 * f,
        canal_ap=16.0 + 2.0 * f,
        canal_width=22.0 + 3.0 * f,
        pedicle_height=15.0,
        pedicle_width=8.0 + 4.0 * f,
        lamina=7.0,
        spinous_length=28.0,
        spinous_height=16.0,
        spinous_slope=0.15,
    )


@dataclass
class Spine:
    """One patient's spine and body wall in spine coordinates; index 0 is the lowest vertebra of the chain.

    The chain holds the visible run of vertebrae plus one partly visible neighbour at each end
    (``visible`` = indices of the run).
    """

    names: List[str]
    levels: np.ndarray  # level index into LEVELS
    centre_s: np.ndarray  # arc length of each body's centre
    half_height: np.ndarray
    half_width: np.ndarray  # lateral
    half_depth: np.ndarray  # antero-posterior; the body spans n in [-2 half_depth, 0]
    disc_height: np.ndarray  # disc above each vertebra (the last one unused)
    degenerated_disc: np.ndarray  # bool, disc above each vertebra
    canal_half_ap: np.ndarray
    canal_half_width: np.ndarray
    pedicle_half_height: np.ndarray
    pedicle_width: np.ndarray
    lamina_thickness: np.ndarray
    spinous_length: np.ndarray
    spinous_half_height: np.ndarray
    spinous_slope: np.ndarray
    spinous_half_thickness: float
    epidural_fat_posterior: np.ndarray
    epidural_fat_anterior: float
    epidural_fat_lateral: float
    cord_half_ap: float
    cord_half_width: float
    conus_s: float
    skin_n: np.ndarray  # posterior skin distance along the curve (on curve_s)
    skin_curvature: float  # the back is rounder laterally: skin n drops by curvature * a^2
    fat_posterior: np.ndarray  # subcutaneous fat thickness at the back (on curve_s)
    anterior_extent: float  # body wall in front of the spine
    fat_anterior: float
    muscle_half_width: float
    psoas_scale: float
    aorta_offset: float  # to the left of the midline
    aorta_radius: float
    cava_offset: float  # to the right
    cava_radius: float
    lung_gap: float  # between the side of the vertebral bodies and the lungs
    lung_back: float  # how far behind the posterior wall line the lungs reach (paravertebral gutter)
    lung_base: float  # the diaphragm, as a weight between the T12 (0) and L1 (1) centres
    curve_s: np.ndarray
    curve_y: np.ndarray
    curve_z: np.ndarray
    curve_ty: np.ndarray  # unit tangent
    curve_tz: np.ndarray
    visible: Tuple[int, ...]

    @property
    def count(self) -> int:
        return len(self.names)

    def point(self, s: float, n: float) -> Tuple[float, float]:
        """Anatomy-frame (y, z) of spine coordinates (s, n)."""
        y = float(np.interp(s, self.curve_s, self.curve_y))
        z = float(np.interp(s, self.curve_s, self.curve_z))
        ty = float(np.interp(s, self.curve_s, self.curve_ty))
        tz = float(np.interp(s, self.curve_s, self.curve_tz))
        norm = np.hypot(ty, tz)
        return y + n * tz / norm, z - n * ty / norm

    def straighten(self, y: np.ndarray, z: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Spine coordinates (s, n) of anatomy-frame points (y, z) (arrays of one shape), by nearest curve point."""
        tree = cKDTree(np.column_stack([self.curve_y, self.curve_z]))
        points = np.column_stack([np.ravel(y), np.ravel(z)])
        _, nearest = tree.query(points)
        dy = points[:, 0] - self.curve_y[nearest]
        dz = points[:, 1] - self.curve_z[nearest]
        ty, tz = self.curve_ty[nearest], self.curve_tz[nearest]
        s = self.curve_s[nearest] + dy * ty + dz * tz
        n = dy * tz - dz * ty  # normal = tangent turned clockwise: posterior when the tangent points up
        shape = np.shape(y)
        return s.reshape(shape), n.reshape(shape)

    def straighten_grid(
        self, y: np.ndarray, z: np.ndarray, step: int = STRAIGHTEN_STEP
    ) -> Tuple[np.ndarray, np.ndarray]:
        """``straighten`` for a regular grid (y along columns, z along rows), computed every ``step`` points and
        interpolated linearly in between: (s, n) vary smoothly, and the error is far below a micrometre."""
        rows, columns = np.shape(y)
        row_nodes = _nodes(rows, step)
        column_nodes = _nodes(columns, step)
        coarse_s, coarse_n = self.straighten(y[np.ix_(row_nodes, column_nodes)], z[np.ix_(row_nodes, column_nodes)])
        row_weights = _linear_weights(rows, row_nodes)
        column_weights = _linear_weights(columns, column_nodes)
        s = row_weights @ coarse_s @ column_weights.T
        n = row_weights @ coarse_n @ column_weights.T
        return s.astype(np.float32), n.astype(np.float32)


def _nodes(count: int, step: int) -> np.ndarray:
    nodes = np.arange(0, count, step)
    return nodes if nodes[-1] == count - 1 else np.append(nodes, count - 1)


def _linear_weights(count: int, nodes: np.ndarray) -> np.ndarray:
    """Matrix (count x nodes) of linear interpolation weights from the node positions to every position."""
    positions = np.arange(count, dtype=float)
    upper = np.clip(np.searchsorted(nodes, positions, side="right"), 1, len(nodes) - 1)
    lower = upper - 1
    fraction = (positions - nodes[lower]) / (nodes[upper] - nodes[lower])
    weights = np.zeros((count, len(nodes)))
    weights[np.arange(count), lower] = 1 - fraction
    weights[np.arange(count), upper] += fraction
    return weights


def sample_spine(rng: np.random.Generator) -> Spine:
    """Draw a spine: 5 to 9 visible T/L levels, their neighbours, sizes, curvature and body wall."""
    visible_count = int(rng.integers(MIN_VERTEBRAE, MAX_VERTEBRAE + 1))
    first = int(rng.integers(FIRST_VISIBLE, LAST_VISIBLE - visible_count + 2))
    # Chain from the lowest (index 0) upward: LEVELS runs top-down, so reverse.
    levels = np.arange(first - 1, first + visible_count + 1)[::-1]
    count = len(levels)
    size = rng.uniform(0.9, 1.1)
    dims = [_nominal_dimensions(int(level)) for level in levels]

    def column(key: str, spread: float = 0.04) -> np.ndarray:
        nominal = np.array([d[key] for d in dims])
        return nominal * size * rng.uniform(1 - spread, 1 + spread, size=count)

    half_height = column("height") / 2
    half_width = column("width") / 2
    half_depth = column("depth") / 2
    disc_height = column("disc", 0.15)
    canal_half_ap = column("canal_ap", 0.08) / 2
    canal_half_width = column("canal_width", 0.08) / 2
    pedicle_half_height = column("pedicle_height") / 2
    pedicle_width = column("pedicle_width")
    lamina_thickness = column("lamina")
    spinous_length = column("spinous_length", 0.15)
    spinous_half_height = column("spinous_height", 0.1) / 2
    spinous_slope = np.array([d["spinous_slope"] for d in dims]) * rng.uniform(0.8, 1.2, size=count)
    degenerated_disc = rng.random(count) < DEGENERATED_DISC_PROBABILITY

    centre_s = np.zeros(count)
    centre_s[0] = CURVE_MARGIN_MM + half_height[0]
    for k in range(1, count):
        centre_s[k] = centre_s[k - 1] + half_height[k - 1] + disc_height[k - 1] + half_height[k]
    length = centre_s[-1] + half_height[-1] + CURVE_MARGIN_MM

    curve_s, curve_y, curve_z, curve_ty, curve_tz = _centre_line(rng, levels, centre_s, half_height, length)

    # Conus medullaris between T12 and L2: the cord ends there, below it the sac holds only CSF (cauda equina).
    conus_level = LEVELS.index("T12") + rng.uniform(0.0, 2.0)
    conus_s = _arc_length_of_level(conus_level, levels, centre_s)

    lamina_outer = 2 * canal_half_ap + lamina_thickness
    muscle = rng.uniform(25.0, 55.0)
    fat_posterior = rng.uniform(5.0, 30.0) * rng.uniform(0.85, 1.15, size=count)
    skin_n = lamina_outer + spinous_length + muscle * rng.uniform(0.9, 1.1, size=count) + fat_posterior
    # The body wall varies smoothly along the back, not vertebra by vertebra.
    smoothing = BODY_WALL_SMOOTHING_MM / CURVE_STEP_MM
    skin_n = gaussian_filter1d(np.interp(curve_s, centre_s, skin_n), smoothing, mode="nearest")
    fat_posterior = gaussian_filter1d(np.interp(curve_s, centre_s, fat_posterior), smoothing, mode="nearest")
    return Spine(
        names=[LEVELS[int(level)] for level in levels],
        levels=levels,
        centre_s=centre_s,
        half_height=half_height,
        half_width=half_width,
        half_depth=half_depth,
        disc_height=disc_height,
        degenerated_disc=degenerated_disc,
        canal_half_ap=canal_half_ap,
        canal_half_width=canal_half_width,
        pedicle_half_height=pedicle_half_height,
        pedicle_width=pedicle_width,
        lamina_thickness=lamina_thickness,
        spinous_length=spinous_length,
        spinous_half_height=spinous_half_height,
        spinous_slope=spinous_slope,
        spinous_half_thickness=float(rng.uniform(2.5, 4.0)),
        epidural_fat_posterior=np.where(levels >= THORACIC_COUNT, 4.0, 2.0) * rng.uniform(0.6, 1.4, size=count),
        epidural_fat_anterior=float(rng.uniform(0.5, 1.5)),
        epidural_fat_lateral=float(rng.uniform(1.5, 3.0)),
        cord_half_ap=float(rng.uniform(3.5, 4.5)),
        cord_half_width=float(rng.uniform(4.5, 5.5)),
        conus_s=conus_s,
        skin_n=skin_n,
        skin_curvature=float(rng.uniform(0.002, 0.006)),
        fat_posterior=fat_posterior,
        anterior_extent=float(rng.uniform(150.0, 260.0)),
        fat_anterior=float(rng.uniform(5.0, 30.0)),
        muscle_half_width=float(rng.uniform(45.0, 70.0)),
        psoas_scale=float(rng.uniform(0.7, 1.3)),
        aorta_offset=float(rng.uniform(8.0, 25.0)),
        aorta_radius=float(rng.uniform(8.0, 13.0)),
        cava_offset=float(rng.uniform(15.0, 30.0)),
        cava_radius=float(rng.uniform(9.0, 13.0)),
        lung_gap=float(rng.uniform(4.0, 12.0)),
        lung_back=float(rng.uniform(0.0, 15.0)),
        lung_base=float(rng.uniform(0.1, 0.8)),
        curve_s=curve_s,
        curve_y=curve_y,
        curve_z=curve_z,
        curve_ty=curve_ty,
        curve_tz=curve_tz,
        visible=tuple(range(1, count - 1)),
    )


def _arc_length_of_level(level: float, levels: np.ndarray, centre_s: np.ndarray) -> float:
    """Arc length of a fractional level index, extrapolated linearly beyond the chain."""
    step = (centre_s[-1] - centre_s[0]) / (levels[0] - levels[-1])  # levels run top-down, arc length bottom-up
    return (
        float(centre_s[0] + (levels[0] - level) * step)
        if level > levels[0] or level < levels[-1]
        else float(np.interp(-level, -levels.astype(float), centre_s))
    )


def _centre_line(
    rng: np.random.Generator, levels: np.ndarray, centre_s: np.ndarray, half_height: np.ndarray, length: float
) -> Tuple[np.ndarray, ...]:
    """A smooth sagittal curve with thoracic kyphosis and lumbar lordosis, by integrating its curvature."""
    s = np.arange(0.0, length + CURVE_STEP_MM, CURVE_STEP_MM)
    # The thoracolumbar junction (between T12 and L1) in arc length; above it kyphosis, below it lordosis.
    is_lumbar = levels >= THORACIC_COUNT
    if is_lumbar.all():
        junction = centre_s[-1] + 200.0
    elif not is_lumbar.any():
        junction = centre_s[0] - 200.0
    else:
        top_lumbar = int(np.nonzero(is_lumbar)[0].max())
        junction = centre_s[top_lumbar] + half_height[top_lumbar]
    kyphosis = rng.uniform(*KYPHOSIS_RANGE)
    lordosis = rng.uniform(*LORDOSIS_RANGE)
    lumbar_weight = 0.5 * (1 - np.tanh((s - junction) / THORACOLUMBAR_TRANSITION_MM))
    # Lordosis turns the tangent posteriorly going up (centre of curvature behind), kyphosis anteriorly.
    curvature = lordosis * lumbar_weight - kyphosis * (1 - lumbar_weight)
    modelled = (s > CURVE_MARGIN_MM) & (s < length - CURVE_MARGIN_MM)
    curvature = np.where(modelled, curvature, 0.0)
    angle = np.cumsum(curvature) * CURVE_STEP_MM
    middle = int(np.argmin(np.abs(s - 0.5 * (centre_s[0] + centre_s[-1]))))
    angle += rng.uniform(-POSTURE_TILT_RAD, POSTURE_TILT_RAD) - angle[middle]
    ty, tz = np.sin(angle), np.cos(angle)
    y = np.cumsum(ty) * CURVE_STEP_MM
    z = np.cumsum(tz) * CURVE_STEP_MM
    return s, y - y[middle], z - z[middle], ty, tz


class SpineSection:
    """Tissue ids of sagittal sections through one in-plane grid, for any lateral position ``a``.

    Everything that depends only on (s, n) is computed once here; ``tissues(a)`` then costs a few dozen
    vectorised operations over the in-plane grid.
    """

    def __init__(self, spine: Spine, s: np.ndarray, n: np.ndarray):
        self.spine = spine
        self.s, self.n = s, n
        f32 = np.float32
        sp = spine
        k = np.clip(np.searchsorted(0.5 * (sp.centre_s[1:] + sp.centre_s[:-1]), s), 0, sp.count - 1)
        self.vertebra = k.astype(np.int8)
        ds = s - sp.centre_s[k]
        half_height = sp.half_height[k]
        in_body = np.abs(ds) < half_height
        self.in_body = in_body

        # Vertebral column (bodies and discs): a^2 / A^2 + |(n + B) / B|^p < 1, body centre at n = -B.
        width_s = np.interp(s, sp.centre_s, sp.half_width)
        depth_s = np.interp(s, sp.centre_s, sp.half_depth)
        waist = 1 - BODY_WAIST * (1 - (ds / half_height) ** 2)
        half_a = np.where(in_body, sp.half_width[k] * waist, width_s * DISC_BULGE)
        half_b = np.where(in_body, sp.half_depth[k], depth_s * DISC_BULGE)
        self.column_inv_a2 = (1 / half_a**2).astype(f32)
        self.column_n = (np.abs((n + half_b) / half_b) ** BODY_AP_EXPONENT).astype(f32)
        # Sagittal outline of a body: column_r^(q/2) + |ds / H|^q < 1, a box with rounded corners.
        self.body_s_term = np.where(in_body, (ds / half_height) ** BODY_CORNER_EXPONENT, np.inf).astype(f32)
        rounding = np.minimum(np.minimum(half_a, half_b), half_height)
        self.cortex_threshold = ((1 - CORTEX_MM / rounding) ** BODY_CORNER_EXPONENT).astype(f32)

        # Disc nucleus: middle of the disc height, inner part of the section; degenerated discs are dark.
        disc_index = np.clip(np.where(ds > 0, k, k - 1), 0, sp.count - 2)
        disc_low = sp.centre_s[disc_index] + sp.half_height[disc_index]
        disc_high = sp.centre_s[disc_index + 1] - sp.half_height[disc_index + 1]
        fraction = (s - disc_low) / np.maximum(disc_high - disc_low, 1e-3)
        self.nucleus_band = ~in_body & (np.abs(fraction - 0.5) < NUCLEUS_HEIGHT_FRACTION / 2)
        self.nucleus_id = np.where(sp.degenerated_disc[disc_index], DEGENERATED_NUCLEUS, NUCLEUS).astype(np.uint8)

        # Spinal canal, dural sac and cord (continuous along s).
        canal_b = np.interp(s, sp.centre_s, sp.canal_half_ap)
        canal_a = np.interp(s, sp.centre_s, sp.canal_half_width)
        self.canal_inv_a2 = (1 / canal_a**2).astype(f32)
        self.canal_n = (((n - canal_b) / canal_b) ** 2).astype(f32)
        fat_post = np.interp(s, sp.centre_s, sp.epidural_fat_posterior)
        dura_b = canal_b - 0.5 * (fat_post + sp.epidural_fat_anterior)
        dura_centre = sp.epidural_fat_anterior + dura_b
        self.dura_inv_a2 = (1 / (canal_a - sp.epidural_fat_lateral) ** 2).astype(f32)
        self.dura_n = (((n - dura_centre) / dura_b) ** 2).astype(f32)
        taper = np.clip((s - sp.conus_s) / CONUS_TAPER_MM, 0.0, 1.0)
        with np.errstate(divide="ignore"):
            inverse_taper2 = np.where(taper > 0, 1 / np.maximum(taper, 1e-6) ** 2, np.inf)
        cord_centre = dura_centre - 0.1 * dura_b
        self.cord_inv_a2 = (inverse_taper2 / sp.cord_half_width**2).astype(f32)
        self.cord_n = (((n - cord_centre) / sp.cord_half_ap) ** 2 * inverse_taper2).astype(f32)

        # Posterior ring around the canal: pedicles in front of the canal's mid-depth, laminae behind it.
        lamina = np.interp(s, sp.centre_s, sp.lamina_thickness)
        pedicle = np.interp(s, sp.centre_s, sp.pedicle_width)
        self.ring_inv_a2 = (1 / (canal_a + pedicle) ** 2).astype(f32)
        self.ring_n = (((n - canal_b) / (canal_b + lamina)) ** 2).astype(f32)
        pedicle_centre = sp.centre_s[k] + 0.35 * half_height
        self.pedicle_band = (np.abs(s - pedicle_centre) < sp.pedicle_half_height[k]) & (n < canal_b) & (n > -2.0)
        # Laminae and facets sit lower than the body; the gap between them (ligamentum flavum) is at the disc.
        lamina_low = sp.centre_s - sp.half_height - 0.3 * np.r_[sp.disc_height[0], sp.disc_height[:-1]]
        lamina_high = sp.centre_s + 0.55 * sp.half_height
        in_lamina = np.zeros(s.shape, dtype=bool)
        for index in range(sp.count):
            in_lamina |= (s > lamina_low[index]) & (s < lamina_high[index])
        self.lamina_band = in_lamina & (n >= canal_b)

        # Spinous processes: slanting caudally as they run back; nearest one wins.
        base = 2 * canal_b + lamina - 2.0
        spinous = np.full(s.shape, np.inf, dtype=f32)
        for index in range(sp.count):
            along = n - base
            line = sp.centre_s[index] - 0.1 * sp.half_height[index] - sp.spinous_slope[index] * along
            term = ((s - line) / sp.spinous_half_height[index]) ** 2
            term = np.where((along > 0) & (along < sp.spinous_length[index]), term, np.inf)
            np.minimum(spinous, term.astype(f32), out=spinous)
        self.spinous_term = spinous
        self.spinous_inv_a2 = f32(1 / sp.spinous_half_thickness**2)

        # Body wall: skin at the back (rounder laterally), fat under it; muscle behind the bodies; psoas in front
        # of the transverse processes at lumbar levels; soft tissue (organs) everywhere else inside the body.
        skin = np.interp(s, sp.curve_s, sp.skin_n)
        fat = np.interp(s, sp.curve_s, sp.fat_posterior)
        self.minus_skin = (n - skin).astype(f32)
        self.fat_depth = fat.astype(f32)
        self.skin_curvature = f32(sp.skin_curvature)
        self.anterior_inside = n > -sp.anterior_extent
        self.anterior_fat = n < -sp.anterior_extent + sp.fat_anterior
        self.muscle_region = n > -0.2 * depth_s
        self.muscle_half_width = f32(sp.muscle_half_width)
        lumbar_weight = np.clip(np.interp(s, sp.centre_s, (sp.levels >= THORACIC_COUNT).astype(float)), 0, 1)
        psoas_radius = sp.psoas_scale * (6.0 + 10.0 * lumbar_weight)
        self.psoas_centre = (width_s + 0.8 * psoas_radius).astype(f32)
        self.psoas_inv_r2 = np.where(lumbar_weight > 0.05, 1 / psoas_radius**2, 0.0).astype(f32)
        self._vessels(sp, n, depth_s, lumbar_weight)
        self.lung_region = (
            (lumbar_weight < sp.lung_base)
            & (n < sp.lung_back)
            & (n > -sp.anterior_extent + sp.fat_anterior + LUNG_WALL_MM)
        )
        self.lung_medial = (width_s + sp.lung_gap).astype(f32)
        self.psoas_n = np.where(
            lumbar_weight > 0.05, ((n + depth_s) / (1.2 * np.maximum(psoas_radius, 1.0))) ** 2, np.inf
        ).astype(f32)

    def _vessels(self, spine: Spine, n: np.ndarray, depth_s: np.ndarray, lumbar_weight: np.ndarray) -> None:
        """Aorta (left, all levels) and inferior vena cava (right, below the diaphragm) in front of the bodies."""
        front = n + 2 * depth_s
        self.vessels = []
        for offset, radius_a, radius_n, present in (
            (spine.aorta_offset, spine.aorta_radius, spine.aorta_radius, np.ones_like(n, dtype=bool)),
            (-spine.cava_offset, spine.cava_radius * 1.3, spine.cava_radius * 0.8, lumbar_weight > 0.5),
        ):
            term = ((front + VESSEL_GAP_MM + radius_n) / radius_n) ** 2
            self.vessels.append((np.float32(offset), np.float32(1 / radius_a**2), np.where(present, term, np.inf)))

    def tissues(self, a: float) -> np.ndarray:
        """Tissue ids (uint8) of the section at lateral position ``a`` (mm from the midline)."""
        a2 = np.float32(a * a)
        abs_a = np.float32(abs(a))
        tissue = np.zeros(self.s.shape, dtype=np.uint8)

        inside = (self.minus_skin < -self.skin_curvature * a2) & self.anterior_inside
        tissue[inside] = Anatomy.SOFT_TISSUE
        if abs_a < self.muscle_half_width:
            tissue[inside & self.muscle_region] = Anatomy.MUSCLE
        tissue[inside & self.lung_region & (abs_a > self.lung_medial)] = LUNG
        psoas = (abs_a - self.psoas_centre) ** 2 * self.psoas_inv_r2 + self.psoas_n < 1
        tissue[psoas] = Anatomy.MUSCLE
        fat = inside & ((self.minus_skin > -self.skin_curvature * a2 - self.fat_depth) | self.anterior_fat)
        tissue[fat] = Anatomy.SUBCUTANEOUS_FAT

        for offset, inverse_radius2, term in self.vessels:
            tissue[(np.float32(a) - offset) ** 2 * inverse_radius2 + term < 1] = VESSEL

        canal = a2 * self.canal_inv_a2 + self.canal_n < 1
        ring = (a2 * self.ring_inv_a2 + self.ring_n < 1) & ~canal
        tissue[ring & self.pedicle_band] = Anatomy.PEDICLE
        tissue[ring & self.lamina_band] = Anatomy.LAMINA
        tissue[a2 * self.spinous_inv_a2 + self.spinous_term < 1] = Anatomy.SPINOUS_PROCESS
        tissue[canal] = Anatomy.EPIDURAL_FAT
        tissue[a2 * self.dura_inv_a2 + self.dura_n < 1] = Anatomy.CSF
        tissue[a2 * self.cord_inv_a2 + self.cord_n < 1] = Anatomy.CORD

        column_r = a2 * self.column_inv_a2 + self.column_n
        column = column_r < 1
        tissue[column & ~self.in_body] = Anatomy.DISC
        nucleus = column & self.nucleus_band & (column_r < NUCLEUS_RADIUS2)
        tissue[nucleus] = self.nucleus_id[nucleus]
        squared = column_r * column_r
        body_r = squared * squared + self.body_s_term
        body = body_r < 1
        tissue[body] = Anatomy.MARROW
        tissue[body & (body_r > self.cortex_threshold)] = Anatomy.CORTICAL_BONE
        return tissue
