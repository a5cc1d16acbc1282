"""Leave the scene exactly as it was when an action fails: remove every node the action added.

Usage::

    from SpineMetSegLib.mrml.transaction import SceneTransaction

    with SceneTransaction(scene):
        node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "result")
        fill(node)          # raises -> ``node`` (and its display nodes) are removed again

The logic creates nodes only once the work that can fail is done; this guard catches what is left (a failure
while filling a node it just created). Changes to nodes that existed before are the caller's business: the
logic prepares new content off-scene and swaps it in as the last step.
"""

from __future__ import annotations

from typing import List, Set


def node_ids(scene) -> List[str]:
    """IDs of every node in the scene, in scene order."""
    return [scene.GetNthNode(index).GetID() for index in range(scene.GetNumberOfNodes())]


class SceneTransaction:
    """A context manager that removes the nodes added inside it when its block raises."""

    def __init__(self, scene):
        self.scene = scene
        self._before: Set[str] = set()

    def __enter__(self) -> SceneTransaction:
        self._before = set(node_ids(self.scene))
        return self

    def added_node_ids(self) -> List[str]:
        return [node_id for node_id in node_ids(self.scene) if node_id not in self._before]

    def rollback(self) -> None:
        """Remove the nodes added since the block started, newest first (display nodes before their owners)."""
        for node_id in reversed(self.added_node_ids()):
            node = self.scene.GetNodeByID(node_id)
            if node is not None:
                self.scene.RemoveNode(node)

    def __exit__(self, exc_type, exc, traceback) -> bool:
        if exc_type is not None:
            self.rollback()
        return False
