"""``spinemetseg models``: list, download, import (by hand and user-trained), path, remove; exit codes and output."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import pickle
import socket
from pathlib import Path

import pytest
import torch
from http_server import LocalServer, Route, card_for
from progress_checks import check_bar_shows_the_protocol, check_protocol, protocol_events

from SpineMetSegLib.cli import main
from SpineMetSegLib.errors import EXIT_USER_ERROR
from SpineMetSegLib.models import cache, catalog, loader
from SpineMetSegLib.models.modelcard import NetworkSpec
from SpineMetSegLib.models.network import build_network
from SpineMetSegLib.models.weights import save_state_dict

torch.set_num_threads(1)

REMOTE_DATA = bytes(range(256)) * 400  # stands for a model file a hospital copies by hand
REMOTE_URL = "https://models.example.org/remote-model-1.0.0.safetensors"  # never contacted
TINY_NETWORK = {"dimensions": 2, "architecture": "UNet", "channels": [4, 8], "strides": [2], "num_res_units": 0,
                "norm": "instance", "slice_axis": 0}


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "home"
    monkeypatch.setenv(cache.HOME_ENV, str(folder))
    default = catalog.load_catalog(catalog.EMBEDDED_CATALOG, include_imported=False).get().to_dict()
    path = tmp_path / "catalog.json"
    older = card_for(REMOTE_DATA[::-1], REMOTE_URL.replace("1.0.0", "0.9.0"), name="remote-model", version="0.9.0")
    newer = {**card_for(REMOTE_DATA, REMOTE_URL, name="remote-model"), "supersedes": "0.9.0"}
    path.write_text(json.dumps({"schema_version": 1, "models": [default, older, newer]}))
    monkeypatch.setenv(catalog.CATALOG_ENV, str(path))
    return folder


@pytest.fixture
def offline(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("this command must not use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)


def run(capsys, *argv):
    code = main(["models", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def rows(listing: str) -> dict:
    """``models list`` output -> {(name, version): (newest, status)}."""
    table = {}
    for line in listing.splitlines()[1:]:
        if not line.strip():
            break
        newest = line.startswith("*")
        name, version, _inputs, _size, _unit, *status = line.lstrip("* ").split()
        table[(name, version)] = (newest, " ".join(status))
    return table


@pytest.fixture
def user_model(tmp_path):
    """A model the user trained: weights of a tiny network and its card."""
    torch.manual_seed(1)
    network = build_network(NetworkSpec.from_dict(TINY_NETWORK), 1, 2)
    weights = save_state_dict(network.state_dict(), tmp_path / "mine.safetensors")
    data = weights.read_bytes()
    card = card_for(data, "local:mine.safetensors", name="hospital-t1", version="0.1.0")
    default_labels = copy.deepcopy(card["labels"][:1])
    card.update(inputs=["t1"], network=TINY_NETWORK, patch_size=[32, 32], labels=default_labels)
    card_path = tmp_path / "mine.json"
    card_path.write_text(json.dumps(card))
    return weights, card_path


def test_list_shows_every_model_its_sequences_size_and_status(home, capsys, offline):
    code, out, _ = run(capsys, "list")
    assert code == 0
    assert rows(out) == {("spinemetseg-default", "2.0.0"): (True, "embedded"),
                         ("remote-model", "1.0.0"): (True, "not downloaded"),
                         ("remote-model", "0.9.0"): (False, "not downloaded")}
    assert "t1,t2,stir" in out and "0.1 MB" in out


def test_list_as_json_for_programs(home, capsys):
    code, out, _ = run(capsys, "list", "--json")
    listed = {row["name"]: row for row in json.loads(out)}
    assert code == 0 and listed["remote-model"]["size"] == len(REMOTE_DATA)
    assert listed["spinemetseg-default"]["default"] and listed["remote-model"]["status"] == "not downloaded"


def test_path_of_the_embedded_default(home, capsys, offline):
    code, out, _ = run(capsys, "path")
    assert code == 0
    assert Path(out.strip()) == catalog.MODELS_RESOURCE_DIR / "spinemetseg-default-2.0.0.safetensors"


def test_path_of_a_model_not_downloaded_fails_and_says_what_to_do(home, capsys, offline):
    code, out, err = run(capsys, "path", "remote-model")
    assert code == EXIT_USER_ERROR and out == ""
    assert err.startswith("error: Model remote-model 1.0.0 is not downloaded")
    assert "spinemetseg models download remote-model" in err


def test_importing_a_file_copied_by_hand_works_offline(home, capsys, offline, tmp_path):
    copied = tmp_path / "copied.safetensors"
    copied.write_bytes(REMOTE_DATA)
    code, out, err = run(capsys, "import", str(copied))
    assert code == 0 and "imported remote-model 1.0.0" in err
    installed = Path(out.strip())
    assert installed.read_bytes() == REMOTE_DATA and copied.exists()

    assert rows(run(capsys, "list")[1])[("remote-model", "1.0.0")] == (True, "downloaded")
    assert run(capsys, "path", "remote-model")[1].strip() == str(installed)


def test_importing_a_file_no_card_describes_is_refused(home, capsys, tmp_path):
    stranger = tmp_path / "stranger.safetensors"
    stranger.write_bytes(REMOTE_DATA[:-1])
    code, _, err = run(capsys, "import", str(stranger))
    assert code == EXIT_USER_ERROR and "is not the file of any model in the catalog" in err
    code, _, err = run(capsys, "import", str(stranger), "--model", "remote-model")
    assert code == EXIT_USER_ERROR
    assert f"its sha256 is {hashlib.sha256(REMOTE_DATA[:-1]).hexdigest()}" in err
    assert not (home / "models").exists()


def test_importing_a_user_trained_model_with_its_card(home, capsys, user_model):
    weights, card_path = user_model
    code, out, err = run(capsys, "import", str(weights), "--card", str(card_path))
    assert code == 0, err
    assert Path(out.strip()).read_bytes() == weights.read_bytes()
    assert rows(run(capsys, "list")[1])[("hospital-t1", "0.1.0")] == (True, "imported")
    assert run(capsys, "path", "hospital-t1")[1].strip() == out.strip()

    card = catalog.load_catalog().get("hospital-t1")
    assert card.origin == "imported" and card.inputs == ("t1",)
    network = loader.load_network(card)
    assert network(torch.zeros(1, 1, 32, 32)).shape == (1, 2, 32, 32)

    code, _, err = run(capsys, "import", str(weights), "--card", str(card_path))
    assert code == EXIT_USER_ERROR and "was imported before" in err


def test_a_user_model_whose_tensors_do_not_fit_its_card_is_refused(home, capsys, tmp_path, user_model):
    weights, card_path = user_model
    card = json.loads(card_path.read_text(encoding="utf-8"))
    card["network"] = {**TINY_NETWORK, "channels": [4, 16]}
    card_path.write_text(json.dumps(card))
    code, _, err = run(capsys, "import", str(weights), "--card", str(card_path))
    assert code == EXIT_USER_ERROR and "does not fit the network" in err and "wrong shape" in err
    assert not home.exists() or not any(home.rglob("*.*"))


class WritesMarker:
    """Unpickling this object creates the marker file: what a malicious model file would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_user_model_that_is_a_pickle_is_refused(home, capsys, tmp_path, user_model):
    _, card_path = user_model
    pickled = tmp_path / "mine.pt"
    marker = tmp_path / "marker"
    pickled.write_bytes(pickle.dumps({"weight": WritesMarker(marker)}))
    card = json.loads(card_path.read_text(encoding="utf-8"))
    data = pickled.read_bytes()
    card["file"].update(format="pt", size=len(data), sha256=hashlib.sha256(data).hexdigest())
    card_path.write_text(json.dumps(card))
    code, _, err = run(capsys, "import", str(pickled), "--card", str(card_path))
    assert code == EXIT_USER_ERROR and "Refusing to load" in err
    assert not marker.exists() and not (home / "cards").exists()


