"""The device choice of the panel (automatic, GPU, CPU) and what this computer has.

Usage::

    from SpineMetSegLib.mrml.device_choice import DEVICE_CHOICES, describe_hardware

    for key, text in DEVICE_CHOICES: ...            # "auto" / "cuda" / "cpu", passed to --device
    describe_hardware()                              # "Found: NVIDIA RTX A4000 (16.0 GB)." or "No GPU found: ..."
    needs_saved_device(parameter_node)               # True: apply the device saved in Slicer's settings

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
# The parameter node's parameter holding the choice (the parameterNodeWrapper field name).
DEVICE_PARAMETER = "device"


def needs_saved_device(parameter_node) -> bool:
    """True when the panel's vtkMRMLScriptedModuleNode holds no device choice: a new node, or the singleton node
    after Close Scene. Close Scene keeps singleton nodes but resets them (vtkMRMLScene::Clear calls ResetNodes,
    Libs/MRML/Core/vtkMRMLScene.cxx v5.8.0 lines 322-335 and 394-408, v5.10.0 lines 348 and 419-430), which
    drops every parameter, so "the node is new" is the wrong test: the saved setting must come back then too."""
    return not parameter_node.HasParameter(DEVICE_PARAMETER)


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
