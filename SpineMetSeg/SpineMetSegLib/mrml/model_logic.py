"""The model part of the panel: the catalog's models and whether each is here, download, import.

Usage::

    from SpineMetSegLib.mrml.model_logic import ModelLogic

    logic = ModelLogic()
    for entry in logic.entries():                 # every version of every model, newest first
        print(entry.label, entry.available)
    job = logic.start_download(entry.card, on_progress=print)   # a ChildJob: poll(), cancel(), check()
    card = logic.import_file("spinemetseg-large-1.0.0.safetensors")            # a catalog model's file
    card = logic.import_file("my-model.safetensors", card_file="my-card.json") # a model trained elsewhere

A download runs ``spinemetseg models download --progress lines`` as a child process, so it never blocks Slicer
and can be cancelled (the cache keeps the partial file, and the next download resumes it); its progress arrives
as ``SPINEMETSEG-PROGRESS`` lines, the one protocol every child command speaks. Import runs in-process: it
only checks and copies a local file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

from ..models.modelcard import ModelCard
from .child_job import ChildJob, LogHandler, ProgressHandler
from .process_runner import ProcessRunner, SubprocessRunner


@dataclass(frozen=True)
class ModelEntry:
    card: ModelCard
    available: bool  # embedded, downloaded or imported: usable without network
    newest: bool
    default: bool

    @property
    def key(self) -> str:
        """What the parameter node stores: "name version"."""
        return f"{self.card.name} {self.card.version}"

    @property
    def label(self) -> str:
        sequences = ", ".join(s.upper() for s in self.card.inputs)
        state = "here" if self.available else "not downloaded"
        return f"{self.card.name} {self.card.version} ({sequences}; {state})"

    @property
    def description(self) -> str:
        card = self.card
        parts = [card.title, card.text("description"), f"Training data: {card.text('training_data')}",
                 f"Limitations: {card.text('limitations')}"]
        return "\n".join(part for part in parts if part.strip())


class ModelLogic:
    def __init__(self, runner_factory: Callable[[], ProcessRunner] = SubprocessRunner,
                 catalog_path: Optional[Path] = None):
        self.runner_factory = runner_factory
        self.catalog_path = catalog_path

    def entries(self) -> List[ModelEntry]:
        """Every version of every model in the catalog (and imported ones), the default model first."""
        from ..models import cache, catalog

        loaded = catalog.load_catalog(self.catalog_path)
        names = sorted(loaded.names(), key=lambda name: (name != loaded.default_name, name))
        entries = []
        for name in names:
            for card in sorted(loaded.versions(name), key=lambda c: c.version_key, reverse=True):
                available = cache.model_path(card).is_file() if card.is_embedded else cache.is_present(card)
                entries.append(ModelEntry(card, available, loaded.is_newest(card), name == loaded.default_name))
        return entries

    def entry(self, key: str) -> Optional[ModelEntry]:
        return next((entry for entry in self.entries() if entry.key == key), None)

    def start_download(self, card, *, on_progress: Optional[ProgressHandler] = None,
                       on_log: Optional[LogHandler] = None) -> ChildJob:
        job = ChildJob(self.runner_factory(), on_progress=on_progress, on_log=on_log,
                       what=f"The download of {card.name} {card.version}")
        job.start(["models", "download", card.name, "--version", card.version, "--progress", "lines"])
        return job

    def import_file(self, path, card_file=None):
        """Check a model file brought by hand and put it into the cache; return its card."""
        from ..models import catalog

        return catalog.import_model(Path(path), Path(card_file) if card_file else None,
                                    catalog=catalog.load_catalog(self.catalog_path))
