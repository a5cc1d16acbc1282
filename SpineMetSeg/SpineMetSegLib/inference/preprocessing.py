"""Turn MRI volumes into the network's input as a model card describes it, and check them on the way.

Usage::

    from SpineMetSegLib.inference import preprocessing
    prepared = preprocessing.prepare({"t1": t1, "stir": stir}, card)   # sitk images, any grids that overlap
    prepared.array          # (channels, i, j, k) float32, normalised, cropped to the body
    prepared.crop_grid      # the cropped region's geometry in the model's space (orientation and spacing)

Steps, in order: check each input (3D, finite, not empty or constant, not CT) and the set of inputs against the
card (known names, at least ``min_inputs``); the model grid is the first input's grid reoriented to
``card.orientation`` (axes permuted and flipped, as ``sitk.DICOMOrient`` does) and resampled to
``card.spacing_mm`` (null keeps an axis' native spacing); every input is interpolated once onto it, straight
from its own grid (inputs on other grids are thus resampled onto the first's); find the body (intensity
threshold plus a margin) and crop to it, widened to at least one network window (``window_shape``) so that
windows hold real image, as they would without the crop, rather than padding; normalise each channel as
``card.normalization`` says (statistics over the whole volume); fill missing channels with zeros (the models
are trained so).

Arrays are in ITK index order ``(i, j, k)`` (MONAI's convention for ITK images): a 2D model with
``slice_axis`` 0 sees slices ``array[:, i]`` of shape ``(j, k)``. Training uses the same functions
(``prepare``) so a model sees at inference what it saw in training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from ..errors import GeometryError, ImageError, ModelError
from ..images import imageio, regrid
from ..models.modelcard import ModelCard, Normalization

# CT, not MRI, however it is stored (Hounsfield units, HU + 1024 as 0..4095, with -32768 or -3024 padding): CT's
# scale is fixed, so above the air level (the low end of the histogram) soft tissue and fat sit about 1000
# higher in a narrow band, bone far above them. MRI's scale is arbitrary and its tissues spread widely. Distances
# below are from the air level.
CT_PADDING_GAP = 300.0  # a constant this far below every other value is padding, not air
CT_AIR_PERCENTILE = 1.0
CT_AIR_BAND = 150.0  # air voxels: within this of the air level
CT_MIN_AIR_FRACTION = 0.05
CT_TISSUE_BAND = (850.0, 1200.0)  # soft tissue and fat: -150 .. +200 HU
CT_MIN_TISSUE_FRACTION = 0.3  # of the voxels that are not air
CT_TISSUE_PEAK_RATIO = 6.0  # the tissue band holds this many times more voxels than each band of its width beside it
CT_BONE_ABOVE_AIR = 1300.0  # bone: +300 HU and more
CT_MIN_BONE_FRACTION = 0.002
DICOM_MODALITY_TAG = imageio.DICOM_MODALITY_TAG

# The body: voxels brighter than this share of a channel's upper percentile in any channel.
BODY_THRESHOLD_FRACTION = 0.1
# A slice belongs to the body's extent when this share of its voxels is body (ignores isolated noise voxels).
BODY_MIN_SLICE_FRACTION = 0.002
# Kept around the body so lesions at its edge see context and windows do not end at the skin.
BODY_MARGIN_MM = 10.0
# Intensity statistics are estimated on at most this many voxels (a fixed pseudo-random subsample: a regular
# stride could line up with the rows of the image), which is plenty for percentiles and keeps large volumes fast.
STATISTICS_SAMPLE = 1_000_000
STATISTICS_SEED = 0
# The body mask is counted in slabs of about this many voxels.
BODY_SLAB_VOXELS = 1 << 25

NORMALIZATION_METHODS = ("zscore_percentile",)
ORIENTATION_PAIRS = ("LR", "PA", "SI")

Box = Tuple[slice, slice, slice]


@dataclass
class PreparedInput:
    """The network input and the geometry needed to bring the result back."""

    array: np.ndarray  # (channels in card.inputs order, i, j, k) float32
    crop_grid: imageio.Geometry  # geometry of ``array``'s voxels (model orientation and spacing)
    model_grid: imageio.Geometry  # the whole volume in the model's space, before cropping
    box: Box  # the crop inside model_grid, (i, j, k)
    reference: sitk.Image  # the first input: the output grid
    channels: List[str]  # input names present, in card.inputs order


def image_to_array(image: sitk.Image) -> np.ndarray:
    """A float32 copy of ``image``'s voxels in ITK index order ``(i, j, k)`` (a transposed view of it)."""
    return sitk.GetArrayFromImage(image).astype(np.float32, copy=False).transpose(2, 1, 0)


