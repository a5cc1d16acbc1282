"""Nothing lost, nothing silently wrong: every output verified, no input overwritten, no traceback.

A full disk is made at the operating-system level, never by replacing the writer: the command runs in a child
process whose file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored) makes every write past the limit fail with
EFBIG, exactly as a full disk fails them with ENOSPC; where this machine lets the tests mount a tiny tmpfs
(root on Linux), a real full disk too.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from inference_fixtures import SAGITTAL, make_card, mri_like, seeded_network

from SpineMetSegLib.cli import main
from SpineMetSegLib.errors import EXIT_USER_ERROR
from SpineMetSegLib.images import imageio
from SpineMetSegLib.models import weights

EARLIER = b"the user's earlier result"
# Bigger than the lesion CSV and the probe files, smaller than any image the commands write here.
SMALL_FILE_LIMIT = 1000
LIMITED_CLI = (
    "import resource, signal, sys\n"
    "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
    "from SpineMetSegLib.cli import main\n"
    "limit = int(sys.argv[1])\n"
    "resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))\n"
    "sys.exit(main(sys.argv[2:]))\n"
)


@pytest.fixture()
def case(tmp_path):
    """A T1 volume, a model (weights + card) and an output folder holding an earlier result of the user's."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    t1 = mri_like((40, 48, 10), spacing=(0.9, 0.8, 3.0), direction=SAGITTAL, origin=(12.0, -40.0, 80.0))
    imageio.write_image(t1, inputs / "t1.nii.gz")
    card = make_card()
    (inputs / "card.json").write_text(json.dumps(card.to_dict()))
    weights.save_state_dict(seeded_network(card).state_dict(), inputs / "weights.safetensors")
    out = tmp_path / "out"
    out.mkdir()
    (out / "seg.nii.gz").write_bytes(EARLIER)
    model = ["--weights", str(inputs / "weights.safetensors"), "--card", str(inputs / "card.json")]
    return inputs, out, model


def snapshot(*folders: Path) -> dict:
    """Every file (hidden ones included) under ``folders``: path -> bytes."""
    return {p: p.read_bytes() for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()}


def run_limited(limit: int, args: list) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-c", LIMITED_CLI, str(limit), *args], capture_output=True, text=True,
                          env=env, timeout=300)


def segment_args(inputs: Path, model: list, output: Path, *extra: str) -> list:
    return ["segment", "--t1", str(inputs / "t1.nii.gz"), "--output", str(output), "--device", "cpu",
            "--threads", "1", *model, *extra]


# ------------------------------------------------------------------------------------------ full disk


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".nii", ".mha"])
def test_a_full_disk_while_writing_the_label_map_exits_2_and_keeps_the_earlier_file(case, suffix):
    inputs, out, model = case
    target = out / f"seg{suffix}"
    if suffix != ".nii.gz":
        target.write_bytes(EARLIER)
    before = snapshot(inputs, out)
    done = run_limited(SMALL_FILE_LIMIT, segment_args(inputs, model, target))
    assert done.returncode == EXIT_USER_ERROR, done.stderr
    assert f"error: Cannot write {target}" in done.stderr
    assert "Traceback" not in done.stderr
    assert "wrote" not in done.stdout
    assert snapshot(inputs, out) == before  # no partial file, every earlier file byte-identical


@pytest.mark.slow
def test_a_full_disk_at_the_probability_map_writes_none_of_the_outputs(case):
    inputs, out, model = case
    labels_only = run_limited(1 << 30, segment_args(inputs, model, out / "fits.nii.gz"))
    assert labels_only.returncode == 0
    # Room for the label map and the CSV, not for the float probability map.
    limit = (out / "fits.nii.gz").stat().st_size + 200
    (out / "fits.nii.gz").unlink()
    before = snapshot(inputs, out)
    done = run_limited(limit, segment_args(inputs, model, out / "seg.nii.gz", "--probabilities",
                                           str(out / "prob.nii.gz"), "--lesions-csv", str(out / "lesions.csv")))
    assert done.returncode == EXIT_USER_ERROR, done.stderr
    assert f"error: Cannot write {out / 'prob.nii.gz'}" in done.stderr
    assert snapshot(inputs, out) == before


