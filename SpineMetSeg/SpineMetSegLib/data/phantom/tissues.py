"""Tissue classes of the phantom renderer and their MR intensities in T1, T2 and STIR.

The renderer paints *tissue ids*, a superset of ``labels.Anatomy``: the anatomy values themselves, a few
variants that look different but carry the same anatomy label (the disc nucleus, a degenerated nucleus), and one
id per look-alike and per metastasis so that every instance gets its own intensities. ``ANATOMY_OF`` maps an id
back to its anatomy label.

Usage::

    rng = np.random.default_rng(7)
    table = sample_intensities(rng, "standard", lesion_kinds=["lytic"], look_alike_kinds=["haemangioma"])
    t1_of_marrow = table.mean[SEQUENCE_INDEX["t1"], Anatomy.MARROW]

Intensities are relative (about 0..1) and are scaled to scanner units at the end of rendering.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Sequence, Tuple

import numpy as np

from ...labels import Anatomy

SEQUENCES = ("t1", "t2", "stir")
SEQUENCE_INDEX = {name: index for index, name in enumerate(SEQUENCES)}
CONTRASTS = ("standard", "randomized")

NUCLEUS = 16  # hydrated disc nucleus: the bright T2 centre of a healthy disc
DEGENERATED_NUCLEUS = 17  # dehydrated nucleus: "black disc" on T2
VESSEL = 18  # aorta and vena cava in front of the spine: flowing blood gives no signal (flow void)
LUNG = 19  # air-filled lung beside the thoracic spine: almost no signal
LOOK_ALIKE_BASE = 24  # look-alike instance j has tissue id LOOK_ALIKE_BASE + j
MAX_LOOK_ALIKES = 16
LESION_BASE = 48  # metastasis i: lytic part LESION_BASE + 2i, sclerotic part LESION_BASE + 2i + 1
MAX_LESIONS = 8
TISSUE_COUNT = LESION_BASE + 2 * MAX_LESIONS

LESION_KINDS = ("lytic", "sclerotic", "mixed")
LOOK_ALIKE_KINDS = ("haemangioma", "focal_fat", "modic1", "modic2", "modic3")
LOOK_ALIKE_ANATOMY = {
    "haemangioma": Anatomy.HAEMANGIOMA,
    "focal_fat": Anatomy.FOCAL_FAT,
    "modic1": Anatomy.MODIC,
    "modic2": Anatomy.MODIC,
    "modic3": Anatomy.MODIC,
}

# Mean relative intensity (T1, T2, STIR) of each tissue at 1.5-3 T, spin-echo / fast spin-echo, adult marrow.
# Sources: standard spine MRI teaching (fatty marrow bright on T1 and nulled on STIR, CSF bright on T2, cortical
# bone signal-free); the look-alike and metastasis rows follow the radiology of Hille et al. and textbooks.
STANDARD_INTENSITY: Dict[int, Tuple[float, float, float]] = {
    Anatomy.AIR: (0.0, 0.0, 0.0),
    Anatomy.SUBCUTANEOUS_FAT: (0.95, 0.80, 0.06),
    Anatomy.MUSCLE: (0.33, 0.22, 0.20),
    Anatomy.CORTICAL_BONE: (0.05, 0.05, 0.05),
    Anatomy.MARROW: (0.65, 0.42, 0.16),
    Anatomy.DISC: (0.30, 0.35, 0.30),
    Anatomy.PEDICLE: (0.58, 0.38, 0.15),
    Anatomy.LAMINA: (0.45, 0.30, 0.13),
    Anatomy.SPINOUS_PROCESS: (0.50, 0.33, 0.14),
    Anatomy.CSF: (0.12, 1.00, 0.90),
    Anatomy.CORD: (0.40, 0.45, 0.40),
    Anatomy.EPIDURAL_FAT: (0.90, 0.75, 0.06),
    Anatomy.HAEMANGIOMA: (0.90, 0.90, 0.55),
    Anatomy.FOCAL_FAT: (0.95, 0.75, 0.04),
    Anatomy.MODIC: (0.88, 0.68, 0.08),
    Anatomy.SOFT_TISSUE: (0.30, 0.35, 0.30),
    NUCLEUS: (0.35, 0.85, 0.75),
    DEGENERATED_NUCLEUS: (0.30, 0.25, 0.22),
    VESSEL: (0.08, 0.10, 0.10),
    LUNG: (0.03, 0.03, 0.04),
}
LOOK_ALIKE_INTENSITY = {
    "haemangioma": STANDARD_INTENSITY[Anatomy.HAEMANGIOMA],
    "focal_fat": STANDARD_INTENSITY[Anatomy.FOCAL_FAT],
    "modic1": (0.25, 0.70, 0.75),  # oedema: looks like a lytic metastasis, but lies along an endplate
    "modic2": STANDARD_INTENSITY[Anatomy.MODIC],  # fatty
    "modic3": (0.10, 0.12, 0.12),  # sclerosis
}
LESION_INTENSITY = {
    "lytic": (0.20, 0.75, 0.85),  # tumour replaces fatty marrow: dark T1, bright T2/STIR
    "sclerotic": (0.07, 0.10, 0.12),  # mineralised matrix: dark on every sequence
}
# Standard deviation (relative) of the smooth texture inside each tissue.
TEXTURE: Dict[int, float] = {
    Anatomy.SUBCUTANEOUS_FAT: 0.04,
    Anatomy.MUSCLE: 0.08,
    Anatomy.MARROW: 0.12,
    Anatomy.PEDICLE: 0.10,
    Anatomy.LAMINA: 0.10,
    Anatomy.SPINOUS_PROCESS: 0.10,
    Anatomy.CSF: 0.03,
    Anatomy.CORD: 0.05,
    Anatomy.EPIDURAL_FAT: 0.05,
    Anatomy.DISC: 0.08,
    Anatomy.SOFT_TISSUE: 0.20,
    NUCLEUS: 0.08,
    DEGENERATED_NUCLEUS: 0.08,
}
LOOK_ALIKE_TEXTURE = 0.15
LESION_TEXTURE = 0.15

# Per-case variation of the standard table (relative standard deviation), and the age-dependent range of marrow
# T1: red (young, cellular) marrow is darker than yellow (older, fatty) marrow.
CASE_JITTER = 0.08
INSTANCE_JITTER = 0.10
MARROW_T1_RANGE = (0.50, 0.75)
# Contrasts that the jitter must never undo: (tissue intensity) / (marrow intensity) bounds per sequence.
HAEMANGIOMA_OVER_MARROW_MIN = 1.20  # brighter than marrow on T1 and T2
LYTIC_T1_OVER_MARROW_MAX = 0.55
LYTIC_STIR_OVER_MARROW_MIN = 2.5
SCLEROTIC_OVER_MARROW_MAX = 0.35
# Domain randomisation: every tissue gets a uniform random intensity; a metastasis still differs from marrow by
# at least this much in every sequence and by RANDOM_LESION_CONTRAST_STRONG in one of them.
RANDOM_LESION_CONTRAST_MIN = 0.10
RANDOM_LESION_CONTRAST_STRONG = 0.30
RANDOM_AIR_MAX = 0.08


def _anatomy_lut() -> np.ndarray:
    lut = np.arange(TISSUE_COUNT, dtype=np.uint8)
    lut[NUCLEUS] = Anatomy.DISC
    lut[DEGENERATED_NUCLEUS] = Anatomy.DISC
    lut[VESSEL] = Anatomy.SOFT_TISSUE
    lut[LUNG] = Anatomy.SOFT_TISSUE  # inside the body; labels.Anatomy.AIR is the air outside it
    return lut


ANATOMY_OF = _anatomy_lut()
"""Anatomy label of each tissue id for the fixed ids; look-alike ids are set per case (see ``anatomy_lut``)."""


def anatomy_lut(look_alike_kinds: Sequence[str]) -> np.ndarray:
    """Tissue id -> anatomy label, with the look-alike instances of one case."""
    lut = ANATOMY_OF.copy()
    for index, kind in enumerate(look_alike_kinds):
        lut[LOOK_ALIKE_BASE + index] = LOOK_ALIKE_ANATOMY[kind]
    return lut


@dataclass(frozen=True)
class IntensityTable:
    """Per tissue id and sequence: ``mean[s, t]`` relative intensity and ``texture[s, t]`` = mean * texture SD."""

    mean: np.ndarray  # (3, TISSUE_COUNT) float32
    texture: np.ndarray  # (3, TISSUE_COUNT) float32
    contrast: str


def sample_intensities(
    rng: np.random.Generator,
    contrast: str,
    *,
    lesion_kinds: Sequence[str],
    look_alike_kinds: Sequence[str],
) -> IntensityTable:
    """Draw the intensity table of one case: the standard table with per-case jitter, or random per tissue."""
    mean = np.zeros((len(SEQUENCES), TISSUE_COUNT), dtype=np.float64)
    amplitude = np.zeros(TISSUE_COUNT, dtype=np.float64)
    for tissue, values in STANDARD_INTENSITY.items():
        mean[:, tissue] = values
        amplitude[tissue] = TEXTURE.get(tissue, 0.0)
    for index, kind in enumerate(look_alike_kinds):
        mean[:, LOOK_ALIKE_BASE + index] = LOOK_ALIKE_INTENSITY[kind]
        amplitude[LOOK_ALIKE_BASE + index] = LOOK_ALIKE_TEXTURE
    for index, _kind in enumerate(lesion_kinds):
        mean[:, LESION_BASE + 2 * index] = LESION_INTENSITY["lytic"]
        mean[:, LESION_BASE + 2 * index + 1] = LESION_INTENSITY["sclerotic"]
        amplitude[LESION_BASE + 2 * index : LESION_BASE + 2 * index + 2] = LESION_TEXTURE

    if contrast == "standard":
        mean *= np.exp(rng.normal(0.0, CASE_JITTER, size=mean.shape))
        mean[0, Anatomy.MARROW] = rng.uniform(*MARROW_T1_RANGE)
        instances = np.r_[LOOK_ALIKE_BASE : LOOK_ALIKE_BASE + MAX_LOOK_ALIKES, LESION_BASE:TISSUE_COUNT]
        mean[:, instances] *= np.exp(rng.normal(0.0, INSTANCE_JITTER, size=(len(SEQUENCES), len(instances))))
        _keep_standard_contrasts(mean, look_alike_kinds, len(lesion_kinds))
    elif contrast == "randomized":
        mean = rng.uniform(0.0, 1.0, size=mean.shape)
        mean[:, Anatomy.AIR] = rng.uniform(0.0, RANDOM_AIR_MAX, size=len(SEQUENCES))
        for index in range(len(lesion_kinds)):
            for part in (LESION_BASE + 2 * index, LESION_BASE + 2 * index + 1):
                mean[:, part] = _random_lesion_intensity(rng, mean[:, Anatomy.MARROW])
        amplitude = amplitude * rng.uniform(0.5, 2.0)
    else:
        raise ValueError(f"contrast must be one of {CONTRASTS}, got {contrast!r}")
    mean[:, Anatomy.AIR] = np.minimum(mean[:, Anatomy.AIR], RANDOM_AIR_MAX)
    return IntensityTable(
        mean=mean.astype(np.float32),
        texture=(mean * amplitude[None, :]).astype(np.float32),
        contrast=contrast,
    )


def _keep_standard_contrasts(mean: np.ndarray, look_alike_kinds: Sequence[str], lesion_count: int) -> None:
    """Clamp jittered intensities so the textbook contrasts against marrow always hold."""
    t1, t2, stir = (SEQUENCE_INDEX[name] for name in SEQUENCES)
    marrow = mean[:, Anatomy.MARROW].copy()
    for index, kind in enumerate(look_alike_kinds):
        tissue = LOOK_ALIKE_BASE + index
        if kind == "haemangioma":
            for sequence in (t1, t2):
                mean[sequence, tissue] = max(mean[sequence, tissue], HAEMANGIOMA_OVER_MARROW_MIN * marrow[sequence])
        if kind == "focal_fat":
            mean[t1, tissue] = max(mean[t1, tissue], HAEMANGIOMA_OVER_MARROW_MIN * marrow[t1])
    for index in range(lesion_count):
        lytic, sclerotic = LESION_BASE + 2 * index, LESION_BASE + 2 * index + 1
        mean[t1, lytic] = min(mean[t1, lytic], LYTIC_T1_OVER_MARROW_MAX * marrow[t1])
        mean[stir, lytic] = max(mean[stir, lytic], LYTIC_STIR_OVER_MARROW_MIN * marrow[stir])
        mean[t2, lytic] = max(mean[t2, lytic], marrow[t2] * 1.3)
        for sequence in (t1, t2, stir):
            mean[sequence, sclerotic] = min(mean[sequence, sclerotic], SCLEROTIC_OVER_MARROW_MAX * marrow[sequence])


def _random_lesion_intensity(rng: np.random.Generator, marrow: np.ndarray) -> np.ndarray:
    """Random intensities for a lesion part that differ from marrow in every sequence, strongly in one."""
    while True:
        values = rng.uniform(0.0, 1.0, size=len(marrow))
        difference = np.abs(values - marrow)
        if difference.min() >= RANDOM_LESION_CONTRAST_MIN and difference.max() >= RANDOM_LESION_CONTRAST_STRONG:
            return values
