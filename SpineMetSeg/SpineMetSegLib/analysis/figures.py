"""Pictures of evaluation results (PNG, matplotlib's Agg renderer, no display needed).

- ``overlay_png``: the sagittal slice with the most lesion voxels of one label (true positives, false
  positives and misses together), the three in their own colours over the reference (or over an MRI);
- ``cohort_boxplot_png``: the distribution of each metric over the cases of a cohort.

Files are written atomically.

Usage::

    from SpineMetSegLib.analysis import figures
    figures.overlay_png(reference, prediction_on_reference_grid, "overlay.png", label=1, image=t1)
    figures.cohort_boxplot_png({"case1": metrics1, "case2": metrics2}, "cohort.png")
"""

from __future__ import annotations

from typing import Any, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from ..images import imageio
from ..images.atomicfile import PathLike, atomic_path
from ..images.labelmaps import label_array
from .metrics import metric_value

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
TRUE_POSITIVE_COLOUR = (0.0, 0.62, 0.45)
FALSE_POSITIVE_COLOUR = (0.84, 0.37, 0.0)
MISSED_COLOUR = (0.94, 0.89, 0.26)
OVERLAY_ALPHA = 0.85
FIGURE_DPI = 120
OVERLAY_HEIGHT_INCHES = 6.0
LEGEND_HEIGHT_INCHES = 0.8
# Label values are drawn on a grey scale up to this multiple of the largest value: none of them white.
LABEL_GREY_HEADROOM = 1.6
# Sagittal slices of the LPS-oriented array: numpy axis 2 runs left to right.
SAGITTAL_AXIS = 2
RATIO_METRICS = (
    ("dice", "Dice"),
    ("iou", "IoU"),
    ("sensitivity", "Sensitivity"),
    ("precision", "Precision"),
    ("lesions.sensitivity", "Lesion\nsensitivity"),
    ("lesions.precision", "Lesion\nprecision"),
    ("lesions.f1", "Lesion F1"),
    ("lesions.lesion_dice", "Lesion-wise\nDice"),
)
DISTANCE_METRICS = (("hd95_mm", "HD95"), ("assd_mm", "ASSD"))


def _figure(width: float, height: float):
    from matplotlib.figure import Figure  # Figure with no pyplot: no global state, no display

    return Figure(figsize=(width, height), dpi=FIGURE_DPI)


def _save(figure, path: PathLike) -> None:
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png")


def overlay_png(
    reference: sitk.Image,
    prediction: sitk.Image,
    path: PathLike,
    *,
    label: int = 1,
    image: Optional[sitk.Image] = None,
    title: str = "",
) -> int:
    """Draw true positives, false positives and misses of ``label`` on the busiest sagittal slice; return it.

    ``prediction`` must be on the reference grid. The background is ``image`` (an MRI, resampled onto the
    reference grid) when given, else the reference label map in grey. The slice index returned is along the
    left-right axis of the reference reoriented to LPS.
    """
    reference_lps = imageio.reorient(reference, "LPS")
    reference_array = label_array(reference_lps, "reference")
    prediction_array = label_array(imageio.reorient(prediction, "LPS"), "prediction")
    truth, predicted = reference_array == label, prediction_array == label
    classes = {
        "true positive": truth & predicted,
        "false positive": predicted & ~truth,
        "missed": truth & ~predicted,
    }
    busy = sum(c.sum(axis=(0, 1)) for c in classes.values())
    index = int(np.argmax(busy)) if busy.any() else reference_array.shape[SAGITTAL_AXIS] // 2
    if image is not None:
        background = sitk.GetArrayFromImage(imageio.reorient(imageio.resample_to(image, reference), "LPS"))
    else:
        background = reference_array
    spacing = reference_lps.GetSpacing()  # (x, y, z): the slice shows y across and z up
    aspect = spacing[2] / spacing[1]
    rows, columns = reference_array.shape[0], reference_array.shape[1]
    width = float(np.clip(OVERLAY_HEIGHT_INCHES * columns / (rows * aspect), 3.0, 3 * OVERLAY_HEIGHT_INCHES))
    figure = _figure(width, OVERLAY_HEIGHT_INCHES + LEGEND_HEIGHT_INCHES)
    axes = figure.add_subplot(1, 1, 1)
    picture = background[:, :, index].astype(float)
    # Label maps in mid greys, so the three colours stand out against every label.
    top = float(picture.max()) * (1.0 if image is not None else LABEL_GREY_HEADROOM) or 1.0
    axes.imshow(picture, cmap="gray", origin="lower", aspect=aspect, vmin=0.0, vmax=top)
    handles = _paint_classes(axes, {name: mask[:, :, index] for name, mask in classes.items()}, aspect)
    heading = f"{title}\n" if title else ""
    axes.set_title(f"{heading}label {label}, sagittal slice {index}: anterior left, superior up", fontsize=9)
    axes.set_axis_off()
    axes.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), fontsize=8, frameon=False)
    figure.tight_layout()
    _save(figure, path)
    return index


def _paint_classes(axes, masks: Mapping[str, np.ndarray], aspect: float) -> List[Any]:
    from matplotlib.patches import Patch

    colours = {
        "true positive": TRUE_POSITIVE_COLOUR,
        "false positive": FALSE_POSITIVE_COLOUR,
        "missed": MISSED_COLOUR,
    }
    handles = []
    for name, mask in masks.items():
        rgba = np.zeros(mask.shape + (4,))
        rgba[mask] = (*colours[name], OVERLAY_ALPHA)
        axes.imshow(rgba, origin="lower", aspect=aspect, interpolation="nearest")
        handles.append(Patch(color=colours[name], label=f"{name} ({int(mask.sum())} voxels here)"))
    return handles


def cohort_boxplot_png(cases: Mapping[str, Mapping[str, Mapping[str, Any]]], path: PathLike) -> None:
    """Box plots of each metric over the cases, one row per label: ratios (0 to 1) and distances (mm).

    ``cases`` maps a case name to its metrics JSON (label value to metrics). Undefined values are left out;
    each box is annotated with the number of cases it shows.
    """
    labels = sorted({label for metrics in cases.values() for label in metrics}, key=int)
    figure = _figure(12.0, 3.6 * max(len(labels), 1))
    for row, label in enumerate(labels):
        per_label = [metrics[label] for metrics in cases.values() if label in metrics]
        ratio_axes = figure.add_subplot(len(labels), 2, 2 * row + 1)
        distance_axes = figure.add_subplot(len(labels), 2, 2 * row + 2)
        _boxes(ratio_axes, per_label, RATIO_METRICS, f"label {label}", (0.0, 1.05))
        _boxes(distance_axes, per_label, DISTANCE_METRICS, f"label {label} (mm)", None)
    figure.suptitle(f"{len(cases)} cases (box: quartiles, line: median, triangle: mean)", fontsize=10)
    figure.tight_layout()
    _save(figure, path)


def _boxes(
    axes,
    per_label: Sequence[Mapping[str, Any]],
    keys: Sequence[Tuple[str, str]],
    title: str,
    limits: Optional[Tuple[float, float]],
) -> None:
    data, names = [], []
    for key, name in keys:
        values = [v for v in (metric_value(m, key) for m in per_label) if v is not None]
        data.append(values)
        names.append(f"{name}\nn={len(values)}")
    axes.boxplot([d if d else [np.nan] for d in data], showmeans=True)
    axes.set_xticks(range(1, len(names) + 1))
    axes.set_xticklabels(names, fontsize=7)
    axes.set_title(title, fontsize=9)
    if limits:
        axes.set_ylim(*limits)
    axes.grid(axis="y", alpha=0.3)
