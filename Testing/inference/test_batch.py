"""``spinemetseg batch`` and ``batch-merge``: DICOM studies and manifests give the label maps ``segment`` gives,
DICOM SEG reads back on the right slices, broken cases are recorded and the rest finish, reruns skip finished
cases, shards cover every case once and merge into the single-run table."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from dicom_fixtures import phantom_images, write_phantom_study
from inference_fixtures import SAGITTAL, ThresholdNet, make_card, mri_like, seeded_network

from SpineMetSegLib.cli import main
from SpineMetSegLib.images import imageio
from SpineMetSegLib.inference import batch, batch_cases
from SpineMetSegLib.models import weights

CARD_OPTIONS = {"patch_size": [32, 32], "spacing_mm": [None, 3.0, 3.0]}


def write_model(folder: Path) -> list:
    card = make_card(**CARD_OPTIONS)
    (folder / "card.json").write_text(json.dumps(card.to_dict()))
    weights.save_state_dict(seeded_network(card, seed=3).state_dict(), folder / "weights.safetensors")
    return ["--weights", str(folder / "weights.safetensors"), "--card", str(folder / "card.json")]


def labels_of(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(imageio.read_image(path))


def read_csv(path: Path) -> list:
    with open(path, newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Three studies (Siemens, GE, and a Philips study whose T1 lost a slice), batch-segmented once."""
    root = tmp_path_factory.mktemp("cohort")
    export = root / "export"
    studies = {
        "siemens": write_phantom_study(export, 1, "siemens", images=phantom_images(1)),
        "ge": write_phantom_study(export, 2, "ge", images=phantom_images(2)),
        "philips": write_phantom_study(export, 3, "philips", flat=True, images=phantom_images(3)),
    }
    (studies["philips"].folder / "201_0005.dcm").unlink()
    model = write_model(root)
    out = root / "out"
    code = main(["batch", str(export), "--output", str(out), "--dicom-seg", "--device", "cpu", "--threads", "1",
                 *model])
    return {"root": root, "export": export, "studies": studies, "model": model, "out": out, "code": code}


def case_folder(cohort, vendor: str) -> Path:
    study = cohort["studies"][vendor]
    matches = [
        folder for folder in (cohort["out"] / "cases").iterdir()
        if json.loads((folder / "case.json").read_text())["study"]["study_instance_uid"] == study.uid
    ]
    assert len(matches) == 1
    return matches[0]


def segment_reference(cohort, vendor: str, output: Path) -> np.ndarray:
    study = cohort["studies"][vendor]
    folders = {role: study.series_folders[study.roles[role]] for role in ("t1", "t2", "stir")}
    code = main(["segment", "--t1", str(folders["t1"]), "--t2", str(folders["t2"]), "--stir", str(folders["stir"]),
                 "--output", str(output), "--device", "cpu", "--threads", "1", *cohort["model"]])
    assert code == 0
    return labels_of(output)


@pytest.mark.slow
def test_a_broken_study_is_recorded_and_the_others_finish(cohort):
    assert cohort["code"] == 1
    failures = read_csv(cohort["out"] / "failures.csv")
    assert len(failures) == 1
    assert failures[0]["case"].startswith("P003_")
    assert "is missing 1 slice(s)" in failures[0]["error"]
    summary = json.loads((cohort["out"] / "summary.json").read_text())
    assert (summary["cases_done"], summary["cases_failed"]) == (2, 1)
    assert (cohort["out"] / "summary.png").stat().st_size > 1000
    assert not [p for p in (cohort["out"] / "cases").iterdir() if p.name.startswith(".")]


@pytest.mark.slow
@pytest.mark.parametrize("vendor", ["siemens", "ge"])
def test_batch_on_dicom_studies_gives_the_label_map_of_segment(cohort, vendor, tmp_path):
    folder = case_folder(cohort, vendor)
    expected = segment_reference(cohort, vendor, tmp_path / "segment.nii.gz")
    assert np.array_equal(labels_of(folder / "labels.nii.gz"), expected)
    assert expected.any()


@pytest.mark.slow
def test_case_json_says_which_series_were_chosen_and_why(cohort):
    facts = json.loads((case_folder(cohort, "siemens") / "case.json").read_text())
    assert {k: v["series_number"] for k, v in facts["inputs"].items()} == cohort["studies"]["siemens"].expected
    assert "T1-weighted" in facts["inputs"]["t1"]["why"]
    assert facts["model"]["name"] == "test-model" and facts["model"]["version"] == "0.0.1"
    assert set(facts["timings_s"]) >= {"read", "preprocess", "inference", "write"}
    assert any("set aside" in line and "localizer" in line for line in facts["series_choice"])
    assert set(facts["outputs"]) == {"labels.nii.gz", "lesions.csv", "segmentation.dcm"}


