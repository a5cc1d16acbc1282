"""Which Python packages the module still needs in Slicer, and how each gets installed. No Qt, no pip here.

Usage::

    from SpineMetSegLib.mrml import dependencies

    missing = dependencies.missing_requirements()      # [Requirement("monai", ">=1.3", installed=None), ...]
    dependencies.torch_missing(missing)                # True -> install torch with the PyTorch extension first
    dependencies.pip_arguments(missing)                # ["monai>=1.3", ...] for package_install.PackageInstaller
    dependencies.torch_install_prompt(missing)         # what to tell the user before PyTorch is (re)installed

Torch comes from the PyTorch extension (``PyTorchUtils``), which picks the build for the computer's GPU; it is
asked for ``torch>=MINIMUM_TORCH``, also when an older torch is installed (which would otherwise be accepted and
fail inside the child process). The other packages come from ``Resources/requirements.txt`` through pip
(``package_install``). Both happen in the widget after the user confirms.
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
# Torch versions older than this lack what MONAI and safetensors loading need (every model card's network runs on it).
MINIMUM_TORCH = ">=2.2"
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


def torch_requirement(missing: Sequence[Requirement]) -> Optional[Requirement]:
    """The torch requirement among ``missing`` (absent or too old), else None."""
    return next((requirement for requirement in missing if requirement.name.lower() == TORCH), None)


def torch_install_prompt(missing: Sequence[Requirement]) -> str:
    """What the user confirms before the PyTorch extension installs torch ("" when torch is fine)."""
    requirement = torch_requirement(missing)
    if requirement is None:
        return ""
    if requirement.installed:
        return (f"SpineMetSeg needs PyTorch {MINIMUM_TORCH}, but PyTorch {requirement.installed} is installed. "
                f"Install a newer PyTorch now with the PyTorch extension (a few minutes)? Restart Slicer afterwards.")
    return (f"SpineMetSeg needs PyTorch {MINIMUM_TORCH}. Install it now with the PyTorch extension (a few minutes); "
            "it picks the build for this computer's GPU.")


def torch_still_too_old(installed: Optional[str]) -> str:
    """The error when the PyTorch extension left a torch older than needed ("" when ``installed`` is new enough)."""
    needed = MINIMUM_TORCH.replace(">=", "")
    if installed is not None and version_tuple(installed) >= version_tuple(needed):
        return ""
    have = f"PyTorch {installed} is installed" if installed else "PyTorch is still not installed"
    return (f"SpineMetSeg needs PyTorch {MINIMUM_TORCH}, but {have}. Install it from the PyTorch module "
            f"(Utilities > PyTorch Utils) with the version requirement '{MINIMUM_TORCH}', then restart Slicer.")
