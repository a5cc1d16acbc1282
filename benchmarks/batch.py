"""Cases per minute of ``spinemetseg batch`` (model loaded once) against one ``spinemetseg segment`` per case.

Usage::

    python benchmarks/batch.py                       # 20 studies, default model, CPU, a table on stdout
    python benchmarks/batch.py --cases 5 --threads 1 --json out/batch.json

The cohort: ``--cases`` DICOM studies written from phantom seeds 0, 1, ... (``sagittal2d`` acquisition) on the
clinical sagittal grid of ``benchmarks/inference.py`` (512 x 512 x 18 voxels of 0.6 x 0.6 x 4 mm), each with
a T1, a T2 and a STIR series in the Siemens, GE and Philips spellings of ``Testing/dicom_fixtures.py`` (in
turn), plus their localiser, axial T2 and contrast-enhanced T1 (and a DWI for Siemens), so recognition has
distractors to set aside.

Two ways, both from the DICOM files to a label map and a lesion table per case, timed as wall clock of the
whole command(s) (imports, model load, header scan, reading, inference, writing):

- ``batch``: one ``spinemetseg batch EXPORT --output DIR`` (the model loaded once, the studies recognised from
  their tags);
- ``per_case``: ``spinemetseg segment --t1 --t2 --stir --lesions-csv`` once per case, the series folders given
  by hand (what a shell loop over the cohort does: Python, torch and the model loaded for every case).

The two label maps of every case are compared (they must be identical).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Testing"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

VENDORS = ("siemens", "ge", "philips")


def write_cohort(count: int, export: Path) -> List[Any]:
    """``count`` studies on the clinical grid; returns the written studies (series folders, roles)."""
    from dicom_fixtures import write_phantom_study
    from inference import SEQUENCES, clinical_grid

    from SpineMetSegLib.data.phantom import generate_case

    studies = []
    for seed in range(count):
        case = generate_case(seed, acquisition="sagittal2d")
        grid = clinical_grid(case.images["t1"])
        images = {name: sitk.Resample(case.images[name], grid, sitk.Transform(), sitk.sitkLinear, 0.0,
                                      sitk.sitkFloat32) for name in SEQUENCES}
        studies.append(write_phantom_study(export, seed, VENDORS[seed % len(VENDORS)], images=images))
    return studies


def command(*arguments: str) -> List[str]:
    return [sys.executable, "-c", "import sys; from SpineMetSegLib.cli import main; sys.exit(main())", *arguments]


def run(arguments: List[str]) -> float:
    started = time.perf_counter()
    subprocess.run(arguments, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--threads", type=int, help="CPU threads for both ways (default: all cores)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    options = ["--device", args.device] + (["--threads", str(args.threads)] if args.threads else [])
    with tempfile.TemporaryDirectory(prefix="spinemetseg-batch-bench-") as folder:
        root = Path(folder)
        started = time.perf_counter()
        studies = write_cohort(args.cases, root / "export")
        print(f"wrote {args.cases} studies in {time.perf_counter() - started:.0f} s", flush=True)
        batch_s = run(command("batch", str(root / "export"), "--output", str(root / "batch"), *options))
        print(f"batch: {batch_s:.1f} s", flush=True)
        per_case_s = 0.0
        identical = 0
        for index, study in enumerate(studies):
            folders = {role: study.series_folders[study.roles[role]] for role in ("t1", "t2", "stir")}
            out = root / "per-case" / f"case{index}"
            per_case_s += run(command("segment", "--t1", str(folders["t1"]), "--t2", str(folders["t2"]),
                                      "--stir", str(folders["stir"]), "--output", str(out / "labels.nii.gz"),
                                      "--lesions-csv", str(out / "lesions.csv"), *options))
            done = [p for p in (root / "batch" / "cases").iterdir()
                    if json.loads((p / "case.json").read_text(encoding="utf-8"))["study"]["study_instance_uid"]
                    == study.uid]
            a = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "labels.nii.gz")))
            b = sitk.GetArrayFromImage(sitk.ReadImage(str(done[0] / "labels.nii.gz")))
            identical += int(np.array_equal(a, b))
        print(f"per case: {per_case_s:.1f} s", flush=True)
    results: Dict[str, Any] = {
        "cases": args.cases,
        "clinical_grid": "512 x 512 x 18 at 0.6 x 0.6 x 4 mm, T1 + T2 + STIR (+ distractor series)",
        "batch_s": round(batch_s, 1),
        "per_case_s": round(per_case_s, 1),
        "batch_cases_per_minute": round(60.0 * args.cases / batch_s, 2),
        "per_case_cases_per_minute": round(60.0 * args.cases / per_case_s, 2),
        "speedup": round(per_case_s / batch_s, 2),
        "identical_label_maps": identical,
        "threads": args.threads,
        "device": args.device,
    }
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
