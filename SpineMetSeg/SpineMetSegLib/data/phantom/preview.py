"""A picture of a phantom case: the mid-sagittal slice of T1, T2 and STIR side by side, lesions outlined.

Usage::

    save_preview(case, "preview.png")

Uses matplotlib's Agg backend (no display needed); the PNG carries no date, so it is reproducible.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import numpy as np
import SimpleITK as sitk

from .case import PhantomCase
from .tissues import SEQUENCES

WINDOW_PERCENTILES = (0.5, 99.5)
LESION_COLOUR = "#ff3030"
FIGURE_HEIGHT_INCHES = 5.0
DPI = 100


def save_preview(case: PhantomCase, path: Union[str, os.PathLike]) -> Path:
    """Save the preview PNG of ``case`` to ``path`` (atomically) and return the path."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    path = Path(path)
    lesions = sitk.GetArrayViewFromImage(case.lesions)
    k = lesions.shape[0] // 2
    spacing_i, spacing_j, _ = case.lesions.GetSpacing()
    rows, columns = lesions.shape[1:]
    extent = (0.0, columns * spacing_i, rows * spacing_j, 0.0)
    aspect = rows * spacing_j / (columns * spacing_i)
    figure = Figure(figsize=(3 * FIGURE_HEIGHT_INCHES / aspect, FIGURE_HEIGHT_INCHES + 0.6), dpi=DPI)
    axes = figure.subplots(1, len(SEQUENCES))
    mask = lesions[k] > 0
    for axis, name in zip(axes, SEQUENCES):
        picture = sitk.GetArrayViewFromImage(case.images[name])[k]
        low, high = np.percentile(picture, WINDOW_PERCENTILES)
        axis.imshow(picture, cmap="gray", vmin=low, vmax=high, extent=extent, interpolation="nearest")
        if mask.any():
            axis.contour(
                mask.astype(np.float32),
                levels=[0.5],
                colors=LESION_COLOUR,
                linewidths=0.8,
                extent=extent,
                origin="upper",
            )
        axis.set_title(name.upper())
        axis.set_axis_off()
    info = case.info
    figure.suptitle(
        f"seed {info['seed']}, {info['acquisition']['kind']}, {info['contrast']} contrast: "
        f"{len(info['lesions'])} lesion(s), slice {k + 1}/{lesions.shape[0]} (anterior left)"
    )
    temporary = path.with_name(f".partial-{path.name}")
    try:
        figure.savefig(temporary, format="png", metadata={"Software": None})
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path
