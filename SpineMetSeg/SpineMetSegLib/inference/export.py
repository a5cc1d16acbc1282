"""Export: check the output paths before any work, then write every output together, verified (``atomicfile``).

Usage::

    export.check_output_paths({"t1": "t1.nii.gz"}, "seg.nii.gz", probabilities_path="p.nii.gz")
    export.write_outputs(result, "seg.nii.gz", probabilities_path="p.nii.gz", lesions_csv="lesions.csv")

The label map, the optional probability map and lesion CSV land through temporary files beside their targets that
are read back and then replace them together, so a failure or a cancel leaves none and earlier files untouched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Optional

import SimpleITK as sitk

from ..images import imageio
from ..images.atomicfile import FileJob, write_files
from ..images.outputpaths import check_paths
from ..labels import ModelLabel


def check_output_paths(
    inputs: Mapping[str, imageio.PathLike],
    output: imageio.PathLike,
    probabilities_path: Optional[imageio.PathLike] = None,
    lesions_csv: Optional[imageio.PathLike] = None,
    other_inputs: Optional[Mapping[str, Optional[imageio.PathLike]]] = None,
) -> None:
    """Refuse, before any work, outputs that are inputs or each other, folders, unwritable or of unknown type.

    Paths are named as the command line names them (``--t1``, ``--input flair``, ``--output``, ...).
    """
    named_inputs = {(f"--{name}" if name in ("t1", "t2", "stir") else f"--input {name}"): path
                    for name, path in inputs.items()}
    check_paths(
        {"--output": output, "--probabilities": probabilities_path, "--lesions-csv": lesions_csv},
        {**named_inputs, **(other_inputs or {})},
        suffixes={"--output": imageio.WRITABLE_SUFFIXES, "--probabilities": imageio.WRITABLE_SUFFIXES},
    )


def write_outputs(
    labels: sitk.Image,
    output: imageio.PathLike,
    *,
    probabilities: Optional[sitk.Image] = None,
    probabilities_path: Optional[imageio.PathLike] = None,
    lesions_csv: Optional[imageio.PathLike] = None,
) -> None:
    """Write the label map to ``output`` and, when asked, the probability map and the lesion CSV, all or none."""
    jobs = [imageio.image_job(labels, output)]
    if probabilities_path is not None:
        jobs.append(imageio.image_job(probabilities, probabilities_path))
    if lesions_csv is not None:
        jobs.append(FileJob(lesions_csv, _lesion_csv_writer(labels)))
    write_files(jobs)


def _lesion_csv_writer(labels: sitk.Image) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        from ..analysis import lesions  # the lesion analysis is only needed for the CSV

        # A model output is its own anatomy map: the lesions' host vertebra and canal distance come from it.
        lesions.write_lesion_csv(lesions.measure_lesions(labels, label=int(ModelLabel.METASTASIS)), path)

    return write
