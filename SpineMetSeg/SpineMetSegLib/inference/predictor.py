"""The one predictor: class probabilities of a prepared volume, as ``segment`` and training validation compute them.

Usage::

    from SpineMetSegLib.inference.predictor import Predictor
    predictor = Predictor(card, network, device="cpu")                   # tta, mixed precision, batch size
    probabilities = predictor.probabilities(prepared.array)               # (out_channels, i, j, k) float32
    predictor.stream(prepared.array, store.add)                           # or a chunk of slices at a time

How the network walks over the volume (``WindowPlan``): a 2D model slice by slice along the card's slice axis, the
slices batched; one window per image when the (cropped) image is at most ``WINDOW_MAX_SCALE`` times the card's
patch (padded to the network's stride), else windows of the patch with Gaussian blending. Both go through MONAI's
``sliding_window_inference``, which pads, batches the windows and blends (a single window is its own average:
constant weights). Optional flips (test-time augmentation) are averaged. Mixed precision on CUDA and on CPUs with
native bfloat16; channels-last on CUDA; the batch size comes from the free memory, and a GPU out of memory retries
with smaller batches, then on the CPU (``devices.run_with_memory_fallback``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Callable, Iterator, List, Optional, Sequence, Tuple, TypeVar

import numpy as np
import torch
from monai.inferers import sliding_window_inference

from ..errors import ModelError
from ..models.modelcard import ModelCard
from . import devices

# Window overlap: 0.25 with Gaussian blending gives the same segmentation as 0.5 at about half the windows.
OVERLAP = 0.25
# The network is fully convolutional: an image up to this many times the card's patch along every axis goes
# through in one window (padded to a multiple of the network's downsampling factor) instead of 2 x 2 overlapping
# ones, about 2.7 times fewer pixels for a 307 x 307 slice and a 256 x 256 patch. Measured on the trained default
# model: the Dice pooled over 8 phantom cases stays within 0.01 of the baseline's (see benchmarks/inference.py).
WINDOW_MAX_SCALE = 1.5
# Padding of an image up to a window larger than the card's patch: the edge voxels repeated (as the training's
# whole-slice validation did; measured: zeros there lowered the pooled lesion Dice by 0.01). Up to the patch the
# padding stays zeros, so images that always fitted one window give the same result as before.
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

T = TypeVar("T")


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

    @property
    def padding_mode(self) -> str:
        return WHOLE_IMAGE_PADDING if self.beyond_patch else PATCH_PADDING

    @property
    def blend_mode(self) -> str:
        # One window is its own average: constant weights keep its probabilities exactly.
        return "constant" if self.whole_images else BLEND_MODE

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
        return voxels * BYTES_PER_FLOAT * (in_channels + 2 * card.out_channels + ACTIVATION_COPIES * features)


def flips(dimensions: int, tta: bool) -> List[Tuple[int, ...]]:
    """Spatial dims of a (batch, channel, ...) tensor to flip for each pass: none, or every combination."""
    if not tta:
        return [()]
    spatial = tuple(range(2, 2 + dimensions))
    return [combo for count in range(len(spatial) + 1) for combo in itertools.combinations(spatial, count)]


class Predictor:
    """The card's network over prepared volumes: window plan, flips, blending, batch size and memory fallback.

    ``on_windows(count)`` hears of every batch of windows done (for progress); ``warn`` of a fallback.
    """

    def __init__(self, card: ModelCard, network: torch.nn.Module, *, device: str = "auto", tta: bool = False,
                 mixed_precision: bool = True, on_windows: Callable[[int], None] = lambda count: None,
                 warn: Callable[[str], None] = devices.warn_to_stderr):
        self.card = card
        self.network = network
        self.device = devices.resolve_device(device, warn=warn) if isinstance(device, str) else device
        self.tta = tta
        self.mixed_precision = mixed_precision
        self.on_windows = on_windows
        self.warn = warn
        self.used_device: torch.device = self.device
        self.used_batch = 1

    def plan(self, array: np.ndarray) -> WindowPlan:
        return WindowPlan.of(self.card, array.shape[1:])

    def probabilities(self, array: np.ndarray, *, on_restart: Callable[[], None] = lambda: None) -> np.ndarray:
        """Class probabilities (out_channels, i, j, k) float32 of the (channels, i, j, k) normalised ``array``.

        ``on_restart`` is called before every attempt (a retry after running out of memory starts over).
        """
        def run(plan: WindowPlan, device: torch.device, batch: int) -> np.ndarray:
            return predict_volume(self.network, array, plan, device, batch, tta=self.tta,
                                  mixed_precision=self.mixed_precision, on_windows=self.on_windows)

        return self._with_memory_fallback(array, run, on_restart)

    def stream(self, array: np.ndarray, consume: Callable[[int, np.ndarray], None], *,
               on_restart: Callable[[], None] = lambda: None) -> None:
        """``probabilities`` of a 2D model's ``array`` handed to ``consume(first slice, chunk)`` chunk by chunk
        (``predict_chunks``), so that the whole volume's probabilities need never be held at once.

        ``on_restart`` is called before every attempt: a retry after running out of memory starts over at slice 0.
        """
        def run(plan: WindowPlan, device: torch.device, batch: int) -> None:
            for start, chunk in predict_chunks(self.network, array, plan, device, batch, tta=self.tta,
                                               mixed_precision=self.mixed_precision, on_windows=self.on_windows):
                consume(start, chunk)

        self._with_memory_fallback(array, run, on_restart)

    def _with_memory_fallback(self, array: np.ndarray, run: Callable[[WindowPlan, torch.device, int], T],
                              on_restart: Callable[[], None]) -> T:
        """``run(plan, device, batch)`` with the batch sized from the free memory, retried with smaller batches and
        then on the CPU when memory runs out (``on_restart`` before each attempt); device memory freed after."""
        plan = self.plan(array)
        batch = devices.choose_batch_size(self.device, plan.bytes_per_window(self.card, array.shape[0]))

        def attempt(run_device: torch.device, run_batch: int) -> T:
            self.used_device, self.used_batch = run_device, run_batch
            on_restart()
            return run(plan, run_device, run_batch)

        try:
            return devices.run_with_memory_fallback(attempt, self.device, batch, warn=self.warn)
        finally:
            devices.release_device_memory(self.used_device)


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
    result: Optional[np.ndarray] = None
    for start, chunk in predict_chunks(model, array, plan, device, batch_size, tta=tta,
                                       mixed_precision=mixed_precision, on_windows=on_windows):
        if plan.dimensions == 3:
            return chunk[0]
        if result is None:
            result = np.empty((chunk.shape[1],) + array.shape[1:], dtype=np.float32)
        np.moveaxis(result, 1 + plan.slice_axis, 0)[start : start + chunk.shape[0]] = chunk
    return result


def predict_chunks(
    model: torch.nn.Module,
    array: np.ndarray,
    plan: WindowPlan,
    device: torch.device,
    batch_size: int,
    *,
    tta: bool = False,
    mixed_precision: bool = True,
    on_windows: Callable[[int], None] = lambda count: None,
) -> Iterator[Tuple[int, np.ndarray]]:
    """``predict_volume`` a chunk at a time: (first slice, (slices, out_channels, a, b) float32) for a 2D model,
    ``SLICES_PER_CHUNK`` slices along ``plan.slice_axis`` each (the other two axes in order); one chunk
    (0, (1, out_channels, i, j, k)) for a 3D model."""
    model.eval()
    memory_format = _memory_format(device, plan.dimensions)
    model.to(device=device, memory_format=memory_format)
    dtype = devices.autocast_dtype(device) if mixed_precision else None
    network = _network_call(model, device, memory_format, dtype, on_windows)
    volume = torch.from_numpy(array)
    with torch.inference_mode():
        if plan.dimensions == 3:
            yield 0, _windows(volume[None], plan, network, device, batch_size, tta).numpy()
            return
        slices = volume.movedim(1 + plan.slice_axis, 0)  # (slices, channels, a, b)
        for start in range(0, slices.shape[0], SLICES_PER_CHUNK):
            chunk = _windows(slices[start : start + SLICES_PER_CHUNK], plan, network, device, batch_size, tta)
            yield start, chunk.numpy()


def _windows(
    images: torch.Tensor,
    plan: WindowPlan,
    network: Callable[[torch.Tensor], torch.Tensor],
    device: torch.device,
    batch_size: int,
    tta: bool,
) -> torch.Tensor:
    """Probabilities of a batch of images through MONAI's sliding window, averaged over the flips, on the CPU."""
    out_device = device if _output_fits(images, device) else torch.device("cpu")
    total: Optional[torch.Tensor] = None
    passes = flips(plan.dimensions, tta)
    for dims in passes:
        # Flipped before padding: an uneven padding stays on the same side of the flipped image.
        source = torch.flip(images, dims) if dims else images
        probabilities = sliding_window_inference(
            source,
            roi_size=plan.roi,
            sw_batch_size=batch_size,
            predictor=network,
            overlap=plan.overlap,
            mode=plan.blend_mode,
            padding_mode=plan.padding_mode,
            sw_device=device,
            device=out_device,
        )
        probabilities = torch.flip(probabilities, dims) if dims else probabilities
        total = probabilities if total is None else total.add_(probabilities)
    if len(passes) > 1:
        total /= len(passes)
    return total.float().cpu()


def _network_call(
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
