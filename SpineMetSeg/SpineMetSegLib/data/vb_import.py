"""Import the vertebral-body sets VB2 and VB3 of the public fastcleverseg repository as case folders.

Usage::

    cases = import_vb("fastcleverseg", "cases/")        # a checkout, or its ImageDatasets/VBs folder
    cases[0].name, cases[0].folder                        # "vb2_02", Path("cases/vb2_02")

Each ``NN.mat`` (MATLAB v5) holds ``I`` (uint8 image) and ``GT`` (uint8, nonzero = vertebral body), 1 mm
isotropic, array axes (superior->inferior, anterior->posterior, left-right). One case folder per distinct scan:

- the image: ``t2.nii.gz`` for VB2 (sagittal T2 TSE), ``dixon.nii.gz`` for VB3 (one image of a chemical-shift
  water-fat set, which one is not documented);
- ``vertebral_bodies.nii.gz``: each body its own number, 1 the most superior;
- ``case.json``: source file and its sha256, set, sequence, publication, licence.

Geometry: ``I[s, a, l]`` becomes numpy axes (l, s, a) of a SimpleITK image with 1 mm spacing, direction columns
i -> +P, j -> -S, k -> +L (LPS) and the origin at minus half the extent, a sagittal stack like a clinical series
(as the copies in ../shared/data/spine-vb). The left-right sense is not documented by the source.

Byte-identical files (VB3 18=19, 32=33, 51=53, 52=54) are imported once. Where ``GT`` has one more left-right
slice than ``I`` (VB2 02, 04, 08, 10) the mask is aligned at the offset (0 or 1) where its border meets the
strongest image edges. VB1 is refused: it is reserved as an external test set.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import SimpleITK as sitk

from ..errors import SpineMetSegError
from ..progress import ProgressCallback, no_progress

RESERVED_SET = "VB1"
SETS: Dict[str, Dict[str, str]] = {
    "VB2": {
        "sequence": "t2",
        "description": "sagittal T2-weighted turbo spin echo, lower spine (T11-S1), healthy, 1.5 T Siemens",
        "publication": "Zukic D, Vlasak A, Egger J, Horinek D, Nimsky C, Kolb A. Robust detection and segmentation "
                       "for diagnosis of vertebral diseases using routine MR images. Computer Graphics Forum 33(6) "
                       "(2014) 190-204",
    },
    "VB3": {
        "sequence": "dixon",
        "description": "lumbar chemical-shift-encoded water-fat MRI (MyoSegmenTUM spine), healthy volunteers; which "
                       "image of the water-fat set is not documented",
        "publication": "Burian E, Rohrmeier A, Schlaeger S, et al. Lumbar muscle and vertebral bodies segmentation "
                       "of chemical shift encoding-based water-fat MRI: the reference database MyoSegmenTUM spine. "
                       "BMC Musculoskelet Disord 20:152 (2019)",
    },
}
LICENCE = "GPL-3.0 (repository JonathanRamos/fastcleverseg); cite the original publication"
REPOSITORY = "https://github.com/JonathanRamos/fastcleverseg"
MIN_BODY_VOXELS = 200  # mask pieces smaller than this (0.2 mL at 1 mm) are annotation specks, not bodies


@dataclass
class ImportedCase:
    name: str
    folder: Path
    source: Path
    bodies: int
    mask_offset: Optional[int]  # left-right offset of a one-slice-longer mask; None when the sizes agree


def _matlab_folder(source: Path, vb_set: str) -> Path:
    return source / vb_set / "Isotropic" / "Matlab"


def find_sets(source: Union[str, os.PathLike]) -> Tuple[Path, Dict[str, Path]]:
    """The VBs folder under ``source`` and its VB2/VB3 Matlab folders; refuses VB1 itself."""
    source = Path(source)
    if not source.is_dir():
        raise SpineMetSegError(f"{source} is not a folder: give a checkout of fastcleverseg or its "
                               "ImageDatasets/VBs folder.")
    if RESERVED_SET in source.resolve().parts:
        raise SpineMetSegError(
            f"{source} is inside {RESERVED_SET}, which is reserved as an external test set: it is never imported "
            "for training, tuning or model selection."
        )
    for candidate in (source, source / "VBs", source / "ImageDatasets" / "VBs"):
        found = {s: _matlab_folder(candidate, s) for s in SETS if _matlab_folder(candidate, s).is_dir()}
        if found:
            return candidate, found
    raise SpineMetSegError(
        f"{source} holds no VB2/Isotropic/Matlab or VB3/Isotropic/Matlab folder: give a checkout of "
        "fastcleverseg or its ImageDatasets/VBs folder."
    )


def read_mat(path: Path) -> Tuple[np.ndarray, np.ndarray]:
    """``(I, GT)`` of one .mat file, checked (3D, uint8-valued, same in-plane size)."""
    from scipy.io import loadmat

    try:
        content = loadmat(str(path))
    except Exception as error:  # noqa: BLE001 - scipy raises several types for a bad file
        raise SpineMetSegError(f"{path} is not a readable MATLAB file: {error}") from None
    if "I" not in content or "GT" not in content:
        raise SpineMetSegError(f"{path} has no 'I' and 'GT' arrays (the fastcleverseg layout).")
    image, mask = np.asarray(content["I"]), np.asarray(content["GT"])
    if image.ndim != 3 or mask.ndim != 3 or image.shape[:2] != mask.shape[:2]:
        raise SpineMetSegError(f"{path}: image {image.shape} and mask {mask.shape} are not 3D on the same plane.")
    if abs(image.shape[2] - mask.shape[2]) > 1 or mask.shape[2] < image.shape[2]:
        raise SpineMetSegError(f"{path}: the mask has {mask.shape[2]} left-right slices, the image "
                               f"{image.shape[2]}; only a mask one slice longer can be aligned.")
    return image, mask


def _edge_strength(image: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    # Unsmoothed: the masks were drawn on these voxels, and a blur washes out the one-voxel difference.
    values = image.astype(np.float32)
    return np.sqrt(sum(ndimage.sobel(values, axis=a) ** 2 for a in range(3)))


def align_mask(image: np.ndarray, mask: np.ndarray) -> Tuple[np.ndarray, Optional[int]]:
    """Cut a mask one left-right slice longer than the image to the offset whose border meets stronger edges."""
    if mask.shape == image.shape:
        return mask, None
    from scipy import ndimage

    edges = _edge_strength(image)
    scores = []
    for offset in range(mask.shape[2] - image.shape[2] + 1):
        cut = mask[:, :, offset: offset + image.shape[2]] > 0
        border = cut & ~ndimage.binary_erosion(cut)
        scores.append(float(edges[border].mean()) if border.any() else -1.0)
    best = int(np.argmax(scores))
    return mask[:, :, best: best + image.shape[2]], best


def number_bodies(mask: np.ndarray, superior_axis: int = 0, index_grows_superior: bool = False) -> np.ndarray:
    """Each connected piece of ``mask`` its own number, 1 the most superior (by centre on ``superior_axis``)."""
    from scipy import ndimage

    pieces, count = ndimage.label(mask > 0)
    if count == 0:
        return pieces.astype(np.uint8)
    sizes = ndimage.sum_labels(np.ones_like(pieces), pieces, index=np.arange(1, count + 1))
    centres = ndimage.center_of_mass(np.ones_like(pieces), pieces, index=np.arange(1, count + 1))
    sign = -1.0 if index_grows_superior else 1.0
    kept = [(sign * centres[i][superior_axis], i + 1) for i in range(count) if sizes[i] >= MIN_BODY_VOXELS]
    lut = np.zeros(count + 1, dtype=np.uint8)
    for number, (_, piece) in enumerate(sorted(kept), start=1):
        lut[piece] = number
    return lut[pieces]


def to_image(array_sal: np.ndarray) -> sitk.Image:
    """An ``I[s, a, l]`` array as the sagittal-stack image described in the module docstring."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(array_sal.transpose(2, 0, 1)))
    size = np.array(image.GetSize(), dtype=float)  # (a, s, l)
    image.SetSpacing((1.0, 1.0, 1.0))
    # Columns: i -> +P, j -> -S, k -> +L in LPS; row-major 3x3 as SimpleITK wants it.
    image.SetDirection((0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, -1.0, 0.0))
    image.SetOrigin((-size[2] / 2, -size[0] / 2, size[1] / 2))
    return image


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def import_vb(source: Union[str, os.PathLike], output: Union[str, os.PathLike],
              progress: ProgressCallback = no_progress) -> List[ImportedCase]:
    """Import every distinct VB2 and VB3 scan under ``source`` into ``output``/<set>_<NN>/ (see module docstring).

    A case folder is written into a hidden staging folder and moved into place whole; an existing case folder of
    the same name is replaced only once its new copy is complete. ``progress("import", percent, name)`` hears of
    each file after it is done.
    """
    _, sets = find_sets(source)
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise SpineMetSegError(f"The output {output} is a file; give a folder to write the cases into.")
    files = [(vb_set, path) for vb_set, folder in sorted(sets.items()) for path in sorted(folder.glob("*.mat"))]
    if not files:
        raise SpineMetSegError(f"No .mat files found under {', '.join(str(f) for f in sets.values())}.")
    output.mkdir(parents=True, exist_ok=True)
    seen: Dict[str, str] = {}
    imported: List[ImportedCase] = []
    for number, (vb_set, path) in enumerate(files, start=1):
        digest = _sha256(path)
        name = f"{vb_set.lower()}_{path.stem}"
        if digest in seen:
            progress("import", 100.0 * number / len(files), f"{name} (a duplicate of {seen[digest]})")
            continue  # byte-identical to an earlier file: the same scan
        seen[digest] = name
        imported.append(_import_one(vb_set, path, digest, name, output))
        progress("import", 100.0 * number / len(files), name)
    return imported


