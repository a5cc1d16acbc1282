"""The SpineMetSeg panel: Qt wiring between the .ui widgets, the parameter node and the MRML logic.

Usage (what ``SpineMetSegWidget.setup`` does)::

    from SpineMetSegLib.panel.widget import SpineMetSegPanel
    panel = SpineMetSegPanel(module_widget.resourcePath("UI/SpineMetSeg.ui"), logic)
    module_widget.layout.addWidget(panel.ui_widget)

This file and ``SpineMetSeg.py`` are the only places that import Qt. Every action calls the MRML logic
(``SpineMetSegLib.mrml``), which the test suite runs without Qt; here are only widgets, dialogs, timers and
the parameter node that keeps the panel's state in the scene (so a saved scene restores the panel).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Optional

import qt
import slicer
import vtk
from slicer.i18n import tr as _
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper
from slicer.util import VTKObservationMixin

from ..errors import CancelledError, SpineMetSegError
from ..mrml import dependencies, segments, tables
from ..mrml.application import MRMLContext
from ..mrml.device_choice import DEVICE_CHOICES, probe_result, start_hardware_probe
from ..mrml.input_matching import match_volume_nodes
from ..mrml.lesion_watch import LesionTableWatcher
from ..mrml.model_logic import ModelLogic
from ..mrml.package_install import PackageInstaller
from ..mrml.segmentation_logic import SegmentationLogic, SegmentationRequest, holds_edits

SETTINGS_DEVICE = "SpineMetSeg/device"
SETTINGS_MODEL = "SpineMetSeg/model"
SETTINGS_EXPORT_DIRECTORY = "SpineMetSeg/exportDirectory"
SETTINGS_IMPORT_DIRECTORY = "SpineMetSeg/importDirectory"
POLL_INTERVAL_MS = 100
PIP_POLL_S = 0.05
# Edits in the Segment Editor come in bursts; the lesion table waits this long after the last one.
LESION_TABLE_DELAY_MS = 1000
SEGMENT_EDITOR_NODE_TAG = "SpineMetSeg"
# The widget property naming a parameter (wrapper.py SlicerParameterNamePropertyName, line 28 at v5.8.0 and v5.10.0).
SLICER_PARAMETER_NAME = "SlicerParameterName"


def default_device() -> str:
    """The device chosen last time (Slicer settings), for a new scene."""
    return str(qt.QSettings().value(SETTINGS_DEVICE, DEVICE_CHOICES[0][0]))


def parameter_widgets(ui_widget) -> dict:
    """Parameter name -> widget for each widget of the panel bound with the ``SlicerParameterName`` property.

    This is what ``connectGui`` collects, but ``connectGui`` returns its disconnect tag only from Slicer 5.10
    (Base/Python/slicer/parameterNodeWrapper/wrapper.py, ``_connectGui``: v5.8.0 line 253 drops the return value
    of ``_connectParametersToGui``, v5.10.0 line 253 returns it), so on 5.8 the panel could never disconnect and
    every module enter or scene close added another live set of connectors. ``connectParametersToGui`` returns
    the tag on both (v5.8.0 and v5.10.0 lines 194-213, bound at lines 344 and 348).
    """
    widgets = {}
    for widget in ui_widget.findChildren(qt.QWidget):
        name = widget.property(SLICER_PARAMETER_NAME)
        if name:
            widgets[str(name)] = widget
    return widgets


@parameterNodeWrapper
class SpineMetSegParameterNode:
    """The panel's state, saved with the scene."""

    t1Volume: slicer.vtkMRMLScalarVolumeNode
    t2Volume: slicer.vtkMRMLScalarVolumeNode
    stirVolume: slicer.vtkMRMLScalarVolumeNode
    model: str = ""  # "name version"; empty = the default model
    device: Annotated[str, Choice([key for key, _text in DEVICE_CHOICES])] = "auto"
    minLesionProbability: float = -1.0  # below 0: the chosen model card's value
    outputSegmentation: slicer.vtkMRMLSegmentationNode
    resultSegmentation: slicer.vtkMRMLSegmentationNode
    lesionTable: slicer.vtkMRMLTableNode
    metricsTable: slicer.vtkMRMLTableNode
    referenceSegmentation: slicer.vtkMRMLSegmentationNode
    referenceSegmentID: str = ""
    comparedSegmentation: slicer.vtkMRMLSegmentationNode
    comparedSegmentID: str = ""
    compareWithOriginal: bool = False


