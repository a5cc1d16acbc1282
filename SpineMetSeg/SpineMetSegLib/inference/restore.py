"""Back to the input: the network's probabilities onto the first input's grid, argmax, then the card's post-processing.

Usage::

    labels, lesion_probability, volumes_ml = restore.to_input_grid(probabilities, prepared, card, want=True)

A huge volume's probabilities need not be whole: ``StreamedProbabilities`` keeps, chunk by chunk as the predictor
streams them, only what ``to_input_grid`` reads (the argmax everywhere, every channel near label boundaries and at
metastasis voxels), with the same result.

Labels are the argmax of the probabilities' trilinear interpolation (``regrid``), computed only over the part of
the input grid that covers the cropped body (the rest is background); then ``postprocessing.clean_lesions`` with
the card's rules, where a removed lesion's voxels take the most likely other label. ``model_grid_input`` makes the
same step run on a volume that is already on the model grid (training validation), so that validation scores what
``segment`` would output.
"""

from __future__ import annotations

import itertools
from typing import List, Optional, Sequence, Tuple, Union

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
    probabilities: Union[np.ndarray, StreamedProbabilities], prepared: PreparedInput, card: ModelCard, want: bool
) -> Tuple[sitk.Image, Optional[sitk.Image], List[float]]:
    """Labels, the metastasis probability (when ``want``) and the lesion volumes on the first input's grid.

    ``probabilities`` (out_channels, i, j, k) are the network's on ``prepared.crop_grid``, whole or as a
    ``StreamedProbabilities`` (then ``regrid.AllProbabilitiesNeeded`` is raised, before any other work, for a
    noisy prediction whose regridding needs every probability); labels are the argmax of their trilinear
    interpolation (``regrid``), then the ``card``'s post-processing. Only the part of the input grid that covers
    the cropped body is computed; the rest is background.
    """
    reference = prepared.reference
    reference_size = _reference_size(reference)
    start, size, maps = _region_maps(prepared, reference_size)
    if isinstance(probabilities, np.ndarray):
        channels = probabilities.shape[0]
        values_at = regrid.corner_values(probabilities)
        region_labels = regrid.argmax_labels(probabilities, maps)
    else:
        channels = probabilities.channels
        values_at = probabilities.values_at
        region_labels = regrid.argmax_labels_of(probabilities.labels, values_at, maps)

    def fallback(points: Tuple[np.ndarray, ...]) -> np.ndarray:
        # Where a lesion is removed, the most likely other label takes its place (computed only there), from the
        # probabilities interpolated as for every other voxel: a corner read would take a neighbour's label wherever
        # a point lies nearer its upper corner (on a grid mapped onto itself, a rounding hair below its own voxel).
        others = regrid.interpolate_channels_at(values_at, maps, points)
        others[ModelLabel.METASTASIS] = -1.0
        return regrid.argmax_channels(others)

    def lesion_probability(points: Tuple[np.ndarray, ...]) -> np.ndarray:
        # The metastasis probability at lesion voxels, as the probability map output has it.
        def metastasis_at(index: Tuple[np.ndarray, ...]) -> np.ndarray:
            return values_at(index)[ModelLabel.METASTASIS : ModelLabel.METASTASIS + 1]

        return regrid.interpolate_channels_at(metastasis_at, maps, points)[0]

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
    if want and channels > ModelLabel.METASTASIS:
        if isinstance(probabilities, np.ndarray):
            metastasis = probabilities[ModelLabel.METASTASIS]
        else:
            metastasis = probabilities.channel(ModelLabel.METASTASIS)
        lesion = _paste(regrid.interpolate(metastasis, maps), box, reference, reference_size, np.float32)
    return labels, lesion, volumes


