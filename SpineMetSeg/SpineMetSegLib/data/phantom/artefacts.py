"""MR image formation effects: tissue texture, coil bias field, point spread and Rician noise.

All work on numpy arrays indexed (k, j, i) = (slices, rows, columns) with the voxel spacing (i, j, k) in mm,
are vectorised and cost a fraction of a second on a clinical 512 x 512 x 18 grid.

Usage::

    texture = smooth_field(rng, shape, spacing, correlation_mm=2.5)   # zero mean, unit SD
    image *= bias_field(rng, shape, amplitude=0.2)
    image = point_spread(image, in_plane_only=True)
    noise = NoisePool(rng, shape, count=2)
    image = rician_noise(image, 20.0, noise[0], noise[1])
"""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np
from scipy.ndimage import gaussian_filter1d

TEXTURE_CORRELATION_MM = 2.5
COARSE_STEP = 1.0  # coarse noise grid step, in correlation lengths: smooth enough, and cheap
BIAS_AMPLITUDE = (0.05, 0.25)  # log-amplitude of the smooth coil sensitivity variation
BIAS_HARMONICS = 2
# The MR point spread function (a sinc of the sampled k-space) as a Gaussian of this SD in voxels.
PSF_SIGMA_VOXELS = 0.42
PSF_TRUNCATE = 2.5
SIGNAL_FLOOR = 0.1  # voxels above this share of the maximum count as "signal" for the SNR


def _smoothing_matrix(count: int, spacing: float, correlation_mm: float) -> np.ndarray:
    """Rows: Gaussian weights from a coarse grid of white noise to ``count`` samples; unit variance out."""
    step = correlation_mm * COARSE_STEP
    extent = count * spacing
    coarse = np.arange(-3 * correlation_mm, extent + 3 * correlation_mm + step, step)
    positions = np.arange(count) * spacing
    weights = np.exp(-0.5 * ((positions[:, None] - coarse[None, :]) / correlation_mm) ** 2)
    return (weights / np.sqrt(np.sum(weights**2, axis=1, keepdims=True))).astype(np.float32)


def smooth_field(
    rng: np.random.Generator, shape: Tuple[int, int, int], spacing: Sequence[float], correlation_mm: float
) -> np.ndarray:
    """A stationary Gaussian random field (zero mean, unit SD) with a Gaussian correlation of ``correlation_mm``.

    ``shape`` is (k, j, i); ``spacing`` is (i, j, k) in mm, as SimpleITK gives it. White noise on a coarse grid
    is smoothed by one matrix product per axis, the slice axis first (the fewest output samples).
    """
    along_k, along_j, along_i = (
        _smoothing_matrix(count, float(step), correlation_mm)
        for count, step in zip(shape, (spacing[2], spacing[1], spacing[0]))
    )
    coarse = rng.standard_normal(size=(along_k.shape[1], along_j.shape[1], along_i.shape[1]), dtype=np.float32)
    field = (along_k @ coarse.reshape(along_k.shape[1], -1)).reshape(shape[0], along_j.shape[1], along_i.shape[1])
    field = np.matmul(along_j[None], field)  # (k, j, coarse i)
    return np.matmul(field, along_i.T[None])


def bias_field(rng: np.random.Generator, shape: Tuple[int, int, int], amplitude: float) -> np.ndarray:
    """A smooth multiplicative field exp(sum of low cosine harmonics along each axis), mean about 1."""
    log_field = np.zeros((1, 1, 1), dtype=np.float32)
    for axis, count in enumerate(shape):
        u = np.linspace(0.0, 1.0, count, dtype=np.float32)
        profile = np.zeros(count, dtype=np.float32)
        for harmonic in range(1, BIAS_HARMONICS + 1):
            weight = np.float32(amplitude * rng.normal() / harmonic)
            phase = np.float32(rng.uniform(0, 2 * np.pi))
            profile += weight * np.cos(np.float32(np.pi * harmonic) * u + phase)
        log_field = log_field + profile.reshape([-1 if a == axis else 1 for a in range(3)])
    return np.exp(log_field).astype(np.float32)


def point_spread(image: np.ndarray, *, in_plane_only: bool) -> np.ndarray:
    """Blur with the point spread function along the in-plane axes (and the slice axis for 3D sequences)."""
    axes = (1, 2) if in_plane_only else (0, 1, 2)
    for axis in axes:
        image = gaussian_filter1d(image, PSF_SIGMA_VOXELS, axis=axis, truncate=PSF_TRUNCATE, mode="nearest")
    return image


def signal_level(image: np.ndarray) -> float:
    """Mean intensity of the voxels that hold signal (above SIGNAL_FLOOR of the maximum), on a subsample."""
    sample = image[:, ::4, ::4]
    threshold = SIGNAL_FLOOR * float(sample.max())
    return float(sample[sample > threshold].mean()) if threshold > 0 else 1.0


def rician_noise(image: np.ndarray, snr: float, real: np.ndarray, imaginary: np.ndarray) -> np.ndarray:
    """Magnitude of the image plus complex Gaussian noise of SD signal_level / ``snr`` (Rician statistics).

    ``real`` and ``imaginary`` are standard normal arrays of the image's shape (see ``NoisePool``).
    """
    sigma = np.float32(signal_level(image) / snr)
    noisy = image + sigma * real
    return np.hypot(noisy, sigma * imaginary, out=noisy)


class NoisePool:
    """Standard normal noise for several images of one shape from a single draw.

    Drawing normal numbers is the slowest step of rendering, so each image's real and imaginary noise is the one
    pool rolled by a different large random offset: every voxel still gets independent values.
    """

    def __init__(self, rng: np.random.Generator, shape: Tuple[int, ...], count: int):
        self.shape = shape
        self._pool = rng.standard_normal(size=int(np.prod(shape)), dtype=np.float32)
        size = self._pool.size
        # Offsets spread over the pool (never equal), jittered so the spacing is not a fixed pattern.
        base = (np.arange(count) * size) // max(count, 1)
        jitter = rng.integers(0, max(size // (2 * max(count, 1)), 1), size=count)
        self._offsets = [int(v) for v in (base + jitter) % size]

    def __getitem__(self, index: int) -> np.ndarray:
        offset = self._offsets[index]
        return np.concatenate((self._pool[offset:], self._pool[:offset])).reshape(self.shape)
