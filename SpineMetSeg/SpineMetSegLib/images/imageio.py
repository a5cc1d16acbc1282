"""Image input and output with geometry, on SimpleITK.

Usage::

    from SpineMetSegLib.images import imageio
    t1 = imageio.read_image("t1.nii.gz")            # also .nrrd, .mha, .mhd, or a DICOM series folder
    imageio.check_intensity_image(t1, "T1")          # NaN/inf, empty or constant -> ImageError
    imageio.write_image(t1, "copy.nrrd")             # atomic: no partial file on failure
    on_t1 = imageio.resample_to(stir, t1)            # linear; nearest=True for label maps

Geometry (size, origin, spacing, direction) survives every read, resample and write: exactly for NRRD, MHA
and DICOM-free round trips, to float32 precision for NIfTI (the format stores float32).
"""

from __future__ import annotations

import gzip
import os
import struct
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, Tuple, Union

import numpy as np
import SimpleITK as sitk

from ..errors import GeometryError, ImageError, SpineMetSegError
from .atomicfile import FileJob, free_space_hint, write_files

PathLike = Union[str, os.PathLike]

READABLE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".seg.nrrd", ".mha", ".mhd", ".dcm")
WRITABLE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".mha", ".mhd")
# Geometry comparisons: NIfTI stores its affine in float32.
GEOMETRY_TOLERANCE = 1e-4
NIFTI_HEADER_BYTES = 540  # a NIfTI-2 header; a NIfTI-1 header (348) and its first voxels fit in it
NIFTI_CHUNK_BYTES = 1 << 24
GZIP_MAGIC = b"\x1f\x8b"
NIFTI_FLOAT_TYPES = {16: "f4", 64: "f8"}  # NIfTI datatype codes of float32 and float64
# DICOM slice stacks: positions closer than this are one position; spacing may vary by this fraction (scanner
# rounding) before the series counts as uneven; orientation cosines may differ by this much.
DICOM_POSITION_TOLERANCE_MM = 0.01
DICOM_SPACING_TOLERANCE = 0.05
DICOM_ORIENTATION_TOLERANCE = 1e-3
DICOM_MODALITY_TAG = "0008|0060"
# Reading progress: ITK reports none while it decodes a file, so while it reads, a line every this many seconds
# with the share estimated from the time it has taken so far against the expected time (for NIfTI: as long as
# the check pass over the same stream took; otherwise the file size at READ_BYTES_PER_SECOND).
READ_PROGRESS_SECONDS = 1.0
READ_BYTES_PER_SECOND = 50e6
READ_PROGRESS_CAP = 0.95  # an estimate never claims the read is done

# progress(fraction of the read 0..1, message)
ReadProgress = Callable[[float, str], None]


@dataclass(frozen=True)
class Geometry:
    """The voxel grid of an image: size (i, j, k), spacing and origin in mm, direction as 9 numbers (LPS)."""

    size: Tuple[int, ...]
    spacing: Tuple[float, ...]
    origin: Tuple[float, ...]
    direction: Tuple[float, ...]

    @classmethod
    def of(cls, image: sitk.Image) -> Geometry:
        return cls(image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection())

    def matches(self, other: Geometry, tolerance: float = GEOMETRY_TOLERANCE) -> bool:
        """True when both grids are the same voxel for voxel (within ``tolerance``)."""
        return (
            self.size == other.size
            and np.allclose(self.spacing, other.spacing, atol=tolerance)
            and np.allclose(self.origin, other.origin, atol=tolerance)
            and np.allclose(self.direction, other.direction, atol=tolerance)
        )

    def apply_to(self, image: sitk.Image) -> sitk.Image:
        """Set this geometry's origin, spacing and direction on ``image`` (sizes must agree)."""
        if tuple(image.GetSize()) != tuple(self.size):
            raise GeometryError(f"cannot give a {image.GetSize()} image the geometry of a {self.size} grid")
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image


