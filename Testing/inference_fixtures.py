"""Small model cards, networks and MRI-like volumes for the inference, segment and demo tests.

Usage::

    from inference_fixtures import make_card, seeded_network, mri_like, ThresholdNet
    card = make_card(dimensions=2, patch_size=[32, 32])
    image = mri_like((40, 48, 10), spacing=(0.9, 0.9, 3.0), direction=SAGITTAL)

``ThresholdNet`` is a real (fixed-weight) network whose metastasis logit rises with the first channel's
normalised intensity: with it, where the segmentation lands tells whether the pipeline put the voxels back
where they came from.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk
import torch

from SpineMetSegLib.models.catalog import card_from_dict
from SpineMetSegLib.models.modelcard import ModelCard
from SpineMetSegLib.models.network import build_network

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
# Sagittal acquisition stored as clinical scanners do: i runs posterior, j inferior, k (the 3 mm slices) left.
SAGITTAL = (0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, -1.0, 0.0)
# Axial, RAS-like index axes (i right, j anterior, k superior).
AXIAL = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)

BODY_INTENSITY = 300.0
LESION_INTENSITY = 1000.0
NOISE = 20.0


def oblique(degrees_z: float = 20.0, degrees_x: float = 12.0) -> Tuple[float, ...]:
    """An oblique direction: identity rotated about z, then about x."""
    a, b = math.radians(degrees_z), math.radians(degrees_x)
    rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    return tuple(float(v) for v in (rx @ rz).ravel())


def make_card(**options) -> ModelCard:
    """The typed, validated card of ``make_card_json(**options)``."""
    return card_from_dict(make_card_json(**options))


def make_card_json(
    *,
    dimensions: int = 2,
    inputs: Sequence[str] = ("t1", "t2", "stir"),
    min_inputs: int = 1,
    patch_size: Optional[Sequence[int]] = None,
    spacing_mm: Sequence[Optional[float]] = (None, 1.0, 1.0),
    channels: Sequence[int] = (8, 16),
    strides: Sequence[int] = (2,),
    min_lesion_volume_ml: float = 0.0,
    lesions_must_touch_bone: bool = False,
) -> dict:
    """A complete, schema-valid model card for a small network (no file behind it)."""
    code = {"scheme": "SCT", "code": "0", "meaning": "test"}
    return {
        "name": "test-model",
        "version": "0.0.1",
        "title": "Test model",
        "description": "A small network for tests.",
        "intended_use": "Tests only.",
        "limitations": "Untrained.",
        "training_data": "None.",
        "license": "Apache-2.0",
        "inputs": list(inputs),
        "min_inputs": min_inputs,
        "orientation": "LPS",
        "spacing_mm": list(spacing_mm),
        "normalization": {"method": "zscore_percentile", "lower_percentile": 0.5, "upper_percentile": 99.5},
        "network": {
            "dimensions": dimensions,
            "architecture": "UNet",
            "channels": list(channels),
            "strides": list(strides),
            "num_res_units": 1,
            "norm": "instance",
            **({"slice_axis": 0} if dimensions == 2 else {}),
        },
        "patch_size": list(patch_size or ([32, 32] if dimensions == 2 else [16, 16, 16])),
        "labels": [
            {"name": name, "value": value, "color": [0.5, 0.5, 0.5], "terminology": {"category": code, "type": code}}
            for name, value in (("metastasis", 1), ("vertebral body", 2), ("spinal canal", 3))
        ],
        "postprocessing": {
            "min_lesion_volume_ml": min_lesion_volume_ml,
            "lesions_must_touch_bone": lesions_must_touch_bone,
        },
        "file": {"url": "local:test.safetensors", "size": 1, "sha256": "0" * 64, "format": "safetensors"},
        "metrics": {},
        "speed": {},
    }


def seeded_network(card: ModelCard, seed: int = 0) -> torch.nn.Module:
    """The card's network with weights from ``torch.manual_seed(seed)``, in eval mode."""
    torch.manual_seed(seed)
    return build_network(card.network, len(card.inputs), card.out_channels).eval()


class ThresholdNet(torch.nn.Module):
    """Metastasis where channel ``channel``'s z-score exceeds ``threshold``; background elsewhere."""

    def __init__(self, in_channels: int = 3, out_channels: int = 4, threshold: float = 2.0, dimensions: int = 2,
                 channel: int = 0):
        super().__init__()
        convolution = torch.nn.Conv2d if dimensions == 2 else torch.nn.Conv3d
        self.conv = convolution(in_channels, out_channels, 1)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.bias.fill_(-10.0)
            self.conv.bias[0] = 0.0
            self.conv.weight[1, channel] = 4.0
            self.conv.bias[1] = -4.0 * threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def mri_like(
    size: Sequence[int] = (40, 48, 10),
    *,
    spacing: Sequence[float] = (0.9, 0.9, 3.0),
    direction: Sequence[float] = IDENTITY,
    origin: Sequence[float] = (0.0, 0.0, 0.0),
    seed: int = 0,
    lesion: Optional[Tuple[slice, slice, slice]] = None,
) -> sitk.Image:
    """A body (elliptic cylinder along k, noisy tissue) in a dark background, an optional bright block.

    ``lesion`` is a box in (i, j, k) index order.
    """
    rng = np.random.default_rng(seed)
    ni, nj, nk = size
    i, j = np.meshgrid(np.arange(ni), np.arange(nj), indexing="ij")
    inside = ((i - ni / 2) / (0.4 * ni)) ** 2 + ((j - nj / 2) / (0.4 * nj)) ** 2 < 1
    array = rng.random((ni, nj, nk)) * 5.0
    body = BODY_INTENSITY + NOISE * rng.standard_normal((ni, nj, nk))
    array[inside] = body[inside]
    if lesion is not None:
        array[lesion] = LESION_INTENSITY
    image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)).astype(np.float32))
    image.SetSpacing([float(s) for s in spacing])
    image.SetDirection([float(d) for d in direction])
    image.SetOrigin([float(o) for o in origin])
    return image


def lesion_mask(image: sitk.Image, box: Tuple[slice, slice, slice]) -> np.ndarray:
    """The (k, j, i) numpy mask of an (i, j, k) box on ``image``'s grid."""
    mask = np.zeros(image.GetSize()[::-1], dtype=bool)
    mask[box[2], box[1], box[0]] = True
    return mask


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def geometry(image: sitk.Image) -> tuple:
    return image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection()
