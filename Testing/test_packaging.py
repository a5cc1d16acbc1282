"""Packaging: the Slicer extension files agree with each other and list everything the module installs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULE = ROOT / "SpineMetSeg"


def installed_files() -> list:
    """Files under SpineMetSegLib and Resources, as paths relative to the module folder."""
    files = []
    for folder in ("SpineMetSegLib", "Resources"):
        for path in sorted((MODULE / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files.append(path.relative_to(MODULE).as_posix())
    return files


def cmake_listed_files() -> set:
    text = (MODULE / "CMakeLists.txt").read_text(encoding="utf-8")
    text = text.replace("${MODULE_NAME}", "SpineMetSeg")
    return set(re.findall(r"^\s+((?:SpineMetSegLib|Resources)/\S+|SpineMetSeg\.py)\s*$", text, re.MULTILINE))


def test_module_cmakelists_lists_every_file_the_module_installs():
    missing = [f for f in installed_files() if f not in cmake_listed_files()]
    assert missing == [], f"not listed in SpineMetSeg/CMakeLists.txt, Slicer would not install: {missing}"


def test_module_cmakelists_lists_only_files_that_exist():
    absent = sorted(f for f in cmake_listed_files() if not (MODULE / f).is_file())
    assert absent == []


def test_module_cmakelists_builds_a_scripted_module_with_the_module_file():
    text = (MODULE / "CMakeLists.txt").read_text(encoding="utf-8")
    assert "slicerMacroBuildScriptedModule" in text
    assert "SpineMetSeg.py" in cmake_listed_files() or "${MODULE_NAME}.py" in text


def test_extension_cmakelists_has_the_metadata_the_extensions_index_needs():
    text = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    for key in ("EXTENSION_HOMEPAGE", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION", "EXTENSION_ICONURL",
                "EXTENSION_SCREENSHOTURLS"):
        assert re.search(rf'set\({key} "[^"]+"\)', text), key
    assert 'set(EXTENSION_CATEGORY "Segmentation")' in text
    assert 'set(EXTENSION_DEPENDS "PyTorch")' in text
    assert "find_package(Slicer REQUIRED)" in text
    assert "add_subdirectory(SpineMetSeg)" in text
    assert "Slicer_EXTENSION_CPACK" in text


def test_s4ext_and_catalog_entry_agree_with_cmakelists():
    s4ext = dict(
        line.split(" ", 1) for line in (ROOT / "SpineMetSeg.s4ext").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#") and " " in line
    )
    entry = json.loads((ROOT / "SpineMetSeg.json").read_text(encoding="utf-8"))
    assert s4ext["category"] == entry["category"] == "Segmentation"
    assert s4ext["depends"].split() == entry["build_dependencies"] == ["PyTorch"]
    assert s4ext["scmurl"] == entry["scm_url"]


def test_extension_icon_is_a_128_pixel_square_png():
    from PIL import Image

    for icon in (ROOT / "Resources" / "SpineMetSeg.png", MODULE / "Resources" / "Icons" / "SpineMetSeg.png"):
        with Image.open(icon) as image:
            assert image.format == "PNG"
            assert image.size == (128, 128)


@pytest.mark.slow
def test_core_imports_without_slicer_or_qt():
    # slicer and qt are made unimportable: the core must never need them.
    code = (
        "import sys, pkgutil, importlib\n"
        "sys.modules['slicer'] = None; sys.modules['qt'] = None; sys.modules['ctk'] = None\n"
        "import SpineMetSegLib\n"
        "for info in pkgutil.walk_packages(SpineMetSegLib.__path__, 'SpineMetSegLib.'):\n"
        "    if '.mrml' not in info.name and not info.name.endswith(('.widget', '.plan_widget', '__main__')):\n"
        "        importlib.import_module(info.name)\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_command_line_help_lists_every_subcommand():
    result = subprocess.run([sys.executable, "-m", "SpineMetSegLib.cli", "--help"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    for command in ("demo", "segment", "evaluate", "lesions", "plan", "phantom", "models", "train"):
        assert re.search(rf"^\s+{command}\s", result.stdout, re.MULTILINE), command


def test_readme_test_command_is_the_one_ci_runs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    command = "python -m pytest Testing"
    assert command in readme
    assert command in ci


# Files of Slicer's own source that the README cites (its "Slicer versions" table), not files of this project.
SLICER_SOURCE_CITED = {"Base/Python/slicer/util.py", "Modules/Scripted/SampleData/SampleData.py",
                       "ScriptedLoadableModule.py", "parameterNodeWrapper/wrapper.py"}


def readme_named_files() -> set:
    """Source, data and script files the README names in backticks: any such path with a folder, and bare ``.py``
    names (image names like ``imagesTr/CASE_0000.nii.gz`` are layouts the user writes, not project files)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    names = set(re.findall(r"`((?:[\w.-]+/)+[\w.-]+\.(?:py|json|toml|ui|txt|md|s4ext|safetensors)|[\w.-]+\.py)`",
                           text))
    return names - SLICER_SOURCE_CITED