def suffix_of(path: PathLike) -> str:
    """The image suffix of a path, double suffixes (``.nii.gz``, ``.seg.nrrd``) included, in lower case."""
    name = Path(path).name.lower()
    for suffix in sorted(READABLE_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return suffix
    return Path(name).suffix


def read_image(path: PathLike, *, name: str = "", progress: Optional[ReadProgress] = None) -> sitk.Image:
    """Read a 3D scalar image from a file or a DICOM series folder.

    Raises ``ImageError`` for a missing or unreadable file, a 2D image (also a single slice), a 4D image or a
    multi-component (vector, RGB) image. ``name`` (``"T1"``, ``"reference"``, ...) goes into the messages.
    ``progress(fraction, message)`` hears how far the read is, about once a second for a file (NIfTI: the check
    pass over the stream is the first half, by bytes; ITK's decoding the second, estimated by time).
    """
    path = Path(path)
    label = f"{name} image {path}" if name else f"image {path}"
    if not path.exists():
        raise ImageError(f"The {label} does not exist. Check the path.")
    if path.is_dir():
        image = _read_dicom_series(path, label)
    else:
        expected = _file_size(path) / READ_BYTES_PER_SECOND
        share = 0.0  # of the read done before ITK's decoding
        if suffix_of(path) in (".nii", ".nii.gz"):
            started = time.monotonic()
            _check_nifti_complete(path, label, _scaled(progress, 0.0, 0.5))
            expected, share = time.monotonic() - started, 0.5
        try:
            with _progress_while(progress, share, expected, "decoding"):
                image = sitk.ReadImage(str(path))
        except RuntimeError as error:
            first = str(error).strip().splitlines()[-1] if str(error).strip() else ""
            raise ImageError(
                f"Cannot read the {label}: it is not a readable NIfTI, NRRD, MHA or DICOM file "
                f"(it may be truncated or of another format). {first}".strip()
            ) from None
    check_3d(image, label)
    return image


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _scaled(progress: Optional[ReadProgress], low: float, high: float) -> Optional[ReadProgress]:
    if progress is None:
        return None
    return lambda fraction, message: progress(low + (high - low) * fraction, message)


class _progress_while:
    """While the block runs (ITK reading, which reports nothing), report progress every
    ``READ_PROGRESS_SECONDS`` from a thread: ``share`` + the elapsed share of ``expected`` seconds, capped.
    SimpleITK releases the GIL while it reads, so the thread runs."""

    def __init__(self, progress: Optional[ReadProgress], share: float, expected: float, message: str):
        self.progress, self.share, self.expected, self.message = progress, share, max(expected, 1e-3), message
        self.done = threading.Event()
        self.thread: Optional[threading.Thread] = None

    def __enter__(self) -> _progress_while:
        if self.progress is not None:
            self.thread = threading.Thread(target=self._run, daemon=True)
            self.thread.start()
        return self

    def _run(self) -> None:
        started = time.monotonic()
        while not self.done.wait(READ_PROGRESS_SECONDS):
            elapsed = time.monotonic() - started
            estimate = min(READ_PROGRESS_CAP, elapsed / self.expected)
            self.progress(self.share + (1.0 - self.share) * estimate, f"{self.message} ({elapsed:.0f} s)")

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        if self.thread is not None:
            self.thread.join()


def _check_nifti_complete(path: Path, label: str, progress: Optional[ReadProgress] = None) -> None:
    """Raise ``ImageError`` for a truncated NIfTI file or one with NaN/infinite voxels.

    ITK reads both without complaint: it fills missing voxels with 0 and turns NaN into 0, so a broken scan
    would look like a valid one. The voxels are read in chunks, never all at once beside ITK's copy.
    ``progress(fraction, message)`` hears the share of the file's bytes passed, about once a second.
    """
    compressed = suffix_of(path) == ".nii.gz"
    if compressed and not _starts_with(path, GZIP_MAGIC):
        raise ImageError(
            f"Cannot read the {label}: it is not gzip-compressed, so it is not a .nii.gz image (it may be another "
            "kind of file renamed). Check that the right file was chosen."
        )
    non_finite = 0
    total = max(1, _file_size(path))
    reported = time.monotonic()
    try:
        with open(path, "rb") as raw, (gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw) as stream:
            header = stream.read(NIFTI_HEADER_BYTES)
            layout = _nifti_layout(header)
            if layout is None:
                return  # not a NIfTI header: let ITK say what it is
            voxels = header[layout.offset : layout.size]
            available = len(header)
            while True:
                if layout.float_dtype is not None:
                    usable = len(voxels) - len(voxels) % layout.float_dtype.itemsize
                    values = np.frombuffer(voxels[:usable], dtype=layout.float_dtype)
                    non_finite += int(values.size - np.count_nonzero(np.isfinite(values)))
                    voxels = voxels[usable:]
                if available >= layout.size:
                    break
                chunk = stream.read(min(NIFTI_CHUNK_BYTES, layout.size - available))
                if not chunk:
                    break
                if progress is not None and time.monotonic() - reported >= READ_PROGRESS_SECONDS:
                    reported = time.monotonic()
                    progress(min(1.0, raw.tell() / total), f"checking {raw.tell() >> 20} of {total >> 20} MB")
                if layout.float_dtype is not None:  # other voxels are only counted, never kept
                    voxels += chunk[max(0, layout.offset - available) :]
                available += len(chunk)
    except (OSError, EOFError, zlib.error):
        raise ImageError(f"Cannot read the {label}: the compressed file is truncated or corrupt.") from None
    if available < layout.size:
        raise ImageError(
            f"Cannot read the {label}: the file is truncated ({available} of {layout.size} bytes). Copy it again."
        )
    if non_finite:
        raise ImageError(f"The {label} has {non_finite} NaN or infinite voxels. Fix or re-export the volume.")


def _starts_with(path: Path, magic: bytes) -> bool:
    try:
        with open(path, "rb") as stream:
            return stream.read(len(magic)) == magic
    except OSError:
        return True  # let the reader report what is wrong with the file


@dataclass(frozen=True)
class _NiftiLayout:
    size: int  # bytes the file must hold: header, extensions and voxels
    offset: int  # where the voxels start
    float_dtype: Optional[np.dtype]  # the voxel type when it can hold NaN, else None


def _nifti_layout(header: bytes) -> Optional[_NiftiLayout]:
    """Where the voxels of a NIfTI-1 or NIfTI-2 file lie and what they are; None for another format."""
    for endian in "<>":
        if len(header) >= 348 and struct.unpack(endian + "i", header[:4])[0] == 348:
            dims = struct.unpack(endian + "8h", header[40:56])
            datatype, bitpix = struct.unpack(endian + "hh", header[70:74])
            offset = int(struct.unpack(endian + "f", header[108:112])[0])
            break
        if len(header) >= 540 and struct.unpack(endian + "i", header[:4])[0] == 540:
            datatype, bitpix = struct.unpack(endian + "hh", header[12:16])
            dims = struct.unpack(endian + "8q", header[16:80])
            offset = struct.unpack(endian + "q", header[168:176])[0]
            break
    else:
        return None
    count = 1
    for extent in dims[1 : 1 + max(0, min(dims[0], 7))]:
        count *= max(int(extent), 1)
    float_type = NIFTI_FLOAT_TYPES.get(datatype)
    return _NiftiLayout(
        size=offset + count * max(bitpix, 8) // 8,
        offset=offset,
        float_dtype=np.dtype(float_type).newbyteorder(endian) if float_type else None,
    )


def _read_dicom_series(folder: Path, label: str) -> sitk.Image:
    series_ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if not series_ids:
        raise ImageError(f"The {label} is a folder with no DICOM series in it. Choose a folder of DICOM slices.")
    if len(series_ids) > 1:
        listed = "; ".join(
            f"{_series_description(folder, sid)} "
            f"({len(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), sid))} files, series UID {sid})"
            for sid in series_ids
        )
        raise ImageError(
            f"The {label} holds {len(series_ids)} DICOM series: {listed}. Put the series to use in a folder of its "
            "own (or export it as NIfTI/NRRD) and give that."
        )
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_ids[0])
    return read_dicom_files(files, f"DICOM series in the {label}")


