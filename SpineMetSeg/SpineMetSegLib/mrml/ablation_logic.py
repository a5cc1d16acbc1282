"""Ablation planning in the scene: markups lines as probes, their zones as models, the plan as a table.

A plan belongs to one lesion of one segmentation (the lesion numbers of the panel's lesion table). Each probe is a
``vtkMRMLMarkupsLineNode``: its first point is the skin entry, its second the tip. Each probe's zone is a
``vtkMRMLModelNode`` (shown in 3D and as an outline in the slice views); the plan's numbers (zones of every probe
combined: coverage, margin, canal distance, body volume) are a ``vtkMRMLTableNode``. The table node holds the plan:
the lesion, device and limits as attributes and the segmentation, probes and zones as node references, so a saved
scene restores it (``AblationPlanLogic.plan_of(table_node)``).

Usage::

    logic = AblationPlanLogic(context)
    plan = logic.create_plan(segmentation_node, lesion=1, device_name="generic-ellipsoid-20x15")
    logic.propose(plan)                          # adds a probe line placed by the core's proposal search
    logic.add_probe(plan, tip_ras, direction_ras)   # another probe (bipedicular): the zones combine
    logic.observe(plan)                          # moving a line's points updates its zone and the table
    plan.result.coverage; tables.rows_of(plan.table_node)
    logic.export_json(plan, "plan.json"); tables.write_csv(plan.table_node, "plan.csv")

The numbers come from ``SpineMetSegLib.analysis.ablation`` on the label map the lesion table measures (``lesion_table.
model_label_map``), so they agree with ``spinemetseg plan`` on the exported segmentation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import vtk

from ..analysis.ablation import report
from ..analysis.ablation.anatomy import PlanAnatomy
from ..analysis.ablation.device_table import AblationDevice, find_device, load_devices
from ..analysis.ablation.evaluation import PlanResult, evaluate_plan
from ..analysis.ablation.limits import DEFAULT_CANAL_CLEARANCE_MM, DEFAULT_MARGIN_MM, DEFAULT_SHAFT_CLEARANCE_MM
from ..analysis.ablation.proposal import Proposal, propose
from ..analysis.ablation.zone import Zone, perpendicular_axes
from ..errors import SpineMetSegError
from ..labels import ModelLabel
from . import tables
from .lesion_table import model_label_map
from .plan_nodes import BROKEN, PLAN_ATTRIBUTE, PROBE_REFERENCE, SEGMENTATION_REFERENCE, ZONE_REFERENCE
from .transaction import SceneTransaction

__all__ = ["BROKEN", "PLAN_ATTRIBUTE", "AblationPlan", "AblationPlanLogic", "plan_rows", "probe_of", "zone_polydata"]
# How far behind the tip a new probe line's entry point is placed.
PROBE_LINE_LENGTH_MM = 80.0
ZONE_COLOUR = (0.94, 0.89, 0.26)
ZONE_OPACITY = 0.4
# The sphere each zone model is drawn from: enough facets for a smooth outline in the slice views.
ZONE_MESH_RESOLUTION = 48
PLAN_COLUMNS = (
    tables.Column("Measure", str),
    tables.Column("Value", float),
    tables.Column("Unit", str),
    tables.Column("Limit", str, description="What the plan asks for"),
    tables.Column("Status", str, description="'limit broken' where the value breaks the plan's limit"),
)


@dataclass
class AblationPlan:
    table_node: Any
    segmentation_node: Any
    lesion: int
    device: AblationDevice
    margin_mm: float = DEFAULT_MARGIN_MM
    canal_clearance_mm: float = DEFAULT_CANAL_CLEARANCE_MM
    shaft_clearance_mm: float = DEFAULT_SHAFT_CLEARANCE_MM
    probe_nodes: List[Any] = field(default_factory=list)
    zone_nodes: List[Any] = field(default_factory=list)
    result: Optional[PlanResult] = None
    proposal: Optional[Proposal] = None
    observations: List[tuple] = field(default_factory=list)


def probe_of(line_node) -> tuple:
    """(tip, direction) in RAS of a probe line: point 0 the skin entry, point 1 the tip (world coordinates)."""
    if line_node.GetNumberOfControlPoints() < 2:
        raise SpineMetSegError(f"The probe line '{line_node.GetName()}' needs two points: the entry, then the tip.")
    entry, tip = [0.0] * 3, [0.0] * 3
    line_node.GetNthControlPointPositionWorld(0, entry)
    line_node.GetNthControlPointPositionWorld(1, tip)
    return np.array(tip), np.array(tip) - np.array(entry)


def zone_polydata(zone: Zone):
    """A closed triangle mesh of the zone's ellipsoid (RAS)."""
    sphere = vtk.vtkSphereSource()
    sphere.SetRadius(1.0)
    sphere.SetThetaResolution(ZONE_MESH_RESOLUTION)
    sphere.SetPhiResolution(ZONE_MESH_RESOLUTION)
    first, second = perpendicular_axes(zone.direction)
    matrix = vtk.vtkMatrix4x4()
    columns = (first * zone.semi_radial_mm, second * zone.semi_radial_mm, zone.direction * zone.semi_axial_mm)
    for column, axis in enumerate(columns):
        for row in range(3):
            matrix.SetElement(row, column, float(axis[row]))
    for row in range(3):
        matrix.SetElement(row, 3, float(zone.centre[row]))
    transform = vtk.vtkTransform()
    transform.SetMatrix(matrix)
    placed = vtk.vtkTransformPolyDataFilter()
    placed.SetInputConnection(sphere.GetOutputPort())
    placed.SetTransform(transform)
    placed.Update()
    mesh = vtk.vtkPolyData()
    mesh.DeepCopy(placed.GetOutput())
    return mesh


