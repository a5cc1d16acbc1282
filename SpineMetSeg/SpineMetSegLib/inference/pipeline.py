"""Segment MRI volumes with a model card: the pipeline from images to a label map, and its progress.

Usage::

    from SpineMetSegLib import inference
    from SpineMetSegLib.models import loader
    model = loader.load_model()                                # the default model
    result = inference.segment_images({"t1": t1, "t2": t2}, model.card, model.network, progress=ProgressReporter())
    result.labels            # uint8 labelmap on the first input's grid; metastasis = 1
    inference.segment_files({"t1": "t1.nii.gz"}, "seg.nii.gz", model.card, model.network, probabilities_path="p.nii.gz")

The pipeline, one module a step: ``preprocessing.prepare`` (check, reorient, resample, crop to the body,
normalise) -> ``predictor.Predictor`` (windows, flips, blending; also training validation's) ->
``restore.to_input_grid`` (onto the first input's grid, argmax, the card's post-processing) -> ``export``
(verified, all outputs or none). Progress goes to a ``ProgressCallback`` as stages with an overall percentage that
never decreases.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Mapping, Optional

import SimpleITK as sitk
import torch

from ..images import imageio
from ..labels import ModelLabel
from ..models.loader import load_network
from ..models.modelcard import ModelCard
from ..progress import ProgressCallback, no_progress
from . import devices, preprocessing
from .export import check_output_paths, write_outputs
from .predictor import Predictor
from .restore import StreamedProbabilities, geometry_only, needs_every_probability, to_input_grid

# Above this size the network's probabilities (4 bytes each) are streamed (``restore.StreamedProbabilities``)
# instead of held whole: 256 MiB is a 2D model's 4 classes over 256 x 256 x 256 voxels (a clinical volume,
# cropped to the body, stays below).
WHOLE_PROBABILITIES_BYTES = 1 << 28
BYTES_PER_PROBABILITY = 4

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
        prepared.reference = geometry_only(prepared.reference)
        images.clear()
    if model is None:
        with _timed(timings, "load"):
            stages("load", 0.0, f"loading {card}")
            model = load_network(card)
    predictor = Predictor(card, model, device=device, tta=tta, mixed_precision=mixed_precision, warn=warn)
    plan = predictor.plan(prepared.array)
    counter = _WindowCounter(stages, plan.total_windows(tta))
    predictor.on_windows = counter
    # A 2D model's probabilities of a huge volume are streamed: only what the regridding reads is kept.
    streamed = plan.dimensions == 2 and (
        card.out_channels * prepared.array[0].size * BYTES_PER_PROBABILITY > WHOLE_PROBABILITIES_BYTES
    )
    with _timed(timings, "inference"):
        stages("inference", 0.0, f"{counter.total} windows on {predictor.device.type}")
        if streamed:
            volume_probabilities = _stream(predictor, prepared, plan.slice_axis, card, probabilities, counter)
            if needs_every_probability(volume_probabilities, prepared):
                # A noisy prediction: so many label boundaries that the regridding interpolates every probability,
                # which the stream did not keep. The network runs again, this time keeping them all.
                del volume_probabilities
                stages("inference", 1.0, "a noisy prediction: the network runs again to keep every probability",
                       repeat=True)
                predictor.on_windows = lambda count: None
                volume_probabilities = predictor.probabilities(prepared.array)
        else:
            volume_probabilities = predictor.probabilities(prepared.array, on_restart=counter.restart)
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
        device=str(predictor.used_device),
        batch_size=predictor.used_batch,
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
        write_outputs(result.labels, output, probabilities=result.probabilities,
                      probabilities_path=probabilities_path, lesions_csv=lesions_csv)
    stages("done", 1.0, f"{len(result.lesion_volumes_ml)} lesion(s)")
    return result


def _stream(predictor: Predictor, prepared: preprocessing.PreparedInput, slice_axis: int, card: ModelCard,
            probabilities: bool, counter: _WindowCounter) -> StreamedProbabilities:
    """The network's probabilities of ``prepared`` streamed into a store that keeps what ``to_input_grid`` reads."""
    store = StreamedProbabilities(prepared.array.shape[1:], card.out_channels, slice_axis,
                                  keep_channel=ModelLabel.METASTASIS if probabilities else None)

    def restart() -> None:
        counter.restart()
        store.restart()

    predictor.stream(prepared.array, store.add, on_restart=restart)
    return store.finish()


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


@contextlib.contextmanager
def _timed(timings: Dict[str, float], stage: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - started
