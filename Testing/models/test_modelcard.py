"""The typed model card: built once from JSON, read through typed fields, written back unchanged, changed only by
copies; labels, output channels, versions and the network's stride as a reader of the card would work them out."""

from __future__ import annotations

import dataclasses
import json

import pytest
from inference_fixtures import make_card, make_card_json

from SpineMetSegLib.errors import ModelError
from SpineMetSegLib.models import catalog
from SpineMetSegLib.models.modelcard import ModelCard, version_key


def test_the_typed_fields_hold_what_the_json_says():
    raw = make_card_json(dimensions=3, inputs=("t2", "stir"), spacing_mm=(1.5, None, 0.8), channels=(8, 16, 32),
                         strides=(2, 3), min_lesion_volume_ml=0.05, lesions_must_touch_bone=True)
    card = ModelCard.from_dict(raw)
    assert card.inputs == ("t2", "stir") and card.min_inputs == 1 and card.orientation == "LPS"
    assert card.spacing_mm == (1.5, None, 0.8)  # None keeps the native spacing on that axis
    assert card.network.dimensions == 3 and card.network.slice_axis is None
    assert card.network.channels == (8, 16, 32) and card.network.downsampling_factor == 6  # 2 x 3
    assert card.patch_size == (16, 16, 16)
    assert card.postprocessing.min_lesion_volume_ml == 0.05 and card.postprocessing.lesions_must_touch_bone
    assert card.normalization.upper_percentile == 99.5
    assert card.file.sha256 == "0" * 64 and card.text("license") == "Apache-2.0" and card.text("nothing") == ""


def test_to_dict_gives_back_the_json_it_was_built_from():
    raw = make_card_json()
    raw["supersedes"] = "0.0.0"
    raw["metrics"] = {"dice": 0.61, "note": "on phantom cases"}
    card = ModelCard.from_dict(raw)
    assert json.loads(json.dumps(card.to_dict())) == raw
    assert card.metrics.get("dice") == 0.61 and card.metrics.note == "on phantom cases"
    assert card.supersedes == "0.0.0"


def test_a_nested_value_of_the_card_cannot_be_changed_through_the_card():
    card = ModelCard.from_dict({**make_card_json(), "metrics": {"per_label": {"1": {"dice": 0.5}}}})
    with pytest.raises(TypeError):
        card.metrics.data["per_label"]["1"]["dice"] = 1.0  # read-only all the way down
    written = card.to_dict()
    written["metrics"]["per_label"]["1"]["dice"] = 1.0  # the written copy is the caller's to change
    assert card.metrics.get("per_label")["1"]["dice"] == 0.5


def test_labels_are_found_by_name_and_a_missing_one_names_those_there_are():
    card = make_card()
    assert card.label_value("metastasis") == 1 and card.label("spinal canal").value == 3
    assert card.out_channels == 4  # background plus the largest label value 3
    assert card.predicts_bone
    with pytest.raises(ModelError, match="no label 'cord'; its labels are: metastasis, vertebral body, spinal canal"):
        card.label("cord")


def test_a_card_without_the_vertebral_body_does_not_predict_bone():
    raw = make_card_json()
    raw["labels"] = [label for label in raw["labels"] if label["name"] != "vertebral body"]
    card = ModelCard.from_dict(raw)
    assert not card.predicts_bone and card.out_channels == 4  # the canal keeps value 3


def test_versions_sort_as_numbers_not_as_text():
    assert version_key("1.10.0") > version_key("1.9.2") and "1.10.0" < "1.9.2"
    versions = ["1.10.0", "1.2.0", "2.0.0", "1.9.2"]
    assert sorted(versions, key=version_key) == ["1.2.0", "1.9.2", "1.10.0", "2.0.0"]


def test_equal_cards_are_equal_and_a_changed_copy_is_not():
    card = make_card()
    assert card == make_card() and hash(card) == hash(make_card())
    assert card.replace(title="Another title") != card
    assert str(card) == "test-model 0.0.1"
    with pytest.raises(dataclasses.FrozenInstanceError):
        card.title = "changed in place"


def test_every_shipped_card_reads_into_typed_fields_and_writes_back_the_same_json():
    written = json.loads(catalog.EMBEDDED_CATALOG.read_text(encoding="utf-8"))["models"]
    cards = catalog.load_catalog(catalog.EMBEDDED_CATALOG, include_imported=False).cards
    assert [card.to_dict() for card in cards] == written
    default = catalog.load_catalog(catalog.EMBEDDED_CATALOG, include_imported=False).get()
    assert default.network.dimensions == 2 and default.network.slice_axis == 0
    assert default.network.downsampling_factor == 8  # strides 2, 2, 2
    assert default.normalization.lower_percentile == 0.5 and default.label("spinal canal").value == 3


def test_an_override_is_a_changed_copy_and_the_catalog_card_keeps_its_value():
    card = catalog.default_card()
    before = card.postprocessing.min_lesion_mean_probability
    stricter = card.with_postprocessing(min_lesion_mean_probability=0.99)
    assert stricter.postprocessing.min_lesion_mean_probability == 0.99
    assert stricter.to_dict()["postprocessing"]["min_lesion_mean_probability"] == 0.99
    assert catalog.default_card().postprocessing.min_lesion_mean_probability == before == 0.9
    with pytest.raises(dataclasses.FrozenInstanceError):
        card.postprocessing.min_lesion_volume_ml = 0.0  # a card cannot be changed in place
