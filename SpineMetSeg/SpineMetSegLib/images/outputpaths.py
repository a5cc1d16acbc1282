"""Check output paths before any work, so a bad one costs the user seconds, not a whole run.

An output may not be an input or another output (same resolved path or same file: hard and symbolic links
included), may not be an existing folder, must end with a suffix its writer knows, and its folder must be
writable (tried by creating and removing a file, which also catches read-only disks and runs as root).

Usage::

    from SpineMetSegLib.images.outputpaths import check_paths
    check_paths(outputs={"--output": "seg.nii.gz", "--probabilities": None},
                inputs={"--t1": "t1.nii.gz", "--t2": "dicom/t2/"},
                suffixes={"--output": imageio.WRITABLE_SUFFIXES})
    check_output_folder("--output", "runs/a")      # a folder the command writes into
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import List, Mapping, Optional, Sequence, Union

from ..errors import SpineMetSegError

PathLike = Union[str, os.PathLike]
# Files a MetaImage header (.mhd) writes beside itself, named after it.
MHD_COMPANIONS = (".raw", ".zraw")


def check_paths(
    outputs: Mapping[str, Optional[PathLike]],
    inputs: Optional[Mapping[str, Optional[PathLike]]] = None,
    suffixes: Optional[Mapping[str, Sequence[str]]] = None,
) -> None:
    """Raise ``SpineMetSegError`` for an output that cannot or must not be written (see the module docstring).

    ``outputs`` and ``inputs`` map what the user calls each path (``--output``, ``--t1``) to it; None entries
    are skipped. ``suffixes`` lists, per output name, the suffixes its writer knows.
    """
    given_outputs = [(name, Path(path)) for name, path in outputs.items() if path is not None and str(path)]
    given_inputs = [(name, Path(path)) for name, path in (inputs or {}).items() if path is not None and str(path)]
    for name, path in given_outputs:
        check_output_file(name, path)
        allowed = (suffixes or {}).get(name)
        if allowed is not None and not _has_suffix(path, allowed):
            raise SpineMetSegError(f"Cannot write {name} {path}: the suffix must be one of {', '.join(allowed)}.")
    written = [
        (name if file == path else f"{name} (its data file {file.name})", file)
        for name, path in given_outputs
        for file in _files_written(path)
    ]
    for index, (name, path) in enumerate(written):
        for other_name, other in written[index + 1 :]:
            if other_name.split(' (')[0] != name.split(' (')[0] and same_file(path, other):
                raise SpineMetSegError(
                    f"{name} and {other_name} are the same file ({path}): one would replace the other. "
                    "Give each output its own path."
                )
        for input_name, source in given_inputs:
            for input_file in _files_written(source):
                if same_file(path, input_file):
                    raise SpineMetSegError(
                        f"{name} is the same file as {input_name} ({input_file}): writing it would replace the "
                        "input. Choose another output path; nothing was written."
                    )
            if source.is_dir() and _inside(path, source):
                raise SpineMetSegError(
                    f"{name} ({path}) is inside the folder given as {input_name} ({source}); writing there would "
                    "change the input. Write results to another folder."
                )


def check_output_file(name: str, path: PathLike) -> None:
    """Raise ``SpineMetSegError`` when ``path`` is a folder or its folder cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise SpineMetSegError(
            f"{name} {path} is a folder; give a file path inside it, such as {path / 'result'}{_example(name)}."
        )
    _check_writable_folder(name, path.parent, path)


def check_output_folder(name: str, folder: PathLike) -> None:
    """Raise ``SpineMetSegError`` when ``folder`` is a file or cannot be created or written."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise SpineMetSegError(f"{name} {folder} is a file; give a folder to write into (it is created if needed).")
    _check_writable_folder(name, folder, folder)


def same_file(a: PathLike, b: PathLike) -> bool:
    """True when ``a`` and ``b`` name the same file: the same resolved path, or (both existing) the same inode."""
    a, b = Path(a), Path(b)
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _check_writable_folder(name: str, folder: Path, shown: Path) -> None:
    existing = folder
    while not existing.exists():
        if existing == existing.parent:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise SpineMetSegError(f"Cannot write {name} {shown}: {existing} is a file, not a folder. Choose another path.")
    try:
        handle, probe = tempfile.mkstemp(prefix=".spinemetseg-write-test-", dir=existing)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise SpineMetSegError(
            f"Cannot write {name} {shown}: the folder {existing} is not writable ({error.strerror or error}). "
            "Choose a writable folder; nothing was started."
        ) from None


def _files_written(path: Path) -> List[Path]:
    """The files a path stands for: itself, and for a MetaImage header its data files."""
    if path.suffix.lower() == ".mhd":
        return [path] + [path.with_suffix(suffix) for suffix in MHD_COMPANIONS]
    return [path]


def _inside(path: Path, folder: Path) -> bool:
    return folder.resolve() in path.resolve().parents


def _has_suffix(path: Path, allowed: Sequence[str]) -> bool:
    name = path.name.lower()
    return any(name.endswith(suffix.lower()) for suffix in allowed)


def _example(name: str) -> str:
    return ".csv" if "csv" in name else ".json" if "json" in name else ".png" if "png" in name else ".nii.gz"
