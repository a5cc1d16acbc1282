"""Segment MRI volumes with a model from the catalog: the whole pipeline from images to a label map.

Usage::

    from SpineMetSegLib import catalog, inference
    card = catalog.load_catalog().get()                       # the default model
    result = inference.segment_images({"t1": t1, "t2": t2}, card, device="auto", progress=ProgressReporter())
    result.labels            # uint8 labelmap on the first input's grid; metastasis = 1
    inference.segment_files({"t1": "t1.nii.gz"}, "seg.nii.gz", card, probabilities_path="p.nii.gz")

Pipeline: check and prepare the inputs (``preprocessing``: reorient, resample, crop to the body, normalise);
one window per image when the (cropped) image is at most ``WINDOW_MAX_SCALE`` times the card's patch (padded to
the network's stride), else sliding-window inference with Gaussian blending (MONAI; a 2D model slice by slice,
the slices batched), batches sized from the free memory, mixed precision (CUDA, and CPUs with native bfloat16),
channels-last on CUDA,
optional flips (test-time augmentation); the probabilities back onto the first input's grid and argmax
(``regrid``; only the body's region); ``postprocessing`` (lesion specks and lesions away from bone removed).
A GPU out of memory retries with smaller batches, then on the CPU (``devices.run_with_memory_fallback``).
Progress goes to a ``ProgressCallback`` as stages with an overall percentage that never decreases.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk
import torch
from monai.inferers import sliding_window_inference

from . import devices, imageio, preprocessing, regrid
from .atomicfile import FileJob, write_files
from .errors import ModelError
from .labels import ModelLabel
from .loader import load_network
from .modelcard import ModelCard
from .outputpaths import check_paths
from .postprocessing import card_options, clean_lesions
from .progress import ProgressCallback, no_progress

# Window overlap: 0.25 with Gaussian blending gives the same segmentation as 0.5 at about half the windows.
OVERLAP = 0.25
# The network is fully convolutional: an image up to this many times the card's patch along every axis goes
# through in one window (padded to a multiple of the network's downsampling factor) instead of 2 x 2 overlapping
# ones, about 2.7 times fewer pixels for a 307 x 307 slice and a 256 x 256 patch. Measured on the trained default
# model: the Dice pooled over 8 phantom cases stays within 0.01 of the baseline's (see benchmarks/inference.py).
WINDOW_MAX_SCALE = 1.5
# Padding of an image up to a window larger than the card's patch: the edge voxels repeated (as the training's
# whole-slice validation; measured: zeros there lowered the pooled lesion Dice by 0.01). Up to the patch the
# padding stays MONAI's zeros, so images that always fitted one window give the same result as before.
WHOLE_IMAGE_PADDING = "replicate"
PATCH_PADDING = "constant"
BLEND_MODE = "gaussian"
# A 2D model sees this many slices per sliding-window call: bounds the memory of the blended output.
SLICES_PER_CHUNK = 16
# Activation memory of one window, in copies of the feature maps at each level (conservative).
ACTIVATION_COPIES = 8
# The blended output stays on the GPU when it needs less than this share of its free memory.
OUTPUT_MEMORY_SHARE = 0.25
BYTES_PER_FLOAT = 4

# Overall percentage range of each stage, in the order they run.
STAGES = {
    "read": (0.0, 5.0),
    "preprocess": (5.0, 12.0),
    "load": (12.0, 15.0),
    "inference": (15.0, 85.0),
    "postprocess": (85.0, 93.0),
    "write": (93.0, 99.0),
    "done": (100.0, 100.0),
}


@dataclass
class SegmentationResult:
    """What a segmentation produced, on the first input's grid, and how it went."""

    labels: sitk.Image  # uint8, ModelLabel values of the card
    probabilities: Optional[sitk.Image]  # float32 metastasis probability before post-processing, when asked
    lesion_volumes_ml: List[float]  # one per lesion kept, in ml
    timings: Dict[str, float] = field(default_factory=dict)  # seconds per stage
    device: str = "cpu"
    batch_size: int = 1


class StageProgress:
    """Turns (stage, fraction of the stage) into the overall percentage; never goes back, no repeated lines."""

    def __init__(self, callback: ProgressCallback = no_progress):
        self._callback = callback
        self._stage = ""
        self._percent = -1

    def __call__(self, stage: str, fraction: float = 0.0, message: str = "", *, repeat: bool = False) -> None:
        """Report ``fraction`` of ``stage``; ``repeat`` also passes a line whose percentage has not moved (a
        heartbeat of a long step whose message changes, such as reading a huge file)."""
        low, high = STAGES[stage]
        percent = int(max(self._percent, low + (high - low) * min(1.0, max(0.0, fraction))))
        if stage == self._stage and percent == self._percent and not repeat:
            return
        self._stage, self._percent = stage, percent
        self._callback(stage, float(percent), message)