def looks_like_ct(image: sitk.Image) -> bool:
    """True for a CT volume: the DICOM modality where the image has one, else the shape of its histogram.

    The histogram test does not depend on how CT was stored (see the ``CT_*`` constants): a share of voxels
    at the air level, a narrow peak of soft tissue about 1000 above it, and bone beyond.
    """
    if image.HasMetaDataKey(DICOM_MODALITY_TAG):
        modality = image.GetMetaData(DICOM_MODALITY_TAG).strip().upper()
        if modality in ("CT", "MR"):
            return modality == "CT"
    sample = _sample(sitk.GetArrayViewFromImage(image)).astype(np.float32)
    lowest = float(sample.min())
    rest = sample[sample > lowest]
    # A constant far below every other value may be padding outside the reconstruction circle, or noiseless air.
    padded = rest.size > 0 and float(rest.min()) - lowest > CT_PADDING_GAP
    return _ct_histogram(sample) or (padded and _ct_histogram(rest))


def _ct_histogram(sample: np.ndarray) -> bool:
    above = sample - np.percentile(sample, CT_AIR_PERCENTILE)

    def share(low: float, high: float) -> float:
        return float(np.count_nonzero((above >= low) & (above < high))) / above.size

    low, high = CT_TISSUE_BAND
    width = high - low
    tissue = share(low, high)
    air = share(-np.inf, CT_AIR_BAND)
    return (
        CT_MIN_AIR_FRACTION <= air < 1.0
        and tissue >= CT_MIN_TISSUE_FRACTION * (1.0 - air)
        and tissue >= CT_TISSUE_PEAK_RATIO * max(share(low - width, low), share(high, high + width))
        and share(CT_BONE_ABOVE_AIR, np.inf) >= CT_MIN_BONE_FRACTION
    )


def check_inputs(images: Mapping[str, sitk.Image], card: ModelCard, *, ct_check: bool = True) -> Dict[str, sitk.Image]:
    """Validate the inputs against the card and each image on its own; return them, first input first.

    Raises ``ImageError`` for an unknown sequence name, fewer sequences than the card needs, a 2D/4D/vector
    image, NaN or infinite voxels, an empty or constant volume, or a CT scan (unless ``ct_check`` is False: the
    user is sure the volume is MRI).
    """
    accepted = list(card.inputs)
    needed = card.min_inputs
    model = card.name
    checked: Dict[str, sitk.Image] = {}
    for name, image in images.items():
        key = str(name).lower()
        if key not in accepted:
            raise ImageError(
                f"{model} does not take a {name!r} sequence; it takes {', '.join(accepted)}. "
                "Give only those (or choose another model)."
            )
        if image is None:
            continue
        label = f"{key.upper()} image"
        imageio.check_3d(image, label)
        imageio.check_intensity_image(image, key.upper())
        if ct_check and looks_like_ct(image):
            raise ImageError(
                f"The {label} looks like CT, not MRI (its DICOM modality, or air, soft tissue about 1000 above it "
                f"and bone beyond, as CT stores them). {model} segments MRI ({', '.join(accepted)}); give an MRI "
                "volume. If you are sure it is MRI, add --not-ct."
            )
        checked[key] = image
    if len(checked) < needed:
        missing = [name for name in accepted if name not in checked]
        raise ImageError(
            f"{model} needs at least {needed} of the sequences {', '.join(accepted)}; got "
            f"{', '.join(checked) or 'none'}. Add {' or '.join(missing)}."
        )
    return checked


def oriented_grid(image: sitk.Image, orientation: str) -> Tuple[imageio.Geometry, Tuple[int, ...], Tuple[bool, ...]]:
    """The grid ``imageio.reorient(image, orientation)`` would have, computed without moving any voxel.

    Returns the geometry, the source axis of each new axis and whether it runs backwards: new axis ``t`` is old
    axis ``axes[t]``, flipped where ``flips[t]``. Like ``sitk.DICOMOrient``, each axis goes to the target axis it
    is closest to; an oblique direction stays oblique.
    """
    current = imageio.orientation_of(image)
    axes, flips = [], []
    for letter in orientation.upper():
        group = next(pair for pair in ORIENTATION_PAIRS if letter in pair)
        axis = next(a for a, have in enumerate(current) if have in group)
        axes.append(axis)
        flips.append(current[axis] != letter)
    size = np.array(image.GetSize())
    spacing = np.array(image.GetSpacing())
    direction = np.array(image.GetDirection()).reshape(3, 3)
    corner = [int(size[axis] - 1) if flips[axes.index(axis)] else 0 for axis in range(3)]
    new_direction = np.stack([direction[:, a] * (-1.0 if f else 1.0) for a, f in zip(axes, flips)], axis=1)
    grid = imageio.Geometry(
        tuple(int(size[a]) for a in axes),
        tuple(float(spacing[a]) for a in axes),
        tuple(image.TransformIndexToPhysicalPoint(corner)),
        tuple(float(v) for v in new_direction.ravel()),
    )
    return grid, tuple(axes), tuple(flips)