class StreamedProbabilities:
    """A 2D model's probabilities received a chunk of slices at a time (``Predictor.stream``), kept only where
    ``to_input_grid`` reads them, so that a huge volume's never sit in memory whole.

    Kept: the argmax (uint8) of every voxel; every channel at the voxels of a cell on a label boundary (each
    voxel whose cell, it and its +1 neighbours, holds two labels, and those neighbours: the corners the
    regridding interpolates between) and at metastasis voxels (the corners of lesion points, for the mean
    probability rule and a removed lesion's fallback); one whole channel when asked (``keep_channel``, for the
    probability map). A voxel's boundary status needs the next slice, so the last slice of each chunk waits for
    the next chunk. Every value kept is the network's own: ``to_input_grid`` gives exactly what it gives from
    the whole array, unless the regridding needs every probability (``regrid.AllProbabilitiesNeeded``).

    Usage::

        store = StreamedProbabilities(shape, channels=4, slice_axis=0)
        predictor.stream(array, store.add, on_restart=store.restart)
        store.finish()
        labels, _, volumes = to_input_grid(store, prepared, card, want=False)
    """

    def __init__(self, shape: Sequence[int], channels: int, slice_axis: int, keep_channel: Optional[int] = None):
        self.shape = tuple(int(n) for n in shape)
        self.channels = int(channels)
        self.slice_axis = int(slice_axis)
        self.keep_channel = keep_channel
        self.restart()

    def restart(self) -> None:
        """Forget everything received (an attempt of the predictor starts over)."""
        self.labels = np.empty(self.shape, dtype=np.uint8)  # the argmax, (i, j, k)
        self._kept = np.empty(self.shape, dtype=np.float32) if self.keep_channel is not None else None
        self._keys: List[np.ndarray] = []  # flat (i, j, k) indices of the voxels kept, one array a chunk
        self._values: List[np.ndarray] = []  # (voxels, channels) float32, in the same order
        self._pending: Optional[np.ndarray] = None  # (slices, channels, a, b) received, not yet sorted out
        self._pending_start = 0
        self._received = 0

    @property
    def kept_voxels(self) -> int:
        """How many voxels' probabilities are kept (all channels)."""
        return int(sum(keys.size for keys in self._keys))

    def add(self, start: int, chunk: np.ndarray) -> None:
        """The probabilities (slices, channels, a, b) of slices ``start``... along the slice axis (in order)."""
        if start != self._received:
            raise ValueError(f"chunk at slice {start}, expected {self._received}")
        count = chunk.shape[0]
        self._received = start + count
        np.moveaxis(self.labels, self.slice_axis, 0)[start : start + count] = regrid.argmax_channels(
            np.moveaxis(chunk, 1, 0)
        )
        if self._kept is not None:
            np.moveaxis(self._kept, self.slice_axis, 0)[start : start + count] = chunk[:, self.keep_channel]
        pending = chunk if self._pending is None else np.concatenate([self._pending, chunk])
        first = self._pending_start
        total = self.shape[self.slice_axis]
        final = total if self._received >= total else self._received - 1
        self._keep_needed(first, final, pending[: final - first])
        self._pending = pending[final - first :].copy()
        self._pending_start = final

    def finish(self) -> StreamedProbabilities:
        """Sort what was kept for look-ups; call once every slice has been added."""
        if self._received != self.shape[self.slice_axis]:
            raise ValueError(f"{self._received} of {self.shape[self.slice_axis]} slices received")
        keys = np.concatenate(self._keys) if self._keys else np.zeros(0, dtype=np.int64)
        values = np.concatenate(self._values) if self._values else np.zeros((0, self.channels), np.float32)
        order = np.argsort(keys, kind="stable")
        self._keys, self._values = [keys[order]], [values[order]]
        self._pending = None
        return self

    def values_at(self, index: Tuple[np.ndarray, ...]) -> np.ndarray:
        """The probabilities (channels, n) at the (i, j, k) index arrays ``index`` (voxels that were kept)."""
        keys, values = self._keys[0], self._values[0]
        wanted = np.ravel_multi_index(tuple(index), self.shape)
        if wanted.size == 0:
            return np.zeros((self.channels, 0), dtype=np.float32)
        where = np.minimum(np.searchsorted(keys, wanted), max(0, keys.size - 1))
        if keys.size == 0 or not np.array_equal(keys[where], wanted):
            raise RuntimeError("probabilities were asked for at voxels that were not kept")
        return values[where].T

    def channel(self, channel: int) -> np.ndarray:
        """The whole channel (i, j, k) that was kept (``keep_channel``)."""
        if self._kept is None or channel != self.keep_channel:
            raise ValueError(f"channel {channel} was not kept")
        return self._kept

    def _keep_needed(self, first: int, stop: int, probabilities: np.ndarray) -> None:
        """Keep every channel of the needed voxels among slices [first, stop) (``probabilities`` holds those)."""
        if stop <= first:
            return
        labels = np.moveaxis(self.labels, self.slice_axis, 0)
        low, high = max(first - 1, 0), min(stop + 1, labels.shape[0])
        # Mixed cells of slices [low, stop): a cell needs the next slice, which slices [low, high) hold (the last
        # slice of the volume is its own next, as regrid pads by the edge).
        needed = regrid.mixed_cells(labels[low:high])[: stop - low]
        for axis in range(3):  # and the other corners of those cells: their +1 neighbours
            ahead = [slice(None)] * 3
            behind = [slice(None)] * 3
            ahead[axis], behind[axis] = slice(1, None), slice(None, -1)
            needed[tuple(ahead)] = needed[tuple(ahead)] | needed[tuple(behind)]
        needed = needed[first - low :]
        needed |= labels[first:stop] == ModelLabel.METASTASIS
        where = np.nonzero(needed)
        self._values.append(probabilities[where[0], :, where[1], where[2]])
        index = [None, None, None]
        others = [axis for axis in range(3) if axis != self.slice_axis]
        index[self.slice_axis] = where[0] + first
        index[others[0]], index[others[1]] = where[1], where[2]
        self._keys.append(np.ravel_multi_index(tuple(index), self.shape).astype(np.int64))


