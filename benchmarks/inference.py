"""Speed, memory and accuracy of the inference pipeline against a naive sliding window, on a clinical-sized case.

Usage::

    python benchmarks/inference.py                         # default model, 3 repeats, a table on stdout
    python benchmarks/inference.py --repeats 5 --json out/inference.json --threads 2
    python benchmarks/inference.py --weights w.safetensors --card card.json

The case: phantom seed ``--seed`` with the ``sagittal2d`` acquisition, resampled onto a clinical sagittal grid
(512 x 512 x 18 voxels of 0.6 x 0.6 x 4 mm, the phantom's own direction and centre), T1 + T2 + STIR.

Two methods with the same weights, timed from images in memory to the label map on the input grid (reading
files and loading the model are left out; they are the same for both):

- ``ours``: ``inference.segment_images``: one separable interpolation per input straight onto the model grid
  (no DICOMOrient pass), crop to the body (widened to one window), one window per slice when the cropped slice
  is at most 1.5 times the card's patch (else Gaussian blending with overlap 0.25), batches of slices,
  ``torch.inference_mode``, bfloat16 where the CPU has it natively (mixed precision and channels-last on CUDA),
  labels back on the input grid interpolating only near label boundaries (``regrid``), lesion clean-up in the
  box around the lesions;
- ``baseline``: the straightforward pipeline with the same card steps (``baseline_segment``): DICOMOrient and
  resample, the same normalisation, no crop, MONAI's sliding window over the whole resampled volume (overlap 0.5,
  constant blending, batch 1, float32, ``torch.no_grad``), each class probability resampled onto the input grid,
  argmax, the same post-processing.

Each run is a process of its own (so its peak memory, ``VmHWM``, is its own): one untimed warm-up, one timed run;
``--repeats`` rounds alternate the two methods (the machine's load changes hit both alike); medians are reported.
Dice is of label 1 against the phantom's lesions (and of the vertebral body and canal against the phantom's
anatomy); the two label maps are also compared with each other.
``--json`` writes ``ours_s``, ``baseline_s``, ``speedup``, ``ours_dice``, ``baseline_dice``, ``peak_rss_mb``
(ours) and more.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
import SimpleITK as sitk

from SpineMetSegLib.models.modelcard import ModelCard

CLINICAL_SIZE = (512, 512, 18)  # in-plane, in-plane, slices
CLINICAL_SPACING = (0.6, 0.6, 4.0)
SEQUENCES = ("t1", "t2", "stir")
BASELINE_OVERLAP = 0.5
METHODS = ("ours", "baseline")
TARGET_SPEEDUP = 3.0
TARGET_DICE_GAP = 0.01
TARGET_PEAK_RSS_MB = 3000.0


def clinical_grid(image: sitk.Image) -> sitk.Image:
    """A blank image on the clinical sagittal grid with ``image``'s direction and physical centre.

    The phantom's slice axis (its largest spacing) gets the 18 slices of 4 mm; the other two 512 of 0.6 mm.
    """
    slice_axis = int(np.argmax(image.GetSpacing()))
    in_plane = [axis for axis in range(3) if axis != slice_axis]
    size, spacing = [0] * 3, [0.0] * 3
    size[slice_axis], spacing[slice_axis] = CLINICAL_SIZE[2], CLINICAL_SPACING[2]
    for axis, n, s in zip(in_plane, CLINICAL_SIZE[:2], CLINICAL_SPACING[:2]):
        size[axis], spacing[axis] = n, s
    centre = np.array(image.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in image.GetSize()]))
    direction = np.array(image.GetDirection()).reshape(3, 3)
    origin = centre - direction @ ((np.array(size) - 1) / 2 * np.array(spacing))
    grid = sitk.Image(size, sitk.sitkUInt8)
    grid.SetSpacing(spacing)
    grid.SetDirection(image.GetDirection())
    grid.SetOrigin([float(v) for v in origin])
    return grid


def write_case(seed: int, folder: Path) -> Dict[str, Any]:
    """Generate the phantom case, bring it onto the clinical grid and write it (uncompressed NRRD)."""
    from SpineMetSegLib.data.phantom import generate_case, model_target

    case = generate_case(seed, acquisition="sagittal2d")
    native = case.images["t1"]
    grid = clinical_grid(native)
    for name in SEQUENCES:
        image = sitk.Resample(case.images[name], grid, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        sitk.WriteImage(image, str(folder / f"{name}.nrrd"))
    truth = sitk.Resample(model_target(case), grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    sitk.WriteImage(truth, str(folder / "truth.nrrd"))
    return {"native_size": list(native.GetSize()), "native_spacing": list(native.GetSpacing()),
            "size": list(grid.GetSize()), "spacing": list(grid.GetSpacing())}


def load_model(args: argparse.Namespace) -> Tuple[ModelCard, Any]:
    from SpineMetSegLib.models import loader

    if args.weights:
        loaded = loader.load_model(weights=args.weights, card=args.card)
    else:
        loaded = loader.load_model(args.model)
    return loaded.card, loaded.network


def baseline_segment(images: Dict[str, sitk.Image], card: ModelCard, model: Any, timings: Dict[str, float]
                     ) -> sitk.Image:
    """The straightforward way, same weights and card: every step done plainly on the whole volume.

    Other inputs resampled onto the first, ``sitk.DICOMOrient`` and ``sitk.Resample`` to the card's grid, the card's
    normalisation (the same function as ours), no crop; MONAI's sliding window over the whole volume (a 2D model
    through a squeeze wrapper, window (1, h, w)), overlap 0.5, constant blending, batch 1, float32,
    ``torch.no_grad``; each class probability ``sitk.Resample``-d (linear) onto the input grid, ``np.argmax``; the
    same post-processing as ours. ``timings`` receives seconds per stage.
    """
    import torch
    from monai.inferers import sliding_window_inference

    from SpineMetSegLib.images import imageio
    from SpineMetSegLib.inference import preprocessing
    from SpineMetSegLib.inference.postprocessing import card_options, clean_lesions
    from SpineMetSegLib.labels import ModelLabel

    started = time.perf_counter()
    reference = next(iter(images.values()))
    oriented = {
        name: sitk.DICOMOrient(imageio.resample_to(sitk.Cast(image, sitk.sitkFloat32), reference), card.orientation)
        for name, image in images.items()
    }
    grid = preprocessing.target_grid(imageio.Geometry.of(next(iter(oriented.values()))), card.spacing_mm)
    channels = []
    for name in card.inputs:
        if name not in oriented:
            channels.append(np.zeros(grid.size, dtype=np.float32))
            continue
        array = preprocessing.image_to_array(imageio.resample_onto(oriented[name], grid, pixel_type=sitk.sitkFloat32))
        statistics_ = preprocessing.intensity_statistics(array, card.normalization)
        channels.append(preprocessing.normalise(array, statistics_))
    volume = torch.from_numpy(np.stack(channels))[None]
    timings["preprocess"] = time.perf_counter() - started

    started = time.perf_counter()
    roi = list(card.patch_size)
    axis = card.network.slice_axis
    if card.network.dimensions == 2:
        roi.insert(axis, 1)

    def predictor(windows: torch.Tensor) -> torch.Tensor:
        if card.network.dimensions == 2:
            return torch.softmax(model(windows.squeeze(2 + axis)), dim=1).unsqueeze(2 + axis)
        return torch.softmax(model(windows), dim=1)

    with torch.no_grad():
        probabilities = sliding_window_inference(volume, roi, 1, predictor, overlap=BASELINE_OVERLAP)[0].numpy()
    timings["inference"] = time.perf_counter() - started

    started = time.perf_counter()
    on_input = []
    for channel in probabilities:
        image = sitk.GetImageFromArray(np.ascontiguousarray(channel.transpose(2, 1, 0)))
        grid.apply_to(image)
        on_input.append(sitk.GetArrayFromImage(sitk.Resample(image, reference, sitk.Transform(), sitk.sitkLinear)))
    on_input = np.stack(on_input)
    labels = np.argmax(on_input, axis=0).astype(np.uint8)
    lesion_probability = on_input[ModelLabel.METASTASIS].copy()
    on_input[ModelLabel.METASTASIS] = -1.0
    labels, _ = clean_lesions(
        labels,
        np.argmax(on_input, axis=0).astype(np.uint8),
        voxel_volume_ml=float(np.prod(reference.GetSpacing())) / 1000.0,
        lesion_probability=lesion_probability,
        **card_options(card),
    )
    result = sitk.GetImageFromArray(labels)
    result.CopyInformation(reference)
    timings["postprocess"] = time.perf_counter() - started
    return result


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def agreement(folder: Path) -> Dict[str, float]:
    """How far our labels are from the baseline's: the share of equal voxels and Dice per label between them."""
    ours, baseline = (sitk.GetArrayFromImage(sitk.ReadImage(str(folder / f"labels-{m}.nrrd"))) for m in METHODS)
    result = {"equal_voxels": float(np.mean(ours == baseline))}
    for value, name in ((1, "metastasis"), (2, "vertebral_body"), (3, "spinal_canal")):
        result[f"{name}_dice"] = dice(ours == value, baseline == value)
    return result


