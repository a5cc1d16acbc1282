"""Speed of ``metrics.compute_metrics`` on a 512x512x200 pair against full-volume baselines, in one run.

A synthetic reference with three labels (8 lesions, 6 vertebral bodies, a canal along the whole volume) and a
prediction that shifts, grows, misses and adds lesions. Timed (wall clock, best of ``--repeats``):

- ours: ``compute_metrics`` for all three labels (Dice ... HD95, ASSD, volumes, lesion detection);
- SimpleITK: ``LabelOverlapMeasuresImageFilter`` and, for HD95/ASSD, ``SignedMaurerDistanceMapImageFilter``
  over the whole volume sampled at ``LabelContour`` voxels (a common hand-written approach);
- MONAI: ``DiceMetric``, ``HausdorffDistanceMetric(percentile=95)`` and ``SurfaceDistanceMetric(symmetric=True)``
  on one-hot tensors of the whole volume (MONAI crops to the foreground itself).

The MONAI column also shows the largest HD95/ASSD difference against ours (same definitions: should be ~0).

Usage::

    python benchmarks/metrics.py [--repeats 2] [--size 512 512 200]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import SimpleITK as sitk
import torch

from SpineMetSegLib.analysis import metrics

SPACING_IJK = (0.6, 0.6, 1.5)
LABELS = (1, 2, 3)


def ellipsoid(array: np.ndarray, centre, radii_mm, value: int) -> None:
    """Paint an ellipsoid (centre in voxels k, j, i; radii in mm) touching only its own box."""
    spacing = np.array(SPACING_IJK[::-1])
    radii = np.array(radii_mm) / spacing
    low = np.maximum(np.floor(np.array(centre) - radii).astype(int), 0)
    high = np.minimum(np.ceil(np.array(centre) + radii).astype(int) + 1, array.shape)
    box = tuple(slice(a, b) for a, b in zip(low, high))
    grid = np.ogrid[box]
    inside = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii)) <= 1
    array[box][inside] = value


def make_pair(size_ijk, seed: int = 0):
    rng = np.random.default_rng(seed)
    shape = tuple(reversed(size_ijk))
    reference = np.zeros(shape, dtype=np.uint8)
    prediction = np.zeros(shape, dtype=np.uint8)
    k, j, i = shape
    canal = (slice(None), slice(int(j * 0.62), int(j * 0.70)), slice(int(i * 0.45), int(i * 0.55)))
    reference[canal] = 3
    prediction[(slice(None), slice(int(j * 0.62) + 1, int(j * 0.70) + 2), canal[2])] = 3
    for level in range(6):
        centre = ((level + 0.5) * k / 6, j * 0.45, i * 0.5)
        ellipsoid(reference, centre, (9.0, 14.0, 20.0), 2)
        ellipsoid(prediction, (centre[0] + 1, centre[1] - 2, centre[2] + 1), (9.5, 13.5, 20.0), 2)
    for _ in range(8):
        centre = (rng.uniform(10, k - 10), j * 0.45 + rng.uniform(-10, 10), i * 0.5 + rng.uniform(-20, 20))
        radius = rng.uniform(3.0, 9.0)
        ellipsoid(reference, centre, (radius,) * 3, 1)
        if rng.random() < 0.85:  # most lesions found, a little off
            ellipsoid(prediction, (centre[0] + 1, centre[1] + 1, centre[2]), (radius * 0.9,) * 3, 1)
    for _ in range(3):  # false positives anywhere
        ellipsoid(prediction, tuple(rng.uniform(20, s - 20) for s in shape), (3.0, 3.0, 3.0), 1)
    images = []
    for array in (reference, prediction):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(SPACING_IJK)
        image.SetDirection((0, 0, -1, 1, 0, 0, 0, -1, 0))  # sagittal-like, not identity
        images.append(image)
    return images


def ours(reference: sitk.Image, prediction: sitk.Image) -> dict:
    result = metrics.compute_metrics(reference, prediction, labels=LABELS)
    return {label: (result[str(label)]["hd95_mm"], result[str(label)]["assd_mm"]) for label in LABELS}


def simpleitk_full_volume(reference: sitk.Image, prediction: sitk.Image) -> dict:
    found = {}
    for label in LABELS:
        truth, guess = reference == label, prediction == label
        overlap = sitk.LabelOverlapMeasuresImageFilter()
        overlap.Execute(guess, truth)
        one_way = []
        for source, target in ((truth, guess), (guess, truth)):
            distance = sitk.Abs(sitk.SignedMaurerDistanceMap(target, squaredDistance=False, useImageSpacing=True))
            contour = sitk.GetArrayFromImage(sitk.LabelContour(source)) > 0
            one_way.append(sitk.GetArrayFromImage(distance)[contour])
        found[label] = (
            max(np.percentile(d, 95) for d in one_way),
            float(np.concatenate(one_way).mean()),
        )
    return found


def monai_full_volume(reference: sitk.Image, prediction: sitk.Image) -> dict:
    from monai.metrics import DiceMetric, HausdorffDistanceMetric, SurfaceDistanceMetric

    def one_hot(image):
        array = torch.from_numpy(sitk.GetArrayFromImage(image).astype(np.int64))
        return torch.stack([(array == label) for label in LABELS]).float()[None]

    truth, guess = one_hot(reference), one_hot(prediction)
    spacing = SPACING_IJK[::-1]
    DiceMetric(include_background=True)(guess, truth)
    hd = HausdorffDistanceMetric(include_background=True, percentile=95, reduction="none")(
        guess, truth, spacing=spacing
    )
    asd = SurfaceDistanceMetric(include_background=True, symmetric=True, reduction="none")(
        guess, truth, spacing=spacing
    )
    return {label: (float(hd[0, n]), float(asd[0, n])) for n, label in enumerate(LABELS)}


def best_time(function, repeats: int, *args):
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function(*args)
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--size", type=int, nargs=3, default=(512, 512, 200), metavar=("I", "J", "K"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    reference, prediction = make_pair(args.size)
    print(f"pair {tuple(args.size)} voxels, spacing {SPACING_IJK} mm, built in {time.perf_counter() - start:.1f} s")
    rows = []
    ours_time, ours_values = best_time(ours, args.repeats, reference, prediction)
    for name, function in (("SimpleITK full volume", simpleitk_full_volume), ("MONAI full volume", monai_full_volume)):
        seconds, values = best_time(function, args.repeats, reference, prediction)
        difference = max(
            abs(values[label][n] - ours_values[label][n]) for label in LABELS for n in (0, 1)
        )  # fmt: skip
        rows.append((name, seconds, difference))
    print(f"{'method':<24}{'seconds':>9}{'x ours':>9}{'max |dHD95|,|dASSD| mm':>26}")
    print(f"{'ours (compute_metrics)':<24}{ours_time:>9.2f}{1.0:>9.1f}{'-':>26}")
    for name, seconds, difference in rows:
        print(f"{name:<24}{seconds:>9.2f}{seconds / ours_time:>9.1f}{difference:>26.4f}")
    for label in LABELS:
        hd95, assd = ours_values[label]
        print(f"label {label}: HD95 {hd95:.3f} mm, ASSD {assd:.3f} mm")


if __name__ == "__main__":
    main()
