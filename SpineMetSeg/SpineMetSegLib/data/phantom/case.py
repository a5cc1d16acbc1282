"""One synthetic case: ``generate_case`` draws a patient, findings and acquisition from a seed and renders it.

Usage::

    case = generate_case(7, acquisition="sagittal2d", contrast="standard")
    case.images["t1"], case.lesions, case.anatomy        # SimpleITK images on one grid
    case.info["lesions"][0]["type"]                      # "lytic" | "sclerotic" | "mixed"
    target = model_target(case)                          # labels.ModelLabel map for training

The seed fixes everything. Anatomy and findings, acquisition, intensities and noise come from independent
streams of ``numpy.random.SeedSequence(seed)``, so one seed shows the same patient with either acquisition or
contrast.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np
import SimpleITK as sitk

from ...errors import SpineMetSegError
from ...labels import PHANTOM_TO_MODEL, Anatomy, ModelLabel
from .acquisition import ACQUISITIONS, Acquisition, sample_acquisition
from .anatomy import CORTEX_MM, Spine, sample_spine
from .lesions import EPIDURAL_HOSTS, Findings, sample_findings
from .rendering import VoxelGrid, render_images, voxelize
from .tissues import CONTRASTS, LOOK_ALIKE_ANATOMY, SEQUENCES, IntensityTable, sample_intensities

PHANTOM_VERSION = 1
MAX_SEED = 2**63 - 1
POSTERIOR_WALL_MM = 2 * CORTEX_MM  # lesion voxels this close to the posterior wall line "reach" it


@dataclass
class PhantomCase:
    """A rendered case: three images, the lesion and anatomy label maps (one grid) and its description."""

    images: Dict[str, sitk.Image]  # "t1", "t2", "stir": float32
    lesions: sitk.Image  # uint16: 0 background, 1..K one value per lesion
    anatomy: sitk.Image  # uint8: labels.Anatomy values (the host tissue under a lesion)
    info: dict


def _check_arguments(seed: int, acquisition: Optional[str], contrast: str) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) <= MAX_SEED:
        raise SpineMetSegError(f"The phantom seed must be a whole number from 0 to {MAX_SEED}, got {seed!r}.")
    if acquisition is not None and acquisition not in ACQUISITIONS:
        raise SpineMetSegError(f"Unknown phantom acquisition {acquisition!r}; choose one of {', '.join(ACQUISITIONS)}.")
    if contrast not in CONTRASTS:
        raise SpineMetSegError(f"Unknown phantom contrast {contrast!r}; choose one of {', '.join(CONTRASTS)}.")


@dataclass
class CasePlan:
    """Everything drawn for a case before rendering; change ``acquisition`` to render the same patient on another
    grid (the speed benchmark does)."""

    seed: int
    contrast: str
    spine: Spine
    findings: Findings
    acquisition: Acquisition
    table: IntensityTable
    noise_rng: np.random.Generator


def plan_case(seed: int, *, acquisition: Optional[str] = None, contrast: str = "standard") -> CasePlan:
    """Draw patient, findings, grid and intensities of ``seed`` (cheap: nothing is rendered)."""
    _check_arguments(seed, acquisition, contrast)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(4)]
    anatomy_rng, acquisition_rng, contrast_rng, noise_rng = streams
    spine = sample_spine(anatomy_rng)
    findings = sample_findings(anatomy_rng, spine)
    drawn_kind = ACQUISITIONS[int(acquisition_rng.integers(len(ACQUISITIONS)))]
    grid_spec = sample_acquisition(acquisition_rng, acquisition or drawn_kind, spine)
    table = sample_intensities(
        contrast_rng,
        contrast,
        lesion_kinds=[m.kind for m in findings.metastases],
        look_alike_kinds=[f.kind for f in findings.look_alikes],
    )
    return CasePlan(int(seed), contrast, spine, findings, grid_spec, table, noise_rng)


def generate_case(seed: int, *, acquisition: Optional[str] = None, contrast: str = "standard") -> PhantomCase:
    """Render the synthetic case of ``seed``.

    ``acquisition``: "sagittal2d" (2D multislice, 0.5-1 mm in plane, 3-5 mm slices), "iso3d" (1 mm isotropic) or
    None (drawn from the seed). ``contrast``: "standard" (textbook tissue contrasts with per-case variation) or
    "randomized" (random intensity per tissue and sequence; lesions still differ from marrow).
    """
    return render_case(plan_case(seed, acquisition=acquisition, contrast=contrast))


def render_case(plan: CasePlan) -> PhantomCase:
    """Voxelise and render a planned case."""
    spine, findings, grid_spec, table = plan.spine, plan.findings, plan.acquisition, plan.table
    grid = voxelize(spine, findings, grid_spec, table)
    arrays, sequence_details = render_images(plan.noise_rng, grid, grid_spec, table)

    labels, kept = _renumber(grid.lesions, len(findings.metastases))
    images = {name: _image(arrays[name], grid_spec) for name in SEQUENCES}
    info = {
        "phantom_version": PHANTOM_VERSION,
        "seed": plan.seed,
        "contrast": plan.contrast,
        "acquisition": grid_spec.summary(),
        "vertebrae": _vertebrae_info(spine, grid_spec),
        "lesions": _lesions_info(findings, spine, grid, labels, kept, grid_spec),
        "look_alikes": _look_alikes_info(findings, spine, grid, grid_spec),
        "sequences": {
            name: {**sequence_details[name], "tissue_intensity": _tissue_intensities(table, index)}
            for index, name in enumerate(SEQUENCES)
        },
    }
    return PhantomCase(images, _image(labels, grid_spec), _image(grid.anatomy, grid_spec), info)


def model_target(case: PhantomCase) -> sitk.Image:
    """The training target: ``labels.ModelLabel`` values (anatomy via PHANTOM_TO_MODEL, lesions painted as 1)."""
    anatomy = sitk.GetArrayViewFromImage(case.anatomy)
    lut = np.zeros(256, dtype=np.uint8)
    for tissue, label in PHANTOM_TO_MODEL.items():
        lut[tissue] = label
    target = lut[anatomy]
    target[sitk.GetArrayViewFromImage(case.lesions) > 0] = ModelLabel.METASTASIS
    image = sitk.GetImageFromArray(target)
    image.CopyInformation(case.anatomy)
    return image


def _image(array: np.ndarray, acquisition: Acquisition) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(acquisition.spacing)
    image.SetOrigin(acquisition.origin)
    image.SetDirection(acquisition.direction)
    return image


def _renumber(lesions: np.ndarray, count: int):
    """Lesion labels 1..K in order of the metastases that kept at least one voxel; returns (labels, kept)."""
    present = np.zeros(count + 1, dtype=bool)
    present[np.unique(lesions)] = True
    kept = [index for index in range(count) if present[index + 1]]
    lut = np.zeros(count + 1, dtype=np.uint16)
    for new, index in enumerate(kept, start=1):
        lut[index + 1] = new
    return lut[lesions], kept


def _physical_centroid(indices: np.ndarray, acquisition: Acquisition) -> List[float]:
    """LPS centroid of voxel indices given as (k, j, i) rows."""
    k, j, i = indices.mean(axis=0)
    direction = np.reshape(acquisition.direction, (3, 3))
    point = np.asarray(acquisition.origin) + direction @ (np.array([i, j, k]) * np.asarray(acquisition.spacing))
    return [round(float(v), 3) for v in point]


def _vertebrae_info(spine: Spine, acquisition: Acquisition) -> List[dict]:
    result = []
    for k in range(spine.count):
        y, z = spine.point(spine.centre_s[k], -spine.half_depth[k])
        result.append(
            {
                "name": spine.names[k],
                "fully_in_view": k in spine.visible,
                "centre_lps_mm": [round(v, 3) for v in acquisition.to_physical(np.array([0.0, y, z]))],
                "height_mm": round(float(2 * spine.half_height[k]), 2),
            }
        )
    return result[::-1]  # top-down, as a radiologist lists them


def _lesions_info(
    findings: Findings, spine: Spine, grid: VoxelGrid, labels: np.ndarray, kept: List[int], acquisition: Acquisition
) -> List[dict]:
    voxel_ml = float(np.prod(acquisition.spacing)) / 1000.0
    spacing_kji = np.array(acquisition.spacing[::-1])
    result = []
    for label, index in enumerate(kept, start=1):
        lesion = findings.metastases[index]
        voxels = np.argwhere(labels == label)
        hosts = grid.anatomy[tuple(voxels.T)]
        n_values = grid.n[voxels[:, 1], voxels[:, 2]]
        cortex = hosts == Anatomy.CORTICAL_BONE
        extent = (voxels.max(axis=0) - voxels.min(axis=0) + 1) * spacing_kji
        result.append(
            {
                "id": label,
                "type": lesion.kind,
                "vertebra": spine.names[lesion.vertebra],
                "volume_ml": round(len(voxels) * voxel_ml, 4),
                "diameter_mm": round(lesion.nominal_diameter, 2),
                "extent_ijk_mm": [round(float(v), 2) for v in extent[::-1]],
                "voxels": int(len(voxels)),
                "centre_lps_mm": _physical_centroid(voxels, acquisition),
                "site": lesion.site,
                "reaches_pedicle": bool(np.any(hosts == Anatomy.PEDICLE)),
                "reaches_posterior_wall": bool(np.any(cortex & (n_values > -POSTERIOR_WALL_MM))),
                "epidural": bool(np.any(np.isin(hosts, [int(h) for h in EPIDURAL_HOSTS]))),
                "sclerotic_fraction": _sclerotic_fraction(grid, lesion, voxels),
            }
        )
    return result


def _sclerotic_fraction(grid: VoxelGrid, lesion, voxels: np.ndarray) -> Optional[float]:
    """Sclerotic share of the lesion's voxels whose centre lies in it (0 lytic, 1 sclerotic, between: mixed).

    None for a mixed lesion so small that no voxel centre lies in it (it is labelled by partial volume only).
    """
    if lesion.kind != "mixed":
        return 1.0 if lesion.kind == "sclerotic" else 0.0
    painted = grid.painted[tuple(voxels.T)]
    sclerotic = np.count_nonzero(painted == lesion.sclerotic_id)
    lytic = np.count_nonzero(painted == lesion.lytic_id)
    return round(float(sclerotic / (sclerotic + lytic)), 3) if sclerotic + lytic else None


def _look_alikes_info(findings: Findings, spine: Spine, grid: VoxelGrid, acquisition: Acquisition) -> List[dict]:
    voxel_ml = float(np.prod(acquisition.spacing)) / 1000.0
    result = []
    for finding in findings.look_alikes:
        voxels = np.argwhere(grid.tissue == finding.tissue_id)
        entry = {
            "kind": finding.kind,
            "anatomy_label": int(LOOK_ALIKE_ANATOMY[finding.kind]),
            "vertebra": spine.names[finding.vertebra],
            "diameter_mm": round(finding.nominal_diameter, 2),
            "volume_ml": round(len(voxels) * voxel_ml, 4),
            "voxels": int(len(voxels)),
        }
        if len(voxels):
            entry["centre_lps_mm"] = _physical_centroid(voxels, acquisition)
        result.append(entry)
    return result


def _tissue_intensities(table, sequence: int) -> Dict[str, float]:
    return {tissue.name.lower(): round(float(table.mean[sequence, tissue]), 4) for tissue in Anatomy}