@pytest.fixture()
def full_tmpfs(tmp_path):
    """A folder on a 256 KiB tmpfs that is full but for a few bytes (needs the right to mount: root on Linux)."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root); the file-size-limit tests above cover the same failure")
    try:
        (mount_point / "out").mkdir()
        (mount_point / "out" / "seg.nii.gz").write_bytes(EARLIER)
        descriptor = os.open(mount_point / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(descriptor, b"\0" * 512):
                pass
        except OSError as error:
            assert error.errno == errno.ENOSPC
        finally:
            os.close(descriptor)
        yield mount_point / "out"
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_a_really_full_disk_says_the_disk_is_full_and_keeps_the_earlier_file(case, full_tmpfs, capsys):
    inputs, _, model = case
    before = snapshot(inputs, full_tmpfs)
    code = main(segment_args(inputs, model, full_tmpfs / "seg.nii.gz"))
    error = capsys.readouterr().err
    assert code == EXIT_USER_ERROR
    assert "the disk is full" in error or "The disk is full" in error
    assert snapshot(inputs, full_tmpfs) == before


def test_a_full_disk_while_writing_metrics_json_exits_2_and_keeps_the_earlier_file(tmp_path):
    truth = mri_like((20, 20, 8)) > 100
    imageio.write_image(sitk.Cast(truth, sitk.sitkUInt8), tmp_path / "truth.nii.gz")
    metrics_json = tmp_path / "metrics.json"
    metrics_json.write_bytes(EARLIER)
    before = snapshot(tmp_path)
    done = run_limited(200, ["evaluate", "--reference", str(tmp_path / "truth.nii.gz"), "--prediction",
                             str(tmp_path / "truth.nii.gz"), "--json", str(metrics_json)])
    assert done.returncode == EXIT_USER_ERROR, done.stderr
    assert f"error: Cannot write {metrics_json}" in done.stderr
    assert snapshot(tmp_path) == before


# ------------------------------------------------------------------------------------------ outputs that are inputs


def test_an_output_that_is_the_input_mri_is_refused_and_the_mri_is_unchanged(case, capsys):
    inputs, out, model = case
    before = snapshot(inputs, out)
    code = main(segment_args(inputs, model, inputs / "t1.nii.gz"))
    assert code == EXIT_USER_ERROR
    assert "--output is the same file as --t1" in capsys.readouterr().err
    assert snapshot(inputs, out) == before


@pytest.mark.parametrize("link", ["hard", "symbolic"])
def test_an_output_that_is_a_link_to_the_input_mri_is_refused(case, capsys, link):
    inputs, out, model = case
    alias = out / "alias.nii.gz"
    (os.link if link == "hard" else os.symlink)(inputs / "t1.nii.gz", alias)
    before = snapshot(inputs, out)
    assert main(segment_args(inputs, model, alias)) == EXIT_USER_ERROR
    assert "--output is the same file as --t1" in capsys.readouterr().err
    assert snapshot(inputs, out) == before


@pytest.mark.parametrize("option", ["--probabilities", "--lesions-csv"])
def test_two_outputs_on_one_path_are_refused_before_any_work(case, capsys, option):
    inputs, out, model = case
    before = snapshot(inputs, out)
    assert main(segment_args(inputs, model, out / "seg.nii.gz", option, str(out / "seg.nii.gz"))) == EXIT_USER_ERROR
    captured = capsys.readouterr()
    assert f"--output and {option} are the same file" in captured.err
    assert "SPINEMETSEG-PROGRESS" not in captured.out  # refused before reading or segmenting
    assert snapshot(inputs, out) == before


def test_an_output_over_the_model_card_is_refused(case, capsys):
    inputs, out, model = case
    before = snapshot(inputs, out)
    assert main(segment_args(inputs, model, out / "seg.nii.gz", "--lesions-csv", model[3])) == EXIT_USER_ERROR
    assert "--lesions-csv is the same file as --card" in capsys.readouterr().err
    assert snapshot(inputs, out) == before


def test_evaluate_json_over_the_reference_is_refused(tmp_path, capsys):
    truth = sitk.Cast(mri_like((20, 20, 8)) > 100, sitk.sitkUInt8)
    imageio.write_image(truth, tmp_path / "truth.nii.gz")
    before = snapshot(tmp_path)
    code = main(["evaluate", "--reference", str(tmp_path / "truth.nii.gz"), "--prediction",
                 str(tmp_path / "truth.nii.gz"), "--csv", str(tmp_path / "truth.nii.gz")])
    assert code == EXIT_USER_ERROR
    assert "--csv is the same file as --reference" in capsys.readouterr().err
    assert snapshot(tmp_path) == before


def test_an_output_inside_an_input_dicom_folder_is_refused(case, tmp_path, capsys):
    inputs, out, model = case
    dicom = tmp_path / "dicom"
    dicom.mkdir()
    image = sitk.Cast(sitk.RescaleIntensity(mri_like((32, 32, 6)), 0, 1000), sitk.sitkInt16)
    writer = sitk.ImageFileWriter()
    for k in range(image.GetSize()[2]):
        slice_ = image[:, :, k]
        for key, value in (("0020|0013", str(k + 1)), ("0020|000e", "1.2.3.4"), ("0008|0060", "MR"),
                           ("0020|0032", f"0\\0\\{k * 3.0}"), ("0020|0037", "1\\0\\0\\0\\1\\0"),
                           ("0028|0030", "1\\1"), ("0018|0050", "3")):
            slice_.SetMetaData(key, value)
        writer.SetFileName(str(dicom / f"{k:03d}.dcm"))
        writer.Execute(slice_)
    before = snapshot(dicom)
    code = main(["segment", "--t1", str(dicom), "--output", str(dicom / "seg.nii.gz"), "--device", "cpu", *model])
    assert code == EXIT_USER_ERROR
    assert "is inside the folder given as --t1" in capsys.readouterr().err
    assert snapshot(dicom) == before


# ------------------------------------------------------------------------------------------ multi-file formats


def test_an_mhd_output_lands_with_its_raw_file_under_the_final_names(case):
    inputs, out, model = case
    assert main(segment_args(inputs, model, out / "seg.mhd")) == 0
    assert sorted(p.name for p in out.iterdir()) == ["seg.mhd", "seg.nii.gz", "seg.raw"]
    header = (out / "seg.mhd").read_text()
    assert "ElementDataFile = seg.raw" in header
    labels = imageio.read_image(out / "seg.mhd")
    t1 = imageio.read_image(inputs / "t1.nii.gz")
    assert imageio.Geometry.of(labels).matches(imageio.Geometry.of(t1))
    assert (out / "seg.raw").stat().st_size == np.prod(t1.GetSize())  # one byte per voxel, all of them


def test_an_mhd_output_whose_raw_file_is_an_input_is_refused(case, tmp_path, capsys):
    inputs, out, model = case
    raw_input = out / "scan.raw"
    raw_input.write_bytes(b"someone's raw volume")
    before = snapshot(inputs, out)
    code = main(["segment", "--t1", str(inputs / "t1.nii.gz"), "--input", f"t2={raw_input}", "--output",
                 str(out / "scan.mhd"), "--device", "cpu", *model])
    assert code == EXIT_USER_ERROR
    assert "--output (its data file scan.raw) is the same file as --t2" in capsys.readouterr().err
    assert snapshot(inputs, out) == before


# ------------------------------------------------------------------------------------------ bad output locations


@pytest.fixture()
def read_only_folder(tmp_path):
    """A folder nobody may write into: a read-only tmpfs for root (who ignores permissions), else mode 0555."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() == 0:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,ro", "tmpfs", str(folder)],
                                 capture_output=True)
        if mounted.returncode != 0:
            pytest.skip("running as root without the right to mount: no folder is read-only to root")
        yield folder
        subprocess.run(["umount", str(folder)], check=True)
    else:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)


