"""The model catalog: model cards, their validation, and where each model's file is (``loader`` loads models).

The catalog is ``Resources/Models/catalog.json`` (or ``$SPINEMETSEG_CATALOG``), checked against
``catalog.schema.json`` beside it, plus the cards of models the user imported (``$SPINEMETSEG_HOME/cards``).
A model is a name with versions; the newest version is used unless another is asked for, and older ones
stay usable.

Usage::

    from SpineMetSegLib.models import catalog
    card = catalog.load_catalog().get()                  # the default model, newest version
    card = catalog.load_catalog().get("spinemetseg-default", "1.0.0")
    path = catalog.model_file(card, download=True)       # embedded: inside the extension, no network

A card that breaks the schema raises ``ModelError`` naming the entry and the field, e.g.
``catalog entry 2 (spinemetseg-default 1.0.0): field 'file.sha256' must be 64 hex characters (0-9, a-f), got 'abc'``.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence, Tuple, Union

from ..errors import DownloadError, ModelError
from ..images.atomicfile import write_text_atomic
from ..labels import ModelLabel
from . import cache
from . import download as _download
from .cache import cache_dir  # noqa: F401 - part of this module's API (catalog.cache_dir())
from .modelcard import ModelCard, version_key
from .schema import Problem, quote, validate

PathLike = Union[str, Path]

CATALOG_ENV = "SPINEMETSEG_CATALOG"
MODELS_RESOURCE_DIR = cache.EMBEDDED_DIR
EMBEDDED_CATALOG = MODELS_RESOURCE_DIR / "catalog.json"
SCHEMA_PATH = MODELS_RESOURCE_DIR / "catalog.schema.json"
DEFAULT_MODEL_NAME = "spinemetseg-default"
METASTASIS_LABEL = "metastasis"
# Problems listed in one error message; the rest are counted.
MAX_LISTED_PROBLEMS = 3
ORIENTATION_AXES = ("LR", "PA", "IS")

log = logging.getLogger(__name__)


@functools.cache
def _schema_document() -> Mapping[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def _card_schema() -> Mapping[str, Any]:
    return _schema_document()["$defs"]["card"]


def _read_json(path: Path, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ModelError(f"Cannot read {what} {path}: {error.strerror or error}.") from None
    except UnicodeDecodeError:
        raise ModelError(f"{what.capitalize()} {path} is not a JSON text file (it holds binary data); "
                         "give the .json file.") from None
    try:
        return json.loads(text)
    except ValueError as error:
        raise ModelError(f"{what.capitalize()} {path} is not valid JSON: {error}.") from None


def _problems_message(where: str, problems: Sequence[Problem], source: Optional[Path] = None) -> str:
    listed = "; ".join(str(problem) for problem in problems[:MAX_LISTED_PROBLEMS])
    more = len(problems) - MAX_LISTED_PROBLEMS
    message = f"{where}: {listed}" + (f" (and {more} more problems)" if more > 0 else "")
    return message + (f" [in {source}]" if source is not None else "")


def _identity(data: Any) -> str:
    """``name version`` of a card as written, for messages about a card that may itself be broken."""
    if not isinstance(data, Mapping):
        return "not an object"
    name, version = data.get("name"), data.get("version")
    return f"{name if isinstance(name, str) else '?'} {version if isinstance(version, str) else '?'}"


def card_problems(data: Any) -> List[Problem]:
    """Every problem of a card dict: the schema's checks, then the checks a schema cannot express."""
    problems = validate(data, _card_schema(), root=_schema_document())
    return problems or _semantic_problems(data)


