"""Training data: synthetic cases generated on the fly, a folder of your own cases, and 2D patches from both.

Usage::

    from SpineMetSegLib.training.data import FolderDataset, SyntheticStream, sample_patch
    folder = FolderDataset("/data/Dataset101_Spine", card)          # MSD / nnU-Net layout, checked on open
    cases = folder.load_all()                                      # -> list[CaseSlices]
    with SyntheticStream(card, seed=0, start_index=0, workers=1) as stream:
        case = stream.get(0)                                       # blocks until generated
    patch = sample_patch(case, (128, 128), rng)                    # {"image": [C,h,w], "label": [1,h,w]}

Every case, synthetic or real, goes through ``preprocess.prepare_case`` (the card's orientation, spacing and
normalisation, the same as inference) and is kept as 2D slices along the card's ``slice_axis``.

Synthetic cases come from ``phantom.generate_case`` in background processes, in a fixed order (case ``i`` of a
run always has the same phantom seed and contrast mode), so a run is reproducible and can resume. Training
phantom seeds stay below ``TRAINING_SEED_LIMIT``; held-out seeds start at ``HELDOUT_SEED_START`` and the final
validation's at ``VALIDATION_SEED_START``, so no validation case was ever seen in training.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import queue
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ImageError
from ..models.modelcard import ModelCard
from .preprocess import prepare_case, slice_views

TRAINING_SEED_LIMIT = 1_000_000
HELDOUT_SEED_START = 5_000_000
VALIDATION_SEED_START = 9_000_000
# A large odd multiplier spreads the runs of different --seed values over the training seed range.
SEED_STRIDE = 7919
CONTRASTS = ("standard", "randomized")

# Slices kept per synthetic case: all that show a lesion, then spine slices, then a few without spine so the
# model also learns that most of a scan is not a metastasis.
MAX_SPINE_SLICES = 24
BACKGROUND_SLICES = 4
# Where patch centres go: on a lesion voxel, on any labelled voxel, or anywhere.
LESION_CENTRE_PROBABILITY = 0.5
FOREGROUND_CENTRE_PROBABILITY = 0.35
CENTRE_JITTER = 0.35  # of the patch size

METASTASIS = 1


@dataclass
class CaseSlices:
    """One preprocessed case as 2D slices: images [S, C, a, b] (float16 to save memory), labels [S, a, b]."""

    name: str
    images: np.ndarray
    labels: np.ndarray
    spacing: Tuple[float, float, float] = (1.0, 1.0, 1.0)  # of the network grid, ITK order
    canal_known: bool = True  # False for real anatomy: its spinal canal is not labelled (label 0 there)

    def __post_init__(self):
        self.lesion_slices = np.flatnonzero((self.labels == METASTASIS).any(axis=(1, 2)))
        self.foreground_slices = np.flatnonzero((self.labels > 0).any(axis=(1, 2)))


def case_from_arrays(name: str, image: np.ndarray, label: np.ndarray, slice_axis: int,
                     keep: Optional[np.ndarray] = None, spacing: Sequence[float] = (1.0, 1.0, 1.0),
                     canal_known: bool = True) -> CaseSlices:
    """Cut a preprocessed (C, i, j, k) image and (i, j, k) label into slices (only those in ``keep`` if given)."""
    images = slice_views(image, slice_axis)
    labels = slice_views(label, slice_axis)
    if keep is not None:
        images, labels = images[keep], labels[keep]
    return CaseSlices(name, np.ascontiguousarray(images, dtype=np.float16), np.ascontiguousarray(labels),
                      tuple(float(v) for v in spacing), canal_known)


def choose_slices(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices of the slices to keep from a synthetic case's [S, a, b] labels (see ``MAX_SPINE_SLICES``)."""
    lesion = np.flatnonzero((labels == METASTASIS).any(axis=(1, 2)))
    spine = np.setdiff1d(np.flatnonzero((labels > 0).any(axis=(1, 2))), lesion)
    other = np.setdiff1d(np.arange(labels.shape[0]), np.union1d(lesion, spine))
    room = max(0, MAX_SPINE_SLICES - lesion.size)
    spine = rng.choice(spine, size=min(room, spine.size), replace=False) if spine.size else spine
    other = rng.choice(other, size=min(BACKGROUND_SLICES, other.size), replace=False) if other.size else other
    return np.sort(np.concatenate([lesion, spine, other]).astype(int))


