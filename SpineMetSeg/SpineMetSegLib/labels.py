"""Label values shared by the synthetic engine, the models, the metrics and the Slicer logic.

Two conventions exist:

- the *phantom anatomy* map (``anatomy.nii.gz`` written by ``spinemetseg phantom``), detailed tissue
  classes, values in ``Anatomy``;
- the *model output* map (``spinemetseg segment``), values in ``ModelLabel``: metastasis is always 1.

``PHANTOM_TO_MODEL`` maps the first onto the second (the training target); lesions from
``lesions.nii.gz`` are then painted on top with ``ModelLabel.METASTASIS``.
"""

from enum import IntEnum


class Anatomy(IntEnum):
    """Tissue classes of the phantom's anatomy label map."""

    AIR = 0
    SUBCUTANEOUS_FAT = 1
    MUSCLE = 2
    CORTICAL_BONE = 3  # cortical shell of the vertebral body
    MARROW = 4  # cancellous bone / marrow of the vertebral body
    DISC = 5
    PEDICLE = 6
    LAMINA = 7
    SPINOUS_PROCESS = 8
    CSF = 9
    CORD = 10
    EPIDURAL_FAT = 11
    HAEMANGIOMA = 12  # look-alike, never a metastasis
    FOCAL_FAT = 13  # look-alike, never a metastasis
    MODIC = 14  # degenerative endplate change, look-alike, never a metastasis
    SOFT_TISSUE = 15  # other body soft tissue (anterior to the spine)


class ModelLabel(IntEnum):
    """Label values of every model's output."""

    BACKGROUND = 0
    METASTASIS = 1
    VERTEBRAL_BODY = 2
    SPINAL_CANAL = 3


VERTEBRAL_BODY_TISSUES = (
    Anatomy.CORTICAL_BONE,
    Anatomy.MARROW,
    Anatomy.HAEMANGIOMA,
    Anatomy.FOCAL_FAT,
    Anatomy.MODIC,
)
SPINAL_CANAL_TISSUES = (Anatomy.CSF, Anatomy.CORD, Anatomy.EPIDURAL_FAT)
POSTERIOR_ELEMENT_TISSUES = (Anatomy.PEDICLE, Anatomy.LAMINA, Anatomy.SPINOUS_PROCESS)
BONE_TISSUES = VERTEBRAL_BODY_TISSUES + POSTERIOR_ELEMENT_TISSUES
LOOK_ALIKE_TISSUES = (Anatomy.HAEMANGIOMA, Anatomy.FOCAL_FAT, Anatomy.MODIC)

PHANTOM_TO_MODEL = {
    **{int(t): int(ModelLabel.VERTEBRAL_BODY) for t in VERTEBRAL_BODY_TISSUES},
    **{int(t): int(ModelLabel.SPINAL_CANAL) for t in SPINAL_CANAL_TISSUES},
}
