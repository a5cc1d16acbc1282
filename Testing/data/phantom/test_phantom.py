"""The synthetic spine MRI engine: anatomy, lesions, contrasts, geometry, files and command line.

Cases are picked by searching seeds with ``plan_case`` (cheap: nothing is rendered) for what a test needs, so
the tests keep working when the random draws change; rendered cases are cached and shared between tests.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from SpineMetSegLib.cli import main
from SpineMetSegLib.data.phantom import generate_case, model_target, write_case
from SpineMetSegLib.data.phantom.anatomy import LEVELS
from SpineMetSegLib.data.phantom.case import plan_case
from SpineMetSegLib.data.phantom.rendering import voxelize
from SpineMetSegLib.errors import SpineMetSegError
from SpineMetSegLib.images.imageio import Geometry
from SpineMetSegLib.labels import LOOK_ALIKE_TISSUES, PHANTOM_TO_MODEL, Anatomy, ModelLabel

SEARCH_SEEDS = 400
SMALL_MATRIX = 288  # in-plane size of the "small" sagittal cases the tests render
CASE_FILES = {"t1.nii.gz", "t2.nii.gz", "stir.nii.gz", "lesions.nii.gz", "anatomy.nii.gz", "case.json"}
LOCAL_MARGIN_MM = 20.0  # marrow within this distance of a lesion is its local reference


@cache
def case_of(seed: int, acquisition: str = "sagittal2d", contrast: str = "standard"):
    return generate_case(seed, acquisition=acquisition, contrast=contrast)


def find_seeds(predicate, count: int, acquisition: str = "sagittal2d", small: bool = True) -> list:
    """The first ``count`` seeds whose plan satisfies ``predicate`` (and is small, when asked)."""
    found = []
    for seed in range(SEARCH_SEEDS):
        plan = plan_case(seed, acquisition=acquisition)
        if small and acquisition == "sagittal2d" and plan.acquisition.size[0] > SMALL_MATRIX:
            continue
        if predicate(plan):
            found.append(seed)
            if len(found) == count:
                return found
    pytest.fail(f"fewer than {count} of {SEARCH_SEEDS} seeds give the case this test needs")


def arrays(case):
    images = {name: sitk.GetArrayFromImage(image) for name, image in case.images.items()}
    return images, sitk.GetArrayFromImage(case.lesions), sitk.GetArrayFromImage(case.anatomy)


def local_mask(case, mask: np.ndarray) -> np.ndarray:
    """Voxels within LOCAL_MARGIN_MM (box) of ``mask``: where the bias field is about the same."""
    spacing_kji = np.array(case.lesions.GetSpacing())[::-1]
    margin = np.ceil(LOCAL_MARGIN_MM / spacing_kji).astype(int)
    where = np.argwhere(mask)
    low = np.maximum(where.min(axis=0) - margin, 0)
    high = where.max(axis=0) + margin + 1
    box = np.zeros(mask.shape, dtype=bool)
    box[low[0] : high[0], low[1] : high[1], low[2] : high[2]] = True
    return box


def lesion_and_marrow_means(case, lesion_id: int) -> dict:
    images, lesions, anatomy = arrays(case)
    lesion = lesions == lesion_id
    marrow = (anatomy == Anatomy.MARROW) & (lesions == 0) & local_mask(case, lesion)
    return {name: (float(image[lesion].mean()), float(image[marrow].mean())) for name, image in images.items()}


def big_lesion_of_kind(kind: str):
    return lambda plan: any(m.kind == kind and m.nominal_diameter > 12 for m in plan.findings.metastases)


def ids_of_kind(case, kind: str, min_voxels: int = 30) -> list:
    lesions = case.info["lesions"]
    return [lesion["id"] for lesion in lesions if lesion["type"] == kind and lesion["voxels"] >= min_voxels]


# --- contrasts: the labels agree with the images -------------------------------------------------------------


def test_lytic_metastasis_is_darker_than_marrow_on_t1_and_brighter_on_t2_and_stir():
    checked = 0
    for seed in find_seeds(big_lesion_of_kind("lytic"), 3):
        case = case_of(seed)
        for lesion_id in ids_of_kind(case, "lytic"):
            means = lesion_and_marrow_means(case, lesion_id)
            assert means["t1"][0] < means["t1"][1], (seed, lesion_id, means)
            assert means["t2"][0] > means["t2"][1], (seed, lesion_id, means)
            assert means["stir"][0] > means["stir"][1], (seed, lesion_id, means)
            checked += 1
    assert checked >= 3


def test_sclerotic_metastasis_is_darker_than_marrow_on_t1_and_t2():
    checked = 0
    for seed in find_seeds(big_lesion_of_kind("sclerotic"), 3):
        case = case_of(seed)
        for lesion_id in ids_of_kind(case, "sclerotic"):
            means = lesion_and_marrow_means(case, lesion_id)
            assert means["t1"][0] < means["t1"][1], (seed, lesion_id, means)
            assert means["t2"][0] < means["t2"][1], (seed, lesion_id, means)
            checked += 1
    assert checked >= 3


def test_mixed_metastasis_has_both_lytic_and_sclerotic_parts():
    seed = find_seeds(big_lesion_of_kind("mixed"), 1)[0]
    case = case_of(seed)
    fractions = [lesion["sclerotic_fraction"] for lesion in case.info["lesions"] if lesion["type"] == "mixed"]
    assert any(f is not None and 0.05 < f < 0.95 for f in fractions), fractions


def test_haemangioma_is_brighter_than_marrow_on_t1_and_t2():
    def has_haemangioma(plan):
        return any(f.kind == "haemangioma" and f.nominal_diameter > 8 for f in plan.findings.look_alikes)

    for seed in find_seeds(has_haemangioma, 3):
        images, lesions, anatomy = arrays(case_of(seed))
        haemangioma = anatomy == Anatomy.HAEMANGIOMA
        assert haemangioma.any(), seed
        marrow = (anatomy == Anatomy.MARROW) & (lesions == 0) & local_mask(case_of(seed), haemangioma)
        for name in ("t1", "t2"):
            assert images[name][haemangioma].mean() > images[name][marrow].mean(), (seed, name)


def test_focal_fat_is_bright_on_t1_and_dark_on_stir():
    def has_focal_fat(plan):
        return any(f.kind == "focal_fat" and f.nominal_diameter > 8 for f in plan.findings.look_alikes)

    seed = find_seeds(has_focal_fat, 1)[0]
    images, lesions, anatomy = arrays(case_of(seed))
    fat = anatomy == Anatomy.FOCAL_FAT
    marrow = (anatomy == Anatomy.MARROW) & (lesions == 0) & local_mask(case_of(seed), fat)
    csf = anatomy == Anatomy.CSF
    assert images["t1"][fat].mean() > images["t1"][marrow].mean()
    assert images["stir"][fat].mean() < images["stir"][csf].mean()


def test_csf_is_bright_on_t2_and_dark_on_t1_and_fat_is_dark_on_stir():
    images, _, anatomy = arrays(case_of(find_seeds(lambda plan: True, 1)[0]))
    csf = anatomy == Anatomy.CSF
    fat = anatomy == Anatomy.SUBCUTANEOUS_FAT
    muscle = anatomy == Anatomy.MUSCLE
    assert images["t2"][csf].mean() > images["t2"][muscle].mean()
    assert images["t1"][csf].mean() < images["t1"][muscle].mean()
    assert images["t1"][fat].mean() > images["t1"][muscle].mean()
    assert images["stir"][fat].mean() < images["stir"][csf].mean()


# --- label maps ----------------------------------------------------------------------------------------------


def test_look_alikes_are_marked_in_anatomy_and_never_in_the_lesion_map():
    def both(plan):
        return len(plan.findings.look_alikes) >= 2 and len(plan.findings.metastases) >= 2

    for seed in find_seeds(both, 3):
        _, lesions, anatomy = arrays(case_of(seed))
        look_alike = np.isin(anatomy, [int(t) for t in LOOK_ALIKE_TISSUES])
        assert look_alike.any(), seed
        assert not np.any(lesions[look_alike]), seed


def test_lesions_lie_in_bone_or_in_the_canal_by_epidural_extension():
    bone = [int(Anatomy.MARROW), int(Anatomy.CORTICAL_BONE), int(Anatomy.PEDICLE)]
    canal = [int(Anatomy.EPIDURAL_FAT), int(Anatomy.CSF)]
    total = in_bone = 0
    for seed in find_seeds(lambda plan: len(plan.findings.metastases) >= 3, 4):
        case = case_of(seed)
        _, lesions, anatomy = arrays(case)
        hosts = anatomy[lesions > 0]
        assert np.isin(hosts, bone + canal).all(), seed
        total += hosts.size
        in_bone += int(np.isin(hosts, bone).sum())
        for lesion in case.info["lesions"]:
            if lesion["epidural"]:
                assert lesion["site"] == "epidural"
    assert in_bone / total > 0.9


def test_case_info_describes_each_labelled_lesion():
    seed = find_seeds(lambda plan: len(plan.findings.metastases) >= 3, 1)[0]
    case = case_of(seed)
    _, lesions, _ = arrays(case)
    voxel_ml = np.prod(case.lesions.GetSpacing()) / 1000
    listed = case.info["lesions"]
    assert [lesion["id"] for lesion in listed] == list(range(1, len(listed) + 1))
    assert set(np.unique(lesions)) == set(range(len(listed) + 1))
    names = [v["name"] for v in case.info["vertebrae"]]
    for lesion in listed:
        count = int(np.count_nonzero(lesions == lesion["id"]))
        assert lesion["voxels"] == count
        assert lesion["volume_ml"] == pytest.approx(count * voxel_ml, rel=1e-3, abs=1e-4)
        assert lesion["type"] in ("lytic", "sclerotic", "mixed")
        assert lesion["vertebra"] in names
        for flag in ("reaches_pedicle", "reaches_posterior_wall", "epidural"):
            assert isinstance(lesion[flag], bool)


def test_lesion_count_is_0_to_6_and_diameters_3_to_40_mm_across_seeds():
    counts, diameters, kinds, sites = [], [], set(), set()
    for seed in range(200):
        metastases = plan_case(seed).findings.metastases
        counts.append(len(metastases))
        diameters += [m.nominal_diameter for m in metastases]
        kinds |= {m.kind for m in metastases}
        sites |= {m.site for m in metastases}
    assert min(counts) == 0 and max(counts) == 6
    assert 3.0 <= min(diameters) < 5.0 and 30.0 < max(diameters) <= 40.0
    assert kinds == {"lytic", "sclerotic", "mixed"}
    assert sites == {"body", "posterior_wall", "pedicle", "epidural"}


def test_labelled_lesions_fit_inside_their_nominal_diameter():
    for seed in find_seeds(lambda plan: len(plan.findings.metastases) >= 3, 3):
        case = case_of(seed)
        spacing_kji = np.array(case.lesions.GetSpacing())[::-1]
        _, lesions, _ = arrays(case)
        for lesion in case.info["lesions"]:
            voxels = np.argwhere(lesions == lesion["id"]) * spacing_kji
            # Longest distance between voxel centres along each grid axis, one voxel of slack for partial volume.
            extent = voxels.max(axis=0) - voxels.min(axis=0)
            assert np.all(extent <= lesion["diameter_mm"] + spacing_kji), (seed, lesion)


def test_flags_report_lesions_reaching_pedicle_posterior_wall_and_epidural_space():
    flags = {"reaches_pedicle": False, "reaches_posterior_wall": False, "epidural": False}
    for seed in find_seeds(
        lambda plan: any(m.site == "epidural" and m.nominal_diameter > 10 for m in plan.findings.metastases), 2
    ):
        for lesion in case_of(seed).info["lesions"]:
            for flag in flags:
                flags[flag] |= lesion[flag]
    for seed in find_seeds(
        lambda plan: any(m.site == "pedicle" and m.nominal_diameter > 10 for m in plan.findings.metastases), 2
    ):
        for lesion in case_of(seed).info["lesions"]:
            flags["reaches_pedicle"] |= lesion["reaches_pedicle"]
    assert all(flags.values()), flags


def test_model_target_maps_anatomy_to_model_labels_and_paints_lesions_as_metastasis():
    case = case_of(find_seeds(lambda plan: len(plan.findings.metastases) >= 1, 1)[0])
    _, lesions, anatomy = arrays(case)
    target_image = model_target(case)
    target = sitk.GetArrayFromImage(target_image)
    assert Geometry.of(target_image).matches(Geometry.of(case.anatomy))
    assert np.all(target[lesions > 0] == ModelLabel.METASTASIS)
    outside = lesions == 0
    expected = np.vectorize(lambda t: PHANTOM_TO_MODEL.get(int(t), 0))(np.arange(256))[anatomy]
    assert np.array_equal(target[outside], expected[outside])
    assert {int(v) for v in np.unique(target)} == {0, 1, 2, 3}


# --- anatomy ---------------------------------------------------------------------------------------------------


def test_each_case_shows_5_to_9_named_consecutive_vertebrae():
    for seed in range(100):
        spine = plan_case(seed).spine
        visible = [spine.names[k] for k in spine.visible]
        assert 5 <= len(visible) <= 9
        indices = [LEVELS.index(name) for name in visible[::-1]]
        assert indices == list(range(indices[0], indices[0] + len(visible)))
        assert all(re.fullmatch(r"[TL]\d{1,2}", name) for name in visible)
    info = case_of(find_seeds(lambda plan: True, 1)[0]).info["vertebrae"]
    assert 5 <= sum(v["fully_in_view"] for v in info) <= 9


def test_spine_is_curved_in_the_sagittal_plane():
    """The centre line bends (lordosis or kyphosis): its direction changes by several degrees along the view."""
    for seed in range(10):
        spine = plan_case(seed).spine
        low, high = spine.centre_s[spine.visible[0]], spine.centre_s[spine.visible[-1]]
        inside = (spine.curve_s > low) & (spine.curve_s < high)
        angles = np.degrees(np.arctan2(spine.curve_ty[inside], spine.curve_tz[inside]))
        assert np.ptp(angles) > 3.0, seed


def test_every_tissue_class_appears_in_the_anatomy_map():
    seen = set()
    for seed in find_seeds(lambda plan: len(plan.findings.look_alikes) >= 3, 3):
        seen |= set(np.unique(arrays(case_of(seed))[2]).tolist())
    base = {t for t in Anatomy if t not in LOOK_ALIKE_TISSUES}
    assert base <= seen, sorted(Anatomy(t).name for t in base - seen)


# --- geometry ----------------------------------------------------------------------------------------------------


def test_sagittal_acquisitions_have_clinical_resolution_and_slice_axis_left_right():
    for seed in range(60):
        acquisition = plan_case(seed, acquisition="sagittal2d").acquisition
        columns, rows, slices = acquisition.size
        assert columns == rows <= 512 and 12 <= slices <= 20
        assert 0.5 - 1e-9 <= acquisition.spacing[0] == acquisition.spacing[1] <= 1.0 + 1e-9
        assert 3.0 <= acquisition.slice_thickness <= 5.0
        assert acquisition.slice_thickness <= acquisition.spacing[2] <= 1.2 * acquisition.slice_thickness + 1e-9
        direction = np.reshape(acquisition.direction, (3, 3))
        assert np.allclose(direction.T @ direction, np.eye(3), atol=1e-9)
        assert np.linalg.det(direction) == pytest.approx(1.0)
        # Slice normal along left-right, tilted by at most a few degrees (oblique).
        assert abs(direction[0, 2]) > np.cos(np.radians(8))


def test_iso3d_acquisition_is_1_mm_isotropic():
    for seed in range(20):
        acquisition = plan_case(seed, acquisition="iso3d").acquisition
        assert acquisition.spacing == (1.0, 1.0, 1.0)
        assert min(acquisition.size) >= 40


def test_images_and_label_maps_share_one_grid_with_the_documented_pixel_types():
    case = case_of(find_seeds(lambda plan: True, 1)[0])
    reference = Geometry.of(case.anatomy)
    for name in ("t1", "t2", "stir"):
        assert case.images[name].GetPixelID() == sitk.sitkFloat32
        assert Geometry.of(case.images[name]).matches(reference)
    assert case.lesions.GetPixelID() == sitk.sitkUInt16
    assert case.anatomy.GetPixelID() == sitk.sitkUInt8
    assert Geometry.of(case.lesions).matches(reference)
    assert reference.size == tuple(case.info["acquisition"]["size"])


def test_thick_slices_average_tissues_through_the_slice_partial_volume():
    seed = find_seeds(lambda plan: plan.acquisition.slice_thickness >= 4.0, 1)[0]
    plan = plan_case(seed, acquisition="sagittal2d")
    grid = voxelize(plan.spine, plan.findings, plan.acquisition, plan.table)
    t2 = grid.intensity[1]
    centre_value = plan.table.mean[1][grid.painted]
    mixed = ~np.isclose(t2, centre_value, rtol=1e-4, atol=1e-6)
    # Some voxels (tissue edges crossing the slice) mix tissues, most do not.
    assert 0.001 < mixed.mean() < 0.5


@pytest.mark.slow
def test_a_real_sized_sagittal_case_renders_on_512_by_512():
    seed = find_seeds(lambda plan: plan.acquisition.size[0] == 512, 1, small=False)[0]
    case = case_of(seed)
    size = case.anatomy.GetSize()
    assert size[:2] == (512, 512) and 12 <= size[2] <= 20
    images, lesions, anatomy = arrays(case)
    assert all(np.isfinite(image).all() and image.min() >= 0 for image in images.values())
    assert (anatomy == Anatomy.MARROW).sum() > 0.01 * anatomy.size


# --- contrast modes ------------------------------------------------------------------------------------------------


def test_randomized_contrast_changes_intensities_but_not_labels_and_lesions_still_differ_from_marrow():
    seed = find_seeds(big_lesion_of_kind("lytic"), 1)[0]
    standard = case_of(seed)
    randomized = case_of(seed, contrast="randomized")
    _, lesions, anatomy = arrays(standard)
    _, lesions_r, anatomy_r = arrays(randomized)
    assert np.array_equal(lesions, lesions_r) and np.array_equal(anatomy, anatomy_r)
    standard_table = standard.info["sequences"]["t1"]["tissue_intensity"]
    random_table = randomized.info["sequences"]["t1"]["tissue_intensity"]
    assert standard_table != random_table
    for lesion_id in ids_of_kind(randomized, "lytic"):
        means = lesion_and_marrow_means(randomized, lesion_id)
        contrasts = [abs(lesion - marrow) / max(lesion, marrow) for lesion, marrow in means.values()]
        assert max(contrasts) > 0.2, means


def test_bad_arguments_raise_a_clear_error():
    with pytest.raises(SpineMetSegError, match="seed"):
        generate_case(-1)
    with pytest.raises(SpineMetSegError, match="acquisition"):
        generate_case(1, acquisition="axial")
    with pytest.raises(SpineMetSegError, match="contrast"):
        generate_case(1, contrast="bright")


# --- files and command line ------------------------------------------------------------------------------------------


def hashes(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.mark.slow
def test_same_seed_writes_the_same_bytes_and_another_seed_does_not(tmp_path):
    first, second = find_seeds(lambda plan: plan.acquisition.size[0] <= 224 and plan.acquisition.size[2] <= 14, 2)
    write_case(generate_case(first), tmp_path / "a", png=True)
    write_case(generate_case(first), tmp_path / "b", png=True)
    write_case(generate_case(second), tmp_path / "c")
    a, b, c = hashes(tmp_path / "a"), hashes(tmp_path / "b"), hashes(tmp_path / "c")
    assert set(a) == CASE_FILES | {"preview.png"}
    assert a == b
    for name in ("t1.nii.gz", "t2.nii.gz", "stir.nii.gz", "case.json"):
        assert a[name] != c[name]


def test_written_files_read_back_with_geometry_and_case_json(tmp_path):
    case = case_of(find_seeds(lambda plan: True, 1)[0])
    written = write_case(case, tmp_path / "case")
    assert set(written) == CASE_FILES
    assert not [p for p in (tmp_path / "case").iterdir() if p.name.startswith(".")]
    t1 = sitk.ReadImage(str(tmp_path / "case" / "t1.nii.gz"))
    assert Geometry.of(t1).matches(Geometry.of(case.images["t1"]))
    assert np.array_equal(
        sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "case" / "lesions.nii.gz"))),
        sitk.GetArrayFromImage(case.lesions),
    )
    info = json.loads((tmp_path / "case" / "case.json").read_text(encoding="utf-8"))
    assert info["seed"] == case.info["seed"] and info["contrast"] == "standard"
    assert info["acquisition"]["kind"] == "sagittal2d"
    assert {"lesions", "look_alikes", "vertebrae"} <= set(info)


def test_cli_writes_all_files_with_preview_and_reports_lesions(tmp_path, capsys):
    seed = find_seeds(lambda plan: len(plan.findings.metastases) >= 1 and plan.acquisition.size[0] <= 256, 1)[0]
    code = main(
        ["phantom", "--seed", str(seed), "--output", str(tmp_path / "out"), "--acquisition", "sagittal2d", "--png"]
    )
    assert code == 0
    assert {p.name for p in (tmp_path / "out").iterdir()} == CASE_FILES | {"preview.png"}
    output = capsys.readouterr().out
    info = json.loads((tmp_path / "out" / "case.json").read_text(encoding="utf-8"))
    assert f"{len(info['lesions'])} lesion(s)" in output
    assert re.search(r"lesion 1: (lytic|sclerotic|mixed) in [TL]\d+, [\d.]+ mL, diameter [\d.]+ mm", output)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--seed", "-3"], "seed must be 0 or larger"),
        (["--seed", "seven"], "seed must be a whole number"),
        (["--seed", "1", "--acquisition", "axial"], "invalid choice: 'axial'"),
        (["--seed", "1", "--contrast", "neon"], "invalid choice: 'neon'"),
    ],
)
def test_cli_bad_arguments_exit_2_with_a_message(tmp_path, capsys, arguments, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["phantom", "--output", str(tmp_path / "out"), *arguments])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_output_that_is_a_file_exits_2_and_keeps_the_file(tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("mine")
    assert main(["phantom", "--seed", "1", "--output", str(target)]) == 2
    assert "is a file" in capsys.readouterr().err
    assert target.read_text(encoding="utf-8") == "mine"
