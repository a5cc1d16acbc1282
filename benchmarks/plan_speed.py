"""Speed and quality of the ablation proposal (``spinemetseg plan`` without --tip) on phantom cases.

    python benchmarks/plan_speed.py --seeds 2 4 6 7 9 11 12

For every lesion of every case (the phantom's truth in the model's convention: lesion 1, body 2, canal 3), runs
the proposal with its default search effort and, as the baseline, a denser search (every direction of the cone
refined, four times the evaluations), and prints the CPU time (this process's, so a busy machine does not inflate it;
the wall time is in the summary), the device chosen, whether the limits are met and the
slack (the smallest of margin - 5 mm, canal distance - 5 mm, probe-to-canal - 2 mm, tip depth in the body) of both.
A baseline slack above ours means the default search missed a better placement.
"""

from __future__ import annotations

import argparse
import statistics
import time

from SpineMetSegLib.analysis.ablation.anatomy import PlanAnatomy
from SpineMetSegLib.analysis.ablation.device_table import load_devices
from SpineMetSegLib.analysis.ablation.proposal import CONE_RINGS, DIRECTIONS_PER_RING, REFINEMENT_EVALUATIONS, propose
from SpineMetSegLib.data.phantom.case import generate_case, model_target

ALL_DIRECTIONS = 1 + DIRECTIONS_PER_RING * CONE_RINGS * (CONE_RINGS + 1) // 2
DENSE = {"refined_directions": ALL_DIRECTIONS, "refinement_evaluations": 4 * REFINEMENT_EVALUATIONS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[2, 4, 6, 7, 9, 11, 12])
    args = parser.parse_args()
    devices = load_devices()
    times = {"ours": [], "dense": []}
    walls = {"ours": [], "dense": []}
    print(f"{'case':>8} {'mL':>6} | {'ours s':>7} {'device':>24} {'met':>4} {'slack':>6} | {'dense s':>7} "
          f"{'device':>24} {'met':>4} {'slack':>6}")
    for seed in args.seeds:
        anatomy = PlanAnatomy.from_image(model_target(generate_case(seed)))
        for lesion in range(1, anatomy.lesion_count + 1):
            volume_ml = len(anatomy.lesion_points(lesion)) * anatomy.grid.voxel_volume_ml
            row = [f"{seed}/{lesion}".rjust(8), f"{volume_ml:6.2f}"]
            for name, options in (("ours", {}), ("dense", DENSE)):
                start, wall = time.process_time(), time.perf_counter()
                proposal = propose(anatomy, lesion, devices, **options)
                elapsed = time.process_time() - start
                times[name].append(elapsed)
                walls[name].append(time.perf_counter() - wall)
                row.append(f"| {elapsed:7.2f} {proposal.device.name:>24} {'yes' if proposal.feasible else 'no':>4} "
                           f"{proposal.slack_mm:6.2f}")
            print(" ".join(row))
    for name, values in times.items():
        print(f"{name}: CPU median {statistics.median(values):.2f} s, max {max(values):.2f} s; wall median "
              f"{statistics.median(walls[name]):.2f} s over {len(values)} lesions")


if __name__ == "__main__":
    main()
