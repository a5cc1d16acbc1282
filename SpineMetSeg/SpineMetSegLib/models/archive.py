"""Safe extraction of a model archive (zip): no absolute paths, no ``..``, no links, bounded sizes.

A downloaded archive is verified by its sha256 first, but the catalog's author may still have packed
something unsafe by mistake; extraction refuses any member that would land outside the target folder,
any link, and archives that would unpack into more than the size limits (a "zip bomb").

Usage::

    from SpineMetSegLib.models.archive import extract_zip
    names = extract_zip("model.zip", "folder")           # the extracted member names

Raises ``ModelError`` naming the member at fault; on error nothing is left in the target folder that was
not there before, as long as the folder was empty (the caller extracts into a fresh temporary folder).
"""

from __future__ import annotations

import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import List, Union

from ..errors import ModelError

MAX_TOTAL_BYTES = 4 * 1024**3  # 4 GiB unpacked: far above any segmentation network
MAX_MEMBER_BYTES = 2 * 1024**3
MAX_MEMBERS = 1000
COPY_CHUNK_BYTES = 1 << 20


def _member_parts(name: str) -> List[str]:
    """The path components of a member name, refusing anything that could escape the target folder."""
    unified = name.replace("\\", "/")
    if not unified or unified.startswith("/") or (len(unified) > 1 and unified[1] == ":"):
        raise ModelError(f"member {name!r} has an absolute path")
    parts = [part for part in PurePosixPath(unified).parts if part not in ("", ".")]
    if ".." in parts:
        raise ModelError(f"member {name!r} points outside the archive ('..')")
    return parts


def extract_zip(
    archive: Union[str, Path],
    target: Union[str, Path],
    *,
    max_total_bytes: int = MAX_TOTAL_BYTES,
    max_member_bytes: int = MAX_MEMBER_BYTES,
    max_members: int = MAX_MEMBERS,
) -> List[str]:
    """Extract the zip ``archive`` into the folder ``target`` after checking every member; return their names.

    Every check runs before anything is written; while writing, the real number of bytes is counted too,
    because a member's declared size can lie.
    """
    archive, target = Path(archive), Path(target)
    try:
        bundle = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as error:
        raise ModelError(f"{archive} is not a readable zip archive ({error}).") from None
    with bundle:
        members = bundle.infolist()
        if len(members) > max_members:
            raise ModelError(f"{archive} has {len(members)} members; at most {max_members} are accepted.")
        total = 0
        planned = []
        for member in members:
            try:
                parts = _member_parts(member.filename)
            except ModelError as error:
                raise ModelError(f"unsafe archive {archive.name}: {error}; nothing was extracted.") from None
            mode = member.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise ModelError(f"unsafe archive {archive.name}: member {member.filename!r} is a symbolic link; "
                                 "nothing was extracted.")
            if member.file_size > max_member_bytes:
                raise ModelError(f"archive {archive.name}: member {member.filename!r} unpacks to "
                                 f"{member.file_size} bytes, more than the limit of {max_member_bytes}.")
            total += member.file_size
            if total > max_total_bytes:
                raise ModelError(f"archive {archive.name} unpacks to more than {max_total_bytes} bytes.")
            if parts:
                planned.append((member, parts))
        target.mkdir(parents=True, exist_ok=True)
        written = 0
        for member, parts in planned:
            destination = target.joinpath(*parts)
            if member.is_dir():
                destination.mkdir(parents=True, exist_ok=True)
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            try:
                written += _copy_member(bundle, member, destination, max_member_bytes, max_total_bytes - written)
            except (zipfile.BadZipFile, zlib.error, EOFError) as error:
                raise ModelError(f"archive {archive.name}: member {member.filename!r} is corrupt ({error}).") from None
        return [member.filename for member, _ in planned]


def _copy_member(bundle: zipfile.ZipFile, member: zipfile.ZipInfo, destination: Path, limit: int, left: int) -> int:
    """Write one member and return its real size, stopping once it passes ``limit`` or the ``left`` budget."""
    size = 0
    with bundle.open(member) as source, open(destination, "wb") as sink:
        while True:
            block = source.read(COPY_CHUNK_BYTES)
            if not block:
                return size
            size += len(block)
            if size > limit or size > left:
                raise ModelError(f"archive member {member.filename!r} unpacks to more than its size limit.")
            sink.write(block)
