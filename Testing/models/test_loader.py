"""The one place that resolves and loads a model: catalog name and version, or a weights file with its card."""

from __future__ import annotations

import json

import pytest
import torch
from inference_fixtures import make_card_json, seeded_network

from SpineMetSegLib.errors import ModelError
from SpineMetSegLib.models import catalog, loader, weights


@pytest.fixture
def user_model(tmp_path):
    """A small model outside the catalog: a card file and its weights (seeded), and the network they came from."""
    raw = make_card_json()
    card_path = tmp_path / "mine.json"
    card_path.write_text(json.dumps(raw), encoding="utf-8")
    network = seeded_network(catalog.card_from_dict(raw), seed=7)
    weights_path = tmp_path / "mine.safetensors"
    weights.save_state_dict(network.state_dict(), weights_path)
    return card_path, weights_path, network


def test_the_embedded_default_model_loads_and_segments_a_slice():
    card = catalog.default_card()
    network = loader.load_network(card)
    assert not network.training
    with torch.no_grad():
        output = network(torch.zeros(1, len(card.inputs), 64, 64))
    assert tuple(output.shape) == (1, card.out_channels, 64, 64)


def test_weights_with_their_card_load_into_the_network_they_were_saved_from(user_model):
    card_path, weights_path, saved = user_model
    model = loader.load_model(weights=weights_path, card=card_path)
    assert model.card.name == "test-model" and model.weights_path == weights_path and not model.network.training
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model.network(images), saved(images), rtol=0, atol=0)


def test_the_default_model_is_the_newest_version_of_the_catalogs_default():
    model = loader.load_model()
    shipped = catalog.load_catalog(catalog.EMBEDDED_CATALOG, include_imported=False)
    default = max((card for card in shipped.cards if card.name == "spinemetseg-default"),
                  key=lambda card: card.version_key)
    assert model.card == default and model.weights_path == catalog.model_file(default)
    assert loader.resolve_card("spinemetseg-default").version == default.version
    older = [card for card in shipped.cards if card.name == "spinemetseg-default" and card != default]
    assert older and loader.resolve_card("spinemetseg-default", older[0].version) == older[0]


@pytest.mark.parametrize("given", [{"weights": "w.safetensors"}, {"card": "c.json"}])
def test_weights_and_card_go_together(given):
    with pytest.raises(ModelError, match="--weights and --card go together"):
        loader.load_model(**given)


def test_a_catalog_model_and_a_weights_file_are_not_both_given(user_model):
    card_path, weights_path, _ = user_model
    with pytest.raises(ModelError, match="either a catalog model"):
        loader.load_model("spinemetseg-default", weights=weights_path, card=card_path)


def test_weights_of_another_network_are_refused_naming_the_file(user_model, tmp_path):
    card_path, _, _ = user_model
    other = make_card_json(channels=(4, 8))
    stranger = tmp_path / "other.safetensors"
    weights.save_state_dict(seeded_network(catalog.card_from_dict(other)).state_dict(), stranger)
    with pytest.raises(ModelError, match="other.safetensors"):
        loader.load_model(weights=stranger, card=card_path)
