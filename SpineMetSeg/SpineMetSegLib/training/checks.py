"""Check training input before training starts: a bad folder costs seconds, never a silently wrong model.

Usage::

    from SpineMetSegLib.training.checks import check_dataset_description, check_training_folder, check_run_folder
    check_run_folder("runs/a", resume=False, overwrite=False)   # a folder holding a model needs one of the two
    check_training_folder("/data/Dataset101_Spine", card)       # dataset.json schema, then every case

``dataset.json`` must be a JSON object (MSD / nnU-Net): ``channel_names`` (or MSD ``modality``) mapping channel
indices to sequence names the model takes, ``labels`` mapping names to whole-number voxel values (or MSD:
values to names), one of them ``metastasis``; ``file_ending`` a string. Every case's label map must lie on its
image's grid (size, origin, spacing, direction within ``GRID_TOLERANCE_MM``), hold whole numbers only, and only
values ``labels`` declares; every foreground label the model learns must appear in at least one case.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Set, Union

import numpy as np
import SimpleITK as sitk

from ..errors import ImageError, SpineMetSegError
from ..models.modelcard import ModelCard

PathLike = Union[str, os.PathLike]
# Label and image grids agree to this (mm for origin and spacing; unit vectors for direction). NIfTI keeps its
# geometry in float32, so exports of one grid differ by far less than this.
GRID_TOLERANCE_MM = 1e-3
DIRECTION_TOLERANCE = 1e-4
MAX_LISTED = 5


def check_run_folder(output: PathLike, *, resume: bool, overwrite: bool) -> None:
    """Refuse an ``--output`` that already holds a trained model or checkpoint unless resuming or overwriting."""
    from .loop import CHECKPOINT

    folder = Path(output)
    if resume or overwrite or not folder.is_dir():
        return
    found = sorted(p.name for p in folder.glob("*.safetensors") if p.is_file())
    found += [CHECKPOINT] if (folder / CHECKPOINT).is_file() else []
    if found:
        raise SpineMetSegError(
            f"--output {folder} already holds a model ({', '.join(found[:MAX_LISTED])}). Give --resume to continue "
            "that run, --overwrite to replace it, or another --output folder."
        )


def check_dataset_description(path: PathLike) -> Dict[str, Any]:
    """The parsed ``dataset.json`` at ``path``, or ``ImageError`` naming the file, the field and the fix."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as error:
        raise ImageError(f"Cannot read {path}: {error.strerror or error}.") from None
    except UnicodeDecodeError:
        raise ImageError(f"{path} is not a JSON text file (it holds binary data); write dataset.json as JSON."
                         ) from None
    try:
        description = json.loads(text)
    except ValueError as error:
        raise ImageError(f"{path} is not valid JSON: {error}.") from None
    if not isinstance(description, dict):
        raise ImageError(
            f"{path} must be a JSON object ({{\"channel_names\": ..., \"labels\": ...}}), not a "
            f"{type(description).__name__}. See the MSD / nnU-Net dataset.json layout."
        )
    channels = description.get("channel_names", description.get("modality"))
    field = "channel_names" if "channel_names" in description else "modality"
    if not isinstance(channels, dict) or not channels:
        raise ImageError(f"{path}: '{field}' must map channel indices to sequence names, e.g. "
                         "{\"0\": \"T1\", \"1\": \"STIR\"}.")
    for key, name in channels.items():
        if not _whole_number(key) or not isinstance(name, str):
            raise ImageError(f"{path}: '{field}' entry {key!r}: {name!r} must be a channel index (\"0\", \"1\", "
                             "...) mapped to a sequence name (\"T1\").")
    labels = description.get("labels")
    if not isinstance(labels, dict) or not labels:
        raise ImageError(f"{path}: 'labels' must map label names to voxel values, e.g. "
                         "{\"background\": 0, \"metastasis\": 1}.")
    for key, value in labels.items():
        if _whole_number(key) and isinstance(value, str):
            continue  # MSD: value -> name
        if isinstance(value, bool) or not isinstance(value, int):
            raise ImageError(f"{path}: 'labels.{key}' must be a whole-number voxel value (such as 1), got "
                             f"{value!r}.")
    if not isinstance(description.get("file_ending", ".nii.gz"), str):
        raise ImageError(f"{path}: 'file_ending' must be a string such as \".nii.gz\".")
    return description