# ----------------------------------------------------------------------------------------------- synthetic


def training_case_seed(run_seed: int, global_index: int) -> Tuple[int, str]:
    """Phantom seed and contrast mode of case ``global_index`` of a run started with ``run_seed``."""
    phantom_seed = (run_seed * SEED_STRIDE + global_index) % TRAINING_SEED_LIMIT
    return phantom_seed, CONTRASTS[global_index % 3 == 2]  # every third case: domain-randomised contrast


def synthetic_case(phantom_seed: int, contrast: str, card: ModelCard, keep_all: bool = False) -> CaseSlices:
    """Generate, preprocess and slice one phantom case (all slices when ``keep_all``)."""
    from ..data.phantom import generate_case, model_target

    case = generate_case(phantom_seed, contrast=contrast)
    image, label, spacing = prepare_case(case.images, card, model_target(case))
    slice_axis = card.network.slice_axis
    keep = None
    if not keep_all:
        keep = choose_slices(slice_views(label, slice_axis), np.random.default_rng(phantom_seed))
    return case_from_arrays(f"phantom-{phantom_seed}-{contrast}", image, label, slice_axis, keep, spacing)


def _synthetic_worker(card_json: dict, run_seed: int, indices: Sequence[int], world: int, rank: int,
                      out: multiprocessing.Queue, anatomy_folders: Sequence[str] = ()) -> None:
    """Background process: generate the local cases ``indices`` in order and put them on ``out``.

    With ``anatomy_folders`` the cases are real anatomy with lesions drawn from new seeds, else phantom cases.
    """
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from ..models.catalog import card_from_dict

    card = card_from_dict(card_json)  # the JSON: a card crosses the process boundary as text
    maker = AnatomySampler(anatomy_folders, card) if anatomy_folders else None
    for index in indices:
        global_index = index * world + rank
        phantom_seed, contrast = training_case_seed(run_seed, global_index)
        try:
            if maker is not None:
                out.put((index, maker.sample(phantom_seed)))
            else:
                out.put((index, synthetic_case(phantom_seed, contrast, card)))
        except Exception as error:  # noqa: BLE001 - reported to the trainer, which raises it
            out.put((index, error))
            return


# ------------------------------------------------------------------------------------------- real anatomy

ANATOMY_MARGIN_MM = 60.0  # context kept around the vertebral bodies (bowel, muscle, canal, skin)
CLEAN_CASE_PROBABILITY = 0.15  # real cases drawn without any lesion (look-alikes only)
PLAUSIBLE_CONTRAST_PROBABILITY = 0.65  # a missing sequence is T1/T2/STIR-like, else random per tissue class
THICK_SLICE_PROBABILITY = 0.5  # average 2-5 adjacent 1 mm sagittal slices, like a clinical 3-5 mm series
THICK_SLICE_RANGE = (2, 5)
FRACTURE_PROBABILITY = 0.1  # cases with lesions whose first lesion's body also collapses (stage 7 on; 2.0.0 had 0)


class AnatomySampler:
    """Training cases from real anatomy: a random training case folder, lesions and look-alikes from ``seed``.

    Every card input the scan lacks is converted from its real sequence (textbook-like contrast with
    ``PLAUSIBLE_CONTRAST_PROBABILITY``, else random per tissue class), before lesions are drawn, so each
    lesion's contrast follows its sequence. Cases are cropped to the bodies plus ``ANATOMY_MARGIN_MM``.
    """

    def __init__(self, folders: Sequence[str], card: ModelCard, fracture_probability: float = FRACTURE_PROBABILITY):
        from ..data.real_case import crop_to_bodies, load_real_case

        self.card = card
        self.fracture_probability = fracture_probability
        self.cases = [crop_to_bodies(load_real_case(folder), ANATOMY_MARGIN_MM) for folder in folders]
        self._classes: Dict[str, Any] = {}

    def tissue_classes_of(self, case: Any) -> Any:
        from ..data.contrast import tissue_classes

        if case.name not in self._classes:
            source = next(iter(case.sequences.values()))
            self._classes[case.name] = tissue_classes(source, case.bodies > 0)
        return self._classes[case.name]

    def sample(self, seed: int, case_index: Optional[int] = None, keep_all: bool = False) -> CaseSlices:
        from ..data.anatomy_case import generate_anatomy_case, model_target

        rng = np.random.default_rng([seed, 17])
        case = self.cases[int(rng.integers(len(self.cases))) if case_index is None else case_index]
        inputs = list(self.card.inputs)
        missing = [name for name in inputs if name not in case.sequences]
        plausible = rng.random() < PLAUSIBLE_CONTRAST_PROBABILITY
        lesion_count = 0 if rng.random() < CLEAN_CASE_PROBABILITY else None
        drawn = generate_anatomy_case(case, seed, generate=missing, contrast="standard" if plausible else "randomized",
                                      lesion_count=lesion_count, classes=self.tissue_classes_of(case),
                                      fracture_probability=self.fracture_probability)
        images = {name: drawn.images[name] for name in inputs}
        if rng.random() < THICK_SLICE_PROBABILITY:
            images = thick_slices(images, int(rng.integers(THICK_SLICE_RANGE[0], THICK_SLICE_RANGE[1] + 1)))
        image, label, spacing = prepare_case(images, self.card, model_target(drawn))
        slice_axis = self.card.network.slice_axis
        keep = None if keep_all else choose_slices(slice_views(label, slice_axis), rng)
        return case_from_arrays(f"{case.name}-{seed}", image, label, slice_axis, keep, spacing, canal_known=False)


