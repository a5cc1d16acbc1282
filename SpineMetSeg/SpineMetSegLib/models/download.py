"""Download a model file into the cache: HTTPS only, resumable, verified, atomic, one process at a time.

Usage::

    from SpineMetSegLib.models import catalog, download
    card = catalog.load_catalog().get("spinemetseg-large")
    path = download.download_model(card, progress=lambda stage, percent, message: print(stage, percent, message))

What happens:

- the address must be ``https://`` (plain ``http://`` only to this machine, for tests); redirects are held
  to the same rule;
- a lock (``cache.model_lock``) makes a second process wait and then use the first one's file;
- bytes go to ``downloads/<name>-<version>.<format>.part``; a broken connection is retried with backoff and
  the next attempt asks only for the missing bytes (HTTP ``Range``); a server that ignores the range and
  answers 200 makes it start over;
- the file's size and sha256 must equal the model card's before the file moves into
  ``models/<name>/<version>/`` in one rename (a zip archive is extracted safely first);
- progress goes to a ``ProgressCallback`` as ``("download", percent, "<name> <version> 1.0/2.5 MB")``, once per
  whole percent;
- any failure raises ``DownloadError`` saying what happened (HTTP status, address) and what to do, and leaves
  the cache as it was, except a ``.part`` file a later attempt resumes.

``install_file`` puts a file the user brought by hand (``spinemetseg models import``) into the cache by the
same checks and the same rename.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import shutil
import socket
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Optional

from .. import __version__
from ..errors import CancelledError, DownloadError, ModelError
from ..progress import ProgressCallback
from . import cache
from .archive import extract_zip
from .modelcard import ModelCard

DownloadProgress = ProgressCallback
"""A download reports ``progress("download", percent, "<name> <version> <done>/<total> MB")``."""
DOWNLOAD_STAGE = "download"
MEGABYTE = 1024 * 1024

DEFAULT_TIMEOUT_S = 30.0  # per connection attempt and per read: a silent server fails after this long
DEFAULT_RETRIES = 3  # further attempts after the first one fails for a reason that may pass
DEFAULT_BACKOFF_S = 2.0  # wait before retry n (0-based): backoff * 2**n, at most MAX_BACKOFF_S
MAX_BACKOFF_S = 60.0
CHUNK_BYTES = 256 * 1024
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
RETRIED_HTTP_STATUS = (408, 425, 429, 500, 502, 503, 504)
USER_AGENT = f"spinemetseg/{__version__}"

log = logging.getLogger(__name__)


class _Transient(Exception):
    """A failure worth another attempt (connection cut, timeout, server error)."""


class _SizeMismatch(Exception):
    """The server's file is not as large as the card says: retrying cannot help."""


