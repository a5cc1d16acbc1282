"""Model download against a real HTTP server on 127.0.0.1: resume, retries, checks, lock, safe archives."""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import stat
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest
from http_server import LocalServer, Route, card_for

from SpineMetSegLib.errors import DownloadError, ModelError
from SpineMetSegLib.models import cache, catalog, download
from SpineMetSegLib.models.archive import extract_zip

# Small files and short waits keep these tests fast; several chunks of download.CHUNK_BYTES each.
DATA = bytes(range(256)) * 2400  # 614,400 bytes
FAST = {"timeout_s": 5.0, "retries": 0, "backoff_s": 0.0}


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "home"
    monkeypatch.setenv(cache.HOME_ENV, str(folder))
    return folder


@pytest.fixture
def server():
    with LocalServer() as running:
        yield running


def files_in(folder: Path) -> set:
    """Every file below ``folder`` (relative paths): what "the cache is unchanged" compares."""
    return {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()} if folder.exists() else set()


def serve(server: LocalServer, data: bytes = DATA, path: str = "/model.safetensors", **route) -> catalog.ModelCard:
    server.routes[path] = Route(data=data, **route)
    return catalog.card_from_dict(card_for(data, server.url(path)))


def test_clean_download_lands_the_verified_file_and_reports_progress(home, server):
    card = serve(server)
    calls = []
    path = download.download_model(card, progress=lambda *event: calls.append(event), **FAST)

    assert path == home / "models" / "test-model" / "1.0.0" / "test-model-1.0.0.safetensors"
    assert path.read_bytes() == DATA
    megabytes = len(DATA) / 1024 / 1024
    assert calls[-1] == ("download", 100.0, f"test-model 1.0.0 {megabytes:.1f}/{megabytes:.1f} MB")
    percents = [percent for _, percent, _ in calls]
    # One event per whole percent, not one per block: no repeats, never backwards, from 0.
    assert percents == sorted(set(percents)) and percents[0] == 0 and len(calls) > 2
    assert files_in(home) == {"models/test-model/1.0.0/test-model-1.0.0.safetensors"}  # no .part, no lock
    assert catalog.model_file(card) == path
    download.download_model(card, **FAST)
    assert len(server.requests) == 1  # a cached model is not fetched again


def test_http_404_names_status_and_address_and_leaves_the_cache_unchanged(home, server):
    card = catalog.card_from_dict(card_for(DATA, server.url("/missing.safetensors")))
    with pytest.raises(DownloadError) as error:
        download.download_model(card, **{**FAST, "retries": 2})
    message = str(error.value)
    assert "HTTP 404" in message and server.url("/missing.safetensors") in message
    assert "spinemetseg models import" in message
    assert len(server.requests) == 1  # a missing file is not asked for again
    assert files_in(home) == set()


def test_http_500_is_retried_then_reported(home, server):
    card = serve(server, status=500)
    with pytest.raises(DownloadError) as error:
        download.download_model(card, **{**FAST, "retries": 2})
    message = str(error.value)
    assert "HTTP 500" in message and "after 3 attempts" in message and server.url("/model.safetensors") in message
    assert len(server.requests) == 3
    assert files_in(home) == set()


def test_a_connection_cut_half_way_is_resumed_with_a_range_request(home, server):
    half = len(DATA) // 2
    card = serve(server, cut_first_at=half)
    path = download.download_model(card, **{**FAST, "retries": 1})

    assert path.read_bytes() == DATA
    assert [request.range for request in server.requests] == [None, f"bytes={half}-"]


def test_a_failed_download_keeps_its_part_and_the_next_run_resumes(home, server):
    half = len(DATA) // 2
    card = serve(server, cut_first_at=half)
    with pytest.raises(DownloadError) as error:
        download.download_model(card, **FAST)
    assert f"{half} of {len(DATA)} bytes are kept" in str(error.value)
    assert cache.part_path(card).stat().st_size == half
    assert not cache.model_dir(card).exists()

    path = download.download_model(card, **FAST)
    assert path.read_bytes() == DATA
    assert server.requests[-1].range == f"bytes={half}-"
    assert not cache.part_path(card).exists()


def test_a_server_that_ignores_range_makes_the_download_start_over(home, server):
    card = serve(server, ranges=False)
    cache.part_path(card).parent.mkdir(parents=True)
    cache.part_path(card).write_bytes(b"\xff" * 1000)  # bytes from an earlier attempt

    path = download.download_model(card, **FAST)
    assert server.requests[0].range == "bytes=1000-"
    assert path.read_bytes() == DATA


