"""The panel's Plan section (Qt): choose a lesion and a device, Propose or place probes, read the zone's numbers.

Built in code and inserted after the Lesions section by ``SpineMetSegPanel``::

    section = PlanSection(panel)        # panel: the SpineMetSegPanel, for its scene, lesion table and result

Every action calls ``mrml.ablation_logic.AblationPlanLogic``, which the test suite runs on slicer-core; here are
only widgets. Qt and Slicer GUI calls that slicer-core cannot run were checked against Slicer v5.8.0 and v5.10.0:
``qMRMLNodeComboBox.addAttribute`` / ``setMRMLScene`` / ``currentNodeChanged(vtkMRMLNode*)``
(Libs/MRML/Widgets/qMRMLNodeComboBox.h, v5.8.0 lines 144, 275, 328; v5.10.0 lines 143, 271, 324),
``qMRMLTableView.setMRMLTableNode`` (Libs/MRML/Widgets/qMRMLTableView.h line 78 in both),
``vtkSlicerMarkupsLogic.JumpSlicesToLocation`` (Modules/Loadable/Markups/Logic/vtkSlicerMarkupsLogic.h, v5.8.0
line 125, v5.10.0 line 121), ``slicer.util.tryWithErrorDisplay`` (Base/Python/slicer/util.py, v5.8.0 line 3279,
v5.10.0 line 3368). ``QComboBox.currentData`` read as a property and ``setItemData(..., qt.Qt.ToolTipRole)`` as
Slicer's own scripted modules do (Modules/Scripted/ScreenCapture/ScreenCapture.py line 472 in both;
Modules/Scripted/VectorToScalarVolume/VectorToScalarVolume.py, v5.8.0 line 142, v5.10.0 line 141);
``ctk.ctkCollapsibleButton()`` built in code as in Modules/Scripted/CropVolumeSequence/CropVolumeSequence.py line 54
(both versions); ``slicer.qMRMLTableView()`` is the class the .ui's lesion table already uses.
"""

from __future__ import annotations

import os
from pathlib import Path

import ctk
import qt
import slicer
import vtk
from slicer.i18n import tr as _

from ..analysis.ablation.device_table import load_devices
from ..analysis.ablation.limits import DEFAULT_CANAL_CLEARANCE_MM, DEFAULT_MARGIN_MM
from ..mrml import tables
from ..mrml.plan_nodes import BROKEN, PLAN_ATTRIBUTE

SETTINGS_EXPORT_DIRECTORY = "SpineMetSeg/exportDirectory"
MAX_LIMIT_MM = 50.0