def reoriented_array(image: sitk.Image, axes: Sequence[int], flips: Sequence[bool]) -> np.ndarray:
    """``image``'s voxels as a float32 (i, j, k) array in the order ``oriented_grid`` gives (one copy)."""
    return np.array(reoriented_view(image, axes, flips), dtype=np.float32)


def reoriented_view(image: sitk.Image, axes: Sequence[int], flips: Sequence[bool]) -> np.ndarray:
    """``reoriented_array`` as a read-only view of ``image``'s voxels in their stored type (no copy)."""
    array = sitk.GetArrayViewFromImage(image).transpose(2, 1, 0).transpose(axes)
    return array[tuple(slice(None, None, -1) if flip else slice(None) for flip in flips)]


def target_grid(grid: imageio.Geometry, spacing_mm: Optional[Sequence[Any]]) -> imageio.Geometry:
    """The grid covering ``grid``'s extent at ``spacing_mm`` (None keeps an axis), same direction and corner."""
    if spacing_mm is None or all(t is None for t in spacing_mm):
        return grid
    spacing = np.array(grid.spacing, dtype=float)
    size = np.array(grid.size, dtype=float)
    new_spacing = np.array([s if t is None else float(t) for s, t in zip(spacing, spacing_mm)])
    new_size = np.maximum(1, np.round(size * spacing / new_spacing)).astype(int)
    direction = np.array(grid.direction).reshape(3, 3)
    # Keep the outer corner of the first voxel where it is, so the new grid covers the same extent.
    corner = np.array(grid.origin) - direction @ (spacing / 2)
    origin = corner + direction @ (new_spacing / 2)
    return imageio.Geometry(tuple(int(n) for n in new_size), tuple(new_spacing), tuple(origin), grid.direction)


def model_arrays(images: Mapping[str, sitk.Image], card: ModelCard) -> Tuple[Dict[str, np.ndarray], imageio.Geometry]:
    """Each checked input as an (i, j, k) float32 array on the model's grid, and that grid.

    The grid is the first input's, reoriented to ``card.orientation`` and resampled to ``card.spacing_mm``. Each
    input is interpolated once, straight from its own grid (the others need not share the first one's); an input
    already on the reoriented grid is only permuted.
    """
    return _model_arrays(images, card, keep_stored_type=False)


# Stored voxel types whose every value float32 holds exactly: an input of one of these on the model's own grid
# (only reoriented) is used as a view of its voxels, not copied to float32 (1.2 GB less for 1024 x 1024 x 600).
EXACT_IN_FLOAT32 = (np.int8, np.uint8, np.int16, np.uint16, np.float32)


def _model_arrays(
    images: Mapping[str, sitk.Image], card: ModelCard, *, keep_stored_type: bool
) -> Tuple[Dict[str, np.ndarray], imageio.Geometry]:
    """``model_arrays``; with ``keep_stored_type``, inputs only reoriented stay views of their voxels where
    float32 holds their type exactly (their statistics, crop and normalised values are those of the copy)."""
    first = next(iter(images.values()))
    oriented, axes, flips = oriented_grid(first, card.orientation)
    grid = target_grid(oriented, card.spacing_mm)
    arrays = {}
    for name, image in images.items():
        if image is not first and not imageio.overlaps(image, first):
            raise GeometryError(
                f"The {name.upper()} image does not overlap the {next(iter(images)).upper()} image in space: they "
                "are not of the same patient position, or one has a wrong origin."
            )
        if grid.matches(oriented, 1e-6) and imageio.Geometry.of(image).matches(imageio.Geometry.of(first), 1e-6):
            view = reoriented_view(image, axes, flips)
            if keep_stored_type and view.dtype.type in EXACT_IN_FLOAT32:
                arrays[name] = view
            else:
                arrays[name] = np.array(view, dtype=np.float32)
        else:
            arrays[name] = interpolated_array(image, grid)
    return arrays, grid


