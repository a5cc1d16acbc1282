"""A picture of a segmentation: one sagittal slice of an MRI volume with reference and prediction outlined.

Usage::

    from SpineMetSegLib.overlay import save_overlay
    save_overlay(t1, truth_mask, predicted_mask, "overlay.png", title="seed 0: Dice 0.81")

The volumes are reoriented to LPS so the slice is a true sagittal one (anterior left, superior up, real
proportions). The slice is the middle one, unless it shows no lesion and another does: then the slice with the
most lesion voxels. Uses matplotlib's Agg backend (no display); written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import SimpleITK as sitk

from . import imageio
from .atomicfile import atomic_path

WINDOW_PERCENTILES = (0.5, 99.5)
REFERENCE_COLOUR = "#30d030"
PREDICTION_COLOUR = "#ff3030"
FIGURE_HEIGHT_INCHES = 6.0
DPI = 100


def choose_slice(reference: np.ndarray, prediction: np.ndarray) -> int:
    """The sagittal index (axis 0 of LPS (i, j, k) arrays): the middle, or the most lesion where the middle has none."""
    middle = reference.shape[0] // 2
    counts = reference.sum(axis=(1, 2)) + prediction.sum(axis=(1, 2))
    return middle if counts[middle] > 0 or counts.max() == 0 else int(np.argmax(counts))


def save_overlay(
    image: sitk.Image,
    reference: sitk.Image,
    prediction: sitk.Image,
    path: imageio.PathLike,
    *,
    title: Optional[str] = None,
) -> Path:
    """Save the sagittal overlay PNG; ``reference`` and ``prediction`` are masks (nonzero = lesion) on any grid."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    picture = _lps_array(image)
    truth = _lps_array(imageio.resample_to(reference, image, nearest=True)) > 0
    found = _lps_array(imageio.resample_to(prediction, image, nearest=True)) > 0
    index = choose_slice(truth, found)
    _, spacing_j, spacing_k = imageio.reorient(image, "LPS").GetSpacing()
    # Rows run superior to inferior (k reversed), columns anterior to posterior (j).
    view = lambda array: array[index].T[::-1]  # noqa: E731 - one-line view used three times
    low, high = np.percentile(picture, WINDOW_PERCENTILES)
    rows, columns = view(picture).shape
    extent = (0.0, columns * spacing_j, 0.0, rows * spacing_k)
    width = FIGURE_HEIGHT_INCHES * extent[1] / extent[3]
    figure = Figure(figsize=(max(3.0, width), FIGURE_HEIGHT_INCHES), dpi=DPI)
    axes = figure.add_axes((0, 0, 1, 0.93 if title else 1))
    axes.imshow(view(picture), cmap="gray", vmin=low, vmax=high, extent=extent, interpolation="bilinear")
    for mask, colour in ((truth, REFERENCE_COLOUR), (found, PREDICTION_COLOUR)):
        if view(mask).any():
            axes.contour(view(mask).astype(float), levels=[0.5], colors=[colour], linewidths=1.2,
                         origin="upper", extent=extent)
    axes.set_axis_off()
    if title:
        figure.suptitle(f"{title}  (green: reference, red: prediction; sagittal slice {index})", fontsize=9)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png")
    return Path(path)


def _lps_array(image: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(imageio.reorient(image, "LPS")).transpose(2, 1, 0)
