"""The model catalog: the shipped catalog and default card, validation messages, versions."""

from __future__ import annotations

import copy
import hashlib
import json

import pytest

from SpineMetSegLib.errors import ModelError
from SpineMetSegLib.labels import ModelLabel
from SpineMetSegLib.models import catalog


@pytest.fixture
def default_raw() -> dict:
    """The first shipped default card (1.0.0, which supersedes nothing): a valid card to break in tests."""
    shipped = catalog.load_catalog(catalog.EMBEDDED_CATALOG, include_imported=False)
    return copy.deepcopy(shipped.get("spinemetseg-default", "1.0.0").to_dict())


@pytest.fixture(autouse=True)
def empty_home(tmp_path, monkeypatch):
    monkeypatch.setenv("SPINEMETSEG_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(catalog.CATALOG_ENV, raising=False)


def write_catalog(folder, cards, **extra):
    path = folder / "catalog.json"
    path.write_text(json.dumps({"schema_version": 1, "models": cards, **extra}))
    return path


def test_the_shipped_default_card_is_the_one_the_team_agreed():
    card = catalog.default_card()
    assert (card.name, card.version) == ("spinemetseg-default", "2.0.0")
    assert card.inputs == ("t1", "t2", "stir") and card.min_inputs == 1
    assert card.orientation == "LPS" and card.spacing_mm == (None, 1.0, 1.0)
    assert card.network.dimensions == 2 and card.network.slice_axis == 0
    assert card.patch_size == (256, 256)
    assert {label.name: label.value for label in card.labels} == {
        "metastasis": ModelLabel.METASTASIS, "vertebral body": ModelLabel.VERTEBRAL_BODY,
        "spinal canal": ModelLabel.SPINAL_CANAL}
    assert card.out_channels == 4
    assert card.label_value("metastasis") == 1
    assert card.file.url == "embedded:spinemetseg-default-2.0.0.safetensors" and card.is_embedded
    assert 0.0 < card.postprocessing.min_lesion_mean_probability < 1.0
    # The version it supersedes stays in the catalog, embedded and usable by name and version.
    assert card.supersedes == "1.2.0"
    for version in ("1.2.0", "1.0.0"):  # 1.2.0, trained on the phantom only, stays for comparison
        older = catalog.load_catalog().get("spinemetseg-default", version)
        assert older.is_embedded and catalog.model_file(older).is_file()


def test_the_default_labels_carry_snomed_ct_codes():
    codes = {label.name: label.terminology.type.code for label in catalog.default_card().labels}
    # 14799000 neoplasm, metastatic; 3572006 body of vertebra; 61853006 spinal canal
    assert codes == {"metastasis": "14799000", "vertebral body": "3572006", "spinal canal": "61853006"}
    assert all(label.terminology.type.scheme == "SCT" for label in catalog.default_card().labels)


def test_the_embedded_file_matches_its_card():
    """Fails when someone replaces the weights file without updating the catalog's size and sha256."""
    cards = catalog.load_catalog().versions("spinemetseg-default")
    assert cards, "the catalog lists no spinemetseg-default"
    for card in cards:
        data = catalog.model_file(card).read_bytes()
        assert len(data) == card.file.size, card.version
        assert hashlib.sha256(data).hexdigest() == card.file.sha256, card.version


def test_a_bad_field_is_named_with_its_entry(tmp_path, default_raw):
    other = {**copy.deepcopy(default_raw), "name": "other-model"}
    broken = copy.deepcopy(default_raw)
    broken["file"]["sha256"] = "abc123"
    with pytest.raises(ModelError) as error:
        catalog.load_catalog(write_catalog(tmp_path, [other, broken]))
    assert str(error.value).startswith(
        "catalog entry 2 (spinemetseg-default 1.0.0): field 'file.sha256' must be 64 hex characters")
    assert "'abc123'" in str(error.value) and str(tmp_path / "catalog.json") in str(error.value)


def set_path(card: dict, path: str, value) -> None:
    *parents, last = path.split(".")
    for key in parents:
        card = card[int(key)] if key.isdigit() else card[key]
    if value is KeyError:
        del card[last]
    else:
        card[int(last) if last.isdigit() else last] = value


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("inputs", KeyError, "field 'inputs' is missing"),
        ("labels.1.value", "two", "field 'labels[1].value' must be an integer, got 'two'"),
        ("network.dimensions", 4, "field 'network.dimensions' must be one of 2, 3, got 4"),
        ("version", "1.0", "field 'version' must be a version MAJOR.MINOR.PATCH"),
        ("min_inputs", 0, "field 'min_inputs' must be at least 1, got 0"),
        ("min_inputs", 4, "field 'min_inputs' must be at most the number of inputs (3)"),
        ("spacing_mm", [1.0, 1.0], "field 'spacing_mm' must have at least 3 items"),
        ("orientation", "LPL", "field 'orientation' must name each axis once"),
        ("patch_size", [64, 64, 64], "field 'patch_size' must have 2 items (network.dimensions)"),
        ("labels.1.value", 1, "field 'labels[1].value' repeats the value 1"),
        ("labels.0.name", "lesion", "field 'labels' must include 'metastasis' with value 1"),
        ("labels.0.color", [1.5, 0, 0], "field 'labels[0].color[0]' must be at most 1, got 1.5"),
        ("network.strides", [2, 2], "field 'network.strides' must have one item fewer than channels"),
        ("file.url", "ftp://example.org/x", "field 'file.url' must be 'embedded:<file>'"),
        ("file.size", 0, "field 'file.size' must be at least 1"),
        ("supersedes", "2.0.0", "field 'supersedes' must be an older version than 1.0.0"),
        ("name", "Bad Name", "field 'name' must be lower-case letters"),
    ],
)
def test_each_broken_field_is_named(default_raw, field, value, message):
    set_path(default_raw, field, value)
    with pytest.raises(ModelError) as error:
        catalog.card_from_dict(default_raw, where="model card")
    assert message in str(error.value)