def interpolated_array(image: sitk.Image, grid: imageio.Geometry) -> np.ndarray:
    """``image`` linearly interpolated onto ``grid`` as a float32 (i, j, k) array, 0 outside ``image``.

    The model grid is usually the image's own axes reoriented and rescaled: then the interpolation is separable
    (``regrid.interpolate``, the same values as ``sitk.Resample`` to float rounding, about twice as fast);
    otherwise (an oblique second input) ``sitk.Resample``.
    """
    try:
        maps = regrid.axis_maps(imageio.Geometry.of(image), grid)
    except ValueError:
        return image_to_array(imageio.resample_onto(image, grid, pixel_type=sitk.sitkFloat32))
    return regrid.interpolate(sitk.GetArrayViewFromImage(image).transpose(2, 1, 0), maps).transpose(2, 1, 0)


def intensity_statistics(array: np.ndarray, normalization: Normalization) -> Tuple[float, float, float, float]:
    """(clip low, clip high, mean, std) of a channel as the card's ``normalization`` defines them.

    The statistics are over voxels > 0 (the body; MRI background is 0 or near it): clip to the percentiles,
    then mean and standard deviation of the clipped values.
    """
    method = normalization.method
    if method not in NORMALIZATION_METHODS:
        raise ModelError(
            f"normalization.method {method!r} of the model card is not known; use one of "
            f"{', '.join(NORMALIZATION_METHODS)}."
        )
    sample = _sample(array)
    values = sample[sample > 0]
    if values.size == 0:
        values = sample
    # Percentiles in the image's float32 (a float64 copy only slows the partition); sums in float64.
    values = values.astype(np.float32, copy=False)
    low, high = np.percentile(values, [normalization.lower_percentile, normalization.upper_percentile])
    values = np.clip(values, low, high)
    std = float(values.std(dtype=np.float64))
    return float(low), float(high), float(values.mean(dtype=np.float64)), std if std > 0 else 1.0


def normalise(
    array: np.ndarray, statistics: Tuple[float, float, float, float], out: Optional[np.ndarray] = None
) -> np.ndarray:
    """Clip and z-score ``array`` with ``statistics`` from ``intensity_statistics`` (float32 result, into
    ``out`` when given)."""
    low, high, mean, std = statistics
    if out is None:
        out = np.clip(array, low, high, dtype=np.float32)
    else:
        np.clip(array, np.float32(low), np.float32(high), out=out)
    out -= np.float32(mean)
    out /= np.float32(std)
    return out


