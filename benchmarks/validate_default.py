"""Validate the shipped default model on synthetic cases it never saw, and on the healthy real scans.

Usage::

    python benchmarks/validate_default.py --cases 60 --output /tmp/validation
    python benchmarks/validate_default.py --cases 60 --output out --model spinemetseg-default --subset-cases 20
    python benchmarks/validate_default.py --cases 60 --output out --weights new.safetensors --card new.json

Writes ``validation.md`` (the table, with the seed papers' published numbers beside ours), ``validation.json``
(every number) and ``validation.png`` (predictions against truth on a few cases) into ``--output``.

Cases: phantom seeds ``VALIDATION_SEED_START + i`` (training seeds stay below ``TRAINING_SEED_LIMIT``), even
``i`` with the ordinary rendering, odd ``i`` with the domain-randomised contrast. Every case goes through the
shipped pipeline (``inference.segment_images``: preprocessing, sliding window, post-processing) with all three
sequences; the first ``--subset-cases`` cases also with T1, T2 or STIR alone. Lesions are the phantom's own
lesions (their sizes and types from ``case.info``); predicted lesions are 26-connected components of label 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import SimpleITK as sitk
import torch
from scipy import ndimage

from SpineMetSegLib.cli.segment import with_min_lesion_probability
from SpineMetSegLib.data.phantom import generate_case, model_target
from SpineMetSegLib.errors import SpineMetSegError
from SpineMetSegLib.images.imageio import read_image, reorient
from SpineMetSegLib.inference import segment_images
from SpineMetSegLib.labels import Anatomy, ModelLabel
from SpineMetSegLib.models.loader import load_model
from SpineMetSegLib.models.modelcard import ModelCard
from SpineMetSegLib.training.data import TRAINING_SEED_LIMIT, VALIDATION_SEED_START

ANATOMY_VALIDATION_SEED_START = 9_500_000  # lesions drawn into the validation scans (training seeds < 1,000,000)

SEQUENCE_SETS = {"all": ("t1", "t2", "stir"), "T1": ("t1",), "T2": ("t2",), "STIR": ("stir",)}
LARGE_LESION_MM = 5.0
CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)
REAL_SCANS = (  # file, sequence it is given as
    ("sct_t2_lumbar.nii.gz", "t2"),
    ("sct_t2_cervical_ms.nii.gz", "t2"),
    ("totalseg_example_mr.nii.gz", "t1"),
)
TARGETS = {"lesion Dice": 0.85, "lesion sensitivity >= 5 mm": 0.90, "FP per case": 0.5, "body Dice": 0.90,
           "real FP per scan": 1.0}
PAPERS = (
    "Published (real clinical MRI, other data sets — not comparable one to one): Hille et al. 2020: Dice up to "
    "77.6 %, sensitivity up to 78.9 %; Chen et al. 2024: Dice 91.1 %, precision 90.6 %, recall 91.1 %; "
    "Wang et al. 2023: pixel accuracy 98 %."
)


def dice(a: np.ndarray, b: np.ndarray) -> Optional[float]:
    total = int(a.sum()) + int(b.sum())
    return None if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def equivalent_diameter_mm(voxels: int, voxel_ml: float) -> float:
    return float((6.0 * voxels * voxel_ml * 1000.0 / np.pi) ** (1.0 / 3.0))


def lesion_analysis(case: Any, prediction: np.ndarray, anatomy: np.ndarray, voxel_ml: float) -> Dict[str, Any]:
    """Per reference lesion: detected, Dice with the predicted components it touches; false positives."""
    lesions = sitk.GetArrayFromImage(case.lesions)
    predicted = prediction == ModelLabel.METASTASIS
    components, count = ndimage.label(predicted, structure=CONNECTIVITY)
    info = {int(item["id"]): item for item in case.info["lesions"]}
    rows = []
    touched = set()
    for lesion_id in np.unique(lesions[lesions > 0]):
        mask = lesions == lesion_id
        hits = set(np.unique(components[mask])) - {0}
        touched |= hits
        union = np.isin(components, list(hits)) if hits else np.zeros_like(mask)
        item = info.get(int(lesion_id), {})
        diameter = item.get("diameter_mm") or equivalent_diameter_mm(int(mask.sum()), voxel_ml)
        rows.append({"type": item.get("type", "unknown"), "diameter_mm": float(diameter), "detected": bool(hits),
                     "dice": dice(mask, union) or 0.0})
    false_positive = [c for c in range(1, count + 1) if c not in touched]
    sizes = ndimage.sum_labels(np.ones_like(components), components, false_positive) if false_positive else []
    large_fp = sum(equivalent_diameter_mm(int(n), voxel_ml) >= LARGE_LESION_MM for n in sizes)
    look_alikes = {}
    for tissue in (Anatomy.HAEMANGIOMA, Anatomy.FOCAL_FAT, Anatomy.MODIC):
        parts, n = ndimage.label(anatomy == tissue, structure=CONNECTIVITY)
        flagged = 0
        for part in range(1, n + 1):
            region = parts == part
            flagged += bool(np.logical_and(region, predicted).any() and not (lesions[region] > 0).any())
        look_alikes[tissue.name.lower()] = (n, flagged)
    return {"lesions": rows, "false_positive": len(false_positive), "false_positive_large": int(large_fp),
            "look_alikes": look_alikes}


def segment(images: Dict[str, sitk.Image], card: ModelCard, model: torch.nn.Module) -> np.ndarray:
    # Every image here is MRI or converted from MRI: the CT guard for users' files (segment --not-ct) is off.
    result = segment_images(images, card, model, device="cpu", ct_check=False, warn=lambda message: None)
    return sitk.GetArrayFromImage(result.labels)


def mean(values: List[Optional[float]]) -> Optional[float]:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def validate_synthetic(card: ModelCard, model: torch.nn.Module, cases: int, subset_cases: int,
                       pictures: List[Any]) -> Dict[str, Any]:
    per_case = []
    started = time.monotonic()
    for index in range(cases):
        seed = VALIDATION_SEED_START + index
        assert seed >= TRAINING_SEED_LIMIT
        contrast = "standard" if index % 2 == 0 else "randomized"
        case = generate_case(seed, contrast=contrast)
        target = sitk.GetArrayFromImage(model_target(case))
        anatomy = sitk.GetArrayFromImage(case.anatomy)
        voxel_ml = float(np.prod(case.images["t1"].GetSpacing())) / 1000.0
        prediction = segment(case.images, card, model)
        row = {"seed": seed, "contrast": contrast, "acquisition": case.info.get("acquisition"),
               "lesion_dice": dice(target == 1, prediction == 1),
               "body_dice": dice(target == 2, prediction == 2), "canal_dice": dice(target == 3, prediction == 3),
               "by_sequences": {}}
        row.update(lesion_analysis(case, prediction, anatomy, voxel_ml))
        if index < subset_cases:
            for name, sequences in SEQUENCE_SETS.items():
                if name == "all":
                    continue
                alone = segment({s: case.images[s] for s in sequences}, card, model)
                row["by_sequences"][name] = {"lesion_dice": dice(target == 1, alone == 1),
                                             "body_dice": dice(target == 2, alone == 2)}
        per_case.append(row)
        if len(pictures) < 3 and (target == 1).any():
            pictures.append((case, target, prediction))
        print(f"case {index + 1}/{cases} seed {seed} {contrast}: lesion Dice {row['lesion_dice']}, "
              f"body {row['body_dice']:.3f}, FP {row['false_positive']} ({time.monotonic() - started:.0f} s)",
              file=sys.stderr, flush=True)
    return {"cases": per_case, "seconds": time.monotonic() - started}


def anatomy_inputs(case: Any, real_name: str) -> Dict[str, Dict[str, sitk.Image]]:
    """The input sets a real-anatomy case is segmented with: its real scan alone (water-fat given as T2), the
    generated T1 and STIR alone, and all three together."""
    real_as = real_name if real_name in ("t1", "t2", "stir") else "t2"
    real = case.images[real_name]
    return {
        f"real {real_name}" + ("" if real_name == real_as else " as T2"): {real_as: real},
        "generated T1": {"t1": case.images["t1"]},
        "generated STIR": {"stir": case.images["stir"]},
        "all three": {real_as: real, "t1": case.images["t1"], "stir": case.images["stir"]},
    }


def validate_anatomy(card: ModelCard, model: torch.nn.Module, folder: Path, seeds: int, pictures: List[Any],
                     names: Optional[List[str]] = None, seed_start: int = ANATOMY_VALIDATION_SEED_START,
                     role: str = "validation") -> Dict[str, Any]:
    """Real scans of the fixed split's ``role`` with ``seeds`` drawn-in lesion sets each and once clean, every
    input set of ``anatomy_inputs``; rows like ``validate_synthetic``'s, keyed by input set."""
    from SpineMetSegLib.data.anatomy_case import generate_anatomy_case
    from SpineMetSegLib.data.anatomy_case import model_target as anatomy_target
    from SpineMetSegLib.data.real_case import load_real_case
    from SpineMetSegLib.data.split import load_split

    split = load_split()
    chosen = names or getattr(split, role)
    per_case = []
    started = time.monotonic()
    for scan_index, name in enumerate(chosen):
        if not (folder / name).is_dir():
            raise SpineMetSegError(f"{folder / name} is missing: import the scans with 'spinemetseg dataset import-vb'")
        real_case = load_real_case(folder / name)
        real_name = next(iter(real_case.sequences))
        for k in range(seeds + 1):
            seed = seed_start + scan_index * 100 + k
            clean = k == seeds  # the last one has no lesion: false positives on a healthy scan
            case = generate_anatomy_case(real_case, seed, generate=("t1", "stir"), contrast="standard",
                                         lesion_count=0 if clean else None)
            target = sitk.GetArrayFromImage(anatomy_target(case))
            anatomy = sitk.GetArrayFromImage(case.anatomy)
            voxel_ml = float(np.prod(real_case.spacing)) / 1000.0
            for input_set, images in anatomy_inputs(case, real_name).items():
                prediction = segment(images, card, model)
                row = {"scan": name, "seed": seed, "clean": clean, "inputs": input_set,
                       "contrast": "real anatomy", "lesion_dice": dice(target == 1, prediction == 1),
                       "body_dice": dice(target == 2, prediction == 2), "canal_dice": None, "by_sequences": {}}
                row.update(lesion_analysis(case, prediction, anatomy, voxel_ml))
                per_case.append(row)
                if input_set == "all three" and not clean and len(pictures) < 4 and (target == 1).any():
                    pictures.append((case, target, prediction))
            print(f"{role} scan {scan_index + 1}/{len(chosen)} {name} seed {seed}{' clean' if clean else ''} "
                  f"({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
    return {"cases": per_case, "seconds": time.monotonic() - started}


def summarise_anatomy(rows: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Per input set: the lesion block over cases with lesions, false positives on the clean scans apart."""
    out = {}
    for input_set in dict.fromkeys(row["inputs"] for row in rows):
        chosen = [row for row in rows if row["inputs"] == input_set]
        block = summarise([row for row in chosen if not row["clean"]])["overall"]
        clean = [row for row in chosen if row["clean"]]
        block["clean_scans"] = len(clean)
        block["false_positive_per_clean_scan"] = mean([float(row["false_positive"]) for row in clean])
        block["vertebral_body_dice"] = mean([row["body_dice"] for row in chosen])
        block.pop("spinal_canal_dice", None)
        out[input_set] = block
    return out


def summarise(per_case: List[Dict[str, Any]]) -> Dict[str, Any]:
    def block(rows: List[Dict[str, Any]]) -> Dict[str, Any]:
        lesions = [lesion for row in rows for lesion in row["lesions"]]
        large = [lesion for lesion in lesions if lesion["diameter_mm"] >= LARGE_LESION_MM]
        with_lesions = [row for row in rows if row["lesions"]]
        return {
            "cases": len(rows),
            "cases_with_lesions": len(with_lesions),
            "lesions": len(lesions),
            "lesions_ge_5mm": len(large),
            "lesion_dice": mean([row["lesion_dice"] for row in with_lesions]),
            "lesion_dice_per_lesion": mean([lesion["dice"] for lesion in lesions]),
            "lesion_sensitivity": mean([float(lesion["detected"]) for lesion in lesions]),
            "lesion_sensitivity_ge_5mm": mean([float(lesion["detected"]) for lesion in large]),
            "false_positive_per_case": mean([float(row["false_positive"]) for row in rows]),
            "false_positive_ge_5mm_per_case": mean([float(row["false_positive_large"]) for row in rows]),
            "vertebral_body_dice": mean([row["body_dice"] for row in rows]),
            "spinal_canal_dice": mean([row["canal_dice"] for row in rows]),
        }

    summary = {"overall": block(per_case)}
    for contrast in ("standard", "randomized"):
        summary[contrast] = block([row for row in per_case if row["contrast"] == contrast])
    by_type = {}
    for kind in ("lytic", "sclerotic", "mixed"):
        lesions = [lesion for row in per_case for lesion in row["lesions"] if lesion["type"] == kind]
        by_type[kind] = {"lesions": len(lesions), "sensitivity": mean([float(x["detected"]) for x in lesions]),
                         "dice_per_lesion": mean([x["dice"] for x in lesions])}
    summary["by_type"] = by_type
    sequences = {"all": {"cases": len(per_case), "lesion_dice": summary["overall"]["lesion_dice"],
                         "body_dice": summary["overall"]["vertebral_body_dice"]}}
    for name in SEQUENCE_SETS:
        rows = [row for row in per_case if name in row["by_sequences"]]
        if rows:
            sequences[name] = {
                "cases": len(rows),
                "lesion_dice": mean([row["by_sequences"][name]["lesion_dice"] for row in rows if row["lesions"]]),
                "body_dice": mean([row["by_sequences"][name]["body_dice"] for row in rows]),
            }
    summary["by_sequences"] = sequences
    look = {}
    for key in ("haemangioma", "focal_fat", "modic"):
        total = sum(row["look_alikes"][key][0] for row in per_case)
        flagged = sum(row["look_alikes"][key][1] for row in per_case)
        look[key] = {"count": total, "called_metastasis": flagged,
                     "false_positive_rate": (flagged / total) if total else None}
    summary["look_alikes"] = look
    return summary


def validate_real(card: ModelCard, model: torch.nn.Module, folder: Path) -> Dict[str, Any]:
    results = {}
    for name, sequence in REAL_SCANS:
        path = folder / name
        if not path.is_file():
            continue
        prediction = segment({sequence: read_image(path)}, card, model)
        _, count = ndimage.label(prediction == ModelLabel.METASTASIS, structure=CONNECTIVITY)
        results[name] = {"given_as": sequence, "false_positive_lesions": int(count),
                         "metastasis_voxels": int((prediction == ModelLabel.METASTASIS).sum())}
    return results


def fmt(value: Optional[float], percent: bool = True) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:.1f} %" if percent else f"{value:.2f}"


def anatomy_table(anatomy: Dict[str, Any], scans: int, seeds: int) -> List[str]:
    lines = [
        "## Real anatomy with simulated lesions (validation split: never trained on, never used to choose)",
        "",
        f"{scans} real scans of the fixed validation split (VB2 sagittal T2, VB3 water-fat), each with {seeds} "
        "drawn-in lesion sets and once clean; generated T1 and STIR are converted from the real scan. The lesions "
        "are simulated: **no real metastasis was measured**. Targets: lesion Dice ≥ 80 %, sensitivity ≥ 90 % "
        "(≥ 5 mm), ≤ 0.5 false positives per case and per clean scan, body Dice ≥ 90 %.",
        "",
        "| inputs | lesions | lesion Dice | sensitivity | sensitivity ≥ 5 mm | FP / case | FP / clean scan "
        "| body Dice |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, b in anatomy.items():
        lines.append(f"| {key} | {b['lesions']} | {fmt(b['lesion_dice'])} | {fmt(b['lesion_sensitivity'])} | "
                     f"{fmt(b['lesion_sensitivity_ge_5mm'])} | {fmt(b['false_positive_per_case'], False)} | "
                     f"{fmt(b['false_positive_per_clean_scan'], False)} | {fmt(b['vertebral_body_dice'])} |")
    return lines + [""]


def write_table(summary: Dict[str, Any], real: Dict[str, Any], card: ModelCard, cases: int, path: Path) -> None:
    overall = summary["overall"]
    lines = [
        f"# Validation of {card.name} {card.version}",
        "",
        f"**Our numbers are on synthetic phantom data** ({cases} cases, seeds {VALIDATION_SEED_START}–"
        f"{VALIDATION_SEED_START + cases - 1}, never used in training; half ordinary, half domain-randomised "
        "contrast), plus false positives on healthy real scans. " + PAPERS,
        "",
        "Post-processing (the card's): "
        + ", ".join(f"`{k}` = {v}" for k, v in dataclasses.asdict(card.postprocessing).items()) + ".",
        "",
        "| metric | ours (synthetic) | target | Hille 2020 | Chen 2024 | Wang 2023 |",
        "|---|---|---|---|---|---|",
        f"| lesion Dice (mean per case with lesions) | {fmt(overall['lesion_dice'])} | ≥ 85 % | ≤ 77.6 % | 91.1 % "
        "| — |",
        f"| lesion-wise sensitivity, all | {fmt(overall['lesion_sensitivity'])} | — | ≤ 78.9 % | 91.1 % (recall) | — |",
        f"| lesion-wise sensitivity, ≥ 5 mm | {fmt(overall['lesion_sensitivity_ge_5mm'])} | ≥ 90 % | — | — | — |",
        f"| false-positive lesions per case | {fmt(overall['false_positive_per_case'], False)} | ≤ 0.5 | — | — | — |",
        f"| false-positive lesions ≥ 5 mm per case | {fmt(overall['false_positive_ge_5mm_per_case'], False)} "
        "| ≤ 0.5 | — | — | — |",
        f"| vertebral body Dice | {fmt(overall['vertebral_body_dice'])} | ≥ 90 % | — | — | — |",
        f"| spinal canal Dice | {fmt(overall['spinal_canal_dice'])} | — | — | — | — |",
        "| pixel accuracy | not measured | — | — | — | 98 % |",
        "",
        "## By rendering",
        "",
        "| rendering | cases | lesions | lesion Dice | sensitivity | sensitivity ≥ 5 mm | FP / case | body Dice "
        "| canal Dice |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key in ("standard", "randomized"):
        b = summary[key]
        lines.append(f"| {key} | {b['cases']} | {b['lesions']} | {fmt(b['lesion_dice'])} | "
                     f"{fmt(b['lesion_sensitivity'])} | {fmt(b['lesion_sensitivity_ge_5mm'])} | "
                     f"{fmt(b['false_positive_per_case'], False)} | {fmt(b['vertebral_body_dice'])} | "
                     f"{fmt(b['spinal_canal_dice'])} |")
    lines += ["", "## By input sequences (missing sequences zero-filled)", "",
              "| sequences | cases | lesion Dice | body Dice |", "|---|---|---|---|"]
    for key, b in summary["by_sequences"].items():
        lines.append(f"| {key} | {b['cases']} | {fmt(b['lesion_dice'])} | {fmt(b['body_dice'])} |")
    lines += ["", "## By lesion type", "", "| type | lesions | sensitivity | Dice per lesion |", "|---|---|---|---|"]
    for key, b in summary["by_type"].items():
        lines.append(f"| {key} | {b['lesions']} | {fmt(b['sensitivity'])} | {fmt(b['dice_per_lesion'])} |")
    lines += ["", "## Look-alikes (never metastases)", "", "| look-alike | count | called metastasis | "
              "false-positive rate |", "|---|---|---|---|"]
    for key, b in summary["look_alikes"].items():
        lines.append(f"| {key} | {b['count']} | {b['called_metastasis']} | {fmt(b['false_positive_rate'])} |")
    lines += ["", "## Healthy real scans (no metastasis in any; target ≤ 1 false-positive lesion per scan)", "",
              "| scan | given as | false-positive lesions |", "|---|---|---|"]
    for key, b in real.items():
        lines.append(f"| {key} | {b['given_as']} | {b['false_positive_lesions']} |")
    if not real:
        lines.append("| (real scans not found) | | |")
    if summary.get("real_anatomy"):
        lines += [""] + anatomy_table(summary["real_anatomy"], summary["real_anatomy_scans"],
                                      summary["real_anatomy_seeds"])
    path.write_text("\n".join(lines) + "\n")


def write_picture(pictures: List[Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    colours = ListedColormap([(0, 0, 0, 0), (0.9, 0.2, 0.2, 0.7), (0.2, 0.6, 0.9, 0.45), (0.3, 0.85, 0.3, 0.45)])
    figure, axes = plt.subplots(len(pictures), 3, figsize=(10, 3.6 * max(1, len(pictures))), squeeze=False)
    for row, (case, target, prediction) in enumerate(pictures):
        # Sagittal slices: reorient to LPS, where the last numpy axis runs left-right.
        def sagittal(array_or_image, grid=case.lesions):
            image = array_or_image
            if isinstance(array_or_image, np.ndarray):
                image = sitk.GetImageFromArray(array_or_image)
                image.CopyInformation(grid)
            oriented = reorient(image, "LPS")
            return sitk.GetArrayFromImage(oriented), oriented.GetSpacing()

        truth, spacing = sagittal(target)
        predicted, _ = sagittal(prediction)
        t1, _ = sagittal(case.images["t1"])
        stir, _ = sagittal(case.images["stir"])
        column = int(np.argmax((truth == 1).sum(axis=(0, 1))))  # the sagittal slice with most lesion
        aspect = spacing[2] / spacing[1]
        for axis, (title, image, labels) in zip(axes[row], (
            (f"T1, seed {case.info['seed']}" + (f", {case.info['anatomy_from']}" if "anatomy_from" in case.info
                                                else ""), t1[:, :, column], None),
            ("truth on STIR", stir[:, :, column], truth[:, :, column]),
            ("prediction on STIR", stir[:, :, column], predicted[:, :, column]),
        )):
            axis.imshow(image, cmap="gray", origin="lower", aspect=aspect)
            if labels is not None:
                axis.imshow(labels, cmap=colours, vmin=0, vmax=3, origin="lower", aspect=aspect,
                            interpolation="nearest")
            axis.set_title(title, fontsize=9)
            axis.axis("off")
    figure.suptitle("red: metastasis, blue: vertebral body, green: spinal canal (validation cases: synthetic, or "
                    "real anatomy with simulated lesions)", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=60)
    parser.add_argument("--subset-cases", type=int, default=20,
                        help="cases also segmented with T1, T2 or STIR alone (default 20)")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--model", default=None, help="catalog model name (default: the default model)")
    parser.add_argument("--weights", type=Path, help="weights of a model not in the catalog (with --card)")
    parser.add_argument("--card", type=Path, help="model card for --weights")
    parser.add_argument("--min-lesion-probability", type=float, metavar="P",
                        help="override the card's min_lesion_mean_probability (to report other operating points)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--anatomy", type=Path, help="folder of imported real cases (spinemetseg dataset import-vb): "
                        "validates on the fixed split's validation scans with drawn-in lesions")
    parser.add_argument("--anatomy-seeds", type=int, default=2, help="lesion sets drawn into each scan (default 2)")
    parser.add_argument("--real", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data"
                        / "real", help="folder of healthy real scans")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.output.mkdir(parents=True, exist_ok=True)
    try:
        loaded = load_model(args.model, weights=args.weights, card=args.card)
    except SpineMetSegError as error:
        parser.error(str(error))
    card, model = loaded.card, loaded.network
    card = with_min_lesion_probability(card, args.min_lesion_probability)
    pictures: List[Any] = []
    synthetic = validate_synthetic(card, model, args.cases, min(args.subset_cases, args.cases), pictures)
    summary = summarise(synthetic["cases"])
    real = validate_real(card, model, args.real)
    summary["real_scans"] = real
    summary["real_false_positive_per_scan"] = mean([r["false_positive_lesions"] for r in real.values()])
    anatomy_pictures: List[Any] = []
    if args.anatomy:
        anatomy = validate_anatomy(card, model, args.anatomy, args.anatomy_seeds, anatomy_pictures)
        summary["real_anatomy"] = summarise_anatomy(anatomy["cases"])
        summary["real_anatomy_scans"] = len({row["scan"] for row in anatomy["cases"]})
        summary["real_anatomy_seeds"] = args.anatomy_seeds
        synthetic["cases"] += anatomy["cases"]
        synthetic["seconds"] += anatomy["seconds"]
    summary["seconds"] = round(synthetic["seconds"], 1)
    summary["note"] = "synthetic phantom data (SpineMetSegLib.data.phantom), not clinical MRI"
    (args.output / "validation.json").write_text(json.dumps({"summary": summary, "cases": synthetic["cases"]},
                                                            indent=1, default=str))
    write_table(summary, real, card, args.cases, args.output / "validation.md")
    if pictures:
        write_picture(pictures, args.output / "validation.png")
    if anatomy_pictures:
        write_picture(anatomy_pictures, args.output / "validation_real_anatomy.png")
    print((args.output / "validation.md").read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
