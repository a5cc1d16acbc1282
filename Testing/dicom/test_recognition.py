"""Sequence recognition from DICOM tags: the right sagittal T1, T2 and STIR of studies from three scanner makes,
with reasons; distractors set aside; clear messages when nothing fits; missing slices refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from dicom_fixtures import phantom_images, write_phantom_study

from SpineMetSegLib.dicom import headers, recognition
from SpineMetSegLib.dicom.series_io import StudyTags, read_series, write_series
from SpineMetSegLib.errors import ImageError, SpineMetSegError


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """One folder with a Siemens, a GE and a Philips study (the Philips one with every file in one folder)."""
    root = tmp_path_factory.mktemp("export")
    images = phantom_images(1)
    studies = {vendor: write_phantom_study(root, seed, vendor, flat=vendor == "philips", images=images)
               for seed, vendor in ((1, "siemens"), (2, "ge"), (3, "philips"))}
    return root, studies


@pytest.mark.slow
def test_studies_are_told_apart_by_uid_whatever_the_folders(export):
    root, written = export
    slices = phantom_images(1)["t1"].GetSize()[2]
    studies = headers.scan_studies(root)
    assert set(studies) == {study.uid for study in written.values()}
    philips = studies[written["philips"].uid]
    assert sorted(s.number for s in philips.series) == [101, 201, 301, 401, 501, 601, 701]
    assert all(len(s.files) == slices for s in philips.series if s.number in (201, 301, 501))


@pytest.mark.parametrize("vendor", ["siemens", "ge", "philips"])
def test_recogniser_picks_the_sagittal_t1_t2_and_stir_of_each_make(export, vendor):
    root, written = export
    study = headers.scan_studies(root)[written[vendor].uid]
    choice = recognition.choose_series(study.series)
    assert {kind: c.series.number for kind, c in choice.chosen.items()} == written[vendor].expected
    assert all(c.confidence == recognition.CONFIDENCE_AGREE for c in choice.chosen.values())
    assert "T1-weighted" in choice.chosen["t1"].reason and "TR" in choice.chosen["t1"].reason
    assert "T2-weighted" in choice.chosen["t2"].reason
    assert "inversion" in choice.chosen["stir"].reason and "TI 1" in choice.chosen["stir"].reason


@pytest.mark.parametrize("vendor", ["siemens", "ge", "philips"])
def test_localiser_axial_and_contrast_enhanced_t1_are_set_aside_with_the_reason(export, vendor):
    root, written = export
    study = headers.scan_studies(root)[written[vendor].uid]
    why = {series.number: reason for series, reason in recognition.choose_series(study.series).rejected}
    roles = written[vendor].roles
    assert why[roles["localiser"]] == "localiser"
    assert why[roles["axial"]] == "axial, not sagittal"
    assert why[roles["contrast"]].startswith("contrast-enhanced")
    if "dwi" in roles:
        assert why[roles["dwi"]] == "diffusion-weighted"


def test_a_fat_suppressed_t2_is_listed_beside_the_true_stir(export):
    root, written = export
    study = headers.scan_studies(root)[written["philips"].uid]
    choice = recognition.choose_series(study.series)
    others = choice.alternatives["stir"]
    assert [c.series.number for c in others] == [written["philips"].roles["fat-sat t2"]]
    assert "fat-suppressed" in others[0].reason
    described = "\n".join(choice.describe())
    assert "also STIR: #401 'T2W_SPAIR SAG'" in described
    assert "set aside: #101 'Survey': localiser" in described


def _series(**tags) -> headers.Series:
    base = dict(uid="1", study_uid="2", number=1, description="", protocol="", sequence_name="", modality="MR",
                manufacturer="", image_type=("ORIGINAL", "PRIMARY"), scanning_sequence=("SE",),
                sequence_variant=(), scan_options=(), repetition_time=None, echo_time=None, inversion_time=None,
                contrast_agent="", orientations=((0.0, 1.0, 0.0, 0.0, 0.0, -1.0),))
    base.update(tags)
    series = headers.Series(**base)
    series.files = [Path(f"{i}.dcm") for i in range(12)]
    return series


def test_the_name_alone_decides_with_less_confidence_when_timing_tags_are_missing():
    candidate, _ = recognition.classify_series(_series(description="SAG T2 FRFSE"))
    assert (candidate.sequence, candidate.confidence) == ("t2", recognition.CONFIDENCE_NAME)


def test_tags_win_over_a_misleading_name_and_the_reason_says_so():
    candidate, _ = recognition.classify_series(_series(description="sag T2", repetition_time=500, echo_time=10))
    assert (candidate.sequence, candidate.confidence) == ("t1", recognition.CONFIDENCE_DISAGREE)
    assert "says T2 (tags win)" in candidate.reason


@pytest.mark.parametrize(
    ("tags", "reason"),
    [
        ({"description": "sag T12 level"}, "weighting not recognised"),
        ({"description": "sag flair", "scanning_sequence": ("SE", "IR"), "repetition_time": 9000,
          "echo_time": 100, "inversion_time": 2500}, "FLAIR"),
        ({"description": "sag pd", "repetition_time": 3000, "echo_time": 20}, "proton-density"),
        ({"description": "sag T1 fs", "repetition_time": 500, "echo_time": 10, "scan_options": ("FS",)},
         "fat-suppressed T1"),
        ({"description": "SAG T1", "orientations": ((1.0, 0, 0, 0, 1.0, 0), (0, 1.0, 0, 0, 0, -1.0))},
         "2 orientations"),
        ({"description": "sag T1 post", "repetition_time": 500, "echo_time": 10}, "contrast-enhanced"),
        ({"description": "cor T1", "orientations": ((1.0, 0, 0, 0, 0, -1.0),)}, "coronal, not sagittal"),
    ],
)
def test_series_that_are_no_spine_t1_t2_or_stir_are_set_aside(tags, reason):
    candidate, why = recognition.classify_series(_series(**tags))
    assert candidate is None
    assert reason in why


def test_no_usable_series_gives_a_message_naming_what_was_found(export):
    root, written = export
    study = headers.scan_studies(root)[written["ge"].uid]
    kept = [s for s in study.series if s.number in (1, 6, 8)]
    with pytest.raises(SpineMetSegError) as raised:
        recognition.choose_series(kept).require(["t1", "t2", "stir"], 1)
    message = str(raised.value)
    assert "No usable sagittal T1, T2, STIR series" in message
    assert "#1 '3-Plane Loc' (localiser)" in message and "#6 'Ax T2 FSE' (axial, not sagittal)" in message
    assert "#8 'Sag T1 FSE +C' (contrast-enhanced" in message


@pytest.mark.slow
def test_a_series_reads_back_as_the_volume_that_was_written(tmp_path):
    image = phantom_images(4)["t1"]
    write_series(image, tmp_path / "t1", study=StudyTags("1.2.3"), series_number=3, tags={"RepetitionTime": 500})
    series = headers.scan_series_folder(tmp_path)
    volume = read_series(series)
    assert np.allclose(volume.GetDirection(), image.GetDirection(), atol=1e-5)
    assert np.allclose(volume.GetOrigin(), image.GetOrigin(), atol=1e-4)
    assert np.allclose(volume.GetSpacing(), image.GetSpacing(), atol=1e-4)
    expected = np.clip(np.round(sitk.GetArrayFromImage(image)), 0, None)
    assert np.array_equal(sitk.GetArrayFromImage(volume), expected)


@pytest.mark.slow
def test_a_series_with_a_missing_slice_is_refused_with_where_it_is_missing(tmp_path):
    files = write_series(phantom_images(4)["t2"], tmp_path / "t2", study=StudyTags("1.2.3"), series_number=2)
    files[6].unlink()
    series = headers.scan_series_folder(tmp_path)
    offsets = sorted(series.slice_offsets())
    gap = next(index for index in range(len(offsets) - 1) if offsets[index + 1] - offsets[index] > 1.5 * (
        offsets[1] - offsets[0]))
    # The same reader and message as segment's: how many slices are missing, and between which positions.
    with pytest.raises(ImageError, match=rf"DICOM series #2 .* is missing 1 slice\(s\) \(1 between "
                                         rf"{offsets[gap]:.1f} and {offsets[gap + 1]:.1f} mm along the slice normal"):
        read_series(series)


def test_a_folder_without_dicom_images_is_an_error_saying_so(tmp_path):
    (tmp_path / "notes.txt").write_text("not dicom")
    with pytest.raises(ImageError, match="No DICOM MR image under"):
        headers.scan_studies(tmp_path)
