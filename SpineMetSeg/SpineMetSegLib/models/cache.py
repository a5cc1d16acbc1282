"""Where model files live: inside the extension (embedded models) or in the user's cache, and a lock on them.

The cache folder is ``$SPINEMETSEG_HOME`` (default ``~/.spinemetseg``)::

    models/<name>/<version>/<name>-<version>.safetensors   a verified model file (or an extracted archive)
    cards/<name>-<version>.json                           model cards the user imported
    downloads/<name>-<version>.<format>.part              a download in progress (resumable)
    downloads/<name>-<version>.lock                       held while a process changes that model

Usage::

    from SpineMetSegLib.models import cache
    path = cache.model_path(card)            # where the file is or will be; may not exist yet
    with cache.model_lock(card):             # other processes wait here
        ...

A model's folder appears in one step (a rename) once its file is complete and verified, so a reader never
sees half a model.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional

from ..errors import SpineMetSegError
from ..resources import resources_dir

if TYPE_CHECKING:
    from .modelcard import ModelCard  # modelcard imports this module

HOME_ENV = "SPINEMETSEG_HOME"
DEFAULT_HOME = Path("~") / ".spinemetseg"
EMBEDDED_DIR = resources_dir() / "Models"
EMBEDDED_PREFIX = "embedded:"
LOCAL_PREFIX = "local:"
FILE_SUFFIXES = {"safetensors": ".safetensors", "pt": ".pt", "zip": ".zip"}

# A download can take long; a process waiting for another one's download waits this long before giving up.
DEFAULT_LOCK_TIMEOUT_S = 3600.0
LOCK_POLL_S = 0.05
HASH_CHUNK_BYTES = 1 << 20

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None
try:  # Windows
    import msvcrt
except ImportError:
    msvcrt = None


def cache_dir() -> Path:
    """The cache folder: ``$SPINEMETSEG_HOME`` or ``~/.spinemetseg`` (not created here)."""
    return Path(os.environ.get(HOME_ENV) or DEFAULT_HOME).expanduser()


def models_dir() -> Path:
    return cache_dir() / "models"


def cards_dir() -> Path:
    """Model cards of models the user imported (``models import FILE --card CARD``)."""
    return cache_dir() / "cards"


def downloads_dir() -> Path:
    return cache_dir() / "downloads"


def is_embedded(card: ModelCard) -> bool:
    return card.file.url.startswith(EMBEDDED_PREFIX)


def is_local(card: ModelCard) -> bool:
    """True for a model the user imported with its own card: it has no address to download from."""
    return card.file.url.startswith(LOCAL_PREFIX)


def model_dir(card: ModelCard) -> Path:
    """The cache folder of one model version: ``models/<name>/<version>``."""
    return models_dir() / card.name / card.version


def model_path(card: ModelCard) -> Path:
    """The weights file of ``card``: inside the extension when embedded, else in the cache (may not exist)."""
    if is_embedded(card):
        return EMBEDDED_DIR / card.file.url[len(EMBEDDED_PREFIX):]
    if card.file.format == "zip":
        return model_dir(card) / card.file.weights
    return model_dir(card) / f"{card.name}-{card.version}{FILE_SUFFIXES[card.file.format]}"


def is_present(card: ModelCard) -> bool:
    """True when the weights file of ``card`` is in place (and, for a plain file, has the card's size)."""
    path = model_path(card)
    if not path.is_file():
        return False
    return card.file.format == "zip" or path.stat().st_size == card.file.size


def part_path(card: ModelCard) -> Path:
    """Where a download of ``card`` grows until it is complete and verified."""
    return downloads_dir() / f"{card.name}-{card.version}{FILE_SUFFIXES[card.file.format]}.part"


def imported_card_path(name: str, version: str) -> Path:
    return cards_dir() / f"{name}-{version}.json"


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file as 64 lower-case hex characters."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(HASH_CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def model_lock(card: ModelCard, *, timeout_s: Optional[float] = DEFAULT_LOCK_TIMEOUT_S
               ) -> contextlib.AbstractContextManager:
    """A lock held while one process downloads, imports or removes this model version."""
    return file_lock(downloads_dir() / f"{card.name}-{card.version}.lock", timeout_s=timeout_s)


@contextlib.contextmanager
def file_lock(path: Path, *, timeout_s: Optional[float] = DEFAULT_LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` between processes (flock on POSIX, msvcrt on Windows).

    The lock file is removed when released so a failure leaves the cache as it was. Raises
    ``SpineMetSegError`` after ``timeout_s`` seconds (None: wait for ever).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        release = _try_lock(path)
        if release is not None:
            break
        if deadline is not None and time.monotonic() > deadline:
            raise SpineMetSegError(
                f"Another spinemetseg process has held {path} for more than {timeout_s:g} s. Wait for it to "
                f"finish; if no other spinemetseg process runs, delete {path} and try again."
            )
        time.sleep(LOCK_POLL_S)
    try:
        yield
    finally:
        release()


def _try_lock(path: Path):
    """Take the lock if it is free and return a function that releases it, else return None."""
    if fcntl is not None:
        return _try_flock(path)
    if msvcrt is not None:  # pragma: no cover - Windows
        return _try_msvcrt(path)
    return _try_exclusive_create(path)  # pragma: no cover - neither POSIX nor Windows


def _try_flock(path: Path):
    handle = open(path, "a+b")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    # The previous holder unlinks the file before releasing; a lock on that unlinked file protects nothing.
    try:
        same_file = os.path.samestat(os.fstat(handle.fileno()), os.stat(path))
    except FileNotFoundError:
        same_file = False
    if not same_file:
        handle.close()
        return None

    def release() -> None:
        with contextlib.suppress(OSError):
            os.unlink(path)
        handle.close()  # closing releases the flock

    return release


def _try_msvcrt(path: Path):  # pragma: no cover - Windows
    handle = open(path, "a+b")
    try:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
    except OSError:
        handle.close()
        return None

    def release() -> None:
        handle.seek(0)
        with contextlib.suppress(OSError):
            msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        handle.close()
        # Windows cannot delete a file another process holds open; the file then simply stays.
        with contextlib.suppress(OSError):
            os.unlink(path)

    return release


def _try_exclusive_create(path: Path):  # pragma: no cover - fallback for other systems
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return None
    os.close(descriptor)

    def release() -> None:
        with contextlib.suppress(OSError):
            os.unlink(path)

    return release
