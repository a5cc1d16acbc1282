"""DICOM series that do not form one regular volume are named in the error, never read with a warning."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pytest
import SimpleITK as sitk

from SpineMetSegLib.cli import main
from SpineMetSegLib.errors import EXIT_USER_ERROR, ImageError
from SpineMetSegLib.images import imageio

SLICES = 12
THICKNESS = 3.0
SERIES_A = "1.2.826.0.1.3680043.2.1125.7.1"
SERIES_B = "1.2.826.0.1.3680043.2.1125.7.2"


def write_series(folder: Path, *, keep: Callable[[int], bool] = lambda k: True,
                 shift_mm: Callable[[int], float] = lambda k: 0.0,
                 orientation: Callable[[int], str] = lambda k: "1\\0\\0\\0\\1\\0",
                 series: Callable[[int], str] = lambda k: SERIES_A, description: Optional[str] = None) -> Path:
    """Axial slices 3 mm apart (k along +z), one file each; the callables bend one slice's tags."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(SLICES):
        if not keep(k):
            continue
        slice_ = sitk.GetImageFromArray(rng.integers(100, 900, (24, 20)).astype(np.int16))
        z = k * THICKNESS + shift_mm(k)
        for tag, value in {
            "0008|0060": "MR",
            "0008|103e": description or f"T1 {series(k)[-1]}",
            "0020|000d": "1.2.826.0.1.3680043.2.1125.7",
            "0020|000e": series(k),
            "0020|0011": series(k)[-1],
            "0020|0013": str(k + 1),
            "0020|0032": f"0\\0\\{z:.4f}",
            "0020|0037": orientation(k),
            "0018|0050": str(THICKNESS),
            "0028|0030": "0.8\\0.8",
        }.items():
            slice_.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{series(k)[-1]}-{k:03d}.dcm"))
        writer.Execute(slice_)
    return folder


def test_a_complete_series_reads_with_its_slice_spacing(tmp_path):
    image = imageio.read_image(write_series(tmp_path / "t1"))
    assert image.GetSize() == (20, 24, SLICES)
    assert image.GetSpacing()[2] == pytest.approx(THICKNESS)


def test_three_missing_slices_are_named(tmp_path):
    folder = write_series(tmp_path / "t1", keep=lambda k: k not in (5, 6, 7))
    with pytest.raises(ImageError, match=r"is missing 3 slice\(s\) \(3 between 12.0 and 24.0 mm along the slice "
                                         r"normal; 3.00 mm apart elsewhere\)"):
        imageio.read_image(folder, name="T1")


def test_uneven_slice_spacing_is_named(tmp_path):
    folder = write_series(tmp_path / "t1", shift_mm=lambda k: 1.2 if k >= 6 else 0.0)
    with pytest.raises(ImageError, match=r"uneven slice spacing \(from 3.00 to 4.20 mm\)"):
        imageio.read_image(folder)


def test_mixed_orientations_in_one_series_are_named(tmp_path):
    folder = write_series(tmp_path / "t1", orientation=lambda k: "0\\1\\0\\0\\0\\-1" if k == 0 else "1\\0\\0\\0\\1\\0")
    with pytest.raises(ImageError, match="mixes slice orientations"):
        imageio.read_image(folder)


def test_several_series_in_one_folder_are_listed_for_the_user_to_choose(tmp_path):
    folder = write_series(tmp_path / "study")
    write_series(folder, series=lambda k: SERIES_B, keep=lambda k: k < 8)
    with pytest.raises(ImageError) as raised:
        imageio.read_image(folder, name="T1")
    message = str(raised.value)
    assert "holds 2 DICOM series" in message
    assert f"series 1 'T1 1' (12 files, series UID {SERIES_A})" in message
    assert f"series 2 'T1 2' (8 files, series UID {SERIES_B})" in message
    assert "in a folder of its own" in message


def test_segment_on_a_series_with_a_gap_exits_2_and_writes_nothing(tmp_path, capsys):
    folder = write_series(tmp_path / "t1", keep=lambda k: k not in (5, 6, 7))
    out = tmp_path / "out"
    code = main(["segment", "--t1", str(folder), "--output", str(out / "seg.nii.gz"), "--device", "cpu"])
    assert code == EXIT_USER_ERROR
    assert "is missing 3 slice(s)" in capsys.readouterr().err
    assert not out.exists()