def needs_every_probability(probabilities: StreamedProbabilities, prepared: PreparedInput) -> bool:
    """True when ``to_input_grid`` cannot restore from ``probabilities`` (``regrid.AllProbabilitiesNeeded``): the
    prediction is so noisy that the regridding interpolates every probability. Cheap beside the network: the
    caller can still run it again, keeping them all."""
    _, _, maps = _region_maps(prepared, _reference_size(prepared.reference))
    return regrid.needs_every_probability(probabilities.labels, maps)


def _region_maps(
    prepared: PreparedInput, reference_size: Sequence[int]
) -> Tuple[np.ndarray, Tuple[int, ...], List[regrid.AxisMap]]:
    """Start, size and ``regrid`` maps of the part of the first input's grid that covers the cropped body."""
    reference = prepared.reference
    start, size = _covering_region(reference, prepared.crop_grid, reference_size)
    region = imageio.Geometry(
        size,
        reference.GetSpacing(),
        reference.TransformIndexToPhysicalPoint([int(n) for n in start]),
        reference.GetDirection(),
    )
    return start, size, regrid.axis_maps(prepared.crop_grid, region)


def geometry_only(image: sitk.Image) -> sitk.Image:
    """A 1 x 1 x 1 image with ``image``'s spacing, origin and direction, its size kept as metadata."""
    if image.HasMetaDataKey(REFERENCE_SIZE_KEY):
        return image
    return _stand_in(imageio.Geometry.of(image))


def _stand_in(grid: imageio.Geometry) -> sitk.Image:
    """A 1 x 1 x 1 image with ``grid``'s spacing, origin and direction, the grid's size kept as metadata."""
    stand_in = sitk.Image([1] * len(grid.size), sitk.sitkUInt8)
    stand_in.SetSpacing(grid.spacing)
    stand_in.SetOrigin(grid.origin)
    stand_in.SetDirection(grid.direction)
    stand_in.SetMetaData(REFERENCE_SIZE_KEY, " ".join(str(int(n)) for n in grid.size))
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
    box = tuple(slice(0, int(n)) for n in grid.size)
    return PreparedInput(array=None, crop_grid=grid, model_grid=grid, box=box, reference=_stand_in(grid), channels=[])
