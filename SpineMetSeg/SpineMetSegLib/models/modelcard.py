"""The model card as one typed, immutable object: what a model takes, how it is built, what it outputs.

Usage::

    from SpineMetSegLib.models import catalog
    card = catalog.load_catalog().get()                 # validated once from JSON (catalog.card_from_dict)
    card.network.dimensions, card.network.slice_axis      # 2, 0
    card.normalization.lower_percentile                   # 0.5
    card.label("metastasis").value                        # 1
    card.postprocessing.min_lesion_volume_ml              # 0.02
    stricter = card.with_postprocessing(min_lesion_mean_probability=0.95)   # a changed copy
    card.to_dict()                                        # the JSON object, for writing the card back

The JSON is checked against ``Resources/Models/catalog.schema.json`` and the rules a schema cannot express in
``catalog.card_problems``; ``ModelCard.from_dict`` builds the typed card from a dict that passed those checks.
Every core function that needs the card takes a ``ModelCard`` and reads its typed fields: nothing digs in dicts.
The parts of the card that are free text or free-form measurements (description, metrics, speed) are kept as
written, read-only, and go back into ``to_dict`` unchanged.
"""

from __future__ import annotations

import copy
import dataclasses
import types
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple

from ..errors import ModelError
from ..labels import ModelLabel
from . import cache

# The parts of a card's JSON the typed fields do not hold (free text and free-form numbers), in the schema's order.
TEXT_FIELDS = ("description", "intended_use", "limitations", "training_data", "license")
# Every field the typed card holds; other keys of a card (a hospital's own notes) are kept as ``extras``.
KNOWN_FIELDS = frozenset(TEXT_FIELDS) | {
    "name", "version", "title", "inputs", "min_inputs", "orientation", "spacing_mm", "normalization", "network",
    "patch_size", "labels", "postprocessing", "file", "metrics", "speed", "supersedes"}


@dataclass(frozen=True)
class Normalization:
    """How each input channel's intensities are scaled before the network (``normalization`` block)."""

    method: str
    lower_percentile: float = 0.0
    upper_percentile: float = 100.0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Normalization:
        return cls(str(data["method"]), float(data.get("lower_percentile", 0.0)),
                   float(data.get("upper_percentile", 100.0)))

    def to_dict(self) -> Dict[str, Any]:
        return {"method": self.method, "lower_percentile": self.lower_percentile,
                "upper_percentile": self.upper_percentile}


@dataclass(frozen=True)
class NetworkSpec:
    """The network the weights belong to (``network`` block): a MONAI UNet or BasicUNet, 2D or 3D."""

    dimensions: int
    architecture: str
    channels: Tuple[int, ...] = ()
    strides: Tuple[int, ...] = ()
    features: Tuple[int, ...] = ()
    num_res_units: int = 0
    norm: str = "instance"
    dropout: float = 0.0
    slice_axis: Optional[int] = None  # the axis a 2D model runs along (model grid, i j k); None for 3D

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NetworkSpec:
        return cls(
            dimensions=int(data["dimensions"]),
            architecture=str(data["architecture"]),
            channels=tuple(int(n) for n in data.get("channels", ())),
            strides=tuple(int(n) for n in data.get("strides", ())),
            features=tuple(int(n) for n in data.get("features", ())),
            num_res_units=int(data.get("num_res_units", 0)),
            norm=str(data.get("norm", "instance")),
            dropout=float(data.get("dropout", 0.0)),
            slice_axis=int(data["slice_axis"]) if "slice_axis" in data else None,
        )

    def to_dict(self) -> Dict[str, Any]:
        data: Dict[str, Any] = {"dimensions": self.dimensions, "architecture": self.architecture}
        if self.architecture == "UNet":
            data.update(channels=list(self.channels), strides=list(self.strides), num_res_units=self.num_res_units,
                        norm=self.norm)
        else:
            data["features"] = list(self.features)
        if self.dropout:
            data["dropout"] = self.dropout
        if self.slice_axis is not None:
            data["slice_axis"] = self.slice_axis
        return data

    @property
    def downsampling_factor(self) -> int:
        """The encoder's total stride: window sizes must be multiples of it."""
        if self.architecture == "BasicUNet":
            return 16  # four 2x poolings in MONAI's BasicUNet
        factor = 1
        for stride in self.strides:
            factor *= stride
        return factor

    @property
    def level_widths(self) -> Tuple[int, ...]:
        """Feature maps per level, finest first (for memory estimates; BasicUNet's six features as they are)."""
        return self.channels or self.features

    @property
    def level_strides(self) -> Tuple[int, ...]:
        return self.strides or (2,) * (len(self.level_widths) - 1)


