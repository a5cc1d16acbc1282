"""The one place that resolves and loads a model: a catalog name and version, or a weights file with its card.

Usage::

    from SpineMetSegLib.models import loader
    model = loader.load_model()                                     # the default model, newest version
    model = loader.load_model("spinemetseg-default", "1.2.0", device="cuda")
    model = loader.load_model(weights="mine.safetensors", card="mine.json")   # a model outside the catalog
    model.card, model.network, model.weights_path
    card = loader.resolve_card("spinemetseg-default")               # only the card (no weights read)
    net = loader.load_network(card)                                 # the card's network with its file's weights

The command line (``segment``, ``batch``, ``demo``), the Slicer logic (through the command line), training's
``--fine-tune``, the benchmarks and the tests all load models through here, so a model is found, checked and
built the same way everywhere. Weights load strictly and without running code (``weights``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import torch

from ..errors import ModelError
from . import catalog, weights
from .modelcard import ModelCard
from .network import build_network

PathLike = Union[str, Path]


@dataclass(frozen=True)
class LoadedModel:
    """A model card, its network with the weights loaded (eval mode) and the file they came from."""

    card: ModelCard
    network: torch.nn.Module
    weights_path: Path


def resolve_card(name: Optional[str] = None, version: Optional[str] = None, *, card: Optional[PathLike] = None,
                 catalog_path: Optional[PathLike] = None) -> ModelCard:
    """The card of a catalog model (default model when ``name`` is None, newest when ``version`` is None), or the
    card file ``card`` (a model outside the catalog)."""
    if card is not None:
        return catalog.card_from_file(card)
    return catalog.load_catalog(catalog_path).get(name, version)


def load_network(card: ModelCard, weights_path: Optional[PathLike] = None, *, device: Any = "cpu"
                 ) -> torch.nn.Module:
    """The network ``card`` describes with the weights at ``weights_path`` (default: the card's own file, which must
    be present: embedded, downloaded or imported), strictly loaded, on ``device``, in eval mode."""
    path = Path(weights_path) if weights_path is not None else catalog.model_file(card)
    network = build_network(card.network, len(card.inputs), card.out_channels)
    weights.apply_state_dict(network, weights.load_state_dict(path), source=f"the weights {path} of {card}")
    return network.to(device).eval()


def load_model(name: Optional[str] = None, version: Optional[str] = None, *, weights: Optional[PathLike] = None,
               card: Optional[PathLike] = None, device: Any = "cpu") -> LoadedModel:
    """A catalog model by name and version, or ``weights`` with its ``card`` (they go together)."""
    if (weights is None) != (card is None):
        raise ModelError("--weights and --card go together: the card says how to build the network.")
    if weights is not None and (name is not None or version is not None):
        raise ModelError("Give either a catalog model (--model, --model-version) or --weights with --card, not both.")
    resolved = resolve_card(name, version, card=card)
    path = Path(weights) if weights is not None else catalog.model_file(resolved)
    return LoadedModel(resolved, load_network(resolved, path, device=device), path)
