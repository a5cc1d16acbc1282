"""The Slicer module's files that need Slicer's GUI to run: checked statically, since no Slicer GUI runs here.

The panel (``Resources/UI/SpineMetSeg.ui``) must use only widget classes Slicer provides, give every MRML widget
the scene, and have every widget the Python code reaches through ``self.ui.<name>``; the parameter node's
``SlicerParameterName`` bindings must name real parameters; the module files must compile for Slicer's
Python (3.9).
"""

from __future__ import annotations

import ast
import py_compile
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

MODULE = Path(__file__).resolve().parents[2] / "SpineMetSeg"
UI_FILE = MODULE / "Resources" / "UI" / "SpineMetSeg.ui"
QT_FILES = (MODULE / "SpineMetSeg.py", MODULE / "SpineMetSegLib" / "panel" / "widget.py",
            MODULE / "SpineMetSegLib" / "panel" / "plan_widget.py")
SLICER_PYTHON = (3, 9)

# Widget classes a Slicer 5.x application can instantiate from a .ui file.
QT_CLASSES = {
    "QWidget", "QFrame", "QLabel", "QPushButton", "QToolButton", "QCheckBox", "QRadioButton", "QComboBox",
    "QLineEdit", "QPlainTextEdit", "QTextEdit", "QTextBrowser", "QProgressBar", "QSpinBox", "QDoubleSpinBox",
    "QSlider", "QGroupBox", "QTabWidget", "QStackedWidget", "QScrollArea", "QSplitter", "QTableWidget",
    "QTableView", "QTreeView", "QListWidget", "QDialogButtonBox",
}
CTK_CLASSES = {
    "ctkCollapsibleButton", "ctkCollapsibleGroupBox", "ctkPathLineEdit", "ctkDirectoryButton", "ctkSliderWidget",
    "ctkRangeWidget", "ctkDoubleSpinBox", "ctkCheckBox", "ctkComboBox", "ctkMenuButton", "ctkExpandButton",
    "ctkFittedTextBrowser",
}
QMRML_CLASSES = {
    "qMRMLWidget", "qMRMLNodeComboBox", "qMRMLSegmentSelectorWidget", "qMRMLSegmentEditorWidget",
    "qMRMLTableView", "qMRMLSegmentsTableView", "qMRMLSubjectHierarchyTreeView", "qMRMLCheckableNodeComboBox",
    "qMRMLSliderWidget", "qMRMLSpinBox", "qMRMLCollapsibleButton",
}
SLICER_WIDGET_CLASSES = QT_CLASSES | CTK_CLASSES | QMRML_CLASSES
LAYOUT_CLASSES = {"QVBoxLayout", "QHBoxLayout", "QFormLayout", "QGridLayout"}


@pytest.fixture(scope="module")
def ui_tree() -> ET.Element:
    return ET.parse(UI_FILE).getroot()


def widgets(ui_tree):
    return {w.get("name"): w.get("class") for w in ui_tree.iter("widget")}


