"""A real case folder, read and checked: one or more MR images on one grid plus its vertebral-body mask.

Usage::

    case = load_real_case("cases/vb2_05")
    case.sequences            # {"t2": float32 array (k, j, i)}; any of t1/t2/stir or another contrast (dixon, ...)
    case.bodies               # uint8 (k, j, i): 0 background, 1..B one number per vertebral body
    case.posterior_axis       # numpy axis (and sign) pointing posterior; superior_axis likewise

A folder needs ``vertebral_bodies.nii.gz`` and at least one other ``*.nii.gz`` image on the same grid; label maps
written by the phantom (``lesions``, ``anatomy``) are not images. A 0/1 mask is numbered by connected pieces.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Tuple, Union

import numpy as np
import SimpleITK as sitk

from ..errors import SpineMetSegError
from ..images.imageio import Geometry

BODY_FILE = "vertebral_bodies.nii.gz"
NOT_IMAGES = {BODY_FILE, "lesions.nii.gz", "anatomy.nii.gz"}
KNOWN_SEQUENCES = ("t1", "t2", "stir")
GRID_TOLERANCE = 1e-3  # mm and direction cosines


@dataclass
class RealCase:
    name: str
    sequences: Dict[str, np.ndarray]  # float32, numpy (k, j, i) order
    bodies: np.ndarray  # uint8, numpy order
    reference: sitk.Image  # geometry of every array
    spacing: Tuple[float, float, float]  # numpy order, mm
    posterior_axis: Tuple[int, int]  # (numpy axis, +1 or -1): index increasing towards posterior
    superior_axis: Tuple[int, int]

    @property
    def body_count(self) -> int:
        return int(self.bodies.max())


def _axis_towards(image: sitk.Image, lps_axis: int, sign: int) -> Tuple[int, int]:
    """The numpy axis whose index grows most along LPS axis ``lps_axis`` (x=0, y=1, z=2) times ``sign``."""
    direction = np.array(image.GetDirection()).reshape(3, 3)  # columns: ITK axes i, j, k
    column = int(np.argmax(np.abs(direction[lps_axis])))
    along = int(np.sign(direction[lps_axis, column])) * sign
    return 2 - column, along  # ITK axis i is numpy axis 2


def _read(path: Path) -> sitk.Image:
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as error:
        raise SpineMetSegError(f"Cannot read {path}: {str(error).strip().splitlines()[-1]}") from None


def load_real_case(folder: Union[str, os.PathLike]) -> RealCase:
    """Read and check the case folder (see module docstring); a clear error for anything a drawer cannot use."""
    from .vb_import import number_bodies

    folder = Path(folder)
    if not folder.is_dir():
        raise SpineMetSegError(f"{folder} is not a case folder (it should hold vertebral_bodies.nii.gz and an image).")
    if not (folder / BODY_FILE).is_file():
        raise SpineMetSegError(f"{folder} has no {BODY_FILE}: lesions are drawn into vertebral bodies, so a case "
                               "needs its body mask (import one with 'spinemetseg dataset import-vb').")
    image_files = sorted(p for p in folder.glob("*.nii.gz") if p.name not in NOT_IMAGES)
    if not image_files:
        raise SpineMetSegError(f"{folder} holds no image (t1.nii.gz, t2.nii.gz, stir.nii.gz or another contrast).")
    mask_image = _read(folder / BODY_FILE)
    if mask_image.GetDimension() != 3:
        raise SpineMetSegError(f"{folder / BODY_FILE} is not a 3D image.")
    sequences: Dict[str, np.ndarray] = {}
    for path in image_files:
        image = _read(path)
        if image.GetNumberOfComponentsPerPixel() != 1 or image.GetDimension() != 3:
            raise SpineMetSegError(f"{path} is not a 3D single-channel image.")
        if not Geometry.of(image).matches(Geometry.of(mask_image), GRID_TOLERANCE):
            raise SpineMetSegError(
                f"{path.name} and {BODY_FILE} in {folder} are on different grids (size {image.GetSize()} vs "
                f"{mask_image.GetSize()}, spacing, origin or direction differ); resample the mask onto the image."
            )
        array = sitk.GetArrayFromImage(image).astype(np.float32)
        if not np.isfinite(array).all():
            raise SpineMetSegError(f"{path} holds NaN or infinite voxels.")
        sequences[path.name[: -len(".nii.gz")].lower()] = array
    mask = sitk.GetArrayFromImage(mask_image)
    if not (mask > 0).any():
        raise SpineMetSegError(f"{folder / BODY_FILE} is empty: no vertebral body to draw a lesion into.")
    superior_axis, superior_sign = _axis_towards(mask_image, 2, +1)
    bodies = mask.astype(np.uint8) if mask.max() > 1 else number_bodies(mask, superior_axis, superior_sign > 0)
    return RealCase(
        name=folder.name,
        sequences=sequences,
        bodies=bodies,
        reference=mask_image,
        spacing=tuple(float(s) for s in reversed(mask_image.GetSpacing())),
        posterior_axis=_axis_towards(mask_image, 1, +1),
        superior_axis=(superior_axis, superior_sign),
    )


def crop_to_bodies(case: RealCase, margin_mm: float) -> RealCase:
    """``case`` cut to the vertebral bodies' bounding box plus ``margin_mm`` on every side (faster to draw into)."""
    from scipy import ndimage

    box = ndimage.find_objects((case.bodies > 0).astype(np.uint8))[0]
    margin = [int(np.ceil(margin_mm / d)) for d in case.spacing]
    box = tuple(slice(max(0, s.start - m), min(n, s.stop + m)) for s, m, n in zip(box, margin, case.bodies.shape))
    index = [int(box[2 - a].start) for a in range(3)]  # ITK order
    size = [int(box[2 - a].stop - box[2 - a].start) for a in range(3)]
    reference = sitk.RegionOfInterest(case.reference, size, index)
    return RealCase(
        name=case.name,
        sequences={name: np.ascontiguousarray(array[box]) for name, array in case.sequences.items()},
        bodies=np.ascontiguousarray(case.bodies[box]),
        reference=reference,
        spacing=case.spacing,
        posterior_axis=case.posterior_axis,
        superior_axis=case.superior_axis,
    )