def read_dicom_files(files: Sequence[str], what: str) -> sitk.Image:
    """The volume of one DICOM series given its files: the one series reader of ``segment``, ``batch`` and the rest.

    The slices must form one regular grid (``check_slice_positions``; ITK would only warn); the DICOM modality
    travels with the volume as metadata, so the CT check can trust it (``preprocessing.looks_like_ct``). ``what``
    names the series in messages ("DICOM series in the T1 image dicom/t1", "DICOM T1 series #3 'sag T1'").
    """
    files = tuple(str(path) for path in files)
    check_slice_positions(files, what)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(list(files))
    try:
        image = reader.Execute()
    except RuntimeError as error:
        first = str(error).strip().splitlines()[-1] if str(error).strip() else ""
        raise ImageError(f"Cannot read the {what}: {first}") from None
    modality = _dicom_tags(files[0], (DICOM_MODALITY_TAG,)).get(DICOM_MODALITY_TAG, "").strip()
    if modality:
        image.SetMetaData(DICOM_MODALITY_TAG, modality)
    check_3d(image, what)
    return image


def _series_description(folder: Path, series_id: str) -> str:
    first = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_id)[0]
    tags = _dicom_tags(first, ("0008|103e", "0020|0011"))
    description = tags.get("0008|103e", "").strip() or "no description"
    number = tags.get("0020|0011", "").strip()
    return f"series {number} '{description}'" if number else f"'{description}'"


