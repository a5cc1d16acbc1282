"""``spinemetseg evaluate`` and ``spinemetseg lesions``: what a user sees and the files they get, for one case,
a cohort, real-scan geometry and bad input (exit 2, ``error: ...``, no file left behind)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from lesion_fixtures import LESION_B, SPINE_SPACING_IJK, image_of, spine_anatomy_model

from SpineMetSegLib.analysis import metrics
from SpineMetSegLib.analysis.lesions import LESION_COLUMNS
from SpineMetSegLib.cli import main
from SpineMetSegLib.images import imageio

DESIGN_KEYS = ("dice", "iou", "sensitivity", "specificity", "precision", "hd95_mm", "assd_mm",
               "volume_reference_ml", "volume_prediction_ml")  # fmt: skip
DESIGN_LESION_KEYS = ("reference_count", "prediction_count", "detected", "missed", "false_positive",
                      "sensitivity", "precision", "f1")  # fmt: skip
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def spine_prediction() -> np.ndarray:
    """The spine with lesion B missed (drawn as body) and one false-positive lesion added."""
    prediction = spine_anatomy_model()
    prediction[LESION_B] = 2
    prediction[5:9, 40:50, 10:20] = 1
    return prediction


def write(array: np.ndarray, path: Path) -> Path:
    imageio.write_image(image_of(array, SPINE_SPACING_IJK), path)
    return path


@pytest.fixture
def pair(tmp_path: Path):
    return write(spine_anatomy_model(), tmp_path / "reference.nii.gz"), write(spine_prediction(), tmp_path / "seg.nrrd")


def files_in(folder: Path) -> list:
    return sorted(p.name for p in folder.iterdir())


def test_evaluate_prints_a_table_and_writes_json_csv_and_png(pair, tmp_path: Path, capsys):
    reference, prediction = pair
    out = tmp_path / "out"
    code = main(["evaluate", "--reference", str(reference), "--prediction", str(prediction), "--label", "1",
                 "--json", str(out / "m.json"), "--csv", str(out / "l.csv"), "--png", str(out / "o.png")])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0
    assert "specificity over the whole image grid" in printed
    assert "Lesions missed" in printed and "HD95" in printed
    result = json.loads((out / "m.json").read_text(encoding="utf-8"))
    assert list(result) == ["1"]
    assert all(key in result["1"] for key in DESIGN_KEYS)
    assert all(key in result["1"]["lesions"] for key in DESIGN_LESION_KEYS)
    lesions = result["1"]["lesions"]
    assert (lesions["detected"], lesions["missed"], lesions["false_positive"]) == (2, 1, 1)
    expected = metrics.compute_metrics(imageio.read_image(reference), imageio.read_image(prediction), labels=[1])
    assert result["1"]["dice"] == pytest.approx(expected["1"]["dice"])
    assert f"{expected['1']['dice']:.3f}" in printed
    with open(out / "l.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    statuses = sorted((row["side"], row["status"]) for row in rows)
    assert statuses == [("prediction", "false_positive"), ("prediction", "true_positive"),
                        ("prediction", "true_positive"), ("reference", "detected"), ("reference", "detected"),
                        ("reference", "missed")]  # fmt: skip
    centroids = {
        (float(row["centroid_lps_x"]), float(row["centroid_lps_y"]), float(row["centroid_lps_z"]))
        for row in rows
        if row["side"] == "reference"
    }
    assert (16.2, 37.25, 76.875) in centroids  # lesion A: mean index (18, 74.5, 61.5) times the spacing
    assert (out / "o.png").read_bytes().startswith(PNG_SIGNATURE)
    assert files_in(out) == ["l.csv", "m.json", "o.png"]


def test_evaluate_without_label_reports_every_label(pair, tmp_path: Path):
    reference, prediction = pair
    code = main(["evaluate", "--reference", str(reference), "--prediction", str(prediction),
                 "--json", str(tmp_path / "m.json")])  # fmt: skip
    assert code == 0
    assert list(json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))) == ["1", "2", "3"]


def test_evaluate_lesion_options_reach_the_json(pair, tmp_path: Path):
    reference, prediction = pair
    main(["evaluate", "--reference", str(reference), "--prediction", str(prediction), "--label", "1",
          "--iou-threshold", "0.5", "--min-lesion-volume", "0.3", "--json", str(tmp_path / "m.json")])  # fmt: skip
    lesions = json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))["1"]["lesions"]
    assert lesions["match_rule"] == "intersection over union >= 0.5"
    # Lesions A (0.315 mL) and C (0.648 mL) remain; B (0.288 mL) and the false positive (0.225 mL) are ignored.
    assert (lesions["reference_count"], lesions["prediction_count"], lesions["false_positive"]) == (2, 2, 0)


def test_reference_with_one_value_per_lesion(tmp_path: Path, capsys):
    instances = np.zeros((10, 30, 30), dtype=np.uint16)
    instances[1:4, 2:6, 2:6] = 1
    instances[5:9, 15:25, 15:25] = 2
    reference = write(instances, tmp_path / "lesions.nii.gz")
    prediction = write((instances > 0).astype(np.uint8), tmp_path / "seg.nii.gz")
    assert main(["evaluate", "--reference", str(reference), "--prediction", str(prediction)]) == 2
    assert "--reference-instances" in capsys.readouterr().err
    code = main(["evaluate", "--reference", str(reference), "--prediction", str(prediction), "--label", "1",
                 "--reference-instances", "--json", str(tmp_path / "m.json")])  # fmt: skip
    assert code == 0
    result = json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))["1"]
    assert result["dice"] == 1.0 and result["lesions"]["detected"] == 2


def test_cohort_prints_per_case_rows_and_summaries_and_writes_files(tmp_path: Path, capsys):
    references, predictions, out = tmp_path / "refs", tmp_path / "preds", tmp_path / "out"
    truth = spine_anatomy_model()
    for name, predicted in (("case1", truth), ("case2", spine_prediction()), ("case3", spine_prediction())):
        write(truth, references / f"{name}.nii.gz")
        write(predicted, predictions / f"{name}.nrrd")
    write(truth, references / "unpaired.nii.gz")
    code = main(["evaluate", "--reference-dir", str(references), "--prediction-dir", str(predictions),
                 "--label", "1", "--json", str(out / "c.json"), "--csv", str(out / "c.csv"),
                 "--png", str(out / "box.png")])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0
    assert "unpaired" in captured.err
    assert "mean ± SD" in captured.out and "median" in captured.out
    result = json.loads((out / "c.json").read_text(encoding="utf-8"))
    assert sorted(result["cases"]) == ["case1", "case2", "case3"]
    dices = [result["cases"][name]["1"]["dice"] for name in ("case1", "case2", "case3")]
    summary = result["summary"]["1"]["dice"]
    assert summary["mean"] == pytest.approx(np.mean(dices)) and summary["median"] == pytest.approx(np.median(dices))
    assert summary["sd"] == pytest.approx(np.std(dices, ddof=1)) and summary["n"] == 3
    assert f"{np.mean(dices):.2f}±{np.std(dices, ddof=1):.2f}" in captured.out
    with open(out / "c.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["case"] for row in rows] == ["case1", "case2", "case3"]
    assert rows[1]["lesions_missed"] == "1"
    assert (out / "box.png").read_bytes().startswith(PNG_SIGNATURE)


def test_cohort_case_without_the_label_counts_as_agreement(tmp_path: Path):
    references, predictions = tmp_path / "refs", tmp_path / "preds"
    healthy = spine_anatomy_model()
    healthy[healthy == 1] = 2
    write(healthy, references / "healthy.nii.gz")
    write(healthy, predictions / "healthy.nii.gz")
    write(spine_anatomy_model(), references / "sick.nii.gz")
    write(spine_prediction(), predictions / "sick.nii.gz")
    code = main(["evaluate", "--reference-dir", str(references), "--prediction-dir", str(predictions),
                 "--label", "1", "--json", str(tmp_path / "c.json")])  # fmt: skip
    assert code == 0
    result = json.loads((tmp_path / "c.json").read_text(encoding="utf-8"))
    assert result["cases"]["healthy"]["1"]["dice"] == 1.0
    assert result["summary"]["1"]["hd95_mm"]["n"] == 1  # undefined for the healthy case, left out


def test_non_overlapping_grids_exit_2_and_leave_no_file(tmp_path: Path, capsys):
    reference = write(spine_anatomy_model(), tmp_path / "reference.nii.gz")
    far = image_of(spine_prediction(), SPINE_SPACING_IJK, origin=(900.0, 0.0, 0.0))
    prediction = imageio.write_image(far, tmp_path / "far.nii.gz")
    out = tmp_path / "out"
    out.mkdir()
    code = main(["evaluate", "--reference", str(reference), "--prediction", str(prediction),
                 "--json", str(out / "m.json"), "--csv", str(out / "l.csv"), "--png", str(out / "o.png")])  # fmt: skip
    assert code == 2
    assert capsys.readouterr().err.startswith("error: ") and files_in(out) == []


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda p: p * 0 + (p > 0) * 7, "different label values"),
        (lambda p: p.astype(np.float32) * 0.4, "probability"),
    ],
)
def test_bad_predictions_exit_2_with_a_message(pair, tmp_path: Path, capsys, change, message):
    reference, _ = pair
    prediction = write(change(spine_prediction()), tmp_path / "bad.nii.gz")
    assert main(["evaluate", "--reference", str(reference), "--prediction", str(prediction)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_a_label_in_neither_map_scores_as_agreement_with_a_warning(pair, tmp_path: Path, capsys):
    reference, prediction = pair
    code = main(["evaluate", "--reference", str(reference), "--prediction", str(prediction), "--label", "5",
                 "--json", str(tmp_path / "m.json")])  # fmt: skip
    assert code == 0
    err = capsys.readouterr().err
    assert "warning: label 5 is absent from both the reference and the prediction" in err
    assert "the reference holds 1, 2, 3" in err  # a mistyped value shows itself
    scores = json.loads((tmp_path / "m.json").read_text())["5"]
    assert scores["dice"] == 1.0 and scores["lesions"]["false_positive"] == 0
    code = main(["evaluate", "--reference", str(reference), "--prediction", str(prediction), "--label", "5",
                 "--allow-missing-label"])  # fmt: skip
    assert code == 0
    assert "warning" not in capsys.readouterr().err


def test_a_clean_case_scores_dice_1_no_lesions_no_false_positives_with_a_warning(tmp_path: Path, capsys):
    empty = write(np.zeros_like(spine_anatomy_model()), tmp_path / "clean.nii.gz")
    code = main(["evaluate", "--reference", str(empty), "--prediction", str(empty), "--json",
                 str(tmp_path / "m.json")])  # fmt: skip
    assert code == 0
    assert "warning: label 1 is absent from both the reference and the prediction: scored as agreement" in (
        capsys.readouterr().err)
    scores = json.loads((tmp_path / "m.json").read_text())["1"]
    assert scores["dice"] == 1.0
    assert scores["lesions"]["reference_count"] == 0 and scores["lesions"]["prediction_count"] == 0
    assert scores["lesions"]["false_positive"] == 0


def test_a_label_absent_from_every_case_of_a_cohort_is_still_an_error(tmp_path: Path, capsys):
    for side in ("truth", "pred"):
        (tmp_path / side).mkdir()
        for case in ("a", "b"):
            write(spine_anatomy_model(), tmp_path / side / f"{case}.nii.gz")
    code = main(["evaluate", "--reference-dir", str(tmp_path / "truth"), "--prediction-dir", str(tmp_path / "pred"),
                 "--label", "7"])  # fmt: skip
    assert code == 2
    assert "Label 7 is in no reference and no prediction of the 2 cases" in capsys.readouterr().err


def test_missing_inputs_and_mixed_modes_exit_2(pair, tmp_path: Path, capsys):
    reference, _ = pair
    assert main(["evaluate", "--reference", str(reference), "--prediction", str(tmp_path / "nope.nii.gz")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["evaluate", "--reference", str(reference), "--reference-dir", str(tmp_path)]) == 2
    assert main(["evaluate", "--reference-dir", str(tmp_path), "--prediction-dir", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.count("error: ") == 2


def test_an_output_that_cannot_be_written_exits_2_and_leaves_no_partial_file(pair, tmp_path: Path, capsys):
    reference, prediction = pair
    blocked = tmp_path / "m.json"
    blocked.mkdir()  # a folder where the JSON file should go
    code = main(["evaluate", "--reference", str(reference), "--prediction", str(prediction), "--json", str(blocked)])
    assert code == 2 and capsys.readouterr().err.startswith(f"error: --json {blocked} is a folder")
    assert files_in(tmp_path) == ["m.json", "reference.nii.gz", "seg.nrrd"]


def test_real_scan_geometry_survives_evaluation(real_data_dir: Path):
    """A mask of a real scan (RAS, anisotropic) against the same voxels stored in LPS order: perfect agreement."""
    scan = imageio.read_image(real_data_dir / "sct_t2_lumbar.nii.gz")
    array = sitk.GetArrayFromImage(scan)
    mask = sitk.GetImageFromArray((array > np.percentile(array, 97)).astype(np.uint8))
    mask.CopyInformation(scan)
    reoriented = imageio.reorient(mask, "LPS")
    assert reoriented.GetDirection() != mask.GetDirection()
    block = metrics.compute_metrics(mask, reoriented)["1"]
    assert block["dice"] == 1.0 and block["hd95_mm"] == 0.0 and block["volume_difference_ml"] == 0.0
    assert block["volume_reference_ml"] == pytest.approx(np.count_nonzero(sitk.GetArrayViewFromImage(mask)) / 1000)


def test_lesions_command_prints_the_table_with_the_informational_note(tmp_path: Path, capsys):
    segmentation = write(spine_anatomy_model(), tmp_path / "seg.nii.gz")
    code = main(["lesions", str(segmentation), "--csv", str(tmp_path / "lesions.csv")])
    printed = capsys.readouterr().out
    assert code == 0
    assert "not a treatment recommendation" in printed
    assert "<10 mm to canal" in printed
    with open(tmp_path / "lesions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == LESION_COLUMNS and len(rows) == 3
    assert [row["host_vertebra"] for row in rows] == ["1", "2", "3"]


def test_lesions_command_with_an_absent_label_says_so(tmp_path: Path, capsys):
    segmentation = write(spine_anatomy_model(), tmp_path / "seg.nii.gz")
    assert main(["lesions", str(segmentation), "--label", "7"]) == 0
    assert "no voxel has the label 7 (the map holds 1, 2, 3)" in capsys.readouterr().out
    assert main(["lesions", str(tmp_path / "missing.nii.gz")]) == 2


def test_a_cohort_with_a_clean_case_scores_it_as_agreement(tmp_path: Path, capsys):
    for side, arrays in (("truth", (spine_anatomy_model(), np.zeros_like(spine_anatomy_model()))),
                         ("pred", (spine_anatomy_model(), np.zeros_like(spine_anatomy_model())))):
        (tmp_path / side).mkdir()
        for case, array in zip(("a", "clean"), arrays):
            write(array, tmp_path / side / f"{case}.nii.gz")
    code = main(["evaluate", "--reference-dir", str(tmp_path / "truth"), "--prediction-dir", str(tmp_path / "pred"),
                 "--label", "1", "--json", str(tmp_path / "cohort.json")])  # fmt: skip
    assert code == 0
    cases = json.loads((tmp_path / "cohort.json").read_text())["cases"]
    assert cases["clean"]["1"]["dice"] == 1.0 and cases["clean"]["1"]["lesions"]["false_positive"] == 0