def thick_slices(images: Dict[str, Any], width: int) -> Dict[str, Any]:
    """Average ``width`` neighbouring slices across the left-right axis (a thick-slice sagittal series)."""
    import SimpleITK as sitk
    from scipy import ndimage

    out = {}
    for name, image in images.items():
        direction = np.array(image.GetDirection()).reshape(3, 3)
        axis = 2 - int(np.argmax(np.abs(direction[0])))  # numpy axis along left-right
        array = ndimage.uniform_filter1d(sitk.GetArrayFromImage(image), width, axis=axis)
        thick = sitk.GetImageFromArray(array)
        thick.CopyInformation(image)
        out[name] = thick
    return out


class SyntheticStream:
    """Synthetic training cases ``start_index, start_index+1, ...`` made ahead of use by background processes.

    ``get(i)`` must be called with increasing ``i``; it blocks until case ``i`` is ready. With several
    workers, worker ``k`` makes the cases ``i`` with ``(i - start_index) % workers == k``.
    """

    def __init__(self, card: ModelCard, *, seed: int, start_index: int = 0, workers: int = 1, prefetch: int = 4,
                 rank: int = 0, world: int = 1, horizon: int = 1_000_000, anatomy_folders: Sequence[str] = ()):
        context = multiprocessing.get_context("spawn")
        self._queue = context.Queue(maxsize=max(prefetch, workers))
        self._ready: Dict[int, CaseSlices] = {}
        self._processes = []
        for k in range(max(1, workers)):
            indices = range(start_index + k, start_index + horizon, max(1, workers))
            process = context.Process(
                target=_synthetic_worker, args=(card.to_dict(), seed, indices, world, rank, self._queue,
                                                tuple(str(f) for f in anatomy_folders)), daemon=True
            )
            process.start()
            self._processes.append(process)

    def get(self, index: int, timeout_s: float = 1800.0) -> CaseSlices:
        while index not in self._ready:
            try:
                got, case = self._queue.get(timeout=timeout_s)
            except queue.Empty:
                raise RuntimeError(f"no synthetic case arrived in {timeout_s:.0f} s; the generator is stuck") from None
            if isinstance(case, Exception):
                raise case
            self._ready[got] = case
        for old in [i for i in self._ready if i < index]:
            del self._ready[old]
        return self._ready.pop(index)

    def close(self) -> None:
        for process in self._processes:
            if process.is_alive():
                process.terminate()
            process.join(timeout=5)
        self._processes = []

    def __enter__(self) -> SyntheticStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def heldout_cases(card: ModelCard, count: int, start_seed: int = HELDOUT_SEED_START) -> List[CaseSlices]:
    """``count`` fixed held-out synthetic cases (all slices), alternating standard and randomised contrast."""
    return [synthetic_case(start_seed + i, CONTRASTS[i % 2], card, keep_all=True) for i in range(count)]


# ------------------------------------------------------------------------------------------------- folder