def declared_label_values(description: Mapping[str, Any]) -> Dict[int, str]:
    """``{voxel value: label name}`` from a checked ``dataset.json`` (either labels layout)."""
    values = {}
    for key, value in description["labels"].items():
        if _whole_number(key) and isinstance(value, str):
            values[int(key)] = value
        else:
            values[int(value)] = str(key)
    return values


def check_training_folder(folder: PathLike, card: ModelCard) -> None:
    """Check ``dataset.json`` and every case of ``folder`` for ``card`` (see the module docstring)."""
    from .data import FolderDataset

    folder = Path(folder)
    description_path = folder / "dataset.json"
    if description_path.is_file():
        check_dataset_description(description_path)
    dataset = FolderDataset(folder, card)  # layout, channel names and the metastasis label
    declared = declared_label_values(dataset.description)
    learnt = {value for value, card_value in dataset.label_map.items() if value != 0 and card_value != 0}
    present: Set[int] = set()
    for name, image_files, label_file in dataset.cases:
        present |= _check_case(name, Path(image_files[0]), Path(label_file), declared)
    missing = sorted(learnt - present)
    if missing:
        listed = ", ".join(f"'{declared[value]}' ({value})" for value in missing)
        raise ImageError(
            f"No case in {folder} holds the label {listed}: the model would learn never to predict it. Check the "
            "label values in labelsTr/ against dataset.json 'labels'."
        )


def _check_case(name: str, image_file: Path, label_file: Path, declared: Mapping[int, str]) -> Set[int]:
    """The label values case ``name`` holds, after checking its grid and values; ``ImageError`` otherwise."""
    from ..images.imageio import Geometry, read_image

    image_grid = _geometry(image_file)
    label = read_image(label_file, name=f"label map of case {name}")
    problem = _grid_difference(image_grid, Geometry.of(label))
    if problem:
        raise ImageError(
            f"Case {name}: the label map {label_file.name} is not on its image's grid ({problem}). Re-export the "
            f"label map on the grid of {image_file.name}."
        )
    values = sitk.GetArrayViewFromImage(label)
    if np.issubdtype(values.dtype, np.floating):
        fractional = int(np.count_nonzero(values != np.round(values)))
        if fractional:
            raise ImageError(
                f"Case {name}: the label map {label_file.name} has {fractional} voxels with fractional values "
                "(it was interpolated or saved as probabilities). Label maps hold whole numbers; re-export it "
                "with nearest-neighbour resampling."
            )
    found = {int(v) for v in np.unique(values)}
    undeclared = sorted(found - set(declared))
    if undeclared:
        allowed = ", ".join(f"{value} ({declared[value]})" for value in sorted(declared))
        listed = ", ".join(map(str, undeclared[:MAX_LISTED]))
        raise ImageError(
            f"Case {name}: the label map {label_file.name} holds value(s) {listed}"
            f" that dataset.json 'labels' does not declare (it declares {allowed}). Fix the label map or declare "
            "the value."
        )
    return found


def _geometry(path: Path) -> Any:
    from ..images.imageio import Geometry

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        raise ImageError(f"Cannot read the image {path}: it is not a readable image file.") from None
    return Geometry(reader.GetSize(), reader.GetSpacing(), reader.GetOrigin(), reader.GetDirection())


def _grid_difference(image: Any, label: Any) -> Optional[str]:
    """A phrase saying how two grids differ, or None when they agree within the tolerances."""
    problems: List[str] = []
    if tuple(image.size) != tuple(label.size):
        problems.append(f"size {tuple(label.size)} instead of {tuple(image.size)}")
    origin = float(np.max(np.abs(np.subtract(image.origin, label.origin))))
    if origin > GRID_TOLERANCE_MM:
        problems.append(f"origin {origin:.1f} mm away")
    spacing = float(np.max(np.abs(np.subtract(image.spacing, label.spacing))))
    if spacing > GRID_TOLERANCE_MM:
        problems.append(f"spacing {tuple(round(s, 3) for s in label.spacing)} instead of "
                        f"{tuple(round(s, 3) for s in image.spacing)} mm")
    if float(np.max(np.abs(np.subtract(image.direction, label.direction)))) > DIRECTION_TOLERANCE:
        problems.append("another orientation")
    return "; ".join(problems) or None


def _whole_number(text: Any) -> bool:
    return isinstance(text, str) and text.strip().lstrip("-").isdigit()