def _dicom_tags(path: str, keys: Tuple[str, ...]) -> dict:
    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return {}
    return {key: reader.GetMetaData(key) for key in keys if reader.HasMetaDataKey(key)}


def check_slice_positions(files: Tuple[str, ...], what: str) -> None:
    """Raise ``ImageError`` for a DICOM series whose slices do not form one regular grid.

    ITK reads such a series with a warning only and gives every slice the same spacing, so the geometry past
    a gap is wrong. Missing slices, uneven spacing, repeated positions and mixed orientations are named.
    """
    if len(files) < 2:
        return
    positions, orientations = [], []
    for path in files:
        tags = _dicom_tags(path, ("0020|0032", "0020|0037"))
        try:
            positions.append([float(v) for v in tags["0020|0032"].split("\\")])
            orientations.append([float(v) for v in tags["0020|0037"].split("\\")])
        except (KeyError, ValueError):
            return  # no usable position tags (a secondary capture, a single-frame export): ITK decides
    orientations_array = np.array(orientations)
    if np.abs(orientations_array - orientations_array[0]).max() > DICOM_ORIENTATION_TOLERANCE:
        raise ImageError(
            f"The {what} mixes slice orientations (several stacks or a localiser in one "
            "series). Export the stack to use as its own series."
        )
    row, column = orientations_array[0][:3], orientations_array[0][3:]
    along = np.array(positions) @ np.cross(row, column)
    order = np.sort(along)
    steps = np.diff(order)
    if np.any(steps < DICOM_POSITION_TOLERANCE_MM):
        raise ImageError(
            f"The {what} has several slices at the same position ({len(files)} files): it "
            "holds more than one volume (echoes, time points or repeats). Export one volume as its own series."
        )
    spacing = float(np.median(steps))
    uneven = np.abs(steps - spacing) > max(DICOM_POSITION_TOLERANCE_MM, DICOM_SPACING_TOLERANCE * spacing)
    if not np.any(uneven):
        return
    at = np.flatnonzero(uneven)
    missing = np.round(steps[at] / spacing).astype(int) - 1
    whole_slices = np.abs(steps[at] - (missing + 1) * spacing) <= DICOM_SPACING_TOLERANCE * spacing
    if np.all(missing >= 1) and np.all(whole_slices):
        where = "; ".join(f"{n} between {order[i]:.1f} and {order[i + 1]:.1f} mm" for i, n in zip(at, missing))
        raise ImageError(
            f"The {what} is missing {int(missing.sum())} slice(s) ({where} along the slice "
            f"normal; {spacing:.2f} mm apart elsewhere): the volume past the gap would be misplaced. Copy the "
            "complete series again."
        )
    raise ImageError(
        f"The {what} has uneven slice spacing (from {steps.min():.2f} to {steps.max():.2f} mm): "
        "it cannot be read as one regular volume. Export it resampled to even spacing, or as NIfTI/NRRD."
    )


