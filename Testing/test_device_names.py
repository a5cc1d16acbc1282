"""The device names a user can choose (``--device`` and the panel's list), without torch."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from SpineMetSegLib.cli import main
from SpineMetSegLib.device_names import DEVICE_CHOICES, DEVICE_HELP, DEVICE_LABELS, PANEL_DEVICE_CHOICES
from SpineMetSegLib.errors import SpineMetSegError
from SpineMetSegLib.inference import devices


def test_every_choice_is_named_in_the_help_and_has_a_label():
    for choice in DEVICE_CHOICES:
        assert choice in DEVICE_HELP and DEVICE_LABELS[choice]
    assert set(DEVICE_LABELS) == set(DEVICE_CHOICES)


def test_the_panel_offers_automatic_first_then_the_gpu_and_the_cpu_all_of_them_valid_choices():
    assert [key for key, _ in PANEL_DEVICE_CHOICES] == ["auto", "cuda", "cpu"]
    assert all(key in DEVICE_CHOICES and text == DEVICE_LABELS[key] for key, text in PANEL_DEVICE_CHOICES)


@pytest.mark.parametrize("choice", DEVICE_CHOICES)
def test_every_choice_resolves_to_a_device_that_runs_here(choice):
    warnings = []
    device = devices.resolve_device(choice, warn=warnings.append)
    assert torch.zeros(2, device=device).sum().item() == 0.0
    if device.type == "cpu" and choice in ("cuda", "mps"):
        assert len(warnings) == 1 and "running on the CPU" in warnings[0]  # a missing GPU is said, not hidden


def test_a_name_that_is_not_a_choice_is_refused_listing_the_choices():
    with pytest.raises(SpineMetSegError, match="choose one of auto, cpu, cuda, mps"):
        devices.resolve_device("tpu")


def test_the_segment_help_shows_the_choices(capsys):
    with pytest.raises(SystemExit):
        main(["segment", "--help"])
    assert " ".join(capsys.readouterr().out.split()).count(DEVICE_HELP) == 1


def test_the_names_load_without_torch():
    # The panel reads them at start-up: importing torch there would take seconds and lock its libraries.
    code = "import sys, SpineMetSegLib.device_names; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