def test_a_file_of_the_wrong_size_is_refused(home, server):
    server.routes["/model.safetensors"] = Route(data=DATA)
    card = catalog.card_from_dict(card_for(DATA + b"more", server.url("/model.safetensors")))
    with pytest.raises(DownloadError) as error:
        download.download_model(card, **FAST)
    assert f"is {len(DATA)} bytes, but the model card says {len(DATA) + 4}" in str(error.value)
    assert files_in(home) == set()


def test_a_server_announcing_a_wrong_size_is_refused(home, server):
    card = serve(server, announced_size=len(DATA) - 1)
    with pytest.raises(DownloadError, match="bytes, but the model card says"):
        download.download_model(card, **FAST)
    assert files_in(home) == set()


def test_a_file_with_the_wrong_sha256_is_refused_and_not_kept(home, server):
    tampered = DATA[:-1] + b"\x00"
    server.routes["/model.safetensors"] = Route(data=tampered)
    card = catalog.card_from_dict(card_for(DATA, server.url("/model.safetensors")))
    with pytest.raises(DownloadError) as error:
        download.download_model(card, **FAST)
    message = str(error.value)
    assert hashlib.sha256(tampered).hexdigest() in message and card.file.sha256 in message
    assert "cache is unchanged" in message
    assert files_in(home) == set()


def test_a_silent_server_hits_the_timeout(home, server):
    # The server answers in full after 3 s: a client that waited for it would succeed, so the error is the timeout.
    card = serve(server, delay_s=3.0)
    with pytest.raises(DownloadError) as error:
        download.download_model(card, timeout_s=0.2, retries=1, backoff_s=0.0)
    assert "no answer within 0.2 s" in str(error.value) and "after 2 attempts" in str(error.value)
    assert files_in(home) == set()


def test_a_server_that_is_not_running_is_reported(home):
    with socket.socket() as probe:  # a port nobody listens on once this socket is closed
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/model.safetensors"
    card = catalog.card_from_dict(card_for(DATA, url))
    with pytest.raises(DownloadError) as error:
        download.download_model(card, **{**FAST, "retries": 1})
    assert "cannot connect" in str(error.value) and url in str(error.value) and "after 2 attempts" in str(error.value)
    assert files_in(home) == set()


def test_a_redirect_to_plain_http_elsewhere_is_not_followed(home, server):
    card = serve(server, redirect_to="http://example.org/model.safetensors")
    with pytest.raises(DownloadError, match="only downloaded over https"):
        download.download_model(card, **FAST)
    assert files_in(home) == set()


@pytest.mark.parametrize("url", ["http://example.org/m.safetensors", "ftp://example.org/m", "file:///etc/passwd"])
def test_addresses_other_than_https_or_loopback_http_are_refused(url):
    with pytest.raises(DownloadError, match="https://"):
        download.check_url(url)


def test_a_catalog_card_with_plain_http_elsewhere_is_invalid():
    with pytest.raises(ModelError, match="field 'file.url' must be https://"):
        catalog.card_from_dict(card_for(DATA, "http://example.org/model.safetensors"))


CONCURRENT_DOWNLOAD = textwrap.dedent("""
    import json, sys
    from SpineMetSegLib.models import catalog, download
    card = catalog.card_from_dict(json.loads(sys.argv[1]))
    print(download.download_model(card, timeout_s=10, retries=0))
""")