def check_url(url: str) -> None:
    """Raise ``DownloadError`` unless ``url`` is ``https://`` or ``http://`` to this machine (loopback)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS:
        return
    raise DownloadError(
        f"Refusing to download {url}: model files are only downloaded over https:// (plain http:// only from "
        "this machine). Fix the address in the catalog, or download the file yourself and run "
        "'spinemetseg models import FILE'."
    )


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to addresses ``check_url`` accepts (no https -> http downgrade)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102 - urllib's hook
        check_url(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _opener(url: str) -> urllib.request.OpenerDirector:
    handlers = [_CheckedRedirects()]
    if urllib.parse.urlsplit(url).hostname in LOOPBACK_HOSTS:
        handlers.append(urllib.request.ProxyHandler({}))  # a proxy cannot reach this machine's loopback
    return urllib.request.build_opener(*handlers)


def _describe(card: ModelCard) -> str:
    return f"{card.name} {card.version}"


def _content_range(value: Optional[str]):
    """``bytes 100-199/200`` -> (100, 200); total None when the server wrote ``*``."""
    match = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", value or "")
    if not match:
        return None, None
    total = None if match.group(3) == "*" else int(match.group(3))
    return int(match.group(1)), total


class _ByteProgress:
    """Turns bytes done of a total into download progress events, one per whole percent (not one per block)."""

    def __init__(self, callback: Optional[ProgressCallback], what: str):
        self.callback, self.what = callback, what
        self.last = -1

    def __call__(self, done: int, total: int) -> None:
        if self.callback is None:
            return
        whole = 100 * done // total if total else 100
        if whole != self.last:
            self.last = whole
            self.callback(DOWNLOAD_STAGE, float(whole), f"{self.what} {done / MEGABYTE:.1f}/{total / MEGABYTE:.1f} MB")


def _fetch_once(url: str, part: Path, size: int, timeout_s: float, progress: _ByteProgress) -> None:
    """One HTTP request that adds to ``part`` until it holds ``size`` bytes; resumes what is there."""
    done = part.stat().st_size if part.exists() else 0
    if done > size:
        part.unlink()
        done = 0
    if done == size:
        return
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
    if done:
        request.add_header("Range", f"bytes={done}-")
    try:
        response = _opener(url).open(request, timeout=timeout_s)
    except urllib.error.HTTPError as error:
        if error.code == 416 and done:  # our partial file does not fit the server's file: start over
            part.unlink()
            raise _Transient("the server refused to resume (HTTP 416)") from None
        raise
    with response:
        if response.status == 206 and done:
            start, total = _content_range(response.headers.get("Content-Range"))
            if start != done:
                part.unlink()
                raise _Transient(f"the server resumed at byte {start}, not {done}")
            if total is not None and total != size:
                raise _SizeMismatch(total)
            mode = "ab"
        elif response.status == 200:
            length = response.headers.get("Content-Length")
            if length is not None and int(length) != size:
                raise _SizeMismatch(int(length))
            done, mode = 0, "wb"  # the server ignored our range (or there was none): start over
        else:
            raise _Transient(f"unexpected HTTP {response.status} {response.reason}")
        with open(part, mode) as sink:
            progress(done, size)
            while True:
                block = response.read(CHUNK_BYTES)
                if not block:
                    break
                done += len(block)
                if done > size:
                    raise _SizeMismatch(f"more than {size}")
                sink.write(block)
                progress(done, size)
    if done < size:
        raise _Transient(f"the connection closed after {done} of {size} bytes")


def _fetch(url: str, part: Path, size: int, *, timeout_s: float, retries: int, backoff_s: float,
           progress: Optional[ProgressCallback], what: str) -> None:
    """Fetch ``url`` into ``part`` with retries; raise ``DownloadError`` saying why it failed."""
    attempts = retries + 1
    bytes_progress = _ByteProgress(progress, what)
    reason = ""
    for attempt in range(attempts):
        if attempt:
            delay = min(MAX_BACKOFF_S, backoff_s * 2 ** (attempt - 1))
            log.warning("download of %s failed (%s); attempt %d of %d in %.1f s", url, reason, attempt + 1,
                        attempts, delay)
            time.sleep(delay)
        try:
            _fetch_once(url, part, size, timeout_s, bytes_progress)
            return
        except urllib.error.HTTPError as error:
            reason = f"HTTP {error.code} {error.reason}"
            if error.code not in RETRIED_HTTP_STATUS:
                raise DownloadError(_http_message(error.code, reason, url, what, attempt + 1)) from None
        except _SizeMismatch as mismatch:
            part.unlink(missing_ok=True)
            raise DownloadError(
                f"Download of {what} failed: {url} is {mismatch.args[0]} bytes, but the model card says {size}. "
                "The file on the server is not the one the catalog describes, so nothing was kept. Update the "
                "catalog (or ask its maintainer), or import a verified file with 'spinemetseg models import FILE'."
            ) from None
        except (socket.timeout, TimeoutError):
            reason = f"no answer within {timeout_s:g} s"
        except urllib.error.URLError as error:
            if isinstance(error.reason, (socket.timeout, TimeoutError)):
                reason = f"no answer within {timeout_s:g} s"
            else:
                reason = f"cannot connect ({error.reason})"
        except (http.client.HTTPException, ConnectionError) as error:
            reason = f"the connection broke ({type(error).__name__}: {error})"
        except _Transient as error:
            reason = str(error)
        except OSError as error:  # other network errors (no route to host, ...) and a full disk
            reason = f"{type(error).__name__}: {error.strerror or error}"
    raise DownloadError(_gave_up_message(reason, url, what, attempts, part, size))


def _http_message(status: int, reason: str, url: str, what: str, attempts: int) -> str:
    tried = f" after {attempts} attempts" if attempts > 1 else ""
    if status == 404 or status == 410:
        advice = ("The model file is not at that address: check the catalog (or $SPINEMETSEG_CATALOG) or ask its "
                  "maintainer; a file you already have can be imported with 'spinemetseg models import FILE'.")
    elif status in (401, 403):
        advice = "The server refuses access to this file: check the address or your access rights."
    elif status >= 500:
        advice = ("The server has a problem: try again later, or download the file another way and run "
                  "'spinemetseg models import FILE'.")
    else:
        advice = "Check the address in the catalog, or import the file with 'spinemetseg models import FILE'."
    return f"Download of {what} failed: {reason} for {url}{tried}. {advice} The cache is unchanged."


def _drop_if_empty(part: Path) -> None:
    """Remove a partial download that holds nothing: it cannot help a resume and only litters the cache."""
    try:
        if part.stat().st_size == 0:
            part.unlink()
    except OSError:
        pass


def _cancelled_outcome(part: Path, size: int) -> str:
    kept = part.stat().st_size if part.exists() else 0
    if kept:
        return f"{kept} of {size} bytes are kept in {part}; running the same command again resumes from there"
    return "nothing was kept"


def _gave_up_message(reason: str, url: str, what: str, attempts: int, part: Path, size: int) -> str:
    if reason.startswith("HTTP "):
        return _http_message(int(reason.split()[1]), reason, url, what, attempts)
    kept = part.stat().st_size if part.exists() else 0
    resume = (f" {kept} of {size} bytes are kept in {part}; running the same command again resumes from there."
              if kept else " The cache is unchanged.")
    tried = f"{attempts} attempt" + ("s" if attempts != 1 else "")
    return (f"Download of {what} from {url} failed after {tried}: {reason}. Check the network "
            f"connection (and the https_proxy setting behind a proxy), then try again.{resume}")


def _verify(path: Path, card: ModelCard, origin: str) -> None:
    """Raise ``DownloadError`` unless ``path`` has the size and sha256 of the card's file."""
    expected_size, expected_sha = card.file.size, card.file.sha256
    size = path.stat().st_size
    if size != expected_size:
        raise DownloadError(f"{origin} is {size} bytes, but the model card of {_describe(card)} says "
                            f"{expected_size}: it is not the file the card describes. The cache is unchanged.")
    sha = cache.sha256_of(path)
    if sha != expected_sha:
        raise DownloadError(
            f"The sha256 of {origin} is {sha}, but the model card of {_describe(card)} says {expected_sha}: "
            "the file is corrupt or not the one the card describes, so it was not used and the cache is "
            "unchanged. Try again; if it happens again, report it to the model's maintainer."
        )