def body_box(
    arrays: Sequence[np.ndarray],
    uppers: Sequence[float],
    spacing: Sequence[float],
    min_shape: Sequence[int] = (1, 1, 1),
) -> Box:
    """The (i, j, k) box around the body plus ``BODY_MARGIN_MM``; the whole volume when no body is found.

    A voxel is body where any channel exceeds ``BODY_THRESHOLD_FRACTION`` of that channel's upper value. The box
    is widened evenly to at least ``min_shape`` where the volume allows.
    """
    shape = arrays[0].shape
    # Counted in slabs along the first axis (the mask of a huge volume never whole); the threshold in float32,
    # as a float32 array compares with it, also for an array in its stored integer type.
    thresholds = [np.float32(BODY_THRESHOLD_FRACTION * upper) for upper in uppers]
    counts_per_axis = [np.zeros(n, dtype=np.int64) for n in shape]
    step = max(1, BODY_SLAB_VOXELS // max(1, shape[1] * shape[2]))
    for start in range(0, shape[0], step):
        mask = np.zeros((min(step, shape[0] - start),) + tuple(shape[1:]), dtype=bool)
        for array, threshold in zip(arrays, thresholds):
            mask |= array[start : start + step] > threshold
        counts_per_axis[0][start : start + mask.shape[0]] = mask.sum(axis=(1, 2))
        counts_per_axis[1] += mask.sum(axis=(0, 2))
        counts_per_axis[2] += mask.sum(axis=(0, 1))
    size = int(np.prod(shape))
    box = []
    for axis in range(3):
        counts = counts_per_axis[axis]
        cross_section = size // shape[axis]
        inside = np.flatnonzero(counts >= max(1, BODY_MIN_SLICE_FRACTION * cross_section))
        if inside.size == 0:
            return tuple(slice(0, n) for n in shape)
        margin = int(math.ceil(BODY_MARGIN_MM / spacing[axis]))
        start, stop = max(0, int(inside[0]) - margin), min(shape[axis], int(inside[-1]) + 1 + margin)
        box.append(_widened(start, stop, int(min_shape[axis]), shape[axis]))
    return tuple(box)


def _widened(start: int, stop: int, minimum: int, length: int) -> slice:
    """``[start, stop)`` widened evenly to at least ``minimum`` (at most ``length``), inside ``[0, length)``."""
    wanted = min(minimum, length)
    if stop - start >= wanted:
        return slice(start, stop)
    start = min(max(0, start - (wanted - (stop - start)) // 2), length - wanted)
    return slice(start, start + wanted)


def box_geometry(grid: imageio.Geometry, box: Box) -> imageio.Geometry:
    """The geometry of the sub-grid ``box`` of ``grid``."""
    direction = np.array(grid.direction).reshape(3, 3)
    start = np.array([b.start for b in box], dtype=float)
    origin = np.array(grid.origin) + direction @ (start * np.array(grid.spacing))
    size = tuple(b.stop - b.start for b in box)
    return imageio.Geometry(size, grid.spacing, tuple(origin), grid.direction)


def prepare(images: Mapping[str, sitk.Image], card: ModelCard, *, crop_to_body: bool = True, ct_check: bool = True
            ) -> PreparedInput:
    """Check, align, reorient, resample, crop and normalise ``images`` for the model ``card`` describes.

    ``crop_to_body=False`` keeps the whole volume (for comparisons; the network then also sees empty background).
    ``ct_check=False`` skips the CT check (the user is sure the volumes are MRI).
    """
    checked = check_inputs(images, card, ct_check=ct_check)
    arrays, grid = _model_arrays(checked, card, keep_stored_type=True)
    statistics = {name: intensity_statistics(array, card.normalization) for name, array in arrays.items()}
    uppers = [statistics[name][1] for name in arrays]
    box = body_box(list(arrays.values()), uppers, grid.spacing, window_shape(card)) if crop_to_body else _whole(grid)
    shape = tuple(b.stop - b.start for b in box)
    order = list(card.inputs)
    # np.zeros: the pages of a missing channel stay untouched, so they take no memory.
    stacked = np.zeros((len(order),) + shape, dtype=np.float32)
    for index, name in enumerate(order):
        if name in arrays:
            normalise(arrays[name][box], statistics[name], out=stacked[index])
    return PreparedInput(
        array=stacked,
        crop_grid=box_geometry(grid, box),
        model_grid=grid,
        box=box,
        reference=next(iter(checked.values())),
        channels=[name for name in order if name in arrays],
    )


def window_shape(card: ModelCard) -> Tuple[int, int, int]:
    """The (i, j, k) extent of one network window: the patch in the slice plane of a 2D model, 1 across it."""
    patch = list(card.patch_size)
    if card.network.dimensions == 3:
        return tuple(patch)
    patch.insert(card.network.slice_axis, 1)
    return tuple(patch)


def _whole(grid: imageio.Geometry) -> Box:
    return tuple(slice(0, int(n)) for n in grid.size)


def _sample(array: np.ndarray) -> np.ndarray:
    """The statistics subsample: ``STATISTICS_SAMPLE`` voxels at fixed pseudo-random positions of ``array`` in
    its memory order (numpy's "K" order), or all of them in that order for a smaller array.

    A view that is not contiguous (a reoriented volume in its stored type) gives the values its "K"-order
    float32 copy gave, gathered at their positions without copying the whole view.
    """
    array = np.asarray(array)
    if array.size <= STATISTICS_SAMPLE or array.flags.c_contiguous or array.flags.f_contiguous:
        flat = array.ravel(order="K")  # memory order: no copy of a transposed array
        if flat.size <= STATISTICS_SAMPLE:
            return flat
        return flat[np.random.default_rng(STATISTICS_SEED).integers(0, flat.size, STATISTICS_SAMPLE)]
    picked = np.random.default_rng(STATISTICS_SEED).integers(0, array.size, STATISTICS_SAMPLE)
    # "K" order: the axes from the largest stride to the smallest, each run forwards (also a flipped one).
    axes = np.argsort([-abs(stride) for stride in array.strides], kind="stable")
    positions = np.unravel_index(picked, [array.shape[axis] for axis in axes])
    index: List[Any] = [None] * array.ndim
    for position, axis in zip(positions, axes):
        index[axis] = position
    return array[tuple(index)]
