"""Installing what the module needs in Slicer: pip's own answer, and a PyTorch that is too old.

pip runs for real in a child process, pointed at a package index on 127.0.0.1 where nothing listens (no network
is used); the PyTorch extension itself (SlicerPyTorch's PyTorchUtils) is not here, so what the panel tells the
user and asks it for is checked instead.
"""

from __future__ import annotations

import os
import socket
import sys
import time

import pytest

from SpineMetSegLib.errors import SpineMetSegError
from SpineMetSegLib.mrml import dependencies
from SpineMetSegLib.mrml.package_install import PackageInstaller
from SpineMetSegLib.mrml.process_runner import SubprocessRunner


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens there once the socket is closed


def offline_pip():
    """pip with only an unreachable index: what a computer without internet (or behind a wrong proxy) gets."""
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": "", "PIP_RETRIES": "1",
           "PIP_TIMEOUT": "2", "PIP_NO_INPUT": "1", "PIP_INDEX_URL": f"http://127.0.0.1:{closed_port()}/simple"}
    return SubprocessRunner(command=[sys.executable, "-m", "pip"], env=env)


def finish(job, timeout_s: float = 120.0):
    deadline = time.monotonic() + timeout_s
    while job.poll() is None:
        assert time.monotonic() < deadline, "pip did not finish"
        time.sleep(0.05)
    return job


def test_pip_failing_offline_is_reported_in_pips_own_words():
    log = []
    job = finish(PackageInstaller(offline_pip).start(["spinemetseg-absent-package>=1.0"], on_log=log.append))

    with pytest.raises(SpineMetSegError) as failure:
        job.check()

    message = str(failure.value)
    assert message.startswith("pip could not install spinemetseg-absent-package>=1.0")
    assert "No matching distribution found for spinemetseg-absent-package>=1.0" in message
    assert "Connection refused" in message  # pip's retry warning says why
    assert "Traceback" not in message
    assert any("Looking in indexes" in line for line in log)  # pip's output reached the panel's log


def test_pip_with_nothing_to_do_succeeds():
    job = finish(PackageInstaller(offline_pip).start(["pip"]))

    job.check()
    assert any("Requirement already satisfied: pip" in line for line in job.log)


def test_too_old_torch_counts_as_missing_and_the_user_is_told_which_version(tmp_path, monkeypatch):
    monkeypatch.setattr(dependencies, "installed_version", lambda name: {"torch": "2.1.2+cu118"}.get(name, "99"))
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("monai>=1.3\n")

    missing = dependencies.missing_requirements(requirements)

    assert [(r.name, r.installed) for r in missing] == [("torch", "2.1.2+cu118")]
    assert dependencies.torch_missing(missing)
    assert dependencies.pip_arguments(missing) == []  # torch comes from the PyTorch extension, not pip
    prompt = dependencies.torch_install_prompt(missing)
    assert "PyTorch >=2.2" in prompt and "2.1.2+cu118 is installed" in prompt and "Restart Slicer" in prompt


def test_absent_torch_is_offered_with_the_minimum_version():
    missing = [dependencies.Requirement("torch", "2.2", None)]
    assert "needs PyTorch >=2.2" in dependencies.torch_install_prompt(missing)
    assert dependencies.torch_install_prompt([]) == ""


def test_a_torch_still_too_old_after_the_install_is_a_clear_error():
    assert dependencies.torch_still_too_old("2.5.1+cu121") == ""
    assert dependencies.torch_still_too_old("2.2.0") == ""
    assert "2.0.1 is installed" in dependencies.torch_still_too_old("2.0.1")
    assert "still not installed" in dependencies.torch_still_too_old(None)