def check_3d(image: sitk.Image, label: str = "image") -> None:
    """Raise ``ImageError`` unless ``image`` is a 3D scalar volume with more than one slice."""
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ImageError(
            f"The {label} has {image.GetNumberOfComponentsPerPixel()} components per voxel (colour or vector); "
            "a scalar MRI volume is needed."
        )
    dimension = image.GetDimension()
    if dimension == 2 or (dimension == 3 and min(image.GetSize()) == 1):
        raise ImageError(f"The {label} is 2D (size {image.GetSize()}); a 3D volume with several slices is needed.")
    if dimension == 4:
        raise ImageError(
            f"The {label} is 4D (size {image.GetSize()}), a time series or several volumes in one file; "
            "split it and give one 3D volume."
        )
    if dimension != 3:
        raise ImageError(f"The {label} has {dimension} dimensions; a 3D volume is needed.")


def check_intensity_image(image: sitk.Image, name: str = "image") -> None:
    """Raise ``ImageError`` for NaN or infinite voxels and for an empty (all zero) or constant volume."""
    array = sitk.GetArrayViewFromImage(image)
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise ImageError(f"The {name} image has {bad} NaN or infinite voxels. Fix or re-export the volume.")
    low, high = float(array.min()), float(array.max())
    if low == high == 0:
        raise ImageError(f"The {name} image is empty (every voxel is 0). Check that the right volume was chosen.")
    if low == high:
        raise ImageError(
            f"The {name} image is constant (every voxel is {low:g}); it holds no picture to segment."
        )


def write_image(image: sitk.Image, path: PathLike, *, compress: bool = True) -> Path:
    """Write ``image`` to ``path`` (.nii, .nii.gz, .nrrd, .mha, .mhd) and return the path, once verified.

    The image goes to a staging folder beside the target, is read back and compared voxel for voxel (a full
    decode of a compressed stream), and only then replaces the target, so a failure (a full disk, no
    permission) never leaves a partial file and never destroys a file that was there: ``SpineMetSegError``.
    ``.mhd`` and its ``.raw`` land together.
    """
    write_files([image_job(image, path, compress=compress)])
    return Path(path)


def image_job(image: sitk.Image, path: PathLike, *, compress: bool = True) -> FileJob:
    """The ``FileJob`` that writes ``image`` to ``path`` and verifies it (for ``atomicfile.write_files``)."""
    path = Path(path)
    check_writable_suffix(path)
    return FileJob(
        path,
        write=lambda staged: _write_staged(image, staged, path, compress and suffix_of(path) != ".mhd"),
        verify=lambda staged: verify_written_image(image, staged, path),
        # MetaImage names its .raw after the header, so it is staged under its final name; the NIfTI library
        # rewrites some names (a.nii.gz.nii.gz -> a.nii.gz), so the others are staged under a plain one.
        staged_name=path.name if suffix_of(path) == ".mhd" else "image" + suffix_of(path),
    )


def check_writable_suffix(path: PathLike, what: str = "") -> None:
    """Raise ``ImageError`` unless ``path`` ends with a suffix ``write_image`` writes."""
    if suffix_of(path) not in WRITABLE_SUFFIXES:
        named = f"{what} " if what else ""
        raise ImageError(f"Cannot write {named}{path}: the suffix must be one of {', '.join(WRITABLE_SUFFIXES)}.")


def _write_staged(image: sitk.Image, staged: Path, target: Path, compress: bool) -> None:
    try:
        sitk.WriteImage(image, str(staged), compress)
    except RuntimeError as error:
        detail = str(error).strip().splitlines()[-1] if str(error).strip() else ""
        raise SpineMetSegError(
            f"Cannot write {target}: the image writer failed ({detail.strip()}). {free_space_hint(target)}"
        ) from None