def _semantic_problems(card: Mapping[str, Any]) -> List[Problem]:
    problems: List[Problem] = []

    def problem(path: Tuple[Any, ...], message: str) -> None:
        problems.append(Problem(path, message))

    inputs = card["inputs"]
    if len(set(inputs)) != len(inputs):
        problem(("inputs",), f"must not name a sequence twice, got {quote(inputs)}")
    if card["min_inputs"] > len(inputs):
        problem(("min_inputs",), f"must be at most the number of inputs ({len(inputs)}), got {card['min_inputs']}")
    letters = card["orientation"]
    if sorted(next(i for i, axis in enumerate(ORIENTATION_AXES) if c in axis) for c in letters) != [0, 1, 2]:
        problem(("orientation",), f"must name each axis once (L/R, A/P, S/I), got {quote(letters)}")

    normalization = card["normalization"]
    if normalization["method"] == "zscore_percentile":
        for key in ("lower_percentile", "upper_percentile"):
            if key not in normalization:
                problem(("normalization", key), "is missing")
        if normalization.get("lower_percentile", 0) >= normalization.get("upper_percentile", 100):
            problem(("normalization", "lower_percentile"), "must be below upper_percentile")

    network = card["network"]
    if network["architecture"] == "UNet":
        for key in ("channels", "strides"):
            if key not in network:
                problem(("network", key), "is missing (UNet needs channels and strides)")
        if "channels" in network and "strides" in network and len(network["strides"]) != len(network["channels"]) - 1:
            problem(("network", "strides"), f"must have one item fewer than channels ({len(network['channels'])})")
    elif "features" not in network:
        problem(("network", "features"), "is missing (BasicUNet needs six features)")
    if network["dimensions"] == 2 and "slice_axis" not in network:
        problem(("network", "slice_axis"), "is missing (a 2D model needs the axis it runs along)")
    if len(card["patch_size"]) != network["dimensions"]:
        problem(("patch_size",), f"must have {network['dimensions']} items (network.dimensions), "
                                 f"got {len(card['patch_size'])}")

    labels = card["labels"]
    for index, label in enumerate(labels):
        if [other["value"] for other in labels].index(label["value"]) != index:
            problem(("labels", index, "value"), f"repeats the value {label['value']}")
        if [other["name"] for other in labels].index(label["name"]) != index:
            problem(("labels", index, "name"), f"repeats the name {quote(label['name'])}")
    metastasis = [label for label in labels if label["name"] == METASTASIS_LABEL]
    if not metastasis or metastasis[0]["value"] != int(ModelLabel.METASTASIS):
        problem(("labels",), f"must include {METASTASIS_LABEL!r} with value {int(ModelLabel.METASTASIS)}")

    model_file = card["file"]
    url = model_file["url"]
    if model_file["format"] == "zip" and "weights" not in model_file:
        problem(("file", "weights"), "is missing (an archive must name its weights file)")
    if url.startswith(cache.EMBEDDED_PREFIX) and model_file["format"] == "zip":
        problem(("file", "format"), "must not be 'zip' for an embedded model")
    if url.startswith(("http://", "https://")):
        try:
            _download.check_url(url)
        except DownloadError:
            problem(("file", "url"), f"must be https:// (plain http:// only to this machine), got {quote(url)}")
    if "supersedes" in card and version_key(card["supersedes"]) >= version_key(card["version"]):
        problem(("supersedes",), f"must be an older version than {card['version']}, got {quote(card['supersedes'])}")
    return problems


def card_from_dict(data: Mapping[str, Any], *, where: str = "model card", origin: str = "catalog",
                   source: Optional[Path] = None) -> ModelCard:
    """Validate a card dict and return its ``ModelCard``; ``ModelError`` names ``where`` and the field at fault."""
    problems = card_problems(data)
    if problems:
        raise ModelError(_problems_message(f"{where} ({_identity(data)})", problems, source))
    return ModelCard.from_dict(data, origin=origin)


def card_from_file(path: PathLike, *, origin: str = "catalog") -> ModelCard:
    """Read and validate a model card JSON file."""
    path = Path(path)
    return card_from_dict(_read_json(path, "model card"), where=f"model card {path}", origin=origin)


class Catalog:
    """The model cards on offer: the catalog's and the ones the user imported."""

    def __init__(self, cards: Sequence[ModelCard], *, default_name: Optional[str] = None,
                 source: Optional[Path] = None, conflicts: Sequence[str] = ()):
        self.cards: List[ModelCard] = list(cards)
        self.source = source
        self.conflicts: List[str] = list(conflicts)
        names = self.names()
        if default_name is None:
            default_name = DEFAULT_MODEL_NAME if DEFAULT_MODEL_NAME in names else (names[0] if names else None)
        self.default_name = default_name

    def names(self) -> List[str]:
        """Model names in catalog order."""
        return list(dict.fromkeys(card.name for card in self.cards))

    def versions(self, name: str) -> List[ModelCard]:
        """The cards of ``name``, newest first."""
        return sorted((card for card in self.cards if card.name == name), key=lambda c: c.version_key, reverse=True)

    def is_newest(self, card: ModelCard) -> bool:
        return self.versions(card.name)[0].version == card.version

    def get(self, name: Optional[str] = None, version: Optional[str] = None) -> ModelCard:
        """The card of ``name`` (default model when None) at ``version`` (newest when None)."""
        name = name or self.default_name
        cards = self.versions(name) if name else []
        if not cards:
            known = ", ".join(self.names()) or "none"
            raise ModelError(f"No model called {name!r} in the catalog ({self.source}). Known models: {known}. "
                             "'spinemetseg models list' shows them.")
        if version is None:
            return cards[0]
        for card in cards:
            if card.version == version:
                return card
        known = ", ".join(card.version for card in cards)
        raise ModelError(f"Model {name} has no version {version!r}; its versions are: {known}.")

    def find_sha256(self, sha256: str) -> List[ModelCard]:
        """Cards whose file has this sha256 (to recognise a file brought by hand)."""
        return [card for card in self.cards if card.file.sha256 == sha256]


