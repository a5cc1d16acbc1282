"""The module's Resources folder as the library finds it (source tree and editable install: beside the library;
the wheel's copy inside it is checked by test_packaging.py's wheel install)."""

from __future__ import annotations

import json
from pathlib import Path

import SpineMetSegLib
from SpineMetSegLib.resources import resources_dir

LIBRARY = Path(SpineMetSegLib.__file__).resolve().parent


def test_the_folder_beside_the_library_is_found_with_what_the_module_needs():
    folder = resources_dir()
    assert folder == LIBRARY.parent / "Resources"
    for name in ("Models/catalog.json", "Models/catalog.schema.json", "UI/SpineMetSeg.ui", "requirements.txt",
                 "Ablation/devices.json", "Icons/SpineMetSeg.png"):
        assert (folder / name).is_file(), name


def test_every_embedded_model_the_catalog_names_is_in_the_folder():
    models = json.loads((resources_dir() / "Models" / "catalog.json").read_text(encoding="utf-8"))["models"]
    embedded = [card["file"] for card in models if card["file"]["url"].startswith("embedded:")]
    assert embedded  # the default model ships inside the extension
    for entry in embedded:
        path = resources_dir() / "Models" / entry["url"][len("embedded:"):]
        assert path.is_file() and path.stat().st_size == entry["size"], path
