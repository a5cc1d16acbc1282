"""Synthetic spine MRI with metastases and exact ground truth (the training data of the default model).

Usage::

    from SpineMetSegLib.data.phantom import generate_case, model_target, write_case

    case = generate_case(7, acquisition="sagittal2d")    # or "iso3d", or None: drawn from the seed
    write_case(case, "case-0007", png=True)              # t1/t2/stir/lesions/anatomy .nii.gz, case.json, preview.png
    target = model_target(case)                          # labels.ModelLabel map on the same grid

Modules: ``anatomy`` (curved spine, vertebrae, canal, body wall), ``lesions`` (metastases and look-alikes),
``tissues`` (tissue classes and MR intensities), ``acquisition`` (scanner geometry), ``rendering`` and
``artefacts`` (voxelisation, partial volume, texture, bias, noise), ``case`` (generate_case, model_target),
``writing`` (write_case) and ``preview`` (the PNG).
"""

from __future__ import annotations

from .acquisition import ACQUISITIONS
from .case import PhantomCase, generate_case, model_target
from .tissues import CONTRASTS, SEQUENCES
from .writing import write_case

__all__ = ["ACQUISITIONS", "CONTRASTS", "SEQUENCES", "PhantomCase", "generate_case", "model_target", "write_case"]
