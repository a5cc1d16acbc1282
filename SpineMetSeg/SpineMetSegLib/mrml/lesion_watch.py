"""Keep the lesion table in step with a segmentation while the user edits it (MRML observers, no Qt, no SciPy).

Usage::

    from SpineMetSegLib.mrml.lesion_table import LesionTableLogic
    from SpineMetSegLib.mrml.lesion_watch import LesionTableWatcher

    logic = LesionTableLogic(context)
    watcher = LesionTableWatcher(logic.update, delay_s=1.0, on_edit=timer.start)   # the panel's single-shot timer
    watcher.watch(result_node, table_node)
    ...                               # Segment Editor strokes: on_edit runs after each one
    watcher.update_if_due()           # re-measures once no edit came for delay_s (a script polls; the panel's
                                      # timer calls update() when it fires)
    watcher.stop()                    # scene close, module cleanup
"""

from __future__ import annotations

import time
from typing import Any, Callable, List, Optional

import slicer

# Measures a segmentation into a table node (None: a new one) and returns the LesionTable (LesionTableLogic.update).
UpdateTable = Callable[[Any, Any], Any]


# What an edit of a segmentation fires (Libs/vtkSegmentationCore/vtkSegmentation.h, enum at v5.8.0 and v5.10.0
# lines 98-112; fired in vtkSegmentation.cxx). Segment Editor effects write through
# vtkSlicerSegmentationsModuleLogic::SetBinaryLabelmapToSegment (v5.8.0 EditorEffects/
# qSlicerSegmentEditorAbstractEffect.cxx lines 513-545; v5.10.0 Logic/vtkSlicerSegmentEditorLogic.cxx lines
# 1930-1941), which fires SourceRepresentationModified and RepresentationModified (vtkSegmentation.cxx v5.8.0
# lines 801, 1765-1767; v5.10.0 lines 787, 1748-1750). SegmentModified fires on renames and recolouring (v5.8.0
# line 779, v5.10.0 line 768), SegmentAdded/SegmentRemoved when segments come and go (v5.8.0 lines 669, 737;
# v5.10.0 lines 661, 729).
EDIT_EVENTS = ("SourceRepresentationModified", "RepresentationModified", "SegmentModified", "SegmentAdded",
               "SegmentRemoved")
# Edits come in bursts (one event per brush stroke and representation); re-measure this long after the last.
EDIT_DELAY_S = 1.0


class LesionTableWatcher:
    """Keeps a lesion table in step with a segmentation while the user edits it; no Qt, no timer of its own.

    Every edit event marks the table stale and calls ``on_edit`` (the panel restarts a single-shot timer there);
    ``update_if_due`` re-measures once no edit came for ``delay_s``, so a burst of edits costs one measurement.
    """

    def __init__(self, update_table: UpdateTable, delay_s: float = EDIT_DELAY_S,
                 on_edit: Optional[Callable[[], None]] = None, clock: Callable[[], float] = time.monotonic):
        self.update_table = update_table
        self.delay_s = delay_s
        self.on_edit = on_edit
        self.clock = clock
        self.segmentation_node = None
        self.table_node = None
        self._observed = None
        self._tags: List[int] = []
        self._last_edit: Optional[float] = None

    @property
    def pending(self) -> bool:
        """True when the segmentation changed after the table was last measured."""
        return self._last_edit is not None

    def watch(self, segmentation_node, table_node=None) -> None:
        """Follow ``segmentation_node`` (None: follow nothing); the table node is reused when given."""
        segmentation = segmentation_node.GetSegmentation() if segmentation_node is not None else None
        if segmentation is not self._observed:
            self.stop()
            self._observed = segmentation
            if segmentation is not None:
                self._tags = [segmentation.AddObserver(getattr(slicer.vtkSegmentation, name), self._on_event)
                              for name in EDIT_EVENTS]
        self.segmentation_node = segmentation_node
        self.table_node = table_node

    def stop(self) -> None:
        """Remove the observers (call it when the panel closes or the scene closes)."""
        if self._observed is not None:
            for tag in self._tags:
                self._observed.RemoveObserver(tag)
        self._observed, self._tags, self._last_edit = None, [], None

    def _on_event(self, caller=None, event=None) -> None:
        self._last_edit = self.clock()
        if self.on_edit is not None:
            self.on_edit()

    def update_if_due(self) -> Optional[Any]:
        """Re-measure when the segmentation changed and no edit came for ``delay_s``; else None."""
        if self._last_edit is None or self.segmentation_node is None:
            return None
        if self.clock() - self._last_edit < self.delay_s:
            return None
        return self.update()

    def update(self) -> Any:
        """Re-measure now into the watched table (a new table node the first time); the ``LesionTable``."""
        table = self.update_table(self.segmentation_node, self.table_node)
        self.table_node = table.table_node
        self._last_edit = None
        return table
