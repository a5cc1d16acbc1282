"""Peak memory and time of ``spinemetseg segment`` on a huge volume (1024 x 1024 x 600 int16).

Usage::

    python benchmarks/huge_volume.py                                  # case in the temp folder, this source tree
    python benchmarks/huge_volume.py --case /tmp/huge.nii.gz --old-source /tmp/old   # also the code in /tmp/old
    python benchmarks/huge_volume.py --json out/huge.json
    python benchmarks/huge_volume.py --geometry axial-1mm --old-source /tmp/old   # the 1 mm grid case

The case (written once to ``--case`` when missing): by default a sagittal int16 volume of 1024 (A-P) x 1024 (S-I)
x 600 (L-R) voxels of 0.3125 x 0.3125 x 0.5 mm (1.2 GB of voxels), a body (an elliptic cylinder) with a column of
bright vertebral bodies and darker discs, plus uniform noise, gzip-compressed NIfTI. ``--geometry axial-1mm``
writes the same voxels on a 1 mm identity grid, which is the default model's own grid: its probabilities then
cover every voxel of the cropped body (the case that streaming them is for). ``--size I J K`` writes a
proportionally smaller (or larger) case, e.g. ``--geometry axial-1mm --size 512 512 600``.

Each source tree (``--source``, default this checkout's ``SpineMetSeg``; ``--old-source`` another tree holding
``SpineMetSegLib``, e.g. ``git archive`` of an older commit) runs ``spinemetseg segment --t1 CASE --output
seg.nii.gz`` with the default model in a process of its own: its peak resident memory (``ru_maxrss`` of that
child, from ``os.wait4``) and its wall time are reported, with the peak memory seen in each progress stage
(``VmRSS`` sampled every 0.05 s) and the seconds until the first progress line after reading started. The two
label maps are compared voxel by voxel when both ran. Target: peak under 4 GB (``TARGET_PEAK_GB``).

``--prepare-axial`` measures instead ``preprocessing.prepare`` alone (no network), for each source tree, on the
same voxels given an identity direction and 1 mm spacing: the model's grid is then the input's own (the worst
case for the float copies). Reported: the memory held before (the input) and the peak during ``prepare``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import numpy as np

SIZE = (1024, 1024, 600)  # (i, j, k): A-P, S-I, L-R
SPACING = (0.3125, 0.3125, 0.5)
# (spacing, direction, origin) of each case's geometry.
GEOMETRIES = {
    # sagittal slices, i: posterior, j: inferior, k: left; finer than the model grid (1 mm), which is smaller
    "sagittal": (SPACING, (0, 0, 1, 1, 0, 0, 0, -1, 0), (-150.0, -160.0, 160.0)),
    # the same voxels on a 1 mm identity grid: already on the model grid (the default card's spacing is
    # [null, 1, 1]), so the network's probabilities cover every voxel of the cropped body
    "axial-1mm": ((1.0, 1.0, 1.0), (1, 0, 0, 0, 1, 0, 0, 0, 1), (-512.0, -512.0, -300.0)),
}
TARGET_PEAK_GB = 4.0
SAMPLE_SECONDS = 0.05
# One prepare of the full case takes tens of seconds; a hung child is stopped after this.
PREPARE_TIMEOUT_S = 1800
HERE = Path(__file__).resolve().parent


def write_case(path: Path, geometry: str = "sagittal", size: Sequence[int] = SIZE) -> None:
    """Write the huge test volume of ``size`` (i, j, k) and ``geometry`` (``GEOMETRIES``) to ``path`` (about twice
    its voxels' memory while writing). Body, column and discs scale with the size."""
    import SimpleITK as sitk

    ni, nj, nk = size
    voxels = np.zeros((nk, nj, ni), dtype=np.int16)  # numpy order (k, j, i)
    rng = np.random.default_rng(0)
    i = np.arange(ni)[None, :]
    k = np.arange(nk)[:, None]
    ri, rk = ni / SIZE[0], nk / SIZE[2]
    body = ((k - 300 * rk) / (170.0 * rk)) ** 2 + ((i - 560 * ri) / (300.0 * ri)) ** 2 <= 1.0
    column = ((k - 300 * rk) / (40.0 * rk)) ** 2 + ((i - 700 * ri) / (60.0 * ri)) ** 2 <= 1.0
    for j in range(nj):
        plane = np.where(body, 400, 0).astype(np.int16)
        position = j * SIZE[1] // nj  # j on the 1024 scale
        if 100 <= position < 950:
            disc = (position // 80) % 2 == 1 and (position % 80) < 20
            plane[column] = 250 if disc else 800
        plane += rng.integers(0, 40, plane.shape, dtype=np.int16)
        voxels[:, j, :] = plane
    image = sitk.GetImageFromArray(voxels)
    del voxels
    spacing, direction, origin = GEOMETRIES[geometry]
    image.SetSpacing(spacing)
    image.SetDirection(direction)
    image.SetOrigin(origin)
    sitk.WriteImage(image, str(path), True)


def _rss_mb(pid: int) -> Optional[float]:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def run_segment(source: Path, case: Path, output: Path, threads: Optional[int]) -> Dict[str, Any]:
    """Run ``segment`` from the tree ``source`` in a child process; its peak memory, time and stage peaks."""
    command = [sys.executable, "-m", "SpineMetSegLib.cli", "segment", "--t1", str(case), "--output", str(output)]
    if threads:
        command += ["--threads", str(threads)]
    environment = dict(os.environ, PYTHONPATH=str(source))
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
    stage = ["start"]
    stage_peaks: Dict[str, float] = {}
    read_lines = []  # times of the read lines and of the first line after them
    lines = []

    def follow() -> None:
        for line in child.stdout:
            lines.append(line.rstrip())
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "SPINEMETSEG-PROGRESS":
                if parts[2] == "read" or stage[0] == "read":
                    read_lines.append(time.perf_counter() - started)
                stage[0] = parts[2]

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    while child.poll() is None:
        rss = _rss_mb(child.pid)
        if rss is not None:
            stage_peaks[stage[0]] = max(stage_peaks.get(stage[0], 0.0), rss)
        time.sleep(SAMPLE_SECONDS)
    # poll() reaped the child: its own peak comes from ru_maxrss of the children (one child at a time here).
    reader.join(timeout=5)
    seconds = time.perf_counter() - started
    stderr = child.stderr.read()
    return {
        "returncode": child.returncode,
        "seconds": seconds,
        "stage_peaks_mb": stage_peaks,
        "read_progress_lines": max(0, len(read_lines) - 1),
        # the longest time without a progress line from the first read line to the first line after reading
        "longest_read_silence_s": float(np.diff(read_lines).max()) if len(read_lines) > 1 else None,
        "stderr": stderr[-2000:],
        "stdout_tail": lines[-3:],
        # a noisy prediction of a streamed volume runs the network a second time (inference.pipeline)
        "network_ran_twice": any("runs again" in line for line in lines),
    }


def peak_of_child_run(source: Path, case: Path, output: Path, threads: Optional[int]) -> Dict[str, Any]:
    """``run_segment`` in a fresh wrapper process, so that ``ru_maxrss`` of its children is this run's alone."""
    wrapper = [sys.executable, __file__, "--_one", str(source), str(case), str(output), str(threads or 0)]
    result = subprocess.run(wrapper, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"the wrapper failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout.splitlines()[-1])


def _one(source: str, case: str, output: str, threads: str) -> None:
    import resource

    row = run_segment(Path(source), Path(case), Path(output), int(threads) or None)
    row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    print(json.dumps(row))


def _prepare_axial(case: str) -> None:
    import SimpleITK as sitk

    try:
        from SpineMetSegLib.inference import preprocessing
        from SpineMetSegLib.models import catalog
    except ImportError:  # a source tree from before the package layout (an --old-source)
        from SpineMetSegLib import catalog, preprocessing

    peak = [0.0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(SAMPLE_SECONDS):
            peak[0] = max(peak[0], _rss_mb(os.getpid()) or 0.0)

    image = sitk.ReadImage(case)
    image.SetDirection((1, 0, 0, 0, 1, 0, 0, 0, 1))
    image.SetSpacing((1.0, 1.0, 1.0))
    card = catalog.load_catalog().get()
    before = _rss_mb(os.getpid())
    peak[0] = before or 0.0  # a prepare faster than one sample still reports at least what was held
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    try:
        prepared = preprocessing.prepare({"t1": image}, card)
    finally:
        stop.set()  # a failing prepare must not leave the sampler (and this process) running
    seconds = time.perf_counter() - started
    sampler.join()
    peak[0] = max(peak[0], _rss_mb(os.getpid()) or 0.0)
    print(json.dumps({"held_before_mb": before, "peak_mb": peak[0], "seconds": seconds,
                      "network_input_shape": list(prepared.array.shape)}))


def prepare_axial_table(sources: Dict[str, Path], case: Path) -> None:
    print(f"prepare alone on {case} given an identity direction and 1 mm spacing")
    print(f"{'code':<5} {'held before GB':>14} {'peak GB':>8} {'seconds':>8}  network input")
    for name, source in sources.items():
        result = subprocess.run([sys.executable, __file__, "--_prepare", str(case)], capture_output=True, text=True,
                                env=dict(os.environ, PYTHONPATH=str(source.resolve())), check=False,
                                timeout=PREPARE_TIMEOUT_S)
        if result.returncode != 0:
            print(f"{name}: failed: {result.stderr[-2000:]}", file=sys.stderr)
            continue
        row = json.loads(result.stdout.splitlines()[-1])
        print(f"{name:<5} {row['held_before_mb'] / 1024:>14.2f} {row['peak_mb'] / 1024:>8.2f} {row['seconds']:>8.1f}"
              f"  {' x '.join(str(n) for n in row['network_input_shape'])}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--_one":
        _one(*sys.argv[2:6])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--_prepare":
        _prepare_axial(sys.argv[2])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", type=Path, help="the huge volume (written there when missing; default: "
                        "spinemetseg-huge[-GEOMETRY][-SIZE].nii.gz in the temp folder)")
    parser.add_argument("--geometry", choices=sorted(GEOMETRIES), default="sagittal",
                        help="the case's geometry when it is written (default sagittal)")
    parser.add_argument("--size", type=int, nargs=3, default=list(SIZE), metavar=("I", "J", "K"),
                        help="the case's size when it is written (default 1024 1024 600)")
    parser.add_argument("--source", type=Path, default=HERE.parent / "SpineMetSeg",
                        help="folder holding SpineMetSegLib to measure (default: this checkout)")
    parser.add_argument("--old-source", type=Path, help="another folder holding SpineMetSegLib to compare with")
    parser.add_argument("--threads", type=int, help="--threads for segment")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    parser.add_argument("--prepare-axial", action="store_true",
                        help="measure preprocessing.prepare alone on the case given a 1 mm identity grid")
    args = parser.parse_args()
    import SimpleITK as sitk

    if args.case is None:
        name = "spinemetseg-huge"
        if args.geometry != "sagittal":
            name += f"-{args.geometry}"
        if tuple(args.size) != SIZE:
            name += "-" + "x".join(str(n) for n in args.size)
        args.case = Path(tempfile.gettempdir()) / f"{name}.nii.gz"
    if not args.case.exists():
        print(f"writing the case to {args.case} ...", flush=True)
        write_case(args.case, args.geometry, args.size)
    if args.prepare_axial:
        sources = {"ours": args.source}
        if args.old_source is not None:
            sources["old"] = args.old_source
        prepare_axial_table(sources, args.case)
        return
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        outputs = {}
        for name, source in (("ours", args.source), ("old", args.old_source)):
            if source is None:
                continue
            outputs[name] = Path(folder) / f"{name}.nii.gz"
            rows[name] = peak_of_child_run(source.resolve(), args.case, outputs[name], args.threads)
            if rows[name]["returncode"] != 0:
                print(f"{name}: segment failed: {rows[name]['stderr']}", file=sys.stderr)
        same = None
        if len(outputs) == 2 and all(row["returncode"] == 0 for row in rows.values()):
            a = sitk.GetArrayViewFromImage(sitk.ReadImage(str(outputs["ours"])))
            b = sitk.GetArrayViewFromImage(sitk.ReadImage(str(outputs["old"])))
            same = int(np.count_nonzero(a != b))
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(args.case))
    reader.ReadImageInformation()
    size = " x ".join(str(n) for n in reader.GetSize())
    spacing = " x ".join(f"{s:g}" for s in reader.GetSpacing())
    print(f"segment on {size} int16 of {spacing} mm ({args.case}), default model, target peak < "
          f"{TARGET_PEAK_GB:.0f} GB for 1024 x 1024 x 600")
    print(f"{'code':<5} {'peak RSS GB':>11} {'seconds':>8} {'read lines':>10} {'max gap s':>9}  peak per stage (GB)")
    for name, row in rows.items():
        stages = ", ".join(f"{stage} {mb / 1024:.2f}" for stage, mb in row["stage_peaks_mb"].items())
        gap = row["longest_read_silence_s"]
        gap_text = f"{gap:.1f}" if gap is not None else "-"
        twice = " (the network ran twice)" if row.get("network_ran_twice") else ""
        print(f"{name:<5} {row['peak_rss_mb'] / 1024:>11.2f} {row['seconds']:>8.1f} {row['read_progress_lines']:>10}"
              f" {gap_text:>9}  {stages}{twice}")
    if same is not None:
        print(f"label maps differ in {same} voxels")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"case": str(args.case), "size": reader.GetSize(),
                                         "spacing": reader.GetSpacing(), "rows": rows, "differing_voxels": same},
                                        indent=2))


if __name__ == "__main__":
    main()