@pytest.mark.slow
def test_two_processes_downloading_one_model_end_with_one_correct_file(home, server):
    # About 0.8 s of transfer, so the second process arrives while the first one still downloads.
    card = serve(server, chunk_delay_s=0.02)
    command = [sys.executable, "-c", CONCURRENT_DOWNLOAD, json.dumps(card.to_dict())]
    environment = {**os.environ, cache.HOME_ENV: str(home)}
    processes = [subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
    results = [process.communicate(timeout=60) for process in processes]

    assert [process.returncode for process in processes] == [0, 0], results
    paths = {stdout.strip() for stdout, _ in results}
    assert paths == {str(cache.model_path(card))}
    assert Path(paths.pop()).read_bytes() == DATA
    assert server.routes["/model.safetensors"].hits == 1  # the second process used the first one's file
    assert files_in(home) == {"models/test-model/1.0.0/test-model-1.0.0.safetensors"}


def zip_bytes(members: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, content in members.items():
            bundle.writestr(zipfile.ZipInfo(name), content)
    return buffer.getvalue()


def test_a_zip_archive_is_extracted_into_the_cache(home, server):
    archive = zip_bytes({"weights/model.safetensors": DATA, "README.txt": b"card"})
    server.routes["/model.zip"] = Route(data=archive)
    card = catalog.card_from_dict(card_for(archive, server.url("/model.zip"), file_format="zip",
                                           weights="weights/model.safetensors"))
    path = download.download_model(card, **FAST)
    assert path == cache.model_dir(card) / "weights" / "model.safetensors"
    assert path.read_bytes() == DATA
    assert (cache.model_dir(card) / "README.txt").read_bytes() == b"card"
    assert not cache.part_path(card).exists()


def test_a_zip_with_a_parent_directory_member_is_refused(home, server, tmp_path):
    archive = zip_bytes({"model.safetensors": DATA, "../escaped.txt": b"outside"})
    server.routes["/model.zip"] = Route(data=archive)
    card = catalog.card_from_dict(card_for(archive, server.url("/model.zip"), file_format="zip",
                                           weights="model.safetensors"))
    with pytest.raises(DownloadError) as error:
        download.download_model(card, **FAST)
    assert "'../escaped.txt'" in str(error.value)
    assert not any(path.name == "escaped.txt" for path in tmp_path.rglob("*"))
    assert files_in(home) == set()


def symlink_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        link = zipfile.ZipInfo("link")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        bundle.writestr(link, "/etc/passwd")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("archive", "limits", "complaint"),
    [
        (zip_bytes({"/etc/evil": b"x"}), {}, "absolute path"),
        (zip_bytes({"C:/evil": b"x"}), {}, "absolute path"),
        (zip_bytes({"a\\..\\..\\evil": b"x"}), {}, "outside the archive"),
        (symlink_zip(), {}, "symbolic link"),
        (zip_bytes({"big": b"x" * 2000}), {"max_member_bytes": 1000}, "more than the limit"),
        (zip_bytes({"a": b"x" * 600, "b": b"x" * 600}), {"max_total_bytes": 1000}, "more than 1000 bytes"),
        (zip_bytes({str(i): b"" for i in range(11)}), {"max_members": 10}, "at most 10"),
    ],
    ids=["absolute", "drive", "backslash-parent", "symlink", "member-size", "total-size", "member-count"],
)
def test_unsafe_archives_are_refused_before_anything_is_written(tmp_path, archive, limits, complaint):
    source = tmp_path / "model.zip"
    source.write_bytes(archive)
    with pytest.raises(ModelError, match=complaint):
        extract_zip(source, tmp_path / "out", **limits)
    assert not (tmp_path / "out").exists()


def test_the_embedded_default_resolves_without_any_network(home, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the embedded model must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    card = catalog.default_card()
    path = download.download_model(card)
    assert path == catalog.MODELS_RESOURCE_DIR / "spinemetseg-default-2.0.0.safetensors"
    assert catalog.model_file(card, download=True) == path
    assert files_in(home) == set()


def test_a_model_not_downloaded_says_how_to_get_it(home, server):
    card = serve(server)
    with pytest.raises(ModelError) as error:
        catalog.model_file(card)
    assert "spinemetseg models download test-model --version 1.0.0" in str(error.value)
    assert server.requests == []


CANCELLABLE_DOWNLOAD = """
import sys
from SpineMetSegLib.cli import main
sys.exit(main(["models", "download", "test-model"]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("received", ["nothing", "some bytes"])
def test_sigterm_during_a_download_leaves_no_empty_part_and_reports_a_kept_one(home, server, tmp_path, received):
    import signal

    # Headers at once, then slow chunks: the client waits inside a read for a whole download chunk.
    card = serve(server, chunk_delay_s=0.3)
    listing = tmp_path / "catalog.json"
    listing.write_text(json.dumps({"schema_version": 1, "models": [card.to_dict()]}))
    environment = {**os.environ, cache.HOME_ENV: str(home), catalog.CATALOG_ENV: str(listing)}
    process = subprocess.Popen([sys.executable, "-c", CANCELLABLE_DOWNLOAD], env=environment,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    part = cache.part_path(card)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not part.exists():
        time.sleep(0.02)
    assert part.exists(), "the download never started"
    if received == "some bytes":
        while time.monotonic() < deadline and part.stat().st_size == 0:
            time.sleep(0.02)
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    _, error = process.communicate(timeout=30)
    assert process.returncode == 130
    if received == "nothing":  # the first block (download.CHUNK_BYTES) takes seconds at this pace
        assert not part.exists()
        assert "cancelled: nothing was kept" in error
    else:
        kept = part.stat().st_size
        assert kept > 0
        assert f"cancelled: {kept} of {len(DATA)} bytes are kept in {part}" in error
    assert not any(path.stat().st_size == 0 for path in home.rglob("*.part"))