def test_a_catalog_that_is_not_json_names_the_file(tmp_path):
    path = tmp_path / "catalog.json"
    path.write_text('{"schema_version": 1, "models": [')
    with pytest.raises(ModelError, match=f"{path} is not valid JSON"):
        catalog.load_catalog(path)


def test_an_unknown_schema_version_is_refused(tmp_path, default_raw):
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps({"schema_version": 2, "models": [default_raw]}))
    with pytest.raises(ModelError, match="field 'schema_version' must be one of 1, got 2"):
        catalog.load_catalog(path)


def test_a_repeated_name_and_version_is_refused(tmp_path, default_raw):
    with pytest.raises(ModelError, match="entry 2 repeats spinemetseg-default 1.0.0"):
        catalog.load_catalog(write_catalog(tmp_path, [default_raw, default_raw]))


def versioned(raw: dict, version: str) -> dict:
    card = copy.deepcopy(raw)
    card.update(version=version, file={**raw["file"], "url": f"https://example.org/{version}.safetensors"})
    return card


def test_the_newest_version_supersedes_and_older_ones_stay_usable(tmp_path, default_raw):
    cards = [versioned(default_raw, version) for version in ("1.2.0", "1.10.0", "1.9.3")]
    cards[1]["supersedes"] = "1.9.3"
    models = catalog.load_catalog(write_catalog(tmp_path, [default_raw] + cards))

    assert models.get().version == "1.10.0"  # numeric order, not text order
    assert models.get("spinemetseg-default").supersedes == "1.9.3"
    assert models.get("spinemetseg-default", "1.0.0").is_embedded
    assert [card.version for card in models.versions("spinemetseg-default")] == ["1.10.0", "1.9.3", "1.2.0", "1.0.0"]
    assert models.is_newest(models.get()) and not models.is_newest(models.get(version="1.2.0"))


def test_asking_for_an_unknown_model_or_version_lists_what_exists(tmp_path, default_raw):
    models = catalog.load_catalog(write_catalog(tmp_path, [default_raw, versioned(default_raw, "1.1.0")]))
    with pytest.raises(ModelError, match="Known models: spinemetseg-default"):
        models.get("no-such-model")
    with pytest.raises(ModelError, match="its versions are: 1.1.0, 1.0.0"):
        models.get("spinemetseg-default", "3.0.0")


def test_the_catalog_file_comes_from_the_environment(tmp_path, default_raw, monkeypatch):
    path = write_catalog(tmp_path, [{**default_raw, "name": "hospital-model"}], default="hospital-model")
    monkeypatch.setenv(catalog.CATALOG_ENV, str(path))
    assert catalog.default_card().name == "hospital-model"
    assert catalog.load_catalog().source == path


def test_a_card_file_is_read_and_validated(tmp_path, default_raw):
    path = tmp_path / "card.json"
    path.write_text(json.dumps(default_raw))
    assert catalog.card_from_file(path) == catalog.load_catalog().get("spinemetseg-default", "1.0.0")
    del default_raw["labels"]
    path.write_text(json.dumps(default_raw))
    with pytest.raises(ModelError) as error:
        catalog.card_from_file(path)
    assert str(error.value) == f"model card {path} (spinemetseg-default 1.0.0): field 'labels' is missing"


def test_an_unknown_label_name_is_reported():
    with pytest.raises(ModelError, match="has no label 'bone'; its labels are: metastasis, vertebral body"):
        catalog.default_card().label_value("bone")


def test_the_cache_folder_follows_spinemetseg_home(tmp_path):
    assert catalog.cache_dir() == tmp_path / "home"


def test_a_card_with_extra_notes_keeps_them_when_written_back(default_raw):
    raw = default_raw
    raw["hospital_note"] = {"approved_by": "physics", "date": "2026-11-30"}
    card = catalog.card_from_dict(raw)
    assert card.to_dict()["hospital_note"] == {"approved_by": "physics", "date": "2026-11-30"}
