"""Speed of the synthetic spine MRI engine on one core: how long one case takes to generate (and to write).

Usage::

    python benchmarks/phantom_speed.py                  # 5 repeats per row, a table on stdout
    python benchmarks/phantom_speed.py --repeats 9 --seed 3 --write

Rows:

- ``sagittal2d clinical``: seed ``--seed``'s patient on a clinical sagittal grid of 512 x 512 x 18 voxels (its
  own field of view, slice spacing and tilt), the size the requirement names (target: under 3 s on one core);
- ``sagittal2d`` and ``iso3d``: the grid the seed draws itself.

Each repeat plans and renders afresh (``generate_case`` = ``plan_case`` + ``render_case``); the table gives the
median and the minimum wall time and the median CPU time (CPU time is what counts on a shared machine). With
``--write`` a column gives the median time of ``write_case`` (five gzip-compressed NIfTI files and case.json).
BLAS and OpenMP are limited to one thread before numpy loads.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse  # noqa: E402 - the thread limits must be set before numpy is imported
import dataclasses  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Callable, List, Tuple  # noqa: E402

from SpineMetSegLib.data.phantom import write_case  # noqa: E402
from SpineMetSegLib.data.phantom.case import CasePlan, plan_case, render_case  # noqa: E402

CLINICAL_SIZE = (512, 512, 18)


def clinical_plan(seed: int) -> CasePlan:
    """Seed's sagittal plan on a 512 x 512 x 18 grid covering the same field of view."""
    plan = plan_case(seed, acquisition="sagittal2d")
    grid = plan.acquisition
    spacing = grid.size[0] * grid.spacing[0] / CLINICAL_SIZE[0]
    plan.acquisition = dataclasses.replace(grid, size=CLINICAL_SIZE, spacing=(spacing, spacing, grid.spacing[2]))
    return plan


def measure(make_plan: Callable[[], CasePlan], repeats: int, write: bool) -> Tuple[tuple, List[float], list, list]:
    walls, cpus, writes = [], [], []
    size = None
    for _ in range(repeats):
        plan = make_plan()
        wall, cpu = time.perf_counter(), time.process_time()
        case = render_case(plan)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        size = case.anatomy.GetSize()
        if write:
            with tempfile.TemporaryDirectory() as folder:
                start = time.perf_counter()
                write_case(case, folder)
                writes.append(time.perf_counter() - start)
    return size, walls, cpus, writes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per row (the median is reported)")
    parser.add_argument("--seed", type=int, default=1, help="phantom seed of the patient")
    parser.add_argument("--write", action="store_true", help="also time write_case")
    args = parser.parse_args()

    rows = [
        ("sagittal2d clinical", lambda: clinical_plan(args.seed)),
        ("sagittal2d", lambda: plan_case(args.seed, acquisition="sagittal2d")),
        ("iso3d", lambda: plan_case(args.seed, acquisition="iso3d")),
    ]
    header = f"{'acquisition':<21} {'size':>14} {'voxels':>10} {'median s':>9} {'min s':>7} {'cpu s':>7}"
    print(f"phantom generation, seed {args.seed}, median of {args.repeats} runs, one thread")
    print(header + (f" {'write s':>8}" if args.write else ""))
    for name, make_plan in rows:
        size, walls, cpus, writes = measure(make_plan, args.repeats, args.write)
        voxels = size[0] * size[1] * size[2]
        line = (
            f"{name:<21} {'x'.join(str(v) for v in size):>14} {voxels:>10} {statistics.median(walls):>9.2f} "
            f"{min(walls):>7.2f} {statistics.median(cpus):>7.2f}"
        )
        print(line + (f" {statistics.median(writes):>8.2f}" if args.write else ""))


if __name__ == "__main__":
    main()