def test_a_card_that_does_not_match_the_file_is_refused(home, capsys, user_model):
    weights, card_path = user_model
    card = json.loads(card_path.read_text(encoding="utf-8"))
    card["file"]["sha256"] = "0" * 64
    card_path.write_text(json.dumps(card))
    code, _, err = run(capsys, "import", str(weights), "--card", str(card_path))
    assert code == EXIT_USER_ERROR and "does not match its card" in err


def test_remove_deletes_an_imported_model(home, capsys, user_model):
    weights, card_path = user_model
    assert run(capsys, "import", str(weights), "--card", str(card_path))[0] == 0
    code, out, _ = run(capsys, "remove", "hospital-t1")
    assert code == 0 and out.strip() == "removed hospital-t1 0.1.0"
    assert ("hospital-t1", "0.1.0") not in rows(run(capsys, "list")[1])
    assert not (home / "models" / "hospital-t1").exists() and not list((home / "cards").glob("*.json"))
    assert weights.exists()  # the user's own file stays


def test_remove_refuses_the_embedded_model(home, capsys):
    code, _, err = run(capsys, "remove", "spinemetseg-default")
    assert code == EXIT_USER_ERROR and "embedded in the extension and cannot be removed" in err
    assert catalog.model_file(catalog.default_card()).exists()


