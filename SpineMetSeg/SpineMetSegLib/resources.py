"""Where the module's ``Resources`` folder is: beside the library (source tree, editable install, Slicer), or
inside it as ``SpineMetSegLib/_resources`` (a wheel, which can only carry files inside its packages).

Usage::

    from SpineMetSegLib.resources import resources_dir
    catalog = resources_dir() / "Models" / "catalog.json"
"""

from __future__ import annotations

from pathlib import Path

_BESIDE = Path(__file__).resolve().parents[1] / "Resources"
_INSIDE = Path(__file__).resolve().parent / "_resources"


def resources_dir() -> Path:
    """The ``Resources`` folder (models catalog, embedded model, requirements, UI)."""
    return _BESIDE if _BESIDE.is_dir() else _INSIDE
