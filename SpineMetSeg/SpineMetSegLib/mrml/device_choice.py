"""The device choice of the panel (automatic, GPU, CPU) and what this computer has.

Usage::

    from SpineMetSegLib.mrml.device_choice import DEVICE_CHOICES, describe_hardware

    for key, text in DEVICE_CHOICES: ...            # "auto" / "cuda" / "cpu", passed to --device
    describe_hardware()                              # "Found: NVIDIA RTX A4000 (16.0 GB)." or "No GPU found: ..."
    needs_saved_device(parameter_node)               # True: apply the device saved in Slicer's settings
    job = start_hardware_probe()                     # describe_hardware() in a child process (a ChildJob)

Importing torch takes seconds (and locks its libraries, which a later PyTorch upgrade must replace), so the
panel never imports it: ``start_hardware_probe`` runs ``describe_hardware`` in a child process, which prints it.

The child process resolves the choice (``inference.devices.resolve_device``): a GPU that was chosen but is
missing gives a warning and the CPU, never a failed run.
"""

from __future__ import annotations

from typing import Callable, Optional

from ..device_names import PANEL_DEVICE_CHOICES

DEVICE_CHOICES = PANEL_DEVICE_CHOICES
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


def start_hardware_probe(runner_factory: Optional[Callable[[], object]] = None):
    """Start ``python -m SpineMetSegLib.mrml.device_choice`` (prints ``describe_hardware()``); a ChildJob whose
    last log line is the sentence once it ended with code 0."""
    from .child_job import ChildJob
    from .process_runner import SubprocessRunner, python_executable

    runner = runner_factory() if runner_factory is not None else SubprocessRunner(command=[python_executable()])
    job = ChildJob(runner, what="The GPU check", progress_parser=lambda line: None)
    job.start(["-m", __name__])
    return job


def probe_result(job) -> str:
    """The sentence a finished probe printed, or why there is none."""
    if job.poll() == 0 and job.log:
        return job.log[-1]
    return "Could not check for a GPU: " + job.failure_message(job.poll() if job.poll() is not None else -1)


if __name__ == "__main__":
    print(describe_hardware())