@dataclass(frozen=True)
class Code:
    """A coded concept (scheme, e.g. SCT = SNOMED CT; code; meaning)."""

    scheme: str
    code: str
    meaning: str

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Code:
        return cls(str(data["scheme"]), str(data["code"]), str(data["meaning"]))

    def to_dict(self) -> Dict[str, str]:
        return {"scheme": self.scheme, "code": self.code, "meaning": self.meaning}


@dataclass(frozen=True)
class Terminology:
    """A label's standard terminology: category, type and an optional modifier."""

    category: Code
    type: Code
    modifier: Optional[Code] = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Terminology:
        modifier = data.get("modifier")
        return cls(Code.from_dict(data["category"]), Code.from_dict(data["type"]),
                   Code.from_dict(modifier) if modifier else None)

    def to_dict(self) -> Dict[str, Any]:
        data = {"category": self.category.to_dict(), "type": self.type.to_dict()}
        if self.modifier is not None:
            data["modifier"] = self.modifier.to_dict()
        return data


@dataclass(frozen=True)
class Label:
    """One output label: its name, value in the label map, display colour (RGB 0..1) and terminology."""

    name: str
    value: int
    color: Tuple[float, float, float]
    terminology: Terminology

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Label:
        color = tuple(float(c) for c in data["color"])
        return cls(str(data["name"]), int(data["value"]), (color[0], color[1], color[2]),
                   Terminology.from_dict(data["terminology"]))

    def to_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "value": self.value, "color": list(self.color),
                "terminology": self.terminology.to_dict()}


@dataclass(frozen=True)
class Postprocessing:
    """How lesions are cleaned after the network (``postprocessing`` block; see ``postprocessing.clean_lesions``)."""

    min_lesion_volume_ml: float
    lesions_must_touch_bone: bool
    min_body_contact_fraction: float = 0.0
    min_lesion_mean_probability: float = 0.0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Postprocessing:
        return cls(float(data["min_lesion_volume_ml"]), bool(data["lesions_must_touch_bone"]),
                   float(data.get("min_body_contact_fraction", 0.0)),
                   float(data.get("min_lesion_mean_probability", 0.0)))

    def to_dict(self) -> Dict[str, Any]:
        data: Dict[str, Any] = {"min_lesion_volume_ml": self.min_lesion_volume_ml,
                                "lesions_must_touch_bone": self.lesions_must_touch_bone}
        if self.min_body_contact_fraction:
            data["min_body_contact_fraction"] = self.min_body_contact_fraction
        if self.min_lesion_mean_probability:
            data["min_lesion_mean_probability"] = self.min_lesion_mean_probability
        return data


@dataclass(frozen=True)
class ModelFile:
    """Where the weights are and how to check them (``file`` block)."""

    url: str  # embedded:<file>, local:<file> or https://...
    size: int
    sha256: str
    format: str  # safetensors, pt, or zip (an archive holding ``weights``)
    weights: Optional[str] = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelFile:
        return cls(str(data["url"]), int(data["size"]), str(data["sha256"]), str(data["format"]),
                   str(data["weights"]) if "weights" in data else None)

    def to_dict(self) -> Dict[str, Any]:
        data: Dict[str, Any] = {"url": self.url, "size": self.size, "sha256": self.sha256, "format": self.format}
        if self.weights is not None:
            data["weights"] = self.weights
        return data


