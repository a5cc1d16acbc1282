"""Where inference runs: device choice, CPU threads, free memory, batch size, and the out-of-memory fallback.

Usage::

    from SpineMetSegLib.inference import devices
    device = devices.resolve_device("auto")              # CUDA, then Apple MPS, then CPU
    devices.set_cpu_threads(4)
    batch = devices.choose_batch_size(device, bytes_per_item=200e6)
    result = devices.run_with_memory_fallback(lambda dev, b: infer(dev, b), device, batch, warn=print)

``run_with_memory_fallback`` is the one place that handles a GPU running out of memory: it halves the batch
until one item fits, then moves the work to the CPU, warning each time, so a full GPU never crashes a run.
"""

from __future__ import annotations

import logging
import os
from typing import Callable, Optional, TypeVar

import torch

from ..device_names import DEVICE_CHOICES
from ..errors import SpineMetSegError

# Share of the free memory a batch may use: the rest is for the input, the blended output and other programs.
MEMORY_SHARE = 0.5
# More items a batch do not make the CPU faster (measured: the same time per 256x256 window at 1, 4 and 8)
# but cost memory; GPUs keep gaining up to a few dozen.
MAX_BATCH = {"cpu": 4, "cuda": 32, "mps": 16}
# Used when the free memory cannot be read.
FALLBACK_FREE_BYTES = 2 * 1024**3

T = TypeVar("T")
log = logging.getLogger(__name__)


def warn_to_stderr(message: str) -> None:
    """The default warning sink: a ``logging`` warning, which the command line prints as one ``warning:`` line on
    standard error."""
    log.warning(message)


def mps_available() -> bool:
    """True where Apple's Metal (MPS) backend can run."""
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str = "auto", *, warn: Callable[[str], None] = warn_to_stderr) -> torch.device:
    """The torch device for ``name`` (``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``).

    ``auto`` picks CUDA, then MPS, then the CPU. A GPU that was asked for but is not there gives a warning and
    the CPU, so a run still ends with a result.
    """
    name = (name or "auto").lower()
    kind = name.split(":")[0]
    if kind not in DEVICE_CHOICES:
        raise SpineMetSegError(f"Unknown device {name!r}: choose one of {', '.join(DEVICE_CHOICES)}.")
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps_available() else torch.device("cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        warn("no CUDA GPU is available (or this torch has no CUDA support): running on the CPU, which is slower")
        return torch.device("cpu")
    if kind == "mps" and not mps_available():
        warn("Apple MPS is not available on this computer: running on the CPU, which is slower")
        return torch.device("cpu")
    return torch.device(name)


def native_cpu_bfloat16() -> bool:
    """True where the CPU computes bfloat16 natively (AVX512-BF16 or AMX); elsewhere bfloat16 is emulated, slow."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, check, lambda: False)()) for check in checks)


def autocast_dtype(device: torch.device) -> Optional[torch.dtype]:
    """The reduced precision the network runs in on ``device``, or None for float32.

    CUDA: bfloat16 where the GPU has it, else float16. CPU: bfloat16 only where the CPU has it natively (about
    twice as fast there). MPS: float32.
    """
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and native_cpu_bfloat16():
        return torch.bfloat16
    return None


def set_cpu_threads(threads: Optional[int]) -> None:
    """Let torch use ``threads`` CPU threads (None keeps torch's default, one per core)."""
    if threads is None:
        return
    if threads < 1:
        raise SpineMetSegError(f"The number of CPU threads must be at least 1, got {threads}.")
    torch.set_num_threads(int(threads))


def system_available_memory() -> int:
    """Bytes of memory the system can give without swapping (``MemAvailable``), or an estimate of it."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return FALLBACK_FREE_BYTES


def available_memory(device: torch.device) -> int:
    """Free bytes on ``device``: GPU memory for CUDA, system memory for the CPU and MPS (shared memory)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "mps":
        recommended = getattr(torch.mps, "recommended_max_memory", None)
        allocated = getattr(torch.mps, "driver_allocated_memory", None)
        if recommended is not None and allocated is not None:
            return max(0, int(recommended()) - int(allocated()))
    return system_available_memory()


def choose_batch_size(device: torch.device, bytes_per_item: float, *, free_bytes: Optional[int] = None) -> int:
    """How many windows to run at once: what ``MEMORY_SHARE`` of the free memory holds, 1 to ``MAX_BATCH``."""
    if free_bytes is None:
        free_bytes = available_memory(device)
    fits = int(free_bytes * MEMORY_SHARE // max(1.0, bytes_per_item))
    return max(1, min(MAX_BATCH.get(device.type, 1), fits))


def is_out_of_memory(error: BaseException) -> bool:
    """True for a device running out of memory: CUDA's ``OutOfMemoryError`` or the MPS/CPU allocator's error."""
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def release_device_memory(device: torch.device) -> None:
    """Give cached GPU memory back so a retry (or another program) can use it."""
    if device.type == "cuda" and torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif device.type == "mps" and mps_available():
        torch.mps.empty_cache()


def run_with_memory_fallback(
    run: Callable[[torch.device, int], T],
    device: torch.device,
    batch_size: int,
    *,
    warn: Callable[[str], None] = warn_to_stderr,
) -> T:
    """Call ``run(device, batch_size)``; on out-of-memory halve the batch, then fall back to the CPU.

    Each retry prints a warning. Out of memory on the CPU with one item a batch raises ``SpineMetSegError``
    (nothing smaller to try).
    """
    while True:
        try:
            return run(device, batch_size)
        except RuntimeError as error:  # torch.cuda.OutOfMemoryError is a RuntimeError
            if not is_out_of_memory(error):
                raise
        # Outside the except block: the failed attempt's tensors (held by the traceback) are free now.
        release_device_memory(device)
        if batch_size > 1:
            batch_size = max(1, batch_size // 2)
            warn(f"out of memory on {device.type}: retrying with {batch_size} window(s) at a time")
        elif device.type != "cpu":
            device = torch.device("cpu")
            batch_size = MAX_BATCH["cpu"]
            warn("out of memory on the GPU even one window at a time: continuing on the CPU, which is slower")
        else:
            raise SpineMetSegError(
                "The computer ran out of memory during inference, even one window at a time. Close other "
                "programs or crop the volume to the spine and try again."
            )
