"""Which Python packages the module still needs in Slicer, and how each gets installed. No Qt, no pip here.

Usage::

    from SpineMetSegLib.mrml import dependencies

    missing = dependencies.missing_requirements()      # [Requirement("monai", ">=1.3", installed=None), ...]
    dependencies.torch_missing(missing)                # True -> install torch with the PyTorch extension first
    dependencies.pip_arguments(missing)                # ["monai>=1.3", ...] for slicer.util.pip_install

Torch comes from the PyTorch extension (``PyTorchUtils``), which picks the build for the computer's GPU; the
other packages come from ``Resources/requirements.txt`` through Slicer's pip. Both happen in the widget after
the user confirms; ``is_online`` lets it say "no internet" instead of showing pip's traceback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from ..resources import resources_dir

REQUIREMENTS_FILE = resources_dir() / "requirements.txt"
TORCH = "torch"
# Torch versions older than this lack what MONAI and safetensors loading need.
MINIMUM_TORCH = ">=2.2"
# Where pip installs from; reachable means online.
PACKAGE_INDEX_HOST = "pypi.org"
HTTPS_PORT = 443
ONLINE_TIMEOUT_S = 3.0
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(>=\s*[0-9][0-9.]*)?\s*$")


@dataclass(frozen=True)
class Requirement:
    name: str
    minimum: str  # "" or a version such as "1.3"
    installed: Optional[str]  # the installed version, None when absent

    @property
    def satisfied(self) -> bool:
        return self.installed is not None and version_tuple(self.installed) >= version_tuple(self.minimum)

    def __str__(self) -> str:
        return f"{self.name}>={self.minimum}" if self.minimum else self.name


def version_tuple(version: str) -> Tuple[int, ...]:
    """The leading numbers of a version ("2.5.1+cu121" -> (2, 5, 1)); "" -> ()."""
    numbers = []
    for part in version.split("."):
        match = re.match(r"\d+", part)
        if not match:
            break
        numbers.append(int(match.group()))
    return tuple(numbers)


def parse_requirements(lines: Sequence[str]) -> List[Tuple[str, str]]:
    """(name, minimum version) of each ``name`` or ``name>=X.Y`` line; comments and blank lines are skipped."""
    parsed = []
    for line in lines:
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        match = _REQUIREMENT.match(text)
        if not match:
            raise ValueError(f"unsupported requirement line {line!r}: write 'name' or 'name>=version'")
        parsed.append((match.group(1), (match.group(2) or "").replace(">=", "").strip()))
    return parsed


def installed_version(name: str) -> Optional[str]:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def requirements(path: Path = REQUIREMENTS_FILE) -> List[Requirement]:
    """Torch first (it must be installed before MONAI, which would pull a CPU-only torch), then the file."""
    listed = parse_requirements(path.read_text(encoding="utf-8").splitlines())
    names = [(TORCH, MINIMUM_TORCH.replace(">=", ""))] + [item for item in listed if item[0].lower() != TORCH]
    return [Requirement(name, minimum, installed_version(name)) for name, minimum in names]


def missing_requirements(path: Path = REQUIREMENTS_FILE) -> List[Requirement]:
    """The requirements that are absent or too old."""
    return [requirement for requirement in requirements(path) if not requirement.satisfied]


def torch_missing(missing: Sequence[Requirement]) -> bool:
    return any(requirement.name.lower() == TORCH for requirement in missing)


def pip_arguments(missing: Sequence[Requirement]) -> List[str]:
    """What to hand to ``slicer.util.pip_install`` (everything but torch)."""
    return [str(requirement) for requirement in missing if requirement.name.lower() != TORCH]


def describe(missing: Sequence[Requirement]) -> str:
    """One line for the panel: what is missing, with installed versions that are too old."""
    parts = []
    for requirement in missing:
        have = f" (installed {requirement.installed})" if requirement.installed else ""
        parts.append(f"{requirement}{have}")
    return ", ".join(parts)


def is_online(host: str = PACKAGE_INDEX_HOST, port: int = HTTPS_PORT, timeout_s: float = ONLINE_TIMEOUT_S) -> bool:
    """True when a connection to the package index opens: pip will not work offline, so say so before trying."""
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False
