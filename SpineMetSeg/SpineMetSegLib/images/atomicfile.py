"""Write result files so that a file is "written" only once it is verified on disk.

Each file is first written under its final name inside a private folder beside the target (``.partial-XXXX/``),
flushed to disk, checked (read back, or at least found whole), and only then moved into place with
``os.replace``. A failure or a cancel part way never leaves a partial file and never destroys a file that was
there; multi-file formats (``seg.mhd`` + ``seg.raw``) land under their final names together. Any file-system
error (full disk, quota, no permission, a folder in the way) becomes a ``SpineMetSegError`` that says so.

Usage::

    from SpineMetSegLib.images.atomicfile import atomic_path, write_text_atomic
    write_text_atomic("metrics.json", text)           # read back and compared before it replaces metrics.json
    write_csv_atomic("lesions.csv", rows, columns)    # rows: dicts; None -> empty cell, floats to 4 decimals
    with atomic_path("overlay.png") as temporary:     # write to `temporary`; it becomes overlay.png on success
        figure.savefig(temporary)
    write_files([FileJob("a.nii.gz", write_a, verify_a), FileJob("b.csv", write_b)])   # all or none
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Union

import numpy as np

from ..errors import SpineMetSegError

PathLike = Union[str, os.PathLike]
Verifier = Callable[[Path], None]
STAGING_PREFIX = ".partial-"
NEARLY_FULL_BYTES = 64 * 1024 * 1024  # less free space than this is called a full disk in messages


class StagedFile:
    """One output being written at ``path``, inside a private folder beside ``target``.

    ``path`` has the target's name unless ``name`` is given: a writer that names companion files after its
    main file (``seg.mhd`` -> ``seg.raw``) needs the final name, while one that rewrites its file name (the NIfTI
    library turns ``a.nii.gz.nii.gz`` into ``a.nii.gz``) needs a plain one.
    """

    def __init__(self, target: PathLike, name: Optional[str] = None):
        self.target = Path(target)
        try:
            if self.target.is_dir():
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
            self.target.parent.mkdir(parents=True, exist_ok=True)
            self.folder = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.target.parent))
        except OSError as error:
            raise write_error(self.target, error) from None
        self.path = self.folder / (name or self.target.name)

    def finish(self, verify: Optional[Verifier] = None) -> None:
        """Flush every staged file to disk, then check the main one (``verify``, else: it exists, not empty)."""
        written = self.files()
        if self.path not in written:
            raise SpineMetSegError(f"Cannot write {self.target}: the writer produced no file.")
        try:
            for staged in written:
                with open(staged, "rb+") as handle:
                    os.fsync(handle.fileno())
        except OSError as error:
            raise write_error(self.target, error) from None
        if verify is not None:
            verify(self.path)
        elif self.path.stat().st_size == 0:
            raise SpineMetSegError(
                f"Cannot write {self.target}: the file came out empty. {free_space_hint(self.target)}"
            )

    def commit(self) -> None:
        """Move the staged files into place (companions first, the main file last) and remove the folder."""
        mode = default_file_mode()
        try:
            for staged in sorted(self.files(), key=lambda file: file == self.path):
                # Staged files may be private (0600); the result gets the permissions of any new file.
                os.chmod(staged, mode)
                os.replace(staged, self.target if staged == self.path else self.target.parent / staged.name)
            _sync_folder(self.target.parent)
        except OSError as error:
            raise write_error(self.target, error) from None
        finally:
            self.discard()

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def files(self) -> List[Path]:
        return sorted(p for p in self.folder.iterdir() if p.is_file())


def _sync_folder(folder: Path) -> None:
    """Make the renames durable; some file systems cannot fsync a folder, which is harmless here."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def write_error(path: PathLike, error: BaseException) -> SpineMetSegError:
    """The user's message for an ``OSError`` (or a writer's error) while writing ``path``."""
    code = getattr(error, "errno", None)
    if code in (errno.ENOSPC, errno.EDQUOT):
        reason = "the disk is full (or the quota is used up)"
        fix = "Free some space or choose another folder"
    elif code == errno.EFBIG:
        reason = "the file is larger than this file system or the process's file-size limit allows"
        fix = "Choose another folder or raise the limit"
    elif code in (errno.EACCES, errno.EPERM, errno.EROFS):
        reason = "the folder is not writable (no permission, or a read-only disk)"
        fix = "Choose a writable folder"
    elif code in (errno.EISDIR, errno.ENOTDIR):
        reason = "a folder is in the way" if code == errno.EISDIR else "a part of the path is a file, not a folder"
        fix = "Give a file path such as results/seg.nii.gz"
    else:
        text = str(error).strip()
        reason = getattr(error, "strerror", None) or (text.splitlines()[-1] if text else type(error).__name__)
        fix = "Check the folder and the free space"
    return SpineMetSegError(f"Cannot write {path}: {reason}. {fix}; nothing was written and any earlier file "
                            "there is unchanged.")