def segment_images(
    images: Mapping[str, sitk.Image],
    card: ModelCard,
    model: Optional[torch.nn.Module] = None,
    *,
    device: str = "auto",
    tta: bool = False,
    mixed_precision: bool = True,
    probabilities: bool = False,
    threads: Optional[int] = None,
    progress: ProgressCallback = no_progress,
    warn: Callable[[str], None] = devices.warn_to_stderr,
    ct_check: bool = True,
    release_inputs: bool = False,
) -> SegmentationResult:
    """Segment ``images`` ({sequence name: sitk.Image}, first = output grid) with the model ``card`` describes.

    ``model`` is the network with its weights (loaded from the catalog when None). ``mixed_precision=False`` keeps
    the network in float32 on every device (slower; the same numbers on every machine). ``probabilities`` also
    returns the metastasis probability map. Raises ``ImageError``/``GeometryError`` for unusable inputs and
    ``ModelError`` for an unusable model, before the network runs. ``release_inputs`` empties ``images`` (a
    dict the caller owns and no longer needs) once the network input is prepared, so that the input voxels do
    not stay in memory beside the result (only the first input's geometry is kept).
    """
    stages = progress if isinstance(progress, StageProgress) else StageProgress(progress)
    timings: Dict[str, float] = {}
    devices.set_cpu_threads(threads)
    with _timed(timings, "preprocess"):
        stages("preprocess", 0.0, "checking and resampling the inputs")
        prepared = preprocessing.prepare(images, card, ct_check=ct_check)
    if release_inputs:
        prepared.reference = _geometry_only(prepared.reference)
        images.clear()
    if model is None:
        with _timed(timings, "load"):
            stages("load", 0.0, f"loading {card}")
            model = load_network(card)
    torch_device = devices.resolve_device(device, warn=warn)
    plan = WindowPlan.of(card, prepared.array.shape[1:])
    batch_size = devices.choose_batch_size(torch_device, plan.bytes_per_window(card, prepared.array.shape[0]))
    counter = _WindowCounter(stages, plan.total_windows(tta))
    used: Dict[str, Any] = {}

    def run(run_device: torch.device, run_batch: int) -> np.ndarray:
        used.update(device=run_device, batch=run_batch)
        counter.restart()
        return predict_volume(
            model, prepared.array, plan, run_device, run_batch, tta=tta, mixed_precision=mixed_precision,
            on_windows=counter,
        )

    with _timed(timings, "inference"):
        stages("inference", 0.0, f"{counter.total} windows on {torch_device.type}, {batch_size} at a time")
        volume_probabilities = devices.run_with_memory_fallback(run, torch_device, batch_size, warn=warn)
        devices.release_device_memory(used["device"])
    prepared.array = None  # the network input is no longer needed: its memory goes before the regridding
    with _timed(timings, "postprocess"):
        stages("postprocess", 0.0, "back onto the input grid")
        labels, lesion_probability, volumes = to_input_grid(volume_probabilities, prepared, card, probabilities)
        stages("postprocess", 1.0, f"{len(volumes)} lesion(s)")
    return SegmentationResult(
        labels=labels,
        probabilities=lesion_probability,
        lesion_volumes_ml=volumes,
        timings=timings,
        device=str(used["device"]),
        batch_size=int(used["batch"]),
    )


