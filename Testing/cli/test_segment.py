"""``spinemetseg segment``: outputs on the input grid, clear errors with nothing left behind, cancel, progress."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from inference_fixtures import SAGITTAL, make_card, mri_like, seeded_network
from scipy import ndimage

from SpineMetSegLib.cli import main
from SpineMetSegLib.errors import EXIT_CANCELLED, EXIT_USER_ERROR
from SpineMetSegLib.images import imageio
from SpineMetSegLib.models import weights
from SpineMetSegLib.progress import parse_progress

HANG_GUARD_S = 600  # a wait that only ends a hung run; no test asserts how long anything took


def write_model(folder: Path, **card_options) -> list:
    """A card JSON and seeded weights in ``folder``; returns the matching command-line options."""
    card = make_card(**card_options)
    card_path = folder / "card.json"
    card_path.write_text(json.dumps(card.to_dict()))
    weights_path = weights.save_state_dict(seeded_network(card).state_dict(), folder / "weights.safetensors")
    return ["--weights", str(weights_path), "--card", str(card_path)]


@pytest.fixture()
def case(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    t1 = mri_like((40, 48, 10), spacing=(0.9, 0.8, 3.0), direction=SAGITTAL, origin=(12.0, -40.0, 80.0))
    imageio.write_image(t1, inputs / "t1.nii.gz")
    stir = mri_like((36, 44, 12), spacing=(1.0, 0.9, 2.5), direction=SAGITTAL, origin=(13.0, -39.0, 79.0), seed=2)
    imageio.write_image(stir, inputs / "stir.nrrd")
    return inputs, write_model(inputs)


def test_segment_writes_labels_probabilities_and_lesion_table_on_the_first_input_grid(case, tmp_path, capsys):
    inputs, model = case
    out = tmp_path / "out"
    code = main(
        ["segment", "--t1", str(inputs / "t1.nii.gz"), "--stir", str(inputs / "stir.nrrd"),
         "--output", str(out / "seg.nii.gz"), "--probabilities", str(out / "prob.nrrd"),
         "--lesions-csv", str(out / "lesions.csv"), "--device", "cpu", "--threads", "1", *model]
    )
    assert code == 0
    t1 = imageio.read_image(inputs / "t1.nii.gz")
    labels = imageio.read_image(out / "seg.nii.gz")
    probability = imageio.read_image(out / "prob.nrrd")
    assert imageio.Geometry.of(labels).matches(imageio.Geometry.of(t1))
    assert imageio.Geometry.of(probability).matches(imageio.Geometry.of(t1))
    assert probability.GetPixelID() == sitk.sitkFloat32
    values = sitk.GetArrayFromImage(probability)
    assert 0.0 <= values.min() and values.max() <= 1.0
    _, lesion_count = ndimage.label(sitk.GetArrayFromImage(labels) == 1, structure=np.ones((3, 3, 3)))
    with open(out / "lesions.csv", newline="") as table:
        assert len(list(csv.DictReader(table))) == lesion_count
    printed = capsys.readouterr().out
    assert f"lesions: {lesion_count}" in printed
    assert "time: read" in printed and "inference" in printed
    assert sorted(p.name for p in out.iterdir()) == ["lesions.csv", "prob.nrrd", "seg.nii.gz"]
    umask = os.umask(0)
    os.umask(umask)
    assert (out / "seg.nii.gz").stat().st_mode & 0o777 == 0o666 & ~umask  # readable like any new file


def test_progress_lines_parse_and_only_go_up_to_done(case, tmp_path, capsys):
    inputs, model = case
    code = main(["segment", "--t1", str(inputs / "t1.nii.gz"), "--output", str(tmp_path / "seg.nrrd"),
                 "--device", "cpu", *model])
    assert code == 0
    reports = [parse_progress(line) for line in capsys.readouterr().out.splitlines()]
    reports = [report for report in reports if report is not None]
    percents = [report.percent for report in reports]
    assert percents == sorted(percents)
    assert [r.stage for r in reports][:1] == ["read"] and reports[-1].stage == "done" and percents[-1] == 100
    assert {"preprocess", "inference", "postprocess", "write"} <= {r.stage for r in reports}


def _ct(path: Path) -> None:
    array = np.full((10, 48, 40), -1000.0, dtype=np.float32)
    array[:, 10:38, 8:32] = 40.0
    array[:, 20:26, 18:24] = 1200.0
    imageio.write_image(sitk.GetImageFromArray(array), path)


def _flat(path: Path) -> None:
    sitk.WriteImage(sitk.Image([40, 48], sitk.sitkFloat32) + 100.0, str(path))


def _nan(path: Path) -> None:
    image = mri_like()
    image[3, 3, 3] = float("nan")
    imageio.write_image(image, path)


def _far(path: Path) -> None:
    imageio.write_image(mri_like(origin=(900.0, 0.0, 0.0)), path)


BAD_INPUTS = {
    "unknown sequence": (None, ["--input", "flair={t1}"], "does not take a 'flair' sequence"),
    "too few sequences": (None, ["--card-min-inputs"], "needs at least 2"),
    "ct": (_ct, ["--t1", "{bad}"], "looks like CT"),
    "2d image": (_flat, ["--t1", "{bad}"], "is 2D"),
    "nan voxels": (_nan, ["--t1", "{bad}"], "NaN or infinite"),
    "grids do not overlap": (_far, ["--t2", "{bad}"], "does not overlap"),
    "missing file": (None, ["--t1", "{inputs}/nothing.nii.gz"], "does not exist"),
}


@pytest.mark.parametrize("problem", sorted(BAD_INPUTS))
def test_bad_input_exits_2_with_a_clear_error_and_writes_nothing(case, tmp_path, capsys, problem):
    inputs, model = case
    make_bad, options, message = BAD_INPUTS[problem]
    bad = inputs / "bad.nrrd"  # NRRD keeps NaN voxels (the NIfTI reader may not)
    if make_bad:
        make_bad(bad)
    if options == ["--card-min-inputs"]:
        model = write_model(inputs, min_inputs=2)
        options = []
    out = tmp_path / "out"
    out.mkdir()
    previous = out / "seg.nii.gz"
    previous.write_bytes(b"the user's earlier result")
    first = [] if problem in ("ct", "2d image", "nan voxels", "missing file") else ["--t1", str(inputs / "t1.nii.gz")]
    filled = [o.format(t1=inputs / "t1.nii.gz", bad=bad, inputs=inputs) for o in options]
    code = main(["segment", *first, *filled, "--output", str(previous), "--probabilities", str(out / "p.nii.gz"),
                 "--device", "cpu", *model])
    assert code == EXIT_USER_ERROR
    assert message in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["seg.nii.gz"]
    assert previous.read_bytes() == b"the user's earlier result"


def test_weights_without_a_card_and_weights_of_another_network_are_clear_errors(case, tmp_path, capsys):
    inputs, model = case
    base = ["segment", "--t1", str(inputs / "t1.nii.gz"), "--output", str(tmp_path / "seg.nii.gz")]
    assert main([*base, "--weights", model[1]]) == EXIT_USER_ERROR
    assert "--weights and --card go together" in capsys.readouterr().err
    other = inputs / "other"
    other.mkdir()
    other_model = write_model(other, channels=(4, 8))
    assert main([*base, "--weights", other_model[1], "--card", model[3]]) == EXIT_USER_ERROR
    assert "does not fit the network" in capsys.readouterr().err
    assert not (tmp_path / "seg.nii.gz").exists()


@pytest.mark.slow
def test_sigterm_during_inference_exits_130_before_finishing_and_leaves_no_file(tmp_path):
    # No clock: "promptly" is checked as "the run stopped inside inference", by the command's own progress lines.
    folder = tmp_path / "case"
    folder.mkdir()
    big = mri_like((64, 192, 192), spacing=(3.0, 1.0, 1.0))
    imageio.write_image(big, folder / "t1.nrrd", compress=False)
    model = write_model(folder, patch_size=[32, 32])
    before = sorted(p.name for p in folder.iterdir())
    command = [sys.executable, "-c", "import sys; from SpineMetSegLib.cli import main; sys.exit(main())",
               "segment", "--t1", str(folder / "t1.nrrd"), "--output", str(folder / "seg.nii.gz"),
               "--probabilities", str(folder / "prob.nii.gz"), "--device", "cpu", "--threads", "1", *model]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in process.stdout:
            report = parse_progress(line)
            if report is not None and report.stage == "inference" and report.message.startswith("window"):
                break
        else:
            pytest.fail(f"no inference progress before the end: {process.stderr.read()}")
        process.send_signal(signal.SIGTERM)
        rest, error = process.communicate(timeout=HANG_GUARD_S)  # only against a hang; nothing is timed
    finally:
        if process.poll() is None:
            process.kill()
    reports = [report for report in map(parse_progress, [line, *rest.splitlines()]) if report is not None]
    assert process.returncode == EXIT_CANCELLED
    assert "cancelled" in error
    assert sorted(p.name for p in folder.iterdir()) == before  # no output, no partial or temporary file
    assert {r.stage for r in reports} <= {"inference"}, "the run went on past inference after SIGTERM"
    done, total = map(int, reports[-1].message.split()[1].split("/"))
    assert done < total, f"inference finished all {total} windows before stopping"


def test_min_lesion_probability_keeps_exactly_the_lesions_whose_mean_probability_reaches_it(case, tmp_path, capsys):
    inputs, model = case
    base = ["segment", "--t1", str(inputs / "t1.nii.gz"), "--device", "cpu", "--threads", "1", *model]
    assert main([*base, "--output", str(tmp_path / "all.nii.gz"), "--probabilities", str(tmp_path / "p.nii.gz"),
                 "--min-lesion-probability", "0"]) == 0
    labels = sitk.GetArrayFromImage(imageio.read_image(tmp_path / "all.nii.gz"))
    probability = sitk.GetArrayFromImage(imageio.read_image(tmp_path / "p.nii.gz"))
    components, count = ndimage.label(labels == 1, structure=np.ones((3, 3, 3)))
    means = np.array(ndimage.mean(probability, components, np.arange(1, count + 1)))
    assert count >= 3 and np.ptp(means) > 0.02  # the seeded network finds lesions of differing certainty
    # Halfway across the widest gap between neighbouring means near the middle, so rounding cannot decide.
    ordered = np.sort(means)
    middle = np.arange(count // 3, 2 * count // 3)
    widest = middle[np.argmax(ordered[middle + 1] - ordered[middle])]
    threshold = float(ordered[widest] + ordered[widest + 1]) / 2
    assert main([*base, "--output", str(tmp_path / "some.nii.gz"), "--min-lesion-probability", str(threshold)]) == 0
    kept = sitk.GetArrayFromImage(imageio.read_image(tmp_path / "some.nii.gz")) == 1
    expected = np.isin(components, np.flatnonzero(means >= threshold) + 1)
    assert np.array_equal(kept, expected)
    assert f"lesions: {int((means >= threshold).sum())}," in capsys.readouterr().out
    assert main([*base, "--output", str(tmp_path / "x.nii.gz"), "--min-lesion-probability", "1.5"]) == EXIT_USER_ERROR
    assert "between 0 and 1" in capsys.readouterr().err


def test_progress_bar_draws_the_same_events_as_the_protocol_lines(case, tmp_path, capsys):
    from progress_checks import check_bar_shows_the_protocol, check_protocol

    inputs, model = case
    runs = {}
    for choice in ("lines", "bar"):
        code = main(["segment", "--t1", str(inputs / "t1.nii.gz"), "--output", str(tmp_path / f"{choice}.nrrd"),
                     "--device", "cpu", "--progress", choice, *model])
        assert code == 0
        runs[choice] = capsys.readouterr()

    protocol = check_protocol(runs["lines"].out)
    bar = check_bar_shows_the_protocol(runs["bar"].err, protocol)
    assert [stage for stage, _, _ in bar][0] == "read" and bar[-1][:2] == ("done", 100)
    assert "SPINEMETSEG-PROGRESS" not in runs["bar"].out and "wrote" in runs["bar"].out
