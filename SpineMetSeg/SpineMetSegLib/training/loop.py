"""The trainer: 2D patches from synthetic and/or folder cases, DiceCE loss, AdamW + cosine, checkpoints, resume.

Usage::

    from SpineMetSegLib.training.loop import TrainConfig, train
    result = train(TrainConfig(output="runs/a", steps=4000, seed=0))        # synthetic cases on the fly
    result.model_file, result.card_file                                      # safetensors + model card JSON

A run writes into ``output``: ``checkpoint.pt`` (model, optimiser, scheduler, step, RNG states; resumed with
``resume=True``), ``train_log.csv`` (one row per ``log_every`` steps and per validation), ``learning_curves.png``,
``best.safetensors`` (best held-out score so far) and, at the end, ``<name>-<version>.safetensors`` with
``<name>-<version>.json``, a model card ``spinemetseg models import`` accepts.

Reproducibility: all randomness of step ``s`` (which cases, slices, patches, augmentation, channel dropout)
comes from a generator seeded with ``(seed, s, rank)``, and synthetic case ``i`` of a run always has the same
phantom seed, so a resumed run continues exactly as an uninterrupted one would (on the same machine and
thread count). Under ``torchrun`` every process trains on its own patches; rank 0 validates and writes.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from ..errors import CancelledError, ModelError
from ..images.atomicfile import atomic_path, write_text_atomic
from ..models.modelcard import ModelCard
from ..progress import ProgressCallback, no_progress
from . import distributed
from .data import (
    LESION_CENTRE_PROBABILITY,
    AnatomySampler,
    CaseSlices,
    FolderDataset,
    SyntheticStream,
    drop_channels,
    heldout_cases,
    sample_patch,
)

CHECKPOINT = "checkpoint.pt"
BEST = "best.safetensors"
LOG = "train_log.csv"
CURVES = "learning_curves.png"
# Patches are cut this much larger than the network patch so rotations and zooms have real image at the borders.
PATCH_MARGIN = 1.25
# The held-out score that picks the exported model: mean Dice of lesion and vertebral body.
SCORE_LABELS = ("metastasis", "vertebral_body")
LOG_COLUMNS = (
    "step", "loss", "learning_rate", "elapsed_s", "patches_per_s", "val_metastasis_dice",
    "val_metastasis_lesion_sensitivity", "val_metastasis_false_positive_per_case", "val_vertebral_body_dice",
    "val_spinal_canal_dice", "val_score",
)


@dataclass
class TrainConfig:
    """Everything that decides a run; stored in the checkpoint and the card."""

    output: str
    steps: int = 4000
    batch_size: int = 16
    patch_size: Sequence[int] = (128, 128)
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    seed: int = 0
    synthetic: bool = True
    folder: Optional[str] = None
    synthetic_fraction: float = 0.5  # share of patches from synthetic cases when a folder is given too
    folder_validation_cases: int = 0  # last N folder cases (sorted by name) held out for validation
    anatomy: Optional[str] = None  # folder of real case folders (spinemetseg dataset import-vb); training split only
    anatomy_fraction: float = 0.5  # share of patches from real anatomy when given
    anatomy_pool_size: int = 12
    anatomy_tuning_cases: int = 0  # tuning-split scans drawn with fixed seeds, checked with the held-out cases
    pool_size: int = 24
    refresh_every: int = 20  # steps between replacing the oldest synthetic case in the pool
    workers: int = 1
    keep_all_channels_probability: float = 0.4
    lesion_patch_fraction: float = LESION_CENTRE_PROBABILITY  # patches centred on a lesion voxel
    validate_every: int = 500
    validation_cases: int = 4
    checkpoint_every: int = 250
    log_every: int = 10
    device: str = "auto"
    threads: int = 0  # CPU threads for torch; 0 leaves torch's default
    fine_tune: Optional[str] = None  # catalog model name (optionally name:version) to start from
    name: str = "spinemetseg-custom"
    version: str = "1.0.0"
    network_channels: Optional[Sequence[int]] = None  # overrides the base card's UNet channels
    network_strides: Optional[Sequence[int]] = None
    command: str = ""  # the command line, recorded in the card
    extra_card: Dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        out = dataclasses.asdict(self)
        out["patch_size"] = list(self.patch_size)
        return out


@dataclass
class TrainResult:
    model_file: Optional[Path]
    card_file: Optional[Path]
    steps: int
    seconds: float
    best_score: Optional[float]
    last_validation: Dict[str, Any]


# ------------------------------------------------------------------------------------------------ set-up


def base_card(config: TrainConfig) -> ModelCard:
    """The card the run starts from: the fine-tuned model's, else the catalog's default, with overrides."""
    from ..models.catalog import card_from_dict
    from ..models.loader import resolve_card

    if config.fine_tune:
        name, _, version = config.fine_tune.partition(":")
        card = resolve_card(name, version or None)
    else:
        card = resolve_card()
    if config.fine_tune and (config.network_channels or config.network_strides):
        raise ModelError("--fine-tune keeps the model's network; leave out the network size options")
    network = card.network
    if config.network_channels:
        network = dataclasses.replace(network, channels=tuple(int(c) for c in config.network_channels))
    if config.network_strides:
        network = dataclasses.replace(network, strides=tuple(int(s) for s in config.network_strides))
    if network.dimensions != 2:
        raise ModelError("this trainer trains 2D slice-wise networks; the base card's network is not 2D")
    # Checked like any card read from a file: channels and strides must still fit together.
    return card_from_dict(card.replace(network=network).to_dict(), where="the training's model card")


def build_model(card: ModelCard, config: TrainConfig) -> torch.nn.Module:
    """The card's network: with the fine-tuned model's weights (``--fine-tune``), else freshly initialised."""
    from ..models.loader import load_network
    from ..models.network import build_network

    if config.fine_tune:
        return load_network(card).train()
    return build_network(card.network, len(card.inputs), card.out_channels)


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """Linear warm-up, then cosine decay to zero at ``config.steps``."""
    warmup = max(1, min(config.warmup_steps, config.steps - 1))
    return torch.optim.lr_scheduler.SequentialLR(
        optimizer,
        [
            torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.05, total_iters=warmup),
            torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, config.steps - warmup)),
        ],
        milestones=[warmup],
    )


def step_rng(seed: int, step: int, rank: int) -> np.random.Generator:
    return np.random.default_rng([seed, step, rank])


# ------------------------------------------------------------------------------------------------ batches


class CaseSource:
    """The cases patches come from at each step: a rolling pool of synthetic cases and/or folder cases."""

    def __init__(self, card: ModelCard, config: TrainConfig, context: distributed.DistributedContext,
                 folder_cases: List[CaseSlices], start_step: int):
        self.config = config
        self.folder_cases = folder_cases
        self.stream = None
        self.pool: List[CaseSlices] = []
        self.pool_first = 0
        self.anatomy_stream = None
        self.anatomy_pool: List[CaseSlices] = []
        self.anatomy_first = 0
        first = self._first_index(start_step)
        if config.synthetic:
            self.stream = SyntheticStream(card, seed=config.seed, start_index=first, workers=config.workers,
                                          rank=context.rank, world=context.world_size)
            self.pool = [self.stream.get(i) for i in range(first, first + config.pool_size)]
            self.pool_first = first
        if config.anatomy:
            from ..data.split import training_folders

            # Real-anatomy case i gets seed stream (seed + 1): never the phantom's seeds of the same run.
            self.anatomy_stream = SyntheticStream(
                card, seed=config.seed + 1, start_index=first, workers=config.workers, rank=context.rank,
                world=context.world_size, anatomy_folders=training_folders(config.anatomy),
            )
            self.anatomy_pool = [self.anatomy_stream.get(i) for i in range(first, first + config.anatomy_pool_size)]
            self.anatomy_first = first

    def _first_index(self, step: int) -> int:
        return step // max(1, self.config.refresh_every)

    def advance_to(self, step: int) -> None:
        """Replace the oldest generated cases so the pools hold the cases scheduled for ``step``."""
        while self.stream is not None and self.pool_first < self._first_index(step):
            self.pool.pop(0)
            self.pool.append(self.stream.get(self.pool_first + self.config.pool_size))
            self.pool_first += 1
        while self.anatomy_stream is not None and self.anatomy_first < self._first_index(step):
            self.anatomy_pool.pop(0)
            self.anatomy_pool.append(self.anatomy_stream.get(self.anatomy_first + self.config.anatomy_pool_size))
            self.anatomy_first += 1

    def choose(self, rng: np.random.Generator) -> CaseSlices:
        use_anatomy = bool(self.anatomy_pool) and (
            not (self.pool or self.folder_cases) or rng.random() < self.config.anatomy_fraction
        )
        if use_anatomy:
            return self.anatomy_pool[int(rng.integers(len(self.anatomy_pool)))]
        use_synthetic = bool(self.pool) and (
            not self.folder_cases or rng.random() < self.config.synthetic_fraction
        )
        cases = self.pool if use_synthetic else self.folder_cases
        return cases[int(rng.integers(len(cases)))]

    def close(self) -> None:
        for stream in (self.stream, self.anatomy_stream):
            if stream is not None:
                stream.close()


def make_batch(source: CaseSource, augment: Any, config: TrainConfig, step: int, rank: int):
    """The (images [B, C, h, w], labels [B, 1, h, w], canal known [B]) batch of ``step`` for process ``rank``."""
    rng = step_rng(config.seed, step, rank)
    augment.set_random_state(seed=int(rng.integers(2**31 - 1)))
    crop = [int(math.ceil(s * PATCH_MARGIN)) for s in config.patch_size]
    images, labels, known = [], [], []
    for _ in range(config.batch_size):
        case = source.choose(rng)
        patch = augment(sample_patch(case, crop, rng, config.lesion_patch_fraction))
        image = drop_channels(np.asarray(patch["image"], dtype=np.float32), rng, config.keep_all_channels_probability)
        images.append(image)
        labels.append(np.asarray(patch["label"]).astype(np.int64))
        known.append(case.canal_known)
    return (torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(labels)),
            torch.tensor(known, dtype=torch.bool))


# ------------------------------------------------------------------------------------------------ validation

ANATOMY_TUNING_SEED_START = 7_000_000  # fixed seeds of the real-anatomy tuning cases (training seeds are smaller)


def anatomy_tuning_cases(card: ModelCard, folders: List[str], count: int) -> List[CaseSlices]:
    """``count`` real-anatomy cases from the tuning split (cycling through its scans), fixed seeds, all slices."""
    sampler = AnatomySampler(folders, card, fracture_probability=0.0)  # the same cases for every stage
    return [sampler.sample(ANATOMY_TUNING_SEED_START + i, case_index=i % len(folders), keep_all=True)
            for i in range(count)]



def evaluate(model: torch.nn.Module, cases: List[CaseSlices], card: ModelCard, device: torch.device
             ) -> Dict[str, Any]:
    """Mean held-out metrics over ``cases`` with all channels: Dice per label, lesion-wise detection.

    Each case goes through ``segment``'s own predictor, argmax and post-processing (``inference.Predictor``,
    ``inference.restore``), on the model grid the case is prepared on, so the numbers that choose a checkpoint are
    the numbers ``segment`` would give on that grid.
    """
    from ..analysis.metrics import compute_metrics
    from ..images.imageio import Geometry
    from ..inference.predictor import Predictor
    from ..inference.restore import model_grid_input, to_input_grid
    from .preprocess import image_from_slices

    slice_axis = card.network.slice_axis
    was_training = model.training
    predictor = Predictor(card, model, device=device, warn=lambda message: None)
    per_label: Dict[str, List[float]] = {label.name: [] for label in card.labels}
    sensitivities, false_positives = [], []
    lesion_value = str(card.label_value("metastasis"))
    try:
        for case in cases:
            volume = np.ascontiguousarray(np.moveaxis(case.images, 0, 1 + slice_axis), dtype=np.float32)
            grid = Geometry(tuple(int(n) for n in volume.shape[1:]), tuple(float(s) for s in case.spacing),
                            (0.0, 0.0, 0.0), (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
            probabilities = predictor.probabilities(volume)
            prediction, _, _ = to_input_grid(probabilities, model_grid_input(grid), card, want=False)
            metrics = compute_metrics(
                image_from_slices(case.labels, case.spacing, slice_axis),
                prediction,
                labels=[label.value for label in card.labels], missing_ok=True,
            )
            for label in card.labels:
                if not case.canal_known and label.name == "spinal canal":
                    continue  # real anatomy: the canal is not labelled, so its Dice would measure nothing
                dice = metrics[str(label.value)]["dice"]
                if dice is not None:
                    per_label[label.name].append(float(dice))
            lesions = metrics[lesion_value]["lesions"]
            if lesions.get("sensitivity") is not None:
                sensitivities.append(float(lesions["sensitivity"]))
            false_positives.append(float(lesions["false_positive"]))
    finally:
        # The predictor runs CUDA models channels-last; training (and DDP's gradient buckets) keep the usual layout.
        model.to(memory_format=torch.contiguous_format)
        model.train(was_training)
    result = {f"{name.replace(' ', '_')}_dice": (float(np.mean(v)) if v else None) for name, v in per_label.items()}
    result["metastasis_lesion_sensitivity"] = float(np.mean(sensitivities)) if sensitivities else None
    result["metastasis_false_positive_per_case"] = float(np.mean(false_positives)) if false_positives else None
    scores = [result.get(f"{name}_dice") for name in SCORE_LABELS]
    present = [s for s in scores if s is not None]
    result["score"] = float(np.mean(present)) if present else None
    return result


# ------------------------------------------------------------------------------------------------ writing


def _atomic_torch_save(obj: Any, path: Path) -> None:
    with atomic_path(path) as temporary:
        torch.save(obj, temporary)


def _save_weights(model: torch.nn.Module, path: Path) -> None:
    from ..models.weights import save_state_dict

    save_state_dict({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, path)


class TrainLog:
    """The CSV log (appended across resumes) and the learning-curve picture."""

    def __init__(self, output: Path, resume: bool):
        self.path = output / LOG
        self.picture = output / CURVES
        if not (resume and self.path.exists()):
            with open(self.path, "w", newline="") as handle:
                csv.writer(handle).writerow(LOG_COLUMNS)

    def write(self, row: Dict[str, Any]) -> None:
        with open(self.path, "a", newline="") as handle:
            csv.writer(handle).writerow(["" if row.get(c) is None else row.get(c) for c in LOG_COLUMNS])

    def truncate_after(self, step: int) -> None:
        """Drop rows of steps after ``step`` (written after the checkpoint a resumed run starts from)."""
        if not self.path.exists():
            return
        with open(self.path, newline="") as handle:
            rows = list(csv.reader(handle))
        kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= step]
        with open(self.path, "w", newline="") as handle:
            csv.writer(handle).writerows(kept)

    def plot(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        with open(self.path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        losses = [(int(r["step"]), float(r["loss"])) for r in rows if r["loss"]]
        figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
        if losses:
            steps, values = zip(*losses)
            left.plot(steps, values, lw=0.8)
        left.set(xlabel="step", ylabel="Dice + cross-entropy loss", title="training loss")
        for column, label in (("val_metastasis_dice", "lesion Dice"), ("val_vertebral_body_dice", "body Dice"),
                              ("val_spinal_canal_dice", "canal Dice"),
                              ("val_metastasis_lesion_sensitivity", "lesion sensitivity")):
            points = [(int(r["step"]), float(r[column])) for r in rows if r.get(column)]
            if points:
                right.plot(*zip(*points), marker="o", label=label)
        right.set(xlabel="step", ylim=(0, 1), title="held-out cases")
        if right.lines:
            right.legend(loc="lower right")
        figure.tight_layout()
        try:
            with atomic_path(self.picture) as temporary:
                figure.savefig(temporary, dpi=90)
        finally:
            plt.close(figure)


def write_card(card: ModelCard, config: TrainConfig, model_path: Path, card_path: Path, *, steps: int, seconds: float,
               validation: Dict[str, Any], best_step: Optional[int]) -> None:
    """Write the model card of the exported weights (file size, sha256, training record, held-out metrics)."""
    import hashlib

    raw = card.to_dict()  # the JSON written for the new weights starts from the base card's
    raw["name"], raw["version"] = config.name, config.version
    raw.pop("supersedes", None)
    digest = hashlib.sha256(model_path.read_bytes()).hexdigest()
    if config.network_channels or config.network_strides:
        raw["speed"] = {"note": "not measured for this network"}
    # An imported model lives in the cache as a local file (``spinemetseg models import FILE --card CARD``).
    raw["file"] = {"url": f"local:{model_path.name}", "size": model_path.stat().st_size, "sha256": digest,
                   "format": "safetensors"}
    sources = []
    if config.synthetic:
        sources.append("synthetic phantom cases generated on the fly (SpineMetSegLib.data.phantom, training seeds < "
                       "1,000,000, every third case with domain-randomised contrast)")
    if config.folder:
        sources.append(f"annotated cases from {Path(config.folder).name} (MSD/nnU-Net folder)")
    if config.anatomy:
        sources.append(
            f"real healthy lumbar MRI (fastcleverseg VB2/VB3, training split only) with simulated metastases and "
            f"look-alikes drawn in on the fly ({config.anatomy_fraction:.0%} of patches; missing sequences "
            "converted from the real one, textbook-like or random contrast; no real metastasis)"
        )
    raw["training_data"] = "; ".join(sources) + (
        f". Random channel dropout (all channels kept with probability {config.keep_all_channels_probability}, "
        "otherwise a random non-empty subset, missing channels zero after normalisation), so any subset of the "
        "inputs works."
    )
    names = ", ".join(label.name for label in card.labels)
    start = f" from {config.fine_tune}" if config.fine_tune else ""
    raw["title"] = f"{config.name} {config.version} (trained with spinemetseg train)"
    raw["description"] = (
        f"Segments {names} slice by slice on MRI; inputs {', '.join(card.inputs)} (any {card.min_inputs} or "
        f"more; missing sequences are zero-filled). Trained with 'spinemetseg train' for {steps} steps{start}."
    )
    raw["limitations"] = (
        "Check its validation numbers on your own scans before use; it knows only its training data. Not a "
        "diagnostic device: every result needs review by a qualified reader."
    )
    # The base card's numbers describe other weights: this card carries only what this run measured.
    raw["metrics"] = {}
    raw["metrics"]["training"] = {
        "command": config.command,
        "fine_tuned_from": f"{card.name} {card.version}" if config.fine_tune else None,
        "steps": steps,
        "best_step": best_step,
        "seconds": round(seconds, 1),
        "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} CPU cores, "
                   f"torch {torch.__version__}, {'CUDA' if torch.cuda.is_available() else 'CPU only'}".strip(),
        "batch_size": config.batch_size,
        "patch_size": list(config.patch_size),
        "seed": config.seed,
        "exported_weights": "best held-out score" if best_step is not None else "last step",
        "heldout_validation_during_training": validation,
    }
    raw.update(config.extra_card)
    from ..models.catalog import card_from_dict

    card_from_dict(raw)  # refuse to write a card the catalog would not accept
    write_text_atomic(card_path, json.dumps(raw, indent=2) + "\n")


# ------------------------------------------------------------------------------------------------ the loop


def _check_resumable(saved: Dict[str, Any], config: TrainConfig) -> None:
    for key in ("seed", "batch_size", "patch_size", "synthetic", "folder", "pool_size", "refresh_every", "anatomy",
                "anatomy_fraction", "anatomy_pool_size",
                "lesion_patch_fraction", "keep_all_channels_probability",
                "network_channels", "network_strides", "fine_tune", "steps"):
        if saved.get(key) != config.to_dict().get(key):
            raise ModelError(
                f"cannot resume: the checkpoint was made with {key}={saved.get(key)!r}, this run has "
                f"{config.to_dict().get(key)!r}; use the same options or a new --output folder"
            )


def train(config: TrainConfig, *, resume: bool = False, progress: ProgressCallback = no_progress) -> TrainResult:
    """Run (or resume) training as ``config`` says; see the module docstring for what is written.

    ``progress`` hears ``prepare``, ``train`` (percent of the steps, with the loss and speed) and ``done``, from
    the main process only; the command line draws them as a bar or protocol lines."""
    from .augment import build_augmentation
    from .losses import MarginalDiceCELoss

    if config.threads:
        torch.set_num_threads(config.threads)
    context = distributed.start(config.device)
    output = Path(config.output)
    if context.is_main:
        output.mkdir(parents=True, exist_ok=True)
    checkpoint_path = output / CHECKPOINT
    if resume and not checkpoint_path.is_file():
        raise ModelError(f"cannot resume: {checkpoint_path} does not exist; start without --resume")
    torch.manual_seed(config.seed)
    card = base_card(config)
    model = build_model(card, config).to(context.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = build_scheduler(optimizer, config)
    use_amp = context.device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda") if use_amp else None
    start_step, best_score, best_step, elapsed_before = 0, None, None, 0.0
    if resume:
        saved = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        _check_resumable(saved["config"], config)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        if scaler is not None and saved.get("scaler"):
            scaler.load_state_dict(saved["scaler"])
        torch.set_rng_state(saved["torch_rng"])
        if use_amp and saved.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(saved["cuda_rng"])
        start_step, best_score = int(saved["step"]), saved.get("best_score")
        best_step, elapsed_before = saved.get("best_step"), float(saved.get("elapsed_s", 0.0))
    network = model
    if context.distributed:
        network = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[context.device.index] if context.device.type == "cuda" else None
        )
    loss_function = MarginalDiceCELoss(unknown_class=int(card.label_value("spinal canal")))
    augment = build_augmentation(config.patch_size)

    folder_train: List[CaseSlices] = []
    validation_cases: List[CaseSlices] = []
    if config.folder:
        dataset = FolderDataset(config.folder, card)
        held = min(config.folder_validation_cases, len(dataset) - 1)
        folder_train = dataset.load_all(range(len(dataset) - held))
        if context.is_main and held:
            validation_cases += dataset.load_all(range(len(dataset) - held, len(dataset)))
    if not config.synthetic and not folder_train and not config.anatomy:
        raise ModelError("no training data: give a folder of cases, real anatomy, synthetic data, or a mix")
    if context.is_main and config.anatomy and config.anatomy_tuning_cases:
        from ..data.split import tuning_folders

        progress("prepare", 0, f"drawing {config.anatomy_tuning_cases} real-anatomy tuning cases")
        validation_cases += anatomy_tuning_cases(card, tuning_folders(config.anatomy), config.anatomy_tuning_cases)
    if context.is_main and config.synthetic and config.validation_cases:
        progress("prepare", 0, f"generating {config.validation_cases} held-out cases")
        validation_cases += heldout_cases(card, config.validation_cases)

    log = TrainLog(output, resume) if context.is_main else None
    if log is not None and resume:
        log.truncate_after(start_step)
    source = CaseSource(card, config, context, folder_train, start_step)
    last_validation: Dict[str, Any] = {}
    best_validation: Dict[str, Any] = dict(saved.get("best_validation") or {}) if resume else {}
    started = time.monotonic()
    running_loss, window_start, window_steps = 0.0, time.monotonic(), 0

    def elapsed() -> float:
        return elapsed_before + time.monotonic() - started

    def save_checkpoint(step: int) -> None:
        if not context.is_main:
            return
        _atomic_torch_save({
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None, "step": step, "best_score": best_score,
            "best_step": best_step, "best_validation": best_validation, "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state() if use_amp else None, "elapsed_s": elapsed(),
            "config": config.to_dict(),
        }, checkpoint_path)

    step = start_step
    try:
        model.train()
        while step < config.steps:
            source.advance_to(step)
            images, labels, known = make_batch(source, augment, config, step, context.rank)
            images, labels = images.to(context.device), labels.to(context.device)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(context.device.type, enabled=use_amp):
                loss = loss_function(network(images), labels, known)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            scheduler.step()
            step += 1
            running_loss += float(loss.detach())
            window_steps += 1
            if not context.is_main:
                continue
            row: Dict[str, Any] = {}
            if step % config.log_every == 0 or step == config.steps:
                seconds = max(1e-9, time.monotonic() - window_start)
                rate = window_steps * config.batch_size * context.world_size / seconds
                row.update(step=step, loss=round(running_loss / window_steps, 5),
                           learning_rate=f"{scheduler.get_last_lr()[0]:.3g}", elapsed_s=round(elapsed(), 1),
                           patches_per_s=round(rate, 1))
                running_loss, window_start, window_steps = 0.0, time.monotonic(), 0
            if validation_cases and (step % config.validate_every == 0 or step == config.steps):
                last_validation = evaluate(model, validation_cases, card, context.device)
                row.update(step=step, **{f"val_{k}": (None if v is None else round(v, 4))
                                         for k, v in last_validation.items()})
                score = last_validation.get("score")
                if score is not None and (best_score is None or score > best_score):
                    best_score, best_step, best_validation = score, step, dict(last_validation)
                    _save_weights(model, output / BEST)
            if row:
                log.write(row)
                if "val_score" in row:
                    log.plot()
            if row.get("loss") is not None:
                progress("train", 100.0 * step / config.steps,
                         f"step {step}/{config.steps} loss {row['loss']:.4f}, {row['patches_per_s']:.0f} patches/s")
            if step % config.checkpoint_every == 0 or step == config.steps:
                save_checkpoint(step)
    except (KeyboardInterrupt, CancelledError):
        # Keep what was learnt: the checkpoint of the last finished step lets --resume continue.
        save_checkpoint(step)
        raise
    finally:
        source.close()

    model_path = card_path = None
    if context.is_main:
        log.plot()
        stem = f"{config.name}-{config.version}"
        model_path, card_path = output / f"{stem}.safetensors", output / f"{stem}.json"
        if best_step is not None and (output / BEST).is_file():
            from ..models.weights import load_state_dict

            model.load_state_dict(load_state_dict(output / BEST))
        _save_weights(model, model_path)
        write_card(card, config, model_path, card_path, steps=step, seconds=elapsed(),
                   validation=best_validation if best_step is not None else last_validation, best_step=best_step)
        progress("done", 100, f"model written to {model_path}")
    distributed.barrier(context)
    distributed.stop(context)
    return TrainResult(model_path, card_path, step, elapsed(), best_score, last_validation)
