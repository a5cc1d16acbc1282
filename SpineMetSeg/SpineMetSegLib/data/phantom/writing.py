"""Write a phantom case to a folder: five NIfTI images, case.json and optionally preview.png.

Usage::

    paths = write_case(generate_case(3), "out/case-0003", png=True)

Every file is staged beside its target, verified (images read back voxel for voxel, text byte for byte) and moved
into place only when all of them are (``atomicfile.write_files``), so a failure (or Ctrl-C) leaves no partial case
behind and never half-replaces an earlier one. Same seed, same bytes: NIfTI headers and gzip streams written by
SimpleITK carry no time stamp, case.json holds no time, and the PNG carries no date.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Dict, Mapping, Optional, Union

import SimpleITK as sitk

from ...images.atomicfile import FileJob, text_job, write_files
from ...images.imageio import image_job
from .case import PhantomCase
from .tissues import SEQUENCES

CASE_FILES = tuple(f"{name}.nii.gz" for name in SEQUENCES) + ("lesions.nii.gz", "anatomy.nii.gz", "case.json")
PREVIEW_FILE = "preview.png"


def write_image_set(folder: Union[str, os.PathLike], images: Mapping[str, sitk.Image], info: dict,
                    preview: Optional[Callable[[Path], None]] = None) -> Dict[str, Path]:
    """Write ``images`` ({file name: image}), ``case.json`` from ``info`` and, with ``preview`` (a function
    writing a PNG at a path), ``preview.png`` into ``folder``, all or none; returns {file name: path}."""
    folder = Path(folder)
    jobs = [image_job(image, folder / name) for name, image in images.items()]
    jobs.append(text_job(folder / "case.json", json.dumps(info, indent=2) + "\n"))
    if preview is not None:
        jobs.append(FileJob(folder / PREVIEW_FILE, write=preview))
    return {path.name: path for path in write_files(jobs)}


def write_case(case: PhantomCase, folder: Union[str, os.PathLike], png: bool = False) -> Dict[str, Path]:
    """Write ``case`` into ``folder`` (created if needed); returns {file name: path} of what was written."""
    images = {f"{name}.nii.gz": case.images[name] for name in SEQUENCES}
    images["lesions.nii.gz"] = case.lesions
    images["anatomy.nii.gz"] = case.anatomy
    preview = None
    if png:
        from .preview import save_preview

        def preview(path: Path) -> None:
            save_preview(case, path)

    return write_image_set(folder, images, case.info, preview)