def catalog_path() -> Path:
    """The catalog in use: ``$SPINEMETSEG_CATALOG`` or the one inside the extension."""
    return Path(os.environ.get(CATALOG_ENV) or EMBEDDED_CATALOG)


def load_catalog(path: Optional[PathLike] = None, *, include_imported: bool = True) -> Catalog:
    """Read and validate a catalog (default ``catalog_path()``) and add the user's imported cards."""
    path = Path(path) if path is not None else catalog_path()
    data = _read_json(path, "model catalog")
    top_level = validate(data, {key: value for key, value in _schema_document().items() if key != "$defs"},
                         root=_schema_document())
    entry_problems = [problem for problem in top_level if len(problem.path) >= 2 and problem.path[0] == "models"]
    if entry_problems:
        first = entry_problems[0].path[1]
        inside = [Problem(p.path[2:], p.message) for p in entry_problems if p.path[1] == first]
        where = f"catalog entry {first + 1} ({_identity(data['models'][first])})"
        raise ModelError(_problems_message(where, inside, path))
    if top_level:
        raise ModelError(_problems_message(f"catalog {path}", top_level))
    cards: List[ModelCard] = []
    for index, entry in enumerate(data["models"]):
        card = card_from_dict(entry, where=f"catalog entry {index + 1}", source=path)
        if any(other.name == card.name and other.version == card.version for other in cards):
            raise ModelError(f"catalog entry {index + 1} repeats {card}; each name and version appears once "
                             f"[in {path}].")
        cards.append(card)
    conflicts: List[str] = []
    if include_imported:
        for card in _imported_cards():
            if any(other.name == card.name and other.version == card.version for other in cards):
                message = (f"the imported model {card} is ignored: the catalog has a model of the same name and "
                           f"version. Remove it with 'spinemetseg models remove {card.name} --version {card.version}'.")
                log.warning(message)
                conflicts.append(message)
            else:
                cards.append(card)
    return Catalog(cards, default_name=data.get("default"), source=path, conflicts=conflicts)


def _imported_cards() -> List[ModelCard]:
    folder = cache.cards_dir()
    if not folder.is_dir():
        return []
    return [card_from_file(path, origin="imported") for path in sorted(folder.glob("*.json"))]


def default_card() -> ModelCard:
    """The card of the default model (newest version) of the catalog in use."""
    return load_catalog().get()


def model_file(card: ModelCard, *, download: bool = False, progress: Optional[_download.DownloadProgress] = None
               ) -> Path:
    """The weights file of ``card``: inside the extension when embedded, else in the cache.

    With ``download=True`` a missing file is downloaded (see ``download.download_model``); otherwise a
    missing file raises ``ModelError`` saying how to get it.
    """
    path = cache.model_path(card)
    if card.is_embedded:
        if not path.is_file():
            raise ModelError(f"The embedded model file {path} of {card} is missing from the extension. "
                             "Reinstall SpineMetSeg.")
        return path
    if cache.is_present(card):
        return path
    if download:
        return _download.download_model(card, progress=progress)
    raise ModelError(f"Model {card} is not downloaded. Run 'spinemetseg models download {card.name} --version "
                     f"{card.version}'; without internet, copy the model file to this computer another way and run "
                     "'spinemetseg models import FILE'.")