def _normalised_name(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


class FolderDataset:
    """Your own annotated cases in the Medical Segmentation Decathlon / nnU-Net layout.

    ``dataset.json`` names the channels (nnU-Net v2 ``channel_names`` or MSD ``modality``: index -> sequence,
    e.g. ``{"0": "T1", "1": "T2", "2": "STIR"}``) and the labels (``labels``: name -> value in nnU-Net v2,
    value -> name in MSD). ``imagesTr/<case>_0000.nii.gz`` is channel 0 of ``<case>``, ``labelsTr/<case>.nii.gz``
    its label map. Channels are matched to the card's inputs by name; a card input the dataset lacks is a
    zero channel (as at inference). Label names are matched to the card's labels (``metastasis``, ``vertebral
    body``, ``spinal canal``); other labels become background.
    """

    def __init__(self, folder: Any, card: ModelCard):
        self.folder = Path(folder)
        self.card = card
        description = self.folder / "dataset.json"
        if not description.is_file():
            raise ImageError(
                f"{self.folder} has no dataset.json: a training folder needs dataset.json, imagesTr/ and labelsTr/ "
                "(Medical Segmentation Decathlon / nnU-Net layout)"
            )
        try:
            self.description = json.loads(description.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ImageError(f"{description} is not valid JSON: {error}") from None
        self.file_ending = self.description.get("file_ending", ".nii.gz")
        self.channels = self._channels()
        self.label_map = self._label_map()
        self.cases = self._cases()

    def _channels(self) -> Dict[int, str]:
        names = self.description.get("channel_names") or self.description.get("modality")
        if not isinstance(names, dict) or not names:
            raise ImageError("dataset.json needs 'channel_names' (or MSD 'modality'): channel index -> sequence name")
        inputs = {_normalised_name(name): name for name in self.card.inputs}
        channels = {}
        for index, name in names.items():
            key = _normalised_name(str(name))
            if key not in inputs:
                raise ImageError(
                    f"dataset.json channel {index} is {name!r}, which the model does not take; "
                    f"its inputs are {', '.join(self.card.inputs)}"
                )
            channels[int(index)] = inputs[key]
        return channels

    def _label_map(self) -> Dict[int, int]:
        labels = self.description.get("labels")
        if not isinstance(labels, dict) or not labels:
            raise ImageError("dataset.json needs 'labels' (name -> value, or MSD value -> name)")
        pairs = []
        for key, value in labels.items():
            if str(key).lstrip("-").isdigit():
                pairs.append((str(value), int(key)))
            else:
                pairs.append((str(key), int(value)))
        card_values = {_normalised_name(label.name): label.value for label in self.card.labels}
        mapping = {value: card_values[_normalised_name(name)] for name, value in pairs
                   if _normalised_name(name) in card_values}
        if int(self.card.label_value("metastasis")) not in mapping.values():
            raise ImageError("dataset.json 'labels' has no 'metastasis' label; name the lesion label 'metastasis'")
        return mapping

    def _cases(self) -> List[Tuple[str, List[Path], Path]]:
        images_dir, labels_dir = self.folder / "imagesTr", self.folder / "labelsTr"
        for needed in (images_dir, labels_dir):
            if not needed.is_dir():
                raise ImageError(f"{self.folder} has no {needed.name}/ folder (MSD / nnU-Net layout)")
        ending = self.file_ending
        label_files = sorted(p for p in labels_dir.iterdir() if p.name.endswith(ending))
        if not label_files:
            raise ImageError(f"{labels_dir} holds no label file ending in {ending}")
        cases = []
        expected = sorted(self.channels)
        for label_file in label_files:
            case = label_file.name[: -len(ending)]
            found = sorted(images_dir.glob(f"{case}_[0-9][0-9][0-9][0-9]{ending}"))
            if not found:
                raise ImageError(f"label {label_file.name} has no image: expected imagesTr/{case}_0000{ending}")
            indices = [int(p.name[len(case) + 1: len(case) + 5]) for p in found]
            if indices != expected:
                raise ImageError(
                    f"case {case} has {len(found)} image channel(s) {indices} but dataset.json names "
                    f"{len(expected)} channel(s) {expected}"
                )
            cases.append((case, found, label_file))
        return cases

    def __len__(self) -> int:
        return len(self.cases)

    def load(self, index: int) -> Tuple[str, np.ndarray, np.ndarray, Tuple[float, ...]]:
        """Case ``index`` preprocessed: (name, image (C, i, j, k), label (i, j, k) in card values, spacing)."""
        from ..images.imageio import read_image

        name, image_files, label_file = self.cases[index]
        images = {self.channels[int(p.name[len(name) + 1: len(name) + 5])]: read_image(p, name=p.name)
                  for p in image_files}
        image, raw_label, spacing = prepare_case(images, self.card, read_image(label_file, name=label_file.name))
        label = np.zeros_like(raw_label)
        for value, card_value in self.label_map.items():
            label[raw_label == value] = card_value
        return name, image, label, spacing

    def load_all(self, indices: Optional[Sequence[int]] = None) -> List[CaseSlices]:
        slice_axis = self.card.network.slice_axis
        out = []
        for index in range(len(self)) if indices is None else indices:
            name, image, label, spacing = self.load(index)
            out.append(case_from_arrays(name, image, label, slice_axis, spacing=spacing))
        return out


# ------------------------------------------------------------------------------------------------ patches


def _centre(case: CaseSlices, slice_index: int, rng: np.random.Generator, want_lesion: bool,
            want_foreground: bool) -> Tuple[int, int]:
    label = case.labels[slice_index]
    for wanted, mask_value in ((want_lesion, METASTASIS), (want_foreground, None)):
        if not wanted:
            continue
        where = np.argwhere(label == mask_value) if mask_value is not None else np.argwhere(label > 0)
        if len(where):
            return tuple(where[rng.integers(len(where))])
    return int(rng.integers(label.shape[0])), int(rng.integers(label.shape[1]))


def sample_patch(case: CaseSlices, size: Sequence[int], rng: np.random.Generator,
                 lesion_probability: float = LESION_CENTRE_PROBABILITY) -> Dict[str, np.ndarray]:
    """A random ``size`` patch of one slice: {"image": [C, h, w] float32, "label": [1, h, w] int64}.

    Lesion slices and lesion-centred patches are oversampled (``lesion_probability``); outside the
    image the patch holds each channel's minimum (the normalised background) and label 0.
    """
    draw = rng.random()
    want_lesion = draw < lesion_probability and case.lesion_slices.size > 0
    want_foreground = draw < lesion_probability + FOREGROUND_CENTRE_PROBABILITY
    if want_lesion:
        slice_index = int(rng.choice(case.lesion_slices))
    elif want_foreground and case.foreground_slices.size:
        slice_index = int(rng.choice(case.foreground_slices))
    else:
        slice_index = int(rng.integers(case.labels.shape[0]))
    image = case.images[slice_index].astype(np.float32)
    label = case.labels[slice_index]
    centre = np.array(_centre(case, slice_index, rng, want_lesion, want_foreground), dtype=float)
    size = np.array(size, dtype=int)
    centre += rng.uniform(-CENTRE_JITTER, CENTRE_JITTER, 2) * size
    start = np.round(centre - size / 2).astype(int)
    out_image = np.empty((image.shape[0],) + tuple(size), dtype=np.float32)
    out_image[:] = image.reshape(image.shape[0], -1).min(axis=1)[:, None, None]
    out_label = np.zeros((1,) + tuple(size), dtype=np.int64)
    src_lo = np.maximum(start, 0)
    src_hi = np.minimum(start + size, label.shape)
    if np.all(src_hi > src_lo):
        dst_lo = src_lo - start
        dst_hi = dst_lo + (src_hi - src_lo)
        out_image[:, dst_lo[0]:dst_hi[0], dst_lo[1]:dst_hi[1]] = image[:, src_lo[0]:src_hi[0], src_lo[1]:src_hi[1]]
        out_label[0, dst_lo[0]:dst_hi[0], dst_lo[1]:dst_hi[1]] = label[src_lo[0]:src_hi[0], src_lo[1]:src_hi[1]]
    return {"image": out_image, "label": out_label}


def drop_channels(image: np.ndarray, rng: np.random.Generator, keep_all_probability: float) -> np.ndarray:
    """Zero a random non-empty proper subset of channels (or none, with ``keep_all_probability``).

    Missing sequences are zero after normalisation at inference, so the model learns every subset: each of
    the ``2**C - 2`` proper subsets is equally likely when channels are dropped.
    """
    channels = image.shape[0]
    if channels < 2 or rng.random() < keep_all_probability:
        return image
    subset = int(rng.integers(1, 2 ** channels - 1))  # bit c set = channel c kept
    kept = np.array([(subset >> c) & 1 for c in range(channels)], dtype=bool)
    out = image.copy()
    out[~kept] = 0.0
    return out