class SpineMetSegPanel(VTKObservationMixin):
    """Builds the panel from the .ui file and connects it; ``logic`` gives the parameter node."""

    def __init__(self, ui_path: str, logic):
        VTKObservationMixin.__init__(self)
        self.logic = logic
        self.context = MRMLContext.from_slicer()
        self.segmentation_logic = SegmentationLogic(self.context)
        # Built on first use: they need SciPy, which the panel may still have to offer to install.
        self._lesion_logic = None
        self._evaluation_logic = None
        self.model_logic = ModelLogic()
        self.ui_widget = slicer.util.loadUI(ui_path)
        self.ui = slicer.util.childWidgetVariables(self.ui_widget)
        self.ui_widget.setMRMLScene(slicer.mrmlScene)
        self._parameterNode: Optional[SpineMetSegParameterNode] = None
        self._parameterNodeGuiTag = None
        self._segmentation_job = None
        self._download_job = None
        self._hardware_job = None
        self._updating_gui = False

        self._poll_timer = qt.QTimer()
        self._poll_timer.setInterval(POLL_INTERVAL_MS)
        self._poll_timer.timeout.connect(self.onPoll)
        self._lesion_timer = qt.QTimer()
        self._lesion_timer.setSingleShot(True)
        self._lesion_timer.setInterval(LESION_TABLE_DELAY_MS)
        self._lesion_timer.timeout.connect(self.onLesionEditsPaused)
        # Follows Segment Editor edits of the result (the observers live in the MRML logic, tested there).
        self._lesion_watcher = LesionTableWatcher(
            lambda segmentation, table: self.lesion_logic.update(segmentation, table),
            delay_s=LESION_TABLE_DELAY_MS / 1000.0, on_edit=self._lesion_timer.start)

        self._setupStaticWidgets()
        self._connect()
        self._setupPlanSection()
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.NodeAddedEvent, self.onNodeAdded)
        self.initializeParameterNode()
        qt.QTimer.singleShot(0, self.refreshEnvironment)

    @property
    def lesion_logic(self):
        if self._lesion_logic is None:
            from ..mrml.lesion_table import LesionTableLogic

            self._lesion_logic = LesionTableLogic(self.context)
        return self._lesion_logic

    @property
    def evaluation_logic(self):
        if self._evaluation_logic is None:
            from ..mrml.evaluation_logic import EvaluationLogic

            self._evaluation_logic = EvaluationLogic(self.context)
        return self._evaluation_logic

    # --- set-up --------------------------------------------------------------------------------------------

    def _setupStaticWidgets(self) -> None:
        for key, text in DEVICE_CHOICES:
            self.ui.deviceComboBox.addItem(_(text), key)
        self.ui.downloadProgressBar.setVisible(False)
        self.ui.cancelDownloadButton.setVisible(False)
        self.ui.segmentProgressBar.setVisible(False)
        self.ui.lesionsNoteLabel.setText(_(
            "Host vertebrae are numbered 1, 2, ... from the most superior vertebral body in the image. "
            "The flags are measurements for information, not a treatment recommendation."))
        self._setupSegmentEditorNode()

    def _setupPlanSection(self) -> None:
        """The Plan section (built in code, see plan_widget.py), right after the Lesions section."""
        from .plan_widget import PlanSection

        self.plan_section = PlanSection(self)
        layout = self.ui_widget.layout()
        layout.insertWidget(layout.indexOf(self.ui.lesionsCollapsibleButton) + 1, self.plan_section.widget)

    def _setupSegmentEditorNode(self) -> None:
        """The embedded Segment Editor keeps its own editor node, so it does not disturb the Segment Editor module."""
        editor_node = slicer.mrmlScene.GetSingletonNode(SEGMENT_EDITOR_NODE_TAG, "vtkMRMLSegmentEditorNode")
        if editor_node is None:
            editor_node = slicer.vtkMRMLSegmentEditorNode()
            editor_node.SetSingletonTag(SEGMENT_EDITOR_NODE_TAG)
            editor_node = slicer.mrmlScene.AddNode(editor_node)
        self.ui.segmentEditorWidget.setMRMLSegmentEditorNode(editor_node)

    def _connect(self) -> None:
        self.ui.modelComboBox.currentIndexChanged.connect(self.onModelChanged)
        self.ui.deviceComboBox.currentIndexChanged.connect(self.onDeviceChanged)
        self.ui.minLesionProbabilitySlider.valueChanged.connect(self.onMinLesionProbabilityChanged)
        self.ui.downloadButton.clicked.connect(self.onDownload)
        self.ui.cancelDownloadButton.clicked.connect(self.onCancelDownload)
        self.ui.importModelButton.clicked.connect(self.onImportModel)
        self.ui.installDependenciesButton.clicked.connect(self.onInstallDependencies)
        self.ui.segmentButton.clicked.connect(self.onSegmentButton)
        self.ui.updateLesionsButton.clicked.connect(self.updateLesionTable)
        self.ui.removeLesionButton.clicked.connect(self.onRemoveLesion)
        self.ui.exportLesionsButton.clicked.connect(lambda: self.exportTable(self._parameterNode.lesionTable))
        self.ui.lesionTableView.clicked.connect(self.onLesionClicked)
        self.ui.referenceSegmentSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onEvaluationInputChanged)
        self.ui.referenceSegmentSelector.connect("currentSegmentChanged(QString)", self.onEvaluationInputChanged)
        self.ui.comparedSegmentSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onEvaluationInputChanged)
        self.ui.comparedSegmentSelector.connect("currentSegmentChanged(QString)", self.onEvaluationInputChanged)
        self.ui.computeMetricsButton.clicked.connect(self.onComputeMetrics)
        self.ui.exportMetricsButton.clicked.connect(lambda: self.exportTable(self._parameterNode.metricsTable))

    def cleanup(self) -> None:
        self.plan_section.cleanup()
        self.removeObservers()
        self._lesion_watcher.stop()
        self._poll_timer.stop()
        self._lesion_timer.stop()
        for job in (self._segmentation_job, self._download_job, self._hardware_job):
            if job is not None:
                job.cancel()
        if self._parameterNode is not None and self._parameterNodeGuiTag is not None:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)

    def enter(self) -> None:
        self.initializeParameterNode()
        self.ui.segmentEditorWidget.installKeyboardShortcuts()

    def exit(self) -> None:
        self.ui.segmentEditorWidget.setActiveEffect(None)
        self.ui.segmentEditorWidget.uninstallKeyboardShortcuts()

    # --- parameter node ------------------------------------------------------------------------------------

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        self.fillInputsFromNames()

    def setParameterNode(self, parameter_node: Optional[SpineMetSegParameterNode]) -> None:
        if self._parameterNode is not None:
            if self._parameterNodeGuiTag is not None:
                self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode.parameterNode, vtk.vtkCommand.ModifiedEvent,
                                self.updateGUIFromParameterNode)
        self._parameterNode = parameter_node
        self._parameterNodeGuiTag = None
        if self._parameterNode is not None:
            if not self._parameterNode.model:
                self._parameterNode.model = qt.QSettings().value(SETTINGS_MODEL, "")
            self._parameterNodeGuiTag = self._parameterNode.connectParametersToGui(
                parameter_widgets(self.ui_widget))
            # Observe the MRML node, not the wrapper: the mixin keeps what it observes alive.
            self.addObserver(self._parameterNode.parameterNode, vtk.vtkCommand.ModifiedEvent,
                             self.updateGUIFromParameterNode)
        self.updateGUIFromParameterNode()

    def updateGUIFromParameterNode(self, caller=None, event=None) -> None:
        node = self._parameterNode
        if node is None or self._updating_gui:
            return
        self._updating_gui = True
        try:
            self._selectComboData(self.ui.modelComboBox, node.model)
            self._selectComboData(self.ui.deviceComboBox, node.device)
            self.ui.minLesionProbabilitySlider.value = self._minLesionProbability()
            self.ui.lesionTableView.setMRMLTableNode(node.lesionTable)
            self.ui.metricsTableView.setMRMLTableNode(node.metricsTable)
            self.ui.referenceSegmentSelector.setCurrentNode(node.referenceSegmentation)
            self.ui.referenceSegmentSelector.setCurrentSegmentID(node.referenceSegmentID)
            self.ui.comparedSegmentSelector.setCurrentNode(node.comparedSegmentation)
            self.ui.comparedSegmentSelector.setCurrentSegmentID(node.comparedSegmentID)
            self.ui.referenceSegmentSelector.setEnabled(not node.compareWithOriginal)
            self.ui.comparedSegmentSelector.setEnabled(not node.compareWithOriginal)
            self._showResultInEditor(node.resultSegmentation)
            self._lesion_watcher.watch(node.resultSegmentation, node.lesionTable)
            self._updateButtons()
        finally:
            self._updating_gui = False

    @staticmethod
    def _selectComboData(combo, data: str) -> None:
        index = combo.findData(data)
        if index >= 0 and index != combo.currentIndex:
            combo.setCurrentIndex(index)

    def _updateButtons(self) -> None:
        node = self._parameterNode
        running = self._segmentation_job is not None
        has_input = any(v is not None for v in (node.t1Volume, node.t2Volume, node.stirVolume))
        self.ui.segmentButton.setText(_("Cancel") if running else _("Segment"))
        self.ui.segmentButton.setEnabled(running or has_input)
        self.ui.segmentButton.setToolTip(
            _("Stop the running segmentation; the scene stays as it was") if running else
            _("Segment metastases, vertebral bodies and the spinal canal") if has_input else
            _("Choose at least one input volume"))
        has_result = node.resultSegmentation is not None
        for button in (self.ui.updateLesionsButton, self.ui.removeLesionButton, self.ui.exportLesionsButton):
            button.setEnabled(has_result and not running)
        self.ui.exportMetricsButton.setEnabled(node.metricsTable is not None)
        self.ui.computeMetricsButton.setEnabled(not running)

    def onSceneStartClose(self, caller, event) -> None:
        self._lesion_timer.stop()
        self._lesion_watcher.stop()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        self._setupSegmentEditorNode()
        self.initializeParameterNode()

    @vtk.calldata_type(vtk.VTK_OBJECT)
    def onNodeAdded(self, caller, event, node) -> None:
        if node.IsA("vtkMRMLScalarVolumeNode"):
            # A volume loaded after the panel opened (e.g. the sample case) may be the missing T1/T2/STIR.
            qt.QTimer.singleShot(0, self.fillInputsFromNames)

    def fillInputsFromNames(self) -> None:
        """Fill empty sequence selectors: volumes loaded from DICOM by their tags, others by name ("sag T1", ...)."""
        node = self._parameterNode
        if node is None:
            return
        matched = match_volume_nodes(slicer.mrmlScene, file_for_instance=self._dicomFileLookup())
        chosen = {n.GetID() for n in (node.t1Volume, node.t2Volume, node.stirVolume) if n is not None}
        for key, attribute in (("t1", "t1Volume"), ("t2", "t2Volume"), ("stir", "stirVolume")):
            candidate = matched.get(key)
            if getattr(node, attribute) is None and candidate is not None and candidate.GetID() not in chosen:
                setattr(node, attribute, candidate)
                chosen.add(candidate.GetID())

    @staticmethod
    def _dicomFileLookup():
        """The DICOM database's SOP instance UID -> file lookup, or None when no database is open.

        ``slicer.dicomDatabase.isOpen`` and ``fileForInstance(uid)`` are how DICOMLib finds a loaded instance's
        file (Modules/Scripted/DICOMLib/DICOMUtils.py lines 278 and 282 at v5.8.0, 277 and 281 at v5.10.0).
        """
        database = getattr(slicer, "dicomDatabase", None)
        return database.fileForInstance if database is not None and database.isOpen else None

    # --- environment: models, device, dependencies ---------------------------------------------------------

    def refreshEnvironment(self) -> None:
        self.refreshDependencies()
        self.refreshModels()
        self.refreshHardware()

    def refreshHardware(self) -> None:
        """What GPUs torch sees, found by a child process (importing torch here would freeze the panel)."""
        if self._hardware_job is not None:
            return
        self.ui.deviceInfoLabel.setText(_("Looking for a GPU..."))
        self._hardware_job = start_hardware_probe()
        self._poll_timer.start()

    def refreshDependencies(self) -> None:
        missing = dependencies.missing_requirements()
        self.ui.dependenciesLabel.setText(
            _("Missing Python packages: {packages}").format(packages=dependencies.describe(missing)) if missing
            else _("All Python packages are installed."))
        self.ui.installDependenciesButton.setVisible(bool(missing))

    def refreshModels(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Cannot read the model catalog."), waitCursor=True):
            entries = self.model_logic.entries()
            self.ui.modelComboBox.blockSignals(True)
            self.ui.modelComboBox.clear()
            for entry in entries:
                self.ui.modelComboBox.addItem(entry.label, entry.key)
            self.ui.modelComboBox.blockSignals(False)
            if self._parameterNode is not None and not self._parameterNode.model and entries:
                self._parameterNode.model = entries[0].key
            self.updateGUIFromParameterNode()
            self.onModelChanged()

    def currentModelEntry(self):
        key = self.ui.modelComboBox.itemData(self.ui.modelComboBox.currentIndex)
        return self.model_logic.entry(key) if key else None

    def onModelChanged(self, *args) -> None:
        entry = self.currentModelEntry()
        if entry is None:
            self.ui.modelInfoLabel.setText(_("No model in the catalog."))
            return
        if self._parameterNode is not None and not self._updating_gui:
            if self._parameterNode.model != entry.key:
                self._parameterNode.minLesionProbability = -1.0  # a new model: its own recommended value
            self._parameterNode.model = entry.key
            qt.QSettings().setValue(SETTINGS_MODEL, entry.key)
        self.ui.modelInfoLabel.setText(entry.description)
        self.ui.downloadButton.setEnabled(not entry.available and self._download_job is None)
        self.ui.downloadButton.setToolTip(
            _("This model is on this computer.") if entry.available else
            _("Download {size:.0f} MB into the model cache.").format(size=entry.card.file.size / 2**20))

    def _minLesionProbability(self) -> float:
        """The lesion confidence in use: the user's choice, else the chosen model card's value."""
        node = self._parameterNode
        if node is not None and node.minLesionProbability >= 0:
            return float(node.minLesionProbability)
        entry = self.currentModelEntry()
        return entry.card.postprocessing.min_lesion_mean_probability if entry else 0.0

    def onMinLesionProbabilityChanged(self, value: float) -> None:
        if self._parameterNode is not None and not self._updating_gui:
            if abs(value - self._minLesionProbability()) > 1e-9:
                self._parameterNode.minLesionProbability = float(value)

    def onDeviceChanged(self, *args) -> None:
        key = self.ui.deviceComboBox.itemData(self.ui.deviceComboBox.currentIndex)
        if self._parameterNode is not None and key and not self._updating_gui:
            self._parameterNode.device = key
            qt.QSettings().setValue(SETTINGS_DEVICE, key)

    def onDownload(self) -> None:
        entry = self.currentModelEntry()
        if entry is None:
            return
        with slicer.util.tryWithErrorDisplay(_("The download could not start."), waitCursor=True):
            self._download_job = self.model_logic.start_download(
                entry.card, on_progress=lambda p: self.ui.downloadProgressBar.setValue(int(p.percent)),
                on_log=self.appendLog)
            self.ui.downloadProgressBar.setValue(0)
            self.ui.downloadProgressBar.setVisible(True)
            self.ui.cancelDownloadButton.setVisible(True)
            self.ui.downloadButton.setEnabled(False)
            self._poll_timer.start()

    def onCancelDownload(self) -> None:
        if self._download_job is not None:
            self._download_job.cancel()

    def _finishDownload(self) -> None:
        job, self._download_job = self._download_job, None
        self.ui.downloadProgressBar.setVisible(False)
        self.ui.cancelDownloadButton.setVisible(False)
        with slicer.util.tryWithErrorDisplay(_("The model was not downloaded."), waitCursor=False):
            try:
                job.check()
            except CancelledError:
                self.appendLog(_("Download cancelled; the partial file is kept and the next download resumes it."))
            finally:
                self.refreshModels()

    def onImportModel(self) -> None:
        settings = qt.QSettings()
        start = settings.value(SETTINGS_IMPORT_DIRECTORY, "")
        path = qt.QFileDialog.getOpenFileName(
            self.ui_widget, _("Import a model file"), start,
            _("Model files (*.safetensors *.pt *.pth *.zip);;All files (*)"))
        if not path:
            return
        settings.setValue(SETTINGS_IMPORT_DIRECTORY, str(Path(path).parent))
        card_file = None
        if slicer.util.confirmYesNoDisplay(_(
                "Is this a model you trained yourself (it then needs its model card, a .json file)?\n"
                "Answer No for a file of a catalog model copied by hand.")):
            card_file = qt.QFileDialog.getOpenFileName(
                self.ui_widget, _("The model card of this file"), str(Path(path).parent), _("Model cards (*.json)"))
            if not card_file:
                return
        with slicer.util.tryWithErrorDisplay(_("The model file was not imported."), waitCursor=True):
            card = self.model_logic.import_file(path, card_file or None)
            self._parameterNode.model = f"{card.name} {card.version}"
            self.refreshModels()
            slicer.util.infoDisplay(_("Imported {model}.").format(model=f"{card.name} {card.version}"))

    def onInstallDependencies(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("The Python packages could not be installed."), waitCursor=False):
            self.ensureDependencies(ask=True)

    def ensureDependencies(self, ask: bool = True) -> bool:
        """Install what is missing, each step after the user agrees; False when the user declined."""
        missing = dependencies.missing_requirements()
        if not missing:
            return True
        if dependencies.torch_missing(missing) and not self._installTorch(missing, ask):
            return False
        to_install = dependencies.pip_arguments(dependencies.missing_requirements())
        if to_install:
            if ask and not self._confirm(_(
                    "SpineMetSeg needs these Python packages: {packages}. Install them now (a few minutes)?"
            ).format(packages=", ".join(to_install))):
                return False
            self._runPip(to_install)
        self.refreshEnvironment()
        return True

    def _installTorch(self, missing, ask: bool) -> bool:
        """PyTorch (absent or too old) through the PyTorch extension, asked for ``torch>=MINIMUM_TORCH``."""
        try:
            import PyTorchUtils
        except ImportError:
            raise SpineMetSegError(_(
                "SpineMetSeg needs the PyTorch extension to install PyTorch {requirement}. Install 'PyTorch' from "
                "the Extensions Manager, restart Slicer and try again.").format(
                    requirement=dependencies.MINIMUM_TORCH)) from None
        if ask and not self._confirm(dependencies.torch_install_prompt(missing)):
            return False
        # installTorch(askConfirmation, forceComputationBackend, torchVersionRequirement, ...) installs with
        # light-the-torch "torch<requirement>", which also upgrades a torch that is too old (SlicerPyTorch,
        # PyTorchUtils/PyTorchUtils.py, installTorch and _getPipInstallArguments).
        with slicer.util.WaitCursor():
            PyTorchUtils.PyTorchUtilsLogic().installTorch(
                askConfirmation=False, torchVersionRequirement=dependencies.MINIMUM_TORCH)
        problem = dependencies.torch_still_too_old(dependencies.installed_version(dependencies.TORCH))
        if problem:
            raise SpineMetSegError(problem)
        return True

    def _runPip(self, requirements) -> None:
        """pip in a child process; Slicer stays responsive and pip's output goes to the log."""
        job = PackageInstaller().start(requirements, on_log=self.appendLog)
        with slicer.util.WaitCursor():
            while job.poll() is None:
                slicer.app.processEvents()
                time.sleep(PIP_POLL_S)
        job.check()

    @staticmethod
    def _confirm(message: str, yes_no: bool = False) -> bool:
        """A confirmation dialog with the normal cursor: the actions that ask run under ``tryWithErrorDisplay``'s
        wait cursor (an application override cursor, util.py v5.8.0 lines 3300-3305, v5.10.0 lines 3389-3394),
        and a wait cursor over a question reads as "busy". Overrides stack, so this one is undone on return."""
        qt.QApplication.setOverrideCursor(qt.Qt.ArrowCursor)
        try:
            ask = slicer.util.confirmYesNoDisplay if yes_no else slicer.util.confirmOkCancelDisplay
            return ask(message)
        finally:
            qt.QApplication.restoreOverrideCursor()

    # --- segmentation --------------------------------------------------------------------------------------

    def onSegmentButton(self) -> None:
        if self._segmentation_job is not None:
            self._segmentation_job.cancel()
            self.appendLog(_("Cancelling..."))
            return
        with slicer.util.tryWithErrorDisplay(_("The segmentation could not start."), waitCursor=True):
            self.startSegmentation()

    def startSegmentation(self) -> None:
        node = self._parameterNode
        if not self.ensureDependencies(ask=True):
            return
        output = node.outputSegmentation
        overwrite = False
        if output is not None and holds_edits(output):
            if not self._confirm(_(
                    "The segmentation '{name}' holds manual edits. Replace them with the new result?"
            ).format(name=output.GetName()), yes_no=True):
                return
            overwrite = True
        name, _separator, version = (node.model or "").partition(" ")
        request = SegmentationRequest(
            inputs={"t1": node.t1Volume, "t2": node.t2Volume, "stir": node.stirVolume},
            model=name or None, version=version or None, device=node.device, output_node=output,
            overwrite_edits=overwrite,
            min_lesion_probability=node.minLesionProbability if node.minLesionProbability >= 0 else None)
        self.ui.logTextEdit.clear()
        self.ui.segmentProgressBar.setValue(0)
        self.ui.segmentProgressBar.setVisible(True)
        self._segmentation_job = self.segmentation_logic.start(
            request, on_progress=self.onSegmentationProgress, on_log=self.appendLog)
        self._poll_timer.start()
        self._updateButtons()

    def onSegmentationProgress(self, progress) -> None:
        self.ui.segmentProgressBar.setValue(int(progress.percent))
        self.ui.segmentProgressBar.setFormat(f"{progress.stage} %p%")

    def appendLog(self, line: str) -> None:
        self.ui.logTextEdit.appendPlainText(line)

    def onPoll(self) -> None:
        job = self._segmentation_job
        if job is not None:
            self.ui.elapsedLabel.setText(_("Elapsed: {seconds:.0f} s").format(seconds=job.elapsed_s))
            if job.poll() is not None:
                self._finishSegmentation()
        if self._download_job is not None and self._download_job.poll() is not None:
            self._finishDownload()
        if self._hardware_job is not None and self._hardware_job.poll() is not None:
            job, self._hardware_job = self._hardware_job, None
            self.ui.deviceInfoLabel.setText(probe_result(job))
        if self._segmentation_job is None and self._download_job is None and self._hardware_job is None:
            self._poll_timer.stop()

    def _finishSegmentation(self) -> None:
        job, self._segmentation_job = self._segmentation_job, None
        self.ui.segmentProgressBar.setVisible(False)
        self._updateButtons()
        with slicer.util.tryWithErrorDisplay(_("Segmentation failed; the scene is unchanged."), waitCursor=True):
            try:
                result = job.result()
            except CancelledError:
                # A cancel is what the user asked for: a status line, not an error dialog with a traceback.
                self.ui.elapsedLabel.setText(_("Cancelled; the scene is unchanged."))
                self.appendLog(_("Cancelled; the scene is unchanged."))
                return
            self.segmentation_logic.show(result)
            slicer.util.resetSliceViews()
            node = self._parameterNode
            node.resultSegmentation = result.segmentation_node
            node.outputSegmentation = result.segmentation_node
            node.comparedSegmentation = result.segmentation_node
            node.comparedSegmentID = segments.find_segment_id(result.segmentation_node, segments.METASTASIS) or ""
            self.appendLog(_("Done in {seconds:.1f} s.").format(seconds=result.elapsed_s))
            self.updateLesionTable()

    # --- lesions -------------------------------------------------------------------------------------------

    def onLesionEditsPaused(self) -> None:
        """The single-shot timer the watcher restarts on each edit fired: no edit for LESION_TABLE_DELAY_MS."""
        if self._segmentation_job is None and self._lesion_watcher.pending:
            self.updateLesionTable()

    def updateLesionTable(self) -> None:
        node = self._parameterNode
        if node is None or node.resultSegmentation is None:
            return
        with slicer.util.tryWithErrorDisplay(_("The lesions could not be measured."), waitCursor=True):
            self._lesion_watcher.watch(node.resultSegmentation, node.lesionTable)
            table = self._lesion_watcher.update()
            if node.lesionTable is not table.table_node:
                node.lesionTable = table.table_node
        self.plan_section.onSegmentationEdited()

    def _selectedLesionCentre(self):
        table_node = self._parameterNode.lesionTable
        row = self.ui.lesionTableView.currentIndex().row()
        if table_node is None or row < 0:
            return None
        rows = tables.rows_of(table_node)
        if row >= len(rows):
            return None
        return rows[row]["Lesion"], (rows[row]["R"], rows[row]["A"], rows[row]["S"])

    def onLesionClicked(self, index=None) -> None:
        selected = self._selectedLesionCentre()
        if selected is not None:
            r, a, s = selected[1]
            slicer.modules.markups.logic().JumpSlicesToLocation(r, a, s, True)

    def onRemoveLesion(self) -> None:
        selected = self._selectedLesionCentre()
        if selected is None:
            slicer.util.warningDisplay(_("Select a lesion in the table first."))
            return
        number, centre = selected
        if not slicer.util.confirmYesNoDisplay(_("Remove lesion {number} from the segmentation?").format(
                number=number)):
            return
        with slicer.util.tryWithErrorDisplay(_("The lesion could not be removed."), waitCursor=True):
            self.lesion_logic.remove_lesion_at(self._parameterNode.resultSegmentation, centre)
            self.updateLesionTable()

    def exportTable(self, table_node) -> None:
        if table_node is None:
            return
        settings = qt.QSettings()
        start = os.path.join(settings.value(SETTINGS_EXPORT_DIRECTORY, ""), f"{table_node.GetName()}.csv")
        path = qt.QFileDialog.getSaveFileName(self.ui_widget, _("Export table"), start, _("CSV files (*.csv)"))
        if not path:
            return
        with slicer.util.tryWithErrorDisplay(_("The table could not be written."), waitCursor=True):
            tables.write_csv(table_node, path)
            settings.setValue(SETTINGS_EXPORT_DIRECTORY, str(Path(path).parent))

    # --- edit ----------------------------------------------------------------------------------------------

    def _showResultInEditor(self, segmentation_node) -> None:
        editor = self.ui.segmentEditorWidget
        if segmentation_node is None or editor.segmentationNode() is segmentation_node:
            return
        editor.setSegmentationNode(segmentation_node)
        node = self._parameterNode
        source = next((v for v in (node.t1Volume, node.t2Volume, node.stirVolume) if v is not None), None)
        if source is not None:
            editor.setSourceVolumeNode(source)

    # --- evaluate ------------------------------------------------------------------------------------------

    def onEvaluationInputChanged(self, *args) -> None:
        node = self._parameterNode
        if node is None or self._updating_gui:
            return
        node.referenceSegmentation = self.ui.referenceSegmentSelector.currentNode()
        node.referenceSegmentID = self.ui.referenceSegmentSelector.currentSegmentID() or ""
        node.comparedSegmentation = self.ui.comparedSegmentSelector.currentNode()
        node.comparedSegmentID = self.ui.comparedSegmentSelector.currentSegmentID() or ""

    def onComputeMetrics(self) -> None:
        node = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("The metrics could not be computed."), waitCursor=True):
            if node.compareWithOriginal:
                evaluation = self.evaluation_logic.compare_with_original(
                    node.resultSegmentation, table_node=node.metricsTable)
            else:
                evaluation = self.evaluation_logic.evaluate(
                    node.referenceSegmentation, node.referenceSegmentID, node.comparedSegmentation,
                    node.comparedSegmentID, table_node=node.metricsTable)
            if node.metricsTable is not evaluation.table_node:
                node.metricsTable = evaluation.table_node
