"""A plan as JSON and as a picture: a 3D view and three slices with the lesion, canal, body, zone and probe.

Usage::

    document = plan_document(result, devices_used, proposal=proposal, source="seg.nii.gz")
    write_plan_json(document, "plan.json")
    plan_png(anatomy, result.lesion, zones, "plan.png", result=result, image=t1)   # image: optional background
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from ... import __version__
from ...images import imageio
from ...images.atomicfile import PathLike, atomic_path, write_text_atomic
from ...images.voxelgrid import VoxelGrid
from ..surface_distance import surface_mask
from .anatomy import LPS_TO_RAS, PlanAnatomy
from .device_table import AblationDevice
from .evaluation import PLANNING_NOTE, PlanResult
from .zone import ZoneUnion, perpendicular_axes

# Okabe-Ito colours, as in ``figures``.
LESION_COLOUR = (0.84, 0.37, 0.0)
CANAL_COLOUR = (0.0, 0.45, 0.70)
BODY_COLOUR = (0.8, 0.8, 0.8)
BODY_3D_COLOUR = (0.45, 0.45, 0.45)
ZONE_COLOUR = (0.94, 0.89, 0.26)
PROBE_COLOUR = (0.0, 0.62, 0.45)
BROKEN_COLOUR = (0.8, 0.0, 0.0)
FIGURE_DPI = 120
PANEL_INCHES = 4.0
# How much of the probe's line behind the tip is drawn.
PROBE_DRAWN_MM = 60.0
# Each panel shows this much around the zone centre.
VIEW_HALF_WIDTH_MM = 40.0
# The image plane in the 3D view is drawn from at most this many samples a side.
PLANE_SAMPLES = 80
# The 3D view looks from behind and the patient's right (-R, -A), the side a posterior probe enters from.
VIEW_AZIMUTH_DEG = -130


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
    if result.tip_depth_in_body_mm is not None:
        depths = ", ".join("outside the image" if d is None else f"{d:.1f}" for d in result.tip_depth_in_body_mm)
        lines.append(f"tip in body     {depths} mm deep" + mark(result.tips_ok))
    share = result.zone_outside_body_share
    if result.body_in_zone_ml is None:
        lines.append("body            no vertebral-body label in the map: not measured")
    else:
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
    """A 3D view (body, canal, lesion, zone, probe; ``image``'s sagittal plane through the zone behind them) and
    axial, sagittal and coronal slices through the first zone's centre (radiological axial: patient right on the
    left) with the zone's outline; ``image`` (e.g. T1) as the slices' background; the numbers beside."""
    from matplotlib.figure import Figure

    scene = _PictureScene(anatomy, lesion, zones, image)
    figure = Figure(figsize=(3 * PANEL_INCHES, 2.3 * PANEL_INCHES), dpi=FIGURE_DPI)
    grid = figure.add_gridspec(2, 3, height_ratios=(1.3, 1.0))
    text_axes = figure.add_subplot(grid[0, 0])
    text_axes.set_axis_off()
    lines = ([title] if title else []) + (summary_lines(result) if result is not None else [])
    for row, line in enumerate(lines):
        text_axes.text(0.0, 1.0 - row * 0.06, line.replace("  (!)", " (!)"), fontsize=7, family="monospace",
                       color=BROKEN_COLOUR if "(!)" in line else "black", va="top", transform=text_axes.transAxes)
    text_axes.text(0.0, 0.02, "Planning support only: zone sizes vary\nwith tissue and device settings.",
                   fontsize=7, va="bottom", transform=text_axes.transAxes)
    scene.draw_3d(figure.add_subplot(grid[0, 1:], projection="3d"))
    views = (("axial (from below; R left, A up)", 0, True), ("sagittal (A left, S up)", 2, False),
             ("coronal (R left, S up)", 1, False))
    for column, (name, axis, downward) in enumerate(views):
        scene.draw_slice(figure.add_subplot(grid[1, column]), name, axis, downward)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png")


class _PictureScene:
    """The plan's layers on an LPS-ordered array (k: S, j: P, i: L), ready to draw."""

    def __init__(self, anatomy: PlanAnatomy, lesion: int, zones: ZoneUnion, image: Optional[sitk.Image]):
        reference = sitk.GetImageFromArray(np.zeros(anatomy.grid.shape, dtype=np.uint8))
        reference.SetSpacing(anatomy.grid.spacing_ijk)
        reference.SetOrigin(anatomy.grid.origin)
        reference.SetDirection(tuple(float(v) for v in anatomy.grid.direction.ravel()))

        def lps_array(array: np.ndarray) -> np.ndarray:
            layer = sitk.GetImageFromArray(array.astype(np.uint8))
            layer.CopyInformation(reference)
            return sitk.GetArrayFromImage(imageio.reorient(layer, "LPS")) > 0

        self.layers = {
            "body": lps_array(anatomy.body),
            "canal": lps_array(anatomy.canal),
            "other lesions": lps_array((anatomy.lesions > 0) & (anatomy.lesions != lesion)),
            "lesion": lps_array(anatomy.lesions == lesion),
        }
        self.grid = VoxelGrid.of(imageio.reorient(reference, "LPS"))
        self.background = None
        if image is not None:
            resampled = imageio.reorient(imageio.resample_to(image, reference), "LPS")
            self.background = sitk.GetArrayFromImage(resampled).astype(float)
        self.zones = zones
        self.centre = zones.zones[0].centre
        self.centre_index = _continuous_index(self.grid, self.centre[None, :])[0]
        self.spacing = np.array(self.grid.spacing_ijk)[::-1]  # along k, j, i

    def draw_slice(self, axes, name: str, axis: int, downward: bool) -> None:
        grid, spacing = self.grid, self.spacing
        origin = "upper" if downward else "lower"
        index = int(np.clip(round(self.centre_index[axis]), 0, grid.shape[axis] - 1))
        take = tuple(index if a == axis else slice(None) for a in range(3))
        shown = [a for a in range(3) if a != axis]  # the slice's rows, columns
        aspect = spacing[shown[0]] / spacing[shown[1]]
        picture = self.background[take] if self.background is not None else np.zeros(self.layers["body"][take].shape)
        axes.imshow(picture, cmap="gray", origin=origin, aspect=aspect)
        for key, colour, alpha in (("body", BODY_COLOUR, 0.35), ("canal", CANAL_COLOUR, 0.6),
                                   ("other lesions", LESION_COLOUR, 0.3), ("lesion", LESION_COLOUR, 0.85)):
            mask = self.layers[key][take]
            if mask.any():
                rgba = np.zeros(mask.shape + (4,))
                rgba[mask] = (*colour, alpha)
                axes.imshow(rgba, origin=origin, aspect=aspect, interpolation="nearest")
        # The zone's outline on the slice, from its voxel centres.
        rows, columns = grid.shape[shown[0]], grid.shape[shown[1]]
        indices = np.indices((rows, columns)).reshape(2, -1).T
        full = np.zeros((len(indices), 3))
        full[:, axis] = index
        full[:, shown] = indices
        zone_mask = self.zones.contains(grid.physical_points(full) * LPS_TO_RAS).reshape(rows, columns)
        if zone_mask.any():
            # Row r, column c at data (c, r), as imshow puts them: the y direction comes from the limits set below.
            axes.contour(zone_mask.astype(float), levels=[0.5], colors=[ZONE_COLOUR], linewidths=1.5)
        for zone in self.zones.zones:
            ends = _continuous_index(grid, np.stack([zone.tip, zone.tip - zone.direction * PROBE_DRAWN_MM]))
            axes.plot(ends[:, shown[1]], ends[:, shown[0]], color=PROBE_COLOUR, linewidth=2)
        half = VIEW_HALF_WIDTH_MM / spacing[shown]
        axes.set_xlim(self.centre_index[shown[1]] - half[1], self.centre_index[shown[1]] + half[1])
        low, high = self.centre_index[shown[0]] - half[0], self.centre_index[shown[0]] + half[0]
        axes.set_ylim((high, low) if downward else (low, high))
        axes.set_title(name, fontsize=8)
        axes.set_axis_off()

    def _surface_points(self, key: str, box: Tuple[slice, ...], limit: int) -> np.ndarray:
        mask = self.layers[key][box]
        points = np.argwhere(surface_mask(mask)) + np.array([s.start for s in box])
        if len(points) > limit:
            points = points[:: int(np.ceil(len(points) / limit))]
        return self.grid.physical_points(points) * LPS_TO_RAS

    def draw_3d(self, axes) -> None:
        """Surface voxels as points (no mesh library needed), the zones as wireframes, the probes as lines."""
        reach = VIEW_HALF_WIDTH_MM
        low = np.floor(self.centre_index - reach / self.spacing).astype(int)
        high = np.ceil(self.centre_index + reach / self.spacing).astype(int) + 1
        box = tuple(slice(int(max(a, 0)), int(min(b, n))) for a, b, n in zip(low, high, self.grid.shape))
        axes.computed_zorder = False  # drawn in call order: the image wall first, the probe last
        if self.background is not None:
            self._draw_image_plane(axes, box)
        for key, colour, alpha, size, limit in (("body", BODY_3D_COLOUR, 0.35, 1.5, 6000),
                                                ("canal", CANAL_COLOUR, 0.25, 1.5, 3000),
                                                ("other lesions", LESION_COLOUR, 0.4, 2.0, 2000),
                                                ("lesion", LESION_COLOUR, 0.9, 4.0, 3000)):
            points = self._surface_points(key, box, limit)
            if len(points):
                axes.scatter(points[:, 0], points[:, 1], points[:, 2], s=size, color=colour, alpha=alpha,
                             depthshade=False, linewidths=0)
        for zone in self.zones.zones:
            _draw_zone_wireframe(axes, zone)
            probe = np.stack([zone.tip, zone.tip - zone.direction * PROBE_DRAWN_MM])
            axes.plot(probe[:, 0], probe[:, 1], probe[:, 2], color=PROBE_COLOUR, linewidth=2.5)
        for axis_number, setter in enumerate((axes.set_xlim, axes.set_ylim, axes.set_zlim)):
            setter(self.centre[axis_number] - reach, self.centre[axis_number] + reach)
        axes.set_box_aspect((1, 1, 1))
        axes.set_xlabel("R (mm)", fontsize=7)
        axes.set_ylabel("A (mm)", fontsize=7)
        axes.set_zlabel("S (mm)", fontsize=7)
        axes.tick_params(labelsize=6)
        axes.view_init(elev=20, azim=VIEW_AZIMUTH_DEG)
        title = "3D: body (grey), canal (blue), lesion (orange), zone (yellow), probe (green)"
        if self.background is not None:
            title += "\nback wall: the image's sagittal slice through the zone centre"
        axes.set_title(title, fontsize=8)

    def _draw_image_plane(self, axes, box: Tuple[slice, ...]) -> None:
        """The image's sagittal slice (LPS array axis i) through the zone centre, as the box's far wall."""
        column = int(np.clip(round(self.centre_index[2]), 0, self.grid.shape[2] - 1))
        step = max(1, int(np.ceil(max(box[0].stop - box[0].start, box[1].stop - box[1].start) / PLANE_SAMPLES)))
        k = np.arange(box[0].start, box[0].stop, step)
        j = np.arange(box[1].start, box[1].stop, step)
        kk, jj = np.meshgrid(k, j, indexing="ij")
        indices = np.stack([kk.ravel(), jj.ravel(), np.full(kk.size, column)], axis=1)
        points = (self.grid.physical_points(indices) * LPS_TO_RAS).reshape(kk.shape + (3,))
        # Projected onto the box's far wall (+R, away from the viewer) and drawn first: matplotlib's 3D axes have no
        # depth buffer, so a plane through the scene would hide half of it.
        points[..., 0] = self.centre[0] + VIEW_HALF_WIDTH_MM
        values = self.background[kk, jj, column]
        top = np.percentile(self.background, 99.5) or 1.0
        colours = np.clip(values / top, 0, 1)[..., None].repeat(3, axis=-1)
        axes.plot_surface(points[..., 0], points[..., 1], points[..., 2], facecolors=colours, shade=False,
                          rstride=1, cstride=1, linewidth=0, antialiased=False)


def _draw_zone_wireframe(axes, zone) -> None:
    first, second = perpendicular_axes(zone.direction)
    u, v = np.meshgrid(np.linspace(0, 2 * np.pi, 25), np.linspace(0, np.pi, 13))
    local = (np.cos(v)[..., None] * zone.direction * zone.semi_axial_mm
             + (np.sin(v) * np.cos(u))[..., None] * first * zone.semi_radial_mm
             + (np.sin(v) * np.sin(u))[..., None] * second * zone.semi_radial_mm)
    points = zone.centre + local
    axes.plot_wireframe(points[..., 0], points[..., 1], points[..., 2], color=ZONE_COLOUR, linewidth=0.6,
                        alpha=0.9)


def _continuous_index(grid: VoxelGrid, points_ras: np.ndarray) -> np.ndarray:
    lps = np.asarray(points_ras, dtype=float).reshape(-1, 3) * LPS_TO_RAS
    ijk = (lps - np.asarray(grid.origin)) @ grid.direction / np.asarray(grid.spacing_ijk)
    return ijk[:, ::-1]
