"""The ablation device table: each entry's electrode length, zone size and position, and the source of each number.

The shipped table (``Resources/Ablation/devices.json``) holds generic, illustrative entries only: round sizes,
no manufacturer's numbers. Users add their own devices in a JSON file of the same form, passed as ``path`` here,
``--devices`` on the command line, or the ``SPINEMETSEG_ABLATION_DEVICES`` environment variable; its entries join
the shipped ones (an entry with a shipped entry's name replaces it).

An entry::

    {"name": "my-probe-20", "description": "...", "active_length_mm": 20, "zone_length_mm": 30,
     "zone_diameter_mm": 20, "tip_to_zone_centre_mm": 10,
     "sources": {"zone_length_mm": "manufacturer's IFU, rev. X, table 3", ...}}

The zone is an ellipsoid of revolution around the probe: ``zone_length_mm`` along it, ``zone_diameter_mm``
across it, its centre ``tip_to_zone_centre_mm`` behind the tip (towards the handle).

Usage::

    from SpineMetSegLib.analysis.ablation.device_table import load_devices
    devices = load_devices()          # shipped entries (+ $SPINEMETSEG_ABLATION_DEVICES), smallest zone first
    device = find_device(devices, "generic-ellipsoid-20x15")
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ...errors import SpineMetSegError
from ...resources import resources_dir

DEVICES_ENVIRONMENT_VARIABLE = "SPINEMETSEG_ABLATION_DEVICES"
TABLE_FORMAT = "spinemetseg-ablation-devices"
NUMBER_FIELDS = ("active_length_mm", "zone_length_mm", "zone_diameter_mm", "tip_to_zone_centre_mm")


class DeviceTableError(SpineMetSegError):
    """A device table that cannot be read or holds an invalid entry."""


@dataclass(frozen=True)
class AblationDevice:
    name: str
    description: str
    active_length_mm: float
    zone_length_mm: float
    zone_diameter_mm: float
    tip_to_zone_centre_mm: float
    sources: Dict[str, str] = field(default_factory=dict)
    table: str = ""  # the file the entry came from

    @property
    def zone_volume_ml(self) -> float:
        """Volume of the ellipsoidal zone in mL."""
        return 4.0 / 3.0 * math.pi * (self.zone_length_mm / 2) * (self.zone_diameter_mm / 2) ** 2 / 1000.0

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            **{key: getattr(self, key) for key in NUMBER_FIELDS},
            "zone_volume_ml": self.zone_volume_ml,
            "sources": dict(self.sources),
            "table": self.table,
        }


def shipped_table_path() -> Path:
    return resources_dir() / "Ablation" / "devices.json"


def read_table(path) -> List[AblationDevice]:
    """The entries of one device table file; ``DeviceTableError`` naming the file and the entry when invalid."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DeviceTableError(f"The device table {path} does not exist. Check the path.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DeviceTableError(f"Cannot read the device table {path}: {error}.") from None
    except json.JSONDecodeError as error:
        raise DeviceTableError(
            f"The device table {path} is not valid JSON (line {error.lineno}): {error.msg}."
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("devices"), list):
        raise DeviceTableError(f'The device table {path} needs a "devices" list (see the shipped devices.json).')
    return [_device(entry, path, index) for index, entry in enumerate(data["devices"], start=1)]


def _device(entry, path: Path, index: int) -> AblationDevice:
    where = f"entry {index} of the device table {path}"
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"].strip():
        raise DeviceTableError(f"The {where} has no name.")
    where = f"device '{entry['name']}' ({where})"
    numbers = {}
    for key in NUMBER_FIELDS:
        value = entry.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise DeviceTableError(f"The {where} needs a number for {key}.")
        numbers[key] = float(value)
    for key in ("active_length_mm", "zone_length_mm", "zone_diameter_mm"):
        if numbers[key] <= 0:
            raise DeviceTableError(f"The {where} has {key} = {numbers[key]:g}; it must be positive.")
    sources = entry.get("sources", {})
    if not isinstance(sources, dict) or not all(isinstance(v, str) for v in sources.values()):
        raise DeviceTableError(f'The {where} has a "sources" that is not a mapping of field to text.')
    missing = [key for key in NUMBER_FIELDS if not sources.get(key, "").strip()]
    if missing:
        raise DeviceTableError(
            f"The {where} names no source for {', '.join(missing)}. Say where each number comes from."
        )
    return AblationDevice(
        name=entry["name"].strip(),
        description=str(entry.get("description", "")),
        sources=dict(sources),
        table=str(path),
        **numbers,
    )


def load_devices(path: Optional[os.PathLike] = None) -> List[AblationDevice]:
    """The shipped entries plus those of ``path`` (or ``$SPINEMETSEG_ABLATION_DEVICES``), smallest zone first."""
    devices = {device.name: device for device in read_table(shipped_table_path())}
    extra = path if path is not None else os.environ.get(DEVICES_ENVIRONMENT_VARIABLE) or None
    if extra is not None:
        devices.update({device.name: device for device in read_table(extra)})
    return sorted(devices.values(), key=lambda device: (device.zone_volume_ml, device.name))


def find_device(devices: Sequence[AblationDevice], name: str) -> AblationDevice:
    for device in devices:
        if device.name == name:
            return device
    names = ", ".join(device.name for device in devices)
    raise DeviceTableError(f"No ablation device named '{name}'. The table holds: {names}.")
