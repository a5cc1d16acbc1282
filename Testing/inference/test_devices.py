"""Devices: the choice of device, the batch size from free memory, and the out-of-memory fallback (smaller
batches, then the CPU), with torch's real out-of-memory exception."""

from __future__ import annotations

import pytest
import torch

from SpineMetSegLib.errors import SpineMetSegError
from SpineMetSegLib.inference import devices


def test_out_of_memory_halves_the_batch_then_succeeds():
    warnings, tried = [], []

    def run(device, batch):
        tried.append(batch)
        if batch > 2:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory: tried {batch} windows")
        return batch

    assert devices.run_with_memory_fallback(run, torch.device("cpu"), 16, warn=warnings.append) == 2
    assert tried == [16, 8, 4, 2]
    assert len(warnings) == 3


def test_out_of_memory_on_the_gpu_falls_back_to_the_cpu():
    warnings, devices_tried = [], []

    def run(device, batch):
        devices_tried.append(device.type)
        if device.type != "cpu":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return device.type

    assert devices.run_with_memory_fallback(run, torch.device("cuda"), 4, warn=warnings.append) == "cpu"
    assert devices_tried == ["cuda", "cuda", "cuda", "cpu"]
    assert "continuing on the CPU" in warnings[-1]


def test_out_of_memory_on_the_cpu_with_one_window_is_a_clear_error():
    def run(device, batch):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9999999 bytes")

    with pytest.raises(SpineMetSegError, match="ran out of memory"):
        devices.run_with_memory_fallback(run, torch.device("cpu"), 1, warn=lambda message: None)


def test_other_runtime_errors_are_not_taken_for_out_of_memory():
    def run(device, batch):
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        devices.run_with_memory_fallback(run, torch.device("cpu"), 4, warn=lambda message: None)


def test_device_auto_on_a_machine_without_gpu_is_the_cpu_and_a_missing_gpu_warns():
    warnings = []
    if torch.cuda.is_available() or devices.mps_available():
        pytest.skip("this machine has a GPU")
    assert devices.resolve_device("auto").type == "cpu"
    assert devices.resolve_device("cuda", warn=warnings.append).type == "cpu"
    assert "no CUDA GPU" in warnings[0]
    with pytest.raises(SpineMetSegError, match="Unknown device"):
        devices.resolve_device("tpu")


def test_batch_size_follows_free_memory():
    cpu = torch.device("cpu")
    assert devices.choose_batch_size(cpu, 100e6, free_bytes=int(250e6)) == 1
    assert devices.choose_batch_size(cpu, 100e6, free_bytes=int(100e9)) == devices.MAX_BATCH["cpu"]
    assert devices.choose_batch_size(torch.device("cuda"), 100e6, free_bytes=int(1e9)) == 5
    assert devices.system_available_memory() > 0
