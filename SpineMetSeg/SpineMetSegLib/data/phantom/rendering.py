"""Voxelise the anatomy and findings on the acquisition grid and render T1, T2 and STIR images.

Each slice is sampled at its sub-slice positions (several across a thick 2D slice). At every sub-slice the
tissue ids come from ``anatomy.SpineSection``, look-alikes and metastases are painted where their hosts allow,
and the per-tissue intensities of the three sequences are accumulated, so a voxel's signal is the mean over its
thickness (partial volume). Labels are taken as a voxel's truth: anatomy at the voxel centre, a metastasis where
it fills at least half of the voxel's sub-slices and the tissue at the centre may host it.

Usage::

    grid = voxelize(spine, findings, acquisition, table)
    images = render_images(rng, grid, acquisition, table)   # {"t1": array, ...}, float32, (k, j, i)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from .acquisition import Acquisition
from .anatomy import Spine, SpineSection
from .artefacts import (
    BIAS_AMPLITUDE,
    TEXTURE_CORRELATION_MM,
    NoisePool,
    bias_field,
    point_spread,
    rician_noise,
    smooth_field,
)
from .lesions import Findings
from .tissues import SEQUENCES, TISSUE_COUNT, IntensityTable, anatomy_lut

Window = Tuple[slice, slice]

SNR_RANGE = {"t1": (12.0, 40.0), "t2": (12.0, 40.0), "stir": (8.0, 25.0)}
RANDOMIZED_SNR_RANGE = (5.0, 50.0)
SCANNER_SCALE = (300.0, 1500.0)  # arbitrary scanner units of the written images
RANDOMIZED_BIAS_FACTOR = 2.0


@dataclass
class VoxelGrid:
    """The voxelised case on the acquisition grid; arrays indexed (k, j, i)."""

    intensity: np.ndarray  # (3, k, j, i): mean over sub-slices of the tissue means
    texture: np.ndarray  # (3, k, j, i): mean over sub-slices of the tissue texture amplitudes
    tissue: np.ndarray  # uint8 tissue ids at the voxel centres, metastases not painted
    painted: np.ndarray  # uint8 tissue ids at the voxel centres with metastases painted
    anatomy: np.ndarray  # uint8 labels.Anatomy
    lesions: np.ndarray  # uint16, 0 or the 1-based index of the metastasis in findings.metastases
    s: np.ndarray  # in-plane spine coordinates (j, i)
    n: np.ndarray


def _window(shape, s: np.ndarray, n: np.ndarray) -> Optional[Window]:
    """The in-plane rows and columns whose (s, n) box can hold ``shape``; None when it is out of the field."""
    half = shape.half_extent
    mask = (np.abs(s - shape.centre[0]) <= half[0]) & (np.abs(n - shape.centre[1]) <= half[1])
    rows = np.flatnonzero(mask.any(axis=1))
    columns = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0 or columns.size == 0:
        return None
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(columns[0]), int(columns[-1]) + 1)


def _host_table(hosts) -> np.ndarray:
    table = np.zeros(TISSUE_COUNT, dtype=bool)
    table[[int(h) for h in hosts]] = True
    return table


def voxelize(spine: Spine, findings: Findings, acquisition: Acquisition, table: IntensityTable) -> VoxelGrid:
    """Sample tissues, findings and intensities of every sub-slice of the grid."""
    ni, nj, nk = acquisition.size
    y, z = acquisition.in_plane_yz()
    s, n = spine.straighten_grid(y, z)
    section = SpineSection(spine, s, n)
    look_alikes = [(f, _window(f.shape, s, n), _host_table(f.hosts)) for f in findings.look_alikes]
    metastases = [(m, _window(m.shape, s, n), _host_table(m.hosts)) for m in findings.metastases]
    counts: List[Optional[np.ndarray]] = [
        None if w is None else np.zeros((nk, w[0].stop - w[0].start, w[1].stop - w[1].start), dtype=np.uint8)
        for _, w, _ in metastases
    ]

    # One gather per slice: intensities (3 means, 3 texture amplitudes) averaged over the sub-slices, computed
    # per sub-slice only where the sub-slices disagree (edges), which are a small share of the voxels.
    sub_count = len(acquisition.sub_offsets)
    properties = np.concatenate([table.mean, table.texture]) / np.float32(sub_count)
    intensity = np.zeros((2 * len(SEQUENCES), nk, nj, ni), dtype=np.float32)
    centre_tissue = np.zeros((nk, nj, ni), dtype=np.uint8)
    centre_painted = np.zeros_like(centre_tissue)
    centre = sub_count // 2
    stack = np.empty((sub_count, nj, ni), dtype=np.uint8)
    for k in range(nk):
        for sub, a in enumerate(acquisition.lateral_positions(k)):
            a = float(a)
            tissue = stack[sub]
            tissue[...] = section.tissues(a)
            for finding, window, hosts in look_alikes:
                if window is None or abs(a - finding.shape.centre[2]) > finding.shape.half_extent[2]:
                    continue
                part = tissue[window]
                inside = finding.shape.inside(s[window], n[window], a) & hosts[part]
                part[inside] = finding.tissue_id
            if sub == centre:
                centre_tissue[k] = tissue
            for (lesion, window, hosts), count in zip(metastases, counts):
                if window is None or abs(a - lesion.shape.centre[2]) > lesion.shape.half_extent[2]:
                    continue
                part = tissue[window]
                inside = lesion.shape.inside(s[window], n[window], a) & hosts[part]
                if inside.any():
                    count[k][inside] += 1
                    part[inside] = lesion.tissue_ids(s[window], n[window], a)[inside]
            if sub == centre:
                centre_painted[k] = tissue
        _accumulate(intensity[:, k], stack, properties)

    anatomy = anatomy_lut([f.kind for f in findings.look_alikes])[centre_tissue]
    lesions = _lesion_labels(findings, metastases, counts, anatomy, len(acquisition.sub_offsets))
    return VoxelGrid(
        intensity[: len(SEQUENCES)],
        intensity[len(SEQUENCES) :],
        centre_tissue,
        centre_painted,
        anatomy,
        lesions,
        s,
        n,
    )


def _accumulate(out: np.ndarray, stack: np.ndarray, properties: np.ndarray) -> None:
    """out[p] = sum over sub-slices of properties[p, tissue] for one slice (``properties`` already averaged)."""
    count = len(stack)
    first = stack[0].astype(np.intp)
    whole = properties * np.float32(count)
    for p in range(len(properties)):
        np.take(whole[p], first, out=out[p])
    if count == 1:
        return
    mixed = np.zeros(first.shape, dtype=bool)
    for other in stack[1:]:
        mixed |= other != stack[0]
    mixed = np.flatnonzero(mixed)
    if mixed.size == 0:
        return
    samples = stack.reshape(count, -1)[:, mixed].astype(np.intp)
    for p in range(len(properties)):
        out[p].reshape(-1)[mixed] = properties[p][samples].sum(axis=0)


def _lesion_labels(findings: Findings, metastases, counts, anatomy: np.ndarray, sub_slices: int) -> np.ndarray:
    """Label each voxel with the metastasis filling most of it (at least half), where its centre can host it.

    A small lesion that never fills half a voxel still gets the voxels it fills most, so every rendered lesion
    is labelled somewhere.
    """
    labels = np.zeros(anatomy.shape, dtype=np.uint16)
    best = np.zeros(anatomy.shape, dtype=np.uint8)
    majority = sub_slices // 2 + 1
    for index, ((_, window, hosts), count) in enumerate(zip(metastases, counts)):
        if window is None:
            continue
        region = (slice(None),) + window
        allowed = hosts[anatomy[region]] & (count > 0)
        if not allowed.any():
            continue
        chosen = allowed & (count >= majority)
        if not chosen.any():
            chosen = allowed & (count == count[allowed].max())
        take = chosen & (count > best[region])
        labels[region][take] = index + 1
        best[region][take] = count[take]
    return labels


def render_images(
    rng: np.random.Generator, grid: VoxelGrid, acquisition: Acquisition, table: IntensityTable
) -> Tuple[Dict[str, np.ndarray], Dict[str, dict]]:
    """T1, T2 and STIR images (float32, scanner units) with texture, PSF, bias field and Rician noise.

    Returns the images and, per sequence, the drawn SNR, bias amplitude and scale (for case.json).
    """
    shape = grid.anatomy.shape
    texture = smooth_field(rng, shape, acquisition.spacing, TEXTURE_CORRELATION_MM)
    noise = NoisePool(rng, shape, count=2 * len(SEQUENCES))
    randomized = table.contrast == "randomized"
    images: Dict[str, np.ndarray] = {}
    details: Dict[str, dict] = {}
    for index, name in enumerate(SEQUENCES):
        image = grid.intensity[index] + texture * grid.texture[index]
        np.maximum(image, 0.0, out=image)
        image = point_spread(image, in_plane_only=acquisition.kind == "sagittal2d")
        amplitude = rng.uniform(*BIAS_AMPLITUDE) * (RANDOMIZED_BIAS_FACTOR if randomized else 1.0)
        image *= bias_field(rng, shape, amplitude)
        snr = rng.uniform(*(RANDOMIZED_SNR_RANGE if randomized else SNR_RANGE[name]))
        image = rician_noise(image, snr, noise[2 * index], noise[2 * index + 1])
        scale = rng.uniform(*SCANNER_SCALE)
        image *= np.float32(scale)
        images[name] = image.astype(np.float32, copy=False)
        details[name] = {"snr": round(snr, 3), "bias_amplitude": round(amplitude, 4), "scale": round(scale, 3)}
    return images, details