class AblationPlanLogic:
    def __init__(self, context, devices: Optional[Sequence[AblationDevice]] = None):
        self.context = context
        self.devices = list(devices) if devices is not None else load_devices()
        self._anatomy: Dict[str, PlanAnatomy] = {}

    # Anatomy ----------------------------------------------------------------------------------------------------
    def anatomy(self, segmentation_node) -> PlanAnatomy:
        """The segmentation as the core sees it, measured once; ``forget_anatomy`` after the segments change."""
        key = segmentation_node.GetID()
        if key not in self._anatomy:
            labels = model_label_map(segmentation_node)
            self._anatomy[key] = PlanAnatomy.from_image(
                labels, label=int(ModelLabel.METASTASIS), body_labels=[int(ModelLabel.VERTEBRAL_BODY)],
                canal_labels=[int(ModelLabel.SPINAL_CANAL)],
            )
        return self._anatomy[key]

    def forget_anatomy(self, segmentation_node=None) -> None:
        if segmentation_node is None:
            self._anatomy.clear()
        else:
            self._anatomy.pop(segmentation_node.GetID(), None)

    # Plans ------------------------------------------------------------------------------------------------------
    def create_plan(self, segmentation_node, lesion: int, device_name: Optional[str] = None, *,
                    margin_mm: float = DEFAULT_MARGIN_MM, canal_clearance_mm: float = DEFAULT_CANAL_CLEARANCE_MM,
                    shaft_clearance_mm: float = DEFAULT_SHAFT_CLEARANCE_MM) -> AblationPlan:
        """A new, empty plan (its table node) for one lesion; ``device_name`` None: the smallest device."""
        if segmentation_node is None:
            raise SpineMetSegError("Choose a segmentation first (segment the volumes, or pick a result).")
        self.anatomy(segmentation_node).check_lesion(lesion)
        device = find_device(self.devices, device_name) if device_name else self.devices[0]
        scene = self.context.scene
        with SceneTransaction(scene):
            name = scene.GenerateUniqueName(f"{segmentation_node.GetName()} lesion {lesion} ablation plan")
            table_node = scene.AddNewNodeByClass("vtkMRMLTableNode", name)
            table_node.SetNodeReferenceID(SEGMENTATION_REFERENCE, segmentation_node.GetID())
            plan = AblationPlan(table_node, segmentation_node, lesion, device, margin_mm, canal_clearance_mm,
                                shaft_clearance_mm)
            self._store_settings(plan)
            tables.fill_table(table_node, PLAN_COLUMNS, [])
        return plan

    def _store_settings(self, plan: AblationPlan) -> None:
        node = plan.table_node
        node.SetAttribute(PLAN_ATTRIBUTE, "1")
        node.SetAttribute(f"{PLAN_ATTRIBUTE}.Lesion", str(plan.lesion))
        node.SetAttribute(f"{PLAN_ATTRIBUTE}.Device", plan.device.name)
        node.SetAttribute(f"{PLAN_ATTRIBUTE}.MarginMm", repr(plan.margin_mm))
        node.SetAttribute(f"{PLAN_ATTRIBUTE}.CanalClearanceMm", repr(plan.canal_clearance_mm))
        node.SetAttribute(f"{PLAN_ATTRIBUTE}.ShaftClearanceMm", repr(plan.shaft_clearance_mm))

    def plan_of(self, table_node) -> AblationPlan:
        """The plan a table node holds (e.g. after loading a saved scene)."""
        if table_node is None or table_node.GetAttribute(PLAN_ATTRIBUTE) != "1":
            raise SpineMetSegError("This table is not an ablation plan. Choose a plan made in the Plan section.")
        segmentation_node = table_node.GetNodeReference(SEGMENTATION_REFERENCE)
        if segmentation_node is None:
            raise SpineMetSegError("The plan's segmentation is no longer in the scene.")
        attribute = table_node.GetAttribute
        plan = AblationPlan(
            table_node, segmentation_node, int(attribute(f"{PLAN_ATTRIBUTE}.Lesion")),
            find_device(self.devices, attribute(f"{PLAN_ATTRIBUTE}.Device")),
            float(attribute(f"{PLAN_ATTRIBUTE}.MarginMm")), float(attribute(f"{PLAN_ATTRIBUTE}.CanalClearanceMm")),
            float(attribute(f"{PLAN_ATTRIBUTE}.ShaftClearanceMm")),
        )
        for index in range(table_node.GetNumberOfNodeReferences(PROBE_REFERENCE)):
            plan.probe_nodes.append(table_node.GetNthNodeReference(PROBE_REFERENCE, index))
            plan.zone_nodes.append(table_node.GetNthNodeReference(ZONE_REFERENCE, index))
        return plan

    def set_device(self, plan: AblationPlan, device_name: str) -> None:
        plan.device = find_device(self.devices, device_name)
        self._store_settings(plan)
        self.update(plan)

    def set_limits(self, plan: AblationPlan, *, margin_mm: Optional[float] = None,
                   canal_clearance_mm: Optional[float] = None, shaft_clearance_mm: Optional[float] = None) -> None:
        if margin_mm is not None:
            plan.margin_mm = float(margin_mm)
        if canal_clearance_mm is not None:
            plan.canal_clearance_mm = float(canal_clearance_mm)
        if shaft_clearance_mm is not None:
            plan.shaft_clearance_mm = float(shaft_clearance_mm)
        self._store_settings(plan)
        self.update(plan)

    # Probes -----------------------------------------------------------------------------------------------------
    def add_probe(self, plan: AblationPlan, tip_ras: Sequence[float], direction_ras: Sequence[float],
                  line_node=None):
        """Add a probe (a new markups line from entry to tip, or ``line_node``) and its zone model; update."""
        scene = self.context.scene
        with SceneTransaction(scene):
            if line_node is None:
                number = plan.table_node.GetNumberOfNodeReferences(PROBE_REFERENCE) + 1
                line_node = scene.AddNewNodeByClass(
                    "vtkMRMLMarkupsLineNode", scene.GenerateUniqueName(f"Lesion {plan.lesion} probe {number}"))
                direction = np.asarray(direction_ras, dtype=float)
                norm = float(np.linalg.norm(direction))
                if norm == 0.0:
                    raise SpineMetSegError("The probe direction has no length; give a non-zero vector.")
                tip = np.asarray(tip_ras, dtype=float)
                line_node.AddControlPointWorld(vtk.vtkVector3d(*(tip - direction / norm * PROBE_LINE_LENGTH_MM)))
                line_node.AddControlPointWorld(vtk.vtkVector3d(*tip))
            zone_node = scene.AddNewNodeByClass("vtkMRMLModelNode",
                                                scene.GenerateUniqueName(f"{line_node.GetName()} zone"))
            zone_node.CreateDefaultDisplayNodes()
            display = zone_node.GetDisplayNode()
            display.SetColor(*ZONE_COLOUR)
            display.SetOpacity(ZONE_OPACITY)
            display.SetVisibility2D(True)
            plan.table_node.AddNodeReferenceID(PROBE_REFERENCE, line_node.GetID())
            plan.table_node.AddNodeReferenceID(ZONE_REFERENCE, zone_node.GetID())
            plan.probe_nodes.append(line_node)
            plan.zone_nodes.append(zone_node)
            try:
                self.update(plan)
            except BaseException:
                # The transaction removes the new nodes; the plan forgets them too.
                count = plan.table_node.GetNumberOfNodeReferences(PROBE_REFERENCE)
                plan.table_node.RemoveNthNodeReferenceID(PROBE_REFERENCE, count - 1)
                plan.table_node.RemoveNthNodeReferenceID(ZONE_REFERENCE, count - 1)
                plan.probe_nodes.pop()
                plan.zone_nodes.pop()
                raise
        if plan.observations:
            self._observe_line(plan, line_node)
        return line_node

    def remove_probe(self, plan: AblationPlan, line_node) -> None:
        index = plan.probe_nodes.index(line_node)
        zone_node = plan.zone_nodes[index]
        self.unobserve(plan)
        plan.table_node.RemoveNthNodeReferenceID(PROBE_REFERENCE, index)
        plan.table_node.RemoveNthNodeReferenceID(ZONE_REFERENCE, index)
        del plan.probe_nodes[index], plan.zone_nodes[index]
        for node in (zone_node, line_node):
            self.context.scene.RemoveNode(node)
        self.observe(plan)
        self.update(plan)

    def propose(self, plan: AblationPlan, device_names: Optional[Sequence[str]] = None, *,
                progress: Optional[Callable[[str, float, str], None]] = None, **search) -> Proposal:
        """Run the core's proposal for the plan's lesion and add its probe; the plan takes the proposed device.

        ``device_names`` None: every device of the table, smallest first. ``search``: the cone options of
        ``ablation.proposal.propose``.
        """
        candidates = [find_device(self.devices, name) for name in device_names] if device_names else self.devices
        proposal = propose(self.anatomy(plan.segmentation_node), plan.lesion, candidates, margin_mm=plan.margin_mm,
                           canal_clearance_mm=plan.canal_clearance_mm, shaft_clearance_mm=plan.shaft_clearance_mm,
                           progress=progress, **search)
        plan.device = proposal.device
        plan.proposal = proposal
        self._store_settings(plan)
        self.add_probe(plan, proposal.zone.tip, proposal.zone.direction)
        return proposal

    # Updates ----------------------------------------------------------------------------------------------------
    def zones_of(self, plan: AblationPlan) -> List[Zone]:
        zones = []
        for line_node in plan.probe_nodes:
            tip, direction = probe_of(line_node)
            zones.append(Zone.from_probe(plan.device, tip, direction))
        return zones

    def update(self, plan: AblationPlan) -> Optional[PlanResult]:
        """Redraw every zone model from its line and refill the table; None (and an empty table) without probes."""
        zones = self.zones_of(plan) if plan.probe_nodes else []
        if not zones:
            plan.result = None
            tables.fill_table(plan.table_node, PLAN_COLUMNS, [])
            return None
        result = evaluate_plan(self.anatomy(plan.segmentation_node), plan.lesion, zones, margin_mm=plan.margin_mm,
                               canal_clearance_mm=plan.canal_clearance_mm, shaft_clearance_mm=plan.shaft_clearance_mm)
        for zone, zone_node in zip(zones, plan.zone_nodes):
            zone_node.SetAndObservePolyData(zone_polydata(zone))
        tables.fill_table(plan.table_node, PLAN_COLUMNS, plan_rows(result, plan.device))
        plan.result = result
        return result

    def observe(self, plan: AblationPlan) -> None:
        """Update the plan whenever a probe line's points move (a drag in a view, or a script)."""
        self.unobserve(plan)
        for line_node in plan.probe_nodes:
            self._observe_line(plan, line_node)

    def _observe_line(self, plan: AblationPlan, line_node) -> None:
        def moved(caller, event):
            if caller.GetNumberOfControlPoints() >= 2:
                self.update(plan)

        for event in (line_node.PointModifiedEvent, line_node.PointEndInteractionEvent):
            plan.observations.append((line_node, line_node.AddObserver(event, moved)))

    def unobserve(self, plan: AblationPlan) -> None:
        for node, tag in plan.observations:
            node.RemoveObserver(tag)
        plan.observations.clear()

    # Export -----------------------------------------------------------------------------------------------------
    def export_json(self, plan: AblationPlan, path) -> None:
        if plan.result is None:
            raise SpineMetSegError("The plan has no probe yet: press Propose or place a probe first.")
        settings = {"margin_mm": plan.margin_mm, "canal_clearance_mm": plan.canal_clearance_mm,
                    "shaft_clearance_mm": plan.shaft_clearance_mm}
        proposal = plan.proposal.as_dict() if plan.proposal is not None else None
        document = report.plan_document(plan.result, [plan.device], source=plan.segmentation_node.GetName(),
                                        proposal=proposal, settings=settings)
        report.write_plan_json(document, path)


