"""``spinemetseg demo``: a synthetic case segmented with the default model, scored and drawn."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import SimpleITK as sitk

from SpineMetSegLib.cli import main
from SpineMetSegLib.images import imageio

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_demo_writes_case_segmentation_metrics_and_overlay_and_prints_the_scores(tmp_path, capsys):
    output = tmp_path / "demo"
    assert main(["demo", "--output", str(output), "--seed", "3", "--device", "cpu", "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    t1 = imageio.read_image(output / "case" / "t1.nii.gz")
    segmentation = imageio.read_image(output / "segmentation.nii.gz")
    assert imageio.Geometry.of(segmentation).matches(imageio.Geometry.of(t1))
    assert (output / "overlay.png").read_bytes()[:8] == PNG_SIGNATURE
    scores = json.loads((output / "metrics.json").read_text(encoding="utf-8"))
    # The printed Dice is that of the written segmentation against the written truth.
    truth = sitk.GetArrayFromImage(imageio.read_image(output / "case" / "lesions.nii.gz")) > 0
    found = sitk.GetArrayFromImage(segmentation) == 1
    total = truth.sum() + found.sum()
    dice = 1.0 if total == 0 else 2 * np.logical_and(truth, found).sum() / total
    assert scores["1"]["dice"] == pytest.approx(dice, abs=1e-9)
    printed_dice = float(re.search(r"metastasis Dice ([0-9.]+)", printed).group(1))
    assert abs(printed_dice - dice) < 1e-3
    assert re.search(r"sensitivity ([0-9.]+|n/a)", printed)
    assert f"detected {scores['1']['lesions']['detected']} of {scores['1']['lesions']['reference_count']}" in printed