def segment_files(
    inputs: Mapping[str, imageio.PathLike],
    output: imageio.PathLike,
    card: ModelCard,
    model: Optional[torch.nn.Module] = None,
    *,
    probabilities_path: Optional[imageio.PathLike] = None,
    lesions_csv: Optional[imageio.PathLike] = None,
    device: str = "auto",
    tta: bool = False,
    mixed_precision: bool = True,
    threads: Optional[int] = None,
    progress: ProgressCallback = no_progress,
    warn: Callable[[str], None] = devices.warn_to_stderr,
    ct_check: bool = True,
) -> SegmentationResult:
    """Read ``inputs`` ({name: file or DICOM folder}), segment, and write the label map to ``output``.

    Every output (label map, optional probability map and lesion CSV) is written only at the end, through
    temporary files beside the targets that replace them together, so a failure or a cancel leaves none.
    """
    stages = StageProgress(progress)
    check_output_paths(inputs, output, probabilities_path, lesions_csv)
    started = time.perf_counter()
    images = {}
    count = max(1, len(inputs))
    for index, (name, path) in enumerate(inputs.items()):
        stages("read", index / count, f"{name} {path}")

        def reading(fraction: float, message: str, index: int = index, name: str = name) -> None:
            stages("read", (index + fraction) / count, f"{name} {message}", repeat=True)

        images[name] = imageio.read_image(path, name=name.upper(), progress=reading)
    read_seconds = time.perf_counter() - started
    result = segment_images(
        images,
        card,
        model,
        device=device,
        tta=tta,
        mixed_precision=mixed_precision,
        probabilities=probabilities_path is not None,
        threads=threads,
        progress=stages,
        warn=warn,
        ct_check=ct_check,
        release_inputs=True,
    )
    result.timings = {"read": read_seconds, **result.timings}
    with _timed(result.timings, "write"):
        stages("write", 0.0, str(output))
        jobs = [imageio.image_job(result.labels, output)]
        if probabilities_path is not None:
            jobs.append(imageio.image_job(result.probabilities, probabilities_path))
        if lesions_csv is not None:
            jobs.append(FileJob(lesions_csv, _lesion_csv_writer(result.labels)))
        write_files(jobs)
    stages("done", 1.0, f"{len(result.lesion_volumes_ml)} lesion(s)")
    return result


def check_output_paths(
    inputs: Mapping[str, imageio.PathLike],
    output: imageio.PathLike,
    probabilities_path: Optional[imageio.PathLike] = None,
    lesions_csv: Optional[imageio.PathLike] = None,
    other_inputs: Optional[Mapping[str, Optional[imageio.PathLike]]] = None,
) -> None:
    """Refuse, before any work, outputs that are inputs or each other, folders, unwritable or of unknown type.

    Paths are named as the command line names them (``--t1``, ``--input flair``, ``--output``, ...).
    """
    named_inputs = {(f"--{name}" if name in ("t1", "t2", "stir") else f"--input {name}"): path
                    for name, path in inputs.items()}
    check_paths(
        {"--output": output, "--probabilities": probabilities_path, "--lesions-csv": lesions_csv},
        {**named_inputs, **(other_inputs or {})},
        suffixes={"--output": imageio.WRITABLE_SUFFIXES, "--probabilities": imageio.WRITABLE_SUFFIXES},
    )


@dataclass(frozen=True)
class WindowPlan:
    """How the network walks over the volume: 2D slice-wise or 3D, window size and overlap."""

    dimensions: int
    slice_axis: int
    roi: Tuple[int, ...]
    shape: Tuple[int, int, int]  # the (i, j, k) volume
    overlap: float = OVERLAP
    beyond_patch: bool = False  # the window is larger than the card's patch (one window for the whole image)

    @classmethod
    def of(cls, card: ModelCard, shape: Sequence[int], overlap: float = OVERLAP) -> WindowPlan:
        """The plan for a volume of ``shape`` (i, j, k) and the model ``card``."""
        network = card.network
        dimensions = network.dimensions
        slice_axis = network.slice_axis if dimensions == 2 else -1
        patch = list(card.patch_size)
        if len(patch) != dimensions:
            raise ModelError(f"patch_size {patch} of the model card does not match a {dimensions}D network.")
        image = cls._image_shape(dimensions, slice_axis, shape)
        factor = network.downsampling_factor
        # The whole (cropped) image padded to a multiple of the network's total stride: one window when it is not
        # much larger than the card's patch; otherwise windows of the patch (smaller images need no larger one).
        whole = tuple(int(math.ceil(n / factor)) * factor for n in image)
        if all(w <= WINDOW_MAX_SCALE * p for w, p in zip(whole, patch)):
            roi = whole
        else:
            roi = tuple(min(p, w) for p, w in zip(patch, whole))
        beyond = any(r > p for r, p in zip(roi, patch))
        return cls(dimensions, slice_axis, roi, tuple(int(n) for n in shape), overlap, beyond)

    @staticmethod
    def _image_shape(dimensions: int, slice_axis: int, shape: Sequence[int]) -> Tuple[int, ...]:
        if dimensions == 3:
            return tuple(shape)
        return tuple(n for axis, n in enumerate(shape) if axis != slice_axis)

    @property
    def whole_images(self) -> bool:
        """True when one window covers each image (after padding): no sliding window, no blending."""
        image = self._image_shape(self.dimensions, self.slice_axis, self.shape)
        return all(roi >= size for roi, size in zip(self.roi, image))

    @property
    def images(self) -> int:
        """Number of network images: slices for a 2D model, 1 for a 3D model."""
        return self.shape[self.slice_axis] if self.dimensions == 2 else 1

    def windows_per_image(self) -> int:
        """Windows MONAI's sliding window uses on one image (its scan-interval rule)."""
        count = 1
        for size, roi in zip(self._image_shape(self.dimensions, self.slice_axis, self.shape), self.roi):
            size = max(size, roi)
            interval = roi if size == roi else max(1, int(roi * (1 - self.overlap)))
            count *= int(math.ceil((size - roi) / interval)) + 1
        return count

    def total_windows(self, tta: bool) -> int:
        return self.images * self.windows_per_image() * len(flips(self.dimensions, tta))

    def bytes_per_window(self, card: ModelCard, in_channels: int) -> float:
        """Estimated memory of one window through the network (inputs, outputs and activations)."""
        channels, strides = card.network.level_widths, card.network.level_strides
        voxels = float(np.prod(self.roi))
        reduction, features = 1.0, 0.0
        for level, width in enumerate(channels):
            features += width / reduction
            if level < len(strides):
                reduction *= float(strides[level]) ** self.dimensions
        out_channels = card.out_channels
        return voxels * BYTES_PER_FLOAT * (in_channels + 2 * out_channels + ACTIVATION_COPIES * features)