def plan_rows(result: PlanResult, device: AblationDevice) -> List[list]:
    """The plan table's rows: measure, value, unit, limit, status."""

    def status(ok: Optional[bool]) -> str:
        return "" if ok is None else ("ok" if ok else BROKEN)

    share = result.zone_outside_body_share
    return [
        ["Device", None, "", device.name, ""],
        ["Probes", float(len(result.zones)), "", "", ""],
        ["Lesion volume", result.lesion_volume_ml, "mL", "", ""],
        ["Coverage", 100.0 * result.coverage, "%", "100", status(result.fully_covered)],
        ["Uncovered volume", result.uncovered_volume_ml, "mL", "", ""],
        ["Margin", result.margin_mm, "mm", f">= {result.required_margin_mm:g}", status(result.margin_ok)],
        ["Zone to canal", result.zone_to_canal_mm, "mm", f">= {result.required_canal_clearance_mm:g}",
         status(result.canal_ok)],
        ["Probe to canal", result.shaft_to_canal_mm, "mm", f">= {result.required_shaft_clearance_mm:g}",
         status(result.shaft_ok)],
        ["Tip depth in body", _shallowest(result.tip_depth_in_body_mm), "mm", "> 0", status(result.tips_ok)],
        ["Body in zone", result.body_in_zone_ml, "mL", "", ""],
        ["Zone outside body", None if share is None else 100.0 * share, "%", "", ""],
    ]


def _shallowest(depths: Optional[List[Optional[float]]]) -> Optional[float]:
    """The shallowest tip's depth in the body (None when unknown, or a tip outside the image)."""
    if not depths or any(depth is None for depth in depths):
        return None
    return min(depths)