class PlanSection:
    """The Plan section's widgets and their wiring."""

    def __init__(self, panel):
        self.panel = panel
        self._logic = None
        self.plan = None
        self._table_observation = None
        self.widget = ctk.ctkCollapsibleButton()
        self.widget.text = _("Plan")
        self.widget.collapsed = True
        form = qt.QFormLayout(self.widget)

        self.planSelector = slicer.qMRMLNodeComboBox()
        self.planSelector.nodeTypes = ["vtkMRMLTableNode"]
        self.planSelector.addAttribute("vtkMRMLTableNode", PLAN_ATTRIBUTE, "1")
        self.planSelector.noneEnabled = True
        self.planSelector.addEnabled = False
        self.planSelector.removeEnabled = True
        self.planSelector.setMRMLScene(slicer.mrmlScene)
        self.planSelector.toolTip = _("A plan saved with the scene, or none to start a new one")
        form.addRow(_("Plan:"), self.planSelector)

        self.lesionSpinBox = qt.QSpinBox()
        self.lesionSpinBox.minimum = 1
        self.lesionSpinBox.maximum = 999
        self.lesionSpinBox.toolTip = _("Lesion number from the Lesions table (click a row there to choose it)")
        form.addRow(_("Lesion:"), self.lesionSpinBox)

        self.deviceComboBox = qt.QComboBox()
        form.addRow(_("Device:"), self.deviceComboBox)
        self.marginSpinBox = self._millimetres(DEFAULT_MARGIN_MM, _("Margin the zone should keep around the lesion"))
        form.addRow(_("Margin:"), self.marginSpinBox)
        self.canalSpinBox = self._millimetres(DEFAULT_CANAL_CLEARANCE_MM,
                                              _("Distance the zone should keep from the spinal canal"))
        form.addRow(_("Canal clearance:"), self.canalSpinBox)

        buttons = qt.QHBoxLayout()
        self.proposeButton = qt.QPushButton(_("Propose"))
        self.proposeButton.toolTip = _("The smallest device and a probe that cover the lesion with the margin and "
                                       "keep the canal clearance, or the best placement found. A start, never a "
                                       "recommendation.")
        self.addProbeButton = qt.QPushButton(_("Add probe"))
        self.addProbeButton.toolTip = _("A probe line through the lesion centre, entering from behind: drag its "
                                        "points (entry, then tip); several probes combine their zones")
        self.removeProbeButton = qt.QPushButton(_("Remove last probe"))
        for button in (self.proposeButton, self.addProbeButton, self.removeProbeButton):
            buttons.addWidget(button)
        form.addRow(buttons)

        self.summaryLabel = qt.QLabel()
        self.summaryLabel.wordWrap = True
        form.addRow(self.summaryLabel)
        self.tableView = slicer.qMRMLTableView()
        self.tableView.setMRMLScene(slicer.mrmlScene)
        self.tableView.minimumHeight = 220
        form.addRow(self.tableView)

        exports = qt.QHBoxLayout()
        self.exportJsonButton = qt.QPushButton(_("Export JSON..."))
        self.exportCsvButton = qt.QPushButton(_("Export CSV..."))
        exports.addWidget(self.exportJsonButton)
        exports.addWidget(self.exportCsvButton)
        form.addRow(exports)
        note = qt.QLabel(_("Planning support only: zone sizes come from the device table (generic entries until you "
                           "add your device's published numbers) and vary with tissue and device settings."))
        note.wordWrap = True
        form.addRow(note)

        self.planSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onPlanChosen)
        self.proposeButton.clicked.connect(self.onPropose)
        self.addProbeButton.clicked.connect(self.onAddProbe)
        self.removeProbeButton.clicked.connect(self.onRemoveProbe)
        self.deviceComboBox.currentIndexChanged.connect(self.onSettingsChanged)
        self.marginSpinBox.valueChanged.connect(self.onSettingsChanged)
        self.canalSpinBox.valueChanged.connect(self.onSettingsChanged)
        self.exportJsonButton.clicked.connect(self.onExportJson)
        self.exportCsvButton.clicked.connect(lambda: panel.exportTable(self.plan.table_node if self.plan else None))
        panel.ui.lesionTableView.clicked.connect(self.onLesionRowClicked)
        self._fillDevices()

    @staticmethod
    def _millimetres(value: float, tip: str):
        box = qt.QDoubleSpinBox()
        box.minimum, box.maximum, box.singleStep, box.decimals = 0.0, MAX_LIMIT_MM, 0.5, 1
        box.suffix = " mm"
        box.value = value
        box.toolTip = tip
        return box

    def _fillDevices(self) -> None:
        """The device table (a JSON read: no SciPy needed), with each entry's sources as its tooltip."""
        self.devices = []
        with slicer.util.tryWithErrorDisplay(_("The ablation device table could not be read.")):
            self.devices = load_devices()
        for device in self.devices:
            self.deviceComboBox.addItem(f"{device.name} ({device.zone_length_mm:g} x {device.zone_diameter_mm:g} mm)",
                                        device.name)
            self.deviceComboBox.setItemData(self.deviceComboBox.count - 1, "\n".join(
                f"{key}: {text}" for key, text in device.sources.items()), qt.Qt.ToolTipRole)

    @property
    def logic(self):
        if self._logic is None:
            # Imported on first use: the planning core needs SciPy, which the panel may still have to install.
            from ..mrml.ablation_logic import AblationPlanLogic

            self._logic = AblationPlanLogic(self.panel.context, devices=self.devices or None)
        return self._logic

    def segmentation(self):
        node = self.panel._parameterNode
        return node.resultSegmentation if node is not None else None

    # --- plan life cycle -----------------------------------------------------------------------------------

    def onLesionRowClicked(self, index=None) -> None:
        selected = self.panel._selectedLesionCentre()
        if selected is not None:
            self.lesionSpinBox.value = int(selected[0])

    def onPlanChosen(self, table_node) -> None:
        self._setPlan(None)
        if table_node is None:
            return
        with slicer.util.tryWithErrorDisplay(_("The plan could not be opened.")):
            plan = self.logic.plan_of(table_node)
            self.logic.observe(plan)
            self._setPlan(plan)
            self.logic.update(plan)

    def _setPlan(self, plan) -> None:
        if self.plan is not None:
            self.logic.unobserve(self.plan)
            if self._table_observation is not None:
                self.plan.table_node.RemoveObserver(self._table_observation)
                self._table_observation = None
        self.plan = plan
        self.tableView.setMRMLTableNode(plan.table_node if plan is not None else None)
        if plan is not None:
            self._table_observation = plan.table_node.AddObserver(vtk.vtkCommand.ModifiedEvent,
                                                                  lambda caller, event: self.showSummary())
            self.planSelector.blockSignals(True)
            self.planSelector.setCurrentNode(plan.table_node)
            self.planSelector.blockSignals(False)
            self.lesionSpinBox.value = plan.lesion
            self.deviceComboBox.blockSignals(True)
            self.deviceComboBox.setCurrentIndex(self.deviceComboBox.findData(plan.device.name))
            self.deviceComboBox.blockSignals(False)
        self.showSummary()

    def _currentPlan(self):
        """The open plan when it is for the chosen lesion and segmentation, else a new plan."""
        segmentation = self.segmentation()
        lesion = int(self.lesionSpinBox.value)
        if (self.plan is not None and self.plan.lesion == lesion and self.plan.segmentation_node is segmentation):
            return self.plan
        plan = self.logic.create_plan(segmentation, lesion, self.deviceComboBox.currentData,
                                      margin_mm=self.marginSpinBox.value, canal_clearance_mm=self.canalSpinBox.value)
        self.logic.observe(plan)
        self._setPlan(plan)
        return plan

    def onPropose(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("No probe could be proposed."), waitCursor=True):
            plan = self._currentPlan()
            proposal = self.logic.propose(plan)
            self._setPlan(plan)
            tip = plan.probe_nodes[-1]
            position = [0.0] * 3
            tip.GetNthControlPointPositionWorld(1, position)
            slicer.modules.markups.logic().JumpSlicesToLocation(*position, True)
            if not proposal.feasible:
                slicer.util.warningDisplay(_(
                    "No device in the table meets the margin and the canal clearance for this lesion. The probe shown "
                    "is the best placement found; the table says what stays uncovered."))

    def onAddProbe(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("The probe could not be added."), waitCursor=True):
            plan = self._currentPlan()
            anatomy = self.logic.anatomy(plan.segmentation_node)
            centre = anatomy.lesion_points(plan.lesion).mean(axis=0)
            direction = (0.0, 1.0, 0.0)  # entering from behind
            tip = centre + [0.0, plan.device.tip_to_zone_centre_mm, 0.0]
            self.logic.add_probe(plan, tip, direction)

    def onRemoveProbe(self) -> None:
        if self.plan is None or not self.plan.probe_nodes:
            return
        with slicer.util.tryWithErrorDisplay(_("The probe could not be removed.")):
            self.logic.remove_probe(self.plan, self.plan.probe_nodes[-1])

    def onSettingsChanged(self, *args) -> None:
        if self.plan is None or self._logic is None:
            return
        with slicer.util.tryWithErrorDisplay(_("The plan could not be updated.")):
            name = self.deviceComboBox.currentData
            if name and name != self.plan.device.name:
                self.logic.set_device(self.plan, name)
            self.logic.set_limits(self.plan, margin_mm=self.marginSpinBox.value,
                                  canal_clearance_mm=self.canalSpinBox.value)

    def showSummary(self) -> None:
        if self.plan is None or not self.plan.probe_nodes:
            self.summaryLabel.text = _("Choose a lesion and press Propose, or Add probe and drag its points.")
            return
        lines = []
        for row in tables.rows_of(self.plan.table_node):
            if row["Value"] is None and row["Measure"] != "Device":
                continue
            value = row["Limit"] if row["Measure"] == "Device" else f"{row['Value']:.1f} {row['Unit']}"
            text = f"{row['Measure']}: {value}"
            if row["Status"] == BROKEN:
                text = f"<span style='color:#c00000'><b>{text} ({_('asked')} {row['Limit']})</b></span>"
            lines.append(text)
        self.summaryLabel.text = "<br>".join(lines)

    def onExportJson(self) -> None:
        if self.plan is None:
            return
        settings = qt.QSettings()
        start = os.path.join(settings.value(SETTINGS_EXPORT_DIRECTORY, ""), f"{self.plan.table_node.GetName()}.json")
        path = qt.QFileDialog.getSaveFileName(self.widget, _("Export plan"), start, _("JSON files (*.json)"))
        if not path:
            return
        with slicer.util.tryWithErrorDisplay(_("The plan could not be written."), waitCursor=True):
            self.logic.export_json(self.plan, path)
            settings.setValue(SETTINGS_EXPORT_DIRECTORY, str(Path(path).parent))

    def cleanup(self) -> None:
        self._setPlan(None)

    def onSegmentationEdited(self) -> None:
        """The segments changed: measure them again for the open plan."""
        if self._logic is None:
            return
        self._logic.forget_anatomy()
        if self.plan is not None:
            with slicer.util.tryWithErrorDisplay(_("The plan could not be updated.")):
                self.logic.update(self.plan)