def test_a_read_only_output_folder_is_refused_before_any_work(case, read_only_folder, capsys):
    inputs, _, model = case
    code = main(segment_args(inputs, model, read_only_folder / "seg.nii.gz"))
    captured = capsys.readouterr()
    assert code == EXIT_USER_ERROR
    assert f"the folder {read_only_folder} is not writable" in captured.err
    assert "SPINEMETSEG-PROGRESS" not in captured.out
    assert list(read_only_folder.iterdir()) == []


def test_an_output_that_is_an_existing_folder_is_refused_before_any_work(case, capsys):
    inputs, out, model = case
    before = snapshot(inputs, out)
    code = main(segment_args(inputs, model, out))
    captured = capsys.readouterr()
    assert code == EXIT_USER_ERROR
    assert f"--output {out} is a folder" in captured.err
    assert "SPINEMETSEG-PROGRESS" not in captured.out
    assert snapshot(inputs, out) == before


def test_an_output_suffix_no_writer_knows_is_refused_before_any_work(case, capsys):
    inputs, out, model = case
    before = snapshot(inputs, out)
    code = main(segment_args(inputs, model, out / "seg.png"))
    captured = capsys.readouterr()
    assert code == EXIT_USER_ERROR
    assert f"Cannot write --output {out / 'seg.png'}: the suffix must be one of .nii, .nii.gz" in captured.err
    assert "SPINEMETSEG-PROGRESS" not in captured.out
    assert snapshot(inputs, out) == before


