"""``spinemetseg plan`` on a hand-built model output: proposal, given probes, two probes, files and errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from SpineMetSegLib.cli import main

SPACING = 1.0
SHAPE = (60, 60, 60)  # k, j, i; identity direction, origin 0: RAS = (-i, -j, k)
CENTRE_KJI = np.array([30, 24, 30])
LESION_RADIUS = 4.0


def model_output() -> np.ndarray:
    """A vertebral body (2) holding a 4 mm lesion (1), with the canal (3) posterior of it (larger j = posterior)."""
    k, j, i = np.indices(SHAPE)
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[(np.abs(k - 30) <= 14) & (np.abs(j - 24) <= 14) & (np.abs(i - 30) <= 14)] = 2
    labels[(j >= 44) & (j <= 52) & (np.abs(i - 30) <= 5)] = 3
    labels[np.sqrt((k - 30) ** 2 + (j - 24) ** 2 + (i - 30) ** 2) <= LESION_RADIUS] = 1
    return labels


def centre_ras() -> np.ndarray:
    k, j, i = CENTRE_KJI
    return np.array([-i, -j, k], dtype=float)


@pytest.fixture
def segmentation(tmp_path: Path) -> Path:
    image = sitk.GetImageFromArray(model_output())
    image.SetSpacing((SPACING,) * 3)
    path = tmp_path / "seg.nii.gz"
    sitk.WriteImage(image, str(path))
    return path


def triple(values) -> str:
    return ",".join(f"{v:g}" for v in values)


@pytest.mark.slow
def test_plan_proposes_a_probe_and_writes_the_plan_and_picture(segmentation, tmp_path, capsys):
    plan_json, plan_png = tmp_path / "plan.json", tmp_path / "plan.png"
    code = main(["plan", str(segmentation), "--lesion", "1", "--margin", "3", "--canal-clearance", "3",
                 "--json", str(plan_json), "--png", str(plan_png)])
    assert code == 0
    out = capsys.readouterr().out
    assert "proposal meets the limits" in out and "Planning support only" in out
    plan = json.loads(plan_json.read_text(encoding="utf-8"))
    measures = plan["measures"]
    # A 4 mm lesion with 3 mm of margin needs a zone at least 14 mm across: the 20x15 entry is the smallest.
    assert plan["mode"] == "proposal" and plan["proposal"]["feasible"] is True
    assert plan["devices"][0]["name"] == "generic-ellipsoid-20x15"
    assert measures["coverage"] == 1.0 and measures["margin_mm"] >= 3.0 and measures["zone_to_canal_mm"] >= 3.0
    assert measures["limits"]["all_met"] is True
    assert measures["lesion_volume_ml"] == pytest.approx((model_output() == 1).sum() / 1000)
    assert plan["devices"][0]["sources"]["zone_length_mm"].startswith("generic")
    assert plan_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plan_measures_a_given_probe(segmentation, tmp_path):
    plan_json = tmp_path / "plan.json"
    # generic-ellipsoid-30x20: centre 10 mm behind the tip; zone 15 mm along the probe, 10 mm across.
    tip = centre_ras() + np.array([0, 10.0, 0])
    assert main(["plan", str(segmentation), "--lesion", "1", "--device", "generic-ellipsoid-30x20",
                 f"--tip={triple(tip)}", "--direction", "0,1,0", "--json", str(plan_json)]) == 0
    plan = json.loads(plan_json.read_text(encoding="utf-8"))
    measures = plan["measures"]
    assert plan["mode"] == "probes given" and plan["proposal"] is None
    assert measures["coverage"] == 1.0
    # The lesion's voxel centres reach 4 mm from the centre, across the probe: 10 - 4 = 6 mm of margin.
    assert measures["margin_mm"] == pytest.approx(6.0, abs=1e-6)
    np.testing.assert_allclose(measures["zones"][0]["centre_ras"], centre_ras(), atol=1e-9)
    # The zone reaches 15 mm posterior of the lesion centre (j = 39); the canal starts at j = 44: 5 mm apart.
    assert measures["zone_to_canal_mm"] == pytest.approx(5.0, abs=1e-6)


def test_plan_combines_two_probes(segmentation, tmp_path):
    plan_json = tmp_path / "plan.json"
    centre = centre_ras()
    arguments = ["plan", str(segmentation), "--lesion", "1", "--device", "generic-sphere-10", "--json", str(plan_json)]
    for side in (-2.5, 2.5):
        # "--tip=" because a coordinate list starting with a minus would read as an option
        arguments += [f"--tip={triple(centre + [side, 3.5, 0])}", "--direction", "0,1,0"]
    assert main(arguments) == 0
    measures = json.loads(plan_json.read_text(encoding="utf-8"))["measures"]
    assert len(measures["zones"]) == 2
    assert measures["coverage"] == 1.0
    # Alone, either 5 mm sphere 2.5 mm off centre leaves the far side of the 4 mm lesion out.
    single = tmp_path / "single.json"
    assert main(arguments[:8] + ["--json", str(single), f"--tip={triple(centre + [-2.5, 3.5, 0])}", "--direction",
                                 "0,1,0"]) == 0
    assert json.loads(single.read_text(encoding="utf-8"))["measures"]["coverage"] < 1.0


def test_list_devices_names_the_generic_entries(capsys):
    assert main(["plan", "--list-devices"]) == 0
    out = capsys.readouterr().out
    assert "generic-sphere-10" in out and "not a published value" in out


@pytest.mark.parametrize(
    "extra, message",
    [(["--lesion", "2"], "no lesion 2"),
     (["--lesion", "1", "--tip", "0,0,0", "--direction", "0,1,0"], "needs its --device"),
     (["--lesion", "1", "--device", "generic-sphere-10", "--tip", "0,0,0"], "one --direction per --tip"),
     (["--lesion", "1", "--device", "no-such", "--tip", "0,0,0", "--direction", "0,1,0"], "No ablation device"),
     (["--lesion", "1", "--margin", "-1"], "--margin must be zero or more"),
     (["--lesion", "1", "--device", "generic-sphere-10", "--tip", "0,0,0", "--direction", "0,0,0"], "no length"),
     ([], "Choose a lesion")],
)
def test_bad_requests_exit_2_with_a_message(segmentation, tmp_path, capsys, extra, message):
    plan_json = tmp_path / "plan.json"
    assert main(["plan", str(segmentation), *extra, "--json", str(plan_json)]) == 2
    assert message in capsys.readouterr().err
    assert not plan_json.exists()


def test_output_that_is_the_input_is_refused_and_the_input_kept(segmentation, capsys):
    before = segmentation.read_bytes()
    assert main(["plan", str(segmentation), "--lesion", "1", "--json", str(segmentation)]) == 2
    assert "is one of the inputs" in capsys.readouterr().err
    assert segmentation.read_bytes() == before


def test_a_plan_that_cannot_be_written_leaves_no_picture_behind(segmentation, tmp_path, capsys):
    blocked = tmp_path / "plan.json"
    blocked.mkdir()  # a folder where the plan should go: the write fails
    plan_png = tmp_path / "plan.png"
    code = main(["plan", str(segmentation), "--lesion", "1", "--device", "generic-sphere-10", "--tip=-30,-20,30",
                 "--direction", "0,1,0", "--json", str(blocked), "--png", str(plan_png)])
    assert code == 2
    assert "Cannot write" in capsys.readouterr().err
    assert not plan_png.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json", "seg.nii.gz"]


@pytest.mark.slow
def test_a_proposal_reports_progress_lines_or_a_bar_from_the_same_events(segmentation, tmp_path, capsys):
    from progress_checks import check_bar_shows_the_protocol, check_protocol

    runs = {}
    for choice in ("lines", "bar"):
        assert main(["plan", str(segmentation), "--lesion", "1", "--margin", "3", "--canal-clearance", "3",
                     "--json", str(tmp_path / f"{choice}.json"), "--progress", choice]) == 0
        runs[choice] = capsys.readouterr()

    events = check_protocol(runs["lines"].out)
    assert {stage for stage, _, _ in events} == {"plan", "done"}
    assert events[-1] == ("done", 100, "proposed generic-ellipsoid-20x15")
    check_bar_shows_the_protocol(runs["bar"].err, events)
    assert "SPINEMETSEG-PROGRESS" not in runs["bar"].out and "proposal meets the limits" in runs["bar"].out
