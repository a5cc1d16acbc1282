"""The device choice of the panel (automatic, GPU, CPU) and what this computer has.

Usage::

    from SpineMetSegLib.mrml.device_choice import DEVICE_CHOICES, describe_hardware

    for key, text in DEVICE_CHOICES: ...            # "auto" / "cuda" / "cpu", passed to --device
    describe_hardware()                              # "Found: NVIDIA RTX A4000 (16.0 GB)." or "No GPU found: ..."

The child process resolves the choice (``SpineMetSegLib.devices.resolve_device``): a GPU that was chosen but is
missing gives a warning and the CPU, never a failed run.
"""

from __future__ import annotations

DEVICE_CHOICES = (
    ("auto", "Automatic (GPU when there is one)"),
    ("cuda", "GPU (CUDA)"),
    ("cpu", "CPU"),
)
GIGABYTE = 1024**3


def describe_hardware() -> str:
    """One sentence on the GPUs torch can use here (torch imported on demand: it is slow to import)."""
    try:
        import torch
    except ImportError:
        return "PyTorch is not installed yet, so no GPU can be used (install the dependencies first)."
    if torch.cuda.is_available():
        names = []
        for index in range(torch.cuda.device_count()):
            properties = torch.cuda.get_device_properties(index)
            names.append(f"{properties.name} ({properties.total_memory / GIGABYTE:.1f} GB)")
        return "Found: " + ", ".join(names) + "."
    backend = getattr(torch.backends, "mps", None)
    if backend is not None and backend.is_available():
        return "Found: Apple GPU (Metal)."
    build = "this PyTorch has no CUDA support" if torch.version.cuda is None else "no CUDA GPU is visible"
    return f"No GPU found ({build}): segmentation runs on the CPU, which takes longer."
