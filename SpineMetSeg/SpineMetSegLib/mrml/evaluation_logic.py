"""Compare a segment with a reference segment: Dice, sensitivity, HD95, ..., lesion-wise detection, in a table.

Usage::

    from SpineMetSegLib.mrml.evaluation_logic import EvaluationLogic

    logic = EvaluationLogic(context)
    evaluation = logic.evaluate(truth_node, "lesions", result_node, "metastasis")
    evaluation.metrics["dice"], evaluation.table_node        # the numbers, and a table node for the panel
    evaluation = logic.compare_with_original(result_node)    # how much the manual correction changed

The reference segment is taken on the reference segmentation's grid, the compared segment on its own grid;
the core's ``metrics.compute_metrics`` puts the compared mask onto the reference grid (nearest neighbour) and
counts there, exactly as ``spinemetseg evaluate`` does with the same two label maps, so the panel and the
command line give the same numbers. Specificity is over the whole reference grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from ..analysis import metrics as core_metrics
from ..analysis.metric_table import display_rows
from ..errors import SpineMetSegError
from . import scene as mrml_scene
from . import segments, tables
from .segmentation_logic import original_prediction
from .transaction import SceneTransaction

# Label value of the single-segment masks handed to the core.
MASK_LABEL = 1
TABLE_COLUMNS = (
    tables.Column("Metric"),
    tables.Column("Value", float),
    tables.Column("Unit"),
    tables.Column("Note"),
)
@dataclass
class Evaluation:
    metrics: Dict[str, Any]  # the metrics JSON block of one label (DESIGN.md keys)
    table_node: Any
    description: str


def metric_rows(metrics: Dict[str, Any]) -> List[Tuple[str, Optional[float], str, str]]:
    """Table rows (name, value, unit, note) of one label's metrics: the command line's table (``metric_table``)."""
    return [(row.name, row.value, row.unit, row.note) for row in display_rows(metrics)]


class EvaluationLogic:
    def __init__(self, context):
        self.context = context

    def evaluate(self, reference_node, reference_segment_id: str, compared_node, compared_segment_id: str, *,
                 table_node=None, min_lesion_volume_ml: float = 0.0) -> Evaluation:
        """Metrics of the compared segment against the reference segment, into ``table_node`` (new if None)."""
        for node, segment_id, role in ((reference_node, reference_segment_id, "reference"),
                                       (compared_node, compared_segment_id, "compared")):
            if node is None or not segment_id:
                raise SpineMetSegError(f"Choose the {role} segmentation and segment first.")
        reference = mrml_scene.segment_mask(reference_node, reference_segment_id)
        compared = mrml_scene.segment_mask(compared_node, compared_segment_id)
        result = core_metrics.compute_metrics(
            reference, compared, labels=[MASK_LABEL], min_lesion_volume_ml=min_lesion_volume_ml, missing_ok=True
        )[str(MASK_LABEL)]
        description = (
            f"{_segment_name(compared_node, compared_segment_id)} compared with reference "
            f"{_segment_name(reference_node, reference_segment_id)}"
        )
        return Evaluation(result, self._write_table(result, table_node, description), description)

    def compare_with_original(self, result_node, label_name: str = segments.METASTASIS, *, table_node=None
                              ) -> Evaluation:
        """How much the manual correction changed a result: the corrected segment is the reference, the hidden
        original prediction is compared with it (Dice 1 and no missed lesions = nothing was changed)."""
        original = original_prediction(result_node)
        if original is None:
            raise SpineMetSegError(
                f"'{result_node.GetName() if result_node else '(none)'}' is not a SpineMetSeg result, so there is "
                "no original prediction to compare with. Choose the segmentation the Segment button created."
            )
        segment_id = segments.find_segment_id(result_node, label_name)
        original_id = segments.find_segment_id(original, label_name)
        if segment_id is None or original_id is None:
            raise SpineMetSegError(f"The result '{result_node.GetName()}' has no '{label_name}' segment any more.")
        evaluation = self.evaluate(result_node, segment_id, original, original_id, table_node=table_node)
        evaluation.description = f"Original prediction compared with the corrected {label_name} segment"
        evaluation.table_node.SetAttribute("SpineMetSeg.Description", evaluation.description)
        return evaluation

    def _write_table(self, result: Dict[str, Any], table_node, description: str):
        scene = self.context.scene
        with SceneTransaction(scene):
            if table_node is None:
                table_node = scene.AddNewNodeByClass("vtkMRMLTableNode", scene.GenerateUniqueName("Metrics"))
            tables.fill_table(table_node, TABLE_COLUMNS, metric_rows(result))
            table_node.SetAttribute("SpineMetSeg.Description", description)
        return table_node


def _segment_name(node, segment_id: str) -> str:
    segment = node.GetSegmentation().GetSegment(segment_id)
    return f"'{node.GetName()}: {segment.GetName() if segment else segment_id}'"