def flips(dimensions: int, tta: bool) -> List[Tuple[int, ...]]:
    """Spatial dims of a (batch, channel, ...) tensor to flip for each pass: none, or every combination."""
    if not tta:
        return [()]
    spatial = tuple(range(2, 2 + dimensions))
    return [combo for count in range(len(spatial) + 1) for combo in itertools.combinations(spatial, count)]


def predict_volume(
    model: torch.nn.Module,
    array: np.ndarray,
    plan: WindowPlan,
    device: torch.device,
    batch_size: int,
    *,
    tta: bool = False,
    mixed_precision: bool = True,
    on_windows: Callable[[int], None] = lambda count: None,
) -> np.ndarray:
    """Class probabilities (out_channels, i, j, k) float32 for the (channels, i, j, k) ``array``.

    ``mixed_precision`` runs the network in ``devices.autocast_dtype(device)`` where there is one.
    """
    model.eval()
    memory_format = _memory_format(device, plan.dimensions)
    model.to(device=device, memory_format=memory_format)
    dtype = devices.autocast_dtype(device) if mixed_precision else None
    predictor = _predictor(model, device, memory_format, dtype, on_windows)
    volume = torch.from_numpy(array)
    infer = _whole_images if plan.whole_images else _blend
    with torch.inference_mode():
        if plan.dimensions == 3:
            return infer(volume[None], plan, predictor, device, batch_size, tta)[0].numpy()
        slices = volume.movedim(1 + plan.slice_axis, 0)  # (slices, channels, a, b)
        result: Optional[np.ndarray] = None
        for start in range(0, slices.shape[0], SLICES_PER_CHUNK):
            chunk = infer(slices[start : start + SLICES_PER_CHUNK], plan, predictor, device, batch_size, tta)
            if result is None:
                result = np.empty((chunk.shape[1],) + array.shape[1:], dtype=np.float32)
            np.moveaxis(result, 1 + plan.slice_axis, 0)[start : start + chunk.shape[0]] = chunk.numpy()
        return result