def import_model(path: PathLike, card_path: Optional[PathLike] = None, *, catalog: Optional[Catalog] = None,
                 name: Optional[str] = None, version: Optional[str] = None) -> ModelCard:
    """Put a model file brought by hand into the cache and return its card.

    Without ``card_path`` the file must be one the catalog lists (same sha256 and size; ``name``/``version``
    narrow the choice). With ``card_path`` it is a model the user trained: the card is validated, the weights
    must load safely and fit the card's network, and the card is kept in ``$SPINEMETSEG_HOME/cards``.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path} does not exist or is not a file.")
    catalog = catalog or load_catalog()
    if card_path is None:
        return _import_catalog_file(path, catalog, name, version)
    return _import_user_model(path, card_from_file(card_path, origin="imported"), catalog)


def _import_catalog_file(path: Path, catalog: Catalog, name: Optional[str], version: Optional[str]) -> ModelCard:
    sha = cache.sha256_of(path)
    matches = [card for card in catalog.find_sha256(sha) if card.file.size == path.stat().st_size]
    if name is not None:
        wanted = catalog.get(name, version)
        if wanted not in matches:
            raise ModelError(f"{path} is not the file of {wanted}: its sha256 is {sha}, the model card says "
                             f"{wanted.file.sha256}. Check that you copied the right file completely.")
        matches = [wanted]
    if not matches:
        raise ModelError(f"{path} is not the file of any model in the catalog (sha256 {sha}). For a model you "
                         "trained yourself, give its card: 'spinemetseg models import FILE --card CARD.json'.")
    card = max(matches, key=lambda c: c.version_key)
    if not card.is_embedded:
        _download.install_file(path, card)
    return card


def _import_user_model(path: Path, card: ModelCard, catalog: Catalog) -> ModelCard:
    from .loader import load_network
    from .weights import TORCH_SUFFIXES

    if card.is_embedded:
        raise ModelError(f"The card of {card} says its file is embedded in the extension; an imported model's "
                         "card must give 'local:<file>' or an https:// address as file.url.")
    expected_suffixes = {"safetensors": (".safetensors",), "pt": TORCH_SUFFIXES}.get(card.file.format, ())
    if path.suffix.lower() not in expected_suffixes:
        raise ModelError(f"The card of {card} says file.format is {card.file.format!r}, but {path.name} is not a "
                         "weights file of that format (.safetensors, or .pt/.pth for 'pt').")
    for other in catalog.cards:
        if other.name == card.name and other.version == card.version:
            if other.origin == "catalog":
                raise ModelError(f"The catalog already has a model {card}; give your model another name or version "
                                 "in its card.")
            raise ModelError(f"A model {card} was imported before. Remove it first with 'spinemetseg models remove "
                             f"{card.name} --version {card.version}', or give the new one another version.")
    size, sha = path.stat().st_size, cache.sha256_of(path)
    if (size, sha) != (card.file.size, card.file.sha256):
        raise ModelError(f"{path} does not match its card: it has {size} bytes and sha256 {sha}, the card says "
                         f"{card.file.size} bytes and {card.file.sha256}. Write the file's size and sha256 "
                         "into the card (or use the card saved with the weights).")
    load_network(card, path)  # refuse weights that do not fit the card's network before anything is installed
    installed = _download.install_file(path, card)
    try:
        _write_json_atomic(cache.imported_card_path(card.name, card.version), card.to_dict())
    except BaseException:
        _download.remove_model(card)
        raise
    log.info("imported %s into %s", card, installed)
    return card


def _write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def remove_model(name: str, version: Optional[str] = None, *, catalog: Optional[Catalog] = None) -> List[ModelCard]:
    """Remove ``name`` (one version, or every version) from the cache; return the cards removed.

    Refuses the embedded model (``ModelError``); raises ``ModelError`` when nothing of ``name`` is in the cache.
    """
    catalog = catalog or load_catalog()
    cards = [catalog.get(name, version)] if version is not None else catalog.versions(catalog.get(name).name)
    if all(card.is_embedded for card in cards):
        raise ModelError(f"{' and '.join(str(card) for card in cards)} is embedded in the extension and cannot be "
                         "removed.")
    present = [card for card in cards if not card.is_embedded and
               (cache.model_dir(card).exists() or card.origin == "imported")]
    if not present:
        raise ModelError(f"Nothing to remove: {name}{' ' + version if version else ''} is not in the cache "
                         f"({cache.models_dir()}).")
    for card in present:
        _download.remove_model(card)
    return present
