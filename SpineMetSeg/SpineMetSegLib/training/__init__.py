"""Training and fine-tuning of SpineMetSeg models (``spinemetseg train``).

Usage::

    from SpineMetSegLib.training import TrainConfig, train
    result = train(TrainConfig(output="runs/a", steps=4000, folder="/data/Dataset101_Spine"))

Modules: ``preprocess`` (the card's preprocessing, shared with inference), ``data`` (synthetic and folder
cases, patches, channel dropout), ``augment`` (MONAI augmentation), ``loop`` (the trainer), ``distributed``
(torchrun / DistributedDataParallel).
"""

from __future__ import annotations

from .loop import TrainConfig, TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "train"]