def _average_over_flips(
    images: torch.Tensor, plan: WindowPlan, tta: bool, run: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """``run`` on the images and, with ``tta``, on their flipped copies, each flipped back, averaged."""
    total: Optional[torch.Tensor] = None
    passes = flips(plan.dimensions, tta)
    for dims in passes:
        source = torch.flip(images, dims) if dims else images
        probabilities = run(source)
        probabilities = torch.flip(probabilities, dims) if dims else probabilities
        total = probabilities if total is None else total.add_(probabilities)
    if len(passes) > 1:
        total /= len(passes)
    return total


def _blend(
    images: torch.Tensor,
    plan: WindowPlan,
    predictor: Callable[[torch.Tensor], torch.Tensor],
    device: torch.device,
    batch_size: int,
    tta: bool,
) -> torch.Tensor:
    """Sliding-window probabilities of a batch of images, averaged over the flips, on the CPU."""
    images = images.contiguous().to(device)
    out_device = device if _output_fits(images, device) else torch.device("cpu")

    def run(source: torch.Tensor) -> torch.Tensor:
        return sliding_window_inference(
            source,
            roi_size=plan.roi,
            sw_batch_size=batch_size,
            predictor=predictor,
            overlap=plan.overlap,
            mode=BLEND_MODE,
            device=out_device,
        )

    return _average_over_flips(images, plan, tta, run).float().cpu()


def _whole_images(
    images: torch.Tensor,
    plan: WindowPlan,
    predictor: Callable[[torch.Tensor], torch.Tensor],
    device: torch.device,
    batch_size: int,
    tta: bool,
) -> torch.Tensor:
    """Probabilities of a batch of images, each padded to the one window ``plan.roi``, averaged over the flips."""
    spatial = images.shape[2:]
    pad: List[int] = []  # torch.nn.functional.pad wants (before, after) pairs from the last axis back
    for size, roi in zip(reversed(spatial), reversed(plan.roi)):
        pad += [(roi - size) // 2, roi - size - (roi - size) // 2]
    inside = (slice(None), slice(None)) + tuple(
        slice(pad[2 * (len(spatial) - 1 - axis)], pad[2 * (len(spatial) - 1 - axis)] + size)
        for axis, size in enumerate(spatial)
    )
    mode = WHOLE_IMAGE_PADDING if plan.beyond_patch else PATCH_PADDING

    # Flipped before padding: an uneven padding stays on the same side of the flipped image.
    def run(source: torch.Tensor) -> torch.Tensor:
        outputs = []
        for start in range(0, source.shape[0], batch_size):
            batch = source[start : start + batch_size].to(device)
            if any(pad):
                batch = torch.nn.functional.pad(batch, pad, mode=mode)
            outputs.append(predictor(batch)[inside].cpu())
        return torch.cat(outputs) if len(outputs) > 1 else outputs[0]

    return _average_over_flips(images, plan, tta, run).float()


def _predictor(
    model: torch.nn.Module,
    device: torch.device,
    memory_format: torch.memory_format,
    dtype: Optional[torch.dtype],
    on_windows: Callable[[int], None],
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The per-batch function MONAI calls: the network (in ``dtype`` when given), softmax in float32."""

    def predict(windows: torch.Tensor) -> torch.Tensor:
        windows = windows.to(device).contiguous(memory_format=memory_format)
        if dtype is None:
            logits = model(windows)
        else:
            with torch.autocast(device.type, dtype=dtype):
                logits = model(windows)
        on_windows(windows.shape[0])
        return torch.softmax(logits.float(), dim=1)

    return predict


def _memory_format(device: torch.device, dimensions: int) -> torch.memory_format:
    # Channels-last lets cuDNN use its fastest convolutions (tensor cores). On the CPU it is slower (measured, bfloat16,
    # one thread, 18 slices of 304 x 312: 223 ms against 179 ms): oneDNN's convolutions gain but instance
    # normalisation converts the layout back and forth around each of them.
    if device.type != "cuda":
        return torch.contiguous_format
    return torch.channels_last if dimensions == 2 else torch.channels_last_3d


def _output_fits(images: torch.Tensor, device: torch.device) -> bool:
    if device.type != "cuda":
        return True
    needed = images.numel() / max(1, images.shape[1]) * BYTES_PER_FLOAT * 8
    return needed < OUTPUT_MEMORY_SHARE * devices.available_memory(device)


class _WindowCounter:
    """Reports inference progress as windows are done."""

    def __init__(self, stages: StageProgress, total: int):
        self.stages = stages
        self.total = max(1, total)
        self.done = 0

    def restart(self) -> None:
        self.done = 0

    def __call__(self, count: int) -> None:
        self.done += count
        self.stages("inference", self.done / self.total, f"window {min(self.done, self.total)}/{self.total}")


def to_input_grid(
    probabilities: np.ndarray, prepared: preprocessing.PreparedInput, card: ModelCard, want: bool
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


# Metadata key on a voxel-free stand-in for the first input (``_geometry_only``): the input's size.
REFERENCE_SIZE_KEY = "spinemetseg_reference_size"


def _geometry_only(image: sitk.Image) -> sitk.Image:
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


def _lesion_csv_writer(labels: sitk.Image) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        from . import lesions  # the lesion analysis is only needed for the CSV

        # A model output is its own anatomy map: the lesions' host vertebra and canal distance come from it.
        lesions.write_lesion_csv(lesions.measure_lesions(labels, label=int(ModelLabel.METASTASIS)), path)

    return write


@contextlib.contextmanager
def _timed(timings: Dict[str, float], stage: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - started