@pytest.mark.slow
def test_cohort_table_has_every_lesion_of_every_case_with_its_case(cohort):
    rows = read_csv(cohort["out"] / "lesions.csv")
    for vendor in ("siemens", "ge"):
        folder = case_folder(cohort, vendor)
        own = read_csv(folder / "lesions.csv")
        assert [{k: v for k, v in row.items() if k != "case"} for row in rows if row["case"] == folder.name] == own
    cases = {row["case"]: row for row in read_csv(cohort["out"] / "cases.csv")}
    assert sorted(row["status"] for row in cases.values()) == ["done", "done", "failed"]


@pytest.mark.slow
def test_dicom_seg_reads_back_with_the_card_segments_on_the_source_slices(cohort):
    highdicom = pytest.importorskip("highdicom")
    from pydicom import dcmread

    folder = case_folder(cohort, "ge")
    seg = highdicom.seg.segread(folder / "segmentation.dcm")
    card = make_card(**CARD_OPTIONS)
    assert [seg.get_segment_description(label.value).segment_label for label in card.labels] == [
        "metastasis", "vertebral body", "spinal canal"]
    assert seg.get_segment_description(1).segmented_property_type.value == card.labels[0].terminology.type.code
    study = cohort["studies"]["ge"]
    t1_folder = study.series_folders[study.roles["t1"]]
    sources = {ds.SOPInstanceUID: ds for ds in (dcmread(p) for p in sorted(t1_folder.iterdir()))}
    labels = sitk.ReadImage(str(folder / "labels.nii.gz"))
    array = sitk.GetArrayFromImage(labels)
    frames = seg.pixel_array
    checked = 0
    for index, group in enumerate(seg.PerFrameFunctionalGroupsSequence):
        source_uid = group.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        position = [float(v) for v in group.PlanePositionSequence[0].ImagePositionPatient]
        assert np.allclose(position, [float(v) for v in sources[source_uid].ImagePositionPatient], atol=1e-3)
        k = int(labels.TransformPhysicalPointToIndex(position)[2])
        segment = int(group.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        assert np.array_equal(frames[index].astype(bool), array[k] == segment)
        checked += 1
    nonempty = sum(int(np.any(array[k] == v)) for k in range(array.shape[0]) for v in (1, 2, 3))
    assert checked == nonempty > 0


@pytest.mark.slow
def test_a_rerun_skips_verified_cases_and_redoes_a_damaged_one(cohort, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(cohort["out"], out)
    command = ["batch", str(cohort["export"]), "--output", str(out), "--device", "cpu", "--threads", "1",
               *cohort["model"]]
    siemens = out / "cases" / case_folder(cohort, "siemens").name
    before = (siemens / "labels.nii.gz").stat().st_mtime_ns
    capsys.readouterr()
    assert main(command) == 1
    assert "done: 0, already done: 2, failed: 1" in capsys.readouterr().out
    assert (siemens / "labels.nii.gz").stat().st_mtime_ns == before
    (siemens / "lesions.csv").write_text("damaged\n")
    assert main(command) == 1
    assert "done: 1, already done: 1, failed: 1" in capsys.readouterr().out
    assert batch.verified_case(siemens)
    assert main([*command, "--redo"]) == 1
    assert "done: 2, already done: 0, failed: 1" in capsys.readouterr().out


@pytest.mark.slow
def test_batch_on_a_manifest_of_series_folders_gives_the_label_map_of_segment(cohort, tmp_path):
    study = cohort["studies"]["siemens"]
    relative = {role: Path("..") / study.series_folders[study.roles[role]].relative_to(cohort["root"])
                for role in ("t1", "t2", "stir")}
    (tmp_path / "lists").mkdir()
    manifest = tmp_path / "lists" / "cohort.csv"
    shutil.copytree(cohort["export"], tmp_path / "export")
    manifest.write_text("case,t1,t2,stir\n" + f"siemens,{relative['t1']},{relative['t2']},{relative['stir']}\n")
    out = tmp_path / "out"
    code = main(["batch", str(manifest), "--output", str(out), "--dicom-seg", "--device", "cpu", "--threads", "1",
                 *cohort["model"]])
    assert code == 0
    expected = segment_reference(cohort, "siemens", tmp_path / "segment.nii.gz")
    assert np.array_equal(labels_of(out / "cases" / "siemens" / "labels.nii.gz"), expected)
    assert (out / "cases" / "siemens" / "segmentation.dcm").is_file()


def test_a_manifest_without_case_column_is_an_error_with_exit_2(tmp_path, capsys):
    (tmp_path / "m.csv").write_text("name,t1\na,x.nii.gz\n")
    model = write_model(tmp_path)
    assert main(["batch", str(tmp_path / "m.csv"), "--output", str(tmp_path / "out"), *model]) == 2
    assert "has no 'case' column" in capsys.readouterr().err


def nifti_cohort(folder: Path, count: int) -> list:
    """``count`` NIfTI cases with 0 to 2 bright blocks in T1 (lesions for ThresholdNet), as manifest cases."""
    lines = ["case,t1,t2,stir"]
    for index in range(count):
        boxes = [(slice(8, 14), slice(10, 16), slice(2, 6)), (slice(24, 30), slice(30, 36), slice(4, 8))][: index % 3]
        t1 = mri_like((40, 48, 10), spacing=(0.9, 0.8, 3.0), direction=SAGITTAL, seed=index)
        array = sitk.GetArrayFromImage(t1)
        for box in boxes:
            array[box[2], box[1], box[0]] = 1000.0
        image = sitk.GetImageFromArray(array)
        image.CopyInformation(t1)
        names = []
        for sequence, volume in (("t1", image), ("t2", mri_like((40, 48, 10), spacing=(0.9, 0.8, 3.0),
                                                                 direction=SAGITTAL, seed=50 + index))):
            names.append(imageio.write_image(volume, folder / f"case{index}-{sequence}.nii.gz").name)
        lines.append(f"case{index},{names[0]},{names[1]},{names[1]}")
    (folder / "cohort.csv").write_text("\n".join(lines) + "\n")
    return batch_cases.cases_from_manifest(folder / "cohort.csv")


@pytest.mark.slow
def test_shards_cover_every_case_once_and_merge_into_the_single_run_table(tmp_path, capsys):
    cases = nifti_cohort(tmp_path, 5)
    card = make_card(patch_size=[32, 32])
    model = ThresholdNet(in_channels=3)
    single = batch.run_batch(cases, tmp_path / "single", card, model, device="cpu")
    assert len(single.done) == 5
    parts = [batch_cases.shard(cases, index, 2) for index in (1, 2)]
    assert sorted(c.name for part in parts for c in part) == sorted(c.name for c in cases)
    for index, part in enumerate(parts, start=1):
        batch.run_batch(part, tmp_path / f"shard-{index}", card, model, device="cpu")
    code = main(["batch-merge", str(tmp_path / "shard-1"), str(tmp_path / "shard-2"), "--output",
                 str(tmp_path / "merged")])
    assert code == 0
    merged = (tmp_path / "merged" / "lesions.csv").read_text()
    assert merged == (tmp_path / "single" / "lesions.csv").read_text()
    assert len(read_csv(tmp_path / "merged" / "lesions.csv")) == 4  # cases 1 and 4 one lesion, case 2 two
    assert json.loads((tmp_path / "merged" / "summary.json").read_text())["cases_done"] == 5
    assert "cases done: 5, failed: 0, lesions: 4" in capsys.readouterr().out


def test_shard_option_is_checked(tmp_path, capsys):
    model = write_model(tmp_path)
    (tmp_path / "m.csv").write_text("case,t1\na,a.nii.gz\n")
    assert main(["batch", str(tmp_path / "m.csv"), "--output", str(tmp_path / "o"), "--shard", "3/2", *model]) == 2
    assert "--shard takes I/N" in capsys.readouterr().err


def test_a_missing_input_file_fails_its_case_only(tmp_path):
    cases = nifti_cohort(tmp_path, 2)
    (tmp_path / "case0-t1.nii.gz").unlink()
    card = make_card(patch_size=[32, 32])
    report = batch.run_batch(cases, tmp_path / "out", card, ThresholdNet(in_channels=3), device="cpu")
    assert report.done == ["case1"]
    assert report.failed[0][0] == "case0" and "does not exist" in report.failed[0][1]


@pytest.mark.slow
def test_sigterm_stops_after_cleaning_the_current_case_and_keeps_finished_ones(tmp_path):
    import signal
    import subprocess
    import sys

    from SpineMetSegLib.errors import EXIT_CANCELLED
    from SpineMetSegLib.progress import parse_progress

    imageio.write_image(mri_like((40, 48, 10), spacing=(0.9, 0.8, 3.0)), tmp_path / "small.nii.gz")
    imageio.write_image(mri_like((64, 192, 192), spacing=(3.0, 1.0, 1.0)), tmp_path / "big.nrrd", compress=False)
    (tmp_path / "cohort.csv").write_text("case,t1\nsmall,small.nii.gz\nbig,big.nrrd\n")
    card = make_card(patch_size=[32, 32])
    (tmp_path / "card.json").write_text(json.dumps(card.to_dict()))
    weights.save_state_dict(seeded_network(card).state_dict(), tmp_path / "w.safetensors")
    out = tmp_path / "out"
    command = [sys.executable, "-c", "import sys; from SpineMetSegLib.cli import main; sys.exit(main())", "batch",
               str(tmp_path / "cohort.csv"), "--output", str(out), "--device", "cpu", "--threads", "1",
               "--weights", str(tmp_path / "w.safetensors"), "--card", str(tmp_path / "card.json")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in process.stdout:
            report = parse_progress(line)
            if report is not None and report.stage == "batch" and report.message.startswith("case 2/2"):
                break
        else:
            pytest.fail(f"the batch never reached its second case: {process.stderr.read()}")
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert code == EXIT_CANCELLED
    assert "the case in progress was removed" in process.stderr.read()
    assert sorted(p.name for p in (out / "cases").iterdir()) == ["small"]
    assert batch.verified_case(out / "cases" / "small")
    assert [row["case"] for row in read_csv(out / "cases.csv")] == ["small"]


def test_an_output_that_is_a_file_is_an_error_with_exit_2(tmp_path, capsys):
    nifti_cohort(tmp_path, 1)
    model = write_model(tmp_path)
    (tmp_path / "taken").write_text("a file")
    code = main(["batch", str(tmp_path / "cohort.csv"), "--output", str(tmp_path / "taken"), *model])
    assert code == 2
    assert "Cannot use" in capsys.readouterr().err
    assert (tmp_path / "taken").read_text() == "a file"


def test_progress_lines_and_bar_report_each_case_from_the_same_events(tmp_path, capsys):
    from progress_checks import check_bar_shows_the_protocol, check_protocol

    imageio.write_image(mri_like((40, 48, 10), spacing=(0.9, 0.8, 3.0)), tmp_path / "small.nii.gz")
    (tmp_path / "cohort.csv").write_text("case,t1\none,small.nii.gz\ntwo,small.nii.gz\nbad,missing.nii.gz\n")
    card = make_card(patch_size=[32, 32])
    (tmp_path / "card.json").write_text(json.dumps(card.to_dict()))
    weights.save_state_dict(seeded_network(card).state_dict(), tmp_path / "w.safetensors")
    model = ["--weights", str(tmp_path / "w.safetensors"), "--card", str(tmp_path / "card.json")]

    outputs = {}
    for choice in ("lines", "bar"):
        code = main(["batch", str(tmp_path / "cohort.csv"), "--output", str(tmp_path / choice), "--device", "cpu",
                     "--threads", "1", "--progress", choice, *model])
        assert code == 1  # the missing file fails its case; the others are done
        outputs[choice] = capsys.readouterr()

    events = check_protocol(outputs["lines"].out)
    assert [(stage, percent) for stage, percent, _ in events] == [
        ("batch", 0), ("batch", 33), ("batch", 33), ("batch", 67), ("batch", 67), ("batch", 100), ("done", 100)]
    # A case starts ("case 2/3 two") where the one before ended ("1/3 cases, elapsed ..., remaining ...: one ...").
    assert [message.split(" ")[:2] for _, _, message in events[0:6:2]] == [["case", "1/3"], ["case", "2/3"],
                                                                           ["case", "3/3"]]
    assert re.fullmatch(r"1/3 cases, elapsed 0:\d\d, remaining ~0:\d\d: one: \d+ lesion\(s\)", events[1][2])
    assert "bad FAILED" in events[5][2] and events[6][2] == "2 done, 0 skipped, 1 failed"
    # The bar in a log draws a line per 5 %: the end of each case, which says what became of it.
    bar = check_bar_shows_the_protocol(outputs["bar"].err, events)
    assert [message.split(": ")[1].split(" ")[0] for _, _, message in bar[1:4]] == ["one", "two", "bad"]
    assert "SPINEMETSEG-PROGRESS" not in outputs["bar"].out