def test_remove_of_a_model_not_in_the_cache_says_so(home, capsys):
    code, _, err = run(capsys, "remove", "remote-model", "--version", "1.0.0")
    assert code == EXIT_USER_ERROR and "Nothing to remove" in err


def download_served(capsys, tmp_path, monkeypatch, progress: str):
    """``models download --progress <progress>`` of a model served on 127.0.0.1, into an empty cache."""
    data = bytes(range(256)) * 3000  # 768,000 bytes: three reads of download.CHUNK_BYTES
    with LocalServer() as server:
        server.routes["/m.safetensors"] = Route(data=data)
        path = tmp_path / "served.json"
        path.write_text(json.dumps({"schema_version": 1, "models": [
            card_for(data, server.url("/m.safetensors"), name="served-model")]}))
        monkeypatch.setenv(catalog.CATALOG_ENV, str(path))
        monkeypatch.setenv(cache.HOME_ENV, str(tmp_path / f"home-{progress}"))
        code, out, err = run(capsys, "download", "served-model", "--timeout", "5", "--retries", "0",
                             "--progress", progress)
    assert code == 0, err
    return data, out, err


def test_download_with_progress_lines_prints_protocol_lines_then_the_path(capsys, tmp_path, monkeypatch):
    data, out, err = download_served(capsys, tmp_path, monkeypatch, "lines")

    events = check_protocol(out)
    assert [(stage, percent) for stage, percent, _ in events] == [
        ("download", 0), ("download", 34), ("download", 68), ("download", 100), ("done", 100)]
    assert events[3][2] == "served-model 1.0.0 0.7/0.7 MB"
    assert Path(out.splitlines()[-1]).read_bytes() == data  # the path is the last line
    assert err == ""  # no bar besides the lines


def test_download_bar_draws_the_same_events_as_the_protocol_and_stdout_is_only_the_path(capsys, tmp_path,
                                                                                      monkeypatch):
    _, lines_out, _ = download_served(capsys, tmp_path, monkeypatch, "lines")
    data, out, err = download_served(capsys, tmp_path, monkeypatch, "bar")

    bar = check_bar_shows_the_protocol(err, protocol_events(lines_out))
    assert bar == protocol_events(lines_out)  # every event crosses a 5 % step, so the log bar shows each one
    assert Path(out.strip()).read_bytes() == data
    assert "served-model 1.0.0" in err and "100%" in err


def test_download_with_progress_none_prints_only_the_path(capsys, tmp_path, monkeypatch):
    data, out, err = download_served(capsys, tmp_path, monkeypatch, "none")

    assert Path(out.strip()).read_bytes() == data and err == ""


def test_download_failure_exits_2_with_the_http_status(home, capsys, tmp_path, monkeypatch):
    with LocalServer() as server:
        path = tmp_path / "served.json"
        path.write_text(json.dumps({"schema_version": 1, "models": [
            card_for(REMOTE_DATA, server.url("/gone.safetensors"), name="served-model")]}))
        monkeypatch.setenv(catalog.CATALOG_ENV, str(path))
        code, out, err = run(capsys, "download", "served-model", "--retries", "0")
    assert code == EXIT_USER_ERROR and out == ""
    assert "HTTP 404" in err


def test_an_imported_model_the_catalog_overrides_is_one_warning_line_on_stderr(home, capsys, user_model):
    weights, card_path = user_model
    assert run(capsys, "import", str(weights), "--card", str(card_path))[0] == 0
    listing = Path(os.environ[catalog.CATALOG_ENV])  # the home fixture's catalog: add the same name and version
    document = json.loads(listing.read_text())
    document["models"].append(card_for(REMOTE_DATA, REMOTE_URL.replace("remote-model", "hospital-t1"),
                                       name="hospital-t1", version="0.1.0"))
    listing.write_text(json.dumps(document))

    code, out, err = run(capsys, "list")

    assert code == 0 and rows(out)[("hospital-t1", "0.1.0")] == (True, "not downloaded")
    expected = ("warning: the imported model hospital-t1 0.1.0 is ignored: the catalog has a model of the same name "
                "and version. Remove it with 'spinemetseg models remove hospital-t1 --version 0.1.0'.")
    assert err.splitlines() == [expected]  # through logging, once; not also printed by the command