def used_ui_names(path: Path) -> set:
    """Every ``self.ui.<name>`` (or ``<panel>.ui.<name>``) the Python file uses."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) and node.value.attr == "ui":
            names.add(node.attr)
    return names


def parameter_names() -> set:
    """The fields of the parameter node class in widget.py."""
    tree = ast.parse((MODULE / "SpineMetSegLib" / "panel" / "widget.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "SpineMetSegParameterNode":
            return {item.target.id for item in node.body if isinstance(item, ast.AnnAssign)}
    raise AssertionError("SpineMetSegParameterNode not found in widget.py")


def test_every_widget_class_in_the_panel_is_one_slicer_provides(ui_tree):
    unknown = {name: cls for name, cls in widgets(ui_tree).items() if cls not in SLICER_WIDGET_CLASSES}
    assert unknown == {}
    layouts = {layout.get("class") for layout in ui_tree.iter("layout")}
    assert layouts <= LAYOUT_CLASSES


def test_custom_widget_declarations_are_slicer_classes(ui_tree):
    declared = {c.findtext("class") for c in ui_tree.iter("customwidget")}
    used_custom = {cls for cls in widgets(ui_tree).values() if cls.startswith(("ctk", "qMRML"))}
    assert declared <= CTK_CLASSES | QMRML_CLASSES
    assert used_custom <= declared, "a CTK/qMRML widget needs a <customwidget> entry to load in Designer"


def test_the_panel_has_the_sections_in_the_order_of_the_workflow(ui_tree):
    sections = [w.findtext("property/string") for w in ui_tree.iter("widget")
                if w.get("class") == "ctkCollapsibleButton"]
    assert sections == ["Inputs", "Segment", "Lesions", "Edit", "Evaluate"]


def test_every_mrml_widget_receives_the_scene(ui_tree):
    root_name = ui_tree.find("widget").get("name")
    connected = {c.findtext("receiver") for c in ui_tree.iter("connection")
                 if c.findtext("sender") == root_name and c.findtext("signal") == "mrmlSceneChanged(vtkMRMLScene*)"
                 and c.findtext("slot") == "setMRMLScene(vtkMRMLScene*)"}
    mrml_widgets = {name for name, cls in widgets(ui_tree).items() if cls.startswith("qMRML") and name != root_name}
    assert mrml_widgets == connected


@pytest.mark.parametrize("path", QT_FILES, ids=lambda p: p.name)
def test_every_widget_the_code_uses_exists_in_the_panel(ui_tree, path):
    missing = sorted(used_ui_names(path) - set(widgets(ui_tree)))
    assert missing == []


def test_the_widget_code_reaches_the_main_controls(ui_tree):
    used = used_ui_names(MODULE / "SpineMetSegLib" / "panel" / "widget.py")
    for name in ("segmentButton", "segmentProgressBar", "logTextEdit", "lesionTableView", "removeLesionButton",
                 "segmentEditorWidget", "computeMetricsButton", "metricsTableView", "downloadButton",
                 "cancelDownloadButton", "importModelButton", "deviceComboBox", "modelComboBox"):
        assert name in used, name


def test_parameter_bindings_name_parameters_of_the_parameter_node(ui_tree):
    bound = {prop.findtext("string") for prop in ui_tree.iter("property") if prop.get("name") == "SlicerParameterName"}
    assert bound, "no widget is bound to the parameter node"
    assert bound <= parameter_names()
    assert {"t1Volume", "t2Volume", "stirVolume", "outputSegmentation"} <= bound


@pytest.mark.parametrize("path", QT_FILES, ids=lambda p: p.name)
def test_module_files_compile_for_slicers_python(path, tmp_path):
    py_compile.compile(str(path), cfile=str(tmp_path / "compiled.pyc"), doraise=True)
    ast.parse(path.read_text(encoding="utf-8"), feature_version=SLICER_PYTHON)


def test_mrml_logic_files_compile_for_slicers_python_and_import_no_qt():
    paths = sorted((MODULE / "SpineMetSegLib" / "mrml").glob("*.py"))
    assert paths, "no MRML logic files found: has the mrml package moved?"
    for path in paths:
        source = path.read_text(encoding="utf-8")
        ast.parse(source, feature_version=SLICER_PYTHON)
        assert not re.search(r"^\s*(import|from)\s+(qt|ctk|PythonQt)\b", source, re.MULTILINE), path.name


def test_user_visible_strings_of_the_module_are_translatable():
    """Titles, help and messages go through ``_()`` (Slicer's translation), not bare string literals."""
    source = (MODULE / "SpineMetSeg.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    checked = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Attribute) and \
                node.targets[0].attr in ("title", "helpText", "acknowledgementText"):
            call = node.value.func.value if isinstance(node.value.func, ast.Attribute) else node.value
            assert isinstance(call, ast.Call) and getattr(call.func, "id", "") == "_", node.targets[0].attr
            checked.add(node.targets[0].attr)
    assert checked == {"title", "helpText", "acknowledgementText"}  # none of them slipped past the search


def test_the_module_cites_the_three_papers_and_links_the_guide():
    source = (MODULE / "SpineMetSeg.py").read_text(encoding="utf-8")
    for author in ("Hille", "Chen", "Wang"):
        assert author in source
    assert "#readme" in source
    assert 'title = _("Spine Metastasis Segmentation")' in source


@pytest.mark.slow
def test_what_slicer_imports_at_start_up_needs_none_of_the_packages_the_panel_installs():
    """Slicer lists the sample case when it starts, before the panel can install PyTorch, MONAI or SciPy: the
    modules it imports then must load without them (Slicer itself ships SimpleITK and NumPy)."""
    tree = ast.parse((MODULE / "SpineMetSeg.py").read_text(encoding="utf-8"))
    register = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "registerSampleData")
    imported = [n.module + "." + a.name for n in ast.walk(register) if isinstance(n, ast.ImportFrom) and n.module
                and n.module.startswith("SpineMetSegLib") for a in n.names]
    assert imported == ["SpineMetSegLib.mrml.sample_data"]
    code = (
        "import sys\n"
        "for name in ('torch', 'monai', 'scipy', 'matplotlib', 'safetensors'): sys.modules[name] = None\n"
        "from SpineMetSegLib.mrml import sample_data\n"
        "print(sample_data.SAMPLE_NAME, sample_data.SAMPLE_SEED)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["SpineMetSegPhantom", "4"]


def test_the_panel_connects_the_parameter_node_with_a_call_that_returns_a_tag_on_slicer_5_8():
    """``connectGui`` returns its disconnect tag only from Slicer 5.10 (parameterNodeWrapper/wrapper.py
    ``_connectGui``, v5.8.0 line 253 discards ``_connectParametersToGui``'s tag, v5.10.0 line 253 returns it):
    a 5.8 panel using it could never disconnect. ``connectParametersToGui`` returns the tag on both."""
    source = (MODULE / "SpineMetSegLib" / "panel" / "widget.py").read_text(encoding="utf-8")
    calls = {node.func.attr for node in ast.walk(ast.parse(source))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)}
    assert "connectGui" not in calls
    assert {"connectParametersToGui", "disconnectGui"} <= calls


def test_a_cancelled_job_ends_quietly_in_the_panel():
    """Every panel method that collects a job's outcome (``.result()`` / ``.check()``) handles ``CancelledError``
    itself: inside ``slicer.util.tryWithErrorDisplay`` a cancel would otherwise show "... failed" with a traceback
    (util.py ``tryWithErrorDisplay``, v5.8.0 lines 3306-3320, v5.10.0 lines 3395-3409, shows every exception)."""
    tree = ast.parse((MODULE / "SpineMetSegLib" / "panel" / "widget.py").read_text(encoding="utf-8"))
    collecting = []
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef):
            continue
        calls = {node.func.attr for node in ast.walk(function)
                 if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)}
        if calls & {"result", "check"} and "tryWithErrorDisplay" in calls:
            handled = {ast.unparse(handler.type) for node in ast.walk(function) if isinstance(node, ast.Try)
                       for handler in node.handlers if handler.type is not None}
            collecting.append((function.name, "CancelledError" in handled))
    assert {name for name, _handled in collecting} >= {"_finishSegmentation", "_finishDownload"}
    assert all(handled for _name, handled in collecting), collecting


def test_the_panel_never_imports_torch_itself():
    """``describe_hardware`` imports torch (seconds, and it locks the libraries a PyTorch upgrade replaces): the
    panel starts it in a child process (``start_hardware_probe``) instead of calling it."""
    source = (MODULE / "SpineMetSegLib" / "panel" / "widget.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    called = {node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                for alias in node.names}
    assert "describe_hardware" not in called | imported
    assert "torch" not in imported
    assert "start_hardware_probe" in called
