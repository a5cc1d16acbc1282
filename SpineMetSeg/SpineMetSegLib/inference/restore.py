"""Back to the input: the network's probabilities onto the first input's grid, argmax, then the card's post-processing.

Usage::

    labels, lesion_probability, volumes_ml = restore.to_input_grid(probabilities, prepared, card, want=True)

Labels are the argmax of the probabilities' trilinear interpolation (``regrid``), computed only over the part of
the input grid that covers the cropped body (the rest is background); then ``postprocessing.clean_lesions`` with
the card's rules, where a removed lesion's voxels take the most likely other label. ``model_grid_input`` makes the
same step run on a volume that is already on the model grid (training validation), so that validation scores what
``segment`` would output.
"""

from __future__ import annotations

import itertools
from typing import List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from ..images import imageio, regrid
from ..labels import ModelLabel
from ..models.modelcard import ModelCard
from .postprocessing import card_options, clean_lesions
from .preprocessing import PreparedInput

# Metadata key on a voxel-free stand-in for the first input (``geometry_only``): the input's size.
REFERENCE_SIZE_KEY = "spinemetseg_reference_size"


def to_input_grid(
    probabilities: np.ndarray, prepared: PreparedInput, card: ModelCard, want: bool
) -> Tuple[sitk.Image, Optional[sitk.Image], List[float]]:
    """Labels, the metastasis probability (when ``want``) and the lesion volumes on the first input's grid.

    ``probabilities`` (out_channels, i, j, k) are the network's on ``prepared.crop_grid``; labels are the argmax
    of their trilinear interpolation (``regrid``), then the ``card``'s post-processing. Only the part of the
    input grid that covers the cropped body is computed; the rest is background.
    """
    reference = prepared.reference
    reference_size = _reference_size(reference)
    start, size = _covering_region(reference, prepared.crop_grid, reference_size)
    region = imageio.Geometry(
        size,
        reference.GetSpacing(),
        reference.TransformIndexToPhysicalPoint([int(n) for n in start]),
        reference.GetDirection(),
    )
    maps = regrid.axis_maps(prepared.crop_grid, region)
    region_labels = regrid.argmax_labels(probabilities, maps)

    def fallback(points: Tuple[np.ndarray, ...]) -> np.ndarray:
        # Where a lesion is removed, the most likely other label takes its place (computed only there).
        others = probabilities[(slice(None),) + regrid.source_points(maps, points)]
        others[ModelLabel.METASTASIS] = -1.0
        return regrid.argmax_channels(others)

    def lesion_probability(points: Tuple[np.ndarray, ...]) -> np.ndarray:
        # The metastasis probability at lesion voxels, as the probability map output has it.
        return regrid.interpolate_points(probabilities[ModelLabel.METASTASIS], maps, points)

    region_labels, volumes = clean_lesions(
        region_labels,
        fallback,
        voxel_volume_ml=float(np.prod(reference.GetSpacing())) / 1000.0,
        lesion_probability=lesion_probability,
        **card_options(card),
    )
    box = tuple(slice(int(s), int(s + n)) for s, n in zip(start[::-1], size[::-1]))  # numpy order (k, j, i)
    labels = _paste(region_labels, box, reference, reference_size, np.uint8)
    del region_labels
    lesion = None
    if want and probabilities.shape[0] > ModelLabel.METASTASIS:
        lesion = _paste(regrid.interpolate(probabilities[ModelLabel.METASTASIS], maps), box, reference,
                        reference_size, np.float32)
    return labels, lesion, volumes


def geometry_only(image: sitk.Image) -> sitk.Image:
    """A 1 x 1 x 1 image with ``image``'s spacing, origin and direction, its size kept as metadata."""
    if image.HasMetaDataKey(REFERENCE_SIZE_KEY):
        return image
    stand_in = sitk.Image([1] * image.GetDimension(), sitk.sitkUInt8)
    stand_in.SetSpacing(image.GetSpacing())
    stand_in.SetOrigin(image.GetOrigin())
    stand_in.SetDirection(image.GetDirection())
    stand_in.SetMetaData(REFERENCE_SIZE_KEY, " ".join(str(n) for n in image.GetSize()))
    return stand_in


def _reference_size(reference: sitk.Image) -> Tuple[int, ...]:
    if reference.HasMetaDataKey(REFERENCE_SIZE_KEY):
        return tuple(int(n) for n in reference.GetMetaData(REFERENCE_SIZE_KEY).split())
    return tuple(reference.GetSize())


def _covering_region(
    reference: sitk.Image, grid: imageio.Geometry, reference_size: Sequence[int]
) -> Tuple[np.ndarray, Tuple[int, ...]]:
    """Start index and size of the smallest box of ``reference`` voxels that covers ``grid``'s extent."""
    direction = np.array(grid.direction).reshape(3, 3)
    spacing = np.array(grid.spacing)
    corners = []
    for corner in itertools.product(*[(-0.5, n - 0.5) for n in grid.size]):
        point = np.array(grid.origin) + direction @ (np.array(corner) * spacing)
        corners.append(reference.TransformPhysicalPointToContinuousIndex([float(x) for x in point]))
    corners = np.array(corners)
    limit = np.array(reference_size) - 1
    low = np.clip(np.floor(corners.min(axis=0)), 0, limit).astype(int)
    high = np.clip(np.ceil(corners.max(axis=0)), 0, limit).astype(int)
    return low, tuple(int(n) for n in high - low + 1)


def _paste(
    region: np.ndarray, box: Tuple[slice, ...], reference: sitk.Image, size: Sequence[int], dtype: type
) -> sitk.Image:
    # np.zeros leaves the pages outside the region untouched (not resident) until the image copies them.
    full = np.zeros(tuple(size)[::-1], dtype=dtype)
    full[box] = region
    image = sitk.GetImageFromArray(full)
    del full
    image.SetSpacing(reference.GetSpacing())
    image.SetOrigin(reference.GetOrigin())
    image.SetDirection(reference.GetDirection())
    return image


def model_grid_input(grid: imageio.Geometry) -> PreparedInput:
    """A prepared input whose first input *is* the model grid ``grid`` (no crop, no voxels): ``to_input_grid`` on it
    returns labels on ``grid`` itself, through the same argmax and post-processing as ``segment``."""
    reference = sitk.Image([1, 1, 1], sitk.sitkUInt8)
    reference.SetSpacing(grid.spacing)
    reference.SetOrigin(grid.origin)
    reference.SetDirection(grid.direction)
    reference.SetMetaData(REFERENCE_SIZE_KEY, " ".join(str(int(n)) for n in grid.size))
    box = tuple(slice(0, int(n)) for n in grid.size)
    return PreparedInput(array=None, crop_grid=grid, model_grid=grid, box=box, reference=reference, channels=[])
