"""A hand-built spine for lesion tests: three vertebral bodies, a canal and three box lesions on an anisotropic
grid, in the model's labels and in the phantom's convention (used by analysis/ and cli/ tests)."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from SpineMetSegLib.labels import Anatomy, ModelLabel

# Array axes (k, j, i) = (z: superior, y: posterior, x: left) with the identity direction (LPS).
SPINE_SPACING_IJK = (0.9, 0.5, 1.25)
SPINE_SHAPE = (80, 120, 40)
CANAL_Y = slice(87, 107)  # canal voxel centres from 43.5 mm
CANAL_X = slice(14, 26)
BODY_Y = slice(20, 80)  # body voxels up to 39.75 mm (outer face): 3.5 mm of tissue in front of the canal
BODY_X = slice(8, 32)
BODY_Z = [slice(5 + 24 * k, 25 + 24 * k) for k in range(3)]  # inferior to superior
# Lesion A: top vertebra, against the posterior wall. B: bottom vertebra, anterior. C: middle, into the canal.
LESION_A = (slice(58, 66), slice(70, 80), slice(15, 22))
LESION_B = (slice(10, 18), slice(22, 30), slice(12, 20))
LESION_C = (slice(33, 41), slice(74, 92), slice(16, 24))


def image_of(array: np.ndarray, spacing=(1.0, 1.0, 1.0), direction=None, origin=(0.0, 0.0, 0.0)) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    if direction is not None:
        image.SetDirection(direction)
    return image


def spine_anatomy_model() -> np.ndarray:
    """Model-output labels: 2 vertebral body, 3 spinal canal; the lesions replace them with 1."""
    array = np.zeros(SPINE_SHAPE, dtype=np.uint8)
    for z in BODY_Z:
        array[z, BODY_Y, BODY_X] = ModelLabel.VERTEBRAL_BODY
    array[:, CANAL_Y, CANAL_X] = ModelLabel.SPINAL_CANAL
    for box in (LESION_A, LESION_B, LESION_C):
        array[box] = ModelLabel.METASTASIS
    return array


def spine_phantom() -> tuple:
    """The phantom's convention: a lesion map (1..K) and a tissue map in which lesions keep the tissue below."""
    anatomy = np.full(SPINE_SHAPE, Anatomy.SOFT_TISSUE, dtype=np.uint8)
    anatomy[:, BODY_Y, BODY_X] = Anatomy.DISC
    for z in BODY_Z:
        anatomy[z, BODY_Y, BODY_X] = Anatomy.MARROW
    anatomy[:, CANAL_Y, CANAL_X] = Anatomy.CSF
    lesion_map = np.zeros(SPINE_SHAPE, dtype=np.uint8)
    for box in (LESION_A, LESION_B, LESION_C):
        lesion_map[box] = 1
    return lesion_map, anatomy
