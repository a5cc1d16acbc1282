"""Write result files (text, CSV, pictures) atomically: a temporary file beside the target, then ``os.replace``.

A failure (or a cancel) part way never leaves a partial file and never destroys a file that was there.

Usage::

    from SpineMetSegLib.atomicfile import atomic_path, write_text_atomic
    write_text_atomic("metrics.json", text)
    write_csv_atomic("lesions.csv", rows, columns)    # rows: dicts; None -> empty cell, floats to 4 decimals
    with atomic_path("overlay.png") as temporary:     # write to `temporary`; it becomes overlay.png on success
        figure.savefig(temporary)
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterator, Sequence, Union

import numpy as np

from .errors import SpineMetSegError

PathLike = Union[str, os.PathLike]


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` when the block ends without an error.

    A file-system failure (no permission, a folder in the way, a full disk) becomes a ``SpineMetSegError``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".partial-", suffix=full_suffix(path), dir=path.parent)
        os.close(handle)
    except OSError as error:
        raise SpineMetSegError(f"Cannot write {path}: {error.strerror or error}. Choose a writable folder.") from None
    try:
        yield Path(temporary)
        # Temporary files are private (0600); the result gets the permissions of any new file.
        os.chmod(temporary, default_file_mode())
        os.replace(temporary, path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise SpineMetSegError(f"Cannot write {path}: {error.strerror or error}.") from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def full_suffix(path: PathLike) -> str:
    """The suffix a writer chooses its format by, double suffixes such as ``.nii.gz`` included."""
    suffixes = Path(path).suffixes
    if len(suffixes) >= 2 and suffixes[-1].lower() == ".gz":
        return "".join(suffixes[-2:])
    return suffixes[-1] if suffixes else ""


def default_file_mode() -> int:
    """The permissions a newly created file gets under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_text_atomic(path: PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically and return the path."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
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
