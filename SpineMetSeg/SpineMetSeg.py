"""Spine Metastasis Segmentation: the 3D Slicer module (metadata, the panel, the sample case, the self-test).

The panel lives in ``SpineMetSegLib/panel/widget.py`` and the work in ``SpineMetSegLib/mrml`` (no Qt) and the core
``SpineMetSegLib``; this file only ties them into Slicer.
"""

from __future__ import annotations

import os

import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)

README_URL = "https://github.com/SpineMetSeg/SlicerSpineMetSeg#readme"


class SpineMetSeg(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Spine Metastasis Segmentation")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = ["Segmentations", "SegmentEditor"]
        self.parent.contributors = ["SpineMetSeg developers"]
        self.parent.helpText = _(
            "Segments spinal metastases, vertebral bodies and the spinal canal in T1, T2 and STIR MRI, measures "
            "each lesion for radiofrequency ablation planning, places ablation probes and shows their zone's "
            "coverage of a lesion and margin to the canal (planning support only), lets you correct the outline, "
            "and evaluates it "
            "against a reference. The default model is trained on synthetic data only; review every result. "
            'See the <a href="{url}">user guide</a>.').format(url=README_URL)
        self.parent.acknowledgementText = _(
            "SpineMetSeg builds on: Hille G. et al., Spinal metastases segmentation in MR imaging using deep "
            "convolutional neural networks (2020); Chen et al., A patch-based deep learning MRI segmentation model "
            "for improving efficiency and clinical examination of the spinal tumor, Journal of Bone Oncology "
            "(2024); Wang et al., Contrast-enhanced MR image "
            "segmentation based on improved U-Net and Inception-ResNet in the diagnosis of spinal metastases, "
            "Journal of Bone Oncology (2023). It uses MONAI, PyTorch and SimpleITK.")
        slicer.app.connect("startupCompleted()", registerSampleData)


def registerSampleData():
    """List the synthetic sample case in the Sample Data module; it is rendered locally when loaded, from the button
    or from a script (``SampleData.downloadSample(sample_data.SAMPLE_TITLE)``)."""
    import SampleData

    from SpineMetSegLib.mrml import sample_data

    sample_data.install_sample_url_handler()
    SampleData.SampleDataLogic.registerCustomSampleDataSource(**sample_data.sample_source_arguments(
        os.path.join(os.path.dirname(__file__), "Resources", "Icons", "SpineMetSeg.png")))


class SpineMetSegWidget(ScriptedLoadableModuleWidget):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        self.logic = None
        self.panel = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        from SpineMetSegLib.panel.widget import SpineMetSegPanel

        self.logic = SpineMetSegLogic()
        self.panel = SpineMetSegPanel(self.resourcePath("UI/SpineMetSeg.ui"), self.logic)
        self.layout.addWidget(self.panel.ui_widget)
        self.ui = self.panel.ui

    def enter(self) -> None:
        self.panel.enter()

    def exit(self) -> None:
        self.panel.exit()

    def cleanup(self) -> None:
        if self.panel is not None:
            self.panel.cleanup()


class SpineMetSegLogic(ScriptedLoadableModuleLogic):
    """Gives the panel its parameter node; the work is in ``SpineMetSegLib.mrml``."""

    def getParameterNode(self):
        from SpineMetSegLib.mrml.device_choice import needs_saved_device
        from SpineMetSegLib.panel.widget import SpineMetSegParameterNode, default_device

        node = super().getParameterNode()
        apply_saved_device = needs_saved_device(node)  # before the wrapper writes its defaults into the node
        parameter_node = SpineMetSegParameterNode(node)
        if apply_saved_device:
            parameter_node.device = default_device()
        return parameter_node


class SpineMetSegTest(ScriptedLoadableModuleTest):
    """Loads the sample case, segments it with the default model, corrects one lesion, evaluates against the truth."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        from SpineMetSegLib.mrml import dependencies

        # The Test button runs this inside tryWithErrorDisplay("Reload and Test failed.")
        # (ScriptedLoadableModule.py onReloadAndTest, v5.8.0 and v5.10.0 lines 260-269), so a SkipTest would read
        # as a failure there: say plainly that nothing was tested instead.
        missing = dependencies.missing_requirements()
        if missing:
            self.delayDisplay(_("Self-test not run: install the missing Python packages first ({packages}).").format(
                packages=dependencies.describe(missing)))
            return
        self.setUp()
        self.test_sample_case_workflow()

    def test_sample_case_workflow(self):
        from SpineMetSegLib.mrml import sample_data
        from SpineMetSegLib.mrml.application import MRMLContext

        self.delayDisplay("Segmenting the sample case with the default model")
        report = sample_data.run_workflow(MRMLContext.from_slicer())
        self.assertGreater(report.lesions_found, 0)
        self.assertNotEqual(report.edit, "none")
        self.assertLess(report.change_dice, 1.0)
        self.assertGreater(report.dice_after_edit, report.dice_before_edit)
        self.assertGreater(report.dice_after_edit, sample_data.SELF_TEST_MIN_DICE)
        self.delayDisplay(f"Dice against the phantom's truth: {report.dice_after_edit:.3f}")