def _import_one(vb_set: str, path: Path, digest: str, name: str, output: Path) -> ImportedCase:
    image, mask = read_mat(path)
    mask, offset = align_mask(image, mask)
    bodies = number_bodies(mask)
    count = int(bodies.max())
    if count == 0:
        raise SpineMetSegError(f"{path}: the vertebral-body mask is empty.")
    spec = SETS[vb_set]
    sequence = spec["sequence"]
    info = {
        "name": name,
        "set": vb_set,
        "source": {"repository": REPOSITORY, "file": f"ImageDatasets/VBs/{vb_set}/Isotropic/Matlab/{path.name}",
                   "sha256": digest},
        "sequence": sequence,
        "description": spec["description"],
        "publication": spec["publication"],
        "license": LICENCE,
        "vertebral_bodies": count,
        "mask_left_right_offset": offset,
        "geometry": "1 mm isotropic sagittal stack, i->P, j->I, k->L (LPS); left-right sense not documented",
        "spinal_canal_labelled": False,
    }
    staging = Path(tempfile.mkdtemp(prefix=f".partial-{name}-", dir=output))
    try:
        sitk.WriteImage(to_image(image), str(staging / f"{sequence}.nii.gz"), True)
        sitk.WriteImage(to_image(bodies), str(staging / "vertebral_bodies.nii.gz"), True)
        (staging / "case.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        target = output / name
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".old-{name}-", dir=output))
            os.replace(target, old / name)
            os.replace(staging, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ImportedCase(name, output / name, path, count, offset)
