"""The MRML scene and the module logics the SpineMetSeg logic works with, inside Slicer or standalone.

Usage::

    from SpineMetSegLib.mrml.application import MRMLContext

    context = MRMLContext.from_slicer()   # inside Slicer: slicer.mrmlScene and the application's logics
    context = MRMLContext.standalone()    # anywhere slicer-core is installed: a bare scene set up like Slicer's

The standalone set-up follows what Slicer's application does at start-up (and what the trame-slicer package
does): an application logic with the default colour tables, the segmentation converter rules, and the
Segmentations logic registered on the scene. Tests and scripts use it to run the real MRML code without Qt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import slicer

SEGMENTATIONS_LOGIC_NAME = "Segmentations"


@dataclass
class MRMLContext:
    """A scene, its application logic and the Segmentations module logic."""

    scene: Any  # slicer.vtkMRMLScene
    application_logic: Any  # slicer.vtkSlicerApplicationLogic (or the GUI application's logic)
    segmentations_logic: Any  # slicer.vtkSlicerSegmentationsModuleLogic

    @classmethod
    def from_slicer(cls) -> MRMLContext:
        """The running Slicer application's scene and logics."""
        return cls(
            scene=slicer.mrmlScene,
            application_logic=slicer.app.applicationLogic(),
            segmentations_logic=slicer.modules.segmentations.logic(),
        )

    @classmethod
    def standalone(cls) -> MRMLContext:
        """A new scene with an application logic and the Segmentations logic, as Slicer sets them up."""
        from vtkmodules.vtkCommonCore import vtkCollection

        scene = slicer.vtkMRMLScene()
        application_logic = slicer.vtkSlicerApplicationLogic()
        application_logic.SetMRMLScene(scene)
        # Label map display nodes look up the default colour tables; without them every export warns.
        application_logic.GetColorLogic().SetMRMLScene(scene)
        application_logic.GetColorLogic().AddDefaultColorNodes()
        application_logic.SetSliceLogics(vtkCollection())
        application_logic.SetViewLogics(vtkCollection())
        register_segmentation_converter_rules()

        segmentations_logic = slicer.vtkSlicerSegmentationsModuleLogic()
        segmentations_logic.SetMRMLScene(scene)
        segmentations_logic.SetMRMLApplicationLogic(application_logic)
        application_logic.SetModuleLogic(SEGMENTATIONS_LOGIC_NAME, segmentations_logic)
        return cls(scene=scene, application_logic=application_logic, segmentations_logic=segmentations_logic)


def register_segmentation_converter_rules() -> None:
    """Register the label map <-> surface converters (Slicer's Segmentations module does this at start-up)."""
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    registered = {rule.GetClassName() for rule in factory.GetConverterRules()}
    for rule_class in (slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule,
                       slicer.vtkClosedSurfaceToBinaryLabelmapConversionRule):
        if rule_class.__name__ not in registered:
            factory.RegisterConverterRule(rule_class())
