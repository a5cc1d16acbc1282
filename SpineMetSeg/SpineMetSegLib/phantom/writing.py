"""Write a phantom case to a folder: five NIfTI images, case.json and optionally preview.png.

Usage::

    paths = write_case(generate_case(3), "out/case-0003", png=True)

Every file is first written into a hidden temporary folder inside the target folder and moved into place only
when all of them are written, so a failure (or Ctrl-C) leaves no partial case behind and never half-replaces an
earlier one. Same seed, same bytes: NIfTI headers and gzip streams written by SimpleITK carry no time stamp,
case.json holds no time, and the PNG carries no date.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Dict, Union

import SimpleITK as sitk

from .case import PhantomCase
from .tissues import SEQUENCES

CASE_FILES = tuple(f"{name}.nii.gz" for name in SEQUENCES) + ("lesions.nii.gz", "anatomy.nii.gz", "case.json")
PREVIEW_FILE = "preview.png"


def write_case(case: PhantomCase, folder: Union[str, os.PathLike], png: bool = False) -> Dict[str, Path]:
    """Write ``case`` into ``folder`` (created if needed); returns {file name: path} of what was written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".partial-case-", dir=folder))
    try:
        images = {f"{name}.nii.gz": case.images[name] for name in SEQUENCES}
        images["lesions.nii.gz"] = case.lesions
        images["anatomy.nii.gz"] = case.anatomy
        for name, image in images.items():
            sitk.WriteImage(image, str(staging / name), True)
        files = {"case.json": case.info}
        (staging / "case.json").write_text(json.dumps(files["case.json"], indent=2) + "\n", encoding="utf-8")
        names = list(CASE_FILES)
        if png:
            from .preview import save_preview

            save_preview(case, staging / PREVIEW_FILE)
            names.append(PREVIEW_FILE)
        written = {}
        for name in names:
            os.replace(staging / name, folder / name)
            written[name] = folder / name
        return written
    finally:
        shutil.rmtree(staging, ignore_errors=True)
