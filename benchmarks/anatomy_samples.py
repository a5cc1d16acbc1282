"""Real-anatomy training samples: the README pictures and the cost of one sample on one core.

Usage::

    python benchmarks/anatomy_samples.py --cases /work/cases --output Resources/Screenshots

Writes ``real_anatomy_samples.png`` (8 random training samples as ``spinemetseg train --anatomy`` makes them,
T1, T2 and STIR of each at the sagittal slice through its largest lesion) and ``real_anatomy_contrasts.png`` (one
validation scan with the same drawn-in lesions in its real sequence and in every generated sequence, standard and
randomised contrast). Then times, on one thread, one real-anatomy training sample (drawing, contrast conversion,
preprocessing, slicing: ``AnatomySampler.sample``) against one phantom training case (``synthetic_case``) measured
in the same run, and prints the table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import List, Optional

import numpy as np
import SimpleITK as sitk
import torch

from SpineMetSegLib.data.anatomy_case import generate_anatomy_case
from SpineMetSegLib.data.real_case import load_real_case
from SpineMetSegLib.data.split import load_split, training_folders
from SpineMetSegLib.models.catalog import load_catalog
from SpineMetSegLib.training.data import AnatomySampler, synthetic_case

SEQUENCES = ("t1", "t2", "stir")


def _sagittal(image: sitk.Image, lesions: sitk.Image) -> np.ndarray:
    """The sagittal slice with most lesion voxels (the middle one without lesions), superior up."""
    from SpineMetSegLib.images.imageio import reorient

    array = sitk.GetArrayFromImage(reorient(image, "LPS"))  # (S, P, L) in numpy order
    mask = sitk.GetArrayFromImage(reorient(lesions, "LPS")) > 0
    counts = mask.sum(axis=(0, 1))
    column = int(np.argmax(counts)) if counts.any() else array.shape[2] // 2
    return array[::-1, :, column], mask[::-1, :, column]


def _show(axis, image: sitk.Image, lesions: sitk.Image, title: str) -> None:
    picture, mask = _sagittal(image, lesions)
    low, high = np.percentile(picture, (0.5, 99.5))
    axis.imshow(picture, cmap="gray", vmin=low, vmax=high, interpolation="nearest")
    if mask.any():
        axis.contour(mask.astype(np.float32), levels=[0.5], colors="#ff3030", linewidths=0.7)
    axis.set_title(title, fontsize=7)
    axis.set_axis_off()


def samples_picture(folders: List[str], path: Path, count: int = 8, seed: int = 2026) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    figure, axes = plt.subplots(2, count // 2 * 3, figsize=(2.0 * count // 2 * 3, 5.4))
    cases = {}
    for index in range(count):
        folder = folders[int(rng.integers(len(folders)))]
        case = cases.setdefault(folder, load_real_case(folder))
        missing = [s for s in SEQUENCES if s not in case.sequences]
        contrast = "standard" if rng.random() < 0.65 else "randomized"
        drawn = generate_anatomy_case(case, int(rng.integers(1_000_000)), generate=missing, contrast=contrast)
        kinds = ", ".join(sorted({lesion["type"] for lesion in drawn.info["lesions"]})) or "no lesion"
        for j, sequence in enumerate(SEQUENCES):
            axis = axes[index // (count // 2), (index % (count // 2)) * 3 + j]
            how = "real" if drawn.info["sequences"][sequence] == "real" else contrast[:4] + "."
            _show(axis, drawn.images[sequence], drawn.lesions,
                  f"{case.name} {sequence.upper()} ({how})" + (f"\n{kinds}" if j == 0 else "\n"))
    figure.suptitle("8 random real-anatomy training samples: real healthy scans with simulated lesions (red), "
                    "missing sequences generated", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def contrasts_picture(folder: str, path: Path, seed: int = 5) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    case = load_real_case(folder)
    real = next(iter(case.sequences))
    figure, axes = plt.subplots(2, 4, figsize=(10, 5.6))
    for row, contrast in enumerate(("standard", "randomized")):
        drawn = generate_anatomy_case(case, seed, generate=SEQUENCES, contrast=contrast)
        for column, sequence in enumerate((real,) + SEQUENCES):
            label = "real" if drawn.info["sequences"][sequence] == "real" else f"generated, {contrast}"
            _show(axes[row, column], drawn.images[sequence], drawn.lesions, f"{sequence.upper()} ({label})")
    figure.suptitle(f"{case.name}: the same simulated lesions in the real scan and in generated T1, T2, STIR",
                    fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def timing(folders: List[str], repeats: int) -> None:
    torch.set_num_threads(1)
    card = load_catalog().get()
    sampler = AnatomySampler(folders[:4], card)
    for i in range(len(sampler.cases)):  # tissue clusters are computed once per scan, as in training
        sampler.sample(i, case_index=i)
    anatomy, phantom, drawing = [], [], []
    for i in range(repeats):
        case = sampler.cases[i % len(sampler.cases)]
        missing = [s for s in SEQUENCES if s not in case.sequences]
        started = time.perf_counter()
        generate_anatomy_case(case, 1000 + i, generate=missing, classes=sampler.tissue_classes_of(case))
        drawing.append(time.perf_counter() - started)
        started = time.perf_counter()
        sampler.sample(1000 + i)
        anatomy.append(time.perf_counter() - started)
        started = time.perf_counter()
        synthetic_case(1000 + i, "standard", card)
        phantom.append(time.perf_counter() - started)
    a, p, d = float(np.median(anatomy)), float(np.median(phantom)), float(np.median(drawing))
    print(f"| training sample (one thread, median of {repeats}) | seconds | ratio to phantom |")
    print("|---|---|---|")
    print(f"| phantom case (baseline: synthetic_case) | {p:.3f} | 1.00 |")
    print(f"| real anatomy, drawing only (generate_anatomy_case: lesions, look-alikes, missing sequences) | {d:.3f} "
          f"| {d / p:.2f} |")
    print(f"| real anatomy, whole sample (AnatomySampler.sample: draw, convert, preprocess, slice) | {a:.3f} | "
          f"{a / p:.2f} |")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=Path, required=True, help="folder of imported case folders")
    parser.add_argument("--output", type=Path, help="folder for the two pictures (none written without it)")
    parser.add_argument("--repeats", type=int, default=8)
    args = parser.parse_args(argv)
    folders = training_folders(str(args.cases))
    if args.output:
        args.output.mkdir(parents=True, exist_ok=True)
        samples_picture(folders, args.output / "real_anatomy_samples.png")
        contrasts_picture(str(args.cases / load_split().validation[0]), args.output / "real_anatomy_contrasts.png")
    timing(folders, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