def peak_rss_mb() -> float:
    """The process's peak resident memory (VmHWM), in MB."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(args: argparse.Namespace) -> Dict[str, Any]:
    """One method in this process: warm-up, timed repeats, Dice, peak memory."""
    import torch

    from SpineMetSegLib import inference
    from SpineMetSegLib.labels import ModelLabel

    if args.threads:
        torch.set_num_threads(args.threads)
    folder = Path(args.case)
    images = {name: sitk.ReadImage(str(folder / f"{name}.nrrd")) for name in SEQUENCES}
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "truth.nrrd")))
    card, model = load_model(args)

    def run(timings: Dict[str, float]) -> sitk.Image:
        if args.worker == "ours":
            result = inference.segment_images(images, card, model, device=args.device)
            timings.update(result.timings)
            return result.labels
        return baseline_segment(images, card, model, timings)

    run({})
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    seconds, stages = [], []
    for _ in range(args.repeats):
        started = time.perf_counter()
        stages.append({})
        labels = run(stages[-1])
        seconds.append(time.perf_counter() - started)
    found = sitk.GetArrayFromImage(labels)
    sitk.WriteImage(labels, str(folder / f"labels-{args.worker}.nrrd"))
    return {
        "method": args.worker,
        "seconds": seconds,
        "median_s": statistics.median(seconds),
        "stages_s": {stage: statistics.median(run[stage] for run in stages) for stage in stages[0]},
        "dice": dice(found == ModelLabel.METASTASIS, truth == ModelLabel.METASTASIS),
        "vertebral_body_dice": dice(found == ModelLabel.VERTEBRAL_BODY, truth == ModelLabel.VERTEBRAL_BODY),
        "spinal_canal_dice": dice(found == ModelLabel.SPINAL_CANAL, truth == ModelLabel.SPINAL_CANAL),
        "peak_rss_mb": peak_rss_mb(),
        "gpu_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None,
        "threads": torch.get_num_threads(),
        "model": f"{card.name} {card.version}",
    }


def run_worker(method: str, case: Path, args: argparse.Namespace) -> Dict[str, Any]:
    """One process: a warm-up run and one timed run of ``method``."""
    command = [sys.executable, __file__, "--worker", method, "--case", str(case), "--repeats", "1",
               "--device", args.device]
    for option in ("threads", "model", "weights", "card"):
        if getattr(args, option):
            command += [f"--{option}", str(getattr(args, option))]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{method} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def pooled_dice(seeds: List[int], args: argparse.Namespace) -> Dict[str, Dict[str, float]]:
    """Dice per label of each method pooled over more cases (voxel counts summed): steadier than one case."""
    import torch

    from SpineMetSegLib import inference

    if args.threads:
        torch.set_num_threads(args.threads)
    card, model = load_model(args)
    counts = {method: np.zeros((3, 3)) for method in METHODS}  # label 1..3 x (overlap, found, truth)
    for seed in seeds:
        with tempfile.TemporaryDirectory(prefix="spinemetseg-bench-") as folder:
            write_case(seed, Path(folder))
            images = {name: sitk.ReadImage(str(Path(folder) / f"{name}.nrrd")) for name in SEQUENCES}
            truth = sitk.GetArrayFromImage(sitk.ReadImage(str(Path(folder) / "truth.nrrd")))
        labels = {
            "ours": inference.segment_images(images, card, model, device=args.device).labels,
            "baseline": baseline_segment(images, card, model, {}),
        }
        for method, image in labels.items():
            found = sitk.GetArrayFromImage(image)
            for row, value in enumerate((1, 2, 3)):
                a, b = found == value, truth == value
                counts[method][row] += (np.logical_and(a, b).sum(), a.sum(), b.sum())
    names = ("metastasis", "vertebral_body", "spinal_canal")
    return {
        method: {name: float(2 * c[0] / max(1.0, c[1] + c[2])) for name, c in zip(names, counts[method])}
        for method in METHODS
    }


def combine(runs: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The rounds of one method as one result: all timings, their medians, the largest memory peaks."""
    result = dict(runs[-1])
    result["seconds"] = [seconds for run in runs for seconds in run["seconds"]]
    result["median_s"] = statistics.median(result["seconds"])
    stages = runs[0]["stages_s"]
    result["stages_s"] = {stage: statistics.median(run["stages_s"][stage] for run in runs) for stage in stages}
    result["peak_rss_mb"] = max(run["peak_rss_mb"] for run in runs)
    gpu = [run["gpu_peak_mb"] for run in runs if run["gpu_peak_mb"] is not None]
    result["gpu_peak_mb"] = max(gpu) if gpu else None
    return result


