"""Augmentation of 2D training patches with MONAI transforms (spatial, intensity, bias field, noise, resolution).

Usage::

    from SpineMetSegLib.training.augment import build_augmentation
    augment = build_augmentation((128, 128))
    augment.set_random_state(seed=1234)                  # per step: reproducible and resumable
    sample = augment({"image": image_chw, "label": label_1hw})

Inputs are already normalised (z-scores, see ``preprocess``). Transforms that assume positive intensities
(the multiplicative bias field) run on the channel shifted to start at zero and are shifted back, so the
background keeps its value.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from monai.transforms import (
    Compose,
    MapTransform,
    RandAdjustContrastd,
    RandAffined,
    RandBiasField,
    RandGaussianNoised,
    RandGaussianSmoothd,
    Randomizable,
    RandScaleIntensityd,
    RandShiftIntensityd,
    RandSimulateLowResolutiond,
)

ROTATION_RAD = 0.26  # about 15 degrees: sagittal spines are tilted a little from scan to scan
SCALE_RANGE = 0.2  # vertebrae of different size and in-plane pixel spacing off 1 mm
SHEAR_RANGE = 0.05
AFFINE_PROBABILITY = 0.6
BIAS_FIELD_PROBABILITY = 0.3
BIAS_FIELD_COEFFICIENTS = (0.0, 0.4)
NOISE_PROBABILITY = 0.3
NOISE_STD = 0.15
SMOOTH_PROBABILITY = 0.15
LOW_RESOLUTION_PROBABILITY = 0.15
LOW_RESOLUTION_ZOOM = (0.5, 1.0)
GAMMA_PROBABILITY = 0.3
GAMMA_RANGE = (0.7, 1.5)
SCALE_INTENSITY_PROBABILITY = 0.3
SCALE_INTENSITY_FACTOR = 0.15
SHIFT_INTENSITY_PROBABILITY = 0.3
SHIFT_INTENSITY_OFFSET = 0.2


class RandShiftedBiasFieldd(Randomizable, MapTransform):
    """MONAI's multiplicative bias field applied to ``image - min`` per channel, then shifted back."""

    def __init__(self, keys: Sequence[str], prob: float, coeff_range: Sequence[float]):
        MapTransform.__init__(self, keys)
        self.prob = prob
        self.field = RandBiasField(coeff_range=tuple(coeff_range), prob=1.0)

    def set_random_state(self, seed=None, state=None):
        super().set_random_state(seed, state)
        self.field.set_random_state(seed=int(self.R.randint(2**31 - 1)))
        return self

    def randomize(self, data=None) -> None:
        self._do = self.R.rand() < self.prob

    def __call__(self, data):
        self.randomize()
        if not self._do:
            return data
        out = dict(data)
        for key in self.keys:
            image = np.asarray(out[key], dtype=np.float32)
            low = image.reshape(image.shape[0], -1).min(axis=1)[:, None, None]
            out[key] = np.asarray(self.field(image - low), dtype=np.float32) + low
        return out


def build_augmentation(patch_size: Sequence[int]) -> Compose:
    """The training augmentation for 2D patches of ``patch_size`` (output keeps the size)."""
    keys = ("image", "label")
    return Compose(
        [
            RandAffined(
                keys=keys, prob=AFFINE_PROBABILITY, rotate_range=(ROTATION_RAD,), scale_range=(SCALE_RANGE,) * 2,
                shear_range=(SHEAR_RANGE,) * 2, mode=("bilinear", "nearest"), padding_mode="border",
                spatial_size=tuple(patch_size),
            ),
            RandSimulateLowResolutiond(
                keys="image", prob=LOW_RESOLUTION_PROBABILITY, zoom_range=LOW_RESOLUTION_ZOOM,
                downsample_mode="nearest", upsample_mode="bilinear",
            ),
            RandShiftedBiasFieldd(keys="image", prob=BIAS_FIELD_PROBABILITY, coeff_range=BIAS_FIELD_COEFFICIENTS),
            RandAdjustContrastd(keys="image", prob=GAMMA_PROBABILITY, gamma=GAMMA_RANGE),
            RandScaleIntensityd(keys="image", prob=SCALE_INTENSITY_PROBABILITY, factors=SCALE_INTENSITY_FACTOR),
            RandShiftIntensityd(keys="image", prob=SHIFT_INTENSITY_PROBABILITY, offsets=SHIFT_INTENSITY_OFFSET),
            RandGaussianSmoothd(keys="image", prob=SMOOTH_PROBABILITY, sigma_x=(0.3, 1.0), sigma_y=(0.3, 1.0)),
            RandGaussianNoised(keys="image", prob=NOISE_PROBABILITY, std=NOISE_STD),
        ],
        log_stats=False,
    )