def _land(verified: Path, card: ModelCard, *, move: bool) -> Path:
    """Put a verified file (or the content of a verified archive) in the model's cache folder in one rename."""
    final = cache.model_dir(card)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{card.version}.incoming-", dir=final.parent))
    try:
        if card.file.format == "zip":
            try:
                extract_zip(verified, staging)
            except ModelError as error:
                raise DownloadError(f"Model file of {_describe(card)} refused: {error}") from None
            if not (staging / card.file.weights).is_file():
                raise DownloadError(f"The archive of {_describe(card)} has no member {card.file.weights!r}, "
                                    "which its model card names as the weights file.")
        else:
            staged = staging / cache.model_path(card).name
            if move:
                os.replace(verified, staged)
            else:
                shutil.copyfile(verified, staged)
        old = None
        if final.exists():  # a folder whose file went missing: put it aside, then replace it
            old = Path(tempfile.mkdtemp(prefix=f".{card.version}.old-", dir=final.parent))
            os.replace(final, old / "content")
        os.replace(staging, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    if move and verified.exists():
        verified.unlink()
    return cache.model_path(card)


def download_model(
    card: ModelCard,
    progress: Optional[ProgressCallback] = None,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    retries: int = DEFAULT_RETRIES,
    backoff_s: float = DEFAULT_BACKOFF_S,
    lock_timeout_s: Optional[float] = cache.DEFAULT_LOCK_TIMEOUT_S,
) -> Path:
    """Make sure the weights file of ``card`` is in the cache and return its path.

    An embedded model returns its file inside the extension without any network access; a model already in
    the cache returns at once. Raises ``DownloadError`` (see the module docstring).
    """
    if cache.is_embedded(card):
        return cache.model_path(card)
    if cache.is_present(card):
        return cache.model_path(card)
    url = card.file.url
    if cache.is_local(card):
        raise DownloadError(f"{_describe(card)} was imported by hand and has no download address. Import it again "
                            "with 'spinemetseg models import FILE --card CARD.json'.")
    check_url(url)
    with cache.model_lock(card, timeout_s=lock_timeout_s):
        if cache.is_present(card):  # another process finished it while we waited
            return cache.model_path(card)
        part = cache.part_path(card)
        part.parent.mkdir(parents=True, exist_ok=True)
        try:
            _fetch(url, part, card.file.size, timeout_s=timeout_s, retries=retries, backoff_s=backoff_s,
                   progress=progress, what=_describe(card))
        except (KeyboardInterrupt, CancelledError):
            raise CancelledError("download cancelled", _cancelled_outcome(part, card.file.size)) from None
        finally:
            _drop_if_empty(part)
        try:
            _verify(part, card, url)
        except DownloadError:
            part.unlink(missing_ok=True)  # complete but wrong: resuming it can never succeed
            raise
        try:
            return _land(part, card, move=True)
        except DownloadError:
            part.unlink(missing_ok=True)
            raise


def install_file(path: Path, card: ModelCard) -> Path:
    """Copy a file the user brought by hand into the cache as the weights of ``card``; return the cached path.

    The file must have the card's size and sha256 (``DownloadError`` otherwise); the user's file stays.
    """
    path = Path(path)
    if not path.is_file():
        raise DownloadError(f"{path} does not exist or is not a file.")
    if cache.is_embedded(card):
        raise DownloadError(f"{_describe(card)} is embedded in the extension; there is nothing to import.")
    with cache.model_lock(card):
        _verify(path, card, str(path))
        return _land(path, card, move=False)


def remove_model(card: ModelCard) -> Path:
    """Delete the cached files of ``card`` (and its imported card) and return the folder that was removed.

    Refuses an embedded model (``ModelError``).
    """
    if cache.is_embedded(card):
        raise ModelError(f"{_describe(card)} is embedded in the extension and cannot be removed.")
    folder = cache.model_dir(card)
    with cache.model_lock(card):
        if folder.exists():
            # Rename first so no reader sees a half-deleted model.
            trash = Path(tempfile.mkdtemp(prefix=f".{card.version}.removing-", dir=folder.parent))
            os.replace(folder, trash / "content")
            shutil.rmtree(trash, ignore_errors=True)
        cache.part_path(card).unlink(missing_ok=True)
        cache.imported_card_path(card.name, card.version).unlink(missing_ok=True)
        if folder.parent.exists() and not any(folder.parent.iterdir()):
            folder.parent.rmdir()
    return folder