def table(results: Dict[str, Any]) -> str:
    rows = [("method", "median s", "runs s", "median s per stage", "Dice (lesion/body/canal)", "peak RSS MB",
             "GPU peak MB")]
    for method in METHODS:
        r = results[method]
        gpu = "-" if r["gpu_peak_mb"] is None else f"{r['gpu_peak_mb']:.0f}"
        stages = " ".join(f"{stage} {seconds:.2f}" for stage, seconds in r["stages_s"].items())
        scores = f"{r['dice']:.4f} / {r['vertebral_body_dice']:.4f} / {r['spinal_canal_dice']:.4f}"
        rows.append((method, f"{r['median_s']:.2f}", " ".join(f"{s:.2f}" for s in r["seconds"]), stages, scores,
                     f"{r['peak_rss_mb']:.0f}", gpu))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="phantom seed")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, help="CPU threads for both methods (default: torch's)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", help="catalog model (default: the default model)")
    parser.add_argument("--weights", help="weights file (with --card) instead of a catalog model")
    parser.add_argument("--card")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--dice-seeds", type=int, nargs="*", default=[], metavar="SEED",
                        help="also pool Dice over these phantom seeds (untimed), e.g. --dice-seeds 1 2 3 4 5 6")
    parser.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    with tempfile.TemporaryDirectory(prefix="spinemetseg-bench-") as folder:
        case = write_case(args.seed, Path(folder))
        # Rounds alternate the methods so that a change in the machine's load hits both alike.
        rounds = [{method: run_worker(method, Path(folder), args) for method in METHODS} for _ in range(args.repeats)]
        results = {method: combine([r[method] for r in rounds]) for method in METHODS}
        between = agreement(Path(folder))
    ours, baseline = results["ours"], results["baseline"]
    summary = {
        "ours_s": ours["median_s"],
        "baseline_s": baseline["median_s"],
        "speedup": baseline["median_s"] / ours["median_s"],
        "ours_dice": ours["dice"],
        "baseline_dice": baseline["dice"],
        "peak_rss_mb": ours["peak_rss_mb"],
        "baseline_peak_rss_mb": baseline["peak_rss_mb"],
        "ours_vertebral_body_dice": ours["vertebral_body_dice"],
        "baseline_vertebral_body_dice": baseline["vertebral_body_dice"],
        "ours_spinal_canal_dice": ours["spinal_canal_dice"],
        "baseline_spinal_canal_dice": baseline["spinal_canal_dice"],
        "ours_vs_baseline": between,
        "ours_stages_s": ours["stages_s"],
        "baseline_stages_s": baseline["stages_s"],
        "ours_gpu_peak_mb": ours["gpu_peak_mb"],
        "baseline_gpu_peak_mb": baseline["gpu_peak_mb"],
        "repeats": args.repeats,
        "threads": ours["threads"],
        "model": ours["model"],
        "case": {"seed": args.seed, **case},
    }
    print(f"case: phantom seed {args.seed}, sagittal2d on {case['size']} voxels of {case['spacing']} mm, "
          f"T1+T2+STIR; model {ours['model']}; {ours['threads']} CPU thread(s)")
    print(table(results))
    gap = abs(summary["ours_dice"] - summary["baseline_dice"])
    print(f"speedup {summary['speedup']:.2f}x (target >= {TARGET_SPEEDUP}), Dice gap {gap:.4f} "
          f"(target <= {TARGET_DICE_GAP}), peak RSS {summary['peak_rss_mb']:.0f} MB "
          f"(target < {TARGET_PEAK_RSS_MB:.0f})")
    print("ours against the baseline: " + ", ".join(f"{key} {value:.4f}" for key, value in between.items()))
    if args.dice_seeds:
        summary["pooled_dice"] = pooled_dice(args.dice_seeds, args)
        summary["pooled_dice_seeds"] = args.dice_seeds
        for method, scores in summary["pooled_dice"].items():
            print(f"pooled Dice over seeds {args.dice_seeds}, {method}: "
                  + ", ".join(f"{name} {value:.4f}" for name, value in scores.items()))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
