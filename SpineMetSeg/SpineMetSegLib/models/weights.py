"""Load and save network weights without ever running code from the file.

Weights are read from ``.safetensors`` (plain tensors and a JSON header: nothing to execute) or, for files
made with ``torch.save(model.state_dict())``, from ``.pt`` / ``.pth`` with ``torch.load(weights_only=True)``,
whose unpickler accepts tensors and plain containers only. Anything else — a pickle, a file with another
suffix, a truncated or corrupt file, tensors that do not fit the network — is refused with ``ModelError``.

Usage::

    from SpineMetSegLib.models import weights
    weights.save_state_dict(net.state_dict(), "model.safetensors", metadata={"name": "mine"})
    state = weights.load_state_dict("model.safetensors")
    weights.apply_state_dict(net, state, source="model.safetensors")
"""

from __future__ import annotations

import json
import pickle  # only for its exception type: nothing here unpickles
import re
import struct
from pathlib import Path
from typing import Dict, Mapping, Optional, Union

import torch

from ..errors import ModelError
from ..images.atomicfile import atomic_path

PathLike = Union[str, Path]

SAFETENSORS_SUFFIXES = (".safetensors",)
TORCH_SUFFIXES = (".pt", ".pth")
ZIP_MAGIC = b"PK\x03\x04"  # torch.save has written zip files since PyTorch 1.6; older files are bare pickles
SAFETENSORS_HEADER_LENGTH_BYTES = 8
MAX_LISTED_KEYS = 5

_FIX = ("Download the model again ('spinemetseg models download NAME'), import a good copy "
        "('spinemetseg models import FILE'), or save the weights again with weights.save_state_dict.")


def load_state_dict(path: PathLike) -> Dict[str, torch.Tensor]:
    """Read the tensors of a weights file (on the CPU); raise ``ModelError`` for anything unsafe or broken."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"Model weights file {path} does not exist. {_FIX}")
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        return _load_safetensors(path)
    if suffix in TORCH_SUFFIXES:
        return _load_torch(path)
    raise ModelError(
        f"Refusing to load {path}: weights must be a .safetensors file (or .pt/.pth written by torch.save of a "
        f"state dict), not '{suffix or 'no suffix'}'. Pickle files can run code and are never loaded."
    )


def _load_safetensors(path: Path) -> Dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    _check_safetensors_header(path)
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise ModelError(f"Model weights file {path} is corrupt or truncated ({error}). {_FIX}") from None


def _check_safetensors_header(path: Path) -> None:
    """Refuse files that are not safetensors (a pickle renamed, a truncated download) with a plain message."""
    size = path.stat().st_size
    with open(path, "rb") as stream:
        head = stream.read(SAFETENSORS_HEADER_LENGTH_BYTES)
        if len(head) < SAFETENSORS_HEADER_LENGTH_BYTES:
            raise ModelError(f"Model weights file {path} is truncated ({size} bytes). {_FIX}")
        (header_length,) = struct.unpack("<Q", head)
        if header_length > size - SAFETENSORS_HEADER_LENGTH_BYTES:
            raise ModelError(f"Model weights file {path} is not a safetensors file or is truncated: its header "
                             f"announces {header_length} bytes but the file has {size}. {_FIX}")
        try:
            header = json.loads(stream.read(header_length))
        except (UnicodeDecodeError, ValueError):
            raise ModelError(f"Model weights file {path} is not a safetensors file (unreadable header). {_FIX}"
                             ) from None
    if not isinstance(header, dict):
        raise ModelError(f"Model weights file {path} is not a safetensors file (bad header). {_FIX}")


def _load_torch(path: Path) -> Dict[str, torch.Tensor]:
    with open(path, "rb") as stream:
        magic = stream.read(len(ZIP_MAGIC))
    if magic != ZIP_MAGIC:
        raise ModelError(f"Refusing to load {path}: it is not a file written by torch.save (it may be a bare "
                         f"pickle, which can run code, or it is corrupt). {_FIX}")
    try:
        loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # torch's own message suggests weights_only=False, which is exactly what must not be done here.
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        held = f"a Python object ({found.group(1)}) that could run code" if found else "something other than tensors"
        raise ModelError(f"Refusing to load {path}: it holds {held}. Only tensors are loaded. {_FIX}") from None
    except Exception as error:  # noqa: BLE001 - torch raises many types; all mean "not readable"
        first_sentence = re.split(r"(?<=\.)\s", str(error).strip(), maxsplit=1)[0] or type(error).__name__
        raise ModelError(f"Refusing to load {path}: it is corrupt or truncated ({first_sentence}). {_FIX}") from None
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping) or not all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in loaded.items()
    ):
        raise ModelError(f"{path} does not hold a state dict (names mapped to tensors). {_FIX}")
    return dict(loaded)


def save_state_dict(state: Mapping[str, torch.Tensor], path: PathLike, metadata: Optional[Mapping[str, str]] = None
                    ) -> Path:
    """Write ``state`` to a ``.safetensors`` file atomically (a temporary file, then one rename)."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix.lower() not in SAFETENSORS_SUFFIXES:
        raise ModelError(f"Weights are saved as .safetensors; got {path}.")
    # Separate, contiguous CPU copies: safetensors refuses tensors that share memory.
    tensors = {name: tensor.detach().to("cpu").contiguous().clone() for name, tensor in state.items()}
    with atomic_path(path) as temporary:
        save_file(tensors, str(temporary), metadata={str(k): str(v) for k, v in (metadata or {}).items()})
    return path


def apply_state_dict(network: torch.nn.Module, state: Mapping[str, torch.Tensor], *, source: str = "the weights"
                     ) -> torch.nn.Module:
    """Load ``state`` into ``network`` strictly; ``ModelError`` names missing, extra or misshapen tensors."""
    expected = network.state_dict()
    missing = [name for name in expected if name not in state]
    unexpected = [name for name in state if name not in expected]
    misshapen = [
        f"{name} {tuple(state[name].shape)} instead of {tuple(tensor.shape)}"
        for name, tensor in expected.items()
        if name in state and tuple(state[name].shape) != tuple(tensor.shape)
    ]
    problems = []
    for title, items in (("missing tensors", missing), ("unexpected tensors", unexpected),
                         ("tensors of the wrong shape", misshapen)):
        if items:
            listed = ", ".join(items[:MAX_LISTED_KEYS]) + (f" (+{len(items) - MAX_LISTED_KEYS} more)"
                                                            if len(items) > MAX_LISTED_KEYS else "")
            problems.append(f"{len(items)} {title}: {listed}")
    if problems:
        raise ModelError(f"{source} does not fit the network its model card describes: {'; '.join(problems)}. "
                         "Check that the card's 'network', 'inputs' and 'labels' are those the model was trained with.")
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ModelError(f"{source} does not fit the network its model card describes ({error}).") from None
    return network
