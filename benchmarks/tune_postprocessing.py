"""Choose a model card's ``min_lesion_mean_probability`` on synthetic tuning cases (never validation seeds).

Usage::

    python benchmarks/tune_postprocessing.py --output /tmp/tuning
    python benchmarks/tune_postprocessing.py --weights model.safetensors --card card.json --output /tmp/tuning

Tuning cases: phantom seeds ``TUNING_SEED_START + i`` for i < ``--cases`` (even ``i`` ordinary rendering, odd
``i`` domain-randomised), between the training seeds (below ``TRAINING_SEED_LIMIT``) and the validation seeds
(from ``VALIDATION_SEED_START``). Each case runs once through the shipped pipeline with the card's
post-processing but no probability rule, keeping the metastasis probability map; each candidate threshold then
removes the lesions whose mean probability is below it with ``postprocessing.clean_lesions``, and the
lesions are scored as ``validate_default.py`` scores them.

Rule: the threshold with the highest F1 for lesions of 5 mm and more, F1 = 2 TP / (2 TP + FN + FP), with FP
every false lesion (ties: the lower threshold). It weighs a missed lesion and a false one alike, as the targets
do (sensitivity >= 0.90 at <= 0.5 false positives per case); readers who would rather see more candidates lower
the threshold per run (``segment --min-lesion-probability``, the panel's *Lesion confidence*). The table also
shows the sensitivity-first choice (F1 with sensitivity at most ``MAX_SENSITIVITY_LOSS`` below no threshold).
The healthy real scans are reported, never used to choose. Writes ``tuning.md`` and ``tuning.json`` into ``--output``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import SimpleITK as sitk
import torch
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from validate_default import (  # noqa: E402
    CONNECTIVITY,
    LARGE_LESION_MM,
    REAL_SCANS,
    anatomy_inputs,
    lesion_analysis,
)

from SpineMetSegLib.cli.segment import with_min_lesion_probability  # noqa: E402
from SpineMetSegLib.data.phantom import generate_case  # noqa: E402
from SpineMetSegLib.errors import SpineMetSegError  # noqa: E402
from SpineMetSegLib.images.imageio import read_image  # noqa: E402
from SpineMetSegLib.inference import segment_images  # noqa: E402
from SpineMetSegLib.inference.postprocessing import clean_lesions  # noqa: E402
from SpineMetSegLib.models.loader import load_model  # noqa: E402
from SpineMetSegLib.models.modelcard import ModelCard
from SpineMetSegLib.training.data import TRAINING_SEED_LIMIT, VALIDATION_SEED_START  # noqa: E402

TUNING_SEED_START = 5_100_000
ANATOMY_TUNING_SEED_START = 7_100_000  # lesions drawn into the split's tuning scans (training seeds < 1,000,000)
CANDIDATES = (0.0, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.875, 0.9, 0.925, 0.95)
MAX_SENSITIVITY_LOSS = 0.03
REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
assert TRAINING_SEED_LIMIT <= TUNING_SEED_START < VALIDATION_SEED_START


def apply_threshold(labels: np.ndarray, probability: np.ndarray, threshold: float) -> np.ndarray:
    """``labels`` without the lesion components whose mean ``probability`` is below ``threshold``."""
    cleaned, _ = clean_lesions(labels.copy(), None, voxel_volume_ml=1.0, lesion_probability=probability,
                               min_mean_probability=threshold)
    return cleaned


def run(images: Dict[str, sitk.Image], card: ModelCard, model: torch.nn.Module):
    # MRI or converted from MRI: the CT guard for users' files (segment --not-ct) is off.
    result = segment_images(images, card, model, device="cpu", probabilities=True, ct_check=False,
                            warn=lambda message: None)
    voxel_ml = float(np.prod(result.labels.GetSpacing())) / 1000.0
    return sitk.GetArrayFromImage(result.labels), sitk.GetArrayFromImage(result.probabilities), voxel_ml


def score(rows: List[Dict[str, Any]]) -> Dict[str, float]:
    large = [lesion for row in rows for lesion in row["lesions"] if lesion["diameter_mm"] >= LARGE_LESION_MM]
    every = [lesion for row in rows for lesion in row["lesions"]]
    tp = sum(lesion["detected"] for lesion in large)
    fp = sum(row["false_positive"] for row in rows)
    return {
        "sensitivity_ge_5mm": tp / len(large) if large else float("nan"),
        "sensitivity": sum(lesion["detected"] for lesion in every) / len(every) if every else float("nan"),
        "false_positive_per_case": fp / len(rows),
        "f1_ge_5mm": 2 * tp / (2 * tp + len(large) - tp + fp) if large or fp else float("nan"),
    }


def main(argv: List[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=24)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--model", default=None, help="catalog model (default: the default model)")
    parser.add_argument("--weights", type=Path, help="weights of a model not in the catalog (with --card)")
    parser.add_argument("--card", type=Path, help="model card for --weights")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--anatomy", type=Path, help="folder of imported real cases: also tune on the fixed split's "
                        "tuning scans with drawn-in lesions (every input set), and once clean each")
    parser.add_argument("--anatomy-seeds", type=int, default=2, help="lesion sets per tuning scan (default 2)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        loaded = load_model(args.model, weights=args.weights, card=args.card)
    except SpineMetSegError as error:
        parser.error(str(error))
    card, model = loaded.card, loaded.network
    card = with_min_lesion_probability(card, 0.0)  # every lesion; the candidates are applied below
    started = time.perf_counter()
    per_threshold = {t: [] for t in CANDIDATES}
    for index in range(args.cases):
        contrast = "standard" if index % 2 == 0 else "randomized"
        case = generate_case(TUNING_SEED_START + index, contrast=contrast)
        anatomy = sitk.GetArrayFromImage(case.anatomy)
        labels, probability, voxel_ml = run(case.images, card, model)
        for threshold in CANDIDATES:
            analysis = lesion_analysis(case, apply_threshold(labels, probability, threshold), anatomy, voxel_ml)
            per_threshold[threshold].append(dict(analysis, contrast=contrast))
        print(f"case {index + 1}/{args.cases} done ({time.perf_counter() - started:.0f} s)", flush=True)
    if args.anatomy:
        from SpineMetSegLib.data.anatomy_case import generate_anatomy_case
        from SpineMetSegLib.data.real_case import load_real_case
        from SpineMetSegLib.data.split import load_split

        for scan_index, name in enumerate(load_split().tuning):
            real_case = load_real_case(args.anatomy / name)
            real_name = next(iter(real_case.sequences))
            for k in range(args.anatomy_seeds + 1):
                case = generate_anatomy_case(real_case, ANATOMY_TUNING_SEED_START + scan_index * 100 + k,
                                             generate=("t1", "stir"),
                                             lesion_count=0 if k == args.anatomy_seeds else None)
                anatomy = sitk.GetArrayFromImage(case.anatomy)
                for images in anatomy_inputs(case, real_name).values():
                    labels, probability, voxel_ml = run(images, card, model)
                    for threshold in CANDIDATES:
                        analysis = lesion_analysis(case, apply_threshold(labels, probability, threshold), anatomy,
                                                   voxel_ml)
                        per_threshold[threshold].append(dict(analysis, contrast="real anatomy"))
            print(f"tuning scan {name} done ({time.perf_counter() - started:.0f} s)", flush=True)
    real = {}
    for name, sequence in REAL_SCANS:
        if not (REAL / name).exists():
            continue
        labels, probability, _ = run({sequence: read_image(REAL / name)}, card, model)
        real[name] = {
            str(t): int(ndimage.label(apply_threshold(labels, probability, t) == 1, structure=CONNECTIVITY)[1])
            for t in CANDIDATES
        }
    results = {}
    for threshold, rows in per_threshold.items():
        results[str(threshold)] = {
            "all": score(rows),
            **{kind: score([r for r in rows if r["contrast"] == kind])
               for kind in ("standard", "randomized", "real anatomy") if any(r["contrast"] == kind for r in rows)},
        }
    def f1(t):
        return (results[str(t)]["all"]["f1_ge_5mm"], -t)

    chosen = max(CANDIDATES, key=f1)
    floor = results["0.0"]["all"]["sensitivity_ge_5mm"] - MAX_SENSITIVITY_LOSS
    sensitivity_first = max([t for t in CANDIDATES if results[str(t)]["all"]["sensitivity_ge_5mm"] >= floor - 1e-9],
                            key=f1)
    args.output.mkdir(parents=True, exist_ok=True)
    summary = {"model": f"{card.name} {card.version}", "weights": str(args.weights or "catalog"),
               "seeds": [TUNING_SEED_START, TUNING_SEED_START + args.cases - 1], "candidates": list(CANDIDATES),
               "rule": "max F1 (>= 5 mm)", "chosen": chosen,
               "sensitivity_first": {"rule": f"max F1 (>= 5 mm) with sensitivity (>= 5 mm) >= {floor:.3f}",
                                     "threshold": sensitivity_first},
               "results": results, "real_false_positives": real, "seconds": time.perf_counter() - started}
    (args.output / "tuning.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    lines = [
        f"# Tuning `min_lesion_mean_probability` of {card.name} {card.version}",
        "",
        f"{args.cases} synthetic tuning cases, seeds {TUNING_SEED_START:,}–{TUNING_SEED_START + args.cases - 1:,} "
        "(half ordinary, half domain-randomised rendering; never training or validation seeds), all sequences"
        + (f"; and the fixed split's {len(per_threshold[CANDIDATES[0]]) - args.cases} real-anatomy tuning runs "
           f"(tuning scans with {args.anatomy_seeds} drawn-in lesion sets and once clean, seeds from "
           f"{ANATOMY_TUNING_SEED_START:,}, each with the real scan, generated T1, generated STIR and all three)"
           if args.anatomy else "") + ".",
        f"Rule: {summary['rule']}. **Chosen: {chosen}.** Sensitivity-first alternative "
        f"({summary['sensitivity_first']['rule']}): {sensitivity_first}.",
        "",
        "| threshold | sens ≥ 5 mm | sens all | FP / case | F1 ≥ 5 mm | standard: sens ≥ 5 mm / FP | "
        "randomised: sens ≥ 5 mm / FP | real anatomy: sens ≥ 5 mm / FP |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def pair(block: Dict[str, float]) -> str:
        return f"{block['sensitivity_ge_5mm']:.3f} / {block['false_positive_per_case']:.2f}" if block else "—"

    for threshold in CANDIDATES:
        r = results[str(threshold)]
        lines.append(
            f"| {threshold} | {r['all']['sensitivity_ge_5mm']:.3f} | {r['all']['sensitivity']:.3f} | "
            f"{r['all']['false_positive_per_case']:.2f} | {r['all']['f1_ge_5mm']:.3f} | {pair(r['standard'])} | "
            f"{pair(r['randomized'])} | {pair(r.get('real anatomy', {}))} |"
        )
    if real:
        lines += ["", "Healthy real scans, false-positive lesions (reported only, not used to choose):", "",
                  "| scan | " + " | ".join(str(t) for t in CANDIDATES) + " |",
                  "|---|" + "---|" * len(CANDIDATES)]
        lines += [f"| {name} | " + " | ".join(str(v) for v in counts.values()) + " |" for name, counts in real.items()]
    (args.output / "tuning.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
