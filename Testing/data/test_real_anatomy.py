"""Real anatomy for training: the fastcleverseg importer, the fixed split, lesions drawn into real scans,
contrast conversion, and the marginal loss for scans without a canal label."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from scipy import ndimage
from scipy.io import savemat

from SpineMetSegLib.data.anatomy_case import generate_anatomy_case
from SpineMetSegLib.data.contrast import convert, tissue_classes
from SpineMetSegLib.data.real_case import load_real_case
from SpineMetSegLib.data.split import check_trainable, load_split, training_folders
from SpineMetSegLib.data.vb_import import find_sets, import_vb
from SpineMetSegLib.errors import SpineMetSegError
from SpineMetSegLib.training.losses import MarginalDiceCELoss

LESION_REACH_MM = 7.0  # epidural lesions may grow up to 6 mm beyond the body mask; one voxel of rounding


@pytest.fixture(scope="session")
def spine_vb(spine_vb_dir) -> Path:
    return spine_vb_dir


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "SpineMetSegLib.cli", *args], capture_output=True, text=True)


# ------------------------------------------------------------------------------------------------ importer


def _scan(bodies: int = 3, size=(60, 40, 12), slab: int = 8, seed: int = 0):
    """A small I[s, a, l] scan with ``bodies`` bright blocks stacked superior->inferior and their GT mask."""
    rng = np.random.default_rng(seed)
    image = rng.integers(10, 30, size).astype(np.uint8)
    mask = np.zeros(size, dtype=np.uint8)
    for b in range(bodies):
        top = 4 + b * (slab + 6)
        image[top: top + slab, 10:30, 2:10] = 200
        mask[top: top + slab, 10:30, 2:10] = 1
    return image, mask


def _write_mat(path: Path, image: np.ndarray, mask: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(str(path), {"I": image, "GT": mask})
    return path


def _repository(root: Path) -> Path:
    """A fastcleverseg-like checkout: VB2 (one mask one slice longer), VB3 with a byte-identical duplicate, VB1."""
    vbs = root / "ImageDatasets" / "VBs"
    image, mask = _scan(seed=1)
    _write_mat(vbs / "VB2/Isotropic/Matlab/01.mat", image, mask)
    # 02: the mask has one extra left-right slice at the start (offset 1 is right).
    longer = np.concatenate([np.zeros(mask.shape[:2] + (1,), np.uint8), mask], axis=2)
    _write_mat(vbs / "VB2/Isotropic/Matlab/02.mat", image, longer)
    image3, mask3 = _scan(bodies=2, seed=3)
    _write_mat(vbs / "VB3/Isotropic/Matlab/05.mat", image3, mask3)
    shutil.copyfile(vbs / "VB3/Isotropic/Matlab/05.mat", vbs / "VB3/Isotropic/Matlab/06.mat")
    _write_mat(vbs / "VB1/Isotropic/Matlab/01.mat", image, mask)
    return root


def test_importer_writes_one_case_folder_per_distinct_scan(tmp_path):
    cases = import_vb(_repository(tmp_path / "repo"), tmp_path / "cases")
    assert [c.name for c in cases] == ["vb2_01", "vb2_02", "vb3_05"]  # 06 is a byte copy of 05; VB1 not read
    assert sorted(p.name for p in (tmp_path / "cases").iterdir()) == ["vb2_01", "vb2_02", "vb3_05"]
    assert sorted(p.name for p in (tmp_path / "cases/vb2_01").iterdir()) == [
        "case.json", "t2.nii.gz", "vertebral_bodies.nii.gz"]
    assert (tmp_path / "cases/vb3_05/dixon.nii.gz").is_file()
    info = json.loads((tmp_path / "cases/vb3_05/case.json").read_text(encoding="utf-8"))
    assert info["set"] == "VB3" and info["sequence"] == "dixon" and "Burian" in info["publication"]
    assert info["license"].startswith("GPL-3.0")


def test_importer_numbers_bodies_from_superior_to_inferior(tmp_path):
    import_vb(_repository(tmp_path / "repo"), tmp_path / "cases")
    bodies = sitk.ReadImage(str(tmp_path / "cases/vb2_01/vertebral_bodies.nii.gz"))
    array = sitk.GetArrayFromImage(bodies)  # (l, s, a)
    heights = [bodies.TransformIndexToPhysicalPoint(
        [int(v) for v in np.argwhere(array == n).mean(axis=0).round().astype(int)[::-1]])[2] for n in (1, 2, 3)]
    assert heights[0] > heights[1] > heights[2]  # LPS z grows superior: body 1 is the highest


def test_importer_aligns_a_mask_one_slice_longer_at_the_offset_of_the_image_edges(tmp_path):
    cases = {c.name: c for c in import_vb(_repository(tmp_path / "repo"), tmp_path / "cases")}
    assert cases["vb2_02"].mask_offset == 1
    a = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "cases/vb2_01/vertebral_bodies.nii.gz")))
    b = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "cases/vb2_02/vertebral_bodies.nii.gz")))
    assert np.array_equal(a, b)


def test_importer_refuses_vb1(tmp_path):
    repo = _repository(tmp_path / "repo")
    with pytest.raises(SpineMetSegError, match="reserved"):
        import_vb(repo / "ImageDatasets/VBs/VB1", tmp_path / "cases")
    result = run_cli("dataset", "import-vb", str(repo / "ImageDatasets/VBs/VB1"), "--output", str(tmp_path / "c"))
    assert result.returncode == 2 and "reserved" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "c").exists()


def test_importer_accepts_the_vbs_folder_and_says_when_nothing_is_there(tmp_path):
    repo = _repository(tmp_path / "repo")
    root, sets = find_sets(repo / "ImageDatasets" / "VBs")
    assert sorted(sets) == ["VB2", "VB3"]
    with pytest.raises(SpineMetSegError, match="VB2/Isotropic/Matlab"):
        find_sets(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("case, image_name", [("vb2_05", "t2.nii.gz"), ("vb3_01", "dixon.nii.gz")])
def test_importer_reproduces_the_real_copies_voxel_for_voxel(tmp_path, spine_vb, case, image_name):
    reference = sitk.ReadImage(str(spine_vb / case / "image.nii.gz"))
    reference_mask = sitk.ReadImage(str(spine_vb / case / "vertebral_bodies.nii.gz"))
    # Back to the repository's .mat layout: I[s, a, l] from numpy (l, s, a).
    image = sitk.GetArrayFromImage(reference).transpose(1, 2, 0)
    mask = sitk.GetArrayFromImage(reference_mask).transpose(1, 2, 0)
    vb_set, number = case.split("_")
    _write_mat(tmp_path / "repo" / vb_set.upper() / "Isotropic/Matlab" / f"{number}.mat", image, mask)
    import_vb(tmp_path / "repo", tmp_path / "cases")
    imported = sitk.ReadImage(str(tmp_path / "cases" / case / image_name))
    bodies = sitk.ReadImage(str(tmp_path / "cases" / case / "vertebral_bodies.nii.gz"))
    assert np.array_equal(sitk.GetArrayFromImage(imported), sitk.GetArrayFromImage(reference))
    assert np.array_equal(sitk.GetArrayFromImage(bodies) > 0, sitk.GetArrayFromImage(reference_mask) > 0)
    for a, b in ((imported, reference), (bodies, reference)):
        assert a.GetOrigin() == b.GetOrigin() and a.GetDirection() == b.GetDirection()
        assert a.GetSpacing() == b.GetSpacing()


# ------------------------------------------------------------------------------------------------ split


def test_split_keeps_at_least_twelve_validation_scans_from_both_sets_with_the_shared_copies():
    split = load_split()
    assert len(split.validation) >= 12
    assert {name[:3] for name in split.validation} == {"vb2", "vb3"}
    assert {"vb2_05", "vb3_01"} <= set(split.validation)
    assert not set(split.training) & set(split.validation) and not set(split.tuning) & set(split.validation)
    assert not set(split.training) & set(split.tuning)
    assert not any(name.startswith("vb1") for name in split.training + split.tuning + split.validation)


def test_training_refuses_validation_and_tuning_cases(tmp_path):
    with pytest.raises(SpineMetSegError, match="vb2_05"):
        check_trainable(["vb2_02", "vb2_05"])
    for name in ("vb2_02", "vb2_05", "vb3_02"):  # training, validation, tuning
        (tmp_path / name).mkdir()
        (tmp_path / name / "vertebral_bodies.nii.gz").write_bytes(b"")
    assert [Path(p).name for p in training_folders(str(tmp_path))] == ["vb2_02"]


# ------------------------------------------------------------------------------------------------ drawing


@pytest.fixture(scope="module")
def real_case(spine_vb, tmp_path_factory):
    """The real VB2 copy as an imported case folder (its T2 named t2.nii.gz), cut to the bodies plus 20 mm so the
    suite stays fast; the drawing itself is the same on the whole scan."""
    folder = tmp_path_factory.mktemp("cases") / "vb2_05"
    folder.mkdir()
    mask = sitk.ReadImage(str(spine_vb / "vb2_05/vertebral_bodies.nii.gz"))
    box = ndimage.find_objects(sitk.GetArrayFromImage(mask))[0]  # numpy (k, j, i)
    index = [max(0, box[2 - a].start - 20) for a in range(3)]
    size = [min(mask.GetSize()[a], box[2 - a].stop + 20) - index[a] for a in range(3)]
    for source, target in (("image.nii.gz", "t2.nii.gz"), ("vertebral_bodies.nii.gz", "vertebral_bodies.nii.gz")):
        image = sitk.ReadImage(str(spine_vb / "vb2_05" / source))
        sitk.WriteImage(sitk.RegionOfInterest(image, size, index), str(folder / target), True)
    return folder


def _digest(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.mark.slow
def test_anatomy_from_same_seed_gives_the_same_bytes(real_case, tmp_path):
    for name in ("a", "b"):
        result = run_cli("phantom", "--seed", "11", "--anatomy-from", str(real_case), "--generate", "t1", "stir",
                         "--output", str(tmp_path / name), "--png")
        assert result.returncode == 0, result.stderr
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert set(_digest(tmp_path / "a")) == {"t2.nii.gz", "t1.nii.gz", "stir.nii.gz", "lesions.nii.gz",
                                             "anatomy.nii.gz", "case.json", "preview.png"}
    other = run_cli("phantom", "--seed", "12", "--anatomy-from", str(real_case), "--output", str(tmp_path / "c"))
    assert other.returncode == 0
    assert _digest(tmp_path / "c")["lesions.nii.gz"] != _digest(tmp_path / "a")["lesions.nii.gz"]


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(6))
def test_every_lesion_voxel_lies_within_a_few_mm_of_a_body(real_case, seed):
    case = load_real_case(real_case)
    drawn = generate_anatomy_case(case, seed, lesion_count=4)
    lesions = sitk.GetArrayFromImage(drawn.lesions)
    assert lesions.max() >= 1
    distance = ndimage.distance_transform_edt(case.bodies == 0, sampling=case.spacing)
    assert distance[lesions > 0].max() <= LESION_REACH_MM
    described = {lesion["id"]: lesion for lesion in drawn.info["lesions"]}
    for number in range(1, int(lesions.max()) + 1):
        voxels = int((lesions == number).sum())
        assert described[number]["volume_ml"] == pytest.approx(voxels * np.prod(case.spacing) / 1000, abs=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
def test_voxels_far_from_lesions_and_look_alikes_are_unchanged(real_case, seed):
    case = load_real_case(real_case)
    drawn = generate_anatomy_case(case, seed, look_alike_count=3)
    findings = (sitk.GetArrayFromImage(drawn.lesions) > 0) | (sitk.GetArrayFromImage(drawn.anatomy) >= 12)
    far = ndimage.distance_transform_edt(~findings, sampling=case.spacing) > 3.0
    after = sitk.GetArrayFromImage(drawn.images["t2"])
    assert np.array_equal(after[far], case.sequences["t2"][far])
    assert not np.array_equal(after[~far], case.sequences["t2"][~far])


def _height(mask: np.ndarray, axis: int) -> int:
    along = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
    return int(along.max() - along.min() + 1) if along.size else 0


@pytest.mark.slow
def test_a_pathological_fracture_costs_its_body_height_and_changes_only_that_body(real_case):
    from SpineMetSegLib.data.lesion_drawing import collapse_body

    case = load_real_case(real_case)
    axis = case.superior_axis[0]
    collapsed = collapse_body(case, 3, 0.3, superior=True)
    before, after = _height(case.bodies == 3, axis), _height(collapsed.bodies == 3, axis)
    assert after == pytest.approx(0.7 * before, abs=1.5)
    for other in (1, 2, 4, 5):
        assert np.array_equal(collapsed.bodies == other, case.bodies == other)
    changed = collapsed.sequences["t2"] != case.sequences["t2"]
    assert changed.any() and np.all((case.bodies == 3)[changed])  # only voxels the body lost
    assert not np.any(collapsed.bodies[changed])


@pytest.mark.slow
def test_fractures_are_drawn_only_when_asked_and_leave_other_seeds_unchanged(real_case):
    case = load_real_case(real_case)
    plain = generate_anatomy_case(case, 5, lesion_count=2)
    assert plain.info["pathological_fracture"] is None
    fractured = generate_anatomy_case(case, 5, lesion_count=2, fracture_probability=1.0)
    fracture = fractured.info["pathological_fracture"]
    assert fracture is not None and fractured.info["lesions"][0]["host_body"] == fracture["host_body"]
    body_voxels = (sitk.GetArrayFromImage(fractured.anatomy) > 0) & (case.bodies == fracture["host_body"])
    assert body_voxels.sum() < (case.bodies == fracture["host_body"]).sum()


def _lesion_and_marrow(drawn, case, sequence: str, lesion: dict):
    image = sitk.GetArrayFromImage(drawn.images[sequence])
    lesions = sitk.GetArrayFromImage(drawn.lesions)
    core = ndimage.binary_erosion(lesions == lesion["id"])
    core = core if core.any() else lesions == lesion["id"]
    clean = (lesions == 0) & (sitk.GetArrayFromImage(drawn.anatomy) < 12)
    marrow = (case.bodies == lesion["host_body"]) & clean
    if marrow.sum() < 100:  # the lesion replaced its whole body: compare with the other bodies' marrow
        marrow = (case.bodies > 0) & clean
    return float(image[core].mean()), float(np.median(image[marrow]))


@pytest.mark.slow
def test_lytic_lesions_are_darker_than_their_marrow_on_t1_and_brighter_on_stir(real_case):
    case = load_real_case(real_case)
    checked = 0
    for seed in range(12):
        drawn = generate_anatomy_case(case, seed, generate=("t1", "stir"), lesion_count=3)
        for lesion in drawn.info["lesions"]:
            if lesion["type"] != "lytic" or lesion["volume_ml"] < 0.05:
                continue
            t1_lesion, t1_marrow = _lesion_and_marrow(drawn, case, "t1", lesion)
            stir_lesion, stir_marrow = _lesion_and_marrow(drawn, case, "stir", lesion)
            t2_lesion, t2_marrow = _lesion_and_marrow(drawn, case, "t2", lesion)
            assert t1_lesion < 0.8 * t1_marrow, (seed, lesion)
            assert stir_lesion > 1.4 * stir_marrow, (seed, lesion)
            assert t2_lesion > 1.1 * t2_marrow, (seed, lesion)
            checked += 1
    assert checked >= 5


@pytest.mark.slow
def test_sclerotic_lesions_are_dark_in_every_sequence(real_case):
    case = load_real_case(real_case)
    checked = 0
    for seed in range(16):
        drawn = generate_anatomy_case(case, seed, generate=("t1", "stir"), lesion_count=3)
        for lesion in drawn.info["lesions"]:
            if lesion["type"] == "sclerotic" and lesion["volume_ml"] >= 0.05:
                for sequence in ("t1", "t2", "stir"):
                    inside, marrow = _lesion_and_marrow(drawn, case, sequence, lesion)
                    assert inside < 0.8 * marrow, (seed, sequence, lesion)
                checked += 1
    assert checked >= 2


@pytest.mark.slow
def test_generated_t1_has_bright_marrow_and_generated_stir_dark_marrow(real_case):
    case = load_real_case(real_case)
    t2 = case.sequences["t2"]
    body = case.bodies > 0
    classes = tissue_classes(t2, body)
    muscle_like = (t2 > classes.centres[1]) & (t2 < classes.centres[3]) & ~ndimage.binary_dilation(body, None, 3)
    for seed in range(5):
        rng = np.random.default_rng(seed)
        t1, stir = convert(t2, classes, "t1", rng), convert(t2, classes, "stir", rng)
        assert np.median(t1[body]) > 1.3 * np.median(t1[muscle_like])
        assert np.median(stir[body]) < np.median(stir[t2 > classes.centres[-1]])


@pytest.mark.parametrize("problem, message", [
    ("no mask", "vertebral_bodies.nii.gz"),
    ("other grid", "different grids"),
    ("empty mask", "empty"),
    ("no image", "no image"),
])
@pytest.mark.slow
def test_bad_case_folders_get_a_clear_error_and_nothing_is_written(tmp_path, problem, message):
    folder = tmp_path / "case"
    folder.mkdir()
    image = sitk.GetImageFromArray(np.random.default_rng(0).random((8, 20, 20)).astype(np.float32))
    mask = sitk.GetImageFromArray(np.zeros((8, 20, 20), np.uint8))
    if problem != "empty mask":
        array = sitk.GetArrayFromImage(mask)
        array[2:6, 5:15, 5:15] = 1
        mask = sitk.GetImageFromArray(array)
    if problem == "other grid":
        mask.SetSpacing((2.0, 1.0, 1.0))
    if problem != "no image":
        sitk.WriteImage(image, str(folder / "t2.nii.gz"))
    if problem != "no mask":
        sitk.WriteImage(mask, str(folder / "vertebral_bodies.nii.gz"))
    result = run_cli("phantom", "--seed", "1", "--anatomy-from", str(folder), "--output", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.startswith("error:") and message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------ loss


def test_a_case_without_canal_labels_gives_no_loss_for_canal_predictions():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 16, 16)
    labels = torch.randint(0, 3, (2, 1, 16, 16))  # background, lesion, body: the canal is not labelled
    swapped = logits.clone()
    swapped[:, [0, 3]] = logits[:, [3, 0]]  # every background probability moved to the canal and back
    loss = MarginalDiceCELoss(unknown_class=3)
    unknown = torch.zeros(2, dtype=torch.bool)
    assert loss(swapped, labels, unknown).item() == pytest.approx(loss(logits, labels, unknown).item(), rel=1e-5)
    known = torch.ones(2, dtype=torch.bool)
    assert loss(swapped, labels, known).item() != pytest.approx(loss(logits, labels, known).item(), rel=1e-3)


def test_canal_predicted_inside_a_body_still_costs_in_a_case_without_canal_labels():
    logits = torch.zeros(1, 4, 8, 8)
    labels = torch.full((1, 1, 8, 8), 2)  # all vertebral body
    right, wrong = logits.clone(), logits.clone()
    right[:, 2] = 5.0
    wrong[:, 3] = 5.0
    loss = MarginalDiceCELoss(unknown_class=3)
    unknown = torch.zeros(1, dtype=torch.bool)
    assert loss(wrong, labels, unknown).item() > loss(right, labels, unknown).item() + 1.0


def test_with_every_class_known_the_loss_equals_monai_dice_ce():
    from monai.losses import DiceCELoss

    torch.manual_seed(1)
    logits, labels = torch.randn(3, 4, 12, 12), torch.randint(0, 4, (3, 1, 12, 12))
    ours = MarginalDiceCELoss(unknown_class=3)(logits, labels, torch.ones(3, dtype=torch.bool))
    theirs = DiceCELoss(to_onehot_y=True, softmax=True, batch=True)(logits, labels)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-5)


# ------------------------------------------------------------------------------------------------ training


@pytest.fixture(scope="module")
def own_case_folder(tmp_path_factory):
    """A case folder that is no scan of the split (a small phantom T2 with its body mask), so training may read it."""
    from SpineMetSegLib.data.phantom import generate_case
    from SpineMetSegLib.labels import Anatomy

    root = tmp_path_factory.mktemp("own")
    folder = root / "hospital_case_1"
    folder.mkdir()
    case = generate_case(4, acquisition="sagittal2d")
    anatomy = sitk.GetArrayFromImage(case.anatomy)
    bodies = sitk.GetImageFromArray(np.isin(anatomy, (Anatomy.MARROW, Anatomy.CORTICAL_BONE)).astype(np.uint8))
    bodies.CopyInformation(case.anatomy)
    sitk.WriteImage(case.images["t2"], str(folder / "t2.nii.gz"))
    sitk.WriteImage(bodies, str(folder / "vertebral_bodies.nii.gz"))
    return root


@pytest.mark.slow
def test_anatomy_training_samples_label_lesions_and_bodies_but_leave_the_canal_unknown(own_case_folder):
    from SpineMetSegLib.models.catalog import load_catalog
    from SpineMetSegLib.training.data import AnatomySampler

    sampler = AnatomySampler([str(own_case_folder / "hospital_case_1")], load_catalog().get())
    sample = sampler.sample(3)
    assert sample.canal_known is False
    assert set(np.unique(sample.labels)) <= {0, 1, 2} and (sample.labels == 2).any()
    assert sample.images.shape[1] == 3  # t1, t2, stir: t1 and stir generated from the T2
    assert all(np.abs(sample.images[:, c]).max() > 0 for c in range(3))
    again = sampler.sample(3)
    assert np.array_equal(sample.images, again.images) and np.array_equal(sample.labels, again.labels)


@pytest.mark.slow
def test_train_reads_real_anatomy_case_folders_and_writes_a_model(own_case_folder, tmp_path):
    from SpineMetSegLib.training import TrainConfig, train

    config = TrainConfig(output=str(tmp_path / "run"), steps=3, batch_size=2, patch_size=(32, 32), warmup_steps=1,
                         synthetic=False, anatomy=str(own_case_folder), anatomy_pool_size=1, validation_cases=0,
                         log_every=1, checkpoint_every=3, device="cpu", network_channels=(4, 8),
                         network_strides=(2,))
    result = train(config)
    assert result.model_file.is_file() and result.steps == 3
    card = json.loads(result.card_file.read_text(encoding="utf-8"))
    assert "real healthy lumbar MRI" in card["training_data"] and "no real metastasis" in card["training_data"]


@pytest.mark.slow
def test_train_refuses_a_folder_of_only_validation_scans(tmp_path):
    from SpineMetSegLib.training import TrainConfig, train

    (tmp_path / "cases" / "vb2_05").mkdir(parents=True)
    (tmp_path / "cases" / "vb2_05" / "vertebral_bodies.nii.gz").write_bytes(b"")
    config = TrainConfig(output=str(tmp_path / "run"), steps=1, synthetic=False, anatomy=str(tmp_path / "cases"),
                         validation_cases=0, device="cpu")
    with pytest.raises(SpineMetSegError, match="nothing to train on"):
        train(config)


def test_import_vb_reports_progress_lines_or_a_bar_from_the_same_events(tmp_path, capsys):
    from progress_checks import check_bar_shows_the_protocol, check_protocol

    from SpineMetSegLib.cli import main

    repository = _repository(tmp_path / "repo")
    runs = {}
    for choice in ("lines", "bar"):
        assert main(["dataset", "import-vb", str(repository), "--output", str(tmp_path / choice),
                     "--progress", choice]) == 0
        runs[choice] = capsys.readouterr()

    events = check_protocol(runs["lines"].out)
    assert [(stage, percent, message) for stage, percent, message in events] == [
        ("import", 25, "vb2_01"), ("import", 50, "vb2_02"), ("import", 75, "vb3_05"),
        ("import", 100, "vb3_06 (a duplicate of vb3_05)"), ("done", 100, f"3 distinct scans in {tmp_path / 'lines'}")]
    assert check_bar_shows_the_protocol(runs["bar"].err, events)[:4] == events[:4]
    assert "imported 3 distinct scans" in runs["bar"].out and "SPINEMETSEG-PROGRESS" not in runs["bar"].out
