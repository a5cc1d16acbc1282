"""Other contrasts from one real sequence: T1-, T2- and STIR-like versions and random ones (domain randomisation).

Usage::

    classes = tissue_classes(image, bodies > 0)                  # intensity clusters + the body mask, once a case
    t1 = convert(image, classes, "t1", rng)                      # plausible T1 from a T2 (or water-fat) scan
    odd = convert(image, classes, "random", rng)                 # random intensity per tissue class (SynthSeg)

A real scan's tissues are told apart by intensity clusters outside the vertebral bodies (1D k-means) plus the
body mask (marrow). Each class gets a new mean intensity, drawn from a range that follows the textbook contrast of
the target sequence (marrow bright on T1, dark on STIR; fluid dark on T1, bright on STIR), or from anywhere in
``random`` mode; voxels are mapped piecewise-linearly between class means, so each class keeps its real texture
and noise, and the body is scaled by its own factor, blended across a one-voxel soft edge. A smooth random bias
field and, in random mode, a gamma follow. Fat and fluid are both bright on T2 and water-fat images, so one
cluster holds both: its T1 and STIR brightness is drawn from a wide range rather than pretended to be known.
This runs **before** lesions are drawn, so a lesion's contrast is set relative to the converted marrow and stays
true to the target sequence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np

CLASSES = 5  # clusters outside the bodies: background, dark (cortex, ligament), muscle, intermediate, bright
MODES = ("t1", "t2", "stir", "random")
# Class mean ranges (fractions of the output maximum), darkest source cluster first, and the marrow range.
PLAUSIBLE: Dict[str, Tuple[Tuple[Tuple[float, float], ...], Tuple[float, float]]] = {
    "t1": (((0.0, 0.03), (0.12, 0.22), (0.28, 0.38), (0.4, 0.55), (0.3, 0.9)), (0.6, 0.8)),
    "t2": (((0.0, 0.03), (0.08, 0.18), (0.2, 0.32), (0.38, 0.55), (0.75, 1.0)), (0.35, 0.55)),
    "stir": (((0.0, 0.03), (0.08, 0.16), (0.18, 0.28), (0.3, 0.45), (0.6, 1.0)), (0.12, 0.28)),
}
OUTPUT_MAX = 1000.0
BIAS_STRENGTH = 0.15  # largest relative change of the smooth bias field
KMEANS_SAMPLE = 200_000
KMEANS_ITERATIONS = 20


@dataclass
class TissueClasses:
    centres: np.ndarray  # (CLASSES,) source intensity of each cluster outside the bodies, ascending
    marrow: float  # source median inside the bodies
    body_weight: np.ndarray  # float32, soft body mask (1 inside, 0 outside, smooth across one voxel)
    integer_range: Optional[Tuple[int, int]] = None  # (min, max) when every voxel is a small whole number


def kmeans_1d(values: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted cluster centres of 1D ``values`` (Lloyd's algorithm from quantile starts)."""
    if values.size > KMEANS_SAMPLE:
        values = rng.choice(values, KMEANS_SAMPLE, replace=False)
    centres = np.quantile(values, (np.arange(k) + 0.5) / k).astype(np.float64)
    for _ in range(KMEANS_ITERATIONS):
        edges = (centres[1:] + centres[:-1]) / 2
        assignment = np.searchsorted(edges, values)
        updated = np.array([values[assignment == c].mean() if np.any(assignment == c) else centres[c]
                            for c in range(k)])
        if np.allclose(updated, centres):
            break
        centres = updated
    return np.sort(centres)


def tissue_classes(image: np.ndarray, body: np.ndarray) -> TissueClasses:
    """Intensity clusters of ``image`` outside ``body`` and the marrow median inside it."""
    from scipy import ndimage

    rng = np.random.default_rng(0)  # the clusters are a property of the scan, not of a sample
    centres = kmeans_1d(image[~body].astype(np.float64), CLASSES, rng)
    for c in range(1, CLASSES):  # keep them strictly increasing for interpolation
        centres[c] = max(centres[c], centres[c - 1] + 1e-3)
    weight = ndimage.gaussian_filter(body.astype(np.float32), 0.7)
    low, high = float(image.min()), float(image.max())
    integral = high - low <= 65535 and bool(np.all(image == np.round(image)))
    return TissueClasses(centres, float(np.median(image[body])), weight,
                         (int(low), int(high)) if integral else None)


def _targets(mode: str, rng: np.random.Generator) -> Tuple[np.ndarray, float]:
    if mode == "random":
        means = rng.uniform(0.0, 1.0, CLASSES)
        means[0] = rng.uniform(0.0, 0.15)  # background stays dark: air gives no signal in any sequence
        return means, float(rng.uniform(0.05, 0.95))
    ranges, marrow = PLAUSIBLE[mode]
    return np.array([rng.uniform(lo, hi) for lo, hi in ranges]), float(rng.uniform(*marrow))


def bias_field(shape: Tuple[int, ...], rng: np.random.Generator, strength: float = BIAS_STRENGTH) -> np.ndarray:
    """A smooth multiplicative field within [1 - strength, 1 + strength] (a coil's slow shading).

    A sum of one slow cosine per axis, built by broadcasting so it costs one pass over the volume.
    """
    field = np.zeros((1,) * len(shape), dtype=np.float32)
    for axis, n in enumerate(shape):
        t = np.linspace(0.0, np.pi, n, dtype=np.float32)
        profile = np.cos(t * rng.uniform(0.3, 1.2) + rng.uniform(0, 2 * np.pi)) * rng.uniform(-1, 1) / len(shape)
        field = field + profile.reshape([-1 if a == axis else 1 for a in range(len(shape))])
    return (1.0 + strength * field).astype(np.float32)


def _outside_map(values: np.ndarray, classes: TissueClasses, means: np.ndarray) -> np.ndarray:
    """Piecewise-linear map through the class centres; beyond the brightest one the last slope goes on, so the
    bright class keeps its texture."""
    out = np.interp(values, classes.centres, means * OUTPUT_MAX)
    top = values > classes.centres[-1]
    if np.any(top):
        span = max(classes.centres[-1] - classes.centres[-2], 1e-3)
        slope = (means[-1] - means[-2]) * OUTPUT_MAX / span
        out[top] = means[-1] * OUTPUT_MAX + slope * (values[top] - classes.centres[-1])
    return out


def convert(image: np.ndarray, classes: TissueClasses, mode: str, rng: np.random.Generator) -> np.ndarray:
    """``image`` with the contrast of ``mode`` (see module docstring), float32 in about [0, OUTPUT_MAX]."""
    if mode not in MODES:
        raise ValueError(f"unknown contrast mode {mode!r}; choose one of {', '.join(MODES)}")
    means, marrow = _targets(mode, rng)
    if classes.integer_range is not None:  # 8-bit scans: map through a table, ~20x faster than per voxel
        low, high = classes.integer_range
        table = _outside_map(np.arange(low, high + 1, dtype=np.float64), classes, means).astype(np.float32)
        outside = table[image.astype(np.int64) - low]
    else:
        outside = _outside_map(image, classes, means).astype(np.float32)
    inside = image * (marrow * OUTPUT_MAX / max(classes.marrow, 1e-3))
    out = classes.body_weight * inside + (1.0 - classes.body_weight) * outside
    out *= bias_field(image.shape, rng)
    if mode == "random":
        gamma = float(np.exp(rng.uniform(-0.4, 0.4)))
        out = OUTPUT_MAX * (np.clip(out, 0, None) / OUTPUT_MAX) ** gamma
    return np.clip(out, 0.0, None).astype(np.float32)
