"""The tests mirror the library's layout, so a reader finds a module's tests where the layout says.

``SpineMetSegLib/<package>/<module>.py`` is tested in ``Testing/<package>/test_<module>.py`` (subpackages nest:
``analysis/ablation/``, ``data/phantom/``); a top-level module ``SpineMetSegLib/<module>.py`` in
``Testing/test_<module>.py``; a further file of one module adds what it covers (``test_imageio_dicom_series.py``).
A test file that follows one behaviour across several modules of its package keeps a
name of its own, listed in ``CROSS_MODULE`` with what it covers. Checked here: every package has its folder with
tests, every top-level module its file, no folder or file outside the scheme, and every test file in a package's
folder imports (or, for the Qt panel, reads) that package.
"""

from __future__ import annotations

import re
from pathlib import Path

TESTING = Path(__file__).resolve().parent
LIBRARY = TESTING.parent / "SpineMetSeg" / "SpineMetSegLib"

# Test files named after what they follow through several modules of their package, rather than after one module.
CROSS_MODULE = {
    "analysis/ablation/test_ablation.py": "zones, anatomy, evaluation, the proposal and the device table together",
    "cli/test_output_safety.py": "every command's outputs: verified writes, full disks, outputs that are inputs",
    "data/phantom/test_phantom.py": "the phantom from its tissues and lesions to the files it writes",
    "data/test_real_anatomy.py": "real anatomy: importer, split, lesion drawing, contrasts, the marginal loss",
    "inference/test_huge_volume.py": "a volume too large to copy, from reading to the label map",
    "mrml/test_logic.py": "the MRML logic on a real scene: segmentation, lesion table, metrics, models, devices",
    "models/test_default_model_real.py": "the shipped model on real scans",
    "panel/test_module_files.py": "the panel's .ui and Qt files, checked statically (no Slicer here)",
    "training/test_training.py": "the training loop, resume, distributed runs, data streams, validation",
}
# Test files of the whole project rather than of one module.
PROJECT_FILES = {"test_layout.py", "test_packaging.py"}


def packages() -> list:
    """Each package of the library as its path relative to the library (``analysis/ablation``)."""
    return sorted(str(init.parent.relative_to(LIBRARY)) for init in LIBRARY.rglob("__init__.py")
                  if init.parent != LIBRARY)


def modules(package: str) -> set:
    return {path.stem for path in (LIBRARY / package).glob("*.py")} - {"__init__", "__main__"}


def files_of(folder: Path) -> list:
    return sorted(folder.glob("test_*.py"))


def named_after_one_of(path: Path, names: set) -> bool:
    """``test_<module>.py``, or ``test_<module>_<aspect>.py`` for a further file of one module."""
    stem = path.stem[len("test_"):]
    return any(stem == name or stem.startswith(f"{name}_") for name in names)


def test_every_package_has_a_test_folder_with_tests():
    missing = [package for package in packages() if not files_of(TESTING / package)]
    assert len(packages()) >= 12  # the layout is still found
    assert missing == [], f"packages without tests in Testing/<package>/: {missing}"


def test_every_top_level_module_has_a_test_file():
    top = sorted(path.stem for path in LIBRARY.glob("*.py") if path.stem != "__init__")
    assert "device_names" in top
    assert [name for name in top if not (TESTING / f"test_{name}.py").is_file()] == []


def test_every_test_folder_mirrors_a_package():
    folders = sorted(str(path.relative_to(TESTING)) for path in TESTING.rglob("*")
                     if path.is_dir() and "__pycache__" not in path.parts and not path.name.startswith("."))
    assert [folder for folder in folders if folder not in packages()] == []


def test_every_test_file_is_named_after_a_module_of_its_package_or_says_what_it_covers():
    strays = []
    for package in packages():
        names = modules(package)
        for path in files_of(TESTING / package):
            relative = str(path.relative_to(TESTING))
            if not named_after_one_of(path, names) and relative not in CROSS_MODULE:
                strays.append(relative)
    top = {path.stem for path in LIBRARY.glob("*.py")}
    strays += [path.name for path in files_of(TESTING)
               if not named_after_one_of(path, top) and path.name not in PROJECT_FILES]
    assert strays == [], "name them test_<module>.py after the module they test, or list them in CROSS_MODULE"
    assert [name for name in CROSS_MODULE if not (TESTING / name).is_file()] == []  # no stale entries


def test_every_test_file_in_a_package_folder_tests_that_package():
    wrong = []
    for package in packages():
        parts = package.split("/")
        parent = ".".join(["SpineMetSegLib"] + parts[:-1])
        uses = re.compile(
            rf"SpineMetSegLib\.{re.escape('.'.join(parts))}\b"  # from SpineMetSegLib.images.regrid import ...
            rf"|from {re.escape(parent)} import [^\n]*\b{parts[-1]}\b"  # from SpineMetSegLib import inference
            rf"|\"SpineMetSegLib\" / {' / '.join(repr(part).replace(chr(39), chr(34)) for part in parts)}"  # a path
        )
        wrong += [str(path.relative_to(TESTING)) for path in files_of(TESTING / package)
                  if not uses.search(path.read_text(encoding="utf-8"))]
    assert wrong == [], "these test files do not use the package whose folder they are in"