def test_demo_output_that_is_an_existing_file_is_refused_before_any_work(tmp_path, capsys):
    existing = tmp_path / "notes.txt"
    existing.write_bytes(EARLIER)
    code = main(["demo", "--output", str(existing)])
    captured = capsys.readouterr()
    assert code == EXIT_USER_ERROR
    assert f"--output {existing} is a file" in captured.err
    assert "1/4" not in captured.out
    assert existing.read_bytes() == EARLIER
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_demo_into_a_read_only_folder_is_refused_before_any_work(read_only_folder, capsys):
    code = main(["demo", "--output", str(read_only_folder / "demo")])
    captured = capsys.readouterr()
    assert code == EXIT_USER_ERROR
    assert "is not writable" in captured.err
    assert "1/4" not in captured.out


# ------------------------------------------------------------------------------------------ JSON the project reads


def test_a_binary_file_as_card_is_a_clear_error(case, capsys):
    inputs, out, model = case
    binary = inputs / "card.bin.json"
    binary.write_bytes(bytes(range(256)) * 4)
    before = snapshot(inputs, out)
    code = main(segment_args(inputs, ["--weights", model[1], "--card", str(binary)], out / "new.nii.gz"))
    error = capsys.readouterr().err
    assert code == EXIT_USER_ERROR
    assert f"Model card {binary} is not a JSON text file" in error
    assert snapshot(inputs, out) == before


def test_a_binary_file_as_catalog_is_a_clear_error(tmp_path, monkeypatch, capsys):
    binary = tmp_path / "catalog.json"
    binary.write_bytes(bytes(range(256)) * 4)
    monkeypatch.setenv("SPINEMETSEG_CATALOG", str(binary))
    assert main(["models", "list"]) == EXIT_USER_ERROR
    assert f"Model catalog {binary} is not a JSON text file" in capsys.readouterr().err


# ------------------------------------------------------------------------ the limit the full-disk tests use


def test_the_file_size_limit_helper_really_limits_writes(tmp_path):
    # The full-disk tests rely on the child's limit; a write past it must fail at the OS level.
    probe = tmp_path / "big.bin"
    code = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100))\n"
        "try:\n"
        f"    with open({str(probe)!r}, 'wb') as stream:\n"
        "        stream.write(b'x' * 1000)\n"
        "except OSError as error:\n"
        "    print(error.errno)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == str(errno.EFBIG)