def free_space_hint(path: PathLike) -> str:
    """A sentence with the free space of ``path``'s file system (the usual cause of a short or unreadable file)."""
    folder = Path(path).parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return "Check the free disk space."
    if free < NEARLY_FULL_BYTES:
        state = f"the disk is full ({free / 1e6:.1f} MB free)"
    else:
        state = (f"the disk has {free / 1e6:.0f} MB free, so a quota or a file-size limit may be the cause, or the "
                 "disk filled up while writing")
    return (f"{state[0].upper()}{state[1:]}. Free some space or choose another folder; nothing was written and any "
            "earlier file there is unchanged.")


@contextlib.contextmanager
def atomic_path(path: PathLike, verify: Optional[Verifier] = None) -> Iterator[Path]:
    """Yield a temporary path (the final name in a private folder); it replaces ``path`` once verified.

    A file-system failure (no permission, a folder in the way, a full disk) becomes a ``SpineMetSegError``.
    """
    staged = StagedFile(path)
    try:
        try:
            yield staged.path
        except OSError as error:
            raise write_error(path, error) from None
        staged.finish(verify)
        staged.commit()
    finally:
        staged.discard()


@dataclass(frozen=True)
class FileJob:
    """One file of a set written together: ``write(temporary)``, then ``verify(temporary)`` (optional).

    ``staged_name``: the temporary file's name (see ``StagedFile``); the target's name by default.
    """

    target: PathLike
    write: Callable[[Path], None]
    verify: Optional[Verifier] = None
    staged_name: Optional[str] = None


def write_files(jobs: Sequence[FileJob]) -> List[Path]:
    """Write several files so that either all appear or none: each staged and verified, then all moved."""
    staged: List[StagedFile] = []
    try:
        for job in jobs:
            staged.append(StagedFile(job.target, job.staged_name))
            try:
                job.write(staged[-1].path)
            except OSError as error:
                raise write_error(job.target, error) from None
            staged[-1].finish(job.verify)
        for file in staged:
            file.commit()
    finally:
        for file in staged:
            file.discard()
    return [Path(job.target) for job in jobs]


def default_file_mode() -> int:
    """The permissions a newly created file gets under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def text_job(path: PathLike, text: str) -> FileJob:
    """The ``FileJob`` that writes ``text`` (UTF-8) to ``path`` and reads it back to check it."""
    data = text.encode("utf-8")

    def verify(temporary: Path) -> None:
        if temporary.read_bytes() != data:
            raise SpineMetSegError(f"Cannot write {path}: the file on disk differs from what was written. "
                                   f"{free_space_hint(path)}")

    return FileJob(path, write=lambda staged: staged.write_bytes(data), verify=verify)


def write_text_atomic(path: PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically, read it back to check it, and return the path."""
    write_files([text_job(path, text)])
    return Path(path)


def csv_text(rows: Sequence[Dict[str, Any]], columns: Sequence[str]) -> str:
    """CSV text of ``rows`` under ``columns``: None as an empty cell, floats to 4 decimals, booleans true/false."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in columns])
    return buffer.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4f}"
    return str(value)


def write_csv_atomic(path: PathLike, rows: Sequence[Dict[str, Any]], columns: Sequence[str]) -> Path:
    """Write ``rows`` as CSV (see ``csv_text``) to ``path`` atomically and return the path."""
    return write_text_atomic(path, csv_text(rows, columns))
