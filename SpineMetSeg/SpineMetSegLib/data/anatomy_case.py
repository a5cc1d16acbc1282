"""One case of real anatomy with drawn-in metastases and look-alikes, and writing it like a phantom case.

Usage::

    case = load_real_case("cases/vb2_05")
    drawn = generate_anatomy_case(case, seed=3, generate=("t1", "stir"))   # + T1-/STIR-like from the real T2
    drawn.images["t2"], drawn.lesions, drawn.anatomy, drawn.info            # like phantom.PhantomCase
    write_anatomy_case(drawn, "out/vb2_05-3", png=True)

The seed fixes everything: lesion and look-alike geometry, contrast conversion and signal factors come from
independent streams of ``numpy.random.SeedSequence(seed)``. The real sequences keep their names (``t2``,
``dixon``, ...); ``generate`` adds T1-, T2- or STIR-like images converted from the first real sequence
(``contrast="standard"``: textbook ranges; ``"randomized"``: random intensity per tissue class), converted
before lesions are drawn so each lesion's contrast follows the sequence it is drawn in. Lesions are labelled
1..K in ``lesions``; ``anatomy`` holds the vertebral bodies (``labels.Anatomy.MARROW``) and the look-alikes
(their phantom anatomy labels); the spinal canal is not known for real scans (``info["spinal_canal_labelled"]``
is false).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import SimpleITK as sitk

from ..errors import SpineMetSegError
from ..labels import Anatomy
from .contrast import TissueClasses, convert, tissue_classes
from .lesion_drawing import Finding, collapse_body, draw, plan_findings, sequence_rule
from .real_case import RealCase

LESIONS_PER_CASE = (1, 4)
LOOK_ALIKES_PER_CASE = (0, 3)
FRACTURE_HEIGHT_LOSS = (0.15, 0.4)  # share of a body's height lost in a simulated pathological fracture
LOOK_ALIKE_ANATOMY = {"haemangioma": Anatomy.HAEMANGIOMA, "focal_fat": Anatomy.FOCAL_FAT,
                      "modic1": Anatomy.MODIC, "modic2": Anatomy.MODIC, "schmorl": Anatomy.MODIC}
CONTRAST_MODES = ("standard", "randomized")


@dataclass
class AnatomyCase:
    images: Dict[str, sitk.Image]  # float32, the real sequences and the generated ones
    lesions: sitk.Image  # uint16: 0 background, 1..K one value per lesion
    anatomy: sitk.Image  # uint8: labels.Anatomy values
    info: dict
    canal_known: bool = False


def _image(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(reference)
    return image


def _describe(finding: Finding, number: int, voxel_ml: float, bodies: np.ndarray) -> dict:
    inside = bodies[finding.box][finding.mask] > 0
    volume = float(finding.mask.sum()) * voxel_ml
    return {
        "id": number,
        "type": finding.kind,
        "host_body": finding.host,
        "location": finding.location,
        "volume_ml": round(volume, 4),
        "diameter_mm": round(float((6.0 * volume * 1000.0 / np.pi) ** (1.0 / 3.0)), 2),  # equal-volume sphere
        "nominal_diameter_mm": finding.nominal_diameter_mm,
        "outside_body_ml": round(float((~inside).sum()) * voxel_ml, 4),
    }


def generate_anatomy_case(case: RealCase, seed: int, *, generate: Sequence[str] = (), contrast: str = "standard",
                          lesion_count: Optional[int] = None, look_alike_count: Optional[int] = None,
                          classes: Optional[TissueClasses] = None, fracture_probability: float = 0.0) -> AnatomyCase:
    """Draw the case of ``seed`` into ``case`` (see module docstring); ``classes`` may be passed to save time.

    With ``fracture_probability`` a case with lesions gets, that often, a pathological fracture of its first
    lesion's body (``lesion_drawing.collapse_body``). The draw comes from a fourth random stream, so a case
    without a fracture is the same as with ``fracture_probability=0``.
    """
    if contrast not in CONTRAST_MODES:
        raise SpineMetSegError(f"Unknown contrast {contrast!r}; choose one of {', '.join(CONTRAST_MODES)}.")
    unknown = [name for name in generate if name not in ("t1", "t2", "stir")]
    if unknown:
        raise SpineMetSegError(f"Cannot generate {', '.join(unknown)}: choose from t1, t2, stir.")
    # spawn(4)[:3] are the same streams as spawn(3): the fourth (fractures) leaves earlier cases unchanged.
    geometry_rng, contrast_rng, count_rng, fracture_rng = (np.random.default_rng(s)
                                                           for s in np.random.SeedSequence(int(seed)).spawn(4))
    if lesion_count is None:
        lesion_count = int(count_rng.integers(LESIONS_PER_CASE[0], LESIONS_PER_CASE[1] + 1))
    if look_alike_count is None:
        look_alike_count = int(count_rng.integers(LOOK_ALIKES_PER_CASE[0], LOOK_ALIKES_PER_CASE[1] + 1))
    fracture = None
    if lesion_count > 0 and fracture_rng.random() < fracture_probability:
        host = int(fracture_rng.choice(np.unique(case.bodies[case.bodies > 0])))
        loss = float(fracture_rng.uniform(*FRACTURE_HEIGHT_LOSS))
        superior = bool(fracture_rng.random() < 0.7)  # the superior endplate gives way more often
        case = collapse_body(case, host, loss, superior)
        classes = None  # the body mask changed: the tissue classes (and the soft body weight) are made again
        fracture = {"host_body": host, "height_loss": round(loss, 3),
                    "endplate": "superior" if superior else "inferior"}
    lesions, look_alikes = plan_findings(case, geometry_rng, lesion_count, look_alike_count,
                                         first_host=None if fracture is None else fracture["host_body"])
    source_name, source = next(iter(case.sequences.items()))
    channels: Dict[str, np.ndarray] = dict(case.sequences)
    for name in generate:
        if name in channels:
            continue
        if classes is None:
            classes = tissue_classes(source, case.bodies > 0)
        channels[name] = convert(source, classes, name if contrast == "standard" else "random", contrast_rng)
    findings = lesions + look_alikes
    images = {name: _image(draw(array, sequence_rule(name), findings, case.bodies), case.reference)
              for name, array in channels.items()}
    lesion_map = np.zeros(case.bodies.shape, dtype=np.uint16)
    for number, finding in enumerate(lesions, start=1):
        lesion_map[finding.box][finding.mask] = number
    anatomy = np.where(case.bodies > 0, np.uint8(Anatomy.MARROW), np.uint8(0)).astype(np.uint8)
    for finding in look_alikes:
        anatomy[finding.box][finding.mask] = np.uint8(LOOK_ALIKE_ANATOMY[finding.kind])
    voxel_ml = float(np.prod(case.spacing)) / 1000.0
    info = {
        "kind": "real anatomy with simulated lesions",
        "anatomy_from": case.name,
        "seed": int(seed),
        "contrast": contrast,
        "sequences": {name: ("real" if name in case.sequences else f"generated from {source_name}")
                      for name in channels},
        "vertebral_bodies": case.body_count,
        "spinal_canal_labelled": False,
        "lesions": [_describe(f, n, voxel_ml, case.bodies) for n, f in enumerate(lesions, start=1)],
        "pathological_fracture": fracture,
        "look_alikes": [{"kind": f.kind, "host_body": f.host, "location": f.location,
                         "volume_ml": round(float(f.mask.sum()) * voxel_ml, 4)} for f in look_alikes],
        "note": "simulated lesions drawn into a real healthy scan; not a real metastasis",
    }
    return AnatomyCase(images, _image(lesion_map, case.reference), _image(anatomy, case.reference), info)


def model_target(case: AnatomyCase) -> sitk.Image:
    """The training target: vertebral body 2 (bodies and look-alikes in them), metastasis 1; canal unknown (0)."""
    from ..labels import ModelLabel

    anatomy = sitk.GetArrayViewFromImage(case.anatomy)
    target = np.where(anatomy > 0, np.uint8(ModelLabel.VERTEBRAL_BODY), np.uint8(0)).astype(np.uint8)
    target[sitk.GetArrayViewFromImage(case.lesions) > 0] = ModelLabel.METASTASIS
    return _image(target, case.anatomy)


def save_preview(case: AnatomyCase, path: Union[str, os.PathLike]) -> None:
    """Every sequence at the sagittal slice through the largest lesion (or the middle), lesions outlined."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    lesions = sitk.GetArrayViewFromImage(case.lesions)
    direction = np.array(case.lesions.GetDirection()).reshape(3, 3)
    lr_axis = 2 - int(np.argmax(np.abs(direction[0])))  # numpy axis across sagittal slices
    counts = np.moveaxis(lesions > 0, lr_axis, 0).reshape(lesions.shape[lr_axis], -1).sum(axis=1)
    k = int(np.argmax(counts)) if counts.any() else lesions.shape[lr_axis] // 2
    names = list(case.images)
    figure = Figure(figsize=(3.2 * len(names), 3.8), dpi=100)
    axes = np.atleast_1d(figure.subplots(1, len(names)))
    mask = np.take(lesions > 0, k, axis=lr_axis)
    for axis, name in zip(axes, names):
        picture = np.take(sitk.GetArrayViewFromImage(case.images[name]), k, axis=lr_axis)
        low, high = np.percentile(picture, (0.5, 99.5))
        axis.imshow(picture, cmap="gray", vmin=low, vmax=high, interpolation="nearest")
        if mask.any():
            axis.contour(mask.astype(np.float32), levels=[0.5], colors="#ff3030", linewidths=0.8)
        axis.set_title(f"{name} ({case.info['sequences'][name].split(' from')[0]})", fontsize=9)
        axis.set_axis_off()
    figure.suptitle(f"{case.info['anatomy_from']}, seed {case.info['seed']}: simulated lesions in real anatomy",
                    fontsize=9)
    figure.savefig(str(path), metadata={"Software": None})


def write_anatomy_case(case: AnatomyCase, folder: Union[str, os.PathLike], png: bool = False) -> List[str]:
    """Write every image, lesions/anatomy/case.json (and preview.png) into ``folder``, all or nothing
    (``phantom.writing.write_image_set``: staged, verified, then moved)."""
    from .phantom.writing import write_image_set

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise SpineMetSegError(f"The output {folder} is a file; give a folder to write the case into.")
    images = {f"{name}.nii.gz": image for name, image in case.images.items()}
    images["lesions.nii.gz"], images["anatomy.nii.gz"] = case.lesions, case.anatomy

    def preview(path: Path) -> None:
        save_preview(case, path)

    return list(write_image_set(folder, images, case.info, preview if png else None))
