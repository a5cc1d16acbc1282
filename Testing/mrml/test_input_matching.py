"""The panel's auto-fill on volumes loaded from DICOM: the tag recogniser decides (as ``batch`` does), names are
the fallback for volumes without DICOM headers. Real MRML scene (slicer-core), real DICOM files."""

from __future__ import annotations

import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core is not installed (pip install slicer-core)")

from dicom_fixtures import phantom_images, write_phantom_study  # noqa: E402
from pydicom import dcmread  # noqa: E402

from SpineMetSegLib.dicom import headers  # noqa: E402
from SpineMetSegLib.mrml import scene as mrml_scene  # noqa: E402
from SpineMetSegLib.mrml.application import MRMLContext  # noqa: E402
from SpineMetSegLib.mrml.input_matching import DICOM_INSTANCE_UIDS, match_volume_nodes  # noqa: E402


@pytest.fixture(scope="module")
def ge_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("dicom")
    study = write_phantom_study(root, 2, "ge", images=phantom_images(2))
    files = {}
    for series in headers.scan_studies(root)[study.uid].series:
        files[series.number] = {str(dcmread(path, stop_before_pixels=True).SOPInstanceUID): str(path)
                                for path in series.sorted_files()}
    return study, files


def load_like_slicer(scene, files, number: int, name: str):
    """A volume node as Slicer's DICOM module leaves it: the image, a name, the slices' SOP instance UIDs."""
    image = phantom_images(2)["t1"]
    node = mrml_scene.add_volume_node(scene, image, name)
    node.SetAttribute(DICOM_INSTANCE_UIDS, " ".join(files[number]))
    return node


@pytest.mark.slow
def test_volumes_from_dicom_are_matched_by_their_tags_not_their_names(ge_study):
    _study, files = ge_study
    scene = MRMLContext.standalone().scene
    lookup = {uid: path for per_series in files.values() for uid, path in per_series.items()}
    # Scene order puts the contrast-enhanced T1 first: by name it would fill the T1 selector.
    nodes = {number: load_like_slicer(scene, files, number, name) for number, name in (
        (8, "8: Sag T1 FSE +C"), (3, "3: Sag T1 FSE"), (4, "4: Sag T2 FSE"), (6, "6: Ax T2 FSE"), (5, "5: Sag STIR"))}

    matched = match_volume_nodes(scene, file_for_instance=lookup.get)

    assert matched == {"t1": nodes[3], "t2": nodes[4], "stir": nodes[5]}
    assert match_volume_nodes(scene)["t1"] is nodes[8]  # what names alone would choose


def test_volumes_without_dicom_headers_still_fill_by_name(ge_study):
    _study, files = ge_study
    scene = MRMLContext.standalone().scene
    lookup = {uid: path for per_series in files.values() for uid, path in per_series.items()}
    t1 = load_like_slicer(scene, files, 3, "3: Sag T1 FSE")
    stir_file = mrml_scene.add_volume_node(scene, phantom_images(2)["stir"], "sag_stir_from_nifti")

    assert match_volume_nodes(scene, file_for_instance=lookup.get) == {"t1": t1, "stir": stir_file}