def verify_written_image(image: sitk.Image, staged: Path, target: Path) -> None:
    """Raise ``SpineMetSegError`` unless the file at ``staged`` reads back as ``image`` (voxels and geometry).

    ITK's writers can report success on a full disk and leave a short or empty file; reading it back is the
    only check that cannot be fooled.
    """
    problem = f"Cannot write {target}: the file on disk does not read back as written"
    try:
        back = sitk.ReadImage(str(staged))
    except RuntimeError:
        raise SpineMetSegError(f"{problem} (it is truncated or corrupt). {free_space_hint(target)}") from None
    if back.GetSize() != image.GetSize() or not Geometry.of(back).matches(Geometry.of(image)):
        raise SpineMetSegError(f"{problem} (its grid differs). {free_space_hint(target)}")
    expected = sitk.GetArrayViewFromImage(image)
    found = sitk.GetArrayViewFromImage(back)
    floating = np.issubdtype(expected.dtype, np.floating)
    if not np.array_equal(expected, found, equal_nan=floating):
        raise SpineMetSegError(f"{problem} (its voxels differ). {free_space_hint(target)}")


def resample_to(
    image: sitk.Image, reference: sitk.Image, *, nearest: bool = False, default: float = 0.0
) -> sitk.Image:
    """Resample ``image`` onto the grid of ``reference`` (identity transform, physical coordinates).

    Linear interpolation for intensities, nearest neighbour for label maps (``nearest=True``). An image already
    on the reference grid comes back unchanged (same object). Raises ``GeometryError`` when the two images do
    not overlap in space at all.
    """
    if Geometry.of(image).matches(Geometry.of(reference), tolerance=1e-6):
        return image
    if not overlaps(image, reference):
        raise GeometryError(
            "The images do not overlap in space (their bounding boxes are disjoint): they are not of the same "
            "patient position or one has a wrong origin."
        )
    return resample_onto(image, Geometry.of(reference), nearest=nearest, default=default)


def resample_onto(image: sitk.Image, grid: Geometry, *, nearest: bool = False, default: float = 0.0,
                  pixel_type: Optional[int] = None) -> sitk.Image:
    """``image`` resampled onto ``grid`` (identity transform, physical coordinates), as ``pixel_type`` (default:
    its own): linear interpolation for intensities, nearest neighbour for label maps (``nearest=True``)."""
    interpolator = sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear
    return sitk.Resample(image, [int(n) for n in grid.size], sitk.Transform(), interpolator, grid.origin,
                         grid.spacing, grid.direction, default,
                         image.GetPixelID() if pixel_type is None else pixel_type)


def physical_bounds(image: sitk.Image) -> Tuple[np.ndarray, np.ndarray]:
    """The axis-aligned physical (LPS) bounding box of the voxel centres' outer corners: (low, high)."""
    size = np.array(image.GetSize(), dtype=float)
    corners = []
    for i in (-0.5, size[0] - 0.5):
        for j in (-0.5, size[1] - 0.5):
            for k in (-0.5, size[2] - 0.5):
                corners.append(image.TransformContinuousIndexToPhysicalPoint((i, j, k)))
    corners = np.array(corners)
    return corners.min(axis=0), corners.max(axis=0)


def overlaps(a: sitk.Image, b: sitk.Image) -> bool:
    """True when the physical bounding boxes of two images intersect."""
    low_a, high_a = physical_bounds(a)
    low_b, high_b = physical_bounds(b)
    return bool(np.all(low_a < high_b) and np.all(low_b < high_a))


def reorient(image: sitk.Image, orientation: str = "LPS") -> sitk.Image:
    """Permute and flip axes so they run toward ``orientation`` (ITK/DICOM letters; ``LPS`` = identity).

    Only axis order and signs change; no interpolation, the voxels and the physical space stay the same.
    """
    return sitk.DICOMOrient(image, orientation)


def orientation_of(image: sitk.Image) -> str:
    """The three-letter orientation code of an image's direction (``LPS`` for identity)."""
    return sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(image.GetDirection())