def test_every_file_the_readme_names_exists():
    # A reader follows these paths (a source file, a benchmark script, a test file, the device table); a moved or
    # renamed file must take the README with it. Paths are relative to the project, the module folder, the
    # library or Testing/, as the README writes them.
    roots = (ROOT, MODULE, MODULE / "SpineMetSegLib", ROOT / "Testing")
    names = readme_named_files()
    assert len(names) >= 20  # the pattern still finds the README's paths
    missing = sorted(name for name in names if not any((root / name).is_file() for root in roots))
    assert missing == [], f"the README names files that do not exist: {missing}"


def test_every_test_file_in_the_readmes_testing_table_holds_tests():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    testing = readme.split("\n## Testing\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1] for line in testing.splitlines() if line.startswith("| `")]
    files = [name for row in rows for name in re.findall(r"`((?:\w+/)*test_\w+\.py)`", row)]
    assert len(files) >= 40

    def holds_tests(name: str) -> bool:
        path = ROOT / "Testing" / name
        return path.is_file() and re.search(r"^def test_", path.read_text(encoding="utf-8"), re.MULTILINE) is not None

    assert [name for name in files if not holds_tests(name)] == [], "the README's testing table names these"


def test_pyproject_lists_every_package_of_the_library():
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"])
    found = {
        ".".join(path.parent.relative_to(MODULE).parts)
        for path in (MODULE / "SpineMetSegLib").rglob("__init__.py")
    }
    # The Qt panel is Slicer's only (DESIGN.md): every other package is in the wheel, the panel is not.
    panel = {name for name in found if name.startswith("SpineMetSegLib.panel")}
    assert panel == {"SpineMetSegLib.panel"} and not panel & listed
    missing = found - panel - listed
    assert not missing, f"packages missing from pyproject.toml, a wheel would lack them: {sorted(missing)}"


@pytest.mark.slow
def test_a_wheel_install_finds_the_catalog_and_segments_with_the_embedded_model(tmp_path):
    # A non-editable install: only what the wheel carries, imported ahead of the editable checkout. The wheel is
    # built from a copy, so the build leaves nothing in the checkout.
    import shutil

    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", "build", "out", "*.egg-info", "__pycache__",
                                                                ".pytest_cache", ".ruff_cache", ".venv"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-q", "-w",
                    str(tmp_path / "wheel"), str(source)], check=True, cwd=tmp_path)
    (wheel,) = (tmp_path / "wheel").glob("*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(tmp_path / "site"),
                    str(wheel)], check=True)
    script = (
        "import SpineMetSegLib, json\n"
        "from pathlib import Path\n"
        "from SpineMetSegLib import resources\n"
        "from SpineMetSegLib.models import catalog, loader\n"
        "from SpineMetSegLib.mrml import dependencies\n"
        "card = catalog.load_catalog().get(None)\n"
        "model = loader.load_network(card)\n"
        "print(json.dumps({'lib': SpineMetSegLib.__file__, 'resources': str(resources.resources_dir()),\n"
        "                  'card': card.name, 'parameters': sum(p.numel() for p in model.parameters()),\n"
        "                  'requirements': dependencies.REQUIREMENTS_FILE.is_file(),\n"
        "                  'panel': (Path(SpineMetSegLib.__file__).parent / 'panel').exists()}))\n"
    )
    env = {**__import__("os").environ, "PYTHONPATH": str(tmp_path / "site"), "SPINEMETSEG_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    site = str(tmp_path / "site")
    assert found["lib"].startswith(site) and found["resources"].startswith(site)
    assert found["card"] == "spinemetseg-default" and found["parameters"] > 100_000
    assert found["requirements"]
    assert not found["panel"]  # the Qt panel stays out of the pip package
