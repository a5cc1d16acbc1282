"""Training-side preprocessing: the inference helper's ``preprocessing.prepare`` plus the label on its grid.

Usage::

    from SpineMetSegLib.training.preprocess import prepare_case, slice_views
    array, label, spacing = prepare_case({"t1": t1, "stir": stir}, card, label=target)
    slices = slice_views(array, card.network.slice_axis)      # [S, C, a, b]: what the 2D network sees

``preprocessing.prepare`` (shared with inference, so a model sees in training what it sees in use) checks the
inputs, reorients to the card's orientation, resamples to ``spacing_mm``, crops to the body and normalises each
channel; missing channels are zeros. Arrays are in ITK index order ``(i, j, k)``; slice axis 0 gives slices
``array[:, i]`` of shape ``(j, k)``. The label map follows the same steps with nearest-neighbour resampling.
"""

from __future__ import annotations

from typing import Mapping, Optional, Tuple

import numpy as np
import SimpleITK as sitk

from ..images import imageio
from ..inference import preprocessing
from ..models.modelcard import ModelCard


def label_on_grid(label: sitk.Image, prepared: preprocessing.PreparedInput, orientation: str) -> np.ndarray:
    """``label`` on the prepared (cropped) grid, nearest neighbour, as (i, j, k) uint8."""
    oriented = imageio.reorient(label, orientation)
    resampled = imageio.resample_onto(oriented, prepared.crop_grid, nearest=True)
    return sitk.GetArrayFromImage(resampled).transpose(2, 1, 0).astype(np.uint8)


def prepare_case(images: Mapping[str, sitk.Image], card: ModelCard,
                 label: Optional[sitk.Image] = None) -> Tuple[np.ndarray, Optional[np.ndarray], Tuple[float, ...]]:
    """``(array (C, i, j, k), label (i, j, k) or None, spacing)`` on the network grid the card describes."""
    # Training images are MRI or made like it (phantom, converted contrasts): the CT guard for users' files is off,
    # since a random per-tissue contrast can have a CT-like histogram (air low, tissue about 1000 above it).
    prepared = preprocessing.prepare(images, card, ct_check=False)
    on_grid = None if label is None else label_on_grid(label, prepared, card.orientation)
    return prepared.array, on_grid, tuple(float(s) for s in prepared.crop_grid.spacing)


def slice_views(array: np.ndarray, slice_axis: int = 0) -> np.ndarray:
    """Move the ITK ``slice_axis`` first: (C, i, j, k) -> [S, C, a, b] and (i, j, k) -> [S, a, b]."""
    return np.moveaxis(array, array.ndim - 3 + slice_axis, 0)


def image_from_slices(slices: np.ndarray, spacing: Tuple[float, ...], slice_axis: int = 0) -> sitk.Image:
    """[S, a, b] slices back to a SimpleITK image with ``spacing`` (origin 0, identity direction)."""
    array = np.moveaxis(slices, 0, slice_axis)  # (i, j, k)
    image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
    image.SetSpacing(tuple(float(s) for s in spacing))
    return image