def _frozen(value: Any) -> Any:
    """A read-only deep view of a JSON value (mappings become ``MappingProxyType``, lists tuples)."""
    if isinstance(value, Mapping):
        return types.MappingProxyType({key: _frozen(item) for key, item in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(item) for item in value)
    return value


def _thawed(value: Any) -> Any:
    """The JSON value of a ``_frozen`` view."""
    if isinstance(value, Mapping):
        return {key: _thawed(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [_thawed(item) for item in value]
    return value


@dataclass(frozen=True)
class Measurements:
    """Free-form measured numbers (``metrics`` or ``speed`` block), read-only, kept as written."""

    data: Mapping[str, Any] = field(default_factory=lambda: types.MappingProxyType({}))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Measurements:
        return cls(_frozen(data))

    def to_dict(self) -> Dict[str, Any]:
        return _thawed(self.data)

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    @property
    def note(self) -> str:
        return str(self.data.get("note", ""))


@dataclass(frozen=True)
class ModelCard:
    """A validated model card (build it with ``catalog.card_from_dict``/``card_from_file``, which check it)."""

    name: str
    version: str
    title: str
    inputs: Tuple[str, ...]  # sequence names in channel order
    min_inputs: int
    orientation: str  # the model grid's axis letters, e.g. LPS
    spacing_mm: Tuple[Optional[float], ...]  # per model-grid axis; None keeps the native spacing
    normalization: Normalization
    network: NetworkSpec
    patch_size: Tuple[int, ...]
    labels: Tuple[Label, ...]
    postprocessing: Postprocessing
    file: ModelFile
    metrics: Measurements
    speed: Measurements
    texts: Mapping[str, str] = field(repr=False)  # description, intended_use, limitations, training_data, license
    supersedes: Optional[str] = None
    extras: Mapping[str, Any] = field(default_factory=lambda: types.MappingProxyType({}), repr=False)
    origin: str = "catalog"  # "catalog" or "imported" (a card the user imported into the cache)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, origin: str = "catalog") -> ModelCard:
        """The typed card of a card dict that passed ``catalog.card_problems`` (no checks here)."""
        return cls(
            name=str(data["name"]),
            version=str(data["version"]),
            title=str(data["title"]),
            inputs=tuple(str(name) for name in data["inputs"]),
            min_inputs=int(data["min_inputs"]),
            orientation=str(data["orientation"]),
            spacing_mm=tuple(None if s is None else float(s) for s in data["spacing_mm"]),
            normalization=Normalization.from_dict(data["normalization"]),
            network=NetworkSpec.from_dict(data["network"]),
            patch_size=tuple(int(n) for n in data["patch_size"]),
            labels=tuple(Label.from_dict(label) for label in data["labels"]),
            postprocessing=Postprocessing.from_dict(data["postprocessing"]),
            file=ModelFile.from_dict(data["file"]),
            metrics=Measurements.from_dict(data.get("metrics", {})),
            speed=Measurements.from_dict(data.get("speed", {})),
            texts=types.MappingProxyType({key: str(data[key]) for key in TEXT_FIELDS if key in data}),
            supersedes=str(data["supersedes"]) if "supersedes" in data else None,
            extras=_frozen({key: value for key, value in data.items() if key not in KNOWN_FIELDS}),
            origin=origin,
        )

    def to_dict(self) -> Dict[str, Any]:
        """The card's JSON object (the schema's field order)."""
        data: Dict[str, Any] = {"name": self.name, "version": self.version, "title": self.title}
        data.update(copy.deepcopy(dict(self.texts)))
        data.update(
            inputs=list(self.inputs),
            min_inputs=self.min_inputs,
            orientation=self.orientation,
            spacing_mm=list(self.spacing_mm),
            normalization=self.normalization.to_dict(),
            network=self.network.to_dict(),
            patch_size=list(self.patch_size),
            labels=[label.to_dict() for label in self.labels],
            postprocessing=self.postprocessing.to_dict(),
            file=self.file.to_dict(),
            metrics=self.metrics.to_dict(),
            speed=self.speed.to_dict(),
        )
        if self.supersedes is not None:
            data["supersedes"] = self.supersedes
        data.update(_thawed(self.extras))
        return data

    def replace(self, **changes: Any) -> ModelCard:
        """A copy with some fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    def with_postprocessing(self, **changes: Any) -> ModelCard:
        """A copy whose post-processing has ``changes`` (e.g. ``min_lesion_mean_probability=0.95``)."""
        return self.replace(postprocessing=dataclasses.replace(self.postprocessing, **changes))

    def text(self, key: str) -> str:
        """One of the card's texts (``description``, ``intended_use``, ``limitations``, ...), '' when absent."""
        return self.texts.get(key, "")

    def __hash__(self) -> int:
        return hash((self.name, self.version, self.file.sha256))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ModelCard):
            return NotImplemented
        return self.to_dict() == other.to_dict() and self.origin == other.origin

    def __str__(self) -> str:
        return f"{self.name} {self.version}"

    @property
    def out_channels(self) -> int:
        """Number of network outputs: the largest label value plus one (background)."""
        return max(label.value for label in self.labels) + 1

    @property
    def version_key(self) -> Tuple[int, ...]:
        return version_key(self.version)

    @property
    def is_embedded(self) -> bool:
        """True when the model's file ships inside the extension (``embedded:<file>``)."""
        return cache.is_embedded(self)

    @property
    def predicts_bone(self) -> bool:
        """True when the model outputs the vertebral body (the lesion rules that need bone apply)."""
        return any(label.value == ModelLabel.VERTEBRAL_BODY for label in self.labels)

    def label(self, name: str) -> Label:
        """The output label called ``name``; ``ModelError`` listing the card's labels when there is none."""
        for label in self.labels:
            if label.name == name:
                return label
        names = ", ".join(label.name for label in self.labels)
        raise ModelError(f"Model {self} has no label {name!r}; its labels are: {names}.")

    def label_value(self, name: str) -> int:
        """The output value of the label called ``name`` (e.g. ``"metastasis"`` -> 1)."""
        return self.label(name).value


def version_key(version: str) -> Tuple[int, ...]:
    """``"1.10.0"`` -> ``(1, 10, 0)`` so versions sort as numbers."""
    return tuple(int(part) for part in version.split("."))
