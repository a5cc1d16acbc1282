"""The compute devices a user can choose (``--device`` and the panel), without importing torch.

Usage::

    from SpineMetSegLib.device_names import DEVICE_CHOICES, DEVICE_HELP, PANEL_DEVICE_CHOICES
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    for key, text in PANEL_DEVICE_CHOICES: ...       # the panel's list: automatic, GPU, CPU

``inference.devices.resolve_device`` turns a choice into a torch device (a missing GPU falls back to the CPU with a
warning). The panel must not import torch (seconds, and it locks its libraries), hence this module of names only.
"""

from __future__ import annotations

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
DEVICE_LABELS = {
    "auto": "Automatic (GPU when there is one)",
    "cuda": "GPU (CUDA)",
    "cpu": "CPU",
    "mps": "GPU (Apple MPS)",
}
DEVICE_HELP = "auto (CUDA, then MPS, then CPU), cpu, cuda or mps"
# The panel offers these, in this order (MPS is reached through "auto" on a Mac).
PANEL_DEVICE_CHOICES = tuple((key, DEVICE_LABELS[key]) for key in ("auto", "cuda", "cpu"))
