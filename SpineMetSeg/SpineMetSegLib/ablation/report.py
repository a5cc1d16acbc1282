"""A plan as JSON and as a picture: three slices through the zone with the lesion, canal, body, zone and probe.

Usage::

    document = plan_document(result, devices_used, proposal=proposal, source="seg.nii.gz")
    write_plan_json(document, "plan.json")
    plan_png(anatomy, result.lesion, zones, "plan.png", result=result, image=t1)   # image: optional background
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import SimpleITK as sitk

from .. import __version__, imageio
from ..atomicfile import PathLike, atomic_path, write_text_atomic
from ..voxelgrid import VoxelGrid
from .anatomy import LPS_TO_RAS, PlanAnatomy
from .device_table import AblationDevice
from .evaluation import PLANNING_NOTE, PlanResult
from .zone import ZoneUnion

# Okabe-Ito colours, as in ``figures``.
LESION_COLOUR = (0.84, 0.37, 0.0)
CANAL_COLOUR = (0.0, 0.45, 0.70)
BODY_COLOUR = (0.8, 0.8, 0.8)
ZONE_COLOUR = (0.94, 0.89, 0.26)
PROBE_COLOUR = (0.0, 0.62, 0.45)
BROKEN_COLOUR = (0.8, 0.0, 0.0)
FIGURE_DPI = 120
PANEL_INCHES = 4.0
# How much of the probe's line behind the tip is drawn.
PROBE_DRAWN_MM = 60.0
# Each panel shows this much around the zone centre.
VIEW_HALF_WIDTH_MM = 40.0


def plan_document(
    result: PlanResult,
    devices: Sequence[AblationDevice],
    *,
    source: str = "",
    proposal: Optional[Dict[str, Any]] = None,
    settings: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """The plan as a JSON-ready dict: measures, limits, probes, the devices used (with sources), the note."""
    return {
        "spinemetseg_version": __version__,
        "segmentation": source,
        "lesion": result.lesion,
        "mode": "proposal" if proposal is not None else "probes given",
        "measures": result.as_dict(),
        "devices": [device.as_dict() for device in devices],
        "proposal": proposal,
        "settings": settings or {},
        "note": PLANNING_NOTE,
    }


def write_plan_json(document: Dict[str, Any], path: PathLike) -> None:
    write_text_atomic(path, json.dumps(document, indent=2, allow_nan=False) + "\n")


def summary_lines(result: PlanResult) -> List[str]:
    """Human-readable lines; a broken limit is marked ``(!)``."""

    def mark(ok: Optional[bool]) -> str:
        return "  (!)" if ok is False else ""

    lines = [
        f"lesion {result.lesion}: {result.lesion_volume_ml:.2f} mL",
        f"coverage        {100 * result.coverage:6.1f} %  uncovered {result.uncovered_volume_ml:.3f} mL"
        + mark(result.fully_covered),
        f"margin          {result.margin_mm:6.1f} mm (asked {result.required_margin_mm:g})" + mark(result.margin_ok),
    ]
    if result.zone_to_canal_mm is None:
        lines.append("canal           no canal label in the map: distance not measured")
    else:
        canal, shaft = result.required_canal_clearance_mm, result.required_shaft_clearance_mm
        lines.append(f"zone to canal   {result.zone_to_canal_mm:6.1f} mm (asked {canal:g})" + mark(result.canal_ok))
        lines.append(f"probe to canal  {result.shaft_to_canal_mm:6.1f} mm (asked {shaft:g})" + mark(result.shaft_ok))
    share = result.zone_outside_body_share
    lines.append(f"body in zone    {result.body_in_zone_ml:6.2f} mL; zone outside the body "
                 + ("-" if share is None else f"{100 * share:.0f} %"))
    if result.zone_leaves_image:
        lines.append("the zone reaches past the image: the part outside is not counted")
    return lines


def plan_png(
    anatomy: PlanAnatomy,
    lesion: int,
    zones: ZoneUnion,
    path: PathLike,
    *,
    result: Optional[PlanResult] = None,
    image: Optional[sitk.Image] = None,
    title: str = "",
) -> None:
    """Axial, sagittal and coronal slices through the first zone's centre (radiological axial: patient right on
    the left), with the body, canal, lesion, zone outline and probe line; ``image`` (e.g. T1) as background."""
    from matplotlib.figure import Figure

    reference = sitk.GetImageFromArray(np.zeros(anatomy.grid.shape, dtype=np.uint8))
    reference.SetSpacing(anatomy.grid.spacing_ijk)
    reference.SetOrigin(anatomy.grid.origin)
    reference.SetDirection(tuple(float(v) for v in anatomy.grid.direction.ravel()))

    def lps_array(array: np.ndarray) -> np.ndarray:
        layer = sitk.GetImageFromArray(array.astype(np.uint8))
        layer.CopyInformation(reference)
        return sitk.GetArrayFromImage(imageio.reorient(layer, "LPS"))

    layers = {
        "body": lps_array(anatomy.body),
        "canal": lps_array(anatomy.canal),
        "lesion": lps_array(anatomy.lesions == lesion),
        "other lesions": lps_array((anatomy.lesions > 0) & (anatomy.lesions != lesion)),
    }
    oriented = imageio.reorient(reference, "LPS")
    grid = VoxelGrid.of(oriented)
    background = None
    if image is not None:
        background = sitk.GetArrayFromImage(imageio.reorient(imageio.resample_to(image, reference), "LPS"))
    centre = zones.zones[0].centre
    centre_index = _continuous_index(grid, centre[None, :])[0]
    spacing = np.array(grid.spacing_ijk)[::-1]  # along k, j, i
    figure = Figure(figsize=(4 * PANEL_INCHES, PANEL_INCHES + 0.4), dpi=FIGURE_DPI)
    views = (("axial (from below; R left, A up)", 0, "upper"), ("sagittal (A left, S up)", 2, "lower"),
             ("coronal (R left, S up)", 1, "lower"))
    for number, (name, axis, origin) in enumerate(views, start=1):
        axes = figure.add_subplot(1, 4, number + 1)
        index = int(np.clip(round(centre_index[axis]), 0, grid.shape[axis] - 1))
        take = [slice(None)] * 3
        take[axis] = index
        take = tuple(take)
        shown = [a for a in range(3) if a != axis]  # rows, columns of the slice
        aspect = spacing[shown[0]] / spacing[shown[1]]
        if background is not None:
            picture = background[take].astype(float)
            axes.imshow(picture, cmap="gray", origin=origin, aspect=aspect)
        else:
            axes.imshow(np.zeros(grid.shape)[take], cmap="gray", origin=origin, aspect=aspect, vmin=0, vmax=1)
        for key, colour, alpha in (("body", BODY_COLOUR, 0.35), ("canal", CANAL_COLOUR, 0.6),
                                   ("other lesions", LESION_COLOUR, 0.3), ("lesion", LESION_COLOUR, 0.85)):
            mask = layers[key][take]
            if mask.any():
                rgba = np.zeros(mask.shape + (4,))
                rgba[mask > 0] = (*colour, alpha)
                axes.imshow(rgba, origin=origin, aspect=aspect, interpolation="nearest")
        # The zone's outline on the slice, from its voxel centres.
        indices = np.indices((grid.shape[shown[0]], grid.shape[shown[1]])).reshape(2, -1).T
        full = np.zeros((len(indices), 3))
        full[:, axis] = index
        full[:, shown[0]] = indices[:, 0]
        full[:, shown[1]] = indices[:, 1]
        inside = zones.contains(grid.physical_points(full) * LPS_TO_RAS)
        zone_mask = inside.reshape(grid.shape[shown[0]], grid.shape[shown[1]])
        if zone_mask.any():
            # Row r, column c at data (c, r), as imshow puts them: the y direction comes from the limits set below.
            axes.contour(zone_mask.astype(float), levels=[0.5], colors=[ZONE_COLOUR], linewidths=1.5)
        for zone in zones.zones:
            line = np.stack([zone.tip, zone.tip - zone.direction * PROBE_DRAWN_MM])
            ends = _continuous_index(grid, line)
            axes.plot(ends[:, shown[1]], ends[:, shown[0]], color=PROBE_COLOUR, linewidth=2)
        half = VIEW_HALF_WIDTH_MM / spacing[shown]
        axes.set_xlim(centre_index[shown[1]] - half[1], centre_index[shown[1]] + half[1])
        low, high = centre_index[shown[0]] - half[0], centre_index[shown[0]] + half[0]
        axes.set_ylim((high, low) if origin == "upper" else (low, high))
        axes.set_title(name, fontsize=8)
        axes.set_axis_off()
    text_axes = figure.add_subplot(1, 4, 1)
    text_axes.set_axis_off()
    lines = ([title] if title else []) + (summary_lines(result) if result is not None else [])
    for row, line in enumerate(lines):
        broken = "(!)" in line
        text_axes.text(0.0, 1.0 - row * 0.07, line.replace("  (!)", " (!)"), fontsize=7, family="monospace",
                       color=BROKEN_COLOUR if broken else "black", va="top", transform=text_axes.transAxes)
    text_axes.text(0.0, 0.02, "Planning support only: zone sizes vary\nwith tissue and device settings.", fontsize=7,
                   va="bottom", transform=text_axes.transAxes)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png")


def _continuous_index(grid: VoxelGrid, points_ras: np.ndarray) -> np.ndarray:
    lps = np.asarray(points_ras, dtype=float).reshape(-1, 3) * LPS_TO_RAS
    ijk = (lps - np.asarray(grid.origin)) @ grid.direction / np.asarray(grid.spacing_ijk)
    return ijk[:, ::-1]
